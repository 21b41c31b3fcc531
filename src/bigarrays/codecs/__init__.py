"""Chunk codecs (array <-> bytes) by the name the info's ``encoding`` field gives."""

from __future__ import annotations

import numpy as np

from bigarrays.codecs.base import ChunkCodec
from bigarrays.codecs.raw import RawCodec
from bigarrays.errors import UnsupportedError

_CODECS: dict[str, type[ChunkCodec]] = {"raw": RawCodec}

#: Encodings that the precomputed format defines; the ones without a codec here are refused with
#: a message that says so, rather than "unknown".
FORMAT_ENCODINGS = ("raw", "jpeg", "png", "compressed_segmentation", "compresso", "jxl")


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


def make_codec(encoding: str, dtype: np.dtype, num_channels: int) -> ChunkCodec:
    """The codec for a scale; raises UnsupportedError for an encoding or dtype it cannot do."""
    return codec_class(encoding)(np.dtype(dtype), num_channels)


__all__ = ["ChunkCodec", "RawCodec", "available_encodings", "codec_class", "make_codec"]
