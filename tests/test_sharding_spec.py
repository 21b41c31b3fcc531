"""The sharded format's arithmetic and bytes, pinned to the worked examples of the format notes."""

from __future__ import annotations

import gzip
import random
import struct

import numpy as np
import pytest

from bigarrays.errors import CorruptChunkError, InvalidInfoError, UnsupportedError
from bigarrays.formats.precomputed.info import ShardingSpec
from bigarrays.formats.precomputed.sharding import (
    MinishardIndex,
    ShardGeometry,
    ShardMap,
    choose_sharding,
    decode_minishard_index,
    decode_shard,
    decode_shard_index,
    encode_shard,
    morton_bits,
    morton_code,
    morton_codes,
    morton_decode,
    murmurhash3_x86_128_uint64,
    murmurhash3_x86_128_uint64_array,
    resolve_sharding,
    shard_key_name,
)


def spec(p: int = 0, m: int = 0, s: int = 0, **kw: str) -> ShardingSpec:
    return ShardingSpec(preshift_bits=p, minishard_bits=m, shard_bits=s, **kw)


# -- Morton codes --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("index", "code"), [((2, 0, 1), 0b1100), ((2, 3, 0), 0b11010), ((9, 2, 1), 0b1010101)]
)
def test_compressed_morton_code_examples(index: tuple[int, int, int], code: int) -> None:
    bits = (4, 2, 1)
    assert morton_code(index, bits) == code
    assert int(morton_codes(np.array([index]), bits)[0]) == code
    assert morton_decode(code, bits) == index


def test_morton_bits() -> None:
    assert morton_bits((2, 3, 5)) == (1, 2, 3)
    assert morton_bits((1, 1, 1)) == (0, 0, 0)
    assert morton_bits((16, 4, 2)) == (4, 2, 1)
    assert morton_bits((17, 4, 2)) == (5, 2, 1)


def test_morton_codes_are_a_bijection_of_the_grid() -> None:
    grid = (5, 3, 7)
    geom = ShardGeometry.of(grid, spec(s=0))
    ids = geom.all_chunk_ids()
    assert len(set(ids.tolist())) == 5 * 3 * 7
    assert int(ids.max()) < 1 << sum(morton_bits(grid))
    for cid in ids.tolist():
        assert morton_code(morton_decode(cid, geom.bits), geom.bits) == cid


# -- murmurhash3_x86_128 -------------------------------------------------------------------------


def test_murmurhash_of_key_zero() -> None:
    assert murmurhash3_x86_128_uint64(0) == 0x4772B084E028AE41
    assert int(murmurhash3_x86_128_uint64_array(np.zeros(1, np.uint64))[0]) == 0x4772B084E028AE41


def test_murmurhash_vectorized_equals_scalar() -> None:
    rng = random.Random(3)
    keys = [0, 1, 2**32 - 1, 2**32, 2**64 - 1] + [rng.getrandbits(64) for _ in range(500)]
    vec = murmurhash3_x86_128_uint64_array(np.array(keys, dtype=np.uint64))
    assert vec.tolist() == [murmurhash3_x86_128_uint64(k) for k in keys]


# -- chunk id -> shard ---------------------------------------------------------------------------


def test_chunks_40_and_41_live_in_shard_5() -> None:
    grid = (2, 3, 5)  # size [4,6,10], chunk [2,2,2]
    bits = morton_bits(grid)
    assert bits == (1, 2, 3)
    assert morton_code((0, 2, 4), bits) == 40
    assert morton_code((1, 2, 4), bits) == 41
    smap = ShardMap(spec(p=1, m=2, s=3))
    assert smap.locate(40)[0] == smap.locate(41)[0] == 5
    assert smap.shard_name(5) == "5.shard"
    shards, _ = smap.locate_many(np.array([40, 41], dtype=np.uint64))
    assert shards.tolist() == [5, 5]


@pytest.mark.parametrize(
    ("shard", "bits", "name"),
    [(0, 0, "0.shard"), (5, 3, "5.shard"), (5, 4, "5.shard"), (5, 5, "05.shard"),
     (0xABC, 12, "abc.shard"), (1, 13, "0001.shard")],
)  # fmt: skip
def test_shard_file_names(shard: int, bits: int, name: str) -> None:
    assert shard_key_name(shard, bits) == name


def test_locate_many_equals_locate_for_both_hashes() -> None:
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 2**40, 300, dtype=np.uint64)
    for h in ("identity", "murmurhash3_x86_128"):
        smap = ShardMap(spec(p=2, m=3, s=4, hash=h))
        shards, minis = smap.locate_many(ids)
        assert list(zip(shards.tolist(), minis.tolist(), strict=True)) == [
            smap.locate(int(i)) for i in ids
        ]


# -- shard bytes ---------------------------------------------------------------------------------

#: The worked example: identity hash, M=1, P=0, raw.
EXAMPLE = {2: b"\x01\x02\x03\x04", 8: b"\x06\x07\x08", 3: b"\x09\x0a"}


def _u64(*values: int) -> bytes:
    return struct.pack(f"<{len(values)}Q", *values)


def test_three_chunk_shard_byte_layout() -> None:
    expected = (
        _u64(7, 55, 57, 81)  # shard index: minishard 0's index at 7..55, minishard 1's at 57..81
        + b"\x01\x02\x03\x04\x06\x07\x08"  # minishard 0's chunks, ids 2 then 8
        + _u64(2, 6, 0, 0, 4, 3)  # ids 2, 8 delta-coded | offsets 0, 0 | sizes 4, 3
        + b"\x09\x0a"  # minishard 1's chunk, id 3
        + _u64(3, 55, 2)  # id 3 | offset 55 (after minishard 0's index) | size 2
    )
    s = spec(m=1)
    assert encode_shard(EXAMPLE, s) == expected
    assert decode_shard(expected, s) == EXAMPLE
    assert decode_shard_index(expected, s).tolist() == [[7, 55], [57, 81]]
    index = decode_minishard_index(expected[32 + 7 : 32 + 55], s)
    assert index.ids.tolist() == [2, 8]
    assert index.find(8) == (32 + 4, 32 + 7)  # absolute: after the 32-byte shard index
    assert index.find(3) is None


def test_gzip_minishard_index_and_data() -> None:
    s = spec(m=1, minishard_index_encoding="gzip", data_encoding="gzip")
    shard = encode_shard(EXAMPLE, s)
    start, end = decode_shard_index(shard, s)[0].tolist()
    raw = gzip.decompress(shard[32 + start : 32 + end])
    assert raw == _u64(2, 6, 0, 0, 4, 3)
    assert decode_shard(shard, s) == EXAMPLE  # chunk bytes come back as stored


def test_empty_shard_is_an_index_of_empty_ranges() -> None:
    s = spec(m=2)
    assert encode_shard({}, s) == bytes(64)
    assert decode_shard(bytes(64), s) == {}


def test_corrupt_shards_are_reported() -> None:
    s = spec(m=1)
    with pytest.raises(CorruptChunkError, match="cut short"):
        decode_shard(b"\x00" * 10, s)
    bad = _u64(0, 1000, 0, 0)
    with pytest.raises(CorruptChunkError, match="past the end"):
        decode_shard(bad, s)
    with pytest.raises(CorruptChunkError, match="multiple of 24"):
        decode_minishard_index(b"\x00" * 10, s)


def test_minishard_index_round_trip_many() -> None:
    rng = np.random.default_rng(1)
    s = spec(p=0, m=3, s=0, hash="murmurhash3_x86_128", minishard_index_encoding="gzip")
    chunks = {int(i): rng.bytes(int(rng.integers(0, 50))) for i in rng.choice(10**6, 200, False)}
    data = encode_shard(chunks, s)
    assert decode_shard(data, s) == chunks
    assert MinishardIndex.empty().find(0) is None


# -- geometry ------------------------------------------------------------------------------------


def test_identity_shards_are_boxes() -> None:
    geom = ShardGeometry.of((10, 7, 4), spec(p=7, m=0, s=2))
    assert geom.shard_chunks == (8, 4, 4)
    assert geom.num_shards() == (4, True)
    assert geom.shard_grid_box(0) == ((0, 0, 0), (8, 4, 4))
    # Bits 7 and 8 of the ids, the shard bits, are y's third bit and x's fourth.
    assert geom.shard_grid_box(1) == ((0, 4, 0), (8, 7, 4))
    assert geom.shard_grid_box(2) == ((8, 0, 0), (10, 4, 4))
    assert geom.shard_grid_box(3) == ((8, 4, 0), (10, 7, 4))
    # Every chunk lies in the box of its shard.
    smap = ShardMap(geom.spec)
    for cid in geom.all_chunk_ids().tolist():
        start, stop = geom.shard_grid_box(smap.locate(cid)[0])  # type: ignore[misc]
        idx = morton_decode(cid, geom.bits)
        assert all(a <= i < b for a, i, b in zip(start, idx, stop, strict=True))


def test_hashed_or_wrapped_shards_are_not_boxes() -> None:
    assert (
        ShardGeometry.of((8, 8, 8), spec(p=3, m=0, s=6, hash="murmurhash3_x86_128")).shard_chunks
        is None
    )
    wrapped = ShardGeometry.of((8, 8, 8), spec(p=3, m=0, s=2))  # 5 < 9 bits: shard ids wrap
    assert wrapped.shard_chunks is None
    assert wrapped.num_shards() == (4, True)


# -- choosing and validating specs ---------------------------------------------------------------


def test_choose_sharding_targets_a_power_of_two_of_chunks() -> None:
    # 512^3 uint8 in 64^3 chunks: 512 chunks, 1 GiB target -> every chunk in one shard.
    assert choose_sharding((8, 8, 8), 64**3, 1 << 30).to_json() == {
        "@type": "neuroglancer_uint64_sharded_v1", "preshift_bits": 9, "hash": "identity",
        "minishard_bits": 0, "shard_bits": 0, "minishard_index_encoding": "gzip",
        "data_encoding": "raw",
    }  # fmt: skip
    # 2^12 chunks of 256 KiB per GiB: 9 preshift bits, 3 minishard bits, the rest shard bits.
    big = choose_sharding((64, 64, 64), 64**3, 1 << 30)
    assert (big.preshift_bits, big.minishard_bits, big.shard_bits) == (9, 3, 6)
    assert ShardGeometry.of((64, 64, 64), big).shard_chunks == (16, 16, 16)
    # The nearest power of two of chunks (a tie goes to the larger).
    assert choose_sharding((64, 64, 64), 100, 300).preshift_bits == 2  # 3 chunks -> 2**2
    assert choose_sharding((64, 64, 64), 100, 500).preshift_bits == 2  # 5 chunks -> 2**2
    assert choose_sharding((64, 64, 64), 100, 700).preshift_bits == 3  # 7 chunks -> 2**3
    # A chunk larger than the target: one chunk per shard.
    one = choose_sharding((4, 4, 4), 1 << 20, 1000)
    assert (one.preshift_bits, one.minishard_bits, one.shard_bits) == (0, 0, 6)


def test_resolve_sharding() -> None:
    grid, cb = (8, 8, 8), 64**3
    assert resolve_sharding(None, grid_shape=grid, chunk_bytes=cb) is None
    assert resolve_sharding(False, grid_shape=grid, chunk_bytes=cb) is None
    auto = resolve_sharding(True, grid_shape=grid, chunk_bytes=cb, compression="gzip")
    assert auto is not None
    assert auto.data_encoding == "gzip"
    given = resolve_sharding(
        {"preshift_bits": 1, "minishard_bits": 2, "shard_bits": 3, "hash": "murmurhash3_x86_128"},
        grid_shape=grid, chunk_bytes=cb,
    )  # fmt: skip
    assert given is not None
    assert given.hash == "murmurhash3_x86_128"
    with pytest.raises(InvalidInfoError, match="> 64"):
        resolve_sharding({"preshift_bits": 30, "minishard_bits": 30, "shard_bits": 30,
                          "hash": "identity"}, grid_shape=grid, chunk_bytes=cb)  # fmt: skip
    with pytest.raises(InvalidInfoError, match="hash"):
        resolve_sharding({"preshift_bits": 1, "minishard_bits": 1, "shard_bits": 1,
                          "hash": "md5"}, grid_shape=grid, chunk_bytes=cb)  # fmt: skip
    with pytest.raises(InvalidInfoError, match="data_encoding"):
        resolve_sharding({"preshift_bits": 1, "minishard_bits": 1, "shard_bits": 1,
                          "hash": "identity", "data_encoding": "zstd"},
                         grid_shape=grid, chunk_bytes=cb)  # fmt: skip
    with pytest.raises(UnsupportedError, match="raw or gzip"):
        resolve_sharding(True, grid_shape=grid, chunk_bytes=cb, compression="zstd")
    with pytest.raises(ValueError, match="66-bit chunk ids"):
        resolve_sharding(True, grid_shape=(2**22, 2**22, 2**22), chunk_bytes=1)
    with pytest.raises(ValueError, match="sharding=True"):
        resolve_sharding(None, grid_shape=grid, chunk_bytes=cb, target_bytes=10)
