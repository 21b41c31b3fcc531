"""What every shard format shares: a versioned index cache, merged ranged reads, shard writes.

A shard's index (a precomputed minishard index, a Zarr ``sharding_indexed`` index) says where its
chunks lie; once the shard is rewritten those byte ranges belong to other chunks. So an index is
cached with the version of the shard it was read from, and a write of the shard by this process
bumps the shard's generation, so that an index fetched before the write is not stored after it.

Chunk bytes are read through an index with the store's ``get_ranges_if_version``, held to the
index's version; the store merges ranges that lie close together into one read
(:func:`read_shard_ranges`).

Writes group their pieces by shard (:class:`ShardWrite`), in batches of bounded memory
(:func:`in_batches`). A shard the write covers wholly is put once (:func:`put_whole`); one covered
in part was read with its version, and is put only if still at it, read and merged again when
another writer got there first (:func:`put_merged`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from bigarrays.errors import (
    CorruptChunkError,
    StaleReadError,
)
from bigarrays.formats.merge import retry_conflicts
from bigarrays.stores import Store
from bigarrays.stores.versions import ANY_VERSION, PutMode

Run = Callable[[Callable[[Any], None], Iterable[Any]], None]

#: Default bound of the decoded indexes kept per sharded level.
DEFAULT_CACHE_BYTES = 32 << 20


class Sized(Protocol):
    @property
    def nbytes(self) -> int: ...


class IndexEntry(Sized, Protocol):
    """A decoded shard index: the version of the shard it was read from (None when the shard
    did not exist or the store gives no versions) and whether the shard existed."""

    @property
    def version(self) -> str | None: ...
    @property
    def exists(self) -> bool: ...


def worth_keeping(entry: IndexEntry) -> bool:
    """Whether an index may be cached: its shard's version is known, or the shard did not exist
    (an index from a store without versions is trusted within one read only)."""
    return entry.version is not None or not entry.exists


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
        self._loading: dict[tuple[int, int], threading.Lock] = {}
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

    def get_or_fetch(self, key: tuple[int, int], fetch: Callable[[], E],
                     keep: Callable[[E], bool]) -> E:  # fmt: skip
        """The entry at ``key``, else ``fetch()``'s: fetched once however many threads want it,
        and kept when ``keep`` says so and this process did not write the shard meanwhile."""
        entry = self.get(key)
        if entry is not None:
            return entry
        with self._lock:
            loading = self._loading.setdefault(key, threading.Lock())
        try:
            with loading:
                entry = self.get(key)
                if entry is None:
                    generation = self.generation(key[0])
                    entry = fetch()
                    if keep(entry):
                        self.put(key, entry, generation)
        finally:
            with self._lock:
                self._loading.pop(key, None)
        return entry

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


#: Chunk byte ranges to read, grouped by (shard, version of the index that placed them): each
#: range is ``(position, start, end)``, position being the caller's name for the chunk.
ShardRanges = Mapping[tuple[Any, str | None], Sequence[tuple[int, int, int]]]


Batch = tuple[tuple[Any, str | None], list[tuple[int, int, int]]]


def _batches(by_shard: ShardRanges, max_span: int) -> list[Batch]:
    """The ranges of each (shard, version) in order of their start, cut wherever a batch would
    span more than ``max_span`` bytes; biggest batch first, so the last to start are short."""
    out: list[Batch] = []
    for group, members in by_shard.items():
        batch: list[tuple[int, int, int]] = []
        for member in sorted(members, key=lambda m: m[1]):
            if batch and member[2] - batch[0][1] > max_span:
                out.append((group, batch))
                batch = []
            batch.append(member)
        out.append((group, batch))
    out.sort(key=lambda b: b[1][0][1] - max(e for _, _, e in b[1]))
    return out


def read_shard_ranges(
    store: Store,
    shard_key: Callable[[Any], str],
    by_shard: ShardRanges,
    run: Run,
    first_attempt: bool,
    emit: Callable[[int, bytes], None],
    changed: Callable[[Any, list[int]], None],
) -> None:
    """Read every chunk range of ``by_shard`` with the store's ``get_ranges`` (which merges close
    ranges into one read), held to the version of the index that placed it, and ``emit(position,
    bytes)`` each; ``changed(shard, positions)`` for the chunks of a shard that was rewritten or
    removed since its index was read (its index is to be read again).

    The ranges are cut into batches that span at most the store's longest merged read
    (``range_policy.max_span``), which run in parallel through ``run``, biggest first, each
    reading its spans in turn and handing its chunks on (memory stays bounded by the batches in
    flight); a single batch runs its spans through ``run`` instead. Without a version, a short
    read may be a rewrite (worth one more look) as well as damage; with one, the shard is at the
    index's version and short: damage, CorruptChunkError.
    """
    groups = _batches(by_shard, store.range_policy.max_span)

    def fetch(group: Batch, spans_run: Run | None) -> list[tuple[int, memoryview]]:
        (shard, version), members = group
        key = shard_key(shard)
        ranges = [(a, b - a) for _, a, b in members]
        try:
            if version is None:  # a store without versions: nothing to hold the read to
                parts = store.get_ranges(key, ranges, run=spans_run)
            else:
                parts = store.get_ranges_if_version(key, ranges, version, run=spans_run)
        except StaleReadError:
            parts = None
        short = [m for m, p in zip(members, parts or [], strict=False) if len(p) != m[2] - m[1]]
        if short and (version is not None or not first_attempt):
            _, a, b = short[0]
            raise CorruptChunkError(
                key, f"the shard is shorter than its index says (a chunk at bytes {a}-{b})"
            )
        if parts is None or short:
            changed(shard, [pos for pos, _, _ in members])
            return []
        return [(pos, p) for (pos, _, _), p in zip(members, parts, strict=True)]

    # Each chunk is copied out of its span's bytes as it is handed on, one at a time: the span
    # goes when its last chunk has, and a chunk kept by a cache holds no span.
    if len(groups) == 1:
        run_few(run, lambda item: emit(item[0], bytes(item[1])), fetch(groups[0], run))
        return

    def fetch_and_emit(group: Batch) -> None:
        for pos, data in fetch(group, None):
            emit(pos, bytes(data))

    run_few(run, fetch_and_emit, groups)


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
    other writers' conditional writes where the store has them (every backend orders a plain
    put with them)."""
    conditional = store.conditional_writes
    if payload is not None:
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

    def attempt(n: int) -> None:
        if n:
            refresh(g)
        payload = encode(g.merged())
        if payload is not None:
            mode: PutMode = "create" if g.version is None else "if_version"
            store.put(g.key, payload, mode=mode, version=g.version)
        elif g.existed:
            store.delete_if_version(g.key, g.version)

    retry_conflicts(g.key, store.url, attempt)
