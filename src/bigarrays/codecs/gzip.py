"""gzip (deflate): the compression every browser, viewer and Zarr reader has.

Each direction uses the fastest binding that reads or writes the standard stream, measured on
EM-like and label chunks (see ``bench/codecs.py``): python-isal (ISA-L) for levels 1-3, several
times faster than zlib at a ratio close to zlib's level 6 on image data; zlib-ng for levels 0 and
4-9, the same levels as zlib, 2-3x faster; ISA-L inflates every level. Both are small core
dependencies; stdlib zlib stands in when one cannot be imported. Every one releases the GIL.

Decoding is bounded through zlib's ``max_length``: nothing past ``max_size`` is ever inflated.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any, ClassVar

from bigarrays.codecs.bytes_bytes import (
    Buffer,
    BytesBytesCodec,
    TooLarge,
    is_int,
    raise_corrupt,
    read_config,
)
from bigarrays.errors import CorruptChunkError

MAGIC = b"\x1f\x8b"
DEFAULT_LEVEL = 6


def deflater(level: int, wbits: int) -> Callable[[Buffer], bytes]:
    """A deflate compressor at ``level`` (0-9): ISA-L for 1-3, zlib-ng (or zlib) otherwise.

    ``wbits`` picks the framing: 31 a gzip member (what HTTP clients expect), 15 a zlib stream
    (what a png's IDAT holds). ISA-L has levels 0-3, and its 0 expands noisy image data, so only
    1-3 go to it; zlib-ng keeps zlib's meaning of every level and is several times faster.
    """
    if 1 <= level <= 3:
        try:
            from isal import isal_zlib

            def isal_deflate(data: Buffer) -> bytes:
                return isal_zlib.compress(data, level, wbits=wbits)

            return isal_deflate
        except ImportError:  # pragma: no cover - isal is a core dependency
            pass
    zmod: Any = zlib
    try:
        from zlib_ng import zlib_ng

        zmod = zlib_ng
    except ImportError:  # pragma: no cover - zlib-ng is a core dependency
        pass

    def zlib_deflate(data: Buffer) -> bytes:
        compressor = zmod.compressobj(level, zmod.DEFLATED, wbits)
        out: bytes = compressor.compress(data) + compressor.flush()
        return out

    return zlib_deflate


def inflate_module() -> Any:
    """ISA-L's zlib-compatible module, or zlib's when ISA-L is missing."""
    try:
        from isal import isal_zlib
    except ImportError:  # pragma: no cover - isal is a core dependency
        return zlib
    return isal_zlib


def compress(data: Buffer, level: int = DEFAULT_LEVEL) -> bytes:
    """``data`` as one gzip member."""
    return deflater(level, 31)(data)


def _gunzip(data: bytes, max_size: int | None) -> bytes:
    inflate = inflate_module()
    # wbits=47 accepts gzip or zlib headers; several concatenated gzip members are legal
    # (``gzip`` on the command line makes them), so keep decoding while input remains.
    out = []
    rest = data
    budget = max_size
    while rest:
        d = inflate.decompressobj(47)
        if budget is None:
            out.append(d.decompress(rest))
        else:
            # One byte more than allowed: getting it is how a bomb shows, and nothing past it
            # is ever inflated.
            part = d.decompress(rest, budget + 1)
            if len(part) > budget:
                raise TooLarge
            budget -= len(part)
            out.append(part)
        if not d.eof:
            raise ValueError("the stream ends before the end of the gzip member")
        rest = d.unused_data
    return b"".join(out) if len(out) != 1 else out[0]


def decompress(data: bytes, key: str = "", max_size: int | None = None) -> bytes:
    """The bytes that gzip members (or a zlib stream) ``data`` hold.

    Damage, or more than ``max_size`` bytes of output, raise :class:`CorruptChunkError` naming
    ``key``.
    """
    if not data:
        raise CorruptChunkError(key, "empty gzip data")
    try:
        return _gunzip(data, max_size)
    except Exception as exc:
        raise_corrupt(exc, "gzip data", key, len(data), max_size)


def gunzip_into(data: Buffer, out: memoryview) -> int | None:
    """Inflate the gzip member ``data`` into ``out`` if it holds exactly ``len(out)`` bytes.

    The zero-allocation path of gzip'd raw chunks: libdeflate (through imagecodecs) inflates
    straight into the caller's buffer, ~30% faster than ISA-L's ``decompress`` into a new bytes
    object, and without the GIL. Returns the number of bytes (``len(out)``), after checking the
    member's CRC-32 and size; None whenever this fast path does not apply (a header with optional
    fields, several members, another size, damage), and the caller then decodes with
    :func:`decompress`, which names what is wrong.
    """
    n = len(out)
    if len(data) < 18 or data[:4] != b"\x1f\x8b\x08\x00":  # magic, deflate, no optional fields
        return None
    if int.from_bytes(data[-4:], "little") != n & 0xFFFFFFFF:
        return None
    try:
        from imagecodecs import deflate_decode
    except ImportError:  # pragma: no cover - imagecodecs is a core dependency
        return None
    try:
        # A view, not a slice: no copy of the stream (the stub asks for bytes; any buffer works).
        got = deflate_decode(memoryview(data)[10:-8], out=out, raw=True)  # type: ignore[arg-type]
    except Exception:  # DeflateError: damaged, or more bytes than ``out`` holds
        return None
    if len(got) != n or inflate_module().crc32(out) != int.from_bytes(data[-8:-4], "little"):
        return None
    return n


def _zlib_header(data: bytes) -> bool:
    """Whether ``data`` starts with a zlib stream's header: deflate, no preset dictionary."""
    return (
        len(data) >= 6
        and data[0] & 0x0F == 8
        and not data[1] & 0x20
        and ((data[0] << 8) | data[1]) % 31 == 0
    )


def inflate_into(data: bytes, out: memoryview) -> int | None:
    """Inflate a gzip member or a zlib stream ``data`` into ``out`` if it holds exactly
    ``len(out)`` bytes: :func:`gunzip_into` for gzip, libdeflate's zlib decoder (which checks the
    stream's Adler-32) for zlib, what HDF5's deflate filter and numcodecs' ``zlib`` write.

    Returns ``len(out)``; None whenever this path does not apply or the stream is damaged, and the
    caller then decodes with :func:`decompress`, which names what is wrong.
    """
    if data[:2] == MAGIC:
        return gunzip_into(data, out)
    if not _zlib_header(data):
        return None
    try:
        from imagecodecs import deflate_decode
    except ImportError:  # pragma: no cover - imagecodecs is a core dependency
        return None
    try:
        got = deflate_decode(data, out=out)
    except Exception:  # DeflateError: damaged, or more bytes than ``out`` holds
        return None
    # libdeflate stops at the end of the stream and ignores what follows; the stream's Adler-32
    # in the last four bytes proves that nothing does (8 us for 512 KiB through zlib-ng).
    if len(got) != len(out) or _adler32(out) != int.from_bytes(data[-4:], "big"):
        return None
    return len(out)


def _adler32(data: Buffer) -> int:
    try:
        from zlib_ng import zlib_ng
    except ImportError:  # pragma: no cover - zlib-ng is a core dependency
        return zlib.adler32(data)
    return int(zlib_ng.adler32(data))


class GzipCodec(BytesBytesCodec):
    """Zarr v3's ``gzip`` codec: one gzip member at ``level`` (0-9)."""

    name: ClassVar[str] = "gzip"

    def __init__(self, level: int = 5) -> None:
        self.level = level
        self._deflate = deflater(level, 31)

    @classmethod
    def from_config(cls, config: Any) -> GzipCodec:
        conf = read_config(
            cls.name, config, {"level": (lambda v: is_int(v) and 0 <= v <= 9, "an integer 0-9")}
        )
        # zarr-python's default when the level is left out.
        return cls(conf.get("level", 5))

    def configuration(self) -> dict[str, Any]:
        return {"level": self.level}

    def encode(self, data: Buffer) -> bytes:
        return self._deflate(data)

    def decode(self, data: bytes, key: str = "", max_size: int | None = None) -> bytes:
        return decompress(data, key, max_size)

    def decode_into(self, data: Buffer, out: memoryview) -> bool:
        return gunzip_into(data, out) is not None
