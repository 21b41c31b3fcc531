"""Chunks of a sharded scale: ranged reads through cached minishard indexes, shard-wise writes.

Reading (``read_pieces``): the chunk ids of a box are grouped by ``(shard, minishard)``; each
minishard index is fetched once (two ranged reads: the 16-byte shard-index entry, then the index)
and kept, with the version of the shard it came from, in a bounded LRU cache; the chunks' byte
ranges are then merged where they lie close together in a shard and fetched with one ranged read
per merged range, held to that version (:mod:`~bigarrays.formats.precomputed.shard_reads`).
Every index is checked against the bounds of the scale before anything is read or inflated
(:mod:`~bigarrays.formats.precomputed.shard_limits`).

Writing goes through the engine every shard format shares
(:class:`~bigarrays.formats.shard_writes.ShardWriter`); this module says how a chunk is placed in
a shard (its chunk id, hashed to a shard and minishard) and how chunks and shards are coded.
Chunks equal to the fill value (every bit 0) are left out of a shard; a shard left with no chunk
is deleted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from bigarrays.box import Box, ChunkPiece, Vec
from bigarrays.fill import is_fill
from bigarrays.formats.precomputed.chunks import ChunkLayout
from bigarrays.formats.precomputed.info import Info, Scale, ShardingSpec
from bigarrays.formats.precomputed.shard_limits import IndexLimits
from bigarrays.formats.precomputed.shard_reads import DEFAULT_CACHE_BYTES, ShardReader
from bigarrays.formats.precomputed.sharding import (
    MinishardIndex,
    ShardGeometry,
    ShardMap,
    check_spec_for_grid,
    decode_data,
    decode_shard,
    encode_data,
    encode_shard,
    morton_code,
    morton_codes,
)
from bigarrays.formats.shard_writes import DEFAULT_WRITE_BATCH_BYTES, ShardWriter
from bigarrays.formats.sharding import Run
from bigarrays.stores import Store


class ShardedLayout(ShardWriter, ChunkLayout):
    """Loads and saves the decoded chunks of one sharded scale."""

    handles_sharding = True
    batched = True

    def __init__(
        self,
        store: Store,
        info: Info,
        mip: int,
        *,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
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
        self.write_batch_bytes = write_batch_bytes
        self.chunk_nbytes = math.prod(self.grid.chunk) * self.dtype.itemsize
        self._shard_sizes: dict[int, int] | None = None
        per_shard = self.geometry.shard_chunks
        if per_shard is not None:
            self.shard_shape = (
                *(n * c for n, c in zip(per_shard, self.grid.chunk, strict=False)),
                *self.grid.chunk[3:],
            )
        self.limits = IndexLimits.of(
            math.prod(grid3 if per_shard is None else per_shard),
            self.chunk_nbytes,
            exact_size=self.scale.encoding == "raw",
        )
        self.reader = ShardReader(store, spec, self.shard_key, self.limits, cache_bytes=cache_bytes)
        #: The decoded minishard indexes of this layout, with their shards' versions.
        self.cache = self.reader.cache

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
        return self.reader.minishard_index(shard, minishard).index

    def decode_chunk(self, data: bytes, index: Vec, key: str) -> np.ndarray:
        raw = decode_data(data, self.spec.data_encoding, key, self.limits.max_decoded_chunk_bytes)
        shape = self.grid.chunk_box(index).shape
        if self.blosc is not None:
            return self.decode(raw, shape, key)
        # The format's data_encoding says how chunks are stored: no sniffing for gzip in them
        # (which would inflate without a bound).
        return self.codec.decode(raw, shape, key)

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
        id_list, shard_list = ids.tolist(), shards.tolist()

        def decode(pos: int, data: bytes | None) -> None:
            piece = pieces[pos]
            if data is None:
                emit(piece, None)
                return
            key = f"{self.shard_key(shard_list[pos])}#{id_list[pos]}"
            emit(piece, self.decode_chunk(data, piece.chunk_index, key))

        self.reader.read(id_list, shard_list, minishards.tolist(), run, decode)

    # -- writing ---------------------------------------------------------------------------------
    def chunks_in_shard(self, shard: int) -> int | None:
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

    def encode_chunk(self, chunk: np.ndarray) -> bytes | None:
        if is_fill(chunk):
            return None
        return encode_data(self.encode(chunk), self.spec.data_encoding)

    def partial_hint(self, shard: int) -> str:
        box = self.shard_box(shard)
        shape = self.geometry.shard_chunks
        if box is None or shape is None:
            return "write whole shards (with this hash, only a write of the whole volume does)"
        vox = " x ".join(str(n * c) for n, c in zip(shape, self.grid.chunk[:3], strict=True))
        offset = self.scale.voxel_offset
        return f"align writes to shards: boxes of {vox} voxels from {offset} (this one is {box})"

    def write_targets(self, pieces: Sequence[ChunkPiece]) -> list[tuple[int, int]]:
        ids, shards, _ = self._locate_pieces(pieces)
        return list(zip(shards.tolist(), ids.tolist(), strict=True))

    def split_shard(self, data: bytes, key: str) -> dict[int, bytes]:
        return decode_shard(data, self.spec, key, limits=self.limits)

    def encode_shard(self, chunks: Mapping[int, bytes]) -> bytes | None:
        return encode_shard(chunks, self.spec) if chunks else None

    def forget_index(self, shard: int) -> None:
        self.cache.invalidate(shard)


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
