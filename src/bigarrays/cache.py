"""A bounded LRU cache of decoded chunks, for repeated small cutouts of the same region.

Off by default (``ba.open(url, cache_bytes=...)`` turns it on). It holds decoded chunks keyed by
grid index, at most ``max_bytes`` of them (a chunk larger than the bound is never kept), and
forgets the least recently used first. Writes through the same array replace or drop the chunks
they touch; writes by other processes or other handles are not seen until the entry is evicted,
so use it for data that does not change under you (or call :meth:`ChunkCache.clear`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from bigarrays.box import Vec


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
        owned = np.array(chunk, order="F", copy=True)
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
