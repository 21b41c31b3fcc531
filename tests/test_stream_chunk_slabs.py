"""Slabs of a Zarr array kept as their chunks (``bigarrays.streaming_shards``), sharded or
not: streams of part of the array, resumed streams, chunks of fill and edge chunks store the
bytes a whole write stores."""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import bigarrays as ba
from bigarrays import streaming_shards
from bigarrays.errors import StreamWriteError
from bigarrays.stores import file as file_store
from bigarrays.streaming_shards import ChunkSlab

SHARDED: dict[str, Any] = {
    "format": "zarr",
    "chunks": (4, 1, 16, 16),
    "sharding": {"chunk_shape": [2, 1, 8, 8]},
    "dims": ("t", "c", "y", "x"),
}
UNSHARDED: dict[str, Any] = {k: v for k, v in SHARDED.items() if k != "sharding"}
LAYOUTS = pytest.mark.parametrize(
    ("compression", "layout"),
    [(None, SHARDED), ("zstd", SHARDED), (None, UNSHARDED), ("zstd", UNSHARDED)],
    ids=["sharded-raw", "sharded-zstd", "raw", "zstd"],
)


def frames(n: int, shape: tuple[int, ...], start: int = 0) -> np.ndarray:
    rng = np.random.default_rng(start)
    out = rng.integers(1, 60000, size=(n, *shape), dtype=np.uint16)
    out[4:8] = 0  # chunks of fill: left out (of their shards), or deleted (skip_empty)
    return out


def stored(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*")
            if p.is_file() and p.name != "zarr.json"}  # fmt: skip


def whole(
    path: Path, data: np.ndarray, compression: str | None, layout: dict[str, Any]
) -> dict[str, bytes]:
    ref = ba.create(str(path), shape=data.shape, dtype="uint16", compression=compression,
                    skip_empty="sharding" not in layout, **layout)  # fmt: skip
    ref[...] = data
    ref.close()
    return stored(path)


@LAYOUTS
def test_two_cameras_on_channels_store_what_a_whole_write_does(
    tmp_path: Path, compression: str | None, layout: dict[str, Any]
) -> None:
    url = tmp_path / "s"
    ba.create(str(url), shape=(0, 2, 24, 40), dtype="uint16", compression=compression,
              **layout).close()  # fmt: skip
    data = np.stack([frames(11, (24, 40), start=c) for c in (0, 1)], axis=1)
    streams = [ba.stream(ba.open(str(url), mode="r+"), axis="t", region={"c": c})
               for c in (0, 1)]  # fmt: skip
    for t in range(11):
        for c, s in enumerate(streams):
            s.append(data[t, c])
    for s in streams:
        s.close()
    got = ba.open(str(url))
    np.testing.assert_array_equal(got[...], data)
    assert stored(url) == whole(tmp_path / "r", data, compression, layout)


@LAYOUTS
def test_a_resumed_stream_stores_what_a_whole_write_does(
    tmp_path: Path, compression: str | None, layout: dict[str, Any]
) -> None:
    url = str(tmp_path / "s")
    data = frames(13, (2, 24, 40))
    with ba.stream(url, axis="t", shape=(2, 24, 40), dtype="uint16", compression=compression,
                   **layout) as s:  # fmt: skip
        s.append(data[:5])  # ends inside a slab: resumed, it is read back into chunks
    with ba.stream(url, axis="t", resume=True) as s:
        for f in data[5:]:
            s.append(f)
    np.testing.assert_array_equal(ba.open(url)[...], data)
    assert stored(tmp_path / "s") == whole(tmp_path / "r", data, compression, layout)


def test_a_chunk_slab_round_trips_blocks_at_any_offset() -> None:
    slab = ChunkSlab((6, 10, 7), (4, 3, 5), np.dtype("int32"), 9)
    assert slab.data.shape == (2, 4, 2, 4, 3, 5)
    model = np.full((6, 10, 7), 9, np.int32)
    rng = np.random.default_rng(3)
    for _ in range(20):
        at = [int(rng.integers(0, n)) for n in model.shape]
        size = [int(rng.integers(1, n - a + 1)) for a, n in zip(at, model.shape, strict=True)]
        block = rng.integers(0, 1000, size=size, dtype=np.int32)
        slab.put(block, at)
        model[tuple(slice(a, a + n) for a, n in zip(at, size, strict=True))] = block
    np.testing.assert_array_equal(slab.logical(model.shape), model)
    np.testing.assert_array_equal(slab.logical((3, 4, 5)), model[:3, :4, :5])
    # Past the voxels, edge chunks hold the fill value (what Zarr pads them with).
    assert (slab.data[1, 3, 1][2:, 1:, 2:] == 9).all()


def test_a_slab_lies_in_private_memory() -> None:
    # A shared anonymous mapping is shmem: each page costs the kernel a page cache entry on the
    # first touch and on the free, a quarter of a sharded raw stream's system time.
    slab = ChunkSlab((4, 64, 64), (2, 32, 32), np.dtype(np.uint16), 0)
    address = slab.data.__array_interface__["data"][0]
    for line in Path("/proc/self/maps").read_text().splitlines():
        span, perms = line.split()[:2]
        low, high = (int(v, 16) for v in span.split("-"))
        if low <= address < high:
            assert perms.endswith("p"), line
            return
    raise AssertionError(f"no mapping holds the slab at {address:#x}")


# -- compressed shards put while their chunks are encoded ------------------------------------------
STREAMED: dict[str, Any] = {
    "format": "zarr",
    "dims": ("t", "y", "x"),
    "chunks": (4, 32, 32),
    "sharding": {"chunk_shape": [4, 16, 16]},  # four inner chunks per shard, a shard per slab
}


def _encoders_counted(monkeypatch: pytest.MonkeyPatch, before: Any) -> list[int]:
    """Wrap the slab chunks' encoder so that ``before(n)`` runs before the n-th encode (from 1);
    the calls made."""
    calls: list[int] = []
    lock = threading.Lock()
    make = streaming_shards._encoder

    def encoder(chain: Any, dtype: np.dtype) -> Any:
        encode = make(chain, dtype)

        def counted(chunk: np.ndarray) -> Any:
            with lock:
                calls.append(len(calls) + 1)
                n = len(calls)
            before(n)
            return encode(chunk)

        return counted

    monkeypatch.setattr(streaming_shards, "_encoder", encoder)
    return calls


def test_a_compressed_shard_is_written_while_its_last_chunks_are_encoded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The last chunk's encode waits for the shard's first bytes to reach the file: a put that
    # began only once every chunk was encoded would leave it waiting out its timeout.
    written = threading.Event()
    write_all = file_store.write_all

    def spy(fd: int, view: memoryview) -> None:
        write_all(fd, view)
        if "zarr.json" not in os.readlink(f"/proc/self/fd/{fd}"):  # a shard, not the metadata
            written.set()

    monkeypatch.setattr(file_store, "write_all", spy)
    waited: list[bool] = []
    _encoders_counted(monkeypatch, lambda n: n == 4 and waited.append(written.wait(10)))
    url = str(tmp_path / "s")
    data = frames(4, (32, 32))
    with ba.stream(url, axis="t", shape=(32, 32), dtype="uint16", compression="zstd",
                   **STREAMED) as s:  # fmt: skip
        s.append(data)
    assert waited == [True]
    np.testing.assert_array_equal(ba.open(url)[...], data)
    assert stored(tmp_path / "s") == whole(tmp_path / "r", data, "zstd", STREAMED)


def test_a_failing_encode_stores_no_shard_and_leaves_no_file_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(n: int) -> None:
        if n == 3:
            raise RuntimeError("the encoder failed")

    _encoders_counted(monkeypatch, fail)
    _a_slab_fails_to_be_written(tmp_path / "s", "encoder failed")


def test_a_disk_that_fills_up_mid_shard_stores_no_shard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_all = file_store.write_all
    parts: list[int] = []

    def full(fd: int, view: memoryview) -> None:
        parts.append(len(view))
        if len(parts) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        write_all(fd, view)

    monkeypatch.setattr(file_store, "write_all", full)
    _a_slab_fails_to_be_written(tmp_path / "s", "no space left on device")


def _a_slab_fails_to_be_written(url: Path, match: str) -> None:
    """Stream one slab, whose write fails with ``match``: nothing but the metadata stays."""
    s = ba.stream(str(url), axis="t", shape=(32, 32), dtype="uint16", compression="zstd",
                  **STREAMED)  # fmt: skip
    s.append(frames(4, (32, 32)))
    with pytest.raises(StreamWriteError, match=match):
        s.close()
    assert sorted(p.name for p in url.rglob("*") if p.is_file()) == ["zarr.json"]
    assert ba.open(str(url)).shape == (0, 32, 32)
