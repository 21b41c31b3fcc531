"""The bytes -> bytes codec modules on their own: gzip, zstd, brotli, blosc, crc32c."""

from __future__ import annotations

import threading
from typing import Any

import numcodecs
import numpy as np
import pytest

from bigarrays.codecs import brotli, crc32c, gzip, zstd
from bigarrays.codecs.blosc import BloscCodec, BloscCompressor
from bigarrays.codecs.bytes_bytes import BytesBytesCodec
from bigarrays.codecs.crc32c import Crc32cCodec
from bigarrays.codecs.gzip import GzipCodec
from bigarrays.codecs.zstd import ZstdCodec
from bigarrays.errors import CorruptChunkError

DATA = bytes(range(256)) * 64 + bytes(5000)


def test_crc32c_known_values() -> None:
    # The check value of CRC-32C (RFC 3720's polynomial) and the zero-length value.
    assert crc32c.checksum(b"123456789") == 0xE3069283
    assert crc32c.checksum(b"") == 0
    for buffer in (bytearray(b"123456789"), memoryview(b"0123456789")[1:], np.frombuffer(
            b"123456789", np.uint8)):  # fmt: skip
        assert crc32c.checksum(buffer) == 0xE3069283  # type: ignore[arg-type]
    assert Crc32cCodec().encode(b"123456789")[-4:] == (0xE3069283).to_bytes(4, "little")


CODECS: list[BytesBytesCodec] = [
    GzipCodec(1),
    GzipCodec(9),
    ZstdCodec(3, True),
    ZstdCodec(-5, False),
    BloscCodec("lz4", 5, "shuffle", 4),
    BloscCodec("zstd", 0, "bitshuffle", 1, 2048),
    Crc32cCodec(),
]


@pytest.mark.parametrize("codec", CODECS, ids=repr)
def test_plain_api_round_trips_and_bounds(codec: BytesBytesCodec) -> None:
    encoded = codec.encode(DATA)
    assert len(encoded) <= codec.max_encoded_size(len(DATA))
    assert codec.decode(encoded, "k") == DATA
    assert codec.decode(encoded, "k", max_size=len(DATA)) == DATA
    with pytest.raises(CorruptChunkError, match="expected at most") as caught:
        codec.decode(encoded, "s/k", max_size=len(DATA) - 1)
    assert caught.value.key == "s/k"
    assert codec.encode(memoryview(DATA)) == encoded  # any buffer is taken


@pytest.mark.parametrize(
    ("module", "level"), [(gzip, 6), (zstd, 3), (brotli, 5)], ids=["gzip", "zstd", "brotli"]
)
def test_module_functions_are_bounded_and_typed(module: Any, level: int) -> None:
    packed = module.compress(DATA, level)
    assert module.decompress(packed, "k", len(DATA)) == DATA
    with pytest.raises(CorruptChunkError, match="expected at most"):
        module.decompress(packed, "k", len(DATA) - 1)
    with pytest.raises(CorruptChunkError, match="empty"):
        module.decompress(b"", "k")
    with pytest.raises(CorruptChunkError, match="cannot decode"):
        module.decompress(packed[: len(packed) // 2], "k")


def test_zarr_gzip_level_zero_is_stored_deflate() -> None:
    packed = GzipCodec(0).encode(DATA)
    assert len(packed) > len(DATA)
    assert numcodecs.GZip().decode(packed) == DATA


def test_blosc_blocksize_from_threads_is_right_and_leaves_the_default_alone() -> None:
    data = (np.arange(1 << 16, dtype="<u4") // 3).tobytes()
    numcodecs.blosc.use_threads = False
    expected = {
        bs: numcodecs.Blosc("lz4", 5, 1, blocksize=bs, typesize=4).encode(data)
        for bs in (0, 4096, 16384)
    }  # fmt: skip
    codecs = {bs: BloscCodec("lz4", 5, "shuffle", 4, bs) for bs in expected}
    errors: list[BaseException] = []

    def work(bs: int) -> None:
        try:
            for _ in range(50):
                out = codecs[bs].encode(data)
                # A frame that another thread's block size slipped into is still valid.
                assert codecs[bs].decode(out, "k") == data
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(bs,)) for bs in expected for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    # Alone, each gives zarr-python's bytes, and blocksize 0 is c-blosc's own choice again.
    for bs, frame in expected.items():
        assert codecs[bs].encode(data) == frame
    assert BloscCompressor(5, "lz4", "byte", typesize=4).encode(data) == expected[0]
