"""Building and updating image pyramids: every level pooled from level 0, block by block.

Level k holds level 0 pooled by its cumulative factor (``ops.pooling``: TensorStore's
``downsample`` semantics), never level k-1 pooled again, so there is no rounding drift and modes
and medians are true ones. Work goes in blocks of level 0 planned by ``ops.pyramid_plan``: each
block is read once, pooled for every level, and each level's part written; ``threads`` blocks are
in flight at once, each within its share of ``memory_target``.

This module works on a dataset's levels and the chunk engine, below ``BigArray``, whose
``downsample`` and ``update_pyramid`` methods call it.
"""

from __future__ import annotations

import concurrent.futures as cf
import math
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bigarrays.box import Box
from bigarrays.errors import (
    InvalidArgumentError,
    InvalidInfoError,
    ReadOnlyError,
    UnsupportedError,
)
from bigarrays.fill import is_fill
from bigarrays.formats.base import Dataset, Level, LevelSpec
from bigarrays.ops.pooling import METHODS, check_method, pool_levels, pooled_bounds
from bigarrays.ops.pyramid_plan import (
    BlockPlan,
    LevelGrid,
    auto_steps,
    cumulative,
    fixed_steps,
    plan_blocks,
)
from bigarrays.pipeline import ChunkEngine, run_bounded
from bigarrays.progress import progress_bar

#: Default bytes of level-0 voxels and their pooled copies in memory at once.
DEFAULT_MEMORY_TARGET = 1 << 30
#: Bytes a block costs per byte of its level-0 voxels: the block, the pooling's sums and
#: copies (up to 1.9x a small block), the pooled levels.
BLOCK_OVERHEAD = 3
#: Bytes a worker holds whatever its block for mode and median, whose sorts go slab by slab
#: (``ops.pooling``: ~22 MiB measured for uint8 and uint64 slabs).
RANK_WORKING_BYTES = 24 << 20


def resolve_method(method: str, dataset: Dataset, dtype: np.dtype) -> str:
    """``"auto"``: what the dataset records, else ``mode`` for segmentation, ``mean`` for images."""
    if method == "auto":
        recorded = dataset.pooling_method
        if recorded in METHODS:
            method = str(recorded)
        else:
            method = "mode" if dataset.layer_type == "segmentation" else "mean"
    check_method(method, dtype)
    return method


def level_factor(base: Level, level: Level, k: int) -> tuple[int, ...]:
    """Level ``k``'s factor from level 0 along every grid axis, from the two resolutions."""
    factor = [1] * len(base.axes)
    for axis, r0, rk in zip(base.spatial, base.resolution, level.resolution, strict=True):
        ratio = rk / r0
        f = round(ratio)
        if f < 1 or abs(ratio - f) > 1e-6 * ratio:
            raise InvalidInfoError(
                f"level {k}'s resolution {level.resolution} is not a whole multiple of level "
                f"0's {base.resolution}: it was not pooled from level 0 by a factor"
            )
        factor[axis] = f
    return tuple(factor)


def pyramid_factors(base: Level, factor: Any, num_mips: int | None) -> list[tuple[int, ...]]:
    """The cumulative factor of each level that :func:`build` would add to ``base`` (its
    ``factor`` and ``num_mips``), for writers that pool the levels themselves (a stream)."""
    return cumulative(_steps(base, factor, num_mips))


def _steps(base: Level, factor: Any, num_mips: int | None) -> list[tuple[int, ...]]:
    """Per-level steps along every grid axis, from ``downsample``'s ``factor`` and ``num_mips``."""
    pooled = [axis.kind == "space" and i in base.spatial for i, axis in enumerate(base.axes)]
    shape = base.bounds.shape
    chunk = base.source.grid.chunk
    if num_mips is not None and (isinstance(num_mips, bool) or int(num_mips) != num_mips
                                 or num_mips < 0):  # fmt: skip
        raise InvalidInfoError(f"num_mips must be a whole number >= 0, got {num_mips!r}")
    if isinstance(factor, str):
        if factor != "auto":
            raise InvalidInfoError(f"factor must be 'auto' or a tuple of integers, got {factor!r}")
        resolution = [1.0] * len(base.axes)
        for axis, r in zip(base.spatial, base.resolution, strict=True):
            resolution[axis] = r
        return auto_steps(shape, chunk, resolution, pooled, num_mips)
    names = [base.axes[i].name for i in base.spatial]
    values = tuple(factor)
    if len(values) != len(names):
        raise InvalidInfoError(
            f"factor {values} has {len(values)} entries; give one per axis ({', '.join(names)})"
        )
    step = [1] * len(base.axes)
    for axis, name, f in zip(base.spatial, names, values, strict=True):
        if isinstance(f, bool) or not isinstance(f, (int, np.integer)) or f < 1:
            raise InvalidInfoError(f"factor along {name} must be an integer >= 1, got {f!r}")
        if f > 1 and not pooled[axis]:
            raise InvalidInfoError(
                f"axis {name!r} is a {base.axes[axis].kind} axis: pyramids pool space axes only"
            )
        step[axis] = int(f)
    return fixed_steps(step, shape, chunk, pooled, num_mips)


def build(
    dataset: Dataset,
    engine: ChunkEngine,
    *,
    factor: Any = "auto",
    num_mips: int | None = None,
    method: str = "auto",
    region: Box | None = None,
    chunks: Sequence[int] | None = None,
    encoding: str | None = None,
    compression: str | None = None,
    sharding: Any = None,
    memory_target: int = DEFAULT_MEMORY_TARGET,
    threads: int | None = None,
    progress: bool | None = None,
    overwrite: bool = False,
    scheduler: Any = None,
) -> Dataset:
    """Add the levels of a pyramid to ``dataset`` and write them; the dataset with them.

    ``region`` (a box over level 0's grid axes, None for all of it) limits what is pooled now;
    the rest of the new levels reads as the fill value until an update covers it.
    """
    if dataset.store.read_only:
        raise ReadOnlyError(f"{dataset.store.url} is read-only: a pyramid cannot be written there")
    if scheduler is not None:
        _check_workers_reach(dataset, scheduler)  # before any level is added
    base = dataset.level(0)
    method = resolve_method(method, dataset, dataset.dtype)
    steps = _steps(base, factor, num_mips)
    if not steps:
        return dataset
    chunk_axes = None if chunks is None else _grid_chunks(base, chunks)
    # A shard whose level-0 voxels fit in a block is written whole, once: size the new levels'
    # shards so (where the format chooses them), the finer levels' the largest.
    workers = _workers(threads, engine)
    block_bytes = block_budget(memory_target, workers, method) // BLOCK_OVERHEAD
    specs = []
    for f in cumulative(steps):
        start, stop = pooled_bounds(base.bounds.start, base.bounds.stop, f, method)
        specs.append(LevelSpec(f, Box(start, stop), chunk_axes, encoding, compression, sharding,
                               shard_bytes=max(1, block_bytes // math.prod(f))))  # fmt: skip
    new = dataset.with_levels(specs, method=method, replace_levels=overwrite)
    run(new, engine, region, method=method, memory_target=memory_target, threads=threads,
        progress=progress, fresh=True, scheduler=scheduler)  # fmt: skip
    return new


def _grid_chunks(base: Level, chunks: Sequence[int]) -> tuple[int, ...]:
    values = tuple(int(c) for c in chunks)
    if len(values) != len(base.spatial) or any(c < 1 for c in values):
        names = ", ".join(base.axes[i].name for i in base.spatial)
        raise InvalidInfoError(f"chunks {tuple(chunks)}: give one size >= 1 per axis ({names})")
    out = list(base.source.grid.chunk)
    for axis, c in zip(base.spatial, values, strict=True):
        out[axis] = c
    return tuple(out)


@dataclass(frozen=True)
class _Target:
    level: Level
    grid: LevelGrid
    #: The voxels of this level the run rewrites.
    affected: Box


def run(
    dataset: Dataset,
    engine: ChunkEngine,
    region: Box | None,
    *,
    method: str,
    memory_target: int = DEFAULT_MEMORY_TARGET,
    threads: int | None = None,
    progress: bool | None = None,
    fresh: bool = False,
    scheduler: Any = None,
) -> None:
    """Recompute the part of every level above 0 that level-0 ``region`` affects (None: all).

    ``fresh``: the levels hold nothing yet, so blocks that are all fill value are not written.
    ``scheduler``: run the blocks as Dask tasks (see :func:`run_on_dask`) instead of threads.
    """
    if dataset.num_levels < 2:
        return
    if dataset.store.read_only:
        raise ReadOnlyError(f"{dataset.store.url} is read-only: its pyramid cannot be updated")
    base = dataset.level(0)
    region = base.bounds if region is None else region.intersect(base.bounds)
    if region.empty:
        return
    targets = []
    for k in range(1, dataset.num_levels):
        level = dataset.level(k)
        grid = LevelGrid(level_factor(base, level, k), level.bounds, level.unit,
                         level.source.grid.origin)  # fmt: skip
        start, stop = pooled_bounds(region.start, region.stop, grid.factor, method)
        targets.append(_Target(level, grid, grid.affected(Box(start, stop))))
    # Read every level-0 voxel that a rewritten voxel of any level is pooled from.
    read = region
    for t in targets:
        read = _hull(read, t.grid.footprint(t.affected).intersect(base.bounds))
    workers = _workers(threads, engine)
    voxel_bytes = dataset.dtype.itemsize * BLOCK_OVERHEAD
    plan = plan_blocks([t.grid for t in targets], base.unit, base.source.grid.origin,
                       voxel_bytes, block_budget(memory_target, workers, method), read)  # fmt: skip
    _check_merges(dataset, targets, plan)
    blocks = list(plan.blocks(read))
    if scheduler is not None:
        run_on_dask(dataset, targets, blocks, method, fresh, scheduler, engine.threads, progress)
        return
    with progress_bar(len(blocks), f"pyramid of {dataset.store.url}", progress) as advance:
        buffers = threading.local()

        def one(block: Box) -> None:
            _pool_block(engine, base, targets, block, method, fresh, buffers)

        pool = cf.ThreadPoolExecutor(workers, thread_name_prefix="bigarrays-pyramid")
        try:
            run_bounded(one, blocks, pool, workers, advance)
        finally:
            pool.shutdown(wait=True)


def run_on_dask(
    dataset: Dataset,
    targets: Sequence[_Target],
    blocks: Sequence[Box],
    method: str,
    fresh: bool,
    scheduler: Any,
    threads: int,
    progress: bool | None = None,
) -> None:
    """One Dask task per block, on ``scheduler``: a Dask scheduler name ("threads",
    "processes", "sync"), a ``distributed.Client``, or a scheduler's address.

    The dataset (which pickles as its store's settings and metadata) travels once, as a key the
    tasks depend on; a task opens the levels where it runs. The blocks are the ones the local
    run would use, so no two tasks write the same chunk or shard of an aligned level. The bar
    (``progress`` as for the local run) advances as the cluster reports each block done.
    """
    try:
        from dask.delayed import delayed
    except ImportError as exc:  # pragma: no cover - dask is in the test extras
        from bigarrays.errors import MissingDependencyError

        raise MissingDependencyError("dask", "dask", "running a pyramid on Dask") from exc
    from bigarrays.adapters.dask_run import graph_key, run_tasks

    _check_workers_reach(dataset, scheduler)
    plan = [(k, t.grid, t.affected) for k, t in enumerate(targets, start=1)]
    shared = graph_key(dataset, "bigarrays-pyramid-dataset")
    task = delayed(_pool_block_task, pure=False)
    tasks = [task(shared, plan, block, method, fresh, threads) for block in blocks]
    run_tasks(tasks, [1] * len(tasks), scheduler, progress, f"pyramid of {dataset.store.url}")


def _check_workers_reach(dataset: Dataset, scheduler: Any) -> None:
    """Refuse a store that the processes of ``scheduler`` would each see a copy of (memory) or
    corrupt by writing at once (zip): the levels are read and written where the tasks run."""
    from bigarrays.adapters.dask_run import check_reachable

    check_reachable(dataset.store, dataset.store, scheduler)


def _pool_block_task(
    dataset: Dataset,
    plan: Sequence[tuple[int, LevelGrid, Box]],
    block: Box,
    method: str,
    fresh: bool,
    threads: int,
) -> None:
    """A block of :func:`run`, in a Dask task: the levels are opened where the task runs."""
    engine = ChunkEngine(threads)
    try:
        targets = [_Target(dataset.level(k), grid, affected) for k, grid, affected in plan]
        _pool_block(engine, dataset.level(0), targets, block, method, fresh)
    finally:
        engine.close()


def _workers(threads: int | None, engine: ChunkEngine) -> int:
    return max(1, min(threads or os.cpu_count() or 1, engine.threads))


def block_budget(memory_target: int, workers: int, method: str) -> int:
    """Bytes one worker's block may cost (``BLOCK_OVERHEAD`` per byte of its voxels)."""
    if isinstance(memory_target, bool) or not isinstance(memory_target, (int, np.integer)):
        raise InvalidArgumentError(f"memory_target is a number of bytes, got {memory_target!r}")
    if memory_target < 1:
        raise InvalidArgumentError(f"memory_target must be at least 1 byte, got {memory_target}")
    share = memory_target // workers
    if method in ("mode", "median"):
        share -= RANK_WORKING_BYTES
    return max(1, share)


def _hull(a: Box, b: Box) -> Box:
    if b.empty:
        return a
    return Box(
        tuple(min(x, y) for x, y in zip(a.start, b.start, strict=True)),
        tuple(max(x, y) for x, y in zip(a.stop, b.stop, strict=True)),
    )


def _check_merges(dataset: Dataset, targets: Sequence[_Target], plan: BlockPlan) -> None:
    """Refuse, before writing anything, a run that needs partial writes a store cannot do."""
    unaligned = [k for k in range(1, len(targets) + 1) if k not in plan.aligned]
    if not unaligned or dataset.store.conditional_writes:
        return
    raise UnsupportedError(
        f"levels {unaligned} of {dataset.store.url} cannot be written in whole chunks within "
        "memory_target (their chunks are bigger than a block, or their voxel offsets are not "
        "multiples of their factors), and this store has no conditional writes to merge parts "
        "of chunks safely: raise memory_target, or write the pyramid on a local, memory, S3 or "
        "GCS store and copy it"
    )


def _pool_block(
    engine: ChunkEngine,
    base: Level,
    targets: Sequence[_Target],
    block: Box,
    method: str,
    fresh: bool,
    buffers: threading.local | None = None,
) -> None:
    """Read ``block`` of level 0 (into the calling thread's buffer in ``buffers``, reused from
    block to block: fresh pages would be zeroed by the system for each block, a cost as large
    as the read's), pool it for every level and write each level's part."""
    source = base.source
    out = None
    if buffers is not None:
        out = getattr(buffers, "block", None)
        if out is None or out.shape != block.shape:
            out = buffers.block = None  # the old one goes before the new one is made
            out = buffers.block = np.empty(block.shape, dtype=source.dtype, order=source.order)
    data = engine.read(source, block, out=out)
    if fresh and _all_fill(data, source.fill_value):
        return
    pooled = pool_levels(data, block.start, [t.grid.factor for t in targets], method)
    del data, out
    for target, (values, start) in zip(targets, pooled, strict=True):
        box = Box(start, tuple(s + n for s, n in zip(start, values.shape, strict=True)))
        part = box.intersect(target.affected)
        if part.empty:
            continue
        cut = values[part.slices(box.start)]
        source = target.level.source
        if fresh and is_fill(cut, source.fill_value):
            continue
        # A view: the engine cuts it into chunks and copies each chunk's part once anyway.
        engine.write(source, part, cut, skip_empty=target.level.deletes_chunks)


def _all_fill(data: np.ndarray, fill_value: Any) -> bool:
    """Whether ``data`` is all fill value; a block of data usually shows it is not in its first
    voxels, before a pass over all of them."""
    corner = data[tuple(slice(0, 16) for _ in data.shape)]
    return is_fill(corner, fill_value) and is_fill(data, fill_value)
