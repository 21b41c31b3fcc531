"""``bigarrays cp ... --dask``: copies, reshards and conversions as Dask graphs.

Oracle: the local thread pool. Every job runs on a process-based LocalCluster on 127.0.0.1 (so
the stores and datasets really travel by pickle) and on Dask's threaded scheduler, and must leave
the destination byte for byte as the local ``cp`` leaves it: the same keys, the same bytes.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import pytest
from distributed import Client

import bigarrays as ba
from bigarrays.adapters import dask_run
from bigarrays.adapters.dask_copy import convert_on_dask, plan_blocks, reshard_on_dask
from bigarrays.box import Box
from bigarrays.cli import main
from bigarrays.convert import convert_format
from bigarrays.copy import copy_dataset
from bigarrays.errors import DatasetNotFoundError, InvalidArgumentError, UnsupportedError
from bigarrays.formats.detect import detect
from bigarrays.resharding import convert_dataset
from bigarrays.stores import open_store
from bigarrays.stores.file import FileStore

RNG = np.random.default_rng(1616)


@pytest.fixture
def client(dask_client: Client) -> Client:
    return dask_client


def _objects(path: Path) -> dict[str, bytes]:
    """Every object under ``path``, by key."""
    store = open_store(path, read_only=True)
    return {key: store.get(key) or b"" for key in sorted(store.list(""))}


def _source(path: Path, **kw: Any) -> ba.BigArray:
    """Two levels, negative and odd offsets, sizes that cut the last chunks short, zero chunks."""
    options = {"shape": (53, 41, 19), "dtype": "uint16", "chunks": (8, 8, 8),
               "voxel_offset": (-37, 5, -3), "progress": False} | kw  # fmt: skip
    vol = ba.create(path, **options)
    data = RNG.integers(1, 60000, size=vol.shape).astype(vol.dtype)
    data[:16, :16] = 0  # whole chunks of zeros: skipped alike by both runs
    vol[...] = data
    vol.downsample((2, 2, 1), num_mips=1)
    return vol


def _sharded_source(path: Path) -> ba.BigArray:
    # Shards of 2 x 2 x 2 chunks, cut by the volume's far edges.
    return _source(path, sharding=True, shard_size_bytes=8 * 2 * 8**3)


SCHEDULERS = ("cluster", "threads")


def _scheduler(where: str, client: Client) -> Any:
    return client if where == "cluster" else "threads"


@pytest.mark.parametrize("where", SCHEDULERS)
@pytest.mark.parametrize("format", ["zarr", "zarr2"])
def test_precomputed_to_ome_zarr_equals_the_local_conversion(
    tmp_path: Path, client: Client, where: str, format: str
) -> None:
    src = _source(tmp_path / "src")
    local = convert_format(src.url, tmp_path / "local.ome.zarr", format, progress=False)
    done = convert_on_dask(src.url, tmp_path / "dask.ome.zarr", format, progress=False,
                           scheduler=_scheduler(where, client), memory_target=8 << 10)  # fmt: skip
    assert (done.levels, done.voxels) == (local.levels, local.voxels)
    assert done.voxels == 53 * 41 * 19 + 27 * 21 * 19
    assert _objects(tmp_path / "dask.ome.zarr") == _objects(tmp_path / "local.ome.zarr")


@pytest.mark.parametrize("where", SCHEDULERS)
def test_ome_zarr_to_precomputed_equals_the_local_conversion(
    tmp_path: Path, client: Client, where: str
) -> None:
    src = _source(tmp_path / "src")
    convert_format(src.url, tmp_path / "img.ome.zarr", "zarr", chunks=(16, 8, 4), progress=False)
    img = tmp_path / "img.ome.zarr"
    convert_format(img, tmp_path / "local", "precomputed", progress=False)
    convert_on_dask(img, tmp_path / "dask", "precomputed", chunks=None, progress=False,
                    scheduler=_scheduler(where, client), memory_target=4 << 10)  # fmt: skip
    assert _objects(tmp_path / "dask") == _objects(tmp_path / "local")
    np.testing.assert_array_equal(ba.open(tmp_path / "dask")[...], src[...])


@pytest.mark.parametrize("where", SCHEDULERS)
def test_sharded_conversions_equal_the_local_ones(
    tmp_path: Path, client: Client, where: str
) -> None:
    src = _sharded_source(tmp_path / "src")  # sharded: so is the OME-Zarr image, shards alike
    local = tmp_path / "local.ome.zarr"
    convert_format(src.url, local, "zarr", progress=False)
    convert_on_dask(src.url, tmp_path / "dask.ome.zarr", "zarr", progress=False,
                    scheduler=_scheduler(where, client), memory_target=4 << 10)  # fmt: skip
    assert _objects(tmp_path / "dask.ome.zarr") == _objects(local)
    assert b"sharding_indexed" in _objects(local)["0/zarr.json"]
    convert_format(local, tmp_path / "back", "precomputed", shard=True, progress=False)
    convert_on_dask(local, tmp_path / "dask-back", "precomputed", shard=True, progress=False,
                    scheduler=_scheduler(where, client))  # fmt: skip
    assert _objects(tmp_path / "dask-back") == _objects(tmp_path / "back")
    np.testing.assert_array_equal(ba.open(tmp_path / "dask-back")[...], src[...])


@pytest.mark.parametrize("where", SCHEDULERS)
def test_sharded_to_unsharded_equals_the_local_reshard(
    tmp_path: Path, client: Client, where: str
) -> None:
    src = _sharded_source(tmp_path / "src")
    convert_dataset(src.url, tmp_path / "local", shard=False, progress=False)
    info = reshard_on_dask(src.url, tmp_path / "dask", shard=False, progress=False,
                           scheduler=_scheduler(where, client), memory_target=8 << 10)  # fmt: skip
    assert all(s.sharding is None for s in info.scales)
    assert _objects(tmp_path / "dask") == _objects(tmp_path / "local")
    np.testing.assert_array_equal(ba.open(tmp_path / "dask")[...], src[...])


@pytest.mark.parametrize("where", SCHEDULERS)
def test_unsharded_to_sharded_equals_the_local_reshard(
    tmp_path: Path, client: Client, where: str
) -> None:
    src = _source(tmp_path / "src")
    size = 8 * 2 * 8**3
    convert_dataset(src.url, tmp_path / "local", shard=True, shard_size_bytes=size, progress=False)
    reshard_on_dask(src.url, tmp_path / "dask", shard=True, shard_size_bytes=size,
                    progress=False, scheduler=_scheduler(where, client))  # fmt: skip
    assert _objects(tmp_path / "dask") == _objects(tmp_path / "local")


@pytest.mark.parametrize("where", SCHEDULERS)
def test_plain_copy_equals_the_local_copy(tmp_path: Path, client: Client, where: str) -> None:
    src = _sharded_source(tmp_path / "src")
    local = copy_dataset(src.url, tmp_path / "local", progress=False)
    copied = copy_dataset(src.url, tmp_path / "dask", progress=False, memory_target=1,
                          scheduler=_scheduler(where, client))  # fmt: skip
    assert (copied.objects, copied.bytes) == (local.objects, local.bytes)
    assert _objects(tmp_path / "dask") == _objects(tmp_path / "local")


def test_cp_dask_on_the_command_line(tmp_path: Path, client: Client) -> None:
    src = _sharded_source(tmp_path / "src")
    address = client.scheduler.address
    convert_format(src.url, tmp_path / "local.ome.zarr", "zarr", progress=False)
    convert_dataset(src.url, tmp_path / "local", shard=False, progress=False)
    jobs = {"converted.ome.zarr": ["--format", "zarr"], "unsharded": ["--unshard"], "copy": []}
    for out, args in jobs.items():
        assert main(["cp", src.url, str(tmp_path / out), *args, "--dask", address,
                     "--memory", "8K", "-q"]) == 0  # fmt: skip
    assert _objects(tmp_path / "converted.ome.zarr") == _objects(tmp_path / "local.ome.zarr")
    assert _objects(tmp_path / "unsharded") == _objects(tmp_path / "local")
    assert _objects(tmp_path / "copy") == _objects(tmp_path / "src")


class DyingStore(FileStore):
    """A file store whose first chunk written, in any process, kills that process."""

    def __init__(self, root: Any, marker: str, **kw: Any) -> None:
        super().__init__(root, **kw)
        self.marker = marker

    def __reduce__(self) -> Any:
        return (type(self), (self.root, self.marker))

    def _put(self, key: str, value: Any, content_encoding: str | None) -> str | None:
        if "/" in key and not key.endswith((".zarray", "zarr.json", ".zattrs", ".zgroup")):
            try:
                os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                pass
            else:
                os._exit(1)
        return super()._put(key, value, content_encoding)


@contextmanager
def _by_value() -> Iterator[None]:
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        yield
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def test_a_worker_killed_mid_conversion_loses_nothing(tmp_path: Path, client: Client) -> None:
    src = _source(tmp_path / "src")
    convert_format(src.url, tmp_path / "local.ome.zarr", "zarr", progress=False)
    marker = str(tmp_path / "died")
    with _by_value():
        convert_on_dask(src.url, DyingStore(tmp_path / "dask.ome.zarr", marker), "zarr",
                        progress=False, scheduler=client, memory_target=8 << 10)  # fmt: skip
    assert os.path.exists(marker)  # a worker did die, and its tasks ran again on another
    assert _objects(tmp_path / "dask.ome.zarr") == _objects(tmp_path / "local.ome.zarr")


class FailingStore(FileStore):
    """A file store that refuses every chunk: a job that cannot finish."""

    def _put(self, key: str, value: Any, content_encoding: str | None) -> str | None:
        if key.startswith("0/c/"):
            raise OSError(f"refused {key}")
        return super()._put(key, value, content_encoding)


def test_a_failed_job_leaves_no_dataset_and_a_rerun_completes_it(
    tmp_path: Path, client: Client
) -> None:
    src = _source(tmp_path / "src")
    convert_format(src.url, tmp_path / "local.ome.zarr", "zarr", progress=False)
    out = tmp_path / "dask.ome.zarr"
    with _by_value(), pytest.raises(OSError, match="refused"):
        convert_on_dask(src.url, FailingStore(out), "zarr", progress=False, scheduler=client,
                        memory_target=8 << 10)  # fmt: skip
    with pytest.raises(DatasetNotFoundError):
        detect(open_store(out, read_only=True))  # the root metadata is written last
    convert_on_dask(src.url, out, "zarr", progress=False, scheduler=client)
    assert _objects(out) == _objects(tmp_path / "local.ome.zarr")


def test_progress_counts_every_destination_chunk_as_the_cluster_finishes_it(
    tmp_path: Path, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _source(tmp_path / "src")
    seen: list[int] = []
    advanced: list[int] = []

    @contextmanager
    def counting_bar(total: int, description: str, enabled: bool | None) -> Iterator[Any]:
        seen.append(total)
        yield lambda: advanced.append(1)

    monkeypatch.setattr(dask_run, "progress_bar", counting_bar)
    for where in SCHEDULERS:
        convert_on_dask(src.url, tmp_path / f"{where}.ome.zarr", "zarr", chunks=(8, 8, 4),
                        scheduler=_scheduler(where, client), memory_target=8 << 10)  # fmt: skip
    chunks = 7 * 6 * 5 + 4 * 3 * 5  # both levels, in chunks of 8 x 8 x 4
    assert seen == [chunks, chunks]
    assert len(advanced) == 2 * chunks


def test_plan_blocks_tiles_the_bounds_with_whole_units() -> None:
    bounds = Box((-37, 5, -3), (16, 46, 16))
    origin, unit = (-37, 5, -3), (16, 16, 16)
    # Units of 16^3 uint16 (8 KiB), 3x overhead: 40 KiB holds one unit, 400 KiB 16.
    for target, most in ((40 << 10, 1), (400 << 10, 16)):
        blocks = plan_blocks(bounds, origin, unit, (8, 8, 8), 2, target)
        seen = np.zeros(bounds.shape, dtype=int)
        for b in blocks:
            for a, o, u, lo in zip(b.start, origin, unit, bounds.start, strict=True):
                assert (a - o) % u == 0 or a == lo
            seen[tuple(slice(a - s, c - s) for a, c, s in zip(b.start, b.stop, bounds.start,
                                                              strict=True))] += 1  # fmt: skip
            assert np.prod([-(-n // u) for n, u in zip(b.shape, unit, strict=True)]) <= most
        assert (seen == 1).all()
        assert len(blocks) == (24 if most == 1 else 2)  # 4 x 3 x 1 units, then 4 x 3 x 2
    # One task per unit when a unit (a shard) is above the target, never a part of one.
    assert len(plan_blocks(bounds, origin, unit, (8, 8, 8), 2, 1)) == 4 * 3 * 2


def test_a_source_shard_is_read_by_one_task_when_it_fits() -> None:
    bounds = Box((0, 0, 0), (64, 64, 64))
    blocks = plan_blocks(bounds, (0, 0, 0), (8, 8, 8), (32, 32, 32), 1, 32**3 * 3)
    assert all(b.shape == (32, 32, 32) for b in blocks)


def test_a_bad_memory_target_is_refused(tmp_path: Path) -> None:
    src = _source(tmp_path / "src")
    for bad in (0, -1, 1.5, True):
        with pytest.raises(InvalidArgumentError, match="memory_target"):
            convert_on_dask(src.url, tmp_path / "x.ome.zarr", "zarr", scheduler="sync",
                            memory_target=bad)  # type: ignore[arg-type]  # fmt: skip
        with pytest.raises(InvalidArgumentError, match="memory_target"):
            copy_dataset(src.url, tmp_path / "y", scheduler="sync", memory_target=bad)  # type: ignore[arg-type]


def test_stores_that_workers_cannot_share_are_refused_before_writing(
    tmp_path: Path, client: Client
) -> None:
    src = _source(tmp_path / "src")
    memory = open_store("memory://cp-dask-target")
    with pytest.raises(UnsupportedError, match="cannot be shared"):
        copy_dataset(src.url, memory, scheduler=client)
    with pytest.raises(UnsupportedError, match="cannot be shared"):
        convert_on_dask(src.url, tmp_path / "img.ome.zarr.zip", "zarr", scheduler=client)
    assert list(memory.list("")) == []
    # The threaded scheduler shares this process's memory store.
    copy_dataset(src.url, memory, scheduler="threads", progress=False)
    assert _objects(src.url) == {k: memory.get(k) or b"" for k in sorted(memory.list(""))}
