"""The ``png`` encoding: uint8 or uint16 chunks of 1-4 channels as one lossless PNG image.

The image is ``x`` wide and ``y * z`` high (see :mod:`bigarrays.codecs.image2d`); 1-4 channels
are grey, grey+alpha, RGB and RGBA. ``png_level`` (0-9, default 6) is the deflate level.

Writing is done here, in NumPy: every row gets the PNG filter (none, sub, up, average or Paeth)
that leaves the smallest sum of absolute differences, the heuristic of libpng, computed for the
whole image at once; then the rows are deflated by ISA-L (levels 1-3) or zlib-ng (4-9), which
release the GIL. (pyspng-seunglab's own encoder cannot write 16-bit grey or RGB, hence ours.)

Reading goes through libspng, after the header has been checked against the chunk's shape, so no
image of a foreign size is ever allocated. imagecodecs' libspng extension exports libspng's
public C API; :class:`LibSpng` calls it through :mod:`ctypes`, which releases the GIL for each
call, so png chunks of every format (8- and 16-bit grey, grey+alpha, RGB, RGBA) decode on all
the pipeline's threads at once, in the PNG's own layout (``SPNG_FMT_PNG``) straight into the
output image, with libspng's checks of the chunk CRCs and the zlib Adler-32 on. Where those
symbols are not exported (another build, another platform), 8-bit grey, RGB and RGBA and 16-bit
RGBA go through ``imagecodecs.spng_decode`` (GIL released too), and the other formats through
``pyspng-seunglab`` (the reader CloudVolume uses), which holds the GIL. (imagecodecs' libpng
decoder would take every format and release the GIL too, but each failed decode drops a
reference to ``None``: on Python 3.11 a process that meets ~10,000 corrupt png chunks aborts.)
"""

from __future__ import annotations

import ctypes
import functools
import struct
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from bigarrays.codecs.base import ChunkCodec
from bigarrays.codecs.gzip import deflater
from bigarrays.codecs.image2d import check_image_size, from_image, image_size, to_image
from bigarrays.errors import CorruptChunkError, MissingDependencyError, UnsupportedError

DEFAULT_LEVEL = 6
SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: The last 12 bytes of every PNG: an empty IEND chunk and its CRC.
IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
#: channels -> PNG colour type: grey, grey+alpha, RGB, RGBA.
COLOR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}
#: PNG limits each side to 2**31 - 1 pixels.
MAX_SIDE = 2**31 - 1


def _spng_decode() -> Any:
    try:
        from imagecodecs import spng_decode
    except ImportError:
        raise MissingDependencyError("imagecodecs", "png", "the png encoding") from None
    return spng_decode


def _pyspng() -> Any:
    try:
        import pyspng
    except ImportError:
        raise MissingDependencyError("pyspng-seunglab", "png", "the png encoding") from None
    return pyspng


#: (bytes per sample, channels) that imagecodecs.spng_decode reads (without the GIL).
GIL_FREE_FORMATS = frozenset({(1, 1), (1, 3), (1, 4), (2, 4)})


class LibSpng:
    """libspng's C API, as exported by imagecodecs' libspng extension, called through ctypes.

    Every call releases the GIL (ctypes does so for foreign functions); the one that matters is
    :meth:`decode_into`, which inflates and unfilters the image.
    """

    #: ``SPNG_FMT_PNG``: the PNG's own channels and bit depth, 16-bit samples host-endian.
    FMT_PNG = 256

    def __init__(self, library: ctypes.CDLL) -> None:
        p, size, i32 = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int
        self._new = self._bind(library.spng_ctx_new, p, [i32])
        self._free = self._bind(library.spng_ctx_free, None, [p])
        self._set_buffer = self._bind(library.spng_set_png_buffer, i32, [p, p, size])
        self._size = self._bind(library.spng_decoded_image_size, i32, [p, i32, ctypes.c_void_p])
        self._decode = self._bind(library.spng_decode_image, i32, [p, p, size, i32, i32])
        self._strerror = self._bind(library.spng_strerror, ctypes.c_char_p, [i32])

    @staticmethod
    def _bind(function: Any, restype: Any, argtypes: list[Any]) -> Any:
        function.restype = restype
        function.argtypes = argtypes
        return function

    def decode_into(self, data: np.ndarray, out: np.ndarray) -> None:
        """Decode the PNG in ``data`` (uint8) into ``out``, which holds exactly its pixels.

        ValueError with libspng's reason when the PNG is damaged.
        """
        ctx = self._new(0)  # flags 0: CRCs and the Adler-32 are checked
        if not ctx:
            raise MemoryError("libspng could not make a decoding context")
        try:
            self._check(self._set_buffer(ctx, data.ctypes.data, data.nbytes))
            size = ctypes.c_size_t()
            self._check(self._size(ctx, self.FMT_PNG, ctypes.byref(size)))
            if size.value != out.nbytes:
                raise ValueError(f"decodes to {size.value} bytes, not {out.nbytes}")
            self._check(self._decode(ctx, out.ctypes.data, out.nbytes, self.FMT_PNG, 0))
        finally:
            self._free(ctx)

    def _check(self, code: int) -> None:
        if code:
            reason = self._strerror(code)
            raise ValueError(reason.decode() if reason else f"libspng error {code}")


@functools.cache
def libspng() -> LibSpng | None:
    """libspng from imagecodecs' binary, or None where it does not export libspng's API."""
    try:
        from imagecodecs import _spng

        return LibSpng(ctypes.CDLL(_spng.__file__))
    except (ImportError, OSError, AttributeError):
        return None


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(payload, zlib.crc32(kind))
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def filter_rows(rows: np.ndarray, bpp: int) -> np.ndarray:
    """PNG-filter each row of ``rows`` (height x row bytes, uint8); returns height x (1 + bytes).

    Every filter type is computed for the whole image (each depends on the unfiltered bytes
    only), and each row keeps the one whose bytes, read as signed, sum to the least magnitude.
    """
    height, nbytes = rows.shape
    raw = rows.astype(np.int16)
    left = np.zeros_like(raw)
    left[:, bpp:] = raw[:, :-bpp]
    up = np.zeros_like(raw)
    up[1:] = raw[:-1]
    upleft = np.zeros_like(raw)
    upleft[1:, bpp:] = raw[:-1, :-bpp]
    # Paeth: the neighbour closest to left + up - upleft, ties to left, then up.
    pa = np.abs(up - upleft)
    pb = np.abs(left - upleft)
    pc = np.abs(left + up - 2 * upleft)
    paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, upleft))
    candidates = np.stack(
        [raw, raw - left, raw - up, raw - ((left + up) >> 1), raw - paeth]
    ).astype(np.uint8)  # wraps modulo 256, as PNG filters do
    score = np.abs(candidates.view(np.int8).astype(np.int32)).sum(axis=2)
    best = np.argmin(score, axis=0)
    out = np.empty((height, nbytes + 1), dtype=np.uint8)
    out[:, 0] = best
    out[:, 1:] = np.take_along_axis(candidates, best[None, :, None], axis=0)[0]
    return out


def encode_png(image: np.ndarray, level: int = DEFAULT_LEVEL) -> bytes:
    """A PNG of a ``(height, width, channels)`` uint8 or uint16 image."""
    height, width, channels = image.shape
    itemsize = image.dtype.itemsize
    # PNG stores 16-bit samples big-endian.
    samples = image.astype(">u2", copy=False) if itemsize == 2 else image
    rows = np.ascontiguousarray(samples).view(np.uint8).reshape(height, width * channels * itemsize)
    filtered = filter_rows(rows, channels * itemsize) if level > 0 else _no_filter(rows)
    ihdr = struct.pack(">IIBBBBB", width, height, 8 * itemsize, COLOR_TYPES[channels], 0, 0, 0)
    idat = deflater(level, 15)(filtered.data)
    return (
        SIGNATURE + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")
    )


def _no_filter(rows: np.ndarray) -> np.ndarray:
    out = np.zeros((rows.shape[0], rows.shape[1] + 1), dtype=np.uint8)
    out[:, 1:] = rows
    return out


def read_header(data: bytes) -> tuple[int, int, int, int, int]:
    """``(width, height, bit depth, colour type, interlace)`` from the IHDR; ValueError if none."""
    if len(data) < 33 or data[:8] != SIGNATURE:
        raise ValueError("no PNG signature")
    length, kind = struct.unpack(">I4s", data[8:16])
    if kind != b"IHDR" or length != 13:
        raise ValueError("the first PNG chunk is not a 13-byte IHDR")
    width, height, depth, color, compression, filtering, interlace = struct.unpack(
        ">IIBBBBB", data[16:29]
    )
    if compression != 0 or filtering != 0 or interlace not in (0, 1):
        raise ValueError("unknown PNG compression, filter or interlace method")
    if not data.endswith(IEND):
        # Readers stop after the image data; a PNG cut short must not pass for a whole one.
        raise ValueError("the PNG does not end with its IEND chunk (truncated?)")
    return width, height, depth, color, interlace


class PngCodec(ChunkCodec):
    name = "png"
    option_names = ("png_level",)

    def __init__(self, dtype: np.dtype, num_channels: int, *, png_level: int | None = None) -> None:
        super().__init__(dtype, num_channels)
        level = DEFAULT_LEVEL if png_level is None else png_level
        if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 9:
            raise UnsupportedError(f"png_level must be an integer 0-9, got {level!r}")
        self.level = level
        self._wire = self.dtype.newbyteorder("=")
        self._decode_image = self._decoder(self.dtype.itemsize, num_channels)

    def _decoder(self, itemsize: int, channels: int) -> Callable[[bytes], np.ndarray]:
        """A function from a checked png to its ``(height, width, channels)`` image."""
        spng = libspng()
        if spng is not None:
            wire = self._wire

            def libspng_decode(data: bytes) -> np.ndarray:
                width, height = struct.unpack(">II", data[16:24])
                image = np.empty((height, width, channels), dtype=wire)
                spng.decode_into(np.frombuffer(data, dtype=np.uint8), image)
                return image

            return libspng_decode
        if (itemsize, channels) in GIL_FREE_FORMATS:
            spng_decode = _spng_decode()

            def imagecodecs_decode(data: bytes) -> np.ndarray:
                image: np.ndarray = spng_decode(data)  # (height, width) for grey
                return image.reshape(image.shape[0], image.shape[1], -1)

            return imagecodecs_decode
        # Always name the output format: pyspng's automatic choice misreads 16-bit grey (it
        # returns twice the pixels, reading past its buffer). libspng converts only to some
        # formats: 16-bit grey is read as grey+alpha, grey+alpha and 16-bit RGB as RGBA, and the
        # real channels are picked out.
        c = _pyspng().c
        fmt, pick = {
            (1, 2): (c.SPNG_FMT_RGBA8, [0, 3]),
            (2, 1): (c.SPNG_FMT_GA16, [0]),
            (2, 2): (c.SPNG_FMT_RGBA16, [0, 3]),
            (2, 3): (c.SPNG_FMT_RGBA16, [0, 1, 2]),
        }[itemsize, channels]

        def pyspng_decode(data: bytes) -> np.ndarray:
            width, height = struct.unpack(">II", data[16:24])
            image: np.ndarray = c.spng_decode_image_bytes(data, fmt)
            return np.ascontiguousarray(image.reshape(height, width, -1)[:, :, pick])

        return pyspng_decode

    @classmethod
    def check(cls, dtype: np.dtype, num_channels: int) -> None:
        if np.dtype(dtype) not in (np.uint8, np.uint16) or not 1 <= num_channels <= 4:
            raise UnsupportedError(
                f"the png encoding holds uint8 or uint16 with 1 to 4 channels, not "
                f"{np.dtype(dtype).name} with {num_channels} channel(s)"
            )

    def options(self) -> dict[str, object]:
        return {"png_level": self.level}

    def check_chunk_size(self, chunk_size: Sequence[int]) -> None:
        check_image_size(chunk_size, "png", MAX_SIDE)

    def encode(self, chunk: np.ndarray) -> bytes:
        if chunk.dtype != self._wire:
            chunk = chunk.astype(self._wire)
        return encode_png(to_image(chunk), self.level)

    def decode(self, data: bytes, shape: Sequence[int], key: str) -> np.ndarray:
        width, height = image_size(shape)
        depth = 8 * self.dtype.itemsize
        try:
            w, h, d, color, _ = read_header(data)
        except ValueError as exc:
            raise CorruptChunkError(key, f"not a readable png image ({exc})") from None
        if (w, h) != (width, height):
            raise CorruptChunkError(
                key,
                f"png image is {w}x{h} pixels, expected {width}x{height} for a "
                f"{'x'.join(map(str, shape[:3]))} chunk",
            )
        if d != depth or color != COLOR_TYPES[self.num_channels]:
            raise CorruptChunkError(
                key,
                f"png image has {d}-bit samples of colour type {color}, expected {depth}-bit "
                f"colour type {COLOR_TYPES[self.num_channels]} ({self.num_channels} channel(s))",
            )
        try:
            image = self._decode_image(data)
        except Exception as exc:  # libspng reports damage as RuntimeError/ValueError
            raise CorruptChunkError(key, f"cannot decode png image: {exc}") from None
        if image.dtype != self._wire or image.shape != (height, width, self.num_channels):
            raise CorruptChunkError(key, f"png decoded to {image.shape} {image.dtype}")
        return from_image(image, shape)
