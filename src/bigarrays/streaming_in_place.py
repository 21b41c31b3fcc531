"""Slabs of raw Zarr chunks written in place: each frame goes straight to where its chunks are
stored, and a slab's chunks (or shards) are published once it is whole.

Where a level stores chunk values as they lie in memory (the ``bytes`` codec alone, C order; in Zarr
v2 no filter and no compressor) and the store writes a value at offsets before publishing it (a file
of its own, renamed into place under the key's lock), a frame needs no slab in memory. Its part of a
chunk is one run of the chunk's stored bytes per index of the axes before the streamed one (a single
run when the streamed axis comes first), so it is copied there once, from a buffer of one chunk's
part of a frame. A shard's inner chunks go where the format lays them out, in its write order,
assuming every one of the slab's chunks holds data; the index follows at the publish.

The bytes are those the engine writes for the same voxels. Edge chunks are padded with the fill
value. Chunks all fill are deleted (``skip_empty``) or left out of their shards; where one that
was left out lies before a stored one in a shard's order, the others are no longer where they
were placed, and the shard is read back from its unpublished value and put laid out anew (a
shard's memory, and only for slabs with chunks all fill inside their data).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from bigarrays.box import Box
from bigarrays.fill import is_fill
from bigarrays.formats.zarr.chunks import ZarrChunks
from bigarrays.formats.zarr.sharded_chunks import ShardedZarrChunks
from bigarrays.stores.base import ValueWriter
from bigarrays.streaming_shards import stored_as_they_lie

Source = ZarrChunks | ShardedZarrChunks

#: Objects (chunks or shards) a slab keeps open between frames; a slab of more opens them for
#: every frame, which cost 15% more time for 2048x2048 frames of 64 chunks, but holds no file
#: descriptors.
MAX_OPEN = 256


def writes_in_place(source: Any) -> bool:
    """Whether slabs of ``source`` (a Zarr level whose slabs are kept as chunks) can be written
    in place: raw chunks as they lie in memory, on a store that writes at offsets."""
    if not isinstance(source, ShardedZarrChunks | ZarrChunks) or source.order != "C":
        return False
    return source.store.writes_at_offsets and stored_as_they_lie(source.chain, source.dtype)


class InPlaceSlab:
    """One slab of whole (inner) chunks of ``source`` at ``box`` (a whole write unit along
    ``axis``), its frames written to the store as they are put."""

    #: The slab holds no frames in memory: a stream's queue does not count it.
    nbytes = 0

    def __init__(self, source: Source, box: Box, axis: int, skip_empty: bool) -> None:
        grid = source.grid
        self.source, self.box, self.axis = source, box, axis
        self._skip_empty = skip_empty
        self.chunk = tuple(grid.chunk)
        self.counts = tuple(-(-n // c) for n, c in zip(box.shape, self.chunk, strict=True))
        self._first = [(s - o) // c for s, o, c in zip(box.start, grid.origin, self.chunk,
                                                       strict=True)]  # fmt: skip
        self._fill = np.asarray(source.fill_value, dtype=source.dtype)
        self._itemsize = source.dtype.itemsize
        self._chunk_nbytes = math.prod(self.chunk) * self._itemsize
        # Where each run of a frame's part of a chunk starts in the chunk's bytes (one per index
        # of the axes before the slab's), and the bytes between frames.
        k = axis
        strides = [math.prod(self.chunk[i + 1 :]) * self._itemsize for i in range(len(self.chunk))]
        self._frame_bytes = strides[k]
        self._runs = [
            (sum(i * s for i, s in zip(outer, strides, strict=False)), outer)
            for outer in np.ndindex(*self.chunk[:k])
        ]
        # Each chunk of the slab: its index in the slab, its voxels in the slab along the other
        # axes (the slab's axis gets the frames' slice), and its object's key and offset there.
        self._cells: list[tuple[tuple[int, ...], list[slice], str, int]] = []
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
        if isinstance(source, ShardedZarrChunks):
            by_shard: dict[Any, dict[int, tuple[int, ...]]] = {}
            for g in np.ndindex(*self.counts):
                shard, cid = source.locate(self._index(g))
                by_shard.setdefault(shard, {})[cid] = g
            for shard, cids in by_shard.items():
                key = source.shard_key(shard)
                self._shards[key] = (shard, cids)
                for cid, at in _layout(source, cids).items():
                    place[cids[cid]] = (key, at)
        else:
            for g in np.ndindex(*self.counts):
                place[g] = (source.key(self._index(g)), 0)
        for g in np.ndindex(*self.counts):
            cell = [slice(i * c, min((i + 1) * c, n))
                    for i, c, n in zip(g, self.chunk, box.shape, strict=True)]  # fmt: skip
            self._cells.append((g, cell, *place[g]))

    def _index(self, g: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(f + i for f, i in zip(self._first, g, strict=True))

    # -- frames ----------------------------------------------------------------------------------
    def put(self, block: np.ndarray, at: Sequence[int]) -> None:
        """Write ``block`` (whole along every axis but the slab's, where it starts at
        ``at[axis]``, the first frame not put yet) to its chunks."""
        k = self.axis
        a, b = at[k], at[k] + block.shape[k]
        assert a == self._put, (a, self._put)
        c = self.chunk[k]
        for g, cell, key, base in self._cells:
            lo, hi = max(a, g[k] * c), min(b, (g[k] + 1) * c)
            if lo < hi:
                cell[k] = slice(lo - a, hi - a)
                part = block[tuple(cell)]
                if g not in self._data and not is_fill(part, self._fill):
                    self._data.add(g)
                self._write_frames(key, base, self._tile(part), lo - g[k] * c)
        self._put = b
        # A whole slab waits for its publish holding no open file; one of many objects holds
        # none between frames (each frame opens them again).
        if b == self.box.shape[k] or len(self._values) > MAX_OPEN:
            for value in self._values.values():
                value.release()

    def _tile(self, part: np.ndarray) -> np.ndarray:
        """``part`` of a chunk (whole along every axis but the slab's) as the contiguous frames
        that chunk stores: edge chunks padded with the fill value, as Zarr stores them."""
        k = self.axis
        shape = tuple(part.shape[k] if i == k else c for i, c in enumerate(self.chunk))
        if part.shape == shape and part.flags.c_contiguous:
            return part
        if shape not in self._buffers:
            self._buffers[shape] = np.empty(shape, self.source.dtype)
        tile = self._buffers[shape]
        if part.shape != shape:
            tile[...] = self._fill
        tile[tuple(slice(0, m) for m in part.shape)] = part
        return tile

    def _write_frames(self, key: str, base: int, tile: np.ndarray, dst: int) -> None:
        """Store ``tile`` (whole along every axis but the slab's) at frame ``dst`` of the chunk
        at ``base`` in object ``key``: one run of bytes per index of the axes before the slab's."""
        value = self._values.get(key)
        if value is None:
            value = self._values[key] = self.source.store.open_value(key)
        at = base + dst * self._frame_bytes
        for offset, outer in self._runs:
            value.write_at(at + offset, tile[outer].data)

    # -- publishing ------------------------------------------------------------------------------
    def publish(self) -> None:
        """Store the slab's chunks (fewer frames than a whole unit: the rest of each chunk is
        fill); the values not stored are dropped."""
        try:
            for g, _, key, base in self._cells:
                self._pad(g, key, base)
            if self._shards:
                for key, (shard, cids) in self._shards.items():
                    self._publish_shard(key, shard, cids)
            else:
                for g, _, key, _ in self._cells:
                    self._publish_chunk(g, key)
        finally:
            self.discard()

    def _pad(self, g: tuple[int, ...], key: str, base: int) -> None:
        """Fill the frames of chunk ``g`` nothing was put to, if it is to be stored."""
        if g not in self._data and (self._shards or self._skip_empty):
            return
        k = self.axis
        c = self.chunk[k]
        end = min(c, max(self._put - g[k] * c, 0))  # the frames of the chunk put
        if end < c:
            shape = tuple(c - end if i == k else n for i, n in enumerate(self.chunk))
            self._write_frames(key, base, np.full(shape, self._fill, self.source.dtype), end)

    def _publish_chunk(self, g: tuple[int, ...], key: str) -> None:
        if g in self._data or not self._skip_empty:
            self._values[key].publish()
            return
        value = self._values.pop(key, None)
        if value is not None:
            value.discard()
        assert isinstance(self.source, ZarrChunks)
        self.source.delete(self._index(g))  # what an earlier write stored there

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
            if all(placed[cid] == at[cid] for cid in present):
                value = self._values[key]
                stand_in = np.zeros(self._chunk_nbytes, np.uint8)  # only its size is read
                *_, index = source.shard_parts(lambda cid: stand_in if cid in present else None)
                config = source.config
                size = config.index_nbytes * (config.index_location == "start")
                size += len(present) * self._chunk_nbytes
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
                chunks = {cid: value.read_at(placed[cid], self._chunk_nbytes) for cid in present}
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
