"""CloudVolume as an oracle: it reads what bigarrays writes, bigarrays reads what it writes, raw
chunk files are byte for byte the same, and gzip chunks on disk follow its ``KEY.gz`` convention.

CloudVolume indexes in absolute coordinates and returns ``(x, y, z, c)`` cutouts. It is always given
``compress`` explicitly (its default gzips raw chunks), ``parallel=1`` and ``progress=False``.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cloudvolume import CloudVolume
from cloudvolume.exceptions import EmptyVolumeException

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
    Box3,
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
#: bigarrays' ``compression`` and the matching CloudVolume ``compress``.
COMPRESSIONS = {"raw": (None, False), "gzip": ("gzip", "gzip")}


def cv_open(path: Path, **options: Any) -> CloudVolume:
    settings = {"mip": 0, "bounded": True, "fill_missing": True, "progress": False, "parallel": 1}
    return CloudVolume(path.as_uri(), **(settings | options))


def cv_create(path: Path, dtype: str, num_channels: int, **options: Any) -> CloudVolume:
    """A one-scale volume of the shared geometry, made the way CloudVolume's users make one."""
    info = CloudVolume.create_new_info(
        num_channels=num_channels,
        layer_type="image",
        data_type=dtype,
        encoding="raw",
        resolution=list(RESOLUTION),
        voxel_offset=list(OFFSET),
        volume_size=list(SHAPE),
        chunk_size=list(CHUNKS),
    )
    vol = cv_open(path, info=info, **options)
    vol.commit_info()
    return vol


def check_cloudvolume_geometry(vol: CloudVolume, dtype: str, num_channels: int) -> None:
    assert tuple(vol.voxel_offset) == OFFSET
    assert tuple(vol.volume_size) == SHAPE
    assert tuple(vol.chunk_size) == CHUNKS
    assert tuple(vol.resolution) == RESOLUTION
    assert vol.num_channels == num_channels
    assert np.dtype(vol.dtype) == np.dtype(dtype)
    assert vol.layer_type == "image"
    assert vol.key == SCALE_KEY


def cv_read(vol: CloudVolume, box: Box3) -> np.ndarray:
    """A cutout as ``(x, y, z, c)``. CloudVolume's fast path for a single voxel hands back
    ``(c, 1, 1, 1)`` when there are several channels (pinned below); put the channels last."""
    cut = np.asarray(vol[absolute(box)])
    if all(b - a == 1 for a, b in zip(*box, strict=True)):
        assert cut.shape == (vol.num_channels, 1, 1, 1)
        cut = cut.reshape(1, 1, 1, -1)
    return cut


def stored_chunks(root: Path, compression: str | None) -> dict[str, bytes]:
    return chunk_files(root, gunzip=compression == "gzip")


# -- bigarrays writes, CloudVolume reads --------------------------------------------------------


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("num_channels", CHANNELS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_cloudvolume_reads_what_bigarrays_writes(
    tmp_path: Path, dtype: str, num_channels: int, compression: str
) -> None:
    ours, _ = COMPRESSIONS[compression]
    model = random_volume(SHAPE, dtype, num_channels)
    vol = ba_create(tmp_path, dtype, num_channels, compression=ours)
    vol[:, :, :] = user_view(model, num_channels)
    assert set(stored_chunks(tmp_path, ours)) == set(chunk_boxes())

    cv = cv_open(tmp_path, fill_missing=False)
    check_cloudvolume_geometry(cv, dtype, num_channels)
    assert_identical(cv[:, :, :], model)
    for box in READ_BOXES:
        assert_identical(cv_read(cv, box), model[index(box)])
    # Unbounded, both read zeros outside the bounds.
    unbounded = cv_open(tmp_path, bounded=False)
    box = ((-30, 50, 20), (-15, 60, 40))
    cut = unbounded[absolute(box)]
    assert cut[:10].max() == 0
    assert_identical(cut, as4d(vol[absolute(box)]))


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("num_channels", CHANNELS)
@pytest.mark.parametrize("dtype", ["uint8", "int16", "uint64", "float32"])
def test_unaligned_writes_agree_with_cloudvolume(
    tmp_path: Path, dtype: str, num_channels: int, compression: str
) -> None:
    ours, theirs = COMPRESSIONS[compression]
    writes, model = partial_model(dtype, num_channels)
    vol = ba_create(tmp_path / "ba", dtype, num_channels, compression=ours)
    cv = cv_create(tmp_path / "cv", dtype, num_channels, compress=theirs, non_aligned_writes=True)
    for box, block in writes:
        vol[absolute(box)] = user_view(block, num_channels)
        cv[absolute(box)] = block

    # Both write exactly the chunks the boxes touch, with the same (decoded) bytes.
    touched = touched_chunks(PARTIAL_BOXES)
    assert len(touched) < len(chunk_boxes())
    ours_files = stored_chunks(tmp_path / "ba", ours)
    assert set(ours_files) == touched
    assert ours_files == stored_chunks(tmp_path / "cv", ours)
    assert ours_files == raw_chunks(model, touched)

    # Each reads the other's volume, missing chunks as zeros.
    assert_identical(cv_open(tmp_path / "ba")[:, :, :], model)
    assert_identical(as4d(ba.open(str(tmp_path / "cv"))[:, :, :]), model)


# -- CloudVolume writes, bigarrays reads --------------------------------------------------------


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("num_channels", CHANNELS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_bigarrays_reads_what_cloudvolume_writes(
    tmp_path: Path, dtype: str, num_channels: int, compression: str
) -> None:
    ours, theirs = COMPRESSIONS[compression]
    model = random_volume(SHAPE, dtype, num_channels, seed=2)
    cv = cv_create(tmp_path, dtype, num_channels, compress=theirs)
    cv[:, :, :] = model
    assert set(stored_chunks(tmp_path, ours)) == set(chunk_boxes())

    vol = ba.open(str(tmp_path), fill_missing=False)
    check_bigarrays_geometry(vol, dtype, num_channels)
    assert_identical(as4d(vol[:, :, :]), model)
    for box in READ_BOXES:
        assert_identical(as4d(vol[absolute(box)]), model[index(box)])


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_missing_chunks_of_a_cloudvolume_volume(tmp_path: Path, compression: str) -> None:
    _, theirs = COMPRESSIONS[compression]
    writes, model = partial_model("uint16", 3)
    cv = cv_create(tmp_path, "uint16", 3, compress=theirs, non_aligned_writes=True)
    for box, block in writes:
        cv[absolute(box)] = block
    missing = sorted(set(chunk_boxes()) - touched_chunks(PARTIAL_BOXES))
    assert missing
    assert not list((tmp_path / SCALE_KEY).glob(missing[0] + "*"))
    missing_box = absolute(chunk_boxes()[missing[0]])

    assert_identical(ba.open(str(tmp_path))[:, :, :], model)
    strict = ba.open(str(tmp_path), fill_missing=False)
    with pytest.raises(ChunkNotFoundError):
        strict[missing_box]
    box = PARTIAL_BOXES[0]
    assert_identical(strict[absolute(box)], model[index(box)])
    # CloudVolume agrees: the chunk is missing, not empty.
    with pytest.raises(EmptyVolumeException):
        cv_open(tmp_path, fill_missing=False)[missing_box]


# -- byte identity ------------------------------------------------------------------------------


@pytest.mark.parametrize("num_channels", CHANNELS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_raw_chunk_files_are_byte_identical(tmp_path: Path, dtype: str, num_channels: int) -> None:
    model = random_volume(SHAPE, dtype, num_channels, seed=3)
    ba_create(tmp_path / "ba", dtype, num_channels)[:, :, :] = user_view(model, num_channels)
    cv_create(tmp_path / "cv", dtype, num_channels, compress=False)[:, :, :] = model

    ours = chunk_files(tmp_path / "ba")
    assert set(ours) == set(chunk_boxes())
    assert ours == chunk_files(tmp_path / "cv")
    assert ours == raw_chunks(model)
    itemsize = np.dtype(dtype).itemsize
    assert len(ours[CORNER_CHUNK]) == 6 * 2 * 1 * num_channels * itemsize


@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_gzip_chunk_files_decode_to_the_same_bytes(tmp_path: Path, dtype: str) -> None:
    model = random_volume(SHAPE, dtype, 3, seed=6)
    ba_create(tmp_path / "ba", dtype, 3, compression="gzip")[:, :, :] = model
    cv_create(tmp_path / "cv", dtype, 3, compress="gzip")[:, :, :] = model

    # The same KEY.gz names, each a gzip stream whose content is the raw chunk.
    ours = chunk_files(tmp_path / "ba")
    assert set(ours) == set(chunk_files(tmp_path / "cv")) == {f"{n}.gz" for n in chunk_boxes()}
    assert all(data[:2] == b"\x1f\x8b" for data in ours.values())
    assert chunk_files(tmp_path / "ba", gunzip=True) == chunk_files(tmp_path / "cv", gunzip=True)
    assert chunk_files(tmp_path / "ba", gunzip=True) == raw_chunks(model)


# -- the same volume, written by both -----------------------------------------------------------


def assert_no_twins(root: Path) -> None:
    """No chunk is stored both as NAME and as NAME.gz (which one a reader takes is not fixed)."""
    names = [p.name.removesuffix(".gz") for p in (root / SCALE_KEY).iterdir()]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_each_writes_into_the_others_volume(tmp_path: Path, compression: str) -> None:
    ours, theirs = COMPRESSIONS[compression]
    writes, model = partial_model("float32", 3)
    options = {"compress": theirs, "non_aligned_writes": True}

    # A bigarrays volume: bigarrays and CloudVolume take turns, with the same chunk suffix.
    vol = ba_create(tmp_path / "ba", "float32", 3, compression=ours)
    for i, (box, block) in enumerate(writes):
        if i % 2:
            cv_open(tmp_path / "ba", **options)[absolute(box)] = block
        else:
            vol[absolute(box)] = block
    assert_no_twins(tmp_path / "ba")
    assert_identical(vol[:, :, :], model)
    assert_identical(cv_open(tmp_path / "ba")[:, :, :], model)

    # A CloudVolume volume: its info says nothing of gzip, so bigarrays writes plain chunks (and
    # removes their .gz twins). CloudVolume gzipping a chunk bigarrays left plain would leave two
    # files (see the next test), so with gzip CloudVolume writes first.
    turns = ["cv", "ba", "cv", "ba"] if theirs is False else ["cv", "cv", "ba", "ba"]
    cv_create(tmp_path / "cv", "float32", 3, **options)
    vol = ba.open(str(tmp_path / "cv"), mode="r+")
    for who, (box, block) in zip(turns, writes, strict=True):
        if who == "cv":
            cv_open(tmp_path / "cv", **options)[absolute(box)] = block
        else:
            vol[absolute(box)] = block
    assert_no_twins(tmp_path / "cv")
    assert_identical(cv_open(tmp_path / "cv")[:, :, :], model)
    assert_identical(vol[:, :, :], model)


def test_gzip_twin_of_a_plain_chunk(tmp_path: Path) -> None:
    """Pinned: CloudVolume gzipping a chunk that exists as a plain file writes NAME.gz beside NAME
    and leaves both. Which one CloudVolume then reads is not fixed (CloudFiles tries suffixes in a
    process-wide most-recently-found order); bigarrays reads the plain one, and its own next
    write of the chunk removes the twin, after which both read the same bytes."""
    vol = ba_create(tmp_path, "uint8")
    vol[:, :, :] = np.full(SHAPE, 1, dtype="uint8")
    cv_open(tmp_path, compress="gzip")[-20:-4, 5:21, -7:9] = np.full((16, 16, 16), 2, "uint8")
    name = "-20--4_5-21_-7-9"
    assert gzip.decompress((tmp_path / SCALE_KEY / f"{name}.gz").read_bytes()) == bytes([2]) * 4096
    assert (tmp_path / SCALE_KEY / name).read_bytes() == bytes([1]) * 4096
    assert vol[-20, 5, -7] == 1

    vol[-20:-4, 5:21, -7:9] = np.full((16, 16, 16), 3, dtype="uint8")
    assert not (tmp_path / SCALE_KEY / f"{name}.gz").exists()
    assert (tmp_path / SCALE_KEY / name).read_bytes() == bytes([3]) * 4096
    assert np.all(cv_open(tmp_path)[-20:-4, 5:21, -7:9] == 3)


def test_cloudvolume_puts_channels_first_for_a_single_voxel(tmp_path: Path) -> None:
    """Pinned: CloudVolume's single-voxel fast path ignores channels: a one-voxel cutout of a
    3-channel volume is (3, 1, 1, 1), while two voxels give the (2, 1, 1, 3) of every other box.
    bigarrays keeps (x, y, z, c) for every box."""
    model = random_volume(SHAPE, "uint8", 3, seed=8)
    vol = ba_create(tmp_path, "uint8", 3)
    vol[:, :, :] = model
    cv = cv_open(tmp_path)
    one = np.asarray(cv[10:11, 20:21, 0:1])
    assert one.shape == (3, 1, 1, 1)
    assert np.array_equal(one[:, 0, 0, 0], model[30, 15, 7])
    assert cv[10:12, 20:21, 0:1].shape == (2, 1, 1, 3)
    assert_identical(vol[10:11, 20:21, 0:1], model[30:31, 15:16, 7:8])


# -- bigarrays' extension data types ------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float64", "int64", "bool"])
def test_cloudvolume_reads_and_writes_bigarrays_extension_dtypes(
    tmp_path: Path, dtype: str
) -> None:
    """Pinned: TensorStore and Neuroglancer refuse float64, int64 and bool, CloudVolume does not:
    it reads them from bigarrays and writes volumes of them that bigarrays reads."""
    rng = np.random.default_rng(7)
    model = rng.integers(-(2**40), 2**40, size=(*SHAPE, 1)).astype(dtype)
    if dtype == "float64":
        model /= 3
    with pytest.warns(ViewerCompatibilityWarning) as record:
        ba_create(tmp_path / "ba", dtype)[:, :, :] = model[..., 0]
    assert "CloudVolume cannot" not in str(record[0].message)
    assert_identical(cv_open(tmp_path / "ba", fill_missing=False)[:, :, :], model)

    cv_create(tmp_path / "cv", dtype, 1, compress=False)[:, :, :] = model
    assert chunk_files(tmp_path / "cv") == chunk_files(tmp_path / "ba")
    assert_identical(as4d(ba.open(str(tmp_path / "cv"))[:, :, :]), model)


def test_write_compression_keeps_a_cloudvolume_gzip_volume_gzip(tmp_path: Path) -> None:
    """CloudVolume gzips by default and its info does not say so: bigarrays opened with
    ``write_compression="gzip"`` writes ``.gz`` chunks too, so no plain twin appears and
    CloudVolume's later gzip writes replace ours instead of landing beside them."""
    model = random_volume(SHAPE, "uint8", 1, seed=21)
    cv_create(tmp_path, "uint8", 1, compress="gzip")[:, :, :] = model[..., 0]
    vol = ba.open(tmp_path, mode="r+", write_compression="gzip")
    assert vol.compression == "gzip"
    patch = np.full((23, 17, 11), 9, dtype="uint8")
    vol[-13:10, 9:26, -2:9] = patch
    model[7:30, 4:21, 5:16, 0] = 9
    files = [p.name for p in (tmp_path / SCALE_KEY).iterdir()]
    assert len(files) == 5 * 4 * 3  # every chunk of the 70 x 50 x 33 volume in 16^3 chunks
    assert all(name.endswith(".gz") for name in files)
    assert_identical(as4d(cv_read(cv_open(tmp_path), ((-20, 5, -7), (50, 55, 26)))), model)
    # The info on the store is CloudVolume's, untouched: it never records a compression.
    info = json.loads((tmp_path / "info").read_text())
    assert "bigarrays" not in info["scales"][0]
    with pytest.raises(ValueError, match="write_compression"):
        ba.open(tmp_path, mode="r+", write_compression="rot13")
