"""The ``jpeg`` encoding: uint8 chunks of 1 (grey) or 3 (RGB) channels as one JPEG image.

Lossy: ``jpeg_quality`` (0-100, default 85) trades size for fidelity. The image is ``x`` wide and
``y * z`` high (see :mod:`bigarrays.codecs.image2d`). Encoding and decoding go through
``simplejpeg`` (libjpeg-turbo), which releases the GIL. Colour chunks are written without chroma
subsampling (4:4:4): the three channels of a microscope are rarely a photograph's colours.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from bigarrays.codecs.base import ChunkCodec
from bigarrays.codecs.image2d import check_image_size, from_image, image_size, to_image
from bigarrays.errors import CorruptChunkError, MissingDependencyError, UnsupportedError

DEFAULT_QUALITY = 85
#: libjpeg's JPEG_MAX_DIMENSION: no side of a JPEG image may be longer.
MAX_SIDE = 65500
#: JPEG colour spaces (as libjpeg-turbo reports them) -> number of components.
_COMPONENTS = {"Gray": 1, "YCbCr": 3, "RGB": 3, "CMYK": 4, "YCCK": 4}


def _simplejpeg() -> Any:
    try:
        import simplejpeg
    except ImportError:
        raise MissingDependencyError("simplejpeg", "jpeg", "the jpeg encoding") from None
    return simplejpeg


class JpegCodec(ChunkCodec):
    name = "jpeg"
    option_names = ("jpeg_quality",)

    def __init__(
        self, dtype: np.dtype, num_channels: int, *, jpeg_quality: int | None = None
    ) -> None:
        super().__init__(dtype, num_channels)
        quality = DEFAULT_QUALITY if jpeg_quality is None else jpeg_quality
        if isinstance(quality, bool) or not isinstance(quality, int) or not 0 <= quality <= 100:
            raise UnsupportedError(f"jpeg_quality must be an integer 0-100, got {quality!r}")
        self.quality = quality
        self._sj = _simplejpeg()

    @classmethod
    def check(cls, dtype: np.dtype, num_channels: int) -> None:
        if np.dtype(dtype) != np.uint8 or num_channels not in (1, 3):
            raise UnsupportedError(
                f"the jpeg encoding holds uint8 with 1 or 3 channels, not {np.dtype(dtype).name} "
                f"with {num_channels} channel(s)"
            )

    def options(self) -> dict[str, object]:
        return {"jpeg_quality": self.quality}

    def check_chunk_size(self, chunk_size: Sequence[int]) -> None:
        check_image_size(chunk_size, "jpeg", MAX_SIDE)

    def encode(self, chunk: np.ndarray) -> bytes:
        if chunk.dtype != np.uint8:
            chunk = chunk.astype(np.uint8)
        image = to_image(chunk)
        if self.num_channels == 1:
            out: bytes = self._sj.encode_jpeg(
                image, quality=self.quality, colorspace="GRAY", colorsubsampling="Gray"
            )
        else:
            out = self._sj.encode_jpeg(
                image, quality=self.quality, colorspace="RGB", colorsubsampling="444"
            )
        return out

    def decode(self, data: bytes, shape: Sequence[int], key: str) -> np.ndarray:
        width, height = image_size(shape)
        try:
            h, w, colorspace, _ = self._sj.decode_jpeg_header(data)
        except Exception as exc:  # ValueError from libjpeg-turbo; be broad: the bytes are foreign
            raise CorruptChunkError(key, f"not a readable jpeg image ({exc})") from None
        if (w, h) != (width, height):
            raise CorruptChunkError(
                key,
                f"jpeg image is {w}x{h} pixels, expected {width}x{height} for a "
                f"{'x'.join(map(str, shape[:3]))} chunk",
            )
        components = _COMPONENTS.get(colorspace)
        if components != self.num_channels:
            raise CorruptChunkError(
                key, f"jpeg image is {colorspace}, expected {self.num_channels} channel(s)"
            )
        try:
            image = self._sj.decode_jpeg(
                data, colorspace="GRAY" if self.num_channels == 1 else "RGB", strict=True
            )
        except Exception as exc:
            raise CorruptChunkError(key, f"cannot decode jpeg image: {exc}") from None
        if image.shape != (height, width, self.num_channels):
            raise CorruptChunkError(key, f"jpeg decoded to {image.shape}, expected "
                                    f"{(height, width, self.num_channels)}")  # fmt: skip
        return from_image(image, shape)
