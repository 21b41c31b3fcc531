"""Whole Zarr shards put while their chunks are encoded (``bigarrays.formats.shards_in_turn``):
the same bytes as zarr-python's, the put under way before the last chunk is encoded, and a
failure on either side that stores nothing and keeps the old shard."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import bigarrays as ba
from bigarrays.formats import shard_writes
from bigarrays.formats.zarr.sharded_chunks import ShardedZarrChunks
from bigarrays.stores import file as file_store
from bigarrays.stores.file import FileStore

zarr = pytest.importorskip("zarr")


@pytest.fixture
def in_turn(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every write of whole shards goes in turn, however small; the keys put so."""
    monkeypatch.setattr(shard_writes, "MIN_BYTES_IN_TURN", 0)
    keys: list[str] = []
    put = FileStore._put_parts_in_turn

    def spy(self: FileStore, key: str, *args: Any) -> Any:
        keys.append(key)
        return put(self, key, *args)

    monkeypatch.setattr(FileStore, "_put_parts_in_turn", spy)
    return keys


def _stored(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*")
            if p.is_file() and p.name != "zarr.json"}  # fmt: skip


@pytest.mark.parametrize("compression", [None, "zstd"])
def test_shards_put_in_turn_are_zarr_pythons_bytes(
    tmp_path: Path, in_turn: list[str], compression: str | None
) -> None:
    shape, shard, inner = (20, 13, 9), (8, 8, 4), (4, 2, 2)
    ours = tmp_path / "ours.zarr"
    vol = ba.create(ours, shape=shape, dtype="uint16", chunks=shard, compression=compression,
                    sharding={"chunk_shape": inner})  # fmt: skip
    data = np.random.default_rng(1).integers(1, 900, shape).astype(np.uint16)
    data[0:4, 0:2, 0:2] = 0  # an inner chunk of fill: left out
    data[8:16, 8:13, 4:8] = 0  # a shard of fill: not stored
    vol[...] = data
    theirs = tmp_path / "theirs.zarr"
    theirs.mkdir()
    (theirs / "zarr.json").write_bytes((ours / "zarr.json").read_bytes())
    zarr.open_array(str(theirs), mode="r+")[:] = data
    np.testing.assert_array_equal(zarr.open_array(str(ours))[:], data)
    assert in_turn  # the whole shards went in turn (the edge ones too: whole within the array)
    assert "c/1/1/1" not in _stored(ours)
    assert _stored(ours) == _stored(theirs)


def test_whole_and_partial_shards_of_one_write(tmp_path: Path, in_turn: list[str]) -> None:
    vol = ba.create(tmp_path / "a.zarr", shape=(32, 16, 8), dtype="int32", chunks=(8, 16, 8),
                    sharding={"chunk_shape": [4, 4, 4]}, compression="zstd",
                    fill_value=-1)  # fmt: skip
    model = np.full((32, 16, 8), -1, np.int32)
    vol[...] = model + 2
    model[...] = 1
    vol[4:30, :, :] = 7  # shards 1 and 2 whole, 0 and 3 in part (merged with what is stored)
    model[4:30] = 7
    np.testing.assert_array_equal(vol[...], model)
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "a.zarr"))[:], model)
    assert in_turn[-2:] == ["c/1/0/0", "c/2/0/0"]


def test_the_index_at_the_start_is_put_at_once(tmp_path: Path, in_turn: list[str]) -> None:
    vol = ba.create(tmp_path / "a.zarr", shape=(16, 16), dtype="uint8", chunks=(8, 8),
                    sharding={"chunk_shape": [4, 4], "index_location": "start"})  # fmt: skip
    vol[...] = 3
    assert in_turn == []
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "a.zarr"))[:], 3)


def test_a_large_write_goes_in_turn_by_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    puts: list[str] = []
    put = FileStore._put_parts_in_turn
    monkeypatch.setattr(FileStore, "_put_parts_in_turn",
                        lambda self, key, *a: puts.append(key) or put(self, key, *a))  # fmt: skip
    vol = ba.create(tmp_path / "a.zarr", shape=(256, 256, 128), dtype="uint8",
                    chunks=(256, 256, 128), sharding={"chunk_shape": [64, 64, 64]},
                    compression="zstd")  # fmt: skip
    data = np.random.default_rng(2).integers(0, 9, (256, 256, 128), dtype=np.uint8)
    vol[...] = data  # 8 MiB: MIN_BYTES_IN_TURN
    assert puts == ["c/0/0/0"]
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "a.zarr"))[:], data)


def _slow_last_chunk(monkeypatch: pytest.MonkeyPatch, before_last: Any, chunks: int) -> None:
    """Run ``before_last()`` before the encoding of the write's last chunk."""
    calls: list[int] = []
    lock = threading.Lock()
    encode = ShardedZarrChunks.encode_chunk

    def counted(self: ShardedZarrChunks, chunk: np.ndarray) -> Any:
        with lock:
            calls.append(1)
            last = len(calls) == chunks
        if last:
            before_last()
        return encode(self, chunk)

    monkeypatch.setattr(ShardedZarrChunks, "encode_chunk", counted)


def test_the_put_is_under_way_before_the_last_chunk_is_encoded(
    tmp_path: Path, in_turn: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its last chunk's encode waits for the shard's first bytes in the file: a put that began
    # only once every chunk was encoded would leave it waiting out its timeout.
    written = threading.Event()
    write_all = file_store.write_all

    def spy(fd: int, view: memoryview) -> None:
        write_all(fd, view)
        if "zarr.json" not in os.readlink(f"/proc/self/fd/{fd}"):
            written.set()

    monkeypatch.setattr(file_store, "write_all", spy)
    waited: list[bool] = []
    _slow_last_chunk(monkeypatch, lambda: waited.append(written.wait(10)), 8)
    vol = ba.create(tmp_path / "a.zarr", shape=(16, 16, 16), dtype="uint8", chunks=(16, 16, 16),
                    sharding={"chunk_shape": [8, 8, 8]}, compression="zstd")  # fmt: skip
    data = np.random.default_rng(3).integers(1, 9, (16, 16, 16), dtype=np.uint8)
    vol[...] = data
    assert waited == [True]
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "a.zarr"))[:], data)


def _old_shard(tmp_path: Path) -> tuple[ba.BigArray, Path, bytes]:
    vol = ba.create(tmp_path / "a.zarr", shape=(16, 16, 16), dtype="uint8", chunks=(16, 16, 16),
                    sharding={"chunk_shape": [8, 8, 8]}, compression="zstd")  # fmt: skip
    vol[...] = 4
    shard = tmp_path / "a.zarr" / "c" / "0" / "0" / "0"
    return vol, shard, shard.read_bytes()


def test_a_failing_encode_keeps_the_old_shard(
    tmp_path: Path, in_turn: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    vol, shard, old = _old_shard(tmp_path)

    def fail() -> None:
        raise RuntimeError("the encoder failed")

    _slow_last_chunk(monkeypatch, fail, 8)
    with pytest.raises(RuntimeError, match="encoder failed"):
        vol[...] = 5
    assert shard.read_bytes() == old
    assert sorted(p.name for p in shard.parent.iterdir()) == ["0"]  # no file left behind
    np.testing.assert_array_equal(vol[...], 4)


def test_a_failing_put_keeps_the_old_shard(
    tmp_path: Path, in_turn: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    vol, shard, old = _old_shard(tmp_path)
    write_all = file_store.write_all
    parts: list[int] = []

    def full(fd: int, view: memoryview) -> None:
        parts.append(len(view))
        if len(parts) == 3:
            raise OSError(28, "No space left on device")
        write_all(fd, view)

    monkeypatch.setattr(file_store, "write_all", full)
    with pytest.raises(OSError, match="no space left on device"):
        vol[...] = 5
    assert shard.read_bytes() == old
    assert sorted(p.name for p in shard.parent.iterdir()) == ["0"]
    np.testing.assert_array_equal(vol[...], 4)
