"""The Zarr v3 chain's decode into a caller's buffer (the innermost of zstd, gzip or blosc
decodes straight into it): the values of the general decode, in the buffer, and every stream
this path declines (another size, bytes after the end, damage) goes through the general decode,
which names what is wrong."""

from __future__ import annotations

import gzip as stdlib_gzip
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
import zstandard

import bigarrays as ba
from bigarrays.codecs.chain import CodecChain
from bigarrays.errors import CorruptChunkError
from bigarrays.formats.zarr import chunks as zarr_chunks

SHAPE = (6, 5, 4)

INNER = {
    "zstd": {"name": "zstd", "configuration": {"level": 3, "checksum": False}},
    "gzip": {"name": "gzip", "configuration": {"level": 5}},
    "blosc": {"name": "blosc", "configuration": {"cname": "lz4", "clevel": 5,
                                                 "shuffle": "shuffle", "typesize": 2,
                                                 "blocksize": 0}},
}  # fmt: skip


def chain(inner: str, dtype: str = "uint16", crc: bool = False, endian: str = "little",
          transpose: bool = False) -> CodecChain:  # fmt: skip
    codecs: list[Any] = [{"name": "transpose", "configuration": {"order": [2, 1, 0]}}] * transpose
    codecs += [{"name": "bytes", "configuration": {"endian": endian}}, INNER[inner]]
    if crc:
        codecs.append({"name": "crc32c"})
    return CodecChain.from_json(codecs, dtype, SHAPE)


def values(dtype: str = "uint16") -> np.ndarray:
    return np.random.default_rng(3).integers(0, 1000, SHAPE).astype(dtype)


def in_buffer(got: np.ndarray, out: bytearray) -> bool:
    return bool(np.shares_memory(got, np.frombuffer(out, np.uint8)))


@pytest.mark.parametrize("crc", [False, True])
@pytest.mark.parametrize("inner", sorted(INNER))
def test_decode_into_fills_the_buffer(inner: str, crc: bool) -> None:
    c = chain(inner, crc=crc)
    chunk = values()
    stored = c.encode(chunk)
    out = bytearray(chunk.nbytes + 7)
    got = c.decode_into(stored, "k", out)
    np.testing.assert_array_equal(got, chunk)
    assert in_buffer(got, out)
    np.testing.assert_array_equal(c.decode(stored, "k"), chunk)


@pytest.mark.parametrize(("endian", "transpose"), [("big", False), ("little", True)])
def test_a_big_endian_or_transposed_chunk_comes_back_right(endian: str, transpose: bool) -> None:
    c = chain("zstd", "int32", endian=endian, transpose=transpose)
    chunk = values("int32")
    got = c.decode_into(c.encode(chunk), "k", bytearray(chunk.nbytes))
    np.testing.assert_array_equal(got, chunk)
    assert got.dtype == np.dtype("int32")


def test_a_buffer_too_small_takes_the_general_path() -> None:
    c = chain("zstd")
    chunk = values()
    out = bytearray(chunk.nbytes - 1)
    got = c.decode_into(c.encode(chunk), "k", out)
    np.testing.assert_array_equal(got, chunk)
    assert not in_buffer(got, out)


def test_zstd_frames_of_a_chunk_in_two_are_decoded() -> None:
    chunk = values()
    raw = chunk.tobytes()
    cctx = zstandard.ZstdCompressor()
    two = cctx.compress(raw[:100]) + cctx.compress(raw[100:])
    out = bytearray(chunk.nbytes)
    got = chain("zstd").decode_into(two, "k", out)
    np.testing.assert_array_equal(got, chunk)
    assert in_buffer(got, out)


def _zstd(data: bytes) -> bytes:
    return zstandard.ZstdCompressor().compress(data)


def _gzip(data: bytes) -> bytes:
    return stdlib_gzip.compress(data, mtime=0)


MAKERS = {"zstd": _zstd, "gzip": _gzip}


@pytest.mark.parametrize("inner", sorted(MAKERS))
@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("short", "expected 240"),  # a chunk's bytes less one
        ("long", "more than"),  # one byte more than a chunk holds
        ("trailing", None),  # bytes after the end of the stream
        ("flipped", None),  # a byte of the stream changed
    ],
)  # fmt: skip
def test_streams_this_path_declines_are_named_by_the_general_decode(
    inner: str, damage: str, message: str | None
) -> None:
    raw = values().tobytes()
    make = MAKERS[inner]
    stored = {
        "short": lambda: make(raw[:-1]),
        "long": lambda: make(raw + b"\0"),
        "trailing": lambda: make(raw) + b"junk",
        "flipped": lambda: _flip(make(raw)),
    }[damage]()
    out = bytearray(len(raw))
    with pytest.raises(CorruptChunkError, match=message):
        chain(inner).decode_into(stored, "the/key", out)


def _flip(stored: bytes) -> bytes:
    b = bytearray(stored)
    b[len(b) // 2] ^= 0xFF
    b[-6] ^= 0xFF  # gzip's CRC-32, zstd's last block: no stream survives both
    return bytes(b)


def test_a_blosc_frame_of_another_size_is_named() -> None:
    c = chain("blosc")
    other = CodecChain.from_json(
        [{"name": "bytes", "configuration": {"endian": "little"}}, INNER["blosc"]],
        "uint16", (6, 5, 5),
    )  # fmt: skip
    stored = other.encode(np.zeros((6, 5, 5), np.uint16))
    with pytest.raises(CorruptChunkError, match="holds 300 bytes"):
        c.decode_into(stored, "k", bytearray(240))


@pytest.mark.parametrize("sharded", [False, True])
@pytest.mark.parametrize("inner", ["zstd", "gzip", "blosc"])
def test_reads_of_compressed_zarr_arrays_match_zarr_python(
    tmp_path: Path, inner: str, sharded: bool
) -> None:
    compressor: Any = {
        "zstd": zarr.codecs.ZstdCodec(level=1),
        "gzip": zarr.codecs.GzipCodec(level=1),
        "blosc": zarr.codecs.BloscCodec(cname="lz4", clevel=5, shuffle="shuffle"),
    }[inner]
    data = np.random.default_rng(5).integers(0, 60000, (40, 33, 29)).astype("uint16")
    path = str(tmp_path / "a.zarr")
    z = zarr.create_array(path, shape=data.shape, dtype="uint16", chunks=(16, 16, 16),
                          shards=(32, 32, 32) if sharded else None,
                          compressors=[compressor], zarr_format=3)  # fmt: skip
    z[...] = data
    with ba.open(path, progress=False) as vol:
        # Many cutouts on the pool's threads, each reusing its buffers chunk after chunk.
        rng = np.random.default_rng(6)
        for _ in range(30):
            lo = rng.integers(0, data.shape, 3)
            hi = np.minimum(lo + rng.integers(1, 25, 3), data.shape)
            box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
            np.testing.assert_array_equal(vol[box], data[box])
        np.testing.assert_array_equal(vol[...], data)


def _zstd_array(path: Path, data: np.ndarray) -> None:
    with ba.create(path, shape=data.shape, dtype=data.dtype, chunks=(8, 8), format="zarr",
                   compression="zstd", progress=False) as vol:  # fmt: skip
        vol[...] = data


def test_unsharded_chunks_stored_larger_than_the_buffer_are_read_the_ordinary_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = np.random.default_rng(1).integers(0, 255, (16, 16)).astype(np.uint8)
    _zstd_array(tmp_path / "a.zarr", data)
    monkeypatch.setattr(zarr_chunks, "stored_buffer_bytes", lambda n: 8)
    with ba.open(tmp_path / "a.zarr", progress=False) as vol:
        assert vol.level.source.stored_in_place
        np.testing.assert_array_equal(vol[3:13, 2:15], data[3:13, 2:15])


@pytest.mark.parametrize(
    ("stored", "message"),
    [
        (zstandard.ZstdCompressor().compress(bytes(65)), "more than"),  # a byte too many
        (bytes(1 << 20), "more than|cannot decode"),  # a megabyte where 64 bytes belong
    ],
)  # fmt: skip
def test_a_damaged_unsharded_chunk_in_a_folder_is_named(
    tmp_path: Path, stored: bytes, message: str
) -> None:
    _zstd_array(tmp_path / "a.zarr", np.ones((16, 16), np.uint8))
    (tmp_path / "a.zarr" / "c" / "1" / "0").write_bytes(stored)
    with ba.open(tmp_path / "a.zarr", progress=False) as vol:
        np.testing.assert_array_equal(vol[0:8, :], 1)
        with pytest.raises(CorruptChunkError, match=message) as info:
            vol[8:16, 0:8]
    assert "c/1/0" in str(info.value)
