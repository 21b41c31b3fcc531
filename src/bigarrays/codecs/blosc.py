"""``blosc``: a bytes <-> bytes compression that bigarrays applies on top of any encoding.

Blosc splits a chunk into blocks, optionally shuffles the bytes (or bits) of multi-byte values so
that like bytes sit together, and compresses each block with an inner codec: ``blosclz``, ``lz4``,
``lz4hc``, ``zstd`` or ``zlib``. It is the speed end of the range (BigArrays.jl's default), but it
is bigarrays' own: Neuroglancer, TensorStore and CloudVolume cannot read a blosc volume, and
``create`` warns so. The choice is recorded in the scale's ``"bigarrays"`` member of the info, so
every bigarrays reader decodes it without being told.

This goes through python-blosc (c-blosc 1.x, extra ``blosc``), told to release the GIL and to use
one thread per call: the chunk pipeline already runs one call per thread. Its frame holds the
sizes and codec of the data; they are checked against the chunk before anything is decoded.
"""

from __future__ import annotations

import struct
import threading
from typing import Any

from bigarrays.errors import CorruptChunkError, MissingDependencyError, UnsupportedError

#: Inner codecs, fastest first.
CNAMES = ("blosclz", "lz4", "lz4hc", "zstd", "zlib")
#: Shuffle filters: none, byte shuffle (for multi-byte values), bit shuffle.
SHUFFLES = ("none", "byte", "bit")
DEFAULT_CNAME = "lz4"
DEFAULT_LEVEL = 5
LEVELS = (1, 9)
#: The blosc 1 frame header: version, codec version, flags, typesize, nbytes, blocksize, cbytes.
HEADER = struct.Struct("<BBBBIII")
#: Bytes a blosc 1 frame adds at most to the data it holds (c-blosc's BLOSC_MAX_OVERHEAD): an
#: incompressible buffer is stored as a copy behind the 16-byte header.
MAX_OVERHEAD = 16
#: The inner codec's code, kept in the top three bits of the flags byte.
_CODES = {0: "blosclz", 1: "lz4", 2: "snappy", 3: "zlib", 4: "zstd"}

_setup_lock = threading.Lock()
_module: Any = None


def _blosc() -> Any:
    global _module
    if _module is None:
        try:
            import blosc
        except ImportError:
            raise MissingDependencyError("blosc", "blosc", "blosc compression") from None
        with _setup_lock:
            blosc.set_releasegil(True)
            blosc.set_nthreads(1)
            _module = blosc
    return _module


def default_shuffle(typesize: int) -> str:
    """Byte shuffle for multi-byte values, none for bytes (where it cannot help)."""
    return "byte" if typesize > 1 else "none"


def check(level: int | None, cname: str | None, shuffle: str | None) -> None:
    """Refuse options blosc does not have, with the ones it has."""
    if level is not None and (
        isinstance(level, bool) or not isinstance(level, int) or not LEVELS[0] <= level <= LEVELS[1]
    ):
        raise UnsupportedError(f"blosc levels run from {LEVELS[0]} to {LEVELS[1]}, got {level!r}")
    if cname is not None and cname not in CNAMES:
        raise UnsupportedError(f"unknown blosc codec {cname!r}; choose one of {', '.join(CNAMES)}")
    if shuffle is not None and shuffle not in SHUFFLES:
        raise UnsupportedError(
            f"unknown blosc shuffle {shuffle!r}; choose one of {', '.join(SHUFFLES)}"
        )


class BloscCompressor:
    """Compresses the encoded bytes of a chunk; ``typesize`` is the width shuffling works on."""

    def __init__(
        self,
        level: int | None = None,
        cname: str | None = None,
        shuffle: str | None = None,
        typesize: int = 1,
    ) -> None:
        check(level, cname, shuffle)
        self.level = DEFAULT_LEVEL if level is None else level
        self.cname = DEFAULT_CNAME if cname is None else cname
        self.shuffle = default_shuffle(typesize) if shuffle is None else shuffle
        self.typesize = max(1, min(typesize, 255))
        self._blosc = _blosc()
        self._shuffle_code = SHUFFLES.index(self.shuffle)

    def __repr__(self) -> str:
        return (
            f"BloscCompressor({self.cname}, level={self.level}, shuffle={self.shuffle}, "
            f"typesize={self.typesize})"
        )

    def encode(self, data: bytes | bytearray | memoryview) -> bytes:
        view = memoryview(data).cast("B")
        typesize = self.typesize if len(view) % self.typesize == 0 else 1
        out: bytes = self._blosc.compress(
            view, typesize=typesize, clevel=self.level, shuffle=self._shuffle_code,
            cname=self.cname,
        )  # fmt: skip
        return out

    def decode(
        self,
        data: bytes,
        key: str,
        expected_size: int | None = None,
        max_size: int | None = None,
    ) -> bytes:
        """The bytes ``data`` holds; :class:`CorruptChunkError` naming ``key`` if it cannot be.

        ``expected_size``, when known (a raw chunk's), and ``max_size`` (the most the chunk's
        encoding can take) are checked against the frame's header before anything is decoded:
        c-blosc allocates what the header announces, so a 40-byte frame could ask for 4 GiB.
        """
        if len(data) < HEADER.size:
            raise CorruptChunkError(key, f"{len(data)} bytes is too short for a blosc frame")
        version, _, flags, _, nbytes, _, cbytes = HEADER.unpack_from(data)
        code = flags >> 5
        if version not in (1, 2) or code not in _CODES:
            raise CorruptChunkError(
                key, f"not a blosc frame (version {version}, unknown compression tag {code})"
            )
        if cbytes != len(data):
            raise CorruptChunkError(
                key, f"blosc frame says it is {cbytes} bytes long, but {len(data)} were stored"
            )
        if expected_size is not None and nbytes != expected_size:
            raise CorruptChunkError(
                key, f"blosc frame holds {nbytes} bytes, expected {expected_size}"
            )
        if max_size is not None and nbytes > max_size:
            raise CorruptChunkError(
                key, f"blosc frame holds {nbytes} bytes, more than the {max_size} expected at most"
            )
        if _CODES[code] not in self._blosc.cnames:
            raise CorruptChunkError(
                key, f"blosc frame uses {_CODES[code]!r}, which this blosc library lacks"
            )
        try:
            out: bytes = self._blosc.decompress(data)
        except Exception as exc:  # RuntimeError, ValueError, SystemError from c-blosc
            raise CorruptChunkError(key, f"cannot decode blosc frame: {exc}") from None
        if len(out) != nbytes:
            raise CorruptChunkError(key, f"blosc frame decoded to {len(out)} bytes, not {nbytes}")
        return out
