"""Convert a whole dataset between precomputed and (OME-)Zarr (``bigarrays cp --format``).

Every level is converted, finest first, and lands at the same physical place:

* precomputed -> ``"zarr"``: an OME-Zarr (NGFF 0.5) image, a Zarr v3 group whose arrays ``"0"``,
  ``"1"``, ... are the scales, with axes ``("c",) "z", "y", "x"`` in C order (the precomputed
  ``(x, y, z, c)`` Fortran array transposed; a ``c`` axis only for several channels, chunked one
  channel at a time). Scale ``k``'s resolution (nm) and ``voxel_offset`` go into its ``scale``
  and ``translation`` by :func:`~bigarrays.formats.zarr.ome.multiscale_for`, since a Zarr
  array's indices start at 0.
* precomputed -> ``"zarr2"``: the same image as NGFF 0.4 over Zarr v2 arrays.
* (OME-)Zarr -> ``"precomputed"``: one scale per level, encoding raw, placed by
  :func:`~bigarrays.formats.zarr.ome.level_geometry` (offsets rounded to whole voxels, which
  ome-zarr-py's images, centred at 0, need). A plain Zarr array has resolution 1 nm and offset 0;
  unnamed axes are taken as ``(c,) z, y, x``. Space units are converted to nanometres (no unit:
  nanometres); a time axis, or any other axis, must have one element.

A precomputed segmentation becomes a plain unsigned-integer array (Zarr has no labels layer or
compressed_segmentation codec); the way back is an image of raw chunks. Converting a precomputed
volume to ``"precomputed"`` re-chunks it (and re-compresses it): a segmentation stays one, raw.

Memory is bounded: a level is copied in tiles of whole destination chunks, or whole shards on a
sharded destination (so no chunk or shard is read, merged and written again), of about
:data:`TILE_BYTES` (or one shard), :data:`TILES_IN_FLIGHT` at a time, each tile's chunks read and
written by the arrays' thread pools. The destination is sharded as the source's finest level is
unless told (``shard``); its shards hold about ``shard_size_bytes`` (1 GiB by default). Chunks that
hold only zeros are not written. The destination's root metadata is written last: a conversion that
fails half-way leaves no dataset there, only chunks that the next attempt (with ``overwrite``)
replaces.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from bigarrays.box import Box
from bigarrays.errors import UnsupportedError
from bigarrays.formats.existing import clear_destination
from bigarrays.pipeline import run_bounded
from bigarrays.progress import progress_bar
from bigarrays.stores import Store, open_store
from bigarrays.transfer import (
    DEFAULT_COMPRESSION,
    BlockReader,
    LevelPlan,
    check_conversion,
    new_dataset,
    open_source,
    sharding_of,
)

__all__ = ["DEFAULT_COMPRESSION", "ConvertResult", "LevelPlan", "convert_format"]

#: Uncompressed size a tile grows to (it is at least one source chunk along each axis).
TILE_BYTES = 64 << 20
#: Tiles read and written at once: one is read while another is written.
TILES_IN_FLIGHT = 2

Vec3 = tuple[int, int, int]


@dataclass(frozen=True)
class ConvertResult:
    """What a conversion wrote: levels, voxels (every channel) and the time it took."""

    levels: int
    voxels: int
    seconds: float


def _tiles(plan: LevelPlan, unit: Vec3, source_chunks: Vec3, bytes_per_voxel: int) -> list[Box]:
    """Boxes of whole destination write units (chunks, or whole shards: no shard is written
    in part, read back and merged), clipped to the level, that tile it, z slowest: each at least
    a source chunk wide, so no source chunk is read twice along an axis where one tile would
    hold it, and grown x first to about :data:`TILE_BYTES` (or one shard, if larger)."""
    chunk, bounds = unit, plan.bounds
    grid = [-(-s // c) for s, c in zip(plan.size, chunk, strict=True)]
    n = [max(1, min(g, -(-s // c))) for g, s, c in zip(grid, source_chunks, chunk, strict=True)]
    for axis in range(3):
        others = math.prod(n[b] * chunk[b] for b in range(3) if b != axis)
        fit = TILE_BYTES // max(1, others * chunk[axis] * bytes_per_voxel)
        n[axis] = max(n[axis], min(grid[axis], fit))
    step = [k * c for k, c in zip(n, chunk, strict=True)]
    ranges = [range(a, b, s) for a, b, s in zip(bounds.start, bounds.stop, step, strict=True)]
    starts = [(x, y, z) for z in ranges[2] for y in ranges[1] for x in ranges[0]]
    return [
        Box(start, tuple(min(a + s, b) for a, s, b in zip(start, step, bounds.stop, strict=True)))
        for start in starts
    ]


def convert_format(
    src: str | os.PathLike[str] | Store,
    dst: str | os.PathLike[str] | Store,
    format: str,
    *,
    chunks: Sequence[int] | None = None,
    compression: str | None = None,
    overwrite: bool = False,
    threads: int | None = None,
    progress: bool | None = None,
    shard: bool | None = None,
    shard_size_bytes: int | None = None,
) -> ConvertResult:
    """Convert the dataset at ``src`` (any format, every level) to ``format`` at ``dst``.

    ``format`` is ``"zarr"`` (an OME-Zarr NGFF 0.5 image over Zarr v3), ``"zarr2"`` (NGFF 0.4
    over Zarr v2) or ``"precomputed"``; see the module's text for how axes and placement carry
    over. ``chunks`` (x, y, z) re-chunks every level (a Zarr chunk is then ``(1,) z, y, x``);
    None keeps each level's source chunks. ``compression`` None picks the format's default
    (:data:`DEFAULT_COMPRESSION`), ``"none"`` none. ``shard`` True writes every level sharded,
    in shards of about ``shard_size_bytes`` uncompressed (default 1 GiB), False unsharded, None
    as the source's finest level is. A dataset at ``dst`` raises
    :class:`~bigarrays.errors.DatasetExistsError` unless ``overwrite``. ``progress`` True/False
    forces the bar on or off; None shows it on a terminal for long conversions.
    """
    chunks = check_conversion(format, chunks, threads)
    started = time.perf_counter()
    source = open_store(src, read_only=True)
    try:
        dataset = open_source(source)
        reader = BlockReader(dataset, threads)
        try:
            target = open_store(dst, read_only=False)
            try:
                sharded, size = sharding_of(reader, shard, shard_size_bytes)
                voxels = _convert(reader, target, format, chunks, compression, overwrite,
                                  threads, progress, sharded, size)  # fmt: skip
            finally:
                if not isinstance(dst, Store):
                    target.close()  # a zip writes its central directory here
        finally:
            reader.close()
    finally:
        if not isinstance(src, Store):
            source.close()
    return ConvertResult(len(reader.plans), voxels, time.perf_counter() - started)


def _convert(
    reader: BlockReader, target: Store, format: str, chunks: Vec3 | None,
    compression: str | None, overwrite: bool, threads: int | None, progress: bool | None,
    shard: bool, shard_size_bytes: int | None,
) -> int:  # fmt: skip
    source = reader.dataset.store
    if source.url.rstrip("/") == target.url.rstrip("/"):
        raise UnsupportedError(f"cannot convert {source.url} onto itself; write it elsewhere")
    plans = list(reader.plans)
    if chunks is not None:
        plans = [replace(plan, chunks=chunks) for plan in plans]
    dtype, channels = reader.dataset.dtype, reader.channels
    # Every argument is checked (by building the new metadata) before an old dataset goes. A
    # precomputed segmentation stays one (raw); Zarr has no layer type, so it gives images.
    writer, finish = new_dataset(target, format, plans, dtype, channels, compression, threads,
                                 reader.dataset.layer_type, shard, shard_size_bytes)  # fmt: skip
    try:
        clear_destination(target, overwrite)
        work = [
            (mip, box)
            for mip, plan in enumerate(plans)
            for box in _tiles(
                plan, writer.unit(mip), reader.plans[mip].chunks, channels * dtype.itemsize
            )
        ]
        # The bar counts destination chunks: a few large tiles still show steady progress.
        total = sum(math.prod(_chunks_in(box, plans[mip].chunks)) for mip, box in work)
        description = f"converting {source.url} to {format} at {target.url}"
        pool = ThreadPoolExecutor(TILES_IN_FLIGHT, thread_name_prefix="bigarrays-convert")
        with progress_bar(total, description, progress) as advance, pool:
            lock = threading.Lock()

            def copy_tile(item: tuple[int, Box]) -> None:
                mip, box = item
                writer.write(mip, box, reader.read(mip, box), plans[mip].voxel_offset)
                if advance is not None:
                    with lock:
                        for _ in range(math.prod(_chunks_in(box, plans[mip].chunks))):
                            advance()

            run_bounded(copy_tile, work, pool, TILES_IN_FLIGHT)
        finish()
    finally:
        writer.close()
    return sum(math.prod(plan.size) * channels for plan in plans)


def _chunks_in(box: Box, chunks: Vec3) -> tuple[int, ...]:
    """Chunks along each axis of a tile (its last chunks may be cut by the level's end)."""
    return tuple(-(-n // c) for n, c in zip(box.shape, chunks, strict=True))
