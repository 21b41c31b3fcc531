"""Chunk codecs (array <-> bytes) by the name the info's ``encoding`` field gives.

``make_codec(encoding, dtype, num_channels, **options)`` builds the codec of a scale; the options
are the scale's codec members (``jpeg_quality``, ``png_level``,
``compressed_segmentation_block_size``), each handed only to the codec it belongs to.

The bytes -> bytes codecs have a module each (:mod:`~bigarrays.codecs.gzip`,
:mod:`~bigarrays.codecs.zstd`, :mod:`~bigarrays.codecs.brotli`, :mod:`~bigarrays.codecs.blosc`,
:mod:`~bigarrays.codecs.crc32c`); :mod:`bigarrays.codecs.chain` composes them into Zarr v3 codec
chains and :mod:`bigarrays.codecs.zarr_v2` builds Zarr v2 chains through numcodecs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bigarrays.codecs.base import ChunkCodec
from bigarrays.codecs.compressed_segmentation import CompressedSegmentationCodec
from bigarrays.codecs.jpeg import JpegCodec
from bigarrays.codecs.png import PngCodec
from bigarrays.codecs.raw import RawCodec
from bigarrays.errors import UnsupportedError

_CODECS: dict[str, type[ChunkCodec]] = {
    "raw": RawCodec,
    "jpeg": JpegCodec,
    "png": PngCodec,
    "compressed_segmentation": CompressedSegmentationCodec,
}

#: Encodings that the precomputed format defines; the ones without a codec here are refused with
#: a message that says so, rather than "unknown".
FORMAT_ENCODINGS = ("raw", "jpeg", "png", "compressed_segmentation", "compresso", "jxl")

#: Every codec option make_codec knows, whichever codec it belongs to.
CODEC_OPTIONS = ("jpeg_quality", "png_level", "compressed_segmentation_block_size")


def available_encodings() -> list[str]:
    return sorted(_CODECS)


def codec_class(encoding: str) -> type[ChunkCodec]:
    try:
        return _CODECS[encoding]
    except KeyError:
        known = ", ".join(available_encodings())
        if encoding in FORMAT_ENCODINGS:
            raise UnsupportedError(
                f"encoding {encoding!r} is not supported by this version of bigarrays "
                f"(supported: {known})"
            ) from None
        raise UnsupportedError(f"unknown encoding {encoding!r}; supported: {known}") from None


def fitting_encodings(dtype: Any, num_channels: int) -> list[str]:
    """The encodings that can hold ``dtype`` with ``num_channels`` channels."""
    fits = []
    for name, cls in _CODECS.items():
        try:
            cls.check(np.dtype(dtype), num_channels)
        except UnsupportedError:
            continue
        fits.append(name)
    return fits


def check_encoding(encoding: str, dtype: Any, num_channels: int) -> None:
    """Refuse an encoding that cannot hold the data, naming the encodings that can."""
    cls = codec_class(encoding)
    try:
        cls.check(np.dtype(dtype), num_channels)
    except UnsupportedError as exc:
        fits = ", ".join(fitting_encodings(dtype, num_channels))
        raise UnsupportedError(
            f"{exc}; encodings that fit {np.dtype(dtype).name} with {num_channels} channel(s): "
            f"{fits}"
        ) from None


def make_codec(encoding: str, dtype: Any, num_channels: int, **options: Any) -> ChunkCodec:
    """The codec for a scale; raises UnsupportedError for an encoding or dtype it cannot do.

    ``options`` may carry any of :data:`CODEC_OPTIONS`; those of other codecs, and None values,
    are ignored (an info may keep a ``jpeg_quality`` beside a raw encoding).
    """
    unknown = set(options) - set(CODEC_OPTIONS)
    if unknown:
        raise TypeError(f"unknown codec option(s) {sorted(unknown)}; known: {CODEC_OPTIONS}")
    check_encoding(encoding, dtype, num_channels)
    cls = _CODECS[encoding]
    mine = {k: v for k, v in options.items() if k in cls.option_names and v is not None}
    return cls(np.dtype(dtype), num_channels, **mine)


__all__ = [
    "CODEC_OPTIONS",
    "ChunkCodec",
    "CompressedSegmentationCodec",
    "JpegCodec",
    "PngCodec",
    "RawCodec",
    "available_encodings",
    "check_encoding",
    "codec_class",
    "fitting_encodings",
    "make_codec",
]
