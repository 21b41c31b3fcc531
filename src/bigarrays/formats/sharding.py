"""What every shard format shares: a versioned index cache and a way to run a few tasks.

A shard's index (a precomputed minishard index, a Zarr ``sharding_indexed`` index) says where its
chunks lie; once the shard is rewritten those byte ranges belong to other chunks. So an index is
cached with the version of the shard it was read from, and a write of the shard by this process
bumps the shard's generation, so that an index fetched before the write is not stored after it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any, Generic, Protocol, TypeVar

Run = Callable[[Callable[[Any], None], Iterable[Any]], None]

#: Default bound of the decoded indexes kept per sharded level.
DEFAULT_CACHE_BYTES = 32 << 20


class Sized(Protocol):
    @property
    def nbytes(self) -> int: ...


E = TypeVar("E", bound=Sized)


class VersionedCache(Generic[E]):
    """A thread-safe LRU of decoded shard indexes keyed ``(shard, part)``, bounded in bytes.

    Each shard has a generation, bumped when this process writes it: an index fetched before a
    write is not stored after it.
    """

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[int, int], E] = OrderedDict()
        self._bytes = 0
        self._generations: dict[int, int] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def generation(self, shard: int) -> int:
        with self._lock:
            return self._generations.get(shard, 0)

    def get(self, key: tuple[int, int]) -> E | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry

    def put(self, key: tuple[int, int], entry: E, generation: int) -> None:
        with self._lock:
            if self._generations.get(key[0], 0) != generation or entry.nbytes > self.max_bytes:
                return
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
            self._entries[key] = entry
            self._bytes += entry.nbytes
            while self._bytes > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= evicted.nbytes

    def invalidate(self, shard: int) -> None:
        with self._lock:
            self._generations[shard] = self._generations.get(shard, 0) + 1
            for key in [k for k in self._entries if k[0] == shard]:
                self._bytes -= self._entries.pop(key).nbytes

    def clear(self) -> None:
        with self._lock:
            for shard in {k[0] for k in self._entries}:
                self._generations[shard] = self._generations.get(shard, 0) + 1
            self._entries.clear()
            self._bytes = 0


def run_few(run: Run, fn: Callable[[Any], None], items: list[Any]) -> None:
    """``run(fn, items)``, but one item in this thread: a hand-over costs more than the call."""
    if len(items) == 1:
        fn(items[0])
    elif items:
        run(fn, items)
