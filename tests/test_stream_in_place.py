"""Raw Zarr chunks streamed in place (``bigarrays.streaming_in_place``): frames go straight to
where the file store keeps their chunks and shards, which store the bytes a whole write stores,
stay unseen until their slab is published, and leave nothing behind when a write fails."""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from zarr.codecs import BytesCodec

import bigarrays as ba
from bigarrays import streaming_in_place
from bigarrays.errors import StreamWriteError, UnsupportedError
from bigarrays.stores import open_store
from bigarrays.streaming import Stream
from bigarrays.streaming_in_place import InPlaceSlab
from bigarrays.streaming_shards import ChunkSlab
from test_streaming import kill_once_checkpointed

METADATA = {"zarr.json", ".zarray", ".zattrs", ".zgroup"}


def stored(path: Path) -> dict[str, bytes]:
    """Every file under ``path`` but the metadata, temp files included."""
    return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*")
            if p.is_file() and p.name not in METADATA}  # fmt: skip


def whole(
    path: Path, data: np.ndarray, layout: dict[str, Any], skip_empty: bool = True
) -> dict[str, bytes]:
    """What ``vol[...] = data`` stores (leaving out chunks of fill, as a stream does by
    default; shards always leave them out)."""
    skip_empty = skip_empty and "sharding" not in layout
    ref = ba.create(str(path), shape=data.shape, dtype=data.dtype, compression=None,
                    skip_empty=skip_empty, **layout)  # fmt: skip
    ref[...] = data
    ref.close()
    return stored(path)


def camera(n: int, shape: tuple[int, ...], dtype: str = "uint16", seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(1, 60000, size=(n, *shape)).astype(dtype)


# Frames along t of (t, y, x); a unit of 4 frames. The sharded layouts hold 2 x 2 x 2 inner chunks
# per shard, so a slab's shard has inner chunks before and after others in its (Morton) order.
T_Y_X: dict[str, Any] = {"format": "zarr", "dims": ("t", "y", "x"), "chunks": (4, 16, 16)}
LAYOUTS: dict[str, dict[str, Any]] = {
    "chunks": T_Y_X,
    "shard-index-end": {**T_Y_X, "chunks": (4, 32, 32), "sharding": {"chunk_shape": [2, 16, 16]}},
    "shard-index-start": {**T_Y_X, "chunks": (4, 32, 32),
                          "sharding": {"chunk_shape": [2, 16, 16], "index_location": "start"}},
    "zarr2": {**T_Y_X, "format": "zarr2"},
}  # fmt: skip
EACH_LAYOUT = pytest.mark.parametrize("layout", list(LAYOUTS.values()), ids=list(LAYOUTS))


def streamed(url: Path, data: np.ndarray, layout: dict[str, Any], **options: Any) -> None:
    with ba.stream(str(url), axis=layout["dims"][0], shape=data.shape[1:], dtype=data.dtype,
                   compression=None, **layout, **options) as s:  # fmt: skip
        assert isinstance(s._slab, InPlaceSlab | None)
        for frame in data:
            s.append(frame)
            assert isinstance(s._slab, InPlaceSlab | None)


@EACH_LAYOUT
@pytest.mark.parametrize("frames", [12, 11, 2], ids=["whole-slabs", "short-last-slab", "short"])
def test_streamed_in_place_stores_what_a_whole_write_does(
    tmp_path: Path, layout: dict[str, Any], frames: int
) -> None:
    # 40 x 50 voxels: edge chunks on both axes, padded with the fill value.
    data = camera(frames, (40, 50))
    streamed(tmp_path / "s", data, layout)
    np.testing.assert_array_equal(ba.open(str(tmp_path / "s"))[...], data)
    assert stored(tmp_path / "s") == whole(tmp_path / "r", data, layout)
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "s"), mode="r")[...], data)


@EACH_LAYOUT
def test_chunks_of_fill_are_left_out_where_a_whole_write_leaves_them(
    tmp_path: Path, layout: dict[str, Any]
) -> None:
    data = camera(12, (40, 50))
    data[0:4, 0:16, 0:16] = 0  # the first chunk of a shard's order: the others move up
    data[4:8, 16:32, 16:32] = 0  # one in the middle
    data[8:10, 32:, 32:] = 0  # an edge chunk, only its data (the padding is fill too)
    streamed(tmp_path / "s", data, layout)
    np.testing.assert_array_equal(ba.open(str(tmp_path / "s"))[...], data)
    assert stored(tmp_path / "s") == whole(tmp_path / "r", data, layout)


def test_a_slab_all_fill_stores_no_shard(tmp_path: Path) -> None:
    layout = LAYOUTS["shard-index-end"]
    data = camera(8, (32, 32))
    data[4:] = 0
    streamed(tmp_path / "s", data, layout)
    assert sorted(stored(tmp_path / "s")) == ["c/0/0/0"]
    assert stored(tmp_path / "s") == whole(tmp_path / "r", data, layout)


def test_without_skip_empty_chunks_of_fill_are_stored(tmp_path: Path) -> None:
    data = camera(6, (16, 32))
    data[:, :, :16] = 0
    streamed(tmp_path / "s", data, T_Y_X, skip_empty=False)
    assert stored(tmp_path / "s") == whole(tmp_path / "r", data, T_Y_X, skip_empty=False)
    assert len(stored(tmp_path / "s")) == 4


@pytest.mark.parametrize("dtype", ["uint8", "int32", "float64", "complex64"])
def test_every_dtype_lands_as_a_whole_write_puts_it(tmp_path: Path, dtype: str) -> None:
    data = camera(5, (20, 20), dtype=dtype)
    url = str(tmp_path / "s")
    with ba.stream(url, axis="t", shape=(20, 20), dtype=data.dtype, compression=None,
                   **T_Y_X) as s:  # fmt: skip
        s.append(data)
        assert isinstance(s._slab, InPlaceSlab)
    np.testing.assert_array_equal(ba.open(url)[...], data)
    assert stored(tmp_path / "s") == whole(tmp_path / "r", data, T_Y_X)


def test_big_endian_chunks_are_encoded_from_slabs_in_memory(tmp_path: Path) -> None:
    # Values stored big-endian do not lie in memory as stored here: no copy in place.
    def made_by_zarr(path: Path) -> str:
        zarr.create_array(str(path), shape=(0, 20, 20), chunks=(4, 16, 16), dtype="uint16",
                          serializer=BytesCodec(endian="big"), compressors=None,
                          fill_value=0, dimension_names=("t", "y", "x"))  # fmt: skip
        return str(path)

    data = camera(6, (20, 20))
    with ba.stream(ba.open(made_by_zarr(tmp_path / "s"), mode="r+"), axis="t") as s:
        s.append(data)
        assert isinstance(s._slab, ChunkSlab)
    ref = ba.open(made_by_zarr(tmp_path / "r"), mode="r+", skip_empty=True)
    ref.resize((6, 20, 20))
    ref[...] = data
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "s"), mode="r")[...], data)
    assert stored(tmp_path / "s") == stored(tmp_path / "r")


def test_the_streamed_axis_after_others_is_written_in_runs(tmp_path: Path) -> None:
    # (c, t, y, x) with 2 channels per chunk: a frame's part of a chunk is two runs of bytes.
    layout = {"format": "zarr", "dims": ("c", "t", "y", "x"), "chunks": (2, 4, 8, 8)}
    data = np.moveaxis(camera(9, (3, 12, 10)), 0, 1)
    url = str(tmp_path / "s")
    with ba.stream(url, axis="t", shape=(3, 12, 10), dtype="uint16", compression=None,
                   **layout) as s:  # fmt: skip
        for t in range(9):
            s.append(data[:, t])
        assert isinstance(s._slab, InPlaceSlab)
    np.testing.assert_array_equal(ba.open(url)[...], data)
    assert stored(tmp_path / "s") == whole(tmp_path / "r", data, layout)


@EACH_LAYOUT
def test_a_resumed_stream_stores_what_a_whole_write_does(
    tmp_path: Path, layout: dict[str, Any]
) -> None:
    data = camera(10, (40, 50))
    url = str(tmp_path / "s")
    with ba.stream(url, axis="t", shape=(40, 50), dtype="uint16", compression=None,
                   **layout) as s:  # fmt: skip
        s.append(data[:6])  # ends inside a slab: resumed, it is read back into the new one
    with ba.stream(url, axis="t", resume=True) as s:
        s.append(data[6:])
    np.testing.assert_array_equal(ba.open(url)[...], data)
    assert stored(tmp_path / "s") == whole(tmp_path / "r", data, layout)


def test_blocks_across_slabs_and_two_regions_store_what_a_whole_write_does(
    tmp_path: Path,
) -> None:
    layout = {"format": "zarr", "dims": ("t", "c", "y", "x"), "chunks": (4, 1, 16, 16)}
    url = str(tmp_path / "s")
    ba.create(url, shape=(0, 2, 24, 40), dtype="uint16", compression=None, **layout).close()
    data = np.stack([camera(11, (24, 40), seed=c) for c in (0, 1)], axis=1)
    streams = [ba.stream(ba.open(url, mode="r+"), axis="t", region={"c": c}) for c in (0, 1)]
    for a, b in [(0, 3), (3, 9), (9, 11)]:  # blocks that begin and end inside slabs
        for c, s in enumerate(streams):
            s.append(data[a:b, c])
    for s in streams:
        s.close()
    np.testing.assert_array_equal(ba.open(url)[...], data)
    assert stored(tmp_path / "s") == whole(tmp_path / "r", data, layout)


def test_a_slab_of_many_chunks_holds_no_file_open_between_frames(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(streaming_in_place, "MAX_OPEN", 3)
    data = camera(6, (40, 50))  # 12 chunks per slab
    url = str(tmp_path / "s")

    def values_open() -> int:
        """Files of values being written that this process holds open."""
        targets = []
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):
                targets.append(os.readlink(f"/proc/self/fd/{fd}"))
        # A key's lock file, not a value's, even once removed ("... (deleted)").
        return sum(t.startswith(url) and ".bigarrays-tmp-" in t and ".bigarrays-tmp-lock" not in t
                   for t in targets)  # fmt: skip

    with ba.stream(url, axis="t", shape=(40, 50), dtype="uint16", compression=None,
                   **T_Y_X) as s:  # fmt: skip
        for frame in data:
            s.append(frame)
            assert values_open() <= 1  # one, while the writer publishes a slab's chunks
    assert stored(tmp_path / "s") == whole(tmp_path / "r", data, T_Y_X)


# -- unseen until published, nothing left behind ---------------------------------------------
def test_frames_stay_unseen_until_their_slab_is_whole(tmp_path: Path) -> None:
    url = tmp_path / "s"
    data = camera(8, (16, 16))
    with ba.stream(str(url), axis="t", shape=(16, 16), dtype="uint16", compression=None,
                   **T_Y_X) as s:  # fmt: skip
        s.append(data[:4])
        s.append(data[4:6])
        # The first slab is published (or about to be); the second's frames are in a temp file
        # that no listing shows and that the chunk's key does not name.
        keys = set(open_store(str(url)).list(""))
        assert "c/1/0/0" not in keys
        assert not [k for k in keys if "tmp" in k]
        assert any(".bigarrays-tmp-" in p.name for p in url.rglob("*"))
        s.append(data[6:])
    assert stored(url) == whole(tmp_path / "r", data, T_Y_X)


def test_an_aborted_stream_leaves_no_temp_file(tmp_path: Path) -> None:
    url = tmp_path / "s"
    s = ba.stream(str(url), axis="t", shape=(16, 16), dtype="uint16", compression=None, **T_Y_X)
    s.append(camera(6, (16, 16)))
    s.abort()
    assert not [p for p in url.rglob("*") if ".bigarrays-tmp-" in p.name]
    assert ba.open(str(url)).shape[0] in (0, 4)


def one_slab_checkpointed(url: Path, data: np.ndarray, **options: Any) -> Stream:
    """A stream of ``data``'s frames (16 x 16) to ``url`` whose first slab of four is stored and
    checkpointed."""
    s = ba.stream(str(url), axis="t", shape=(16, 16), dtype="uint16", compression=None,
                  checkpoint_seconds=0, **T_Y_X, **options)  # fmt: skip
    s.append(data[:4])
    deadline = time.monotonic() + 30
    while s.stats.checkpointed < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    return s


def test_a_disk_that_fills_up_fails_the_append_and_leaves_the_last_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = tmp_path / "s"
    data = camera(12, (16, 16))
    s = one_slab_checkpointed(url, data)
    pwrite = os.pwrite

    def full(fd: int, data: Any, offset: int) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "pwrite", full)
    with pytest.raises(StreamWriteError, match="no space left on device"):
        s.append(data[4])
    with pytest.raises(StreamWriteError):
        s.append(data[5])
    monkeypatch.setattr(os, "pwrite", pwrite)
    with pytest.raises(StreamWriteError):
        s.close()
    assert not [p for p in url.rglob("*") if ".bigarrays-tmp-" in p.name]
    got = ba.open(str(url))
    assert got.shape == (4, 16, 16)
    np.testing.assert_array_equal(got[...], data[:4])


def test_a_failure_drops_the_slabs_no_writer_took(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Both writers hold a slab (their publishes wait), a third slab waits in the queue, and
    # the append of a fourth fails: the queued slab's files go with the stream.
    url = tmp_path / "s"
    release, started = threading.Event(), threading.Semaphore(0)
    publish = InPlaceSlab.publish

    def held(slab: InPlaceSlab, now: Any) -> None:
        started.release()
        release.wait(30)
        publish(slab, now)

    monkeypatch.setattr(InPlaceSlab, "publish", held)
    data = camera(13, (16, 16))
    s = ba.stream(str(url), axis="t", shape=(16, 16), dtype="uint16", compression=None, **T_Y_X)
    s.append(data[:8])
    assert started.acquire(timeout=30)
    assert started.acquire(timeout=30)
    s.append(data[8:12])
    assert len(s._queue) == 1

    def full(fd: int, data: Any, offset: int) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as patched:
        patched.setattr(os, "pwrite", full)
        with pytest.raises(StreamWriteError, match="no space left on device"):
            s.append(data[12])
    release.set()
    with pytest.raises(StreamWriteError):
        s.close()
    assert not [p for p in url.rglob("*") if ".bigarrays-tmp-" in p.name]
    assert ba.open(str(url)).shape[0] in (0, 4, 8)


def test_compressed_or_remote_levels_keep_their_slabs_in_memory(tmp_path: Path) -> None:
    with ba.stream(str(tmp_path / "z"), axis="t", shape=(16, 16), dtype="uint16",
                   compression="zstd", **T_Y_X) as s:  # fmt: skip
        s.append(camera(1, (16, 16)))
        assert isinstance(s._slab, ChunkSlab)
    with ba.stream("memory://in-place-raw", axis="t", shape=(16, 16), dtype="uint16",
                   compression=None, **T_Y_X) as s:  # fmt: skip
        s.append(camera(1, (16, 16)))
        assert isinstance(s._slab, ChunkSlab)


# -- the store's values written at offsets --------------------------------------------------
def test_a_value_written_at_offsets_is_published_whole(tmp_path: Path) -> None:
    store = open_store(str(tmp_path))
    old = store.put("a/b", b"old")
    value = store.open_value("a/b")
    value.write_at(4, b"tail")
    value.write_at(0, b"head")
    value.release()  # a later write opens it again
    assert value.read_at(2, 4) == b"adta"
    assert store.get("a/b") == b"old"
    assert sorted(store.list("a")) == ["a/b"]
    value.write_at(8, b"!!")
    value.truncate(9)
    version = value.publish()
    assert store.get("a/b") == b"headtail!"
    assert store.get_with_version("a/b") == (b"headtail!", version)
    assert version != old
    value.discard()  # after a publish: nothing to drop
    assert store.get("a/b") == b"headtail!"
    assert [p.name for p in tmp_path.rglob("*") if ".bigarrays-tmp-" in p.name] == []


def test_a_discarded_value_keeps_the_old_one(tmp_path: Path) -> None:
    store = open_store(str(tmp_path))
    store.put("k", b"old")
    value = store.open_value("k")
    value.write_at(0, b"new value")
    value.discard()
    assert store.get("k") == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["k"]


def test_a_value_at_offsets_keeps_keys_inside_the_root(tmp_path: Path) -> None:
    from bigarrays.errors import KeyOutsideRootError

    store = open_store(str(tmp_path / "root"))
    with pytest.raises(KeyOutsideRootError):
        store.open_value("../outside")


def test_stores_that_cannot_write_at_offsets_say_so() -> None:
    store = open_store("memory://no-offsets")
    assert not store.writes_at_offsets
    with pytest.raises(UnsupportedError, match="cannot write a value at offsets"):
        store.open_value("k")


KILLED_CHILD = """
import numpy as np
import bigarrays as ba
s = ba.stream({url!r}, axis="t", shape=(40, 50), dtype="uint16", compression=None,
              format="zarr", dims=("t", "y", "x"), chunks=(4, 16, 16), checkpoint_seconds=0)
for i in range(100000):
    s.append(np.full((40, 50), i % 60000 + 1, np.uint16))
    if i % 4 == 0:
        print(s.stats.checkpointed, flush=True)
"""


def test_a_killed_writer_loses_nothing_before_its_checkpoint_and_resumes(tmp_path: Path) -> None:
    url = tmp_path / "run"
    kill_once_checkpointed(KILLED_CHILD.format(url=str(url)), 40)
    n = ba.open(str(url)).shape[0]
    assert n >= 40
    assert n % 4 == 0
    expected = np.arange(1, n + 10, dtype=np.uint16)[:, None, None] * np.ones((40, 50), np.uint16)
    np.testing.assert_array_equal(ba.open(str(url))[...], expected[:n])
    with ba.stream(str(url), axis="t", resume=True) as s:
        assert s.position == n
        s.append(expected[n:])
    np.testing.assert_array_equal(ba.open(str(url))[...], expected)
    published = {k: v for k, v in stored(url).items() if ".bigarrays-tmp-" not in k}
    assert published == whole(tmp_path / "r", expected, T_Y_X)


def test_with_fsync_a_checkpoint_flushes_the_chunks_published_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = tmp_path / "s"
    flushed: list[str] = []
    fsync = os.fsync

    def spy(fd: int) -> None:
        flushed.append(os.readlink(f"/proc/self/fd/{fd}"))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    data = camera(8, (16, 32))
    with ba.stream(str(url), axis="t", shape=(16, 32), dtype="uint16", compression=None,
                   fsync=True, **T_Y_X) as s:  # fmt: skip
        s.append(data)
    chunks = {str(url / "c" / str(t) / "0" / str(x)) for t in (0, 1) for x in (0, 1)}
    assert chunks <= set(flushed)
    assert stored(url) == whole(tmp_path / "r", data, T_Y_X)


def test_a_failing_fsync_fails_the_stream_and_the_checkpoint_stays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = tmp_path / "s"
    data = camera(12, (16, 16))
    s = one_slab_checkpointed(url, data, fsync=True)

    def broken(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    def acquire() -> None:
        s.append(data[4:])
        s.close()

    with monkeypatch.context() as patched:
        patched.setattr(os, "fsync", broken)
        with pytest.raises(StreamWriteError, match="Input/output error"):
            acquire()
    with contextlib.suppress(StreamWriteError):  # if the append failed before the close
        s.close()
    assert not [p for p in url.rglob("*") if ".bigarrays-tmp-" in p.name]
    got = ba.open(str(url))
    assert got.shape == (4, 16, 16)
    np.testing.assert_array_equal(got[...], data[:4])


# -- precomputed: raw chunks in Fortran order, edge chunks clipped -------------------------------
def precomputed_stored(path: Path) -> dict[str, bytes]:
    return {k: v for k, v in stored(path).items() if k not in ("info", "provenance")}


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("frames", [16, 13, 3], ids=["whole-slabs", "short-last-slab", "short"])
def test_precomputed_streamed_in_place_stores_what_a_whole_write_does(
    tmp_path: Path, channels: int, frames: int
) -> None:
    # (x, y, z[, c]) streamed along z: a frame is one run of each chunk per channel; edge chunks
    # along x and y are clipped, and a slab cut short is stored under its clipped names.
    shape = (40, 50) if channels == 1 else (40, 50, channels)
    many = {} if channels == 1 else {"num_channels": channels}
    data = camera(frames, shape, dtype="uint16")
    data[:8, :16, :16] = 0  # a chunk all fill: left out
    volume = np.moveaxis(data, 0, 2)
    url = str(tmp_path / "s")
    with ba.stream(url, axis="z", shape=(40, 50), dtype="uint16", chunks=(16, 16, 8),
                   compression=None, **many) as s:  # fmt: skip
        for frame in data:
            s.append(frame)
            assert isinstance(s._slab, InPlaceSlab | None)
    np.testing.assert_array_equal(ba.open(url)[...], volume)
    ref = ba.create(str(tmp_path / "r"), shape=volume.shape[:3], dtype="uint16",
                    chunks=(16, 16, 8), compression=None, skip_empty=True, **many)  # fmt: skip
    ref[...] = volume
    assert precomputed_stored(tmp_path / "s") == precomputed_stored(tmp_path / "r")
    from cloudvolume import CloudVolume

    got = CloudVolume(f"file://{url}", progress=False, fill_missing=True)[...]
    np.testing.assert_array_equal(got.reshape(volume.shape), volume)


def test_a_resumed_precomputed_stream_stores_what_a_whole_write_does(tmp_path: Path) -> None:
    data = camera(21, (40, 50))
    url = str(tmp_path / "s")
    with ba.stream(url, axis="z", shape=(40, 50), dtype="uint16", chunks=(16, 16, 8),
                   compression=None) as s:  # fmt: skip
        s.append(np.moveaxis(data[:11], 0, 2))  # ends inside a slab: stored clipped, then renamed
    with ba.stream(url, axis="z", resume=True) as s:
        assert isinstance(s._slab, InPlaceSlab)
        s.append(np.moveaxis(data[11:], 0, 2))
    volume = np.moveaxis(data, 0, 2)
    np.testing.assert_array_equal(ba.open(url)[...], volume)
    ref = ba.create(str(tmp_path / "r"), shape=volume.shape, dtype="uint16", chunks=(16, 16, 8),
                    compression=None, skip_empty=True)  # fmt: skip
    ref[...] = volume
    assert precomputed_stored(tmp_path / "s") == precomputed_stored(tmp_path / "r")


def test_compressed_or_sharded_precomputed_keeps_its_slabs_in_memory(tmp_path: Path) -> None:
    for name, options in [("gzip", {"compression": "gzip"}),
                          ("sharded", {"compression": None, "sharding": True,
                                       "max_shape": (40, 50, 64)})]:  # fmt: skip
        with ba.stream(str(tmp_path / name), axis="z", shape=(40, 50), dtype="uint16",
                       chunks=(16, 16, 8), **options) as s:  # fmt: skip
            s.append(camera(1, (40, 50))[0])
            assert isinstance(s._slab, np.ndarray)


@pytest.mark.parametrize("compression", [None, "gzip"], ids=["raw-in-place", "gzip-in-memory"])
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32", "uint64"])
def test_precomputed_camera_frames_are_transposed_word_by_word(
    tmp_path: Path, dtype: str, compression: str | None
) -> None:
    # Parts of 256 x 256: large enough for the compiled C-to-Fortran copy (8-byte values take
    # NumPy's), into the chunk files (raw, in place) or into a Fortran-ordered slab in memory
    # (gzip); frames given C-ordered, as cameras and NumPy give them.
    data = camera(6, (512, 300), dtype=dtype)
    volume = np.moveaxis(data, 0, 2)
    url = str(tmp_path / "s")
    with ba.stream(url, axis="z", shape=(512, 300), dtype=dtype, chunks=(256, 256, 4),
                   compression=compression) as s:  # fmt: skip
        for frame in data:
            s.append(frame)
        assert isinstance(s._slab, InPlaceSlab if compression is None else np.ndarray)
    np.testing.assert_array_equal(ba.open(url)[...], volume)
    from cloudvolume import CloudVolume

    got = CloudVolume(f"file://{url}", progress=False)[...]
    np.testing.assert_array_equal(got.reshape(volume.shape), volume)
    if compression is None:
        ref = ba.create(str(tmp_path / "r"), shape=volume.shape, dtype=dtype,
                        chunks=(256, 256, 4), compression=None, skip_empty=True)  # fmt: skip
        ref[...] = volume
        assert precomputed_stored(tmp_path / "s") == precomputed_stored(tmp_path / "r")


def test_raw_zarr_v2_slabs_in_memory_are_put_as_they_lie(monkeypatch: pytest.MonkeyPatch) -> None:
    # On a store without writes at offsets a raw v2 slab is kept as chunks, each put from the
    # slab's own memory (no encode), storing the bytes a whole write stores.
    from bigarrays.codecs.zarr_v2 import V2Chain

    def no_encode(self: V2Chain, chunk: np.ndarray) -> bytes:
        raise AssertionError("a raw v2 chunk of a slab was encoded")

    data = camera(11, (40, 50))
    layout = LAYOUTS["zarr2"]
    with monkeypatch.context() as patched:
        patched.setattr(V2Chain, "encode", no_encode)
        with ba.stream("memory://v2-as-they-lie", axis="t", shape=(40, 50), dtype="uint16",
                       compression=None, **layout) as s:  # fmt: skip
            s.append(data[:7])
            assert isinstance(s._slab, ChunkSlab)
            s.append(data[7])
        # The last three frames are cut from the slab by the engine, which encodes them.
    with ba.stream("memory://v2-as-they-lie", axis="t", resume=True) as s:
        s.append(data[8:])
    ref = ba.create("memory://v2-whole", shape=data.shape, dtype="uint16", compression=None,
                    skip_empty=True, **layout)  # fmt: skip
    ref[...] = data

    def chunks(url: str) -> dict[str, bytes | None]:
        store = open_store(url)
        return {k: store.get(k) for k in store.list("") if k.split("/")[-1] not in METADATA}

    assert chunks("memory://v2-as-they-lie") == chunks("memory://v2-whole")
    assert len(chunks("memory://v2-whole")) == 36
