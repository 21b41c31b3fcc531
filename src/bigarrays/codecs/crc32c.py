"""crc32c: a 4-byte CRC-32C (Castagnoli) checksum after the data, Zarr v3's ``crc32c`` codec.

The checksum comes from ``google-crc32c`` (a core dependency): Google's maintained binding, with
hardware CRC32C where the CPU has it (~40 us a MiB here), and the implementation zarr-python uses.
It takes ``bytes`` or an ndarray, so other buffers are handed over as a zero-copy ndarray view.
"""

from __future__ import annotations

from typing import Any, ClassVar

import google_crc32c
import numpy as np

from bigarrays.codecs.bytes_bytes import Buffer, BytesBytesCodec, read_config
from bigarrays.errors import CorruptChunkError

SIZE = 4


def checksum(data: Buffer) -> int:
    """The CRC-32C of ``data``."""
    if not isinstance(data, bytes):
        data = np.frombuffer(data, np.uint8)  # type: ignore[assignment]
    value: int = google_crc32c.value(data)
    return value


class Crc32cCodec(BytesBytesCodec):
    """Appends the little-endian CRC-32C of the data; decoding checks and strips it."""

    name: ClassVar[str] = "crc32c"

    @classmethod
    def from_config(cls, config: Any) -> Crc32cCodec:
        read_config(cls.name, config, {})
        return cls()

    def configuration(self) -> None:
        return None

    def max_encoded_size(self, size: int) -> int:
        return size + SIZE

    def encode(self, data: Buffer) -> bytes:
        return bytes(data) + checksum(data).to_bytes(SIZE, "little")

    def decode(self, data: bytes, key: str = "", max_size: int | None = None) -> bytes:
        if len(data) < SIZE:
            raise CorruptChunkError(
                key, f"{len(data)} bytes cannot hold the {SIZE}-byte crc32c checksum"
            )
        if max_size is not None and len(data) - SIZE > max_size:
            raise CorruptChunkError(
                key,
                f"{len(data) - SIZE} bytes before the crc32c checksum, more than the "
                f"{max_size} expected at most",
            )
        body = memoryview(data)[:-SIZE]
        stored = int.from_bytes(data[-SIZE:], "little")
        computed = checksum(body)
        if stored != computed:
            raise CorruptChunkError(
                key, f"crc32c checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
            )
        return bytes(body)
