"""brotli (``br``): the densest of the browser-decoded compressions, through Google's ``brotli``
package (extra ``brotli``).

Decoding is bounded through brotli's ``output_buffer_limit``: a 405-byte object that would
inflate to 300 MiB stops after ``max_size`` bytes.
"""

from __future__ import annotations

from typing import Any

from bigarrays.codecs.bytes_bytes import Buffer, TooLarge, raise_corrupt
from bigarrays.errors import CorruptChunkError, MissingDependencyError

DEFAULT_LEVEL = 5


def _brotli() -> Any:
    try:
        import brotli
    except ImportError:
        raise MissingDependencyError("brotli", "brotli", "brotli (br) compression") from None
    return brotli


def compress(data: Buffer, level: int = DEFAULT_LEVEL) -> bytes:
    """``data`` as a brotli stream at quality ``level`` (0-11)."""
    out: bytes = _brotli().compress(bytes(data), quality=level)
    return out


def _unbrotli(data: bytes, max_size: int | None) -> bytes:
    brotli = _brotli()
    try:
        if max_size is None:
            out: bytes = brotli.decompress(data)
            return out
        d = brotli.Decompressor()
        out = d.process(data, output_buffer_limit=max_size + 1)
        if len(out) > max_size:
            raise TooLarge
        if not d.is_finished():
            raise ValueError("the stream ends before the end of the brotli stream")
        return out
    except brotli.error as exc:
        raise ValueError(str(exc)) from None


def decompress(data: bytes, key: str = "", max_size: int | None = None) -> bytes:
    """The bytes that the brotli stream ``data`` holds.

    Damage, or more than ``max_size`` bytes of output, raise :class:`CorruptChunkError` naming
    ``key``; a missing ``brotli`` raises :class:`MissingDependencyError`.
    """
    if not data:
        raise CorruptChunkError(key, "empty brotli data")
    try:
        return _unbrotli(data, max_size)
    except Exception as exc:
        raise_corrupt(exc, "brotli data", key, len(data), max_size)
