"""Transfer encodings of whole objects (HTTP ``Content-Encoding``), shared by every store.

On object stores the encoding travels as a header; on a local disk there is no header, so the
encoding is kept in the file name the way CloudVolume does (``KEY.gz``, ``KEY.br``, ``KEY.zstd``).
Stores decode on read, so the layers above always see plain bytes.

Every encoding here is one a browser (and so Neuroglancer) decodes by itself: ``gzip``, ``br``
(brotli) and ``zstd``. The bytes are the business of the codec modules
(:mod:`bigarrays.codecs.gzip`, :mod:`~bigarrays.codecs.zstd`, :mod:`~bigarrays.codecs.brotli`);
this module maps the names, levels, headers and file suffixes of transfer encodings onto them.

Decoding takes a ``max_size``: a reader that knows how big a value can be (a chunk's decoded size)
passes it, and decoding stops with :class:`~bigarrays.errors.CorruptChunkError` as soon as the
output passes it. A "decompression bomb" (405 bytes of brotli that inflate to 300 MiB) then costs
no more memory than one honest chunk.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from bigarrays.codecs import brotli, gzip, zstd
from bigarrays.codecs.bytes_bytes import Buffer
from bigarrays.errors import CorruptChunkError, UnsupportedError

# The gzip helpers that callers of this module used before the codecs had modules of their own.
deflater = gzip.deflater
gunzip_into = gzip.gunzip_into

#: Encoding name -> file suffix used where there are no headers (local disk, zip). The names are
#: the HTTP ``Content-Encoding`` values and CloudVolume's ``compress=`` values.
SUFFIXES: dict[str, str] = {"gzip": ".gz", "br": ".br", "zstd": ".zstd"}


#: The ``encoding`` of a read that does not know how its value was stored: every name is tried.
ANY_ENCODING = "*"


def stored_names(name: str, encoding: str | None = ANY_ENCODING) -> list[tuple[str, str | None]]:
    """Where a store that keeps the encoding in the name (``KEY.gz``) looks for the value of
    ``name``, and the encoding each place holds: ``name`` itself (plain) first, then a name per
    suffix. A reader that knows the ``encoding`` its writers use (None: plain) gets that name
    alone, so that a missing key costs one lookup, not one per suffix."""
    if encoding == ANY_ENCODING:
        return [(name, None)] + [(name + s, e) for e, s in SUFFIXES.items()]
    return [(name if encoding is None else name + SUFFIXES[encoding], encoding)]


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

GZIP_MAGIC = gzip.MAGIC
ZSTD_MAGIC = zstd.MAGIC


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


def encode(data: Buffer, encoding: str | None, level: int | None = None) -> Buffer:
    """Compress ``data`` with ``encoding`` at ``level`` (None: unchanged / the default level)."""
    if encoding is None:
        return data
    check_level(encoding, level)
    lvl = default_level(encoding) if level is None else level
    if encoding == "gzip":
        return gzip.compress(data, lvl)
    if encoding == "zstd":
        return zstd.compress(data, lvl)
    return brotli.compress(data, lvl)


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
    if encoding == "gzip":
        return gzip.decompress(data, key, max_size)
    if encoding == "zstd":
        return zstd.decompress(data, key, max_size)
    return brotli.decompress(data, key, max_size)


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
