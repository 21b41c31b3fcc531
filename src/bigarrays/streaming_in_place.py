"""Slabs of raw chunks written in place: each frame goes straight to where its chunks are stored,
and a slab's chunks (or shards) are published once it is whole.

Where a level stores chunk values as they lie in memory and the store writes a value at offsets
before publishing it (a file of its own, renamed into place under the key's lock), a frame needs
no slab in memory. The levels: Zarr with the ``bytes`` codec alone in C order (in Zarr v2, no
filter and no compressor), and unsharded precomputed scales of ``raw`` chunks without
compression (Fortran order). A frame's part of a chunk is one run of the chunk's stored bytes per
index of the axes that vary slower than the streamed one (a single run when it is the slowest: t
first in C order, z of ``(x, y, z)`` in Fortran order; one per channel for ``(x, y, z, c)``), so
it is copied there once, from a buffer of one chunk's part of a frame. A shard's inner chunks go
where the format lays them out, in its write order, assuming every one of the slab's chunks holds
data; the index follows at the publish.

The bytes are those the engine writes for the same voxels. Zarr edge chunks are padded with the
fill value; precomputed ones are clipped to the volume, and a slab cut short at the stream's
close is stored under its chunks' clipped names (read back from the unpublished values, a chunk
at a time). Chunks all fill are deleted (``skip_empty``) or left out of their shards; where one
that was left out lies before a stored one in a shard's order, the others are no longer where
they were placed, and the shard is read back from its unpublished value and put laid out anew
(a shard's memory, and only for slabs with chunks all fill inside their data).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bigarrays.box import Box
from bigarrays.fill import is_fill
from bigarrays.formats.precomputed.chunks import ChunkLayout
from bigarrays.formats.zarr.chunks import ZarrChunks
from bigarrays.formats.zarr.sharded_chunks import ShardedZarrChunks
from bigarrays.stores.value_writer import ValueWriter
from bigarrays.streaming_shards import stored_as_they_lie
from bigarrays.transpose import fortran_copy

Source = ZarrChunks | ShardedZarrChunks | ChunkLayout

#: Objects (chunks or shards) a slab keeps open between frames; a slab of more opens them for
#: every frame, which cost 15% more time for 2048x2048 frames of 64 chunks, but holds no file
#: descriptors.
MAX_OPEN = 256


def writes_in_place(source: Any, box: Box) -> bool:
    """Whether slabs of ``source`` at ``box`` can be written in place: raw chunks as they lie in
    memory, on a store that writes at offsets, and a box that starts on the chunk grid."""
    if isinstance(source, ShardedZarrChunks | ZarrChunks):
        raw = source.order == "C" and stored_as_they_lie(source.chain, source.dtype)
    elif isinstance(source, ChunkLayout):
        # Raw, uncompressed, unsharded, little-endian values (fast_raw's terms) of this machine.
        raw = source.fast_raw and source.dtype == source.dtype.newbyteorder("=")
    else:
        return False
    grid = source.grid
    aligned = all((s - o) % c == 0 for s, o, c in zip(box.start, grid.origin, grid.chunk,
                                                      strict=True))  # fmt: skip
    return raw and aligned and source.store.writes_at_offsets


@dataclass
class _Cell:
    """One chunk of a slab and where its bytes go."""

    g: tuple[int, ...]  # its place in the slab (in chunks)
    index: tuple[int, ...]  # its index in the level's grid
    take: list[slice]  # its voxels in the slab (the streamed axis's slice set per block)
    shape: tuple[int, ...]  # its stored shape (precomputed: clipped to the volume)
    key: str  # its object: the chunk, or its shard
    base: int  # where its bytes begin in the object
    frame_bytes: int  # bytes between its frames
    runs: list[tuple[int, tuple[int, ...]]]  # each run of a frame: offset, index of slower axes


class InPlaceSlab:
    """One slab of whole (inner) chunks of ``source`` at ``box`` (a whole write unit along
    ``axis``), its frames written to the store as they are put."""

    #: The slab holds no frames in memory: a stream's queue does not count it.
    nbytes = 0

    def __init__(self, source: Source, box: Box, axis: int, skip_empty: bool) -> None:
        grid = source.grid
        self.source, self.box, self.axis = source, box, axis
        self._skip_empty = skip_empty
        self._order = source.order
        self._dtype = source.dtype
        self.chunk = tuple(grid.chunk)
        counts = tuple(-(-n // c) for n, c in zip(box.shape, self.chunk, strict=True))
        first = [(s - o) // c for s, o, c in zip(box.start, grid.origin, self.chunk, strict=True)]
        self._fill = np.asarray(source.fill_value, dtype=source.dtype)
        # The chunks of the slab with a voxel put that is not fill; the frames put so far (they
        # come in order from the slab's start).
        self._data: set[tuple[int, ...]] = set()
        self._put = 0
        # Frames cut from a block and made contiguous, by shape (the same one, frame after frame).
        self._buffers: dict[tuple[int, ...], np.ndarray] = {}
        # Per stored object (a chunk, or a shard): its value being written.
        self._values: dict[str, ValueWriter] = {}
        self._shards: dict[str, tuple[Any, dict[int, tuple[int, ...]]]] = {}
        place: dict[tuple[int, ...], tuple[str, int]] = {}
        indices = {g: tuple(f + i for f, i in zip(first, g, strict=True))
                   for g in np.ndindex(*counts)}  # fmt: skip
        if isinstance(source, ShardedZarrChunks):
            by_shard: dict[Any, dict[int, tuple[int, ...]]] = {}
            for g, index in indices.items():
                shard, cid = source.locate(index)
                by_shard.setdefault(shard, {})[cid] = g
            for shard, cids in by_shard.items():
                key = source.shard_key(shard)
                self._shards[key] = (shard, cids)
                for cid, at in _layout(source, cids).items():
                    place[cids[cid]] = (key, at)
        else:
            place = {g: (source.key(index), 0) for g, index in indices.items()}
        self._cells = [self._cell(g, index, *place[g]) for g, index in indices.items()]

    def _cell(self, g: tuple[int, ...], index: tuple[int, ...], key: str, base: int) -> _Cell:
        k, itemsize = self.axis, self._dtype.itemsize
        take = [slice(i * c, min((i + 1) * c, n))
                for i, c, n in zip(g, self.chunk, self.box.shape, strict=True)]  # fmt: skip
        if isinstance(self.source, ChunkLayout):
            shape = self.source.grid.chunk_box(index).shape  # clipped, as precomputed stores it
        else:
            shape = self.chunk  # padded, as Zarr stores it
        d = len(shape)
        if self._order == "C":
            strides = [math.prod(shape[i + 1 :]) * itemsize for i in range(d)]
            slower = range(k)
        else:
            strides = [math.prod(shape[:i]) * itemsize for i in range(d)]
            slower = range(k + 1, d)
        runs = [(sum(i * strides[a] for i, a in zip(outer, slower, strict=True)), outer)
                for outer in np.ndindex(*(shape[a] for a in slower))]  # fmt: skip
        return _Cell(g, index, take, tuple(shape), key, base, strides[k], runs)

    # -- frames ----------------------------------------------------------------------------------
    def put(self, block: np.ndarray, at: Sequence[int]) -> None:
        """Write ``block`` (whole along every axis but the slab's, where it starts at
        ``at[axis]``, the first frame not put yet) to its chunks."""
        k = self.axis
        a, b = at[k], at[k] + block.shape[k]
        assert a == self._put, (a, self._put)
        c = self.chunk[k]
        for cell in self._cells:
            g = cell.g
            lo, hi = max(a, g[k] * c), min(b, (g[k] + 1) * c)
            if lo < hi:
                cell.take[k] = slice(lo - a, hi - a)
                part = block[tuple(cell.take)]
                if g not in self._data and not is_fill(part, self._fill):
                    self._data.add(g)
                self._write_frames(cell, self._tile(part, cell.shape), lo - g[k] * c)
        self._put = b
        # A whole slab waits for its publish holding no open file; one of many objects holds
        # none between frames (each frame opens them again).
        if b == self.box.shape[k] or len(self._values) > MAX_OPEN:
            for value in self._values.values():
                value.release()

    def _tile(self, part: np.ndarray, stored: tuple[int, ...]) -> np.ndarray:
        """``part`` of a chunk (whole along every axis but the slab's) as the contiguous frames
        that chunk stores (of ``stored`` shape): Zarr's edge chunks padded with the fill value."""
        k, order = self.axis, self._order
        shape = tuple(part.shape[k] if i == k else n for i, n in enumerate(stored))
        contiguous = part.flags.c_contiguous if order == "C" else part.flags.f_contiguous
        if part.shape == shape and contiguous:
            return part
        if shape not in self._buffers:
            self._buffers[shape] = np.empty(shape, self._dtype, order=order)
        tile = self._buffers[shape]
        if part.shape != shape:
            tile[...] = self._fill
        inside = tile[tuple(slice(0, m) for m in part.shape)]
        if order == "F":  # frames come C-ordered: the word-wise transpose
            fortran_copy(part, inside)
        else:
            inside[...] = part
        return tile

    def _write_frames(self, cell: _Cell, tile: np.ndarray, dst: int) -> None:
        """Store ``tile`` (whole along every axis but the slab's) at frame ``dst`` of ``cell``'s
        chunk: one run of bytes per index of the axes slower than the slab's."""
        value = self._values.get(cell.key)
        if value is None:
            value = self._values[cell.key] = self.source.store.open_value(cell.key)
        at = cell.base + dst * cell.frame_bytes
        fortran = self._order == "F"
        for offset, outer in cell.runs:
            where: tuple[Any, ...] = (Ellipsis, *outer) if fortran else outer
            value.write_at(at + offset, tile[where].ravel(order="K").data)

    # -- publishing ------------------------------------------------------------------------------
    def publish(self, now: Any) -> None:
        """Store the slab's chunks; the values not stored are dropped. ``now`` is the level's
        source for the frames put: in a slab cut short at a close, the rest of each Zarr chunk
        is fill, and precomputed chunks take the clipped names ``now`` gives them."""
        try:
            if self._shards:
                for cell in self._cells:
                    self._pad(cell)
                for key, (shard, cids) in self._shards.items():
                    self._publish_shard(key, shard, cids)
            elif isinstance(self.source, ChunkLayout) and self._put < self.box.shape[self.axis]:
                for cell in self._cells:
                    self._publish_clipped(cell, now)
            else:
                for cell in self._cells:
                    self._pad(cell)
                    self._publish_chunk(cell)
        finally:
            self.discard()

    def _frames_put(self, cell: _Cell) -> int:
        """The frames of ``cell``'s chunk put so far."""
        k = self.axis
        return int(min(cell.shape[k], max(self._put - cell.g[k] * self.chunk[k], 0)))

    def _pad(self, cell: _Cell) -> None:
        """Fill the frames of ``cell``'s chunk nothing was put to, if it is to be stored."""
        if cell.g not in self._data and (self._shards or self._skip_empty):
            return
        k, end = self.axis, self._frames_put(cell)
        if end < cell.shape[k]:
            shape = tuple(cell.shape[k] - end if i == k else n for i, n in enumerate(cell.shape))
            self._write_frames(cell, np.full(shape, self._fill, self._dtype, self._order), end)

    def _publish_chunk(self, cell: _Cell) -> None:
        if cell.g in self._data or not self._skip_empty:
            self._values[cell.key].publish()
            return
        value = self._values.pop(cell.key, None)
        if value is not None:
            value.discard()
        assert isinstance(self.source, ZarrChunks | ChunkLayout)
        self.source.delete(cell.index)  # what an earlier write stored there

    def _publish_clipped(self, cell: _Cell, now: Source) -> None:
        """Store ``cell``'s precomputed chunk, cut short, under the name of its clipped box:
        the frames put of each run, read back."""
        assert isinstance(now, ChunkLayout)
        value = self._values.pop(cell.key, None)
        try:
            if value is None or (cell.g not in self._data and self._skip_empty):
                now.delete(cell.index)
                return
            nbytes = self._frames_put(cell) * cell.frame_bytes
            data = b"".join(value.read_at(cell.base + offset, nbytes) for offset, _ in cell.runs)
            now.store.put(now.key(cell.index), data)
        finally:
            if value is not None:
                value.discard()

    def _publish_shard(self, key: str, shard: Any, cids: dict[int, tuple[int, ...]]) -> None:
        source = self.source
        assert isinstance(source, ShardedZarrChunks)
        present = {cid: g for cid, g in cids.items() if g in self._data}
        try:
            if not present:
                value = self._values.pop(key, None)
                if value is not None:
                    value.discard()
                source._put_whole(key, None)
                return
            placed = _layout(source, cids)
            at = _layout(source, present)
            nbytes = math.prod(self.chunk) * self._dtype.itemsize
            if all(placed[cid] == at[cid] for cid in present):
                value = self._values[key]
                stand_in = np.zeros(nbytes, np.uint8)  # only its size is read
                *_, index = source.shard_parts(lambda cid: stand_in if cid in present else None)
                config = source.config
                size = config.index_nbytes * (config.index_location == "start")
                size += len(present) * nbytes
                if config.index_location == "start":
                    value.write_at(0, index)
                    value.truncate(size)
                else:
                    value.truncate(size)
                    value.write_at(size, index)
                value.publish()
                return
            # A chunk all fill lies before a stored one: the others move up.
            value = self._values.pop(key)
            try:
                chunks = {cid: value.read_at(placed[cid], nbytes) for cid in present}
            finally:
                value.discard()
            source._put_whole(key, source.encode_shard_parts(chunks))
        finally:
            source.forget_index(shard)

    def discard(self) -> None:
        """Drop every value not published (a stream aborted, or a failed write)."""
        values, self._values = self._values, {}
        for value in values.values():
            value.discard()


def _layout(source: ShardedZarrChunks, cids: dict[int, Any]) -> dict[int, int]:
    """Where each inner chunk of ``cids`` lies in its shard when they are all it holds."""
    config = source.config
    at = config.index_nbytes if config.index_location == "start" else 0
    out: dict[int, int] = {}
    for cid in sorted(cids, key=source.chunk_rank):
        out[cid] = at
        at += math.prod(config.chunk_shape) * source.dtype.itemsize
    return out


__all__ = ["InPlaceSlab", "writes_in_place"]
