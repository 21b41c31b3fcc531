"""The 2-D image of a chunk, as the jpeg and png encodings lay it out.

A chunk ``(x, y, z, c)`` is one image of width ``x`` and height ``y * z``: row ``y + Y * z`` holds
the x-run at ``(y, z)``, so the rows, concatenated, give the x-fastest flattening, and the channels
are interleaved per pixel. This is what TensorStore writes and Neuroglancer reads (older
TensorStore releases used another shape); the golden files in ``tests/data`` pin it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bigarrays.errors import UnsupportedError


def image_size(shape: Sequence[int]) -> tuple[int, int]:
    """``(width, height)`` of the image of a chunk of ``shape`` (x, y, z[, c])."""
    return int(shape[0]), int(shape[1]) * int(shape[2])


def check_image_size(chunk_size: Sequence[int], encoding: str, max_side: int) -> None:
    """Refuse a chunk size whose image would have a side longer than the format allows."""
    width, height = image_size(chunk_size)
    if width > max_side or height > max_side:
        raise UnsupportedError(
            f"a {encoding} chunk is one image {width} wide and {height} (y*z) high; "
            f"{encoding.upper()} allows {max_side} at most: choose smaller chunks"
        )


def to_image(chunk: np.ndarray) -> np.ndarray:
    """A C-contiguous ``(height, width, channels)`` image of a 4-D chunk in any memory layout."""
    x, y, z, c = chunk.shape
    # (x, y, z, c) -> (z, y, x, c) in C order is one copy whatever the chunk's layout; a
    # Fortran-ordered single-channel chunk is already laid out this way and is not copied.
    return np.ascontiguousarray(chunk.transpose(2, 1, 0, 3)).reshape(z * y, x, c)


def from_image(image: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """The ``(x, y, z, c)`` view of a C-contiguous ``(height, width, channels)`` image."""
    x, y, z, c = (int(s) for s in shape)
    view: np.ndarray = image.reshape(z, y, x, c).transpose(2, 1, 0, 3)
    return view
