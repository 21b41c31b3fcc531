"""The fill value: what a voxel never written reads as, and how chunks of it are told apart.

Comparisons are bit by bit: a chunk of -0.0 is not a chunk of 0.0, and a NaN fill value matches a
chunk of the same NaN, which ``==`` would never say.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np


def _bits(array: np.ndarray) -> np.ndarray:
    size = array.dtype.itemsize
    if size in (1, 2, 4, 8) and array.dtype.kind in "fciub":
        return array.view(f"u{size}")
    return array.view(np.uint8)


def is_fill(chunk: np.ndarray, fill_value: Any = 0) -> bool:
    """True when every voxel of ``chunk`` has exactly the bits of ``fill_value``."""
    fill = np.asarray(fill_value, dtype=chunk.dtype).reshape(1)
    if chunk.dtype.itemsize not in (1, 2, 4, 8) or chunk.dtype.kind not in "fciub":
        # complex128 and other wide types: byte rows against the fill's bytes.
        rows = np.ascontiguousarray(chunk).reshape(-1).view(np.uint8)
        pattern = fill.view(np.uint8)
        if not pattern.any():
            return not rows.any()
        return bool((rows.reshape(-1, pattern.size) == pattern).all())
    target = int(_bits(fill)[0])
    bits = _bits(chunk)
    # Most chunks that are not fill show it in their first voxel: no pass over the whole chunk.
    if bits.size and int(bits.flat[0]) != target:
        return False
    return not bits.any() if target == 0 else bool((bits == target).all())


def filled(
    shape: Sequence[int], dtype: np.dtype, fill_value: Any = 0, order: Literal["C", "F"] = "F"
) -> np.ndarray:
    """A new array of ``shape`` holding ``fill_value``; zeros map their pages lazily."""
    fill = np.asarray(fill_value, dtype=dtype)
    if not _bits(fill.reshape(1)).any():
        return np.zeros(shape, dtype=dtype, order=order)
    return np.full(shape, fill, dtype=dtype, order=order)
