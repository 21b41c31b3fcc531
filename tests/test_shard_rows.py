"""Small reads of raw sharded Zarr arrays on a local folder: each inner chunk's needed rows go
straight into a buffer through ``Store.read_ranges_into``, held to the index's version."""

from __future__ import annotations

import concurrent.futures as cf
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from google_crc32c import value as checksum
from hypothesis import given, settings
from hypothesis import strategies as st

import bigarrays as ba
from bigarrays.errors import CorruptChunkError, StaleReadError, UnsupportedError
from bigarrays.formats.zarr.sharded_chunks import ShardedZarrChunks
from bigarrays.pipeline import run_bounded
from bigarrays.stores import open_store
from bigarrays.stores.file import FileStore
from bigarrays.stores.memory import MemoryStore
from bigarrays.stores.versions import ANY_VERSION


def _sharded(path: Path, shape: tuple[int, ...], inner: tuple[int, ...], dtype: str,
             **options: Any) -> ba.BigArray:  # fmt: skip
    per = tuple(min(2, -(-n // i)) for n, i in zip(shape, inner, strict=True))
    shard = tuple(i * p for i, p in zip(inner, per, strict=True))
    return ba.create(path, shape=shape, dtype=dtype, chunks=shard, progress=False,
                     sharding={"chunk_shape": list(inner)}, **options)  # fmt: skip


def _source(vol: ba.BigArray) -> ShardedZarrChunks:
    source = vol.level.source
    assert isinstance(source, ShardedZarrChunks)
    return source


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_small_reads_agree_with_numpy(tmp_path_factory: pytest.TempPathFactory, data: Any) -> None:
    """Random small boxes (edge chunks, every axis count, a few dtypes) against NumPy, read by
    rows only: the path that reads whole ranges is made to fail."""
    ndim = data.draw(st.integers(1, 4))
    inner = tuple(data.draw(st.integers(1, 5)) for _ in range(ndim))
    shape = tuple(data.draw(st.integers(1, 3 * i + 2)) for i in inner)
    dtype = data.draw(st.sampled_from(["uint8", "int16", "float64", "complex64"]))
    model = (np.arange(int(np.prod(shape))) % 251).astype(dtype).reshape(shape) + 1
    path = tmp_path_factory.mktemp("rows") / "a.zarr"
    vol = _sharded(path, shape, inner, dtype, fill_value=0)
    vol[...] = model
    cut = tuple(data.draw(st.integers(0, n - 1)) for n in shape)
    if data.draw(st.booleans()):
        vol[tuple(slice(c, c + 1) for c in cut)] = 0  # an inner chunk may go absent
        model[tuple(slice(c, c + 1) for c in cut)] = 0
    reader = ba.open(path)
    source = _source(reader)
    assert source.rows_in_place
    source.store._get_spans = None  # type: ignore[assignment,method-assign]  # any use fails
    for _ in range(3):
        start = [data.draw(st.integers(0, n - 1)) for n in shape]
        # At most 2 x 2 x 2 chunks, a small request: axes past the third stay in one chunk.
        stop = [data.draw(st.integers(a + 1, min(n, a + i + 1 if k < 3 else (a // i + 1) * i)))
                for k, (a, n, i) in enumerate(zip(start, shape, inner, strict=True))]  # fmt: skip
        box = tuple(slice(a, b) for a, b in zip(start, stop, strict=True))
        np.testing.assert_array_equal(reader[box], model[box])


def test_rows_path_is_taken_for_small_local_raw_reads_only(tmp_path: Path) -> None:
    raw = _sharded(tmp_path / "raw.zarr", (64, 64), (8, 8), "uint8")
    assert _source(raw).rows_in_place
    assert _source(raw).inline_chunks == 8
    zstd = _sharded(tmp_path / "z.zarr", (64, 64), (8, 8), "uint8", compression="zstd")
    assert not _source(zstd).rows_in_place
    assert _source(zstd).inline_chunks == 1
    memory = ba.create("memory://rows", shape=(64, 64), dtype="uint8", chunks=(16, 16),
                       format="zarr", sharding={"chunk_shape": [8, 8]})  # fmt: skip
    assert not _source(memory).rows_in_place


def test_small_reads_take_only_the_rows_they_need(tmp_path: Path) -> None:
    vol = _sharded(tmp_path / "a.zarr", (32, 16, 16), (8, 8, 8), "uint16")
    vol[...] = np.arange(32 * 16 * 16, dtype=np.uint16).reshape(32, 16, 16)
    reader = ba.open(tmp_path / "a.zarr")
    store = _source(reader).store
    asked: list[tuple[int, int]] = []
    original = store.read_ranges_into

    def spy(key: str, ranges: Any, *args: Any) -> bool:
        asked.extend(ranges)
        return original(key, ranges, *args)

    store.read_ranges_into = spy  # type: ignore[method-assign]
    np.testing.assert_array_equal(reader[5:7, 0:3, 0:3], vol[5:7, 0:3, 0:3])
    row = 8 * 8 * 2
    assert [length for _, length in asked] == [2 * row]  # rows 5 and 6 of one 8³ chunk


def test_a_shard_cut_short_under_its_index_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "a.zarr"
    vol = ba.create(path, shape=(16, 16), dtype="uint8", chunks=(16, 16), progress=False,
                    sharding={"chunk_shape": [8, 8], "index_location": "start"})  # fmt: skip
    vol[...] = 3
    shard = path / "c" / "0" / "0"
    shard.write_bytes(shard.read_bytes()[:-20])  # the index at the start still says 64 bytes
    reader = ba.open(path)
    assert _source(reader).rows_in_place
    with pytest.raises(CorruptChunkError, match="shorter than its index"):
        reader[12:16, 12:16]


def test_a_raw_chunk_of_the_wrong_size_is_corrupt(tmp_path: Path) -> None:
    """An index entry whose length is not a raw inner chunk's: refused before any read."""
    path = tmp_path / "a.zarr"
    vol = ba.create(path, shape=(16, 16), dtype="uint8", chunks=(16, 16), progress=False,
                    sharding={"chunk_shape": [8, 8], "index_location": "start"})  # fmt: skip
    vol[...] = 3
    shard = path / "c" / "0" / "0"
    data = bytearray(shard.read_bytes())
    index = np.frombuffer(bytes(data[: 4 * 16]), "<u8").copy()
    index[1] = 63  # nbytes of inner chunk 0
    data[: 4 * 16] = index.tobytes()
    # The index codecs end with crc32c: the checksum follows the entries, so only the size is
    # wrong.
    data[4 * 16 : 4 * 16 + 4] = checksum(bytes(data[: 4 * 16])).to_bytes(4, "little")
    shard.write_bytes(bytes(data))
    reader = ba.open(path)
    with pytest.raises(CorruptChunkError, match="63 bytes"):
        reader[0:2, 0:2]


@pytest.mark.parametrize("compression", [None, "zstd"], ids=["rows", "stored"])
def test_a_rewritten_shard_is_read_again(tmp_path: Path, compression: str | None) -> None:
    """The index cached by one handle is stale after another rewrites the shard: the read of
    rows (raw) or of stored bytes (zstd) is refused at the old version and the chunks are read
    through the new index."""
    path = tmp_path / "a.zarr"
    with _sharded(path, (16, 16), (8, 8), "uint8", compression=compression) as writer:
        writer[...] = 1
    reader = ba.open(path)
    assert (reader[0:2, 0:2] == 1).all()
    with ba.open(path, mode="r+") as writer:
        writer[0:8, 0:8] = 0  # inner chunk 0 goes absent: every later offset moves
        writer[8:16, 8:16] = 7
    assert (reader[0:2, 0:2] == 0).all()
    assert (reader[9:11, 9:11] == 7).all()
    ones = np.ones((8, 8))
    expected = np.block([[0 * ones, ones], [ones, 7 * ones]])
    np.testing.assert_array_equal(reader[0:16, 0:16], expected)


# -- the store call ----------------------------------------------------------------------------


def test_file_store_reads_ranges_into_one_buffer(tmp_path: Path) -> None:
    store = open_store(str(tmp_path))
    assert isinstance(store, FileStore)
    value = bytes(range(256)) * 4
    version = store.put("s", value)
    buffer = memoryview(bytearray(64))
    seen: list[tuple[int, bytes]] = []
    ranges = [(0, 16), (1000, 64), (1020, 10)]  # the second is cut at the end
    assert store.read_ranges_into("s", ranges, buffer, lambda i, v: seen.append((i, bytes(v))),
                                  version)  # fmt: skip
    assert seen == [(0, value[0:16]), (1, value[1000:]), (2, value[1020:1024])]
    assert store.read_ranges_into("s", ranges[:1], buffer, lambda i, v: None, ANY_VERSION)
    assert not store.read_ranges_into("missing", ranges, buffer, lambda i, v: None, ANY_VERSION)
    store.put("s", value[::-1])
    with pytest.raises(StaleReadError):
        store.read_ranges_into("s", ranges, buffer, lambda i, v: None, version)


def test_stores_without_buffers_refuse_read_ranges_into() -> None:
    store = MemoryStore()
    store.put("s", b"abc")
    with pytest.raises(UnsupportedError):
        store.read_ranges_into("s", [(0, 1)], memoryview(bytearray(1)), lambda i, v: None, None)


# -- the engine's pool -------------------------------------------------------------------------


class _CountingPool(cf.ThreadPoolExecutor):
    def __init__(self) -> None:
        super().__init__(4)
        self.submitted = 0

    def submit(self, *args: Any, **kwargs: Any) -> cf.Future[Any]:  # type: ignore[override]
        self.submitted += 1
        return super().submit(*args, **kwargs)


def test_run_bounded_works_on_the_calling_thread_and_sizes_its_workers() -> None:
    with _CountingPool() as pool:
        threads: set[int] = set()
        run_bounded(lambda i: threads.add(threading.get_ident()), [1, 2, 3], pool, 8)
        assert pool.submitted == 2  # three items: the caller and two of the pool
        run_bounded(lambda i: None, [1], pool, 8)
        assert pool.submitted == 2  # one item: the caller alone
        done: list[int] = []
        run_bounded(done.append, iter(range(100)), pool, 4)  # unsized: every worker
        assert sorted(done) == list(range(100))
        assert pool.submitted == 5
    gate = threading.Barrier(2, timeout=10)
    with _CountingPool() as pool:
        # Two items that wait for each other finish only if two threads run them at once.
        run_bounded(lambda i: gate.wait(), [1, 2], pool, 2)
        assert pool.submitted == 1


def test_run_bounded_raises_the_first_error_after_every_worker_returned() -> None:
    finished: list[int] = []

    def fn(i: int) -> None:
        if i == 3:
            raise ValueError("item 3")
        finished.append(i)

    with cf.ThreadPoolExecutor(2) as pool, pytest.raises(ValueError, match="item 3"):
        run_bounded(fn, list(range(10)), pool, 2)
    assert 3 not in finished


@pytest.mark.parametrize("threads", [1, 3])
def test_large_reads_go_through_thread_buffers_too(tmp_path: Path, threads: int) -> None:
    """A read of many raw inner chunks (past ``inline_chunks``, on the pool) reads their rows
    into the threads' buffers, never a bytes object per chunk, in tasks of a few chunks."""
    shape = (40, 36, 28)
    model = (np.arange(int(np.prod(shape))) % 65521).astype(np.uint16).reshape(shape)
    vol = _sharded(tmp_path / "a.zarr", shape, (4, 4, 4), "uint16")
    vol[...] = model
    vol[8:12, 0:4, 0:4] = 0  # an absent inner chunk among them
    model[8:12, 0:4, 0:4] = 0
    reader = ba.open(tmp_path / "a.zarr", threads=threads)
    source = _source(reader)
    source.store._get_spans = None  # type: ignore[assignment,method-assign]  # any use fails
    calls: list[int] = []
    original = source.store.read_ranges_into

    def spy(key: str, ranges: Any, *args: Any) -> bool:
        calls.append(len(ranges))
        return original(key, ranges, *args)

    source.store.read_ranges_into = spy  # type: ignore[method-assign]
    box = np.s_[3:37, 1:35, 2:27]
    np.testing.assert_array_equal(reader[box], model[box])
    assert len(calls) > 1
    assert max(calls) <= 8


def test_ranged_reads_into_buffers_make_no_path_objects(tmp_path: Path) -> None:
    """Small sharded reads name their shard file with a plain string (pathlib cost a tenth of
    such a read), and a key that could climb out of the root is still refused."""
    vol = _sharded(tmp_path / "a.zarr", (16, 16), (4, 4), "uint8")
    vol[...] = np.arange(256, dtype=np.uint8).reshape(16, 16)
    reader = ba.open(tmp_path / "a.zarr")
    store = _source(reader).store
    reader[0:16, 0:16]  # the shard indexes, read once and cached

    def no_paths(key: str) -> Path:
        raise AssertionError(f"a Path was made for {key!r}")

    store._path = no_paths  # type: ignore[method-assign]
    np.testing.assert_array_equal(reader[3:9, 2:7], vol[3:9, 2:7])
    buffer = memoryview(bytearray(16))
    for key in ("/etc/passwd", "../outside", "a/../../outside"):
        with pytest.raises(ValueError, match="root"):
            store.read_ranges_into(key, [(0, 4)], buffer, lambda i, v: None, ANY_VERSION)
