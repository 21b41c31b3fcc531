"""The ``neuroglancer_uint64_sharded_v1`` format: chunk ids, hashes, shard files.

Everything here is pure computation on integers and bytes; nothing touches a store.

- A chunk's id is the *compressed Morton code* of its grid index (:func:`morton_bits`,
  :func:`morton_codes`).
- ``hash(id >> preshift_bits)`` (identity or murmurhash3_x86_128) picks the minishard (low
  ``minishard_bits``) and the shard (the next ``shard_bits``): :class:`ShardMap`.
- A shard file is a shard index of ``2**minishard_bits`` ``(start, end)`` pairs, then, for every
  minishard in order, its chunks (sorted by id) followed by its minishard index
  (:func:`encode_shard`, :func:`decode_shard`, :func:`decode_minishard_index`).

The scalar and the vectorized (NumPy) forms compute the same thing; the tests pin both to the
worked examples of the format notes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bigarrays.errors import CorruptChunkError, InvalidInfoError, UnsupportedError
from bigarrays.formats.precomputed.info import MAX_MINISHARD_BITS, SHARDING_TYPE, ShardingSpec
from bigarrays.formats.precomputed.shard_limits import (
    IndexLimits,
    bounded_gunzip,
    check_index_range,
    checked_minishard_ranges,
)
from bigarrays.stores import content_encoding

_U64 = np.dtype("<u8")
_MASK64 = (1 << 64) - 1
_MASK32 = 0xFFFFFFFF

# -- compressed Morton codes ---------------------------------------------------------------------


def morton_bits(grid_shape: Sequence[int]) -> tuple[int, ...]:
    """Bits per axis of the compressed Morton code: ``bit_length(grid_size - 1)``."""
    return tuple(max(0, int(g) - 1).bit_length() for g in grid_shape)


def morton_code(index: Sequence[int], bits: Sequence[int]) -> int:
    """The compressed Morton code of one grid index (x, y, z)."""
    code = 0
    out_bit = 0
    for i in range(max(bits, default=0)):
        for axis, b in enumerate(bits):
            if i < b:
                code |= ((int(index[axis]) >> i) & 1) << out_bit
                out_bit += 1
    return code


def _morton_plan(bits: Sequence[int]) -> list[tuple[int, int, int]]:
    """``(axis, input bit, output bit)`` for every bit of the code, lowest output bit first."""
    plan = []
    out_bit = 0
    for i in range(max(bits, default=0)):
        for axis, b in enumerate(bits):
            if i < b:
                plan.append((axis, i, out_bit))
                out_bit += 1
    return plan


def morton_codes(indices: np.ndarray, bits: Sequence[int]) -> np.ndarray:
    """Compressed Morton codes of an ``(n, 3)`` array of grid indices, as uint64."""
    idx = np.asarray(indices, dtype=np.uint64).reshape(-1, len(bits))
    out = np.zeros(idx.shape[0], dtype=np.uint64)
    for axis, i, o in _morton_plan(bits):
        out |= ((idx[:, axis] >> np.uint64(i)) & np.uint64(1)) << np.uint64(o)
    return out


def morton_decode(code: int, bits: Sequence[int]) -> tuple[int, ...]:
    """The grid index of a compressed Morton code (the inverse of :func:`morton_code`)."""
    index = [0] * len(bits)
    for axis, i, o in _morton_plan(bits):
        index[axis] |= ((code >> o) & 1) << i
    return tuple(index)


# -- murmurhash3_x86_128 -------------------------------------------------------------------------

_C1, _C2, _C3, _C4 = 0x239B961B, 0xAB0E9789, 0x38B34AE5, 0xA1E38B93


def _rotl32(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & _MASK32


def _fmix32(h: int) -> int:
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _MASK32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _MASK32
    h ^= h >> 16
    return h


def murmurhash3_x86_128_uint64(key: int, seed: int = 0) -> int:
    """murmurhash3_x86_128 of the 8 little-endian bytes of ``key``; the low 64 bits of the hash.

    The 128-bit hash is four 32-bit words ``h0..h3``; the format uses ``(h1 << 32) | h0``.
    Only an 8-byte input occurs here, so the one code path is the 8-byte tail.
    """
    lo, hi = key & _MASK32, (key >> 32) & _MASK32
    h1 = h2 = h3 = h4 = seed & _MASK32
    k2 = (hi * _C2) & _MASK32
    k2 = _rotl32(k2, 16)
    k2 = (k2 * _C3) & _MASK32
    h2 ^= k2
    k1 = (lo * _C1) & _MASK32
    k1 = _rotl32(k1, 15)
    k1 = (k1 * _C2) & _MASK32
    h1 ^= k1
    h1, h2, h3, h4 = h1 ^ 8, h2 ^ 8, h3 ^ 8, h4 ^ 8
    h1 = (h1 + h2 + h3 + h4) & _MASK32
    h2, h3, h4 = (h2 + h1) & _MASK32, (h3 + h1) & _MASK32, (h4 + h1) & _MASK32
    h1, h2, h3, h4 = _fmix32(h1), _fmix32(h2), _fmix32(h3), _fmix32(h4)
    h1 = (h1 + h2 + h3 + h4) & _MASK32
    h2 = (h2 + h1) & _MASK32
    return (h2 << 32) | h1


def _np_rotl32(x: np.ndarray, r: int) -> np.ndarray:
    return ((x << np.uint64(r)) | (x >> np.uint64(32 - r))) & np.uint64(_MASK32)


def _np_mul32(x: np.ndarray, c: int) -> np.ndarray:
    # Both factors < 2**32: the product fits in 64 bits; keep the low 32.
    return (x * np.uint64(c)) & np.uint64(_MASK32)


def _np_fmix32(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint64(16))
    h = _np_mul32(h, 0x85EBCA6B)
    h = h ^ (h >> np.uint64(13))
    h = _np_mul32(h, 0xC2B2AE35)
    out: np.ndarray = h ^ (h >> np.uint64(16))
    return out


def murmurhash3_x86_128_uint64_array(keys: np.ndarray, seed: int = 0) -> np.ndarray:
    """:func:`murmurhash3_x86_128_uint64` of every element of a uint64 array."""
    keys = np.asarray(keys, dtype=np.uint64)
    m = np.uint64(_MASK32)
    lo, hi = keys & m, keys >> np.uint64(32)
    s = np.uint64(seed & _MASK32)
    k2 = _np_mul32(_np_rotl32(_np_mul32(hi, _C2), 16), _C3)
    k1 = _np_mul32(_np_rotl32(_np_mul32(lo, _C1), 15), _C2)
    eight = np.uint64(8)
    h1, h2 = (s ^ k1) ^ eight, (s ^ k2) ^ eight
    h3 = h4 = np.full_like(keys, s ^ eight)
    h1 = (h1 + h2 + h3 + h4) & m
    h2, h3, h4 = (h2 + h1) & m, (h3 + h1) & m, (h4 + h1) & m
    h1, h2, h3, h4 = _np_fmix32(h1), _np_fmix32(h2), _np_fmix32(h3), _np_fmix32(h4)
    h1 = (h1 + h2 + h3 + h4) & m
    h2 = (h2 + h1) & m
    out: np.ndarray = (h2 << np.uint64(32)) | h1
    return out


# -- chunk id -> shard, minishard ----------------------------------------------------------------


def shard_key_name(shard: int, shard_bits: int) -> str:
    """``"{shard:0{ceil(S/4)}x}.shard"``: ``0.shard`` when there are no shard bits."""
    width = -(-shard_bits // 4)
    return f"{shard:0{width}x}.shard" if width else "0.shard"


@dataclass(frozen=True)
class ShardMap:
    """Where chunks live under one sharding spec."""

    spec: ShardingSpec

    def hashed(self, chunk_id: int) -> int:
        shifted = (chunk_id & _MASK64) >> self.spec.preshift_bits
        if self.spec.hash == "identity":
            return shifted
        return murmurhash3_x86_128_uint64(shifted)

    def locate(self, chunk_id: int) -> tuple[int, int]:
        """``(shard, minishard)`` of one chunk id."""
        h = self.hashed(chunk_id)
        m, s = self.spec.minishard_bits, self.spec.shard_bits
        return (h >> m) & ((1 << s) - 1), h & ((1 << m) - 1)

    def locate_many(self, chunk_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(shards, minishards)`` of a uint64 array of chunk ids."""
        ids = np.asarray(chunk_ids, dtype=np.uint64)
        shifted = (
            ids >> np.uint64(self.spec.preshift_bits)
            if self.spec.preshift_bits < 64
            else (np.zeros_like(ids))
        )
        h = shifted if self.spec.hash == "identity" else murmurhash3_x86_128_uint64_array(shifted)
        m, s = self.spec.minishard_bits, self.spec.shard_bits
        minishard = h & np.uint64((1 << m) - 1)
        shard = (h >> np.uint64(m)) & np.uint64((1 << s) - 1) if m < 64 else np.zeros_like(h)
        return shard, minishard

    def shard_name(self, shard: int) -> str:
        return shard_key_name(shard, self.spec.shard_bits)

    @property
    def index_bytes(self) -> int:
        """Length of the shard index at the start of every shard file."""
        return 16 << self.spec.minishard_bits


# -- shard geometry ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShardGeometry:
    """How a spec's shards tile a chunk grid.

    With the identity hash and ``preshift + minishard + shard`` bits covering every bit of the
    chunk ids, a shard is an aligned box of ``chunks_per_shard`` chunks (the low Morton bits
    belong to the shard's box): whole-shard writes can then be recognised from the box alone.
    Otherwise a shard is a scattered set of chunks and ``shard_chunks`` is None.
    """

    grid_shape: tuple[int, ...]  #: chunks per axis (x, y, z)
    bits: tuple[int, ...]  #: Morton bits per axis
    spec: ShardingSpec

    @classmethod
    def of(cls, grid_shape: Sequence[int], spec: ShardingSpec) -> ShardGeometry:
        grid = tuple(int(g) for g in grid_shape)
        return cls(grid, morton_bits(grid), spec)

    @property
    def total_bits(self) -> int:
        return sum(self.bits)

    def _low_bits_per_axis(self, n: int) -> tuple[int, ...]:
        per_axis = [0] * len(self.bits)
        for axis, _, o in _morton_plan(self.bits):
            if o < n:
                per_axis[axis] += 1
        return tuple(per_axis)

    @property
    def shard_chunks(self) -> tuple[int, ...] | None:
        """Chunks per axis of the box a shard covers, or None when shards are not boxes."""
        p, m, s = self.spec.preshift_bits, self.spec.minishard_bits, self.spec.shard_bits
        if self.spec.hash != "identity" or p + m + s < self.total_bits:
            return None
        return tuple(1 << b for b in self._low_bits_per_axis(p + m))

    @property
    def preshift_chunks(self) -> tuple[int, ...]:
        """Chunks per axis of the box of chunks that share ``id >> preshift_bits``."""
        return tuple(1 << b for b in self._low_bits_per_axis(self.spec.preshift_bits))

    def shard_grid_box(self, shard: int) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
        """Grid indices ``[start, stop)`` of a box-shaped shard, clipped to the grid."""
        per = self.shard_chunks
        if per is None:
            return None
        p, m = self.spec.preshift_bits, self.spec.minishard_bits
        corner = morton_decode(shard << (p + m), self.bits)
        stop = tuple(min(c + n, g) for c, n, g in zip(corner, per, self.grid_shape, strict=True))
        return corner, stop

    def num_shards(self, limit: int = 1 << 22) -> tuple[int, bool]:
        """``(count, exact)``: shard files a full volume has; an upper bound when not exact."""
        n_chunks = math.prod(self.grid_shape)
        per = self.shard_chunks
        if per is not None:
            return math.prod(-(-g // c) for g, c in zip(self.grid_shape, per, strict=True)), True
        if n_chunks <= limit:
            shards, _ = ShardMap(self.spec).locate_many(self.all_chunk_ids())
            return int(np.unique(shards).size), True
        return min(1 << self.spec.shard_bits, n_chunks), False

    def all_chunk_ids(self) -> np.ndarray:
        """Chunk ids of every chunk of the grid (x fastest)."""
        axes = [np.arange(g, dtype=np.uint64) for g in self.grid_shape]
        mesh = np.meshgrid(*axes, indexing="ij")
        idx = np.stack([a.reshape(-1, order="F") for a in mesh], axis=1)
        return morton_codes(idx, self.bits)


# -- shard files ---------------------------------------------------------------------------------


def encode_data(data: bytes | bytearray | memoryview, encoding: str) -> bytes:
    """Apply a shard ``data_encoding`` / ``minishard_index_encoding`` (raw or gzip)."""
    if encoding == "raw":
        return data if isinstance(data, bytes) else bytes(data)
    out = content_encoding.encode(data, "gzip")
    return out if isinstance(out, bytes) else bytes(out)


def decode_data(data: bytes, encoding: str, what: str, max_size: int) -> bytes:
    """Undo a shard ``data_encoding`` / ``minishard_index_encoding``, refusing (with
    :class:`CorruptChunkError`) a gzip stream that inflates past ``max_size`` bytes."""
    if encoding == "raw":
        return data
    return bounded_gunzip(data, max_size, what)


def encode_minishard_index(ids: np.ndarray, starts: np.ndarray, sizes: np.ndarray) -> bytes:
    """The raw minishard index of chunks sorted by id; ``starts`` relative to the data section."""
    n = ids.size
    table = np.empty((3, n), dtype=_U64)
    if n:
        table[0, 0] = ids[0]
        table[0, 1:] = np.diff(ids)
        ends = starts + sizes
        table[1, 0] = starts[0]
        table[1, 1:] = starts[1:] - ends[:-1]
        table[2] = sizes
    return table.tobytes()


def encode_shard(chunks: Mapping[int, bytes], spec: ShardingSpec) -> bytes:
    """A shard file holding ``chunks`` (id -> bytes already in the spec's ``data_encoding``).

    Layout as Neuroglancer and TensorStore write it: for each minishard in order, its chunks in
    increasing id order followed by its minishard index; the shard index first.
    """
    smap = ShardMap(spec)
    n_mini = 1 << spec.minishard_bits
    ids = np.fromiter(chunks.keys(), dtype=np.uint64, count=len(chunks))
    order = np.argsort(ids, kind="stable")
    ids = ids[order]
    _, minishards = smap.locate_many(ids)
    by_mini = np.argsort(minishards, kind="stable")  # stable keeps ids sorted within a minishard
    ids, minishards = ids[by_mini], minishards[by_mini]
    bounds = np.searchsorted(minishards, np.arange(n_mini + 1, dtype=np.uint64))

    parts: list[bytes] = [b""]  # the shard index goes first, once it is known
    pos = 0
    shard_index = np.zeros((n_mini, 2), dtype=_U64)
    for mini in np.flatnonzero(bounds[1:] > bounds[:-1]):
        mids = ids[bounds[mini] : bounds[mini + 1]]
        starts = np.empty(mids.size, dtype=np.uint64)
        sizes = np.empty(mids.size, dtype=np.uint64)
        for j, cid in enumerate(mids.tolist()):
            data = chunks[cid]
            starts[j], sizes[j] = pos, len(data)
            parts.append(data)
            pos += len(data)
        index = encode_data(encode_minishard_index(mids, starts, sizes),
                            spec.minishard_index_encoding)  # fmt: skip
        shard_index[mini] = (pos, pos + len(index))
        parts.append(index)
        pos += len(index)
    parts[0] = shard_index.tobytes()
    return b"".join(parts)  # one copy of the data


@dataclass(frozen=True)
class MinishardIndex:
    """Decoded minishard index: sorted chunk ids and their absolute byte ranges in the shard."""

    ids: np.ndarray
    starts: np.ndarray
    ends: np.ndarray

    @classmethod
    def empty(cls) -> MinishardIndex:
        z = np.zeros(0, dtype=np.uint64)
        return cls(z, z, z)

    @property
    def nbytes(self) -> int:
        return int(self.ids.nbytes + self.starts.nbytes + self.ends.nbytes) + 64

    def __len__(self) -> int:
        return int(self.ids.size)

    def find(self, chunk_id: int) -> tuple[int, int] | None:
        """``(start, end)`` of a chunk's bytes, or None when the minishard does not hold it."""
        i = int(np.searchsorted(self.ids, np.uint64(chunk_id)))
        if i < self.ids.size and int(self.ids[i]) == chunk_id:
            return int(self.starts[i]), int(self.ends[i])
        return None


def decode_minishard_index(
    data: bytes,
    spec: ShardingSpec,
    what: str = "minishard index",
    *,
    limits: IndexLimits | None = None,
) -> MinishardIndex:
    """Decode and check a stored minishard index (after ``minishard_index_encoding``).

    As TensorStore checks it: a whole number of entries, no more than the shard can hold, chunk
    ids strictly increasing (no duplicates, no wrap-around in the delta decode), chunk lengths
    no longer than a chunk can be, and byte ranges that neither overflow nor leave the 63-bit
    offsets a file can have. Anything else is a :class:`CorruptChunkError`. ``limits`` are the
    scale's (:meth:`IndexLimits.generous` when not given).
    """
    limits = IndexLimits.generous() if limits is None else limits
    raw = decode_data(data, spec.minishard_index_encoding, what, 24 * limits.max_chunks)
    if len(raw) % 24:
        raise CorruptChunkError(what, f"a minishard index of {len(raw)} bytes is no multiple of 24")
    n = len(raw) // 24
    if n > limits.max_chunks:
        raise CorruptChunkError(
            what, f"a minishard index of {n} chunks, more than the {limits.max_chunks} it can hold"
        )
    if n == 0:
        return MinishardIndex.empty()
    table = np.frombuffer(raw, dtype=_U64).reshape(3, -1)
    ids, starts, ends = checked_minishard_ranges(table, ShardMap(spec).index_bytes, limits, what)
    return MinishardIndex(ids, starts, ends)


def decode_shard_index(data: bytes, spec: ShardingSpec, what: str = "shard") -> np.ndarray:
    """The ``(2**minishard_bits, 2)`` table of minishard-index ranges, relative to the data."""
    n = 1 << spec.minishard_bits
    if len(data) < 16 * n:
        raise CorruptChunkError(what, f"shard index cut short: {len(data)} of {16 * n} bytes")
    return np.frombuffer(data[: 16 * n], dtype=_U64).reshape(n, 2)


def decode_shard(
    data: bytes, spec: ShardingSpec, what: str = "shard", *, limits: IndexLimits | None = None
) -> dict[int, bytes]:
    """Every chunk of a whole shard file: id -> stored bytes (still in ``data_encoding``).

    Every index and byte range is checked (see :func:`decode_minishard_index`), and must lie
    inside the file: a shard that cannot be decoded whole is a :class:`CorruptChunkError`.
    """
    limits = IndexLimits.generous() if limits is None else limits
    base = ShardMap(spec).index_bytes
    table = decode_shard_index(data, spec, what)
    out: dict[int, bytes] = {}
    view = memoryview(data)
    for minishard, (start, end) in enumerate(table.tolist()):
        span = check_index_range(start, end, minishard, limits, what)
        if span is None:
            continue
        if base + end > len(data):
            raise CorruptChunkError(
                what, f"minishard {minishard}'s index ({start}-{end}) lies past the end"
            )
        index = decode_minishard_index(
            bytes(view[base + start : base + end]), spec, what, limits=limits
        )
        for cid, a, b in zip(index.ids.tolist(), index.starts.tolist(), index.ends.tolist(),
                             strict=True):  # fmt: skip
            if b > len(data):
                raise CorruptChunkError(what, f"chunk {cid} lies past the end of the shard")
            if cid in out:
                raise CorruptChunkError(what, f"chunk {cid} is listed by two minishards")
            out[cid] = bytes(view[a:b])
    return out


# -- choosing a spec -----------------------------------------------------------------------------

#: TensorStore caps preshift bits at 9 (512 chunks per minishard) and puts the rest of the
#: within-shard bits in minishard bits.
MAX_PRESHIFT_BITS = 9
#: The default target size of one shard, uncompressed.
DEFAULT_SHARD_BYTES = 1 << 30


def choose_sharding(
    grid_shape: Sequence[int],
    chunk_bytes: int,
    target_bytes: int = DEFAULT_SHARD_BYTES,
    *,
    data_encoding: str = "raw",
    minishard_index_encoding: str = "gzip",
) -> ShardingSpec:
    """Pick ``preshift/minishard/shard`` bits so that a shard is a box of about ``target_bytes``.

    The rule is TensorStore's for a target size: the number of chunks per shard is the power of
    two nearest to ``target_bytes / chunk_bytes`` (no more than the grid holds); those low bits
    of the Morton code are the within-shard bits, of which at most 9 are preshift bits and the
    rest minishard bits; the remaining bits of the code are shard bits. With the identity hash
    a shard is then an aligned box of chunks, which TensorStore also recognises as its write
    chunk.
    """
    if chunk_bytes <= 0:
        raise ValueError(f"chunk_bytes must be positive, got {chunk_bytes}")
    if target_bytes <= 0:
        raise ValueError(f"the target shard size must be positive, got {target_bytes}")
    total = sum(morton_bits(grid_shape))
    target_chunks = (target_bytes + chunk_bytes // 2) // chunk_bytes
    # No more within-shard bits than the preshift and minishard bounds hold together: a bigger
    # target gets the biggest shard that the info validation accepts.
    most = min(total, MAX_PRESHIFT_BITS + MAX_MINISHARD_BITS)
    within = 0
    while within < most and (1 << within) < target_chunks:
        within += 1
    if within > 0 and (1 << within) - target_chunks > target_chunks - (1 << (within - 1)):
        within -= 1
    preshift = min(within, MAX_PRESHIFT_BITS)
    return ShardingSpec(
        preshift_bits=preshift,
        minishard_bits=within - preshift,
        shard_bits=total - within,
        hash="identity",
        minishard_index_encoding=minishard_index_encoding,
        data_encoding=data_encoding,
    )


def check_spec_for_grid(spec: ShardingSpec, grid_shape: Sequence[int]) -> None:
    """Refuse a grid whose chunk ids need more than 64 bits (the ids are uint64)."""
    total = sum(morton_bits(grid_shape))
    if total > 64:
        raise InvalidInfoError(
            f"a grid of {tuple(grid_shape)} chunks needs {total}-bit chunk ids; the sharded "
            "format allows 64: use bigger chunks",
            field="sharding",
        )


def resolve_sharding(
    sharding: bool | Mapping[str, Any] | ShardingSpec | None,
    *,
    grid_shape: Sequence[int],
    chunk_bytes: int,
    target_bytes: int | None = None,
    compression: str | None = None,
) -> ShardingSpec | None:
    """The spec ``create(sharding=..., shard_size_bytes=..., compression=...)`` asks for.

    ``True`` chooses one (:func:`choose_sharding`); a dict or a :class:`ShardingSpec` is taken as
    given once validated; ``None`` / ``False`` mean unsharded. In a sharded scale the chunks'
    compression is the spec's ``data_encoding``: ``compression`` may be None (raw) or "gzip".
    """
    if sharding is None or sharding is False:
        if target_bytes is not None:
            raise ValueError("shard_size_bytes is the target size of a shard: pass sharding=True")
        return None
    if compression not in (None, "gzip"):
        raise UnsupportedError(
            f"the chunks of a sharded scale are stored raw or gzip-compressed (the format's "
            f"data_encoding), not {compression!r}"
        )
    data_encoding = "gzip" if compression == "gzip" else "raw"
    if sharding is True:
        spec = choose_sharding(
            grid_shape,
            chunk_bytes,
            DEFAULT_SHARD_BYTES if target_bytes is None else int(target_bytes),
            data_encoding=data_encoding,
        )
    else:
        if target_bytes is not None:
            raise ValueError("shard_size_bytes applies to sharding=True, not to an explicit spec")
        if isinstance(sharding, ShardingSpec):
            spec = sharding
        elif isinstance(sharding, Mapping):
            obj = {"@type": SHARDING_TYPE, **sharding}
            given = obj.get("data_encoding")
            if given is None:
                obj["data_encoding"] = data_encoding
            elif compression is not None and given != data_encoding:
                raise ValueError(
                    f"compression={compression!r} contradicts the spec's data_encoding {given!r}"
                )
            spec = ShardingSpec.from_json(obj)
        else:
            raise TypeError(
                f"sharding must be True, False, None, a dict or a ShardingSpec, got {sharding!r}"
            )
    check_spec_for_grid(spec, grid_shape)
    return spec
