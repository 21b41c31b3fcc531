"""The inner chunks of a sharded Zarr v3 array as a batched chunk source for the engine.

The engine sees the grid of INNER chunks, so a cutout decodes only the inner chunks it touches.

Reading (``read_pieces``): pieces are grouped by shard; each shard's index (its first or last
bytes, a fixed size) is read once with its shard's version and kept in a bounded cache; inner
chunks are read by ranged reads held to that version (``get_ranges_if_version``), which merges
ranges that lie close together in a shard into one read. A shard found at another version drops
its cached index and is read again. An index entry that cannot be right (past the shard, longer
than an inner chunk can be stored in, overflowing) is CorruptChunkError.

Writing (``write_pieces``): pieces are grouped by shard. A shard the write covers wholly is built
in memory and put once; a shard covered in part is read with its version, merged and put only if
unchanged (``put(mode="if_version")``), again when another writer got there first. Stores without
conditional writes refuse a write of part of a shard, naming the shard's box. Inner chunks equal
to the fill value are left out; a shard left with none is deleted. At most a batch of shards is
held in memory at once.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from bigarrays.box import Box, ChunkGrid, ChunkPiece, Vec
from bigarrays.chunk_source import ChunkSourceBase, Order
from bigarrays.errors import (
    CorruptChunkError,
    ReadOnlyError,
    StaleReadError,
    UnsupportedError,
)
from bigarrays.fill import filled, is_fill
from bigarrays.formats.precomputed.shard_reads import MAX_STALE_RETRIES
from bigarrays.formats.precomputed.sharded_layout import DEFAULT_WRITE_BATCH_BYTES
from bigarrays.formats.sharding import (
    DEFAULT_CACHE_BYTES,
    Run,
    ShardWrite,
    VersionedCache,
    in_batches,
    partial_shard_refused,
    put_merged,
    put_whole,
    read_shard_ranges,
    run_few,
)
from bigarrays.formats.zarr.chunks import whole_chunk
from bigarrays.formats.zarr.metadata_v3 import ArrayMetadataV3
from bigarrays.formats.zarr.sharding import ABSENT, ShardingConfig
from bigarrays.stores import Store

T = TypeVar("T")
Shard = tuple[int, ...]


def _inline_run(fn: Callable[[T], None], items: Iterable[T]) -> None:
    for item in items:
        fn(item)


@dataclass(frozen=True)
class ShardIndex:
    """A shard's decoded index (``(n, 2)`` uint64) and the version of the shard it was read
    from; ``version`` is None when the shard does not exist or the store has no versions."""

    table: np.ndarray
    version: str | None
    exists: bool

    @property
    def nbytes(self) -> int:
        return int(self.table.nbytes)


class ShardedZarrChunks(ChunkSourceBase):
    """Loads and saves the decoded inner chunks of one sharded Zarr v3 array."""

    order: Order = "C"
    batched = True

    def __init__(
        self,
        store: Store,
        prefix: str,
        meta: ArrayMetadataV3,
        dtype: np.dtype,
        *,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        write_batch_bytes: int = DEFAULT_WRITE_BATCH_BYTES,
    ) -> None:
        self.store = store
        self.meta = meta
        self.config = ShardingConfig.of(meta)
        inner = self.config.chunk_shape
        self.grid = ChunkGrid(origin=(0,) * len(meta.shape), size=meta.shape, chunk=inner)
        self.dtype = np.dtype(dtype)
        self.fill_value = meta.fill_value
        self.chain = self.config.codecs
        self._prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.chunk_nbytes = math.prod(inner) * self.dtype.itemsize
        self.merges_safely = store.conditional_writes
        self.cache: VersionedCache[ShardIndex] = VersionedCache(cache_bytes)
        self.write_batch_bytes = write_batch_bytes
        self._shard_grid = meta.grid_shape
        self._loading: dict[Shard, threading.Lock] = {}
        self._loading_lock = threading.Lock()

    @property
    def url(self) -> str:
        return self.store.url

    # -- naming ----------------------------------------------------------------------------------
    def locate(self, index: Vec) -> tuple[Shard, int]:
        """The shard of inner chunk ``index`` and its position (C order) in the shard."""
        per = self.config.chunks_per_shard
        shard = tuple(i // p for i, p in zip(index, per, strict=True))
        pos = 0
        for i, p in zip(index, per, strict=True):
            pos = pos * p + i % p
        return shard, pos

    def shard_key(self, shard: Shard) -> str:
        return self._prefix + self.meta.chunk_key(shard)

    def key(self, index: Vec) -> str:
        """The key of the inner chunk's shard, then ``#`` and its position in the shard."""
        shard, pos = self.locate(index)
        return f"{self.shard_key(shard)}#{pos}"

    def _shard_id(self, shard: Shard) -> int:
        out = 0
        for i, n in zip(shard, self._shard_grid, strict=True):
            out = out * n + i
        return out

    def shard_box(self, shard: Shard) -> Box:
        """The voxels of a shard, clipped to the array."""
        start = tuple(i * s for i, s in zip(shard, self.config.shard_shape, strict=True))
        stop = tuple(
            min(a + s, n) for a, s, n in zip(start, self.config.shard_shape, self.meta.shape,
                                             strict=True)
        )  # fmt: skip
        return Box(start, stop)

    def _inner_in_array(self, shard: Shard) -> int:
        """How many of the shard's inner chunks lie (at least in part) inside the array."""
        box = self.shard_box(shard)
        return math.prod(-(-n // c) for n, c in zip(box.shape, self.config.chunk_shape,
                                                    strict=True))  # fmt: skip

    # -- indexes ---------------------------------------------------------------------------------
    def fetch_index(self, shard: Shard) -> ShardIndex:
        """Read a shard's index from the store, with the shard's version."""
        key = self.shard_key(shard)
        n = self.config.index_nbytes
        if self.config.index_location == "start":
            data, version = self.store.get_range_with_version(key, 0, n)
        else:
            data, version = self.store.get_range_with_version(key, -n)
        if data is None:
            return ShardIndex(self.config.empty_index().reshape(-1, 2), None, False)
        if len(data) != n:
            raise CorruptChunkError(
                key, f"a shard of {len(data)} bytes cannot hold its index of {n} bytes"
            )
        return ShardIndex(self.config.decode_index(data, key), version, True)

    def index(self, shard: Shard) -> ShardIndex:
        """A shard's index: from the cache, else fetched (once, however many threads want it)
        and cached when its version is known or the shard does not exist."""
        sid = self._shard_id(shard)
        entry = self.cache.get((sid, 0))
        if entry is not None:
            return entry
        with self._loading_lock:
            lock = self._loading.setdefault(shard, threading.Lock())
        try:
            with lock:
                entry = self.cache.get((sid, 0))
                if entry is None:
                    generation = self.cache.generation(sid)
                    entry = self.fetch_index(shard)
                    if entry.version is not None or not entry.exists:
                        self.cache.put((sid, 0), entry, generation)
        finally:
            with self._loading_lock:
                self._loading.pop(shard, None)
        return entry

    # -- reading ---------------------------------------------------------------------------------
    def load(self, index: Vec) -> np.ndarray | None:
        out: list[np.ndarray | None] = [None]

        def keep(_: ChunkPiece, chunk: np.ndarray | None) -> None:
            out[0] = chunk

        self.read_pieces([self._whole_piece(index)], _inline_run, keep)
        return out[0]

    def read_pieces(
        self,
        pieces: Sequence[ChunkPiece],
        run: Run,
        emit: Callable[[ChunkPiece, np.ndarray | None], None],
    ) -> None:
        located = [self.locate(p.chunk_index) for p in pieces]
        pending = list(range(len(pieces)))
        for attempt in range(MAX_STALE_RETRIES):
            pending = self._read_round(pieces, located, pending, run, emit, attempt)
            if not pending:
                return
        key = self.shard_key(located[pending[0]][0])
        raise StaleReadError(key, self.store.url, "kept changing while its chunks were read")

    def _read_round(
        self,
        pieces: Sequence[ChunkPiece],
        located: list[tuple[Shard, int]],
        pending: list[int],
        run: Run,
        emit: Callable[[ChunkPiece, np.ndarray | None], None],
        attempt: int,
    ) -> list[int]:
        """One attempt at the pieces at ``pending``; the positions to try again."""
        shards = sorted({located[p][0] for p in pending})
        indexes: dict[Shard, ShardIndex] = {}
        fresh: set[Shard] = set()
        for shard in shards:
            cached = self.cache.get((self._shard_id(shard), 0))
            if cached is None:
                fresh.add(shard)
            else:
                indexes[shard] = cached

        def get_index(shard: Shard) -> None:
            indexes[shard] = self.index(shard)

        run_few(run, get_index, sorted(fresh))

        ranges: dict[tuple[Shard, str | None], list[tuple[int, int, int]]] = {}
        absent: dict[Shard, list[int]] = {}
        for p in pending:
            shard, pos = located[p]
            entry = indexes[shard]
            offset, nbytes = (int(v) for v in entry.table[pos])
            if offset == ABSENT:
                absent.setdefault(shard, []).append(p)
            else:
                ranges.setdefault((shard, entry.version), []).append((p, offset, offset + nbytes))

        retry: list[int] = []
        lock = threading.Lock()

        def check_absent(shard: Shard) -> None:
            # A cached index may be stale: it says "absent" only while the shard is unchanged.
            if shard not in fresh:
                now = self.fetch_index(shard)
                cached = indexes[shard]
                if now.exists != cached.exists or now.version != cached.version:
                    self.cache.invalidate(self._shard_id(shard))
                    with lock:
                        retry.extend(absent[shard])
                    return
            for p in absent[shard]:
                emit(pieces[p], None)

        run_few(run, check_absent, list(absent))

        def changed(shard: Shard, positions: list[int]) -> None:
            self.cache.invalidate(self._shard_id(shard))  # rewritten: read it again
            with lock:
                retry.extend(positions)

        def decode(p: int, data: bytes) -> None:
            inner_key = f"{self.shard_key(located[p][0])}#{located[p][1]}"
            emit(pieces[p], self.chain.decode(data, inner_key))

        read_shard_ranges(self.store, self.shard_key, ranges, run, attempt == 0, decode, changed)
        return retry

    # -- writing ---------------------------------------------------------------------------------
    def _encode(self, part: np.ndarray) -> bytes | None:
        """The stored bytes of an inner chunk's voxels; None for one all fill (left out)."""
        if is_fill(part, self.fill_value):
            return None
        return self.chain.encode(whole_chunk(part, self.grid.chunk, self.dtype, self.fill_value))

    def _merged(
        self, piece: ChunkPiece, part: np.ndarray, old: bytes | None, key: str
    ) -> bytes | None:
        if old is None:
            chunk = filled(self.grid.chunk, self.dtype, self.fill_value, "C")
        else:
            chunk = np.array(self.chain.decode(old, key), dtype=self.dtype, order="C", copy=True)
        inside = tuple(slice(0, n) for n in piece.chunk_box.shape)
        chunk[inside][piece.in_chunk] = part
        return self._encode(chunk[inside])

    def _refuse_partial(self, shard: Shard) -> UnsupportedError:
        hint = (
            f"align writes to shards of {self.config.shard_shape} voxels (this one is "
            f"{self.shard_box(shard)})"
        )
        return partial_shard_refused(self.shard_key(shard), self.store.url, hint)

    def write_pieces(
        self,
        pieces: Sequence[ChunkPiece],
        part: Callable[[ChunkPiece], np.ndarray],
        run: Run,
        done: Callable[[int], None],
    ) -> None:
        if not pieces:
            return
        if self.store.read_only:
            raise ReadOnlyError(f"{self.store.url} is opened read-only")
        located = [self.locate(p.chunk_index) for p in pieces]
        by_shard: dict[Shard, list[int]] = {}
        for i, (shard, _) in enumerate(located):
            by_shard.setdefault(shard, []).append(i)
        groups = []
        for shard, positions in sorted(by_shard.items()):
            full = len(positions) == self._inner_in_array(shard) and all(
                pieces[i].covers_chunk for i in positions
            )
            groups.append(ShardWrite(shard, self.shard_key(shard), positions, full))
        if not self.store.conditional_writes:
            for g in groups:
                if not g.full:
                    raise self._refuse_partial(g.shard)
        for batch in in_batches(groups, self.chunk_nbytes, self.write_batch_bytes):
            self._write_batch(batch, pieces, located, part, run, done)

    def _read_old(self, g: ShardWrite) -> None:
        data, version = self.store.get_with_version(g.key, max_size=self.config.max_shard_bytes)
        g.version, g.existed = version, data is not None
        # A shard that cannot be decoded is refused (CorruptChunkError naming it): rewriting it
        # with only the chunks of this write would drop every other chunk it holds.
        g.old = {} if data is None else self.config.split_shard(data, g.key)

    def _encode_piece(
        self, g: ShardWrite, i: int, pieces: Sequence[ChunkPiece],
        located: list[tuple[Shard, int]], part: Callable[[ChunkPiece], np.ndarray],
    ) -> None:  # fmt: skip
        piece, pos = pieces[i], located[i][1]
        new = part(piece)
        if piece.covers_chunk:
            g.new[pos] = self._encode(new)
        else:
            g.new[pos] = self._merged(piece, new, g.old.get(pos), f"{g.key}#{pos}")

    def _write_batch(
        self,
        batch: list[ShardWrite],
        pieces: Sequence[ChunkPiece],
        located: list[tuple[Shard, int]],
        part: Callable[[ChunkPiece], np.ndarray],
        run: Run,
        done: Callable[[int], None],
    ) -> None:
        run_few(run, self._read_old, [g for g in batch if not g.full])
        run_few(
            run, lambda item: self._encode_piece(item[0], item[1], pieces, located, part),
            [(g, i) for g in batch for i in g.positions],
        )  # fmt: skip

        def commit(g: ShardWrite) -> None:
            try:
                if g.full:
                    payload = {p: d for p, d in g.new.items() if d is not None}
                    put_whole(self.store, g.key, self.config.encode_shard(payload))
                else:
                    self._put_merged(g, pieces, located, part)
            finally:
                self.cache.invalidate(self._shard_id(g.shard))
            g.old, g.new = {}, {}
            done(len(g.positions))

        run_few(run, commit, batch)

    def _put_merged(
        self, g: ShardWrite, pieces: Sequence[ChunkPiece], located: list[tuple[Shard, int]],
        part: Callable[[ChunkPiece], np.ndarray],
    ) -> None:  # fmt: skip
        def refresh(g: ShardWrite) -> None:
            # The inner chunks this write covers in part are merged again with what the other
            # writer stored; whole ones do not depend on it.
            self._read_old(g)
            for i in g.positions:
                if not pieces[i].covers_chunk:
                    self._encode_piece(g, i, pieces, located, part)

        put_merged(self.store, g, self.config.encode_shard, refresh)

    # -- single chunks (the ChunkSource protocol) ------------------------------------------------
    def _whole_piece(self, index: Vec) -> ChunkPiece:
        cbox = self.grid.chunk_box(index)
        full = cbox.slices(cbox.start)
        return ChunkPiece(tuple(index), cbox, full, full)

    def save(self, index: Vec, chunk: np.ndarray) -> None:
        """Store one whole inner chunk: a read-merge-write of its shard, unless it is all of it."""
        self.write_pieces([self._whole_piece(index)], lambda _: chunk, _inline_run, lambda _: None)

    def delete(self, index: Vec) -> None:
        fill = filled(self.grid.chunk_box(index).shape, self.dtype, self.fill_value, "C")
        self.save(index, fill)


__all__ = ["ShardIndex", "ShardedZarrChunks"]
