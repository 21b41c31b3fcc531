"""Chunks of a sharded scale: ranged reads through cached minishard indexes, shard-wise writes.

Reading (``read_pieces``): the chunk ids of a box are grouped by ``(shard, minishard)``; each
minishard index is fetched once (two ranged reads: the 16-byte shard-index entry, then the index)
and kept in a bounded LRU cache; the chunks' byte ranges are then merged where they lie close
together in a shard and fetched with one ranged read per merged range.

Writing (``write_pieces``): the pieces of a box are grouped by shard. A shard whose every chunk the
box covers is built in memory and put once. A shard the box covers in part is read, merged and
rewritten with the store's conditional write (``put_if_version``), retried when another writer got
there first; stores without conditional writes refuse such writes, naming the shard box to align
writes to. Chunks equal to the fill value (every bit 0) are left out of a shard; a shard left with
no chunk is deleted. A write drops this process's cached indexes of the shards it rewrites.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from bigarrays.box import Box, ChunkPiece, Vec
from bigarrays.errors import (
    CorruptChunkError,
    ReadOnlyError,
    UnsupportedError,
    VersionConflictError,
)
from bigarrays.fill import is_fill
from bigarrays.formats.precomputed.chunks import ChunkLayout
from bigarrays.formats.precomputed.info import Info, Scale, ShardingSpec
from bigarrays.formats.precomputed.sharding import (
    MinishardIndex,
    ShardGeometry,
    ShardMap,
    check_spec_for_grid,
    coalesce,
    decode_data,
    decode_minishard_index,
    decode_shard,
    encode_data,
    encode_shard,
    morton_code,
    morton_codes,
)
from bigarrays.stores import Store
from bigarrays.stores.base import ANY_VERSION

T = TypeVar("T")
Run = Callable[[Callable[[Any], None], Iterable[Any]], None]

#: Default bound of the decoded minishard indexes kept per layout.
DEFAULT_CACHE_BYTES = 32 << 20
#: Byte ranges of one shard closer than this are fetched as one range: on an object store, reading
#: half a MiB more costs less than another round trip.
DEFAULT_COALESCE_GAP = 512 << 10
#: ... as long as the merged range stays under this (so that a cutout still runs in parallel).
DEFAULT_MAX_RANGE = 8 << 20
#: A write holds the new shards of at most this many uncompressed chunk bytes at once.
DEFAULT_WRITE_BATCH_BYTES = 256 << 20
#: Attempts of a partial-shard write that keeps losing the race to other writers.
MAX_CONFLICT_RETRIES = 64


def _inline_run(fn: Callable[[T], None], items: Iterable[T]) -> None:
    for item in items:
        fn(item)


class MinishardCache:
    """A thread-safe LRU of decoded minishard indexes, bounded in bytes.

    Each shard has a generation, bumped when this process writes it: an index fetched before a
    write is not stored after it.
    """

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[int, int], MinishardIndex] = OrderedDict()
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

    def get(self, key: tuple[int, int]) -> MinishardIndex | None:
        with self._lock:
            index = self._entries.get(key)
            if index is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return index

    def put(self, key: tuple[int, int], index: MinishardIndex, generation: int) -> None:
        with self._lock:
            if self._generations.get(key[0], 0) != generation or index.nbytes > self.max_bytes:
                return
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
            self._entries[key] = index
            self._bytes += index.nbytes
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


@dataclass
class _ShardWrite:
    """The pieces of one write that fall in one shard, and what the write makes of them."""

    shard: int
    key: str
    positions: list[int]  #: indices into the write's pieces
    full: bool  #: the write covers every chunk of the shard
    old: dict[int, bytes] = field(default_factory=dict)
    version: str | None = None
    existed: bool = False
    new: dict[int, bytes | None] = field(default_factory=dict)


class ShardedLayout(ChunkLayout):
    """Loads and saves the decoded chunks of one sharded scale."""

    handles_sharding = True

    def __init__(
        self,
        store: Store,
        info: Info,
        mip: int,
        *,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        coalesce_gap: int = DEFAULT_COALESCE_GAP,
        max_range: int = DEFAULT_MAX_RANGE,
        write_batch_bytes: int = DEFAULT_WRITE_BATCH_BYTES,
    ) -> None:
        super().__init__(store, info, mip)
        spec = self.scale.sharding
        assert spec is not None
        self.spec: ShardingSpec = spec
        grid3 = self.grid.grid_shape[:3]
        check_spec_for_grid(spec, grid3)
        self.shard_map = ShardMap(spec)
        self.geometry = ShardGeometry.of(grid3, spec)
        self.cache = MinishardCache(cache_bytes)
        self.coalesce_gap = coalesce_gap
        self.max_range = max_range
        self.write_batch_bytes = write_batch_bytes
        self._chunk_bytes = math.prod(self.grid.chunk) * self.dtype.itemsize
        self._shard_sizes: dict[int, int] | None = None
        self._loading: dict[tuple[int, int], threading.Lock] = {}
        self._loading_lock = threading.Lock()

    # -- naming ----------------------------------------------------------------------------------
    def chunk_id(self, index: Sequence[int]) -> int:
        return morton_code(index[:3], self.geometry.bits)

    def shard_key(self, shard: int) -> str:
        return f"{self._prefix}/{self.shard_map.shard_name(shard)}"

    def key(self, index: Sequence[int]) -> str:
        """The key of the chunk's shard, then ``#`` and the chunk id: ``8_8_40/5.shard#40``."""
        cid = self.chunk_id(index)
        return f"{self.shard_key(self.shard_map.locate(cid)[0])}#{cid}"

    # -- reading ---------------------------------------------------------------------------------
    def minishard_index(self, shard: int, minishard: int) -> MinishardIndex:
        """The decoded index of one minishard (empty when the shard or minishard is empty)."""
        cache_key = (shard, minishard)
        index = self.cache.get(cache_key)
        if index is not None:
            return index
        with self._loading_lock:
            lock = self._loading.setdefault(cache_key, threading.Lock())
        with lock:  # one fetch per minishard, however many threads want it
            index = self.cache.get(cache_key)
            if index is None:
                generation = self.cache.generation(shard)
                index = self._fetch_minishard_index(shard, minishard)
                self.cache.put(cache_key, index, generation)
        with self._loading_lock:
            self._loading.pop(cache_key, None)
        return index

    def _fetch_minishard_index(self, shard: int, minishard: int) -> MinishardIndex:
        key = self.shard_key(shard)
        entry = self.store.get_range(key, 16 * minishard, 16)
        if entry is None:
            return MinishardIndex.empty()
        if len(entry) != 16:
            raise CorruptChunkError(key, f"the shard index ends before minishard {minishard}")
        start, end = np.frombuffer(entry, dtype="<u8").tolist()
        if end <= start:
            return MinishardIndex.empty()
        base = self.shard_map.index_bytes
        data = self.store.get_range(key, base + start, end - start)
        if data is None:  # the shard was deleted between the two reads
            return MinishardIndex.empty()
        if len(data) != end - start:
            raise CorruptChunkError(key, f"minishard {minishard}'s index lies past the end")
        return decode_minishard_index(data, self.spec, key)

    def _decode_chunk(self, data: bytes, index: Vec, key: str) -> np.ndarray:
        raw = decode_data(data, self.spec.data_encoding, key)
        return self.decode(raw, self.grid.chunk_box(index).shape, key)

    def load(self, index: Vec) -> np.ndarray | None:
        """The decoded chunk at grid ``index``, or None when its shard does not hold it."""
        cid = self.chunk_id(index)
        shard, minishard = self.shard_map.locate(cid)
        for attempt in range(2):
            where = self.minishard_index(shard, minishard).find(cid)
            if where is None:
                return None
            start, end = where
            key = self.shard_key(shard)
            data = self.store.get_range(key, start, end - start)
            if data is not None and len(data) == end - start:
                return self._decode_chunk(data, index, f"{key}#{cid}")
            if attempt == 0:
                self.cache.invalidate(shard)  # rewritten by someone else: look again
        raise CorruptChunkError(
            f"{self.shard_key(shard)}#{cid}", "the shard is shorter than its index says"
        )

    def _locate_pieces(
        self, pieces: Sequence[ChunkPiece]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        indices = np.array([p.chunk_index[:3] for p in pieces], dtype=np.uint64).reshape(-1, 3)
        ids = morton_codes(indices, self.geometry.bits)
        shards, minishards = self.shard_map.locate_many(ids)
        return ids, shards, minishards

    def read_pieces(
        self,
        pieces: Sequence[ChunkPiece],
        run: Run,
        emit: Callable[[ChunkPiece, np.ndarray | None], None],
    ) -> None:
        if not pieces:
            return
        ids, shards, minishards = self._locate_pieces(pieces)
        wanted = sorted(set(zip(shards.tolist(), minishards.tolist(), strict=True)))
        indexes: dict[tuple[int, int], MinishardIndex] = {}

        def fetch_index(key: tuple[int, int]) -> None:
            indexes[key] = self.minishard_index(*key)

        run(fetch_index, wanted)

        by_shard: dict[int, list[tuple[int, int, int]]] = {}  # shard -> (position, start, end)
        missing = []
        for pos, (cid, shard, mini) in enumerate(
            zip(ids.tolist(), shards.tolist(), minishards.tolist(), strict=True)
        ):
            where = indexes[(shard, mini)].find(cid)
            if where is None:
                missing.append(pos)
            else:
                by_shard.setdefault(shard, []).append((pos, *where))
        for pos in missing:
            emit(pieces[pos], None)

        units: list[tuple[int, int, int, list[tuple[int, int, int]]]] = []
        for shard, members in by_shard.items():
            for start, end, which in coalesce(
                [(a, b) for _, a, b in members], self.coalesce_gap, self.max_range
            ):
                units.append((shard, start, end, [members[i] for i in which]))
        # Big ranges first, so that the last tasks to start are the short ones.
        units.sort(key=lambda u: u[1] - u[2])

        def fetch_range(unit: tuple[int, int, int, list[tuple[int, int, int]]]) -> None:
            shard, start, end, members = unit
            key = self.shard_key(shard)
            data = self.store.get_range(key, start, end - start)
            if data is None or len(data) != end - start:
                # Rewritten by another process since its index was read: chunk by chunk afresh.
                self.cache.invalidate(shard)
                for pos, _, _ in members:
                    emit(pieces[pos], self.load(pieces[pos].chunk_index))
                return
            view = memoryview(data)
            for pos, a, b in members:
                piece = pieces[pos]
                chunk = self._decode_chunk(
                    bytes(view[a - start : b - start]), piece.chunk_index, f"{key}#{ids[pos]}"
                )
                emit(piece, chunk)

        run(fetch_range, units)

    # -- writing ---------------------------------------------------------------------------------
    def shard_size(self, shard: int) -> int | None:
        """How many chunks of the volume shard ``shard`` holds (None when too costly to know)."""
        grid_box = self.geometry.shard_grid_box(shard)
        if grid_box is not None:
            start, stop = grid_box
            return math.prod(b - a for a, b in zip(start, stop, strict=True))
        if self._shard_sizes is None:
            if math.prod(self.geometry.grid_shape) > 1 << 22:
                return None
            all_shards, _ = self.shard_map.locate_many(self.geometry.all_chunk_ids())
            values, counts = np.unique(all_shards, return_counts=True)
            self._shard_sizes = dict(zip(values.tolist(), counts.tolist(), strict=True))
        return self._shard_sizes.get(shard, 0)

    def shard_box(self, shard: int) -> Box | None:
        """The voxels of a box-shaped shard (3-D, clipped to the volume), else None."""
        grid_box = self.geometry.shard_grid_box(shard)
        if grid_box is None:
            return None
        start, stop = grid_box
        first = self.grid.chunk_box((*start, 0))
        last = self.grid.chunk_box((*(s - 1 for s in stop), 0))
        return Box(first.start[:3], last.stop[:3])

    def _encode_chunk(self, chunk: np.ndarray) -> bytes | None:
        if is_fill(chunk):
            return None
        return encode_data(self.encode(chunk), self.spec.data_encoding)

    def _merge(
        self, piece: ChunkPiece, part: np.ndarray, old: bytes | None, cid: int
    ) -> np.ndarray:
        """The whole chunk after writing ``part`` over the stored chunk ``old``."""
        if old is None:
            chunk = np.zeros(piece.chunk_box.shape, dtype=self.dtype, order="F")
        else:
            decoded = self._decode_chunk(old, piece.chunk_index, f"#{cid}")
            chunk = np.array(decoded, dtype=self.dtype, order="F", copy=True)
        chunk[piece.in_chunk] = part
        return chunk

    def _refuse_partial(self, shard: int) -> UnsupportedError:
        box = self.shard_box(shard)
        shape = self.geometry.shard_chunks
        if box is not None and shape is not None:
            vox = " x ".join(str(n * c) for n, c in zip(shape, self.grid.chunk[:3], strict=True))
            hint = f"align writes to shards: boxes of {vox} voxels from {self.scale.voxel_offset}"
            hint += f" (this one is {box})"
        else:
            hint = "write whole shards (with this hash, only a write of the whole volume does)"
        return UnsupportedError(
            f"this write covers part of shard {self.shard_key(shard)!r}, which needs a "
            f"read-merge-write; the store {self.store.url} has no conditional writes to make "
            f"that safe against concurrent writers: {hint}"
        )

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
        ids, shards, _ = self._locate_pieces(pieces)
        order = np.argsort(shards, kind="stable")
        sorted_shards = shards[order]
        cuts = np.flatnonzero(np.diff(sorted_shards)) + 1
        groups: list[_ShardWrite] = []
        for chunk_positions in np.split(order, cuts):
            shard = int(shards[chunk_positions[0]])
            positions = chunk_positions.tolist()
            size = self.shard_size(shard)
            full = size == len(positions) and all(pieces[i].covers_chunk for i in positions)
            groups.append(_ShardWrite(shard, self.shard_key(shard), positions, full))
        if not self.store.conditional_writes:
            for g in groups:
                if not g.full:
                    raise self._refuse_partial(g.shard)

        batch: list[_ShardWrite] = []
        batch_bytes = 0
        for g in groups:
            batch.append(g)
            batch_bytes += len(g.positions) * self._chunk_bytes
            if batch_bytes >= self.write_batch_bytes:
                self._write_batch(batch, pieces, ids, part, run, done)
                batch, batch_bytes = [], 0
        if batch:
            self._write_batch(batch, pieces, ids, part, run, done)

    def _read_old(self, g: _ShardWrite) -> None:
        data, version = self.store.get_with_version(g.key)
        g.version, g.existed = version, data is not None
        g.old = {} if data is None else decode_shard(data, self.spec, g.key)

    def _write_batch(
        self,
        batch: list[_ShardWrite],
        pieces: Sequence[ChunkPiece],
        ids: np.ndarray,
        part: Callable[[ChunkPiece], np.ndarray],
        run: Run,
        done: Callable[[int], None],
    ) -> None:
        run(self._read_old, [g for g in batch if not g.full])

        def encode(item: tuple[_ShardWrite, int]) -> None:
            g, pos = item
            piece, cid = pieces[pos], int(ids[pos])
            new = part(piece)
            if not piece.covers_chunk:
                new = self._merge(piece, new, g.old.get(cid), cid)
            g.new[cid] = self._encode_chunk(new)

        run(encode, [(g, pos) for g in batch for pos in g.positions])

        def commit(g: _ShardWrite) -> None:
            try:
                if g.full:
                    self._put_whole(g)
                else:
                    self._put_merged(g, pieces, ids, part)
            finally:
                self.cache.invalidate(g.shard)
            g.old, g.new = {}, {}
            done(len(g.positions))

        run(commit, batch)

    def _put_whole(self, g: _ShardWrite) -> None:
        chunks = {cid: data for cid, data in g.new.items() if data is not None}
        conditional = self.store.conditional_writes
        if chunks:
            payload = encode_shard(chunks, self.spec)
            if conditional:
                self.store.put_if_version(g.key, payload, ANY_VERSION)
            else:
                self.store.put(g.key, payload)
        elif conditional:
            self.store.delete_if_version(g.key, ANY_VERSION)
        else:
            self.store.delete(g.key)

    def _put_merged(
        self,
        g: _ShardWrite,
        pieces: Sequence[ChunkPiece],
        ids: np.ndarray,
        part: Callable[[ChunkPiece], np.ndarray],
    ) -> None:
        for attempt in range(MAX_CONFLICT_RETRIES):
            chunks = dict(g.old)
            for cid, data in g.new.items():
                if data is None:
                    chunks.pop(cid, None)
                else:
                    chunks[cid] = data
            try:
                if chunks:
                    self.store.put_if_version(g.key, encode_shard(chunks, self.spec), g.version)
                elif g.existed:
                    self.store.delete_if_version(g.key, g.version)
                return
            except VersionConflictError:
                # Another writer changed the shard since we read it: read it again and re-merge
                # the chunks this write covers only in part (whole chunks do not depend on it).
                time.sleep(random.uniform(0, 0.002 * (attempt + 1)))
                self._read_old(g)
                for pos in g.positions:
                    piece = pieces[pos]
                    if not piece.covers_chunk:
                        cid = int(ids[pos])
                        merged = self._merge(piece, part(piece), g.old.get(cid), cid)
                        g.new[cid] = self._encode_chunk(merged)
        raise VersionConflictError(g.key, self.store.url)

    # -- single chunks (the ChunkSource protocol) ------------------------------------------------
    def _whole_piece(self, index: Vec) -> ChunkPiece:
        cbox = self.grid.chunk_box(index)
        full = cbox.slices(cbox.start)
        return ChunkPiece(tuple(index), cbox, full, full)

    def save(self, index: Vec, chunk: np.ndarray) -> None:
        """Store one whole chunk: a read-merge-write of its shard, unless it is all the shard."""
        self.write_pieces([self._whole_piece(index)], lambda _: chunk, _inline_run, lambda _: None)

    def delete(self, index: Vec) -> None:
        zeros = np.zeros(self.grid.chunk_box(index).shape, dtype=self.dtype, order="F")
        self.save(index, zeros)


# -- describing a sharded scale ------------------------------------------------------------------


@dataclass(frozen=True)
class ShardingSummary:
    """What ``bigarrays info`` prints about a sharded scale."""

    spec: ShardingSpec
    num_shards: int
    num_shards_exact: bool
    chunks_per_shard: int  #: of a whole box-shaped shard; the mean over shards otherwise
    shard_chunks: tuple[int, ...] | None  #: chunks per axis of a box-shaped shard
    shard_voxels: tuple[int, ...] | None  #: voxels per axis of a box-shaped shard
    shard_bytes: int  #: uncompressed bytes of a full shard


def summarize_sharding(scale: Scale, num_channels: int, itemsize: int) -> ShardingSummary:
    if scale.sharding is None:
        raise ValueError(f"scale {scale.key!r} is not sharded")
    grid = tuple(-(-s // c) for s, c in zip(scale.size, scale.chunk_size, strict=True))
    geometry = ShardGeometry.of(grid, scale.sharding)
    count, exact = geometry.num_shards()
    per = geometry.shard_chunks
    if per is not None:
        per = tuple(min(p, g) for p, g in zip(per, grid, strict=True))
        chunks = math.prod(per)
    else:  # scattered shards: the mean
        chunks = max(1, round(math.prod(grid) / max(1, count)))
    voxels = (
        None if per is None else tuple(p * c for p, c in zip(per, scale.chunk_size, strict=True))
    )
    chunk_bytes = math.prod(scale.chunk_size) * num_channels * itemsize
    return ShardingSummary(scale.sharding, count, exact, chunks, per, voxels, chunks * chunk_bytes)
