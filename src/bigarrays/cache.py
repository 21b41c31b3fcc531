"""A bounded LRU cache of decoded chunks, for repeated small cutouts of the same region.

Off by default (``ba.open(url, cache_bytes=...)`` turns it on). :class:`CachedSource` wraps any
chunk source, batched (sharded) or not, and keeps its decoded chunks keyed by grid index, at most
``max_bytes`` of them (a chunk larger than the bound is never kept), forgetting the least recently
used first. Writes through the same array drop the chunks they touch; writes by other processes or
other handles are not seen until the entry is evicted, so use it for data that does not change
under you (or call :meth:`ChunkCache.clear`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from bigarrays.box import Box, ChunkPiece, Vec
from bigarrays.chunk_source import ChunkSource, Order, Runner


class ChunkCache:
    """Decoded chunks by grid index, at most ``max_bytes`` in all, least recently used out."""

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError(f"cache_bytes must not be negative, got {max_bytes}")
        self.max_bytes = int(max_bytes)
        self.nbytes = 0
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[Vec, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, index: Vec) -> np.ndarray | None:
        with self._lock:
            chunk = self._entries.get(index)
            if chunk is None:
                self.misses += 1
                return None
            self._entries.move_to_end(index)
            self.hits += 1
            return chunk

    def put(self, index: Vec, chunk: np.ndarray) -> None:
        """Keep a private, read-only copy of ``chunk`` (the caller may reuse its buffer)."""
        size = chunk.nbytes
        if size > self.max_bytes:
            self.discard(index)
            return
        owned = np.array(chunk, order="K", copy=True)
        owned.flags.writeable = False
        with self._lock:
            old = self._entries.pop(index, None)
            if old is not None:
                self.nbytes -= old.nbytes
            self._entries[index] = owned
            self.nbytes += size
            while self.nbytes > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self.nbytes -= evicted.nbytes

    def discard(self, index: Vec) -> None:
        with self._lock:
            old = self._entries.pop(index, None)
            if old is not None:
                self.nbytes -= old.nbytes

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.nbytes = 0


class CachedSource:
    """A :class:`~bigarrays.chunk_source.ChunkSource` that keeps ``inner``'s decoded chunks in
    ``cache``: reads of cached chunks make no request, writes drop what they replace."""

    def __init__(self, inner: ChunkSource, cache: ChunkCache) -> None:
        self.inner = inner
        self.cache = cache
        self.grid = inner.grid
        self.dtype: np.dtype = inner.dtype
        self.fill_value: Any = inner.fill_value
        self.order: Order = inner.order
        self.chunk_nbytes = inner.chunk_nbytes
        self.inline_chunks = inner.inline_chunks
        self.batched = inner.batched
        self.merges_safely = inner.merges_safely

    @property
    def url(self) -> str:
        return self.inner.url

    def key(self, index: Vec) -> str:
        return self.inner.key(index)

    # -- reading ---------------------------------------------------------------------------------
    def load(self, index: Vec) -> np.ndarray | None:
        chunk = self.cache.get(index)
        if chunk is None:
            chunk = self.inner.load(index)
            if chunk is not None:
                self.cache.put(index, chunk)
        return chunk

    def load_view(
        self, index: Vec, box: Box, scratch: bytearray, in_chunk: tuple[slice, ...]
    ) -> tuple[np.ndarray | None, tuple[slice, ...]]:
        chunk = self.cache.get(index)
        if chunk is not None:
            return chunk, in_chunk
        # The cache keeps whole chunks: read all of this one, whatever part was asked for.
        got, part = self.inner.load_view(index, box, scratch, _whole_slices(box))
        if got is None:
            return None, in_chunk
        chunk = got[part]
        self.cache.put(index, chunk)  # a private copy: ``got`` may live in the scratch buffer
        return chunk, in_chunk

    def read_pieces(
        self,
        pieces: Sequence[ChunkPiece],
        run: Runner,
        emit: Callable[[ChunkPiece, np.ndarray | None], None],
    ) -> None:
        # The cache keeps whole chunks: the inner source is asked for all of each missing one
        # (it may otherwise give only the part a piece needs, such as a raw chunk's rows).
        asked: dict[Vec, ChunkPiece] = {}
        for piece in pieces:
            chunk = self.cache.get(piece.chunk_index)
            if chunk is None:
                asked[piece.chunk_index] = piece
            else:
                emit(piece, chunk)

        def keep(whole: ChunkPiece, chunk: np.ndarray | None) -> None:
            if chunk is not None:
                chunk = chunk[whole.in_chunk]
                self.cache.put(whole.chunk_index, chunk)
            emit(asked[whole.chunk_index], chunk)

        if asked:
            self.inner.read_pieces([_whole(p) for p in asked.values()], run, keep)

    # -- writing: drop what is replaced ----------------------------------------------------------
    def save(self, index: Vec, chunk: np.ndarray) -> None:
        self.cache.discard(index)
        self.inner.save(index, chunk)

    def save_view(self, index: Vec, box: Box, part: np.ndarray, scratch: bytearray) -> None:
        self.cache.discard(index)
        self.inner.save_view(index, box, part, scratch)

    def merge(self, piece: ChunkPiece, part: np.ndarray, *, skip_empty: bool = False) -> None:
        self.cache.discard(piece.chunk_index)
        self.inner.merge(piece, part, skip_empty=skip_empty)

    def delete(self, index: Vec) -> None:
        self.cache.discard(index)
        self.inner.delete(index)

    def write_pieces(
        self,
        pieces: Sequence[ChunkPiece],
        part: Callable[[ChunkPiece], np.ndarray],
        run: Runner,
        done: Callable[[int], None],
    ) -> None:
        try:
            self.inner.write_pieces(pieces, part, run, done)
        finally:
            for piece in pieces:  # also when the write failed half-way: what is stored is unknown
                self.cache.discard(piece.chunk_index)


def _whole_slices(chunk_box: Box) -> tuple[slice, ...]:
    return tuple(slice(0, n) for n in chunk_box.shape)


def _whole(piece: ChunkPiece) -> ChunkPiece:
    """``piece`` asking for the whole of its chunk (``in_box`` is not used by the sources)."""
    return piece._replace(in_chunk=_whole_slices(piece.chunk_box))
