"""``bigarrays cp ... --dask``: copy, reshard and convert a whole dataset as a Dask graph.

The three kinds of ``cp`` run here as they do on the local thread pool (:mod:`bigarrays.copy`,
:mod:`bigarrays.resharding`, :mod:`bigarrays.convert`) and leave the same objects: blocks are
read and written, and the new dataset's metadata is built before the tasks run, by the code the
local conversion uses (:mod:`bigarrays.transfer`); its root document (the info, or the group's
metadata) is written after the last task, so a job that fails part-way leaves no dataset at the
destination, only objects that the next run overwrites.

Resharding and conversion run one task per destination write unit: a box of whole destination
chunks (whole shards on a sharded level) grown to about ``memory_target`` bytes and aligned on the
destination's grid. No two tasks write the same chunk or shard, and a task that runs twice (its
worker lost, or the job run again) writes the same bytes again. A plain copy moves objects as
stored, a batch of keys per task. Either way the graph holds one task per unit of work, never one
per chunk, so it stays small enough for the scheduler at any volume size.

The source and the destination travel once, as keys of their own that the tasks depend on: a
worker unpickles them (reopening their stores from their settings) once, not once per task.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from bigarrays.adapters.dask_run import check_reachable, graph_key, run_tasks
from bigarrays.array import BigArray
from bigarrays.box import Box
from bigarrays.convert import ConvertResult
from bigarrays.copy import copy_objects
from bigarrays.errors import InvalidArgumentError, MissingDependencyError, UnsupportedError
from bigarrays.formats.detect import detect
from bigarrays.formats.existing import clear_destination
from bigarrays.formats.precomputed.format import INFO_KEY, PrecomputedDataset, open_dataset
from bigarrays.formats.precomputed.info import Info
from bigarrays.formats.precomputed.sharding import DEFAULT_SHARD_BYTES
from bigarrays.resharding import sharded_scale, unsharded_scale
from bigarrays.stores import Store, open_store
from bigarrays.transfer import (
    BlockReader,
    BlockWriter,
    LevelPlan,
    check_conversion,
    new_dataset,
    open_source,
    sharding_of,
)

try:
    from dask.delayed import delayed
except ImportError:  # pragma: no cover - the extra is part of the test environment
    raise MissingDependencyError("dask", "dask", "copying on Dask") from None

__all__ = ["DEFAULT_MEMORY_TARGET", "convert_on_dask", "copy_on_dask", "plan_blocks",
           "reshard_on_dask", "run_tasks"]  # fmt: skip

#: Bytes of voxels a task holds (uncompressed) unless told otherwise.
DEFAULT_MEMORY_TARGET = 256 << 20
#: What a task holds per byte of its block: the block read, its transposed or merged copy, and
#: the encoded chunks on their way out.
TASK_OVERHEAD = 3

Vec3 = tuple[int, int, int]


# -- planning --------------------------------------------------------------------------------------
def plan_blocks(
    bounds: Box, origin: Sequence[int], unit: Sequence[int], source_unit: Sequence[int],
    voxel_bytes: int, memory_target: int,
) -> list[Box]:  # fmt: skip
    """Boxes of whole ``unit`` s (anchored at ``origin``, clipped to ``bounds``) that tile
    ``bounds``, z slowest.

    A block is first made as wide as a source unit along each axis (so that one task reads a
    source shard whole) where that fits in ``memory_target``, then grown x first, then y, then z,
    while it fits; a unit larger than the target is still one block.
    """
    budget = max(1, memory_target // max(1, voxel_bytes * TASK_OVERHEAD))
    first = [(a - o) // u for a, o, u in zip(bounds.start, origin, unit, strict=True)]
    grid = [-(-(b - o) // u) - f for b, o, u, f in zip(bounds.stop, origin, unit, first,
                                                          strict=True)]  # fmt: skip
    n = [max(1, min(g, -(-s // u))) for g, s, u in zip(grid, source_unit, unit, strict=True)]
    if math.prod(k * u for k, u in zip(n, unit, strict=True)) > budget:
        n = [1] * len(unit)
    for axis in range(len(unit)):
        others = math.prod(n[b] * unit[b] for b in range(len(unit)) if b != axis)
        fit = budget // max(1, others * unit[axis])
        n[axis] = max(n[axis], min(grid[axis], fit))
    step = [k * u for k, u in zip(n, unit, strict=True)]
    ranges = [range(o + f * u, b, s) for o, f, u, b, s in zip(origin, first, unit, bounds.stop,
                                                                 step, strict=True)]  # fmt: skip
    blocks = []
    for z in ranges[2]:
        for y in ranges[1]:
            for x in ranges[0]:
                start = (x, y, z)
                box = Box(start, tuple(a + s for a, s in zip(start, step, strict=True)))
                blocks.append(box.intersect(bounds))
    return [b for b in blocks if not b.empty]


# -- the tasks -------------------------------------------------------------------------------------
def _copy_block(reader: BlockReader, writer: BlockWriter, mip: int, box: Box, offset: Vec3) -> int:
    writer.write(mip, box, reader.read(mip, box), offset)
    return math.prod(box.shape)


def _run_blocks(
    reader: BlockReader, writer: BlockWriter, plans: Sequence[LevelPlan], scheduler: Any,
    memory_target: int, progress: bool | None, description: str,
) -> None:  # fmt: skip
    """One task per block of every destination level, on ``scheduler``."""
    channels, itemsize = reader.channels, reader.dataset.dtype.itemsize
    source, target = graph_key(reader, "bigarrays-source"), graph_key(writer, "bigarrays-target")
    task = delayed(_copy_block, pure=False)
    tasks, weights = [], []
    for mip, plan in enumerate(plans):
        unit, source_unit = writer.unit(mip), reader.unit(mip)
        origin = plan.voxel_offset  # a Zarr array's index 0 is the level's voxel_offset
        for box in plan_blocks(plan.bounds, origin, unit, source_unit, channels * itemsize,
                               memory_target):  # fmt: skip
            tasks.append(task(source, target, mip, box, plan.voxel_offset))
            weights.append(math.prod(-(-n // c) for n, c in zip(box.shape, plan.chunks,
                                                                strict=True)))  # fmt: skip
    run_tasks(tasks, weights, scheduler, progress, description)


def _check_memory_target(memory_target: int) -> int:
    if isinstance(memory_target, bool) or not isinstance(memory_target, int) or memory_target < 1:
        raise InvalidArgumentError(
            f"memory_target is a positive number of bytes, got {memory_target!r}"
        )
    return memory_target


# -- conversion ------------------------------------------------------------------------------------
def convert_on_dask(
    src: str | os.PathLike[str] | Store,
    dst: str | os.PathLike[str] | Store,
    format: str,
    *,
    scheduler: Any,
    chunks: Sequence[int] | None = None,
    compression: str | None = None,
    overwrite: bool = False,
    threads: int | None = None,
    progress: bool | None = None,
    memory_target: int = DEFAULT_MEMORY_TARGET,
    shard: bool | None = None,
    shard_size_bytes: int | None = None,
) -> ConvertResult:
    """:func:`bigarrays.convert.convert_format` as a Dask graph on ``scheduler`` (see
    :func:`run_tasks`), one task per block of about ``memory_target`` bytes of whole
    destination chunks (whole shards, on a sharded destination: ``shard`` and
    ``shard_size_bytes`` as there). Both datasets must be on stores that every worker
    reaches."""
    xyz = check_conversion(format, chunks, threads)
    _check_memory_target(memory_target)
    started = time.perf_counter()
    with _stores(src, dst) as (source, target):
        dataset = open_source(source)
        reader = BlockReader(dataset, threads)
        try:
            _refuse_same(source, target)
            check_reachable(source, target, scheduler)
            plans = list(reader.plans)
            if xyz is not None:
                plans = [replace(plan, chunks=xyz) for plan in plans]
            sharded, size = sharding_of(reader, shard, shard_size_bytes)
            writer, finish = new_dataset(target, format, plans, dataset.dtype, reader.channels,
                                         compression, threads, dataset.layer_type, sharded,
                                         size)  # fmt: skip
            try:
                clear_destination(target, overwrite)
                _run_blocks(reader, writer, plans, scheduler, memory_target, progress,
                            f"converting {source.url} to {format} at {target.url}")  # fmt: skip
                finish()  # the root metadata, from here, after every task
            finally:
                writer.close()
        finally:
            reader.close()
    voxels = sum(math.prod(plan.size) * reader.channels for plan in reader.plans)
    return ConvertResult(len(reader.plans), voxels, time.perf_counter() - started)


# -- resharding ------------------------------------------------------------------------------------
def reshard_on_dask(
    src: str | os.PathLike[str] | Store,
    dst: str | os.PathLike[str] | Store,
    *,
    shard: bool,
    scheduler: Any,
    threads: int | None = None,
    progress: bool | None = None,
    overwrite: bool = False,
    shard_size_bytes: int | None = None,
    memory_target: int = DEFAULT_MEMORY_TARGET,
) -> Info:
    """:func:`bigarrays.resharding.convert_dataset` as a Dask graph on ``scheduler``: one task
    per destination shard (``shard=True``), or per block of whole chunks of about
    ``memory_target`` bytes, at least a source shard wide where that fits (``shard=False``).
    Returns the new info, which is written after the last task."""
    _check_memory_target(memory_target)
    with _stores(src, dst) as (source, target):
        _refuse_same(source, target)
        check_reachable(source, target, scheduler)
        _, document = detect(source, only="precomputed")
        dataset = open_dataset(source, writable=False, info_bytes=document)
        info = dataset.info
        clear_destination(target, overwrite)
        size = DEFAULT_SHARD_BYTES if shard_size_bytes is None else shard_size_bytes
        scales = [
            sharded_scale(s, info.num_channels, info.dtype.itemsize, size)
            if shard else unsharded_scale(s)
            for s in info.scales
        ]  # fmt: skip
        new_info = Info.from_bytes(info.with_scales(scales).to_bytes())
        new = PrecomputedDataset(target, new_info)
        reader = BlockReader(dataset, threads)
        arrays = [
            BigArray(new, mip=k, mode="r+", threads=threads, progress=False,
                     skip_empty=new.level(k).deletes_chunks)
            for k in range(len(scales))
        ]  # fmt: skip
        writer = BlockWriter(arrays)
        try:
            doing = "sharding" if shard else "unsharding"
            _run_blocks(reader, writer, reader.plans, scheduler, memory_target, progress,
                        f"{doing} {source.url} to {target.url}")  # fmt: skip
        finally:
            writer.close()
            reader.close()
        target.put(INFO_KEY, new_info.to_bytes())
    return new_info


# -- plain copies ----------------------------------------------------------------------------------
def copy_on_dask(
    source: Store,
    target: Store,
    keys: Sequence[str],
    batch: int,
    threads: int,
    scheduler: Any,
    progress: bool | None,
) -> tuple[int, int]:
    """Copy ``keys`` in tasks of ``batch`` keys on ``scheduler``: (objects, bytes) moved."""
    task = delayed(copy_objects, pure=False)
    src, dst = graph_key(source, "bigarrays-source"), graph_key(target, "bigarrays-target")
    groups = [list(keys[i : i + batch]) for i in range(0, len(keys), batch)]
    results = run_tasks([task(src, dst, group, threads) for group in groups],
                        [len(g) for g in groups], scheduler, progress,
                        f"copying {source.url} to {target.url}")  # fmt: skip
    return sum(r[0] for r in results), sum(r[1] for r in results)


# -- shared ----------------------------------------------------------------------------------------


def _refuse_same(source: Store, target: Store) -> None:
    if source.url.rstrip("/") == target.url.rstrip("/"):
        raise UnsupportedError(f"cannot copy {source.url} onto itself; write it to another place")


class _stores:
    """The source (read-only) and target stores; those opened here from URLs are closed at the
    end (a zip writes its central directory then), Store objects passed in are left open."""

    def __init__(self, src: str | os.PathLike[str] | Store, dst: str | os.PathLike[str] | Store):
        self.src, self.dst = src, dst
        self.opened: list[Store] = []

    def __enter__(self) -> tuple[Store, Store]:
        source = open_store(self.src, read_only=True)
        if not isinstance(self.src, Store):
            self.opened.append(source)
        try:
            target = open_store(self.dst, read_only=False)
        except BaseException:
            self.__exit__()
            raise
        if not isinstance(self.dst, Store):
            self.opened.append(target)
        return source, target

    def __exit__(self, *_: object) -> None:
        for store in reversed(self.opened):
            store.close()
