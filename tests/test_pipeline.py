"""The chunk engine's fast paths: reads into reused buffers, inline small requests, skip_empty."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import bigarrays as ba
from bigarrays.box import Box
from bigarrays.chunk_source import INLINE_CHUNKS
from bigarrays.errors import ChunkNotFoundError, CorruptChunkError, UnsupportedError
from bigarrays.pipeline import ChunkEngine
from bigarrays.stores import content_encoding
from bigarrays.stores.file import FileStore
from bigarrays.stores.memory import MemoryStore


def volume(path: Path, **kw: object) -> ba.BigArray:
    return ba.create(str(path), shape=(40, 30, 20), chunks=(16, 16, 8), progress=False, **kw)


def data(shape: tuple[int, ...] = (40, 30, 20), dtype: str = "uint8") -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.asfortranarray(rng.integers(1, 200, size=shape).astype(dtype))


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32", "uint64"])
def test_fast_raw_read_matches(tmp_path: Path, threads: int, dtype: str) -> None:
    d = data(dtype=dtype)
    with volume(tmp_path / "v", dtype=dtype, threads=threads) as vol:
        assert vol.level.source.fast_raw
        vol[...] = d
        np.testing.assert_array_equal(vol[...], d)
        np.testing.assert_array_equal(vol[3:37, -5:29, 1:19], np.pad(d[3:37, 0:29, 1:19],
                                      ((0, 0), (5, 0), (0, 0))))  # fmt: skip
        # one chunk, partly: the inline path, and a view of the thread's scratch buffer that
        # must not leak into the result
        a = vol[0:5, 0:5, 0:5]
        b = vol[16:21, 16:21, 8:13]
        np.testing.assert_array_equal(a, d[0:5, 0:5, 0:5])
        np.testing.assert_array_equal(b, d[16:21, 16:21, 8:13])


def test_read_into_file_store(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.put("a/b", b"hello")
    buf = bytearray(16)
    assert store.read_into("a/b", memoryview(buf)) == 5
    assert bytes(buf[:5]) == b"hello"
    assert store.read_into("a/missing", memoryview(buf)) is None
    assert store.read_into("a", memoryview(buf)) is None  # a folder is no key
    small = bytearray(3)
    assert store.read_into("a/b", memoryview(small)) == 3  # at most len(buffer)
    assert store.read_into("a/b", memoryview(buf), 1, size=5) == 4  # from an offset
    assert store.read_into("a/b", memoryview(buf), size=6) == -1  # not the size asked for
    assert store.reads_into_buffers


def test_read_into_defaults_to_get() -> None:
    """A backend without a buffer path says so, and read_into sends the caller to get()."""
    store = MemoryStore()
    store.put("a/b", b"hello")
    assert not store.reads_into_buffers
    assert store.read_into("a/b", memoryview(bytearray(16))) is None


def test_fast_path_falls_back_to_encoded_chunk(tmp_path: Path) -> None:
    """A raw volume whose chunk was stored as KEY.gz (copied with its encoding) still reads."""
    d = data()
    with volume(tmp_path / "v") as vol:
        vol[...] = d
        key = vol.chunk_key((0, 0, 0))
        raw = vol.store.get(key)
        assert raw is not None
        vol.store.put(key, content_encoding.encode(raw, "gzip", 6), content_encoding="gzip")
        assert not (tmp_path / "v" / key).exists()
        np.testing.assert_array_equal(vol[...], d)


def test_fast_path_refuses_wrong_size(tmp_path: Path) -> None:
    with volume(tmp_path / "v") as vol:
        vol[...] = data()
        key = vol.chunk_key((1, 1, 1))
        (tmp_path / "v" / key).write_bytes(b"\0" * (16 * 16 * 8 + 1))
        with pytest.raises(CorruptChunkError):
            vol[...]
        (tmp_path / "v" / key).write_bytes(b"\0" * 10)
        with pytest.raises(CorruptChunkError):
            vol[16:20, 16:20, 8:10]  # inline path too


def test_missing_chunk_fast_path(tmp_path: Path) -> None:
    with volume(tmp_path / "v") as vol:
        vol[0:16, 0:16, 0:8] = data((16, 16, 8))
        assert not vol[20:30, 20:30, 10:20].any()
    with (
        ba.open(str(tmp_path / "v"), fill_missing=False, progress=False) as vol,
        pytest.raises(ChunkNotFoundError),
    ):
        vol[20:30, 20:30, 10:20]


def test_small_requests_run_inline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A request of a few local raw chunks never touches the pool."""
    with volume(tmp_path / "v", threads=4) as vol:
        vol[...] = data()
        assert vol.level.source.inline_chunks == INLINE_CHUNKS
        vol.level.source.inline_chunks = 8  # this volume has 18 chunks
        monkeypatch.setattr(ChunkEngine, "executor", property(lambda self: 1 / 0))
        np.testing.assert_array_equal(vol[0:20, 0:20, 0:10], data()[0:20, 0:20, 0:10])  # 8
        with pytest.raises(ZeroDivisionError):
            vol[...]  # 18 chunks: the pool
    with volume(tmp_path / "g", threads=4, compression="gzip") as vol:
        assert vol.level.source.inline_chunks == 1  # decoding gzip is worth threads


def test_fast_write_round_trip_and_partial(tmp_path: Path) -> None:
    d = data(dtype="uint16")
    with volume(tmp_path / "v", dtype="uint16") as vol:
        vol[...] = d
        vol[5:25, 3:17, 2:9] = 7
        d[5:25, 3:17, 2:9] = 7
        np.testing.assert_array_equal(vol[...], d)
        key = vol.chunk_key((2, 1, 2))  # an edge chunk: clipped to 8 x 14 x 4
        assert os.path.getsize(tmp_path / "v" / key) == 8 * 14 * 4 * 2


def test_file_store_remakes_removed_folder(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.put("a/b/c", b"1")
    import shutil

    shutil.rmtree(tmp_path / "a")
    store.put("a/b/c", b"2")
    assert store.get("a/b/c") == b"2"


# -- skip_empty ------------------------------------------------------------------------------------


def stored_chunks(path: Path) -> set[str]:
    return {p.name for p in (path / "1_1_1").iterdir()} if (path / "1_1_1").exists() else set()


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_skip_empty_writes_no_zero_chunks(tmp_path: Path, compression: str | None) -> None:
    d = np.zeros((40, 30, 20), np.uint8, order="F")
    d[0:16, 0:16, 0:8] = 5  # one chunk holds data
    with volume(tmp_path / "v", skip_empty=True, compression=compression) as vol:
        vol[...] = d
        assert len(stored_chunks(tmp_path / "v")) == 1
        np.testing.assert_array_equal(vol[...], d)
    with volume(tmp_path / "w", compression=compression, overwrite=True) as vol:
        vol[...] = d
        assert len(stored_chunks(tmp_path / "w")) == vol.num_chunks  # the default writes all


def test_skip_empty_deletes_chunks_zeroed(tmp_path: Path) -> None:
    with volume(tmp_path / "v", skip_empty=True) as vol:
        vol[...] = data()
        assert len(stored_chunks(tmp_path / "v")) == vol.num_chunks
        vol[0:16, 0:16, 0:8] = 0  # a whole chunk
        vol[16:32, 0:16, 0:8] = 0
        assert len(stored_chunks(tmp_path / "v")) == vol.num_chunks - 2
        vol[0:40, 16:30, 0:4] = 0  # partial chunks: merged, still not empty
        assert len(stored_chunks(tmp_path / "v")) == vol.num_chunks - 2
        want = data()
        want[0:32, 0:16, 0:8] = 0
        want[0:40, 16:30, 0:4] = 0
        np.testing.assert_array_equal(vol[...], want)
    with ba.open(str(tmp_path / "v"), mode="r+", skip_empty=True, progress=False) as vol:
        assert vol.skip_empty
        vol[...] = 0
        assert stored_chunks(tmp_path / "v") == set()


def test_skip_empty_refused_for_sharded(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedError, match="skip_empty"):
        volume(tmp_path / "s", sharding=True, skip_empty=True)
    assert not (tmp_path / "s" / "info").exists()


def test_engine_skip_empty_needs_delete() -> None:
    from bigarrays.box import ChunkGrid
    from bigarrays.chunk_source import ChunkSourceBase

    class NoDelete(ChunkSourceBase):
        url = "nowhere://"
        grid = ChunkGrid((0, 0, 0, 0), (4, 4, 4, 1), (4, 4, 4, 1))
        dtype = np.dtype("uint8")

    with pytest.raises(NotImplementedError, match="cannot delete"):
        ChunkEngine(1).write(
            NoDelete(),  # type: ignore[arg-type]
            Box((0, 0, 0, 0), (4, 4, 4, 1)),
            np.zeros((4, 4, 4, 1), np.uint8),
            skip_empty=True,
        )


@pytest.mark.parametrize("box", [np.s_[0:40, 0:30, 0:20], np.s_[0:5, 0:30, 0:20]],
                         ids=["whole-chunk", "part-of-chunk"])  # fmt: skip
def test_skip_empty_keeps_negative_zero(tmp_path: Path, box: tuple[slice, ...]) -> None:
    # -0.0 == 0.0, but its bits are not the fill value's: the chunk must be stored.
    with volume(tmp_path / "v", dtype="float32", skip_empty=True) as vol:
        vol[box] = np.float32(-0.0)
        back = ba.open(str(tmp_path / "v"))[box]
        assert np.signbit(back).all()


def test_threads_asking_a_new_engine_for_its_pool_at_once_get_one_pool(monkeypatch) -> None:
    import concurrent.futures as cf
    import threading
    import time

    callers = cf.ThreadPoolExecutor(8)  # made before pools are slowed down below

    class SlowToMake(cf.ThreadPoolExecutor):
        def __init__(self, *args: object, **kwargs: object) -> None:
            time.sleep(0.01)  # widens the window in which a second caller could make one too
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(cf, "ThreadPoolExecutor", SlowToMake)
    engine = ChunkEngine(4)
    barrier = threading.Barrier(8)

    def ask(_: int) -> int:
        barrier.wait()
        return id(engine.executor)

    try:
        seen = set(callers.map(ask, range(8)))
    finally:
        callers.shutdown()
        engine.close()
    assert len(seen) == 1
