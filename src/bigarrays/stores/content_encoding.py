"""Transfer encodings of whole objects (HTTP ``Content-Encoding``), shared by every store.

On object stores the encoding travels as a header; on a local disk there is no header, so the
encoding is kept in the file name the way CloudVolume does (``KEY.gz``). Stores decode on read, so
the layers above always see plain bytes.
"""

from __future__ import annotations

import zlib

from bigarrays.errors import CorruptChunkError, UnsupportedError

#: Encoding name -> file suffix used where there are no headers (local disk, zip).
SUFFIXES: dict[str, str] = {"gzip": ".gz"}

GZIP_MAGIC = b"\x1f\x8b"


def known() -> list[str]:
    return sorted(SUFFIXES)


def check(encoding: str | None) -> None:
    if encoding is not None and encoding not in SUFFIXES:
        raise UnsupportedError(
            f"unknown content encoding {encoding!r}; known: {', '.join(known())}"
        )


def encode(
    data: bytes | bytearray | memoryview, encoding: str | None, level: int | None = None
) -> bytes | bytearray | memoryview:
    """Compress ``data`` with ``encoding`` (None returns it unchanged)."""
    if encoding is None:
        return data
    check(encoding)
    # wbits=31 writes a gzip member (header + deflate + crc32), the format HTTP clients expect.
    compressor = zlib.compressobj(6 if level is None else level, zlib.DEFLATED, 31)
    return compressor.compress(data) + compressor.flush()


def decode(data: bytes, encoding: str | None, key: str = "") -> bytes:
    """Undo ``encoding``; a damaged stream raises :class:`CorruptChunkError` naming ``key``."""
    if encoding is None:
        return data
    check(encoding)
    try:
        # wbits=47 accepts gzip or zlib headers; several concatenated gzip members are legal
        # (``gzip`` on the command line makes them), so keep decoding while input remains.
        out = []
        rest = data
        while rest:
            d = zlib.decompressobj(47)
            out.append(d.decompress(rest))
            if not d.eof:
                raise zlib.error("stream ends before the end of the gzip member")
            rest = d.unused_data
        return b"".join(out) if len(out) != 1 else out[0]
    except zlib.error as exc:
        raise CorruptChunkError(key, f"cannot decode {encoding} content: {exc}") from None


def sniff(data: bytes) -> str | None:
    """The encoding that ``data`` visibly starts with (gzip has a magic number), else None."""
    return "gzip" if data[:2] == GZIP_MAGIC else None
