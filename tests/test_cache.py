"""The decoded-chunk LRU cache (``cache_bytes=``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import bigarrays as ba
from bigarrays.cache import ChunkCache
from bigarrays.stores import open_store
from bigarrays.testing.counting import CountingStore


def chunk(value: int, n: int = 10) -> np.ndarray:
    return np.full((n, 1, 1, 1), value, np.uint8, order="F")


def test_lru_bound_and_order() -> None:
    cache = ChunkCache(30)
    for i in range(3):
        cache.put((i,), chunk(i))
    assert len(cache) == 3
    assert cache.nbytes == 30
    assert cache.get((0,)) is not None  # 0 is now the most recent
    cache.put((3,), chunk(3))
    assert cache.get((1,)) is None  # the least recent went
    assert cache.get((0,)) is not None
    assert cache.get((3,)) is not None
    assert cache.nbytes == 30
    cache.put((9,), chunk(9, 31))  # larger than the bound: never kept
    assert cache.get((9,)) is None
    cache.discard((0,))
    assert cache.nbytes == 20
    cache.clear()
    assert len(cache) == 0
    assert cache.nbytes == 0


def test_cache_keeps_a_private_copy() -> None:
    cache = ChunkCache(100)
    buf = chunk(1)
    cache.put((0,), buf)
    buf[:] = 2  # the caller reuses its buffer
    got = cache.get((0,))
    assert got is not None
    assert (got == 1).all()
    assert not got.flags.writeable


def test_negative_bound_refused() -> None:
    with pytest.raises(ValueError, match="cache_bytes"):
        ChunkCache(-1)


def counting(url: str) -> CountingStore:
    return CountingStore(open_store(url))


def test_repeated_cutouts_hit_the_cache(tmp_path: Path) -> None:
    d = np.asfortranarray(np.random.default_rng(0).integers(0, 255, (64, 64, 32), np.uint8))
    with ba.create(str(tmp_path / "v"), shape=d.shape, chunks=(16, 16, 16), progress=False) as v:
        v[...] = d
    store = counting(str(tmp_path / "v"))
    with ba.open(store, cache_bytes=1 << 20, progress=False) as vol:
        assert vol.cache is not None
        np.testing.assert_array_equal(vol[5:20, 5:20, 5:20], d[5:20, 5:20, 5:20])
        gets = store.counts.get("get", 0)
        np.testing.assert_array_equal(vol[6:21, 4:19, 3:18], d[6:21, 4:19, 3:18])
        assert store.counts.get("get", 0) == gets  # every chunk came from the cache
        assert vol.cache.hits >= 8
    with ba.open(store, progress=False) as vol:  # off by default
        assert vol.cache is None


def test_writes_keep_the_cache_coherent(tmp_path: Path) -> None:
    d = np.zeros((32, 32, 32), np.uint8, order="F")
    with ba.create(str(tmp_path / "v"), shape=d.shape, chunks=(16, 16, 16), progress=False,
                   cache_bytes=1 << 20) as vol:  # fmt: skip
        vol[...] = d
        assert not vol[0:20, 0:20, 0:20].any()  # fills the cache
        vol[2:5, 2:5, 2:5] = 9  # partial: read-modify-write
        vol[16:32, 16:32, 16:32] = 7  # whole chunk
        d[2:5, 2:5, 2:5] = 9
        d[16:32, 16:32, 16:32] = 7
        np.testing.assert_array_equal(vol[...], d)
        assert vol.at_mip(0).cache is not None


def test_sharded_cache_coherent(tmp_path: Path) -> None:
    d = np.ones((32, 32, 32), np.uint8, order="F")
    with ba.create(str(tmp_path / "s"), shape=d.shape, chunks=(16, 16, 16), progress=False,
                   sharding=True, cache_bytes=1 << 20) as vol:  # fmt: skip
        vol[...] = d
        np.testing.assert_array_equal(vol[...], d)
        vol[0:16, 0:16, 0:16] = 3
        d[0:16, 0:16, 0:16] = 3
        np.testing.assert_array_equal(vol[...], d)


def test_repeated_cutouts_of_a_sharded_scale_hit_the_cache(tmp_path: Path) -> None:
    d = np.asfortranarray(np.random.default_rng(1).integers(0, 255, (64, 64, 32), np.uint8))
    with ba.create(str(tmp_path / "s"), shape=d.shape, chunks=(16, 16, 16), progress=False,
                   sharding=True) as v:  # fmt: skip
        v[...] = d
    store = counting(str(tmp_path / "s"))
    with ba.open(store, cache_bytes=1 << 20, progress=False) as vol:
        assert vol.cache is not None
        np.testing.assert_array_equal(vol[5:20, 5:20, 5:20], d[5:20, 5:20, 5:20])
        store.reset()
        np.testing.assert_array_equal(vol[6:21, 4:19, 3:18], d[6:21, 4:19, 3:18])
        assert store.reads == 0, "every chunk should have come from the cache"
        assert vol.cache.hits >= 8


@pytest.mark.parametrize("fmt", ["zarr", "precomputed"])
def test_a_chunk_read_in_part_is_cached_whole(tmp_path: Path, fmt: str) -> None:
    # Raw inner chunks of a local shard are read as just the rows a piece needs: the cache must
    # still keep (and later serve) the whole chunk, not the rows of the first request.
    d = np.arange(64**3, dtype=np.uint16).reshape((64,) * 3)
    sharding = {"chunk_shape": [16] * 3} if fmt == "zarr" else True
    chunks = (32,) * 3 if fmt == "zarr" else (16,) * 3
    with ba.create(str(tmp_path / "s"), shape=d.shape, dtype="uint16", chunks=chunks,
                   format=fmt, sharding=sharding, progress=False) as v:  # fmt: skip
        v[...] = d
    with ba.open(str(tmp_path / "s"), cache_bytes=1 << 20, progress=False) as vol:
        np.testing.assert_array_equal(vol[10:12, 0:16, 0:16], d[10:12, 0:16, 0:16])
        np.testing.assert_array_equal(vol[0:2, 0:16, 0:16], d[0:2, 0:16, 0:16])
        np.testing.assert_array_equal(vol[0:16, 3:9, 0:16], d[0:16, 3:9, 0:16])
        assert vol.cache is not None
        assert vol.cache.hits >= 2
