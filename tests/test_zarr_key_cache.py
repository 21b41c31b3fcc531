"""Zarr arrays remember their chunk (and shard) keys: a key is computed once, not per read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import bigarrays as ba
from bigarrays.formats.zarr import chunks as zarr_chunks
from bigarrays.formats.zarr.chunks import KeyCache, ZarrChunks
from bigarrays.formats.zarr.metadata_v3 import ArrayMetadataV3
from bigarrays.formats.zarr.sharded_chunks import ShardedZarrChunks


def test_key_cache_computes_each_key_once_and_stays_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(zarr_chunks, "KEY_CACHE_SIZE", 4)
    asked: list[tuple[int, ...]] = []

    def make(index: tuple[int, ...]) -> str:
        asked.append(index)
        return "/".join(map(str, index))

    keys = KeyCache(make)
    assert [keys((1, 2)), keys([1, 2]), keys((1, 2))] == ["1/2"] * 3
    assert asked == [(1, 2)]
    for i in range(10):
        assert keys((i, 0)) == f"{i}/0"
    assert len(keys._keys) <= 4
    assert keys((9, 0)) == "9/0"


@pytest.mark.parametrize("sharded", [False, True])
def test_reads_ask_for_each_key_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sharded: bool
) -> None:
    options = {"sharding": {"chunk_shape": [4, 4]}} if sharded else {}
    vol = ba.create(tmp_path / "a.zarr", shape=(16, 16), dtype="uint8", chunks=(8, 8),
                    progress=False, **options)  # type: ignore[arg-type]  # fmt: skip
    model = np.arange(256, dtype=np.uint8).reshape(16, 16)
    vol[...] = model
    computed: list[tuple[int, ...]] = []
    real = ArrayMetadataV3.chunk_key

    def spy(meta: ArrayMetadataV3, index: tuple[int, ...]) -> str:
        computed.append(index)
        return real(meta, index)

    monkeypatch.setattr(ArrayMetadataV3, "chunk_key", spy)
    reader = ba.open(tmp_path / "a.zarr")
    assert isinstance(reader.level.source, ShardedZarrChunks if sharded else ZarrChunks)
    for _ in range(3):
        np.testing.assert_array_equal(reader[3:13, 2:11], model[3:13, 2:11])
    assert sorted(computed) == [(0, 0), (0, 1), (1, 0), (1, 1)]
