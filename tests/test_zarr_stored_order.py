"""Zarr arrays stored in F order (v2 ``order: F``, a v3 ``transpose`` reversing every axis) move
through the engine in F order: chunks are decoded and encoded with no transposing copy, reads
come back F-ordered, and zarr-python reads every voxel we write (edge chunks, partial chunks)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st

import bigarrays as ba
from bigarrays.formats.zarr.chunks import ZarrChunks


def _v2(path: Path, shape: tuple[int, ...], chunks: tuple[int, ...], order: str) -> None:
    zarr.create_array(store=str(path), shape=shape, chunks=chunks, dtype="<u2", zarr_format=2,
                      order=order, compressors=None, filters=None, fill_value=7)  # fmt: skip


def _v3(path: Path, shape: tuple[int, ...], chunks: tuple[int, ...], permutation: list[int],
        compressed: bool = False) -> None:  # fmt: skip
    codecs: list[dict[str, Any]] = [
        {"name": "transpose", "configuration": {"order": permutation}},
        {"name": "bytes", "configuration": {"endian": "little"}},
    ]
    if compressed:
        codecs.append({"name": "zstd", "configuration": {"level": 1}})
    meta = {
        "zarr_format": 3, "node_type": "array", "shape": list(shape), "data_type": "uint16",
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(chunks)}},
        "chunk_key_encoding": {"name": "default"}, "fill_value": 7, "codecs": codecs,
    }  # fmt: skip
    path.mkdir()
    (path / "zarr.json").write_text(json.dumps(meta))


def _source(vol: ba.BigArray) -> ZarrChunks:
    source = vol.level.source
    assert isinstance(source, ZarrChunks)
    return source


@pytest.mark.parametrize(
    ("make", "order"),
    [
        (lambda p, s, c: _v2(p, s, c, "F"), "F"),
        (lambda p, s, c: _v2(p, s, c, "C"), "C"),
        (lambda p, s, c: _v3(p, s, c, [2, 1, 0]), "F"),
        (lambda p, s, c: _v3(p, s, c, [2, 1, 0], compressed=True), "F"),
        (lambda p, s, c: _v3(p, s, c, [1, 0, 2]), "C"),  # not a reversal: no single layout
    ],
)
def test_the_engine_moves_chunks_in_the_stored_order(tmp_path: Path, make: Any, order: str) -> None:
    shape, chunks = (13, 10, 9), (4, 5, 3)
    make(tmp_path / "a.zarr", shape, chunks)
    vol = ba.open(tmp_path / "a.zarr", mode="r+")
    assert _source(vol).order == order
    model = np.full(shape, 7, np.uint16)
    values = np.arange(11 * 8 * 7, dtype=np.uint16).reshape(11, 8, 7)
    vol[1:12, 2:10, 1:8] = np.asfortranarray(values)  # partial and edge chunks
    model[1:12, 2:10, 1:8] = values
    got = vol[...]
    assert got.flags.f_contiguous if order == "F" else got.flags.c_contiguous
    np.testing.assert_array_equal(got, model)
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "a.zarr"), mode="r")[...], model)


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_f_ordered_arrays_agree_with_numpy_and_zarr_python(
    tmp_path_factory: pytest.TempPathFactory, data: Any
) -> None:
    ndim = data.draw(st.integers(2, 4))
    chunks = tuple(data.draw(st.integers(1, 4)) for _ in range(ndim))
    shape = tuple(data.draw(st.integers(1, 3 * c + 1)) for c in chunks)
    path = tmp_path_factory.mktemp("f") / "a.zarr"
    if data.draw(st.booleans()):
        _v2(path, shape, chunks, "F")
    else:
        _v3(path, shape, chunks, list(reversed(range(ndim))))
    vol = ba.open(path, mode="r+")
    model = np.full(shape, 7, np.uint16)
    for step in range(3):
        start = [data.draw(st.integers(0, n - 1)) for n in shape]
        stop = [data.draw(st.integers(a + 1, n)) for a, n in zip(start, shape, strict=True)]
        box = tuple(slice(a, b) for a, b in zip(start, stop, strict=True))
        value = np.random.default_rng(step).integers(0, 1000, model[box].shape).astype(np.uint16)
        vol[box] = value if data.draw(st.booleans()) else np.asfortranarray(value)
        model[box] = value
        np.testing.assert_array_equal(vol[box], model[box])
    np.testing.assert_array_equal(vol[...], model)
    np.testing.assert_array_equal(zarr.open_array(str(path), mode="r")[...], model)
