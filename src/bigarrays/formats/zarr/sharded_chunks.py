"""The inner chunks of a sharded Zarr v3 array as a batched chunk source for the engine.

The engine sees the grid of INNER chunks, so a cutout decodes only the inner chunks it touches.

Reading (``read_pieces``): pieces are grouped by shard; each shard's index (its first or last
bytes, a fixed size) is read once with its shard's version and kept in a bounded cache; inner
chunks are read by ranged reads held to that version (``get_ranges_if_version``), which merges
ranges that lie close together in a shard into one read (raw inner chunks of a local file are
read row by row into the threads' buffers instead). A shard found at another version drops
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
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import numpy as np

from bigarrays.box import Box, ChunkGrid, ChunkPiece, Vec
from bigarrays.chunk_source import SHARD_INLINE_CHUNKS, ChunkSourceBase, Order, run_serially
from bigarrays.errors import (
    CorruptChunkError,
    StaleReadError,
)
from bigarrays.fill import is_fill
from bigarrays.formats.indexed_reads import Changed, IndexedRead
from bigarrays.formats.shard_writes import DEFAULT_WRITE_BATCH_BYTES, ShardWriter
from bigarrays.formats.sharding import (
    DEFAULT_CACHE_BYTES,
    Run,
    ShardRanges,
    VersionedCache,
    read_shard_ranges,
    run_few,
    worth_keeping,
)
from bigarrays.formats.zarr.chunks import (
    KeyCache,
    decodes_buffers,
    plain_bytes,
    stored_buffer,
    whole_chunk,
)
from bigarrays.formats.zarr.metadata_v3 import ArrayMetadataV3
from bigarrays.formats.zarr.sharding import ABSENT, ShardingConfig
from bigarrays.stores import Store
from bigarrays.stores.versions import ANY_VERSION

T = TypeVar("T")
Shard = tuple[int, ...]


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


#: Raw inner chunks read per task by a request shared out on the pool: enough to spread the open
#: of a shard over several chunks, few enough that both cores get work from a 256³ cutout.
ROW_BATCH = 8

RowBatch = tuple[tuple[Shard, "str | None"], list[tuple[int, int, int]]]


def row_batches(ranges: ShardRanges, per: int = ROW_BATCH) -> list[RowBatch]:
    """The chunks of each (shard, version) in the order they lie in the shard, cut into tasks
    of ``per`` chunks: each task reads its chunks through one open of the shard into its
    thread's buffer, so a large request allocates nothing per chunk for their stored bytes."""
    batches: list[RowBatch] = []
    for group, members in ranges.items():
        ordered = sorted(members, key=lambda m: m[1])
        for i in range(0, len(ordered), per):
            batches.append((group, ordered[i : i + per]))
    return batches


class ShardedZarrChunks(ShardWriter, ChunkSourceBase):
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
        self._shard_keys = KeyCache(lambda shard: self._prefix + self.meta.chunk_key(shard))
        self.chunk_nbytes = math.prod(inner) * self.dtype.itemsize
        self.merges_safely = store.conditional_writes
        #: Raw inner chunks of a local file: each is read as just the rows (along the first
        #: axis) that its piece needs, into a buffer of this thread's; a small request on the
        #: calling thread, a larger one in tasks of a few chunks on the pool.
        self.rows_in_place = (
            store.reads_into_buffers and plain_bytes(self.chain, self.dtype) and len(inner) > 0
        )
        if self.rows_in_place:
            self.inline_chunks = SHARD_INLINE_CHUNKS
        #: zstd inner chunks of a local file: each chunk's stored bytes are read into a buffer
        #: of this thread's and decoded from there, rather than read as spans of the shard and
        #: copied out chunk by chunk into new bytes.
        self.stored_in_place = store.reads_into_buffers and decodes_buffers(self.chain)
        self._local = threading.local()
        self.cache: VersionedCache[ShardIndex] = VersionedCache(cache_bytes)
        self.write_batch_bytes = write_batch_bytes
        self.max_shard_bytes = self.config.max_shard_bytes
        self.chunks_then_index = self.config.index_location == "end"
        self._shard_grid = meta.grid_shape

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
        return self._shard_keys(shard)

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
        return self.cache.get_or_fetch((self._shard_id(shard), 0),
                                       lambda: self.fetch_index(shard), worth_keeping)  # fmt: skip

    # -- the read loop's view of the indexes (formats.indexed_reads.ShardIndexes) -------------
    @staticmethod
    def shard_of(shard: Shard) -> Shard:
        return shard

    def cached_index(self, shard: Shard) -> ShardIndex | None:
        return self.cache.get((self._shard_id(shard), 0))

    def load_index(self, shard: Shard) -> ShardIndex:
        return self.index(shard)

    @staticmethod
    def find(index: ShardIndex, pos: int) -> tuple[int, int] | None:
        offset, nbytes = index.table[pos].tolist()
        return None if offset == ABSENT else (offset, offset + nbytes)

    def still_absent(self, shard: Shard, cached: ShardIndex) -> bool:
        now = self.fetch_index(shard)
        return now.exists == cached.exists and now.version == cached.version

    def forget_shard(self, shard: Shard) -> None:
        self.cache.invalidate(self._shard_id(shard))

    # -- reading ---------------------------------------------------------------------------------
    def read_pieces(
        self,
        pieces: Sequence[ChunkPiece],
        run: Run,
        emit: Callable[[ChunkPiece, np.ndarray | None], None],
    ) -> None:
        located = [self.locate(p.chunk_index) for p in pieces]

        def decode(p: int, data: bytes | None) -> None:
            if data is None:
                emit(pieces[p], None)
                return
            shard, pos = located[p]
            # Into this thread's buffer, pasted (emitted) before the thread decodes the next.
            decoded = getattr(self._local, "decoded", None)
            if decoded is None:
                decoded = self._local.decoded = bytearray(self.chunk_nbytes)
            emit(pieces[p], self.chain.decode_into(data, f"{self.shard_key(shard)}#{pos}", decoded))

        def read_rows(ranges: ShardRanges, run: Run, first: bool, _: object,
                      changed: Changed) -> None:  # fmt: skip
            def read(batch: RowBatch) -> None:
                self._read_rows(batch[0], batch[1], pieces, emit, changed)

            run_few(run, read, row_batches(ranges))

        def read_stored(ranges: ShardRanges, run: Run, first: bool,
                        emit: Callable[[int, bytes], None], changed: Changed) -> None:  # fmt: skip
            def read(batch: RowBatch) -> None:
                self._read_stored(batch[0], batch[1], first, emit, changed)

            # Decoding dominates: a request of a few chunks decodes each on its own worker, a
            # large one in tasks of up to ROW_BATCH.
            n = sum(len(members) for members in ranges.values())
            run_few(run, read, row_batches(ranges, min(ROW_BATCH, max(1, n // ROW_BATCH))))

        shards, positions = [s for s, _ in located], [q for _, q in located]
        how = read_rows if self.rows_in_place else read_stored if self.stored_in_place else None
        IndexedRead(self, shards, positions, how).run(run, decode)

    def _read_stored(
        self,
        group: tuple[Shard, str | None],
        members: Sequence[tuple[int, int, int]],
        first: bool,
        emit: Callable[[int, bytes], None],
        changed: Changed,
    ) -> None:
        """Emit the stored bytes of the compressed chunks ``members`` (``(position, start,
        end)`` in the shard), each read into this thread's buffer, held to the version of the
        index that placed them; ``emit`` decodes them before the next is read."""
        buffer = stored_buffer(self._local, self.chunk_nbytes)
        if any(b - a > len(buffer) for _, a, b in members):  # stored larger than zstd makes
            read_shard_ranges(self.store, self.shard_key, {group: members}, run_serially,
                              first, emit, changed)  # fmt: skip
            return
        # zstd decodes from the view into other memory: nothing emitted refers to the buffer.
        self._read_into(group, [(p, a, b - a) for p, a, b in members], buffer,
                        lambda p, view: emit(p, cast(bytes, view)), changed)  # fmt: skip

    def _read_rows(
        self,
        group: tuple[Shard, str | None],
        members: Sequence[tuple[int, int, int]],
        pieces: Sequence[ChunkPiece],
        emit: Callable[[ChunkPiece, np.ndarray | None], None],
        changed: Changed,
    ) -> None:
        """Emit the raw chunks ``members`` (``(position, start, end)`` in the shard), each read
        as just the rows of it that its piece needs, held to the version of the index that
        placed them (``changed`` for those of a shard rewritten since)."""
        key = self.shard_key(group[0])
        shape = self.config.chunk_shape
        row = math.prod(shape[1:]) * self.dtype.itemsize
        wanted: list[tuple[int, int, int]] = []
        for p, a, b in members:
            if b - a != self.chunk_nbytes:
                raise CorruptChunkError(
                    f"{key}#{p}", f"a raw chunk of {b - a} bytes, expected {self.chunk_nbytes}"
                )
            rows = pieces[p].in_chunk[0]
            wanted.append((p, a + rows.start * row, (rows.stop - rows.start) * row))
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = self._local.scratch = memoryview(bytearray(self.chunk_nbytes))

        def take(p: int, view: memoryview) -> None:
            piece = pieces[p]
            rows = piece.in_chunk[0]
            part = np.frombuffer(view, self.dtype).reshape(rows.stop - rows.start, *shape[1:])
            in_chunk = (slice(0, part.shape[0]), *piece.in_chunk[1:])
            emit(ChunkPiece(piece.chunk_index, piece.chunk_box, in_chunk, piece.in_box), part)

        self._read_into(group, wanted, scratch, take, changed)

    def _read_into(
        self,
        group: tuple[Shard, str | None],
        wanted: Sequence[tuple[int, int, int]],
        buffer: memoryview,
        take: Callable[[int, memoryview], None],
        changed: Changed,
    ) -> None:
        """Read ``wanted`` (``(position, start, length)`` in the shard) one after another into
        ``buffer``, held to the version of the index that placed them, and hand each to
        ``take``; ``changed`` gets those of a shard rewritten or removed since."""
        (shard, version), key = group, self.shard_key(group[0])
        done: set[int] = set()

        def each(i: int, view: memoryview) -> None:
            p, _, n = wanted[i]
            if len(view) != n:
                raise CorruptChunkError(key, "the shard is shorter than its index says")
            take(p, view)
            done.add(p)

        try:
            found = self.store.read_ranges_into(
                key, [(a, n) for _, a, n in wanted], buffer, each,
                ANY_VERSION if version is None else version,
            )  # fmt: skip
        except StaleReadError:
            found = False
        if not found:  # rewritten or removed since its index was read
            changed(shard, [p for p, _, _ in wanted if p not in done])

    # -- writing (the format's side of ShardWriter) ---------------------------------------------
    def write_targets(self, pieces: Sequence[ChunkPiece]) -> list[tuple[Shard, int]]:
        return [self.locate(p.chunk_index) for p in pieces]

    def chunks_in_shard(self, shard: Shard) -> int:
        """How many of the shard's inner chunks lie (at least in part) inside the array."""
        box = self.shard_box(shard)
        return math.prod(-(-n // c) for n, c in zip(box.shape, self.config.chunk_shape,
                                                    strict=True))  # fmt: skip

    def split_shard(self, data: bytes, key: str) -> dict[int, bytes]:
        return self.config.split_shard(data, key)

    def encode_shard(self, chunks: Mapping[int, bytes]) -> bytes | None:
        return self.config.encode_shard(chunks)

    def encode_shard_parts(self, chunks: Mapping[int, bytes]) -> list[bytes] | None:
        return self.config.encode_shard_parts(chunks)

    def shard_parts(self, chunk: Callable[[int], Any]) -> Iterator[Any]:
        return self.config.shard_parts(chunk)

    def chunk_rank(self, cid: int) -> int:
        return int(self.config.write_rank[cid])

    def encode_chunk(self, chunk: np.ndarray) -> bytes | None:
        """The stored bytes of an inner chunk's voxels (padded to the whole inner chunk); None
        for one all fill (left out)."""
        if is_fill(chunk, self.fill_value):
            return None
        return self.chain.encode(whole_chunk(chunk, self.grid.chunk, self.dtype, self.fill_value))

    def decode_chunk(self, data: bytes, index: Vec, key: str) -> np.ndarray:
        return self.chain.decode(data, key)

    def partial_hint(self, shard: Shard) -> str:
        return (
            f"align writes to shards of {self.config.shard_shape} voxels (this one is "
            f"{self.shard_box(shard)})"
        )

    def forget_index(self, shard: Shard) -> None:
        self.cache.invalidate(self._shard_id(shard))


__all__ = ["ShardIndex", "ShardedZarrChunks"]
