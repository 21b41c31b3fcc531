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
from typing import Any, ClassVar

import numpy as np

from bigarrays.codecs.bytes_bytes import Buffer, BytesBytesCodec, is_int, read_config
from bigarrays.errors import CorruptChunkError, MissingDependencyError, UnsupportedError

#: Inner codecs, fastest first.
CNAMES = ("blosclz", "lz4", "lz4hc", "zstd", "zlib")
#: Shuffle filters: none, byte shuffle (for multi-byte values), bit shuffle.
SHUFFLES = ("none", "byte", "bit")
DEFAULT_CNAME = "lz4"
DEFAULT_LEVEL = 5
#: The levels bigarrays offers for precomputed volumes; a frame may also have 0 (stored as is).
LEVELS = (1, 9)
FRAME_LEVELS = (0, 9)
#: The blosc 1 frame header: version, codec version, flags, typesize, nbytes, blocksize, cbytes.
HEADER = struct.Struct("<BBBBIII")
#: Bytes a blosc 1 frame adds at most to the data it holds (c-blosc's BLOSC_MAX_OVERHEAD): an
#: incompressible buffer is stored as a copy behind the 16-byte header.
MAX_OVERHEAD = 16
#: The inner codec's code, kept in the top three bits of the flags byte.
_CODES = {0: "blosclz", 1: "lz4", 2: "snappy", 3: "zlib", 4: "zstd"}

_setup_lock = threading.Lock()
_module: Any = None
#: Held while c-blosc's process-wide block size is not its automatic 0.
_blocksize_lock = threading.Lock()


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


def check(
    level: int | None, cname: str | None, shuffle: str | None, levels: tuple[int, int] = LEVELS
) -> None:
    """Refuse options blosc does not have, with the ones it has."""
    if level is not None and (
        isinstance(level, bool) or not isinstance(level, int) or not levels[0] <= level <= levels[1]
    ):
        raise UnsupportedError(f"blosc levels run from {levels[0]} to {levels[1]}, got {level!r}")
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
        blocksize: int = 0,
    ) -> None:
        check(level, cname, shuffle, FRAME_LEVELS)
        self.level = DEFAULT_LEVEL if level is None else level
        self.cname = DEFAULT_CNAME if cname is None else cname
        self.shuffle = default_shuffle(typesize) if shuffle is None else shuffle
        self.typesize = max(1, min(typesize, 255))
        #: Bytes per block; 0 lets c-blosc choose (what nearly every writer does).
        self.blocksize = blocksize
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
        return self.compress_as(view, typesize)

    def compress_as(self, data: bytes | bytearray | memoryview, typesize: int) -> bytes:
        """``data`` compressed with values of ``typesize`` bytes for the shuffle."""
        view = memoryview(data).cast("B")
        if self.blocksize:
            return self._encode_blocked(view, typesize)
        out: bytes = self._blosc.compress(
            view, typesize=typesize, clevel=self.level, shuffle=self._shuffle_code,
            cname=self.cname,
        )  # fmt: skip
        return out

    def _encode_blocked(self, view: memoryview, typesize: int) -> bytes:
        # python-blosc takes the block size only as a process-wide setting, so these encodes
        # take turns (a chosen block size is rare). Another thread's automatic-size compression
        # that runs meanwhile may pick the setting up: its frame records its block size, so it
        # still decodes anywhere, only its bytes differ from a lone writer's.
        with _blocksize_lock:
            self._blosc.set_blocksize(self.blocksize)
            try:
                out: bytes = self._blosc.compress(
                    view, typesize=typesize, clevel=self.level, shuffle=self._shuffle_code,
                    cname=self.cname,
                )  # fmt: skip
            finally:
                self._blosc.set_blocksize(0)
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
        nbytes = self._check_frame(data, key, expected_size, max_size)
        try:
            out: bytes = self._blosc.decompress(data)
        except Exception as exc:  # RuntimeError, ValueError, SystemError from c-blosc
            raise CorruptChunkError(key, f"cannot decode blosc frame: {exc}") from None
        if len(out) != nbytes:
            raise CorruptChunkError(key, f"blosc frame decoded to {len(out)} bytes, not {nbytes}")
        return out

    def decode_into(self, data: Buffer, out: memoryview) -> bool:
        """Decode the frame ``data`` into ``out`` if it holds exactly ``len(out)`` bytes; False
        otherwise: see :meth:`BytesBytesCodec.decode_into`."""
        try:
            self._check_frame(data, "", len(out), None)
        except CorruptChunkError:
            return False
        # c-blosc writes the frame's size, checked above to be the buffer's, and no more.
        target = np.frombuffer(out, np.uint8)
        try:
            return bool(self._blosc.decompress_ptr(data, target.ctypes.data) == len(out))
        except Exception:  # damage: decode names it
            return False

    def _check_frame(
        self, data: Buffer, key: str, expected_size: int | None, max_size: int | None
    ) -> int:
        """The size the frame ``data`` decodes to, after checking its header."""
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
        return int(nbytes)


#: Zarr v3's shuffle names -> bigarrays'.
_ZARR_SHUFFLES = {"noshuffle": "none", "shuffle": "byte", "bitshuffle": "bit"}


class BloscCodec(BytesBytesCodec):
    """Zarr v3's ``blosc`` codec over :class:`BloscCompressor`.

    Its frames are byte for byte zarr-python's (python-blosc and numcodecs carry the same c-blosc).
    """

    name: ClassVar[str] = "blosc"

    def __init__(
        self, cname: str, clevel: int, shuffle: str, typesize: int, blocksize: int = 0
    ) -> None:
        self.cname = cname
        self.clevel = clevel
        self.shuffle = shuffle
        self.typesize = typesize
        self.blocksize = blocksize
        self._compressor = BloscCompressor(
            clevel, cname, _ZARR_SHUFFLES[shuffle], typesize=typesize, blocksize=blocksize
        )

    @classmethod
    def from_config(cls, config: Any, itemsize: int = 1) -> BloscCodec:
        """The codec of a JSON ``configuration``; what it leaves out takes zarr-python's
        defaults for values of ``itemsize`` bytes."""
        conf = read_config(cls.name, config, {
            "cname": (lambda v: v in (*CNAMES, "snappy"), f"one of {', '.join(CNAMES)}"),
            "clevel": (lambda v: is_int(v) and 0 <= v <= 9, "an integer 0-9"),
            "shuffle": (lambda v: v in _ZARR_SHUFFLES, f"one of {', '.join(_ZARR_SHUFFLES)}"),
            "typesize": (lambda v: is_int(v) and v >= 1, "a positive integer"),
            "blocksize": (lambda v: is_int(v) and v >= 0, "a non-negative integer"),
        })  # fmt: skip
        if conf.get("cname") == "snappy":
            raise UnsupportedError(
                f"blosc with snappy is not in this c-blosc build; it has {', '.join(CNAMES)}"
            )
        shuffle = conf.get("shuffle", "shuffle" if itemsize > 1 else "bitshuffle")
        return cls(
            conf.get("cname", "zstd"),
            conf.get("clevel", 5),
            shuffle,
            conf.get("typesize", itemsize),
            conf.get("blocksize", 0),
        )

    def configuration(self) -> dict[str, Any]:
        return {
            "cname": self.cname,
            "clevel": self.clevel,
            "shuffle": self.shuffle,
            "typesize": self.typesize,
            "blocksize": self.blocksize,
        }

    def max_encoded_size(self, size: int) -> int:
        return size + MAX_OVERHEAD

    def encode(self, data: Buffer) -> bytes:
        # The configured width even when it does not divide the data (c-blosc copies the
        # remainder unshuffled), as zarr-python does.
        return self._compressor.compress_as(data, self._compressor.typesize)

    def decode(self, data: bytes, key: str = "", max_size: int | None = None) -> bytes:
        return self._compressor.decode(data, key, max_size=max_size)

    def decode_into(self, data: Buffer, out: memoryview) -> bool:
        return self._compressor.decode_into(data, out)
