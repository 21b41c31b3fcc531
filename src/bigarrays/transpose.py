"""A fast copy of an array between C and Fortran memory order, for the engine's writes.

Most arrays come C-ordered (NumPy's default, Dask's blocks); a precomputed volume stores x
fastest, and a Zarr array the other way round. NumPy's copy from one order to the other moves
one element at a time with a large stride on one side, which for bytes runs an order of
magnitude below a plain copy. Here the elements move in machine words instead: the array is cut
into small square tiles of its first and last axes (8 x 8 bytes, 4 x 4 uint16, 2 x 2 uint32),
each tile is loaded as 64-bit words, transposed inside them and stored as words, by the compiled
kernels of :mod:`bigarrays.ops.transpose_jit` (imported, and so compiled or loaded from numba's
cache, on the first copy that needs them). The bits move unchanged: the copy is exact for every
dtype of 1, 2 or 4 bytes. Anything else goes through NumPy.
"""

from __future__ import annotations

import itertools
import sys
from typing import Any, Literal

import numpy as np

__all__ = ["fortran_copy", "ordered_copy"]

#: Edge of the cubes an array of more than TILE_BYTES is transposed in, so that each cube's
#: words stay in the processor's caches while they move (a 128³ byte array ran at 1.6 GiB/s
#: whole, 2.3 GiB/s in 64³ cubes).
TILE = 64
TILE_BYTES = 1 << 20
#: Smaller copies go through NumPy: they take microseconds either way, and the kernels' first
#: use in a process costs about a second (numba's import and its cache), which a notebook's
#: first small write should not pay.
MIN_KERNEL_BYTES = 1 << 16


def fortran_copy(a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``a`` copied into a new Fortran-ordered array (``np.asfortranarray`` without sharing),
    or into ``out`` (of ``a``'s shape and dtype), which is returned."""
    if out is None:
        out = np.empty(a.shape, dtype=a.dtype, order="F")
    # Axes of extent 1 (a frame one voxel thick, a single channel) take no part in the layout.
    src, dst = np.squeeze(a), np.squeeze(out)
    k = _per_word(src, dst)
    if not k:
        np.copyto(out, a)
        return out
    if src.nbytes <= TILE_BYTES or all(n <= TILE for n in src.shape):
        _tile_copy(src, k, dst)
        return out
    for starts in itertools.product(*(range(0, n, TILE) for n in src.shape)):
        tile = tuple(slice(i, i + TILE) for i in starts)
        _tile_copy(src[tile], k, dst[tile])
    return out


def ordered_copy(
    a: np.ndarray, order: Literal["C", "F"], buffer: bytearray | None = None
) -> np.ndarray | None:
    """``a`` copied into ``order`` by the word-wise transpose (into the start of ``buffer`` when
    it is large enough), or None where NumPy's own copy does as well: elements of 8 bytes or
    more, an ``a`` laid out in ``order`` already, or fewer than a word's elements across the
    axis they are contiguous along."""
    # Axes of extent 1 (a single channel, a box one voxel thick) take no part in the layout.
    squeezed = np.squeeze(a)
    source = squeezed if order == "F" else squeezed.T
    if (
        a.itemsize not in (1, 2, 4) or source.ndim < 2 or source.strides[-1] != a.itemsize
        or min(source.shape[0], source.shape[-1]) < 8 // a.itemsize
    ):  # fmt: skip
        return None
    if buffer is not None and len(buffer) >= a.nbytes:
        out = np.frombuffer(buffer, a.dtype, a.size).reshape(a.shape, order=order)
    else:
        out = np.empty(a.shape, dtype=a.dtype, order=order)
    target = np.squeeze(out) if order == "F" else np.squeeze(out).T
    fortran_copy(source, target)
    return out


def _per_word(a: np.ndarray, out: np.ndarray) -> int:
    """Elements to a 64-bit word if the kernels copy ``a`` into ``out`` (its last axis and
    ``out``'s first contiguous, the same plain dtype of 1, 2 or 4 bytes), else 0."""
    if (
        a.nbytes < MIN_KERNEL_BYTES
        or a.itemsize not in (1, 2, 4) or a.dtype != out.dtype or a.dtype.hasobject
        or a.ndim < 2 or a.size == 0 or a.strides[-1] != a.itemsize
        or out.strides[0] != a.itemsize or sys.byteorder != "little"
    ):  # fmt: skip
        return 0
    return 8 // a.itemsize


def _tile_copy(a: np.ndarray, k: int, out: np.ndarray) -> None:
    """:func:`fortran_copy` of one tile into ``out``, ``k`` elements to a 64-bit word."""
    first, last = a.shape[0] - a.shape[0] % k, a.shape[-1] - a.shape[-1] % k
    if not (first and last):
        np.copyto(out, a)
        return
    whole = first == a.shape[0] and last == a.shape[-1]
    core = a if whole else a[:first, ..., :last]
    target = out if whole else out[:first, ..., :last]
    _word_copy(core, k, target)
    if not whole:
        # The rims past the last whole word along either axis are thin: NumPy's copy does them.
        out[first:] = a[first:]
        out[:first, ..., last:] = a[:first, ..., last:]


def _word_copy(a: np.ndarray, k: int, out: np.ndarray) -> None:
    """:func:`_tile_copy` of a tile whose first and last extents are whole words."""
    from bigarrays.ops.transpose_jit import KERNELS

    kernel = KERNELS[k]
    src = a.view(np.uint64)  # words along the last axis
    dst = out.T.view(np.uint64).T  # words along the first axis
    if a.ndim == 2:
        kernel(src[:, None, :], dst[:, None, :])
        return
    middle = a.shape[1:-2]
    for m in itertools.product(*(range(n) for n in middle)):
        index: tuple[Any, ...] = (slice(None), *m, slice(None), slice(None))
        kernel(src[index], dst[index])
