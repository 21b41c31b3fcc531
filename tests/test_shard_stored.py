"""Reads of zstd-compressed sharded Zarr arrays on a local folder: each inner chunk's stored
bytes go into a buffer of the reading thread's and are decoded from there, held to the version
of the index that placed them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import bigarrays as ba
from bigarrays.errors import CorruptChunkError
from bigarrays.formats.zarr import chunks as zarr_chunks
from bigarrays.formats.zarr.sharded_chunks import ShardedZarrChunks


def _sharded(path: Path, shape: tuple[int, ...], inner: tuple[int, ...], dtype: str,
             **options: Any) -> ba.BigArray:  # fmt: skip
    per = tuple(min(2, -(-n // i)) for n, i in zip(shape, inner, strict=True))
    shard = tuple(i * p for i, p in zip(inner, per, strict=True))
    options = {"compression": "zstd", **options}
    return ba.create(path, shape=shape, dtype=dtype, chunks=shard, progress=False,
                     sharding={"chunk_shape": list(inner)}, **options)  # fmt: skip


def _source(vol: ba.BigArray) -> ShardedZarrChunks:
    source = vol.level.source
    assert isinstance(source, ShardedZarrChunks)
    return source


@pytest.mark.parametrize("threads", [1, 3])
def test_reads_decode_from_the_threads_buffers(tmp_path: Path, threads: int) -> None:
    shape = (30, 26, 22)
    rng = np.random.default_rng(3)
    model = rng.integers(0, 4000, shape).astype(np.uint16)
    vol = _sharded(tmp_path / "a.zarr", shape, (4, 4, 4), "uint16")
    vol[...] = model
    vol[4:8, 0:4, 0:4] = 0  # an absent inner chunk
    model[4:8, 0:4, 0:4] = 0
    reader = ba.open(tmp_path / "a.zarr", threads=threads)
    source = _source(reader)
    assert source.stored_in_place
    source.store._get_spans = None  # type: ignore[assignment,method-assign]  # any use fails
    for box in [np.s_[1:29, 2:25, 3:21], np.s_[5:7, 1:3, 2:4], np.s_[...], np.s_[0:8, 0:8, 0:8]]:
        np.testing.assert_array_equal(reader[box], model[box])


def test_only_zstd_chains_on_local_files_read_into_buffers(tmp_path: Path) -> None:
    assert _source(_sharded(tmp_path / "z.zarr", (16, 16), (4, 4), "uint8")).stored_in_place
    raw = ba.create(tmp_path / "r.zarr", shape=(16, 16), dtype="uint8", chunks=(8, 8),
                    progress=False, sharding={"chunk_shape": [4, 4]})  # fmt: skip
    assert not _source(raw).stored_in_place
    gz = ba.create(tmp_path / "gz.zarr", shape=(16, 16), dtype="uint8", chunks=(8, 8),
                   progress=False, compression="gzip",
                   sharding={"chunk_shape": [4, 4]})  # fmt: skip
    assert not _source(gz).stored_in_place
    memory = ba.create("memory://stored", shape=(16, 16), dtype="uint8", chunks=(8, 8),
                       format="zarr", compression="zstd",
                       sharding={"chunk_shape": [4, 4]})  # fmt: skip
    assert not _source(memory).stored_in_place


def test_chunks_stored_larger_than_the_buffer_are_read_the_ordinary_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = np.random.default_rng(1).integers(0, 255, (16, 16)).astype(np.uint8)
    vol = _sharded(tmp_path / "a.zarr", (16, 16), (8, 8), "uint8")
    vol[...] = model
    monkeypatch.setattr(zarr_chunks, "stored_buffer_bytes", lambda n: 8)
    reader = ba.open(tmp_path / "a.zarr")
    np.testing.assert_array_equal(reader[3:13, 2:15], model[3:13, 2:15])


def test_a_shard_cut_short_under_its_index_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "a.zarr"
    vol = ba.create(path, shape=(16, 16), dtype="uint8", chunks=(16, 16), progress=False,
                    compression="zstd",
                    sharding={"chunk_shape": [8, 8], "index_location": "start"})  # fmt: skip
    vol[...] = np.arange(256, dtype=np.uint8).reshape(16, 16)
    shard = path / "c" / "0" / "0"
    shard.write_bytes(shard.read_bytes()[:-5])
    reader = ba.open(path)
    assert _source(reader).stored_in_place
    with pytest.raises(CorruptChunkError, match="shorter than its index"):
        reader[12:16, 12:16]


def test_few_chunks_are_decoded_one_per_task_and_many_in_batches(tmp_path: Path) -> None:
    model = np.random.default_rng(2).integers(0, 255, (32, 32, 32)).astype(np.uint8)
    vol = _sharded(tmp_path / "a.zarr", (32, 32, 32), (4, 4, 4), "uint8")
    vol[...] = model
    reader = ba.open(tmp_path / "a.zarr", threads=3)
    store = _source(reader).store
    reader[...]  # the shard indexes, read once and cached
    calls: list[int] = []
    original = store.read_ranges_into

    def spy(key: str, ranges: Any, *args: Any) -> bool:
        calls.append(len(ranges))
        return original(key, ranges, *args)

    store.read_ranges_into = spy  # type: ignore[method-assign]
    np.testing.assert_array_equal(reader[1:3, 1:3, 2:10], model[1:3, 1:3, 2:10])
    assert calls == [1, 1, 1]
    calls.clear()
    np.testing.assert_array_equal(reader[1:31, 2:30, 3:29], model[1:31, 2:30, 3:29])
    assert sum(calls) == 8 * 8 * 8
    assert max(calls) == 8


@pytest.mark.parametrize("compression", ["zstd", None])
def test_chunks_loaded_one_after_another_keep_their_voxels(
    tmp_path: Path, compression: str | None
) -> None:
    # Inner chunks are decoded (zstd) or read (raw) into a buffer the thread reuses: a chunk
    # that ``load`` returns is the caller's own, not a view the next load overwrites.
    model = np.arange(16 * 16, dtype=np.uint8).reshape(16, 16)
    vol = _sharded(tmp_path / "a.zarr", (16, 16), (8, 8), "uint8", compression=compression)
    vol[...] = model
    source = _source(ba.open(tmp_path / "a.zarr"))
    first, second = source.load((0, 0)), source.load((1, 1))
    assert first is not None
    assert second is not None
    np.testing.assert_array_equal(first, model[:8, :8])
    np.testing.assert_array_equal(second, model[8:, 8:])
