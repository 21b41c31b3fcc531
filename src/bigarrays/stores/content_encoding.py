"""Transfer encodings of whole objects (HTTP ``Content-Encoding``), shared by every store.

On object stores the encoding travels as a header; on a local disk there is no header, so the
encoding is kept in the file name the way CloudVolume does (``KEY.gz``, ``KEY.br``, ``KEY.zstd``).
Stores decode on read, so the layers above always see plain bytes.

Every encoding here is one a browser (and so Neuroglancer) decodes by itself: ``gzip``, ``br``
(brotli) and ``zstd``. Each uses the fastest binding that writes the standard stream, measured on
EM-like and label chunks (see ``bench/codecs.py``):

- gzip: python-isal (ISA-L) for levels 1-3, several times faster than zlib at a ratio close
  to zlib's level 6 on image data; zlib-ng for levels 4-9, the same levels as zlib, 2-3x faster;
  ISA-L inflates every level. Both are small core dependencies; stdlib zlib stands in when one
  cannot be imported. The output is a standard gzip member that browsers, CloudVolume and
  ``gzip -d`` read.
- zstd: the ``zstandard`` package (extra ``zstd``); br: Google's ``brotli`` (extra ``brotli``).

Every one of them releases the GIL while it works, so the chunk pipeline's threads scale.

Decoding takes a ``max_size``: a reader that knows how big a value can be (a chunk's decoded size)
passes it, and decoding stops with :class:`~bigarrays.errors.CorruptChunkError` as soon as the
output passes it, through each library's bounded API (zlib's ``max_length``, brotli's
``output_buffer_limit``, a bounded zstd read). A "decompression bomb" (405 bytes of brotli that
inflate to 300 MiB) then costs no more memory than one honest chunk.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from bigarrays.errors import CorruptChunkError, MissingDependencyError, UnsupportedError

#: Encoding name -> file suffix used where there are no headers (local disk, zip). The names are
#: the HTTP ``Content-Encoding`` values and CloudVolume's ``compress=`` values.
SUFFIXES: dict[str, str] = {"gzip": ".gz", "br": ".br", "zstd": ".zstd"}


def keys_of(names: Iterable[str], prefix: str) -> Iterator[str]:
    """The keys of stored ``names`` (``KEY`` or ``KEY.gz``, ``.br``, ``.zstd``) that start with
    ``prefix``, each once, in the order of ``names``."""
    suffixes = tuple(SUFFIXES.values())
    seen: set[str] = set()
    for name in names:
        for suffix in suffixes:
            if name.endswith(suffix):
                name = name[: -len(suffix)]
                break
        if name.startswith(prefix) and name not in seen:
            seen.add(name)
            yield name


#: Encoding name -> (lowest level, highest level, default level).
LEVELS: dict[str, tuple[int, int, int]] = {
    "gzip": (1, 9, 6),
    "br": (0, 11, 5),
    # zstd's negative levels are its "fast" modes; 0 means its default, 3.
    "zstd": (-7, 22, 3),
}

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

#: A frame header that announces more than this many bytes is taken as damage, not data.
_MAX_DECODED = 1 << 36

Buffer = bytes | bytearray | memoryview


def known() -> list[str]:
    return sorted(SUFFIXES)


def check(encoding: str | None) -> None:
    if encoding is not None and encoding not in SUFFIXES:
        raise UnsupportedError(
            f"unknown content encoding {encoding!r}; known: {', '.join(known())}"
        )


def check_level(encoding: str | None, level: int | None) -> None:
    """Refuse a level the encoding does not have (None always means its default)."""
    check(encoding)
    if level is None:
        return
    if encoding is None:
        raise UnsupportedError(f"compression_level={level} needs a compression")
    low, high, _ = LEVELS[encoding]
    if isinstance(level, bool) or not isinstance(level, int) or not low <= level <= high:
        raise UnsupportedError(
            f"{encoding} compression levels run from {low} to {high}, got {level!r}"
        )


def default_level(encoding: str) -> int:
    check(encoding)
    return LEVELS[encoding][2]


# -- gzip ----------------------------------------------------------------------------------------


def deflater(level: int, wbits: int) -> Callable[[Buffer], bytes]:
    """A deflate compressor at ``level`` (1-9): ISA-L for 1-3, zlib-ng (or zlib) above.

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


def _inflate_module() -> Any:
    try:
        from isal import isal_zlib
    except ImportError:  # pragma: no cover - isal is a core dependency
        return zlib
    return isal_zlib


class _TooLarge(Exception):
    """Decoded output passed the caller's ``max_size``."""


def _gunzip(data: bytes, max_size: int | None = None) -> bytes:
    inflate = _inflate_module()
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
                raise _TooLarge
            budget -= len(part)
            out.append(part)
        if not d.eof:
            raise ValueError("the stream ends before the end of the gzip member")
        rest = d.unused_data
    return b"".join(out) if len(out) != 1 else out[0]


def gunzip_into(data: bytes, out: memoryview) -> int | None:
    """Inflate the gzip member ``data`` into ``out`` if it holds exactly ``len(out)`` bytes.

    The zero-allocation path of gzip'd raw chunks: libdeflate (through imagecodecs) inflates
    straight into the caller's buffer, ~30% faster than ISA-L's ``decompress`` into a new bytes
    object, and without the GIL. Returns the number of bytes (``len(out)``), after checking the
    member's CRC-32 and size; None whenever this fast path does not apply (a header with optional
    fields, several members, another size, damage), and the caller then decodes with
    :func:`decode`, which names what is wrong.
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
    if len(got) != n or _inflate_module().crc32(out) != int.from_bytes(data[-8:-4], "little"):
        return None
    return n


# -- zstd ----------------------------------------------------------------------------------------

_local = threading.local()


def _zstandard() -> Any:
    try:
        import zstandard
    except ImportError:
        raise MissingDependencyError("zstandard", "zstd", "zstd compression") from None
    return zstandard


def _zstd_compress(data: Buffer, level: int) -> bytes:
    zstandard = _zstandard()
    # A compressor holds a context worth reusing, but is not safe to share between threads.
    cache: dict[int, Any] = _local.__dict__.setdefault("zstd", {})
    cctx = cache.get(level)
    if cctx is None:
        cctx = cache[level] = zstandard.ZstdCompressor(level=level, write_checksum=True)
    out: bytes = cctx.compress(data)
    return out


def _zstd_decompress(data: bytes, max_size: int | None = None) -> bytes:
    zstandard = _zstandard()
    size = zstandard.frame_content_size(data)
    if size > _MAX_DECODED:
        raise ValueError(f"the zstd frame announces {size} bytes")
    if max_size is not None and size > max_size:
        raise _TooLarge
    dctx = zstandard.ZstdDecompressor()
    if size >= 0:
        try:
            # The output buffer is the announced size: a frame that holds more fails here.
            out: bytes = dctx.decompress(data, allow_extra_data=False)
            return out
        except zstandard.ZstdError:
            pass  # several frames, or damage: the frame-by-frame path below tells which
    if max_size is not None:
        # No size announced, or several frames: measure with a bounded read first (it cannot
        # tell a cut stream from a whole one, which the frame-by-frame pass below does).
        with dctx.stream_reader(data, read_across_frames=True) as reader:
            if len(reader.read(max_size + 1)) > max_size:
                raise _TooLarge
    parts = []
    rest = data
    while rest:
        d = dctx.decompressobj()
        parts.append(d.decompress(rest))
        if not d.eof:
            raise ValueError("the stream ends before the end of the zstd frame")
        rest = d.unused_data
    return b"".join(parts)


# -- brotli --------------------------------------------------------------------------------------


def _brotli() -> Any:
    try:
        import brotli
    except ImportError:
        raise MissingDependencyError("brotli", "brotli", "brotli (br) compression") from None
    return brotli


# -- the interface -------------------------------------------------------------------------------


def encode(data: Buffer, encoding: str | None, level: int | None = None) -> Buffer:
    """Compress ``data`` with ``encoding`` at ``level`` (None: unchanged / the default level)."""
    if encoding is None:
        return data
    check_level(encoding, level)
    lvl = default_level(encoding) if level is None else level
    if encoding == "gzip":
        return deflater(lvl, 31)(data)
    if encoding == "zstd":
        return _zstd_compress(data, lvl)
    out: bytes = _brotli().compress(bytes(data), quality=lvl)
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
            raise _TooLarge
        if not d.is_finished():
            raise ValueError("the stream ends before the end of the brotli stream")
        return out
    except brotli.error as exc:
        raise ValueError(str(exc)) from None


def decode(data: bytes, encoding: str | None, key: str = "", max_size: int | None = None) -> bytes:
    """Undo ``encoding``; damaged data or an unknown encoding raise :class:`CorruptChunkError`.

    An unknown encoding (a ``Content-Encoding`` header this version cannot undo) is reported
    against ``key``: the bytes are there but cannot be read as what they claim to be. With
    ``max_size``, decoding stops (:class:`CorruptChunkError`) once the output passes it.
    """
    if encoding is None:
        return data
    if encoding not in SUFFIXES:
        raise CorruptChunkError(
            key, f"unknown content encoding {encoding!r} (known: {', '.join(known())})"
        )
    if not data:
        raise CorruptChunkError(key, f"empty {encoding} content")
    try:
        if encoding == "gzip":
            return _gunzip(data, max_size)
        if encoding == "zstd":
            return _zstd_decompress(data, max_size)
        return _unbrotli(data, max_size)
    except MissingDependencyError:
        raise
    except _TooLarge:
        raise CorruptChunkError(
            key,
            f"{len(data)} bytes of {encoding} content decode to more than the "
            f"{max_size} bytes expected at most (a damaged or hostile object)",
        ) from None
    except MemoryError:
        raise CorruptChunkError(key, f"{encoding} content decodes to more than fits") from None
    except Exception as exc:
        # zlib.error, isal_zlib.error, ZstdError, brotli.error: all mean damaged content.
        raise CorruptChunkError(key, f"cannot decode {encoding} content: {exc}") from None


def sniff(data: bytes) -> str | None:
    """The encoding that ``data`` visibly starts with (gzip and zstd have magic numbers)."""
    if data[:2] == GZIP_MAGIC:
        return "gzip"
    if data[:4] == ZSTD_MAGIC:
        return "zstd"
    return None


def decode_stored(
    stored: tuple[bytes, str | None] | None, key: str, max_size: int | None = None
) -> bytes | None:
    """The plain bytes of a value found as ``(bytes, encoding)``, or None when not found.

    For stores that keep the encoding beside the value (a ``KEY.gz`` name): their ``get`` is
    their ``get_encoded`` followed by this. ``max_size`` bounds the decoding (see :func:`decode`).
    """
    if stored is None:
        return None
    data, encoding = stored
    return decode(data, encoding, key, max_size) if encoding else data
