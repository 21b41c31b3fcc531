"""Concurrent writers of any alignment lose nothing, on every store that can write.

Several processes (and threads) write interleaved x-slabs 1-7 voxels thick, so every chunk is
shared by several writers and each writes only part of it: each write is a read-merge-write that
races with the others. The voxels that do not hold their writer's last value are counted as lost;
the count must be 0. On a store without conditional writes the same writes are refused.
"""

from __future__ import annotations

import itertools
import multiprocessing
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import bigarrays as ba
from bigarrays.errors import UnsupportedError

SHAPE = (96, 8, 8)
CHUNKS = (16, 8, 8)
PROCESSES = 4
ROUNDS = 3


def _slabs(seed: int) -> list[tuple[int, int]]:
    rng = np.random.default_rng(seed)
    edges = [0]
    while edges[-1] < SHAPE[0]:
        edges.append(min(SHAPE[0], edges[-1] + int(rng.integers(1, 8))))
    return list(itertools.pairwise(edges))


def _write_slabs(url: str, slabs: list[tuple[int, int]], options: dict[str, Any]) -> None:
    with ba.open(url, mode="r+", progress=False, **options) as vol:
        for round_ in range(ROUNDS):
            for a, b in slabs:
                # Earlier rounds write other values, so a lost last write shows.
                vol[a:b] = a + 1 if round_ == ROUNDS - 1 else 200 + round_


def _expected(slabs: list[tuple[int, int]]) -> np.ndarray:
    out = np.zeros(SHAPE, np.uint8)
    for a, b in slabs:
        out[a:b] = a + 1
    return out


def _run_processes(url: str, create: dict[str, Any], options: dict[str, Any], seed: int) -> int:
    """Lost voxels after ``PROCESSES`` processes wrote their interleaved slabs."""
    ba.create(url, shape=SHAPE, chunks=CHUNKS, dtype="uint8", progress=False,
              **create, **options).close()  # fmt: skip
    slabs = _slabs(seed)
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_write_slabs, args=(url, slabs[i::PROCESSES], options))
        for i in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * PROCESSES
    with ba.open(url, **options) as vol:
        back = vol[:, :, :]
    return int((back != _expected(slabs)).sum())


LAYOUTS = {
    "raw": {},
    "gzip": {"compression": "gzip"},
    "sharded": {"sharding": {"@type": "neuroglancer_uint64_sharded_v1", "preshift_bits": 0,
                             "hash": "identity", "minishard_bits": 1, "shard_bits": 1,
                             "minishard_index_encoding": "raw", "data_encoding": "raw"}},
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("layout", LAYOUTS)
def test_processes_on_a_folder_lose_nothing(tmp_path: Path, layout: str) -> None:
    assert _run_processes(str(tmp_path / "vol"), LAYOUTS[layout], {}, seed=1) == 0


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["raw", "gzip"])
def test_processes_on_lmdb_lose_nothing(tmp_path: Path, layout: str) -> None:
    url = f"lmdb://{tmp_path / 'vol.lmdb'}"
    assert _run_processes(url, LAYOUTS[layout], {}, seed=2) == 0


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["raw", "gzip"])
def test_processes_on_s3_lose_nothing(s3_bucket: str, layout: str) -> None:
    url = f"s3://{s3_bucket}/vol-{uuid.uuid4().hex[:8]}"
    assert _run_processes(url, LAYOUTS[layout], {}, seed=3) == 0


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["raw", "gzip"])
def test_processes_on_gcs_lose_nothing(gcs_bucket: str, layout: str) -> None:
    url = f"gs://{gcs_bucket}/vol-{uuid.uuid4().hex[:8]}"
    assert _run_processes(url, LAYOUTS[layout], {}, seed=4) == 0


def _threads_on_one_handle(vol: ba.BigArray, seed: int) -> int:
    from concurrent.futures import ThreadPoolExecutor

    slabs = _slabs(seed)

    def write(slab: tuple[int, int]) -> None:
        vol[slab[0] : slab[1]] = slab[0] + 1

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, slabs))
    return int((vol[:, :, :] != _expected(slabs)).sum())


URLS: dict[str, Callable[[Path], str]] = {
    "file": lambda p: str(p / "vol"),
    "memory": lambda p: f"memory://threads-{uuid.uuid4().hex}",
    "zip": lambda p: str(p / "vol.zip"),
    "lmdb": lambda p: f"lmdb://{p / 'vol.lmdb'}",
}


@pytest.mark.parametrize("store", URLS)
@pytest.mark.parametrize("layout", ["raw", "gzip"])
def test_threads_on_one_handle_lose_nothing(tmp_path: Path, store: str, layout: str) -> None:
    url = URLS[store](tmp_path)
    with ba.create(url, shape=SHAPE, chunks=CHUNKS, dtype="uint8", threads=8, progress=False,
                   **LAYOUTS[layout]) as vol:  # fmt: skip
        assert _threads_on_one_handle(vol, seed=5) == 0


def _write_one_voxel(url: str, value: int) -> None:
    with ba.open(url, mode="r+", progress=False) as vol:
        vol[1, 0, 0] = value


def test_zip_write_through_an_older_handle_keeps_another_process_write(tmp_path: Path) -> None:
    url = str(tmp_path / "vol.zip")
    ba.create(url, shape=(8, 8, 8), chunks=(8, 8, 8), progress=False).close()
    with ba.open(url, mode="r+", progress=False) as b:
        assert not b[:, :, :].any()  # b has read the directory as it was
        ctx = multiprocessing.get_context("spawn")
        writer = ctx.Process(target=_write_one_voxel, args=(url, 5))
        writer.start()
        writer.join(60)
        assert writer.exitcode == 0
        b[0, 0, 0] = 7  # a partial write of the chunk the other process wrote
    with ba.open(url) as back:
        assert back[0, 0, 0] == 7
        assert back[1, 0, 0] == 5, "the other process's write was reverted"


def test_store_without_conditional_writes_refuses_racy_writes(tmp_path: Path) -> None:
    url = f"fsspec+file://{tmp_path / 'vol'}"
    with ba.create(url, shape=SHAPE, chunks=CHUNKS, dtype="uint8", progress=False) as vol:
        with pytest.raises(UnsupportedError, match=r"such as the box Box\(0:16, 0:8, 0:8\)"):
            vol[0:3] = 1
        vol[0:16] = 1  # whole chunks need no merge
        assert int(vol[:, :, :].sum()) == 16 * 8 * 8
    url2 = f"fsspec+file://{tmp_path / 'vol2'}"
    with ba.create(url2, shape=SHAPE, chunks=CHUNKS, num_channels=2, progress=False) as vol:
        with pytest.raises(UnsupportedError, match="no conditional writes"):
            vol[0:16, :, :, 0] = 1  # one channel of two is part of each chunk too
        assert not vol[:, :, :].any()
