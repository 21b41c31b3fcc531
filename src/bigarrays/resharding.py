"""Convert a volume between the unsharded and the sharded layout (``bigarrays cp --shard``).

Every scale is copied one tile at a time: with ``shard=True`` a tile is one destination shard (an
aligned box of chunks chosen by :func:`~bigarrays.formats.precomputed.sharding.choose_sharding`),
so each shard is built in memory and put once; with ``shard=False`` a tile is one source shard
when shards are boxes, else a slab of chunks of about :data:`TILE_BYTES`. Memory is bounded by one
tile (uncompressed) plus its encoded chunks. Chunks equal to the fill value are not written.

The chunks' compression carries over: an unsharded scale's ``gzip`` (or any other compression)
becomes the sharded ``data_encoding`` gzip, and a sharded ``data_encoding`` gzip becomes the
unsharded ``gzip`` compression. Only the volume (``info`` and the scales' chunks) is converted:
meshes, skeletons and other folders the info names are not copied.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import replace

import numpy as np

from bigarrays.array import BigArray
from bigarrays.box import Box, ChunkPiece
from bigarrays.fill import is_fill
from bigarrays.formats.existing import clear_destination
from bigarrays.formats.precomputed.chunks import ChunkLayout, open_layout, scale_grid
from bigarrays.formats.precomputed.format import (
    INFO_KEY,
    PrecomputedDataset,
    read_info,
)
from bigarrays.formats.precomputed.info import Info, Scale
from bigarrays.formats.precomputed.sharding import (
    DEFAULT_SHARD_BYTES,
    ShardGeometry,
    choose_sharding,
)
from bigarrays.pipeline import ChunkEngine
from bigarrays.progress import progress_bar
from bigarrays.stores import Store, open_store

#: Size of a tile (uncompressed) when no shard box gives one.
TILE_BYTES = 256 << 20


def sharded_scale(scale: Scale, num_channels: int, itemsize: int, target_bytes: int) -> Scale:
    """``scale`` with an automatically chosen sharding spec (its chunks' compression kept)."""
    grid = tuple(-(-s // c) for s, c in zip(scale.size, scale.chunk_size, strict=True))
    was_gzip = scale.compression is not None or (
        scale.sharding is not None and scale.sharding.data_encoding == "gzip"
    )
    spec = choose_sharding(
        grid,
        math.prod(scale.chunk_size) * num_channels * itemsize,
        target_bytes,
        data_encoding="gzip" if was_gzip else "raw",
    )
    return replace(scale, sharding=spec, compression=None, compression_level=None,
                   chunk_sizes=(scale.chunk_size,))  # fmt: skip


def unsharded_scale(scale: Scale) -> Scale:
    """``scale`` without sharding (a gzip ``data_encoding`` becomes gzip compression)."""
    if scale.sharding is None:
        return scale
    compression = "gzip" if scale.sharding.data_encoding == "gzip" else None
    return replace(scale, sharding=None, compression=compression)


def tiles(scale: Scale, chunks_per_tile: Sequence[int]) -> Iterator[Box]:
    """Chunk-aligned 3-D boxes of ``chunks_per_tile`` chunks that tile the scale, x fastest."""
    step = [n * c for n, c in zip(chunks_per_tile, scale.chunk_size, strict=True)]
    bounds = Box.from_shape(scale.size, scale.voxel_offset)
    ranges = [range(a, b, s) for a, b, s in zip(bounds.start, bounds.stop, step, strict=True)]
    for z in ranges[2]:
        for y in ranges[1]:
            for x in ranges[0]:
                start = (x, y, z)
                stop = tuple(min(a + s, b) for a, s, b in zip(start, step, bounds.stop,
                                                                 strict=True))  # fmt: skip
                yield Box(start, stop)


def _slab_chunks(scale: Scale, chunk_bytes: int) -> tuple[int, int, int]:
    """Chunks per axis of a tile of about TILE_BYTES: whole rows of x first, then y, then z."""
    grid = [-(-s // c) for s, c in zip(scale.size, scale.chunk_size, strict=True)]
    budget = max(1, TILE_BYTES // max(1, chunk_bytes))
    out = []
    for g in grid:
        n = max(1, min(g, budget))
        out.append(n)
        budget = max(1, budget // n)
    return out[0], out[1], out[2]


def convert_dataset(
    src: str | os.PathLike[str] | Store,
    dst: str | os.PathLike[str] | Store,
    *,
    shard: bool,
    threads: int | None = None,
    progress: bool | None = None,
    overwrite: bool = False,
    shard_size_bytes: int | None = None,
) -> Info:
    """Copy the volume at ``src`` to ``dst``, sharded (``shard=True``) or unsharded; its info."""
    src_store = open_store(src, read_only=True)
    info = read_info(src_store)
    dst_store = open_store(dst, read_only=False)
    if dst_store.url.rstrip("/") == src_store.url.rstrip("/"):
        raise ValueError(f"source and destination are the same dataset ({src_store.url})")
    clear_destination(dst_store, overwrite)

    itemsize = info.dtype.itemsize
    target = DEFAULT_SHARD_BYTES if shard_size_bytes is None else shard_size_bytes
    scales = [
        sharded_scale(s, info.num_channels, itemsize, target) if shard else unsharded_scale(s)
        for s in info.scales
    ]
    dst_info = info.with_scales(scales)
    dst_store.put(INFO_KEY, dst_info.to_bytes())

    for mip, (old, new) in enumerate(zip(info.scales, scales, strict=True)):
        tiled = new if shard else old
        per_tile: Sequence[int] | None = None
        if tiled.sharding is not None:
            grid3 = scale_grid(tiled, info.num_channels).grid_shape[:3]
            per_tile = ShardGeometry.of(grid3, tiled.sharding).shard_chunks
        if per_tile is None:
            chunk_bytes = math.prod(old.chunk_size) * info.num_channels * itemsize
            per_tile = _slab_chunks(old, chunk_bytes)
        boxes = list(tiles(tiled, per_tile))
        reader = BigArray(PrecomputedDataset(src_store, info), mip=mip, threads=threads,
                          progress=False)  # fmt: skip
        writer = BigArray(PrecomputedDataset(dst_store, dst_info), mip=mip, mode="r+",
                          threads=threads, progress=False)  # fmt: skip
        layout = open_layout(dst_store, dst_info, mip)
        engine = ChunkEngine(writer.threads)
        try:
            with progress_bar(len(boxes), f"converting mip {mip}", progress) as advance:
                for box in boxes:
                    index = tuple(slice(a, b) for a, b in zip(box.start, box.stop, strict=True))
                    block = reader[index]
                    if shard:
                        writer[index] = block  # whole shards: each built in memory, put once
                    else:
                        _save_nonempty(layout, engine, box, block)
                    if advance is not None:
                        advance()
        finally:
            reader.close()
            writer.close()
            engine.close()
    return dst_info


def _save_nonempty(layout: ChunkLayout, engine: ChunkEngine, box: Box, block: np.ndarray) -> None:
    """Save the chunks of a chunk-aligned tile that hold something (unsharded destination)."""
    block4 = block if block.ndim == 4 else block[..., np.newaxis]
    box4 = Box((*box.start, 0), (*box.stop, layout.grid.size[3]))

    def save(piece: ChunkPiece) -> None:
        chunk = block4[piece.in_box]
        if not is_fill(chunk):
            layout.save(piece.chunk_index, chunk)

    engine.run(save, layout.grid.pieces(box4))
