"""zstd: fast compression at gzip's ratio and better, through the ``zstandard`` package (extra
``zstd``), which releases the GIL.

Decoding is bounded: a frame that announces more than ``max_size`` bytes is refused before
anything is decoded, and frames that announce nothing are measured with a bounded read first.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar

from bigarrays.codecs.bytes_bytes import (
    Buffer,
    BytesBytesCodec,
    TooLarge,
    is_int,
    raise_corrupt,
    read_config,
)
from bigarrays.errors import CorruptChunkError, MissingDependencyError

MAGIC = b"\x28\xb5\x2f\xfd"
DEFAULT_LEVEL = 3
#: A frame header that announces more than this many bytes is taken as damage, not data.
_MAX_DECODED = 1 << 36

_local = threading.local()


def _zstandard() -> Any:
    try:
        import zstandard
    except ImportError:
        raise MissingDependencyError("zstandard", "zstd", "zstd compression") from None
    return zstandard


def available() -> bool:
    """Whether the ``zstandard`` package can be imported."""
    try:
        _zstandard()
    except MissingDependencyError:
        return False
    return True


def compress(data: Buffer, level: int = DEFAULT_LEVEL, checksum: bool = True) -> bytes:
    """``data`` as one zstd frame that announces its size (and ends in a checksum if asked)."""
    zstandard = _zstandard()
    # A compressor holds a context worth reusing, but is not safe to share between threads.
    cache: dict[tuple[int, bool], Any] = _local.__dict__.setdefault("zstd", {})
    cctx = cache.get((level, checksum))
    if cctx is None:
        cctx = cache[level, checksum] = zstandard.ZstdCompressor(
            level=level, write_checksum=checksum
        )
    out: bytes = cctx.compress(data)
    return out


def _decompressor() -> Any:
    # A new context per frame cost 6 % of decoding a 64³ chunk; like a compressor, one is not
    # safe to share between threads, and each call starts a new frame session on it.
    dctx = getattr(_local, "dctx", None)
    if dctx is None:
        dctx = _local.dctx = _zstandard().ZstdDecompressor()
    return dctx


def _unzstd(data: bytes, max_size: int | None) -> bytes:
    zstandard = _zstandard()
    size = zstandard.frame_content_size(data)
    if size > _MAX_DECODED:
        raise ValueError(f"the zstd frame announces {size} bytes")
    if max_size is not None and size > max_size:
        raise TooLarge
    dctx = _decompressor()
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
                raise TooLarge
    parts = []
    rest = data
    while rest:
        d = dctx.decompressobj()
        parts.append(d.decompress(rest))
        if not d.eof:
            raise ValueError("the stream ends before the end of the zstd frame")
        rest = d.unused_data
    return b"".join(parts)


def decompress_into(data: Buffer, out: memoryview) -> bool:
    """Decode the zstd frames ``data`` into ``out`` if they hold exactly ``len(out)`` bytes;
    False otherwise (more, fewer, damage, bytes after the last frame): see
    :meth:`BytesBytesCodec.decode_into`."""
    zstandard = _zstandard()
    n = len(out)
    try:
        with _decompressor().stream_reader(data, read_size=max(1, len(data)),
                                           read_across_frames=True) as reader:  # fmt: skip
            got = 0
            while got < n:
                k = reader.readinto(out[got:])
                if not k:
                    return False
                got += k
            return not reader.read(1)  # a longer stream, or another frame, is not this chunk
    except zstandard.ZstdError:
        return False


def decompress(data: bytes, key: str = "", max_size: int | None = None) -> bytes:
    """The bytes that the zstd frames ``data`` hold.

    Damage, or more than ``max_size`` bytes of output, raise :class:`CorruptChunkError` naming
    ``key``; a missing ``zstandard`` raises :class:`MissingDependencyError`.
    """
    if not data:
        raise CorruptChunkError(key, "empty zstd data")
    try:
        return _unzstd(data, max_size)
    except Exception as exc:
        raise_corrupt(exc, "zstd data", key, len(data), max_size)


class ZstdCodec(BytesBytesCodec):
    """Zarr v3's ``zstd`` codec: one frame at ``level``, with a checksum if ``checksum``."""

    name: ClassVar[str] = "zstd"

    def __init__(self, level: int = 0, checksum: bool = False) -> None:
        _zstandard()  # a missing package shows when the chain is built, not at the first chunk
        self.level = level
        self.checksum = checksum

    @classmethod
    def from_config(cls, config: Any) -> ZstdCodec:
        conf = read_config(cls.name, config, {
            "level": (lambda v: is_int(v) and -131072 <= v <= 22, "an integer up to 22"),
            "checksum": (lambda v: isinstance(v, bool), "true or false"),
        })  # fmt: skip
        # zarr-python's defaults: level 0 is zstd's default level (3).
        return cls(conf.get("level", 0), conf.get("checksum", False))

    def configuration(self) -> dict[str, Any]:
        return {"level": self.level, "checksum": self.checksum}

    def encode(self, data: Buffer) -> bytes:
        return compress(data, self.level, self.checksum)

    def decode(self, data: bytes, key: str = "", max_size: int | None = None) -> bytes:
        return decompress(data, key, max_size)

    def decode_into(self, data: Buffer, out: memoryview) -> bool:
        return decompress_into(data, out)
