"""Reading chunks out of shards through cached minishard indexes, checked by version.

A minishard index says where a shard's chunks lie; once the shard is rewritten (by another
handle, process or machine) those byte ranges belong to other chunks. As TensorStore does with
generations, every cached index keeps the version of the shard it was read from
(``Store.get_range_with_version``), and chunk bytes are read with a ranged read that holds only
at that version (``Store.get_range_if_version``: ``If-Match``, ``ifGenerationMatch``, an
``fstat`` of the opened file). A shard found at another version drops its cached indexes and is
read again, a bounded number of times. A read through a warm index is still one ranged read per
merged byte range; a chunk that a cached index says is absent costs one 16-byte read of the
shard-index entry to confirm it. The store merges ranges that lie close together in a shard
into one read (``Store.get_ranges_if_version``), as its backend's range policy says.

Stores without versions (plain HTTP servers that send no strong ETag, fsspec) give indexes that
are trusted within one read call only and never cached: a shard rewritten between the index read
and the chunk read is caught only when it got shorter. Such stores are safe for data that is not
rewritten while it is read.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bigarrays.errors import CorruptChunkError, StaleReadError
from bigarrays.formats.precomputed.info import ShardingSpec
from bigarrays.formats.precomputed.shard_limits import IndexLimits, check_index_range
from bigarrays.formats.precomputed.sharding import (
    MinishardIndex,
    ShardMap,
    decode_minishard_index,
)
from bigarrays.formats.sharding import DEFAULT_CACHE_BYTES as DEFAULT_CACHE_BYTES
from bigarrays.formats.sharding import VersionedCache, read_shard_ranges, run_few
from bigarrays.stores import Store

Run = Callable[[Callable[[Any], None], Iterable[Any]], None]

#: Rounds of a read whose shards keep changing under it before it gives up.
MAX_STALE_RETRIES = 16


@dataclass(frozen=True)
class VersionedIndex:
    """A decoded minishard index and the version of the shard it was read from.

    ``version`` is None when the shard did not exist (the index is empty) or when the store
    gives no versions; only the first kind is cached.
    """

    index: MinishardIndex
    version: str | None
    exists: bool

    @property
    def nbytes(self) -> int:
        return self.index.nbytes


class MinishardCache(VersionedCache[VersionedIndex]):
    """The versioned minishard indexes of one sharded scale, keyed ``(shard, minishard)``."""


class ShardReader:
    """Finds and fetches the stored bytes of chunks, by chunk id, in one sharded scale."""

    def __init__(
        self,
        store: Store,
        spec: ShardingSpec,
        shard_key: Callable[[int], str],
        limits: IndexLimits,
        *,
        cache_bytes: int,
    ) -> None:
        self.store = store
        self.spec = spec
        self.shard_map = ShardMap(spec)
        self.shard_key = shard_key
        self.limits = limits
        self.cache = MinishardCache(cache_bytes)
        self._loading: dict[tuple[int, int], threading.Lock] = {}
        self._loading_lock = threading.Lock()

    # -- minishard indexes -----------------------------------------------------------------------
    def minishard_index(self, shard: int, minishard: int) -> VersionedIndex:
        """The index of one minishard: from the cache, else fetched (once, however many threads
        want it) and cached when its shard's version is known or the shard does not exist."""
        cache_key = (shard, minishard)
        entry = self.cache.get(cache_key)
        if entry is not None:
            return entry
        with self._loading_lock:
            lock = self._loading.setdefault(cache_key, threading.Lock())
        with lock:
            entry = self.cache.get(cache_key)
            if entry is None:
                generation = self.cache.generation(shard)
                entry = self.fetch_index(shard, minishard)
                if entry.version is not None or not entry.exists:
                    self.cache.put(cache_key, entry, generation)
        with self._loading_lock:
            self._loading.pop(cache_key, None)
        return entry

    def fetch_index(self, shard: int, minishard: int) -> VersionedIndex:
        """Read one minishard index from the store: its shard-index entry, then the index, the
        second read held to the version of the first."""
        key = self.shard_key(shard)
        for _ in range(MAX_STALE_RETRIES):
            entry, version = self.store.get_range_with_version(key, 16 * minishard, 16)
            if entry is None:
                return VersionedIndex(MinishardIndex.empty(), None, False)
            try:
                return self._index_from_entry(key, minishard, entry, version)
            except StaleReadError:
                continue  # rewritten between the two reads: start again
        raise StaleReadError(key, self.store.url, "kept changing while its index was read")

    def _index_from_entry(
        self, key: str, minishard: int, entry: bytes, version: str | None
    ) -> VersionedIndex:
        if len(entry) != 16:
            raise CorruptChunkError(key, f"the shard index ends before minishard {minishard}")
        start, end = (int(v) for v in np.frombuffer(entry, dtype="<u8"))
        span = check_index_range(start, end, minishard, self.limits, key)
        if span is None:
            return VersionedIndex(MinishardIndex.empty(), version, True)
        base = self.shard_map.index_bytes
        data = self._read(key, base + start, end - start, version)
        if data is None:  # deleted between the two reads
            raise StaleReadError(key, self.store.url)
        if len(data) != end - start:
            raise CorruptChunkError(key, f"minishard {minishard}'s index lies past the end")
        index = decode_minishard_index(data, self.spec, key, limits=self.limits)
        return VersionedIndex(index, version, True)

    def _read(self, key: str, start: int, length: int, version: str | None) -> bytes | None:
        if version is None:  # a store without versions: nothing to hold the read to
            return self.store.get_range(key, start, length)
        return self.store.get_range_if_version(key, start, length, version)

    def _confirm_absent(self, shard: int, minishard: int, cached: VersionedIndex) -> bool:
        """True when the shard is still at the version of a cached index (one 16-byte read)."""
        entry, version = self.store.get_range_with_version(
            self.shard_key(shard), 16 * minishard, 16
        )
        if entry is None:
            return not cached.exists
        return version is not None and version == cached.version

    # -- chunks ----------------------------------------------------------------------------------
    def read(
        self,
        ids: Sequence[int],
        shards: Sequence[int],
        minishards: Sequence[int],
        run: Run,
        emit: Callable[[int, bytes | None], None],
    ) -> None:
        """Call ``emit(position, stored bytes or None)`` once for every chunk id asked for."""
        pending = list(range(len(ids)))
        for attempt in range(MAX_STALE_RETRIES):
            pending = self._read_round(ids, shards, minishards, pending, run, emit, attempt)
            if not pending:
                return
        key = self.shard_key(shards[pending[0]])
        raise StaleReadError(key, self.store.url, "kept changing while its chunks were read")

    def _read_round(
        self,
        ids: Sequence[int],
        shards: Sequence[int],
        minishards: Sequence[int],
        pending: list[int],
        run: Run,
        emit: Callable[[int, bytes | None], None],
        attempt: int,
    ) -> list[int]:
        """One attempt at the chunks at ``pending``; the positions to try again."""
        wanted = sorted({(shards[p], minishards[p]) for p in pending})
        indexes: dict[tuple[int, int], VersionedIndex] = {}
        fresh: set[tuple[int, int]] = set()

        for key in wanted:
            cached = self.cache.get(key)
            if cached is not None:
                indexes[key] = cached
            else:
                fresh.add(key)

        def fetch_index(key: tuple[int, int]) -> None:
            indexes[key] = self.minishard_index(*key)

        run_few(run, fetch_index, sorted(fresh))

        by_shard: dict[tuple[int, str | None], list[tuple[int, int, int]]] = {}
        absent: dict[tuple[int, int], list[int]] = {}
        for pos in pending:
            mkey = (shards[pos], minishards[pos])
            entry = indexes[mkey]
            where = entry.index.find(ids[pos])
            if where is None:
                absent.setdefault(mkey, []).append(pos)
            else:
                by_shard.setdefault((mkey[0], entry.version), []).append((pos, *where))

        retry: list[int] = []
        lock = threading.Lock()

        def check_absent(mkey: tuple[int, int]) -> None:
            if mkey in fresh or self._confirm_absent(*mkey, indexes[mkey]):
                for pos in absent[mkey]:
                    emit(pos, None)
                return
            self.cache.invalidate(mkey[0])
            with lock:
                retry.extend(absent[mkey])

        run_few(run, check_absent, list(absent))

        def changed(shard: int, positions: list[int]) -> None:
            self.cache.invalidate(shard)  # rewritten since its index was read: again
            with lock:
                retry.extend(positions)

        read_shard_ranges(self.store, self.shard_key, by_shard, run, attempt == 0, emit, changed)
        return retry
