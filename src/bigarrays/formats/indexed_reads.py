"""The read loop every shard format shares: chunks found through cached shard indexes, read held
to the version of the index that placed them, and read again when their shard changed.

A format says which index places each chunk and where in its shard (:class:`ShardIndexes`: a
precomputed minishard index and a chunk id, a Zarr shard index and a position). This loop takes
the indexes from the cache or fetches those it lacks (each once), confirms that a chunk a
cached index calls absent still is, reads the others with
:func:`~bigarrays.formats.sharding.read_shard_ranges` (or the format's own ``read_ranges``), and
does it all again for the chunks of shards rewritten meanwhile, a bounded number of rounds.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Generic, Protocol, TypeVar

from bigarrays.errors import StaleReadError
from bigarrays.formats.sharding import IndexEntry, Run, ShardRanges, read_shard_ranges, run_few
from bigarrays.stores import Store

#: Rounds of a read whose shards keep changing under it before it gives up.
MAX_STALE_RETRIES = 16


K = TypeVar("K", bound=Hashable)
K_in = TypeVar("K_in", bound=Hashable, contravariant=True)
X = TypeVar("X", bound=IndexEntry)

#: ``emit(position, stored bytes)``, or ``None`` for a chunk its index calls absent.
Emit = Callable[[int, "bytes | None"], None]
#: ``changed(shard, positions)``: those chunks' shard was rewritten; read them again.
Changed = Callable[[Any, list[int]], None]
#: Reads the chunk ranges of one round: ``read_ranges(ranges, run, first_attempt, emit, changed)``.
ReadRanges = Callable[[ShardRanges, Run, bool, Callable[[int, bytes], None], Changed], None]


class ShardIndexes(Protocol[K_in, X]):
    """A sharded level's indexes, as the read loop sees them. ``K_in`` names an index (a shard, or
    a shard's minishard) and ``X`` is a decoded index with ``version`` and ``exists``."""

    @property
    def store(self) -> Store: ...

    def shard_key(self, shard: Any) -> str: ...
    def shard_of(self, key: K_in) -> Any: ...
    def cached_index(self, key: K_in) -> X | None: ...
    def load_index(self, key: K_in) -> X: ...
    def find(self, index: X, name: Any) -> tuple[int, int] | None: ...
    def still_absent(self, key: K_in, cached: X) -> bool: ...
    def forget_shard(self, shard: Any) -> None: ...


class IndexedRead(Generic[K, X]):
    """One read of chunks through their shards' indexes: ``keys[i]`` names the index that
    places chunk ``i``, ``names[i]`` the chunk in it."""

    def __init__(self, indexes: ShardIndexes[K, X], keys: Sequence[K], names: Sequence[Any],
                 read_ranges: ReadRanges | None = None) -> None:  # fmt: skip
        self.indexes = indexes
        self.keys = keys
        self.names = names
        self.read_ranges = read_ranges or self._read_shard_ranges

    def _read_shard_ranges(
        self, ranges: ShardRanges, run: Run, first: bool, emit: Callable[[int, bytes], None],
        changed: Changed,
    ) -> None:  # fmt: skip
        store, shard_key = self.indexes.store, self.indexes.shard_key
        read_shard_ranges(store, shard_key, ranges, run, first, emit, changed)

    def run(self, run: Run, emit: Emit) -> None:
        """``emit`` every chunk once, round after round until no shard changed under them."""
        pending = list(range(len(self.keys)))
        for attempt in range(MAX_STALE_RETRIES):
            pending = self._round(pending, run, emit, attempt == 0)
            if not pending:
                return
        key = self.indexes.shard_key(self.indexes.shard_of(self.keys[pending[0]]))
        raise StaleReadError(
            key, self.indexes.store.url, "kept changing while its chunks were read"
        )

    def _round(self, pending: list[int], run: Run, emit: Emit, first: bool) -> list[int]:
        """One attempt at the chunks at ``pending``; the positions to try again."""
        src, keys = self.indexes, self.keys
        found: dict[K, X] = {}
        fresh: set[K] = set()
        for key in dict.fromkeys(keys[p] for p in pending):
            cached = src.cached_index(key)
            if cached is None:
                fresh.add(key)
            else:
                found[key] = cached

        def load(key: K) -> None:
            found[key] = src.load_index(key)

        run_few(run, load, list(fresh))

        ranges: dict[tuple[Any, str | None], list[tuple[int, int, int]]] = {}
        absent: dict[K, list[int]] = {}
        for p in pending:
            index = found[keys[p]]
            where = src.find(index, self.names[p])
            if where is None:
                absent.setdefault(keys[p], []).append(p)
            else:
                group = (src.shard_of(keys[p]), index.version)
                ranges.setdefault(group, []).append((p, *where))

        retry: list[int] = []
        lock = threading.Lock()

        def changed(shard: Any, positions: list[int]) -> None:
            src.forget_shard(shard)  # rewritten since its index was read: read it again
            with lock:
                retry.extend(positions)

        def check_absent(key: K) -> None:
            # A cached index may be stale: it says "absent" only while the shard is unchanged.
            if key in fresh or src.still_absent(key, found[key]):
                for p in absent[key]:
                    emit(p, None)
            else:
                changed(src.shard_of(key), absent[key])

        run_few(run, check_absent, list(absent))
        self.read_ranges(ranges, run, first, emit, changed)
        return retry
