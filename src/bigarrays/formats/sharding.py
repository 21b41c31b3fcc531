"""What every shard format shares: a versioned index cache, merged ranged reads, shard writes.

A shard's index (a precomputed minishard index, a Zarr ``sharding_indexed`` index) says where its
chunks lie; once the shard is rewritten those byte ranges belong to other chunks. So an index is
cached with the version of the shard it was read from, and a write of the shard by this process
bumps the shard's generation, so that an index fetched before the write is not stored after it.

Chunk bytes are read through an index with ranged reads held to the index's version, ranges that
lie close together in a shard merged into one (:func:`plan_ranges`, :func:`read_range`).

Writes group their pieces by shard (:class:`ShardWrite`), in batches of bounded memory
(:func:`in_batches`). A shard the write covers wholly is put once (:func:`put_whole`); one covered
in part was read with its version, and is put only if still at it, read and merged again when
another writer got there first (:func:`put_merged`).
"""

from __future__ import annotations

import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from bigarrays.errors import (
    CorruptChunkError,
    StaleReadError,
    UnsupportedError,
    VersionConflictError,
)
from bigarrays.formats.merge import MAX_CONFLICT_RETRIES
from bigarrays.stores import Store
from bigarrays.stores.base import ANY_VERSION

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


# -- reading through an index -------------------------------------------------------------------


def coalesce(
    ranges: Iterable[tuple[int, int]], max_gap: int, max_length: int
) -> list[tuple[int, int, list[int]]]:
    """Merge byte ranges ``(start, end)`` whose gaps are at most ``max_gap`` bytes.

    Returns ``(start, end, members)`` with the positions of the input ranges each covers; a
    merged range grows past ``max_length`` only by a single input range.
    """
    items = sorted(enumerate(ranges), key=lambda t: t[1])
    out: list[tuple[int, int, list[int]]] = []
    for i, (a, b) in items:
        if out:
            s, e, members = out[-1]
            if a - e <= max_gap and max(b, e) - s <= max_length:
                out[-1] = (s, max(b, e), [*members, i])
                continue
        out.append((a, b, [i]))
    return out


#: One merged byte range of a shard: (shard, start, end, version, [(position, start, end)]).
RangeUnit = tuple[Any, int, int, str | None, list[tuple[int, int, int]]]


def plan_ranges(
    by_shard: Mapping[tuple[Any, str | None], Sequence[tuple[int, int, int]]],
    max_gap: int,
    max_length: int,
) -> list[RangeUnit]:
    """The merged ranges to read for ``(position, start, end)`` chunk ranges grouped by (shard,
    version of its index), biggest first, so that the last tasks to start are the short ones."""
    units: list[RangeUnit] = []
    for (shard, version), members in by_shard.items():
        for start, end, which in coalesce([(a, b) for _, a, b in members], max_gap, max_length):
            units.append((shard, start, end, version, [members[i] for i in which]))
    units.sort(key=lambda u: u[1] - u[2])
    return units


def read_range(store: Store, key: str, unit: RangeUnit, first_attempt: bool) -> bytes | None:
    """The bytes of a merged range, held to the version of the index that placed it; None when
    the shard changed since (its index is to be read again).

    Without a version, a short read may be a rewrite (worth one more look) as well as damage;
    with one, the shard is at the index's version and short: damage, CorruptChunkError.
    """
    _, start, end, version, _ = unit
    try:
        if version is None:  # a store without versions: nothing to hold the read to
            data = store.get_range(key, start, end - start)
        else:
            data = store.get_range_if_version(key, start, end - start, version)
    except StaleReadError:
        return None
    short = data is not None and len(data) != end - start
    if data is None or (short and version is None and first_attempt):
        return None
    if short:
        raise CorruptChunkError(
            key, f"the shard is shorter than its index says (chunks at bytes {start}-{end})"
        )
    return data


# -- writing shards ------------------------------------------------------------------------------


@dataclass
class ShardWrite:
    """The pieces of one write that fall in one shard, and what the write makes of them.

    Stored chunks are keyed by the format's id of a chunk in its shard (a precomputed chunk id,
    a Zarr inner chunk's position); ``None`` in ``new`` leaves a chunk out (all fill).
    """

    shard: Any
    key: str
    positions: list[int]  #: indices into the write's pieces
    full: bool  #: the write covers every chunk of the shard
    old: dict[int, bytes] = field(default_factory=dict)
    version: str | None = None
    existed: bool = False
    new: dict[int, bytes | None] = field(default_factory=dict)

    def merged(self) -> dict[int, bytes]:
        """The stored chunks after this write: the old ones, replaced or dropped by the new."""
        chunks = dict(self.old)
        for cid, data in self.new.items():
            if data is None:
                chunks.pop(cid, None)
            else:
                chunks[cid] = data
        return chunks


def in_batches(
    groups: Iterable[ShardWrite], chunk_bytes: int, max_bytes: int
) -> Iterable[list[ShardWrite]]:
    """``groups`` in batches of at most about ``max_bytes`` of uncompressed chunks."""
    batch: list[ShardWrite] = []
    size = 0
    for g in groups:
        batch.append(g)
        size += len(g.positions) * chunk_bytes
        if size >= max_bytes:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def put_whole(store: Store, key: str, payload: bytes | None) -> None:
    """Put a shard the write covers wholly (None: it holds no chunk, so delete it), ordered with
    other writers' conditional writes where the store has them."""
    conditional = store.conditional_writes
    if payload is not None:
        if conditional:
            store.put_if_version(key, payload, ANY_VERSION)
        else:
            store.put(key, payload)
    elif conditional:
        store.delete_if_version(key, ANY_VERSION)
    else:
        store.delete(key)


def put_merged(
    store: Store,
    g: ShardWrite,
    encode: Callable[[Mapping[int, bytes]], bytes | None],
    refresh: Callable[[ShardWrite], None],
) -> None:
    """Put a shard written in part, only if it is still at ``g.version``; when another writer
    changed it, ``refresh(g)`` reads it again and re-merges ``g.new``, and the put is retried."""
    for attempt in range(MAX_CONFLICT_RETRIES):
        payload = encode(g.merged())
        try:
            if payload is not None:
                store.put_if_version(g.key, payload, g.version)
            elif g.existed:
                store.delete_if_version(g.key, g.version)
            return
        except VersionConflictError:
            # Spread the retries of writers that collided, so that they stop colliding.
            time.sleep(random.uniform(0, 0.002 * (attempt + 1)))
            refresh(g)
    raise VersionConflictError(g.key, store.url)


def partial_shard_refused(key: str, url: str, hint: str) -> UnsupportedError:
    """The error of a write that covers part of shard ``key`` on a store (``url``) without
    conditional writes; ``hint`` says what to write instead."""
    return UnsupportedError(
        f"this write covers part of shard {key!r}, which needs a read-merge-write; the store "
        f"{url} has no conditional writes to make that safe against concurrent writers: {hint}"
    )
