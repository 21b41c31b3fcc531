"""Decompression bombs in Zarr chunks: a small gzip, zstd, blosc or lz4 payload that inflates to
64 MiB, stored where a 256 KiB chunk belongs, fails with CorruptChunkError while the decoder
holds no more than about one chunk (measured with tracemalloc, which sees every bytes object the
libraries allocate)."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from typing import Any

import numcodecs
import numpy as np
import pytest

from bigarrays.codecs import crc32c
from bigarrays.codecs.chain import CodecChain
from bigarrays.codecs.zarr_v2 import V2Chain
from bigarrays.errors import CorruptChunkError

BOMB = 64 << 20  # bytes a bomb inflates to
SHAPE = (64, 64, 64)  # uint8: 256 KiB a chunk
PIECE = bytes(4 << 20)
#: The most a refused bomb may allocate: a few chunks' worth, far below the bomb.
LIMIT = 4 << 20


def gzip_bomb() -> bytes:
    from zlib_ng import zlib_ng

    c = zlib_ng.compressobj(9, zlib_ng.DEFLATED, 31)
    return b"".join(c.compress(PIECE) for _ in range(BOMB // len(PIECE))) + c.flush()


def zlib_bomb() -> bytes:
    from zlib_ng import zlib_ng

    c = zlib_ng.compressobj(9)
    return b"".join(c.compress(PIECE) for _ in range(BOMB // len(PIECE))) + c.flush()


def zstd_bomb(content_size: bool) -> bytes:
    import zstandard

    cctx = zstandard.ZstdCompressor(level=19, write_content_size=content_size)
    c = cctx.compressobj(size=BOMB if content_size else -1)
    return b"".join(c.compress(PIECE) for _ in range(BOMB // len(PIECE))) + c.flush()


def blosc_bomb() -> bytes:
    import blosc

    out: bytes = blosc.compress(bytes(BOMB), typesize=1, clevel=9, cname="zstd")
    return out


def lz4_bomb() -> bytes:
    out: bytes = numcodecs.LZ4().encode(bytes(BOMB))
    return out


def peak_of(decode: Callable[[], Any]) -> tuple[BaseException | None, int]:
    """What ``decode`` raises, and the most memory it held."""
    tracemalloc.start()
    try:
        decode()
    except Exception as exc:
        error: BaseException | None = exc
    else:
        error = None
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return error, peak


V3_CASES: dict[str, tuple[list[dict[str, Any]], Callable[[], bytes]]] = {
    "gzip": ([{"name": "gzip", "configuration": {"level": 5}}], gzip_bomb),
    "zstd": (
        [{"name": "zstd", "configuration": {"level": 3, "checksum": False}}],
        lambda: zstd_bomb(True),
    ),
    "zstd-unsized": (
        [{"name": "zstd", "configuration": {"level": 3, "checksum": False}}],
        lambda: zstd_bomb(False),
    ),
    "blosc": (
        [
            {
                "name": "blosc",
                "configuration": {
                    "cname": "zstd",
                    "clevel": 9,
                    "shuffle": "noshuffle",
                    "typesize": 1,
                    "blocksize": 0,
                },
            }
        ],
        blosc_bomb,
    ),
    "gzip+crc32c": (
        [{"name": "gzip", "configuration": {"level": 5}}, {"name": "crc32c"}],
        lambda: (b := gzip_bomb()) + crc32c.checksum(b).to_bytes(4, "little"),
    ),
}


@pytest.mark.parametrize("case", list(V3_CASES))
def test_v3_bomb_is_refused_with_bounded_memory(case: str) -> None:
    codecs, make = V3_CASES[case]
    bomb = make()
    assert len(bomb) < BOMB // 100
    chain = CodecChain.from_json([{"name": "bytes"}, *codecs], "uint8", SHAPE)
    error, peak = peak_of(lambda: chain.decode(bomb, "c/0/0/0"))
    assert isinstance(error, CorruptChunkError), error
    assert error.key == "c/0/0/0"
    assert "expected at most" in str(error)
    assert peak < LIMIT


V2_CASES: dict[str, tuple[dict[str, Any], Callable[[], bytes]]] = {
    "gzip": ({"id": "gzip", "level": 5}, gzip_bomb),
    "zlib": ({"id": "zlib", "level": 5}, zlib_bomb),
    "zstd": ({"id": "zstd", "level": 3}, lambda: zstd_bomb(True)),
    "zstd-unsized": ({"id": "zstd", "level": 3}, lambda: zstd_bomb(False)),
    "blosc": ({"id": "blosc", "cname": "zstd", "clevel": 9, "shuffle": 0}, blosc_bomb),
    "lz4": ({"id": "lz4"}, lz4_bomb),
}


@pytest.mark.parametrize("case", list(V2_CASES))
@pytest.mark.parametrize("filters", [None, [{"id": "shuffle", "elementsize": 1}]])
def test_v2_bomb_is_refused_with_bounded_memory(case: str, filters: Any) -> None:
    compressor, make = V2_CASES[case]
    bomb = make()
    chain = V2Chain.from_zarray(compressor, filters, np.dtype("u1"), SHAPE, "C")
    error, peak = peak_of(lambda: chain.decode(bomb, "0.0.0"))
    assert isinstance(error, CorruptChunkError), error
    assert error.key == "0.0.0"
    assert peak < LIMIT


def test_honest_chunks_still_decode_under_the_same_bounds() -> None:
    chunk = np.random.default_rng(0).integers(0, 255, SHAPE, dtype="u1")
    for codecs, _ in V3_CASES.values():
        chain = CodecChain.from_json([{"name": "bytes"}, *codecs], "uint8", SHAPE)
        np.testing.assert_array_equal(chain.decode(chain.encode(chunk), "k"), chunk)
    for compressor, _ in V2_CASES.values():
        v2 = V2Chain.from_zarray(compressor, None, np.dtype("u1"), SHAPE)
        np.testing.assert_array_equal(v2.decode(v2.encode(chunk), "k"), chunk)
