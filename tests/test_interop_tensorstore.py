"""TensorStore's ``neuroglancer_precomputed`` driver as an oracle: it reads what bigarrays writes,
bigarrays reads what it writes, and both write the same raw chunk files byte for byte.

TensorStore's domain is absolute like bigarrays' indices, with a channel axis last:
``("x", "y", "z", "channel")``. Its ``file`` kvstore reads no ``KEY.gz`` files, so gzip is tested
against CloudVolume only (and pinned here as unread).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorstore as ts

import bigarrays as ba
from bigarrays.errors import ChunkNotFoundError, ViewerCompatibilityWarning
from interop_helpers import (
    CHUNKS,
    CORNER_CHUNK,
    DTYPES,
    OFFSET,
    PARTIAL_BOXES,
    READ_BOXES,
    RESOLUTION,
    SCALE_KEY,
    SHAPE,
    absolute,
    as4d,
    assert_identical,
    ba_create,
    check_bigarrays_geometry,
    chunk_boxes,
    chunk_files,
    index,
    partial_model,
    random_volume,
    raw_chunks,
    touched_chunks,
    user_view,
)

pytestmark = pytest.mark.interop

CHANNELS = (1, 3)


def ts_open(path: Path, **spec: Any) -> ts.TensorStore:
    return ts.open(
        {"driver": "neuroglancer_precomputed", "kvstore": {"driver": "file", "path": str(path)}}
        | spec
    ).result()


def ts_create(path: Path, dtype: str, num_channels: int, **spec: Any) -> ts.TensorStore:
    """A one-scale volume of the shared geometry, made from explicit info members."""
    return ts_open(
        path,
        create=True,
        multiscale_metadata={"data_type": dtype, "num_channels": num_channels, "type": "image"},
        scale_metadata={
            "size": list(SHAPE),
            "voxel_offset": list(OFFSET),
            "chunk_size": list(CHUNKS),
            "resolution": list(RESOLUTION),
            "encoding": "raw",
        },
        **spec,
    )


def check_tensorstore_geometry(store: ts.TensorStore, dtype: str, num_channels: int) -> None:
    domain = store.domain
    assert domain.labels == ("x", "y", "z", "channel")
    assert domain.inclusive_min == (*OFFSET, 0)
    assert domain.shape == (*SHAPE, num_channels)
    assert store.dtype.numpy_dtype == np.dtype(dtype)
    assert store.chunk_layout.read_chunk.shape == (*CHUNKS, num_channels)


# -- bigarrays writes, TensorStore reads --------------------------------------------------------


@pytest.mark.parametrize("num_channels", CHANNELS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_tensorstore_reads_what_bigarrays_writes(
    tmp_path: Path, dtype: str, num_channels: int
) -> None:
    model = random_volume(SHAPE, dtype, num_channels)
    vol = ba_create(tmp_path, dtype, num_channels)
    vol[:, :, :] = user_view(model, num_channels)

    store = ts_open(tmp_path)
    check_tensorstore_geometry(store, dtype, num_channels)
    assert_identical(store.read().result(), model)
    for box in READ_BOXES:
        expected = model[index(box)]
        assert_identical(store[absolute(box)].read().result(), expected)
        assert_identical(as4d(vol[absolute(box)]), expected)


@pytest.mark.parametrize("num_channels", CHANNELS)
@pytest.mark.parametrize("dtype", ["uint8", "int16", "uint64", "float32"])
def test_unaligned_writes_agree_with_tensorstore(
    tmp_path: Path, dtype: str, num_channels: int
) -> None:
    writes, model = partial_model(dtype, num_channels)
    ours = ba_create(tmp_path / "ba", dtype, num_channels)
    theirs = ts_create(tmp_path / "ts", dtype, num_channels)
    for box, block in writes:
        ours[absolute(box)] = user_view(block, num_channels)
        theirs[absolute(box)] = block

    # Both write exactly the chunks the boxes touch, with the same bytes; the rest stay missing.
    touched = touched_chunks(PARTIAL_BOXES)
    assert len(touched) < len(chunk_boxes())
    ours_files = chunk_files(tmp_path / "ba")
    assert set(ours_files) == touched
    assert ours_files == chunk_files(tmp_path / "ts")
    assert ours_files == raw_chunks(model, touched)

    # Each reads the other's volume, missing chunks as zeros.
    assert_identical(ts_open(tmp_path / "ba").read().result(), model)
    assert_identical(as4d(ba.open(str(tmp_path / "ts"))[:, :, :]), model)


# -- TensorStore writes, bigarrays reads --------------------------------------------------------


@pytest.mark.parametrize("num_channels", CHANNELS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_bigarrays_reads_what_tensorstore_writes(
    tmp_path: Path, dtype: str, num_channels: int
) -> None:
    model = random_volume(SHAPE, dtype, num_channels, seed=2)
    store = ts_create(tmp_path, dtype, num_channels)
    store[...] = model

    vol = ba.open(str(tmp_path))
    check_bigarrays_geometry(vol, dtype, num_channels)
    assert_identical(as4d(vol[:, :, :]), model)
    for box in READ_BOXES:
        assert_identical(as4d(vol[absolute(box)]), model[index(box)])
    # A box that reaches past the bounds reads zeros outside them.
    out = as4d(vol[-30:-15, 50:60, 20:40])
    expected = np.zeros((15, 10, 20, num_channels), dtype=dtype)
    expected[10:, :5, :6] = model[:5, 45:, 27:]
    assert_identical(out, expected)


def test_missing_chunks_of_a_tensorstore_volume(tmp_path: Path) -> None:
    writes, model = partial_model("uint32", 3)
    store = ts_create(tmp_path, "uint32", 3)
    for box, block in writes:
        store[absolute(box)] = block
    missing = sorted(set(chunk_boxes()) - touched_chunks(PARTIAL_BOXES))
    assert missing
    assert not (tmp_path / SCALE_KEY / missing[0]).exists()

    assert_identical(ba.open(str(tmp_path))[:, :, :], model)
    # A missing chunk inside the bounds is an error when fill_missing is off.
    strict = ba.open(str(tmp_path), fill_missing=False)
    with pytest.raises(ChunkNotFoundError):
        strict[absolute(chunk_boxes()[missing[0]])]
    # ... but a box of written chunks only reads fine.
    box = PARTIAL_BOXES[0]
    assert_identical(strict[absolute(box)], model[index(box)])


def test_tensorstore_does_not_store_chunks_equal_to_the_fill_value(tmp_path: Path) -> None:
    """TensorStore drops a chunk whose voxels all equal the fill value (0) unless told
    ``store_data_equal_to_fill_value``; bigarrays must read such holes as zeros."""
    model = np.zeros((*SHAPE, 1), dtype="uint16")
    model[index(((-2, 30, 12), (3, 40, 13)))] = 7
    store = ts_create(tmp_path / "default", "uint16", 1)
    store[...] = model
    assert set(chunk_files(tmp_path / "default")) == {"-4-12_21-37_9-25", "-4-12_37-53_9-25"}
    assert_identical(as4d(ba.open(str(tmp_path / "default"))[:, :, :]), model)

    store = ts_create(tmp_path / "all", "uint16", 1, store_data_equal_to_fill_value=True)
    store[...] = model
    assert chunk_files(tmp_path / "all") == raw_chunks(model)


# -- byte identity ------------------------------------------------------------------------------


@pytest.mark.parametrize("num_channels", CHANNELS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_raw_chunk_files_are_byte_identical(tmp_path: Path, dtype: str, num_channels: int) -> None:
    model = random_volume(SHAPE, dtype, num_channels, seed=3, nonzero=True)
    ba_create(tmp_path / "ba", dtype, num_channels)[:, :, :] = user_view(model, num_channels)
    ts_create(tmp_path / "ts", dtype, num_channels)[...] = model

    ours = chunk_files(tmp_path / "ba")
    assert set(ours) == set(chunk_boxes())
    assert ours == chunk_files(tmp_path / "ts")
    assert ours == raw_chunks(model)
    itemsize = np.dtype(dtype).itemsize
    assert len(ours[CORNER_CHUNK]) == 6 * 2 * 1 * num_channels * itemsize


# -- the same volume, written by both -----------------------------------------------------------


def test_each_writes_into_the_others_volume(tmp_path: Path) -> None:
    writes, model = partial_model("int16", 3)
    (box0, block0), (box1, block1), (box2, block2), (box3, block3) = writes

    vol = ba_create(tmp_path / "ba", "int16", 3)
    vol[absolute(box0)] = block0
    store = ts_open(tmp_path / "ba")
    store[absolute(box1)] = block1
    vol[absolute(box2)] = block2
    ts_open(tmp_path / "ba")[absolute(box3)] = block3
    assert_identical(vol[:, :, :], model)
    assert_identical(ts_open(tmp_path / "ba").read().result(), model)

    ts_create(tmp_path / "ts", "int16", 3)[absolute(box0)] = block0
    vol = ba.open(str(tmp_path / "ts"), mode="r+")
    vol[absolute(box1)] = block1
    ts_open(tmp_path / "ts")[absolute(box2)] = block2
    vol[absolute(box3)] = block3
    assert_identical(ts_open(tmp_path / "ts").read().result(), model)
    assert_identical(vol[:, :, :], model)


def test_bigarrays_reads_a_volume_tensorstore_made_from_a_schema(tmp_path: Path) -> None:
    model = random_volume(SHAPE, "uint16", 2, seed=4)
    schema = {
        "dtype": "uint16",
        "domain": {
            "inclusive_min": [*OFFSET, 0],
            "shape": [*SHAPE, 2],
            "labels": ["x", "y", "z", "channel"],
        },
        "chunk_layout": {"read_chunk": {"shape": [*CHUNKS, 2]}},
        "codec": {"driver": "neuroglancer_precomputed", "encoding": "raw"},
        "dimension_units": [[4, "nm"], [4, "nm"], [40, "nm"], None],
    }
    store = ts_open(tmp_path, create=True, schema=schema)
    store[...] = model

    vol = ba.open(str(tmp_path))
    check_bigarrays_geometry(vol, "uint16", 2)
    assert vol.info["scales"][0]["key"] == SCALE_KEY
    assert_identical(vol[:, :, :], model)


# -- what TensorStore does not read -------------------------------------------------------------


def test_tensorstore_reads_no_gzip_chunk_files(tmp_path: Path) -> None:
    """Pinned: bigarrays keeps gzip chunks on disk as KEY.gz (CloudVolume's convention). TensorStore
    accepts the info, bigarrays' extra scale member included, but its file kvstore reads no suffix:
    every chunk is missing to it and reads as the fill value."""
    model = random_volume(SHAPE, "uint16", 1, seed=5, nonzero=True)
    vol = ba_create(tmp_path, "uint16", compression="gzip")
    vol[:, :, :] = model[..., 0]
    assert set(chunk_files(tmp_path, gunzip=True)) == set(chunk_boxes())

    store = ts_open(tmp_path)
    check_tensorstore_geometry(store, "uint16", 1)
    assert not store.read().result().any()
    assert_identical(as4d(ba.open(str(tmp_path))[:, :, :]), model)


@pytest.mark.parametrize("dtype", ["float64", "int64", "bool"])
def test_tensorstore_refuses_bigarrays_extension_dtypes(tmp_path: Path, dtype: str) -> None:
    with pytest.warns(ViewerCompatibilityWarning, match="TensorStore"):
        vol = ba_create(tmp_path, dtype)
    vol[0:5, 5:10, 0:5] = np.ones((5, 5, 5), dtype=dtype)
    with pytest.raises(ValueError, match="data_type"):
        ts_open(tmp_path)
