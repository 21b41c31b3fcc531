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

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bigarrays.errors import CorruptChunkError, StaleReadError
from bigarrays.formats.indexed_reads import MAX_STALE_RETRIES, IndexedRead
from bigarrays.formats.precomputed.info import ShardingSpec
from bigarrays.formats.precomputed.shard_limits import IndexLimits, check_index_range
from bigarrays.formats.precomputed.sharding import (
    MinishardIndex,
    ShardMap,
    decode_minishard_index,
)
from bigarrays.formats.sharding import DEFAULT_CACHE_BYTES as DEFAULT_CACHE_BYTES
from bigarrays.formats.sharding import VersionedCache, worth_keeping
from bigarrays.stores import Store

Run = Callable[[Callable[[Any], None], Iterable[Any]], None]


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

    # -- minishard indexes -----------------------------------------------------------------------
    def minishard_index(self, shard: int, minishard: int) -> VersionedIndex:
        """The index of one minishard: from the cache, else fetched (once, however many threads
        want it) and cached when its shard's version is known or the shard does not exist."""
        key = (shard, minishard)
        return self.cache.get_or_fetch(key, lambda: self.fetch_index(*key), worth_keeping)

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

    # -- the read loop's view of the indexes (formats.indexed_reads.ShardIndexes) -------------
    @staticmethod
    def shard_of(key: tuple[int, int]) -> int:
        return key[0]

    def cached_index(self, key: tuple[int, int]) -> VersionedIndex | None:
        return self.cache.get(key)

    def load_index(self, key: tuple[int, int]) -> VersionedIndex:
        return self.minishard_index(*key)

    @staticmethod
    def find(index: VersionedIndex, chunk_id: int) -> tuple[int, int] | None:
        return index.index.find(chunk_id)

    def still_absent(self, key: tuple[int, int], cached: VersionedIndex) -> bool:
        """True when the shard is still at the version of a cached index (one 16-byte read)."""
        shard, minishard = key
        entry, version = self.store.get_range_with_version(
            self.shard_key(shard), 16 * minishard, 16
        )
        if entry is None:
            return not cached.exists
        return version is not None and version == cached.version

    def forget_shard(self, shard: int) -> None:
        self.cache.invalidate(shard)

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
        IndexedRead(self, list(zip(shards, minishards, strict=True)), ids).run(run, emit)
