"""The ``sharding_indexed`` codec of Zarr v3: its configuration, shard indexes and shard bytes.

A shard (one object of the array's chunk grid) holds inner chunks of ``chunk_shape``, each encoded
by the inner ``codecs``, and an index of ``(offset, nbytes)`` uint64 pairs in C order over the
inner chunks of the shard, encoded by ``index_codecs`` and stored as the first or the last bytes
of the shard (``index_location``). An absent inner chunk has both set to 2**64-1. Inner chunks are
written in the compressed Morton order of their place in the shard, as zarr-python writes them, so
that both write the same bytes.

Everything here is pure computation on arrays and bytes; :mod:`.sharded_chunks` does the I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

import numpy as np

from bigarrays.codecs.chain import CodecChain
from bigarrays.errors import CorruptChunkError, InvalidCodecError, UnsupportedError
from bigarrays.formats import limits
from bigarrays.formats.precomputed.sharding import morton_bits, morton_codes
from bigarrays.formats.zarr.metadata_v3 import SHARDING_CODEC, ArrayMetadataV3

Shape = tuple[int, ...]

#: The index entry of an absent inner chunk (offset and nbytes both).
ABSENT = (1 << 64) - 1
#: Offsets and lengths stay below this: no file, object or range reaches past it.
MAX_OFFSET = 1 << 63
#: The index codecs ``create`` writes: little-endian uint64 and a crc32c checksum.
DEFAULT_INDEX_CODECS: tuple[dict[str, Any], ...] = (
    {"name": "bytes", "configuration": {"endian": "little"}},
    {"name": "crc32c"},
)
#: ``sharding=True`` puts up to this many inner chunks along each of the last three axes.
DEFAULT_CHUNKS_PER_SHARD = 8
#: ... of inner chunks of up to this many voxels along those axes (when ``chunks`` is not given).
DEFAULT_INNER_CHUNK = 64


def is_sharded(meta: ArrayMetadataV3) -> bool:
    return any(c.get("name") == SHARDING_CODEC for c in meta.codecs)


@dataclass(frozen=True, eq=False)
class ShardingConfig:
    """A built ``sharding_indexed`` codec for shards of ``shard_shape`` of ``dtype``."""

    shard_shape: Shape
    chunk_shape: Shape
    codecs: CodecChain
    index_codecs: CodecChain
    index_location: str

    @classmethod
    def of(cls, meta: ArrayMetadataV3) -> ShardingConfig:
        """The sharding of an array whose only codec is ``sharding_indexed``."""
        names = [c.get("name") for c in meta.codecs]
        if names != [SHARDING_CODEC]:
            raise UnsupportedError(
                f"codecs {names}: bigarrays reads sharded arrays whose only codec is "
                f"{SHARDING_CODEC} (no codec before or after it)"
            )
        return cls.from_json(meta.codecs[0].get("configuration"), meta.data_type, meta.chunk_shape)

    @classmethod
    def from_json(cls, config: Any, dtype: Any, shard_shape: Sequence[int]) -> ShardingConfig:
        if not isinstance(config, Mapping):
            raise InvalidCodecError(SHARDING_CODEC, "its configuration must be an object")
        extra = set(config) - {"chunk_shape", "codecs", "index_codecs", "index_location"}
        if extra:
            raise InvalidCodecError(SHARDING_CODEC, f"unknown member(s) {sorted(extra)}")
        shard = tuple(int(n) for n in shard_shape)
        inner = config.get("chunk_shape")
        if (
            not isinstance(inner, list | tuple)
            or len(inner) != len(shard)
            or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in inner)
        ):
            raise InvalidCodecError(
                SHARDING_CODEC, f"chunk_shape {inner!r}: {len(shard)} positive integers expected"
            )
        inner = tuple(inner)
        if any(s % c for s, c in zip(shard, inner, strict=True)):
            raise InvalidCodecError(
                SHARDING_CODEC,
                f"chunk_shape {list(inner)} does not divide the shard shape {list(shard)}",
            )
        location = config.get("index_location", "end")
        if location not in ("start", "end"):
            raise InvalidCodecError(
                SHARDING_CODEC, f'index_location {location!r}: "start" or "end" expected'
            )
        lists: dict[str, list[Any]] = {}
        for what in ("codecs", "index_codecs"):
            value = config.get(what)
            if not isinstance(value, list) or not value:
                raise InvalidCodecError(SHARDING_CODEC, f"{what} must be a non-empty list")
            if any(isinstance(c, Mapping) and c.get("name") == SHARDING_CODEC for c in value):
                raise UnsupportedError(f"nested {SHARDING_CODEC} in {what}: not supported")
            lists[what] = value
        codecs, index_codecs = lists["codecs"], lists["index_codecs"]
        per_shard = tuple(s // c for s, c in zip(shard, inner, strict=True))
        inner_chain = CodecChain.from_json(codecs, dtype, inner)
        index_chain = CodecChain.from_json(
            list(index_codecs),
            np.uint64,
            (*per_shard, 2),
        )
        if any(c.name != "crc32c" for c in index_chain.bytes_bytes):
            raise UnsupportedError(
                f"index_codecs {[c.get('name') for c in index_codecs]}: a shard index must have "
                "a fixed size (bytes, transpose and crc32c only)"
            )
        return cls(shard, inner, inner_chain, index_chain, location)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": SHARDING_CODEC,
            "configuration": {
                "chunk_shape": list(self.chunk_shape),
                "codecs": self.codecs.to_json(),
                "index_codecs": self.index_codecs.to_json(),
                "index_location": self.index_location,
            },
        }

    @cached_property
    def chunks_per_shard(self) -> Shape:
        return tuple(s // c for s, c in zip(self.shard_shape, self.chunk_shape, strict=True))

    @cached_property
    def num_inner(self) -> int:
        return math.prod(self.chunks_per_shard)

    @cached_property
    def index_nbytes(self) -> int:
        """Bytes of the stored index (fixed: the index codecs change no size but crc32c's)."""
        return len(self.index_codecs.encode(self.empty_index()))

    @cached_property
    def max_inner_bytes(self) -> int:
        """The most bytes an inner chunk may be stored in: what its codecs can make of it."""
        size: int | None = self.codecs.array_bytes.max_encoded_size()
        for codec in self.codecs.bytes_bytes:
            size = None if size is None else codec.max_encoded_size(size)
        return limits.MAX_CHUNK_BYTES if size is None else min(size, limits.MAX_CHUNK_BYTES)

    @cached_property
    def max_shard_bytes(self) -> int:
        return self.index_nbytes + self.num_inner * self.max_inner_bytes

    @cached_property
    def write_order(self) -> np.ndarray:
        """Positions (C order) of the inner chunks in the order they are written: Morton."""
        grid = np.indices(self.chunks_per_shard).reshape(len(self.chunk_shape), -1).T
        codes = morton_codes(grid, morton_bits(self.chunks_per_shard))
        return np.argsort(codes, kind="stable")

    @cached_property
    def write_rank(self) -> np.ndarray:
        """Each inner chunk's place (by position, C order) in :attr:`write_order`."""
        rank = np.empty(len(self.write_order), dtype=np.int64)
        rank[self.write_order] = np.arange(len(self.write_order))
        return rank

    def empty_index(self) -> np.ndarray:
        return np.full((*self.chunks_per_shard, 2), ABSENT, dtype=np.uint64)

    # -- indexes ---------------------------------------------------------------------------------
    def decode_index(self, data: bytes, key: str, shard_size: int | None = None) -> np.ndarray:
        """The ``(num_inner, 2)`` table of an index's bytes, checked: every present entry lies in
        ``[0, shard_size)`` (or the most bytes a shard can hold), is no longer than an inner
        chunk can be stored in, and does not overflow; absent entries are both 2**64-1."""
        if len(data) != self.index_nbytes:
            raise CorruptChunkError(
                key, f"its index has {len(data)} bytes, expected {self.index_nbytes}"
            )
        decoded = self.index_codecs.decode(data, key)
        table = np.ascontiguousarray(decoded, dtype=np.uint64).reshape(-1, 2)
        offsets, sizes = table[:, 0], table[:, 1]
        absent_offset, absent_size = offsets == ABSENT, sizes == ABSENT
        if bool(np.any(absent_offset != absent_size)):
            raise CorruptChunkError(key, "an index entry is absent in its offset or size only")
        present = ~absent_offset
        if not bool(present.any()):
            return table
        offsets, sizes = offsets[present], sizes[present]
        if int(sizes.max()) > self.max_inner_bytes:
            raise CorruptChunkError(
                key,
                f"its index gives an inner chunk {int(sizes.max())} bytes; one is stored in at "
                f"most {self.max_inner_bytes}",
            )
        if int(offsets.max()) >= MAX_OFFSET:
            raise CorruptChunkError(key, "an offset in its index lies past 2**63")
        # Both terms are below 2**63, so the sum of each pair fits in uint64.
        ends = offsets + sizes
        bound = self.max_shard_bytes if shard_size is None else shard_size
        if int(ends.max()) > bound:
            raise CorruptChunkError(
                key,
                f"its index places an inner chunk at bytes {int(offsets[ends.argmax()])}-"
                f"{int(ends.max())}, past the end of the shard ({bound} bytes)",
            )
        return table

    def split_shard(self, data: bytes, key: str) -> dict[int, bytes]:
        """The stored inner chunks of a whole shard, by position (C order) in the shard."""
        n = self.index_nbytes
        if len(data) < n:
            raise CorruptChunkError(
                key, f"a shard of {len(data)} bytes cannot hold its index of {n} bytes"
            )
        raw = data[:n] if self.index_location == "start" else data[len(data) - n :]
        table = self.decode_index(raw, key, len(data))
        view = memoryview(data)
        return {
            int(i): bytes(view[int(a) : int(a) + int(b)])
            for i, (a, b) in enumerate(table.tolist())
            if a != ABSENT
        }

    def encode_shard(self, chunks: Mapping[int, bytes]) -> bytes | None:
        """The bytes of a shard of the given stored inner chunks (None: there are none)."""
        parts = self.encode_shard_parts(chunks)
        return None if parts is None else b"".join(parts)

    def encode_shard_parts(self, chunks: Mapping[int, bytes]) -> list[bytes] | None:
        """:meth:`encode_shard` as its pieces in order (the index and the chunks), for a put
        that writes them in turn rather than copying a shard of hundreds of MiB whole."""
        if not chunks:
            return None
        parts = list(self.shard_parts(chunks.get))
        if self.index_location == "start":
            return [parts[-1], *parts[:-1]]
        return parts

    def shard_parts(self, chunk: Callable[[int], Any]) -> Iterator[Any]:
        """The stored inner chunks in the order a shard holds them, then its index: with the
        index at the end, the shard's bytes in order. ``chunk(position)`` gives each inner
        chunk's bytes (None: absent) when it is its turn, so that a put can store a shard while
        its last chunks are still being encoded."""
        table = self.empty_index().reshape(-1, 2)
        at = self.index_nbytes if self.index_location == "start" else 0
        for pos in self.write_order.tolist():
            data = chunk(pos)
            if data is None:
                continue
            n = memoryview(data).nbytes
            table[pos] = (at, n)
            yield data
            at += n
        yield self.index_codecs.encode(table.reshape((*self.chunks_per_shard, 2)))


# -- creating sharded arrays ---------------------------------------------------------------------


def _largest_divisor(n: int, at_most: int) -> int:
    return max(d for d in range(1, max(1, at_most) + 1) if n % d == 0)


def plan_sharding(
    shape: Sequence[int], chunks: Sequence[int] | None, sharding: bool | Mapping[str, Any]
) -> tuple[Shape, Shape, str]:
    """``(shard shape, inner chunk shape, index location)`` for ``create``'s arguments.

    ``chunks`` is the shard (the array's chunk grid, as ``zarr.json`` names it); the inner chunk is
    ``sharding["chunk_shape"]``. With ``sharding=True`` the inner chunk is the largest divisor of
    ``chunks`` that is at most an eighth of it along each of the last three axes (the shard itself
    along the others, and along axes of fewer than 8); without ``chunks`` too, inner chunks are
    64 along the last three axes (1 along the others) and shards hold up to 8 of them along each.
    """
    ndim = len(shape)
    spatial = range(max(0, ndim - 3), ndim)
    location = "end"
    inner: Shape | None = None
    if isinstance(sharding, Mapping):
        extra = set(sharding) - {"chunk_shape", "index_location"}
        if extra:
            raise ValueError(
                f"sharding for Zarr takes chunk_shape and index_location, not {sorted(extra)}"
            )
        location = sharding.get("index_location", "end")
        if location not in ("start", "end"):
            raise ValueError(f'sharding index_location {location!r}: "start" or "end" expected')
        if sharding.get("chunk_shape") is not None:
            inner = tuple(int(n) for n in sharding["chunk_shape"])
    elif sharding is not True:
        raise ValueError(f"sharding must be True or a dict for Zarr, got {sharding!r}")
    if chunks is None:
        if inner is None:
            inner = tuple(
                max(1, min(DEFAULT_INNER_CHUNK if i in spatial else 1, n))
                for i, n in enumerate(shape)
            )
        shard = tuple(
            c * max(1, min(DEFAULT_CHUNKS_PER_SHARD, -(-n // c))) if i in spatial else c
            for i, (n, c) in enumerate(zip(shape, inner, strict=True))
        )
        return shard, inner, location
    shard = tuple(int(n) for n in chunks)
    if inner is None:
        inner = tuple(
            _largest_divisor(c, c // DEFAULT_CHUNKS_PER_SHARD)
            if i in spatial and c >= DEFAULT_CHUNKS_PER_SHARD
            else c
            for i, c in enumerate(shard)
        )
    if len(inner) != len(shard) or any(c < 1 or s % c for s, c in zip(shard, inner, strict=True)):
        raise ValueError(
            f"sharding chunk_shape {list(inner)} must divide chunks {list(shard)} (the shard) "
            "along every axis"
        )
    return shard, inner, location


def shard_for_size(shape: Sequence[int], inner: Sequence[int], itemsize: int,
                   target_bytes: int) -> Shape:  # fmt: skip
    """The shard of ``inner`` chunks that holds about ``target_bytes`` of an array of ``shape``:
    the power of two of chunks nearest ``target_bytes`` (no more than the array holds), given out
    one doubling at a time to the last three axes in turn, x (the last) first, each up to the
    chunks it has; one chunk along the other axes. Precomputed's shards take the Morton bits of
    their chunk ids by the same rule (``choose_sharding``), so a volume converted either way
    keeps shards of the same box."""
    if target_bytes < 1:
        raise ValueError(f"the target shard size must be positive, got {target_bytes}")
    chunk_bytes = max(1, math.prod(inner) * itemsize)
    chunks = (target_bytes + chunk_bytes // 2) // chunk_bytes
    want = max(0, (chunks - 1).bit_length())  # the power of two at or above; ties go up
    if want and (1 << want) - chunks > chunks - (1 << (want - 1)):
        want -= 1
    ndim = len(shape)
    grid = [-(-n // c) for n, c in zip(shape, inner, strict=True)]
    room = {i: max(0, math.ceil(math.log2(grid[i]))) if grid[i] > 1 else 0
            for i in range(max(0, ndim - 3), ndim)}  # fmt: skip
    bits = dict.fromkeys(room, 0)
    while want and any(bits[i] < room[i] for i in room):
        for i in sorted(room, reverse=True):
            if want and bits[i] < room[i]:
                bits[i] += 1
                want -= 1
    return tuple(c * min(1 << bits.get(i, 0), grid[i]) for i, c in enumerate(inner))


def sharded_metadata(meta: ArrayMetadataV3, inner: Sequence[int], location: str) -> ArrayMetadataV3:
    """``meta`` (whose chunks are the shards) with its codecs moved inside ``sharding_indexed``."""
    config = {
        "chunk_shape": [int(n) for n in inner],
        "codecs": list(meta.codecs),
        "index_codecs": list(DEFAULT_INDEX_CODECS),
        "index_location": location,
    }
    return replace(meta, codecs=({"name": SHARDING_CODEC, "configuration": config},)).checked()
