"""The Zarr v3 codec chain against zarr-python 3: the same bytes where the spec fixes them, and
each side reads what the other writes where the compression library differs."""

from __future__ import annotations

import itertools
import zlib
from typing import Any

import numpy as np
import pytest
import zarr
import zarr.storage

from bigarrays.codecs.chain import BytesCodec as OurBytesCodec
from bigarrays.codecs.chain import CodecChain, register_array_bytes_codec
from bigarrays.errors import CorruptChunkError, InvalidCodecError, UnsupportedError

DTYPES = [
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "complex64", "complex128",
]  # fmt: skip
SHAPE = (5, 7, 3)

BYTES_BYTES: dict[str, list[dict[str, Any]]] = {
    "none": [],
    "gzip": [{"name": "gzip", "configuration": {"level": 5}}],
    "zstd": [{"name": "zstd", "configuration": {"level": 3, "checksum": True}}],
    "blosc": [{"name": "blosc", "configuration": {
        "cname": "lz4", "clevel": 5, "shuffle": "shuffle", "typesize": 4, "blocksize": 0}}],
    "crc32c": [{"name": "crc32c"}],
    "gzip+crc32c": [{"name": "gzip", "configuration": {"level": 1}}, {"name": "crc32c"}],
    "blosc-bit+zstd": [
        {"name": "blosc", "configuration": {
            "cname": "zstd", "clevel": 3, "shuffle": "bitshuffle", "typesize": 2,
            "blocksize": 0}},
        {"name": "zstd", "configuration": {"level": 1, "checksum": False}},
    ],
}  # fmt: skip
ARRAY_ARRAY: dict[str, list[dict[str, Any]]] = {
    "none": [],
    "transpose": [{"name": "transpose", "configuration": {"order": [2, 0, 1]}}],
    "F": [{"name": "transpose", "configuration": {"order": [2, 1, 0]}}],
}


def random_chunk(dtype: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return rng.integers(0, 2, SHAPE).astype(bool)
    if dt.kind in "iu":
        # Half small values, so that compressors have something to find.
        info = np.iinfo(dt)
        wide = rng.integers(info.min, info.max, SHAPE, dtype=dt, endpoint=True)
        return np.where(rng.random(SHAPE) < 0.5, wide, dt.type(3))
    if dt.kind == "f":
        return rng.normal(0, 1e3, SHAPE).astype(dt)
    return (rng.normal(0, 1, SHAPE) + 1j * rng.normal(0, 1, SHAPE)).astype(dt)


def zarr_codecs(json: list[dict[str, Any]]) -> dict[str, Any]:
    """zarr-python's create_array arguments for a codec list."""
    from zarr.registry import get_codec_class

    built = [get_codec_class(c["name"]).from_dict(c) for c in json]
    kinds = [type(c).__mro__ for c in built]
    aa = [c for c, k in zip(built, kinds, strict=True) if zarr.abc.codec.ArrayArrayCodec in k]
    ab = [c for c, k in zip(built, kinds, strict=True) if zarr.abc.codec.ArrayBytesCodec in k]
    bb = [c for c, k in zip(built, kinds, strict=True) if zarr.abc.codec.BytesBytesCodec in k]
    return {"filters": aa, "serializer": ab[0] if ab else "auto", "compressors": bb}


def zarr_write(chunk: np.ndarray, json: list[dict[str, Any]]) -> tuple[bytes, list[dict]]:
    """The stored bytes of ``chunk`` as zarr-python's one-chunk array writes it, and the
    ``codecs`` of its metadata."""
    store = zarr.storage.MemoryStore()
    arr = zarr.create_array(
        store=store, shape=chunk.shape, chunks=chunk.shape, dtype=chunk.dtype, fill_value=0,
        config={"write_empty_chunks": True}, **zarr_codecs(json),
    )  # fmt: skip
    arr[...] = chunk
    key = "c/" + "/".join("0" * chunk.ndim)
    return bytes(store._store_dict[key].to_bytes()), arr.metadata.to_dict()["codecs"]


def fill_json(dtype: np.dtype) -> Any:
    return False if dtype.kind == "b" else [0, 0] if dtype.kind == "c" else 0


def zarr_read(data: bytes, chunk: np.ndarray, codecs: list[dict[str, Any]]) -> np.ndarray:
    """What zarr-python reads from ``data`` stored as the one chunk of such an array."""
    store = zarr.storage.MemoryStore()
    doc = {
        "zarr_format": 3, "node_type": "array", "shape": list(chunk.shape),
        "data_type": str(chunk.dtype), "fill_value": fill_json(chunk.dtype),
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(chunk.shape)}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "codecs": codecs,
    }  # fmt: skip
    import json as jsonlib

    from zarr.core.buffer import default_buffer_prototype

    proto = default_buffer_prototype()
    store._store_dict["zarr.json"] = proto.buffer.from_bytes(jsonlib.dumps(doc).encode())
    store._store_dict["c/" + "/".join("0" * chunk.ndim)] = proto.buffer.from_bytes(data)
    out: np.ndarray = zarr.open_array(store=store, mode="r")[...]
    return out


def endian_for(dtype: str) -> list[dict[str, Any]]:
    if np.dtype(dtype).itemsize == 1:
        return [{"name": "bytes"}]
    return [{"name": "bytes", "configuration": {"endian": "little"}}]


#: Codecs whose bytes both sides compute the same way for the same JSON (blosc: the same c-blosc
#: in python-blosc and numcodecs). gzip (ISA-L / zlib-ng against zlib) and zstd (zstandard's
#: libzstd against numcodecs') differ in their bytes, so those are checked by reading only.
DETERMINISTIC = {"none", "crc32c", "blosc"}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("aa", "bb"), list(itertools.product(ARRAY_ARRAY, BYTES_BYTES)))
def test_chain_matches_zarr_python(dtype: str, aa: str, bb: str) -> None:
    chunk = random_chunk(dtype, zlib.crc32(f"{dtype}{aa}{bb}".encode()))
    json = ARRAY_ARRAY[aa] + endian_for(dtype) + BYTES_BYTES[bb]
    theirs, their_codecs = zarr_write(chunk, json)
    chain = CodecChain.from_json(their_codecs, np.dtype(dtype), SHAPE)
    ours = chain.encode(chunk)
    if bb in DETERMINISTIC:
        assert ours == theirs
    # Each reads what the other wrote, whatever the library behind the compression.
    got = chain.decode(theirs, "c/0/0/0")
    assert got.shape == SHAPE
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got, chunk)
    np.testing.assert_array_equal(zarr_read(ours, chunk, their_codecs), chunk)


@pytest.mark.parametrize("dtype", ["uint16", "int64", "float32", "complex128", "float16"])
def test_big_endian_bytes(dtype: str) -> None:
    chunk = random_chunk(dtype, 1)
    json = [{"name": "bytes", "configuration": {"endian": "big"}}, {"name": "crc32c"}]
    theirs, codecs = zarr_write(chunk, json)
    chain = CodecChain.from_json(codecs, dtype, SHAPE)
    assert chain.encode(chunk) == theirs
    assert theirs[:-4] == chunk.astype(np.dtype(dtype).newbyteorder(">")).tobytes()
    got = chain.decode(theirs, "k")
    assert got.dtype.isnative
    np.testing.assert_array_equal(got, chunk)


@pytest.mark.parametrize("level", [0, 1, 5, 9])
def test_gzip_levels_read_both_ways(level: int) -> None:
    chunk = random_chunk("uint16", level)
    json = [*endian_for("uint16"), {"name": "gzip", "configuration": {"level": level}}]
    theirs, codecs = zarr_write(chunk, json)
    chain = CodecChain.from_json(codecs, "uint16", SHAPE)
    np.testing.assert_array_equal(chain.decode(theirs, "k"), chunk)
    np.testing.assert_array_equal(zarr_read(chain.encode(chunk), chunk, codecs), chunk)


def test_blosc_blocksize_matches_zarr_python() -> None:
    chunk = np.arange(64 * 64 * 8, dtype="uint32").reshape(64, 64, 8) // 5
    config = {"cname": "zstd", "clevel": 5, "shuffle": "shuffle", "typesize": 4, "blocksize": 4096}
    json = [*endian_for("uint32"), {"name": "blosc", "configuration": config}]
    store = zarr.storage.MemoryStore()
    arr = zarr.create_array(store=store, shape=chunk.shape, chunks=chunk.shape, dtype="uint32",
                            fill_value=0, **zarr_codecs(json))  # fmt: skip
    arr[...] = chunk
    theirs = bytes(store._store_dict["c/0/0/0"].to_bytes())
    ours = CodecChain.from_json(arr.metadata.to_dict()["codecs"], "uint32", chunk.shape)
    assert ours.encode(chunk) == theirs
    assert int.from_bytes(theirs[8:12], "little") == 4096  # the frame's block size


def test_json_round_trips() -> None:
    json = [
        {"name": "transpose", "configuration": {"order": [1, 2, 0]}},
        {"name": "bytes", "configuration": {"endian": "big"}},
        {"name": "blosc", "configuration": {
            "cname": "zstd", "clevel": 0, "shuffle": "noshuffle", "typesize": 2, "blocksize": 0}},
        {"name": "zstd", "configuration": {"level": -3, "checksum": True}},
        {"name": "gzip", "configuration": {"level": 9}},
        {"name": "crc32c"},
    ]  # fmt: skip
    chain = CodecChain.from_json(json, "int16", SHAPE)
    assert chain.to_json() == json
    assert CodecChain.from_json(chain.to_json(), "int16", SHAPE) == chain
    # Defaults fill what a short form leaves out, as zarr-python's do.
    short = CodecChain.from_json(["bytes", "crc32c"], "uint8", SHAPE)
    assert short.to_json() == [{"name": "bytes"}, {"name": "crc32c"}]
    assert CodecChain.from_json([], "uint8", SHAPE).to_json() == [{"name": "bytes"}]
    gz = CodecChain.from_json([*endian_for("int16"), {"name": "gzip"}], "int16", SHAPE)
    assert gz.bytes_bytes[0].to_json() == {"name": "gzip", "configuration": {"level": 5}}


def test_unknown_codec_is_unsupported_and_named() -> None:
    with pytest.raises(UnsupportedError, match="'bitround'"):
        CodecChain.from_json([{"name": "bytes"}, {"name": "bitround"}], "uint8", SHAPE)
    # A valid blosc configuration whose compressor c-blosc was built without.
    with pytest.raises(UnsupportedError, match="snappy"):
        CodecChain.from_json(
            [{"name": "bytes"}, {"name": "blosc", "configuration": {"cname": "snappy"}}],
            "uint8",
            SHAPE,
        )


@pytest.mark.parametrize(
    ("json", "dtype", "match"),
    [
        ([{"name": "bytes"}], "uint16", "need an endian"),
        ([], "float32", "no array -> bytes codec"),
        ([{"name": "bytes", "configuration": {"endian": "middle"}}], "uint16", "endian must be"),
        ([{"name": "bytes"}, {"name": "bytes"}], "uint8", "second array -> bytes"),
        ([{"name": "gzip"}, {"name": "bytes"}], "uint8", "comes after"),
        (
            [{"name": "bytes"}, {"name": "transpose", "configuration": {"order": [0, 1, 2]}}],
            "uint8",
            "comes before",
        ),
        (
            [{"name": "transpose", "configuration": {"order": [0, 0, 1]}}, {"name": "bytes"}],
            "uint8",
            "not a permutation",
        ),
        (
            [{"name": "transpose", "configuration": {"order": [0, 1]}}, {"name": "bytes"}],
            "uint8",
            "not a permutation",
        ),
        ([{"name": "transpose"}, {"name": "bytes"}], "uint8", "needs an order"),
        (
            [{"name": "bytes"}, {"name": "gzip", "configuration": {"level": 10}}],
            "uint8",
            "level must be an integer 0-9",
        ),
        (
            [{"name": "bytes"}, {"name": "gzip", "configuration": {"lvl": 1}}],
            "uint8",
            "unknown configuration member",
        ),
        (
            [{"name": "bytes"}, {"name": "zstd", "configuration": {"checksum": 1}}],
            "uint8",
            "checksum must be true or false",
        ),
        (
            [{"name": "bytes"}, {"name": "blosc", "configuration": {"cname": "brotli"}}],
            "uint8",
            "cname must be one of",
        ),
        (
            [{"name": "bytes"}, {"name": "crc32c", "configuration": {"x": 1}}],
            "uint8",
            "unknown configuration member",
        ),
        ([{"nom": "bytes"}], "uint8", "string name"),
        ({"name": "bytes"}, "uint8", "must be a list"),
    ],
)
def test_malformed_chains_are_refused(json: Any, dtype: str, match: str) -> None:
    with pytest.raises(InvalidCodecError, match=match):
        CodecChain.from_json(json, dtype, SHAPE)


def test_encode_checks_shape_and_dtype() -> None:
    chain = CodecChain.from_json(endian_for("uint16"), "uint16", SHAPE)
    with pytest.raises(ValueError, match="shape"):
        chain.encode(np.zeros((5, 7), "uint16"))
    with pytest.raises(TypeError, match="int32"):
        chain.encode(np.zeros(SHAPE, "int32"))
    # Another byte order of the same type is the same values.
    big = random_chunk("uint16", 3).astype(">u2")
    np.testing.assert_array_equal(chain.decode(chain.encode(big), "k"), big)


def test_crc32c_mismatch_and_damage_are_corrupt() -> None:
    chain = CodecChain.from_json([{"name": "bytes"}, {"name": "crc32c"}], "uint8", SHAPE)
    good = chain.encode(random_chunk("uint8", 4))
    for bad, why in [
        (bytes([good[0] ^ 1]) + good[1:], "checksum mismatch"),
        (good[:-1] + bytes([good[-1] ^ 0x80]), "checksum mismatch"),
        (good[:3], "cannot hold"),
        (good[:-5] + good[-4:], "checksum mismatch"),
    ]:
        with pytest.raises(CorruptChunkError, match=why) as caught:
            chain.decode(bad, "c/1/2/3")
        assert caught.value.key == "c/1/2/3"


def test_wrong_size_is_corrupt() -> None:
    chain = CodecChain.from_json([*endian_for("uint16"), {"name": "gzip"}], "uint16", SHAPE)
    small = CodecChain.from_json([*endian_for("uint16"), {"name": "gzip"}], "uint16", (5, 7, 2))
    with pytest.raises(CorruptChunkError, match="holds 140 bytes, expected 210"):
        chain.decode(small.encode(np.zeros((5, 7, 2), "uint16")), "k")


def test_index_chain_of_a_shard() -> None:
    """``bytes`` + ``crc32c`` over uint64 (offset, nbytes) pairs: a sharding index."""
    index = np.arange(2 * 3 * 2, dtype="<u8").reshape(2, 3, 2) * 1000
    index[1, 2] = 2**64 - 1
    json = [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}]
    chain = CodecChain.from_json(json, np.dtype("<u8"), (2, 3, 2))
    data = chain.encode(index)
    assert len(data) == index.nbytes + 4
    theirs, _ = zarr_write(index, json)
    assert data == theirs
    np.testing.assert_array_equal(chain.decode(data, "shard"), index)


def test_a_registered_array_bytes_codec_is_used() -> None:
    class Doubling(OurBytesCodec):
        name = "doubling"

        def encode(self, chunk: np.ndarray) -> bytes:
            return super().encode(chunk * 2)

        def decode(self, data: bytes, key: str) -> np.ndarray:
            return super().decode(data, key) // 2

        def to_json(self) -> dict[str, Any]:
            return {"name": "doubling"}

    register_array_bytes_codec(
        "doubling", lambda config, dtype, shape: Doubling(dtype, shape, None)
    )
    chain = CodecChain.from_json([{"name": "doubling"}, {"name": "crc32c"}], "uint8", SHAPE)
    chunk = random_chunk("uint8", 5) // 2
    data = chain.encode(chunk)
    assert data[:-4] == (chunk * 2).tobytes()
    np.testing.assert_array_equal(chain.decode(data, "k"), chunk)
    assert chain.to_json() == [{"name": "doubling"}, {"name": "crc32c"}]
