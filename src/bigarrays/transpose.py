"""A fast copy of an array between C and Fortran memory order, for the engine's writes.

Most arrays come C-ordered (NumPy's default, Dask's blocks); a precomputed volume stores x
fastest, and a Zarr array the other way round. NumPy's copy from
one order to the other moves one element at a time with a large stride on one side, which for
bytes runs an order of magnitude below a plain copy. Here the elements move in machine words
instead: the array is cut into small square tiles of its first and last axes (8 x 8 bytes, 4 x 4
uint16, 2 x 2 uint32), each tile is transposed inside the eight 64-bit words that hold it by the
classic exchange of its quarter, half... blocks (shifts, masks, xors over all tiles at once),
and the words are then put in place by one NumPy copy of 8-byte elements.
"""

from __future__ import annotations

import itertools
import sys
from typing import Literal

import numpy as np

__all__ = ["fortran_copy", "ordered_copy"]

#: (shift in bits, mask) of each exchange step, the widest first.
_STEPS = ((32, 0x00000000FFFFFFFF), (16, 0x0000FFFF0000FFFF), (8, 0x00FF00FF00FF00FF))


#: Edge of the cubes a large array is transposed in, so that each cube's words stay in the
#: processor's caches while they move (2 MiB of uint8).
TILE = 128


def fortran_copy(a: np.ndarray) -> np.ndarray:
    """``a`` copied into a new Fortran-ordered array (``np.asfortranarray`` without sharing)."""
    k = 8 // a.itemsize if a.itemsize in (1, 2, 4) else 0
    if (
        k == 0 or a.ndim < 2 or a.strides[-1] != a.itemsize or sys.byteorder != "little"
        or a.size == 0
    ):  # fmt: skip
        return np.array(a, order="F", copy=True)
    if all(n <= TILE for n in a.shape):
        return _tile_copy(a, k)
    out = np.empty(a.shape, dtype=a.dtype, order="F")
    for starts in itertools.product(*(range(0, n, TILE) for n in a.shape)):
        tile = tuple(slice(i, i + TILE) for i in starts)
        out[tile] = _tile_copy(a[tile], k)
    return out


#: Element sizes :func:`ordered_copy` takes. NumPy's own copy between orders of 64³ pieces ran
#: ~250 MiB/s for bytes against ~500 word-wise, but as fast word-wise or faster for 2 and
#: 4-byte elements, whose exchange steps are fewer but whose plain copy is faster too.
ORDERED_ITEMSIZES = (1,)


def ordered_copy(a: np.ndarray, order: Literal["C", "F"]) -> np.ndarray | None:
    """``a`` copied into ``order`` ("C" or "F") by the word-wise transpose, or None where that
    would not beat NumPy's own copy (elements of more than one byte, an ``a`` laid out in
    ``order`` already, or too few elements across the axis they are contiguous along)."""
    # Axes of extent 1 (a single channel, a box one voxel thick) take no part in the layout.
    squeezed = np.squeeze(a)
    source = squeezed if order == "F" else squeezed.T
    if (
        a.itemsize not in ORDERED_ITEMSIZES or source.ndim < 2 or source.strides[-1] != a.itemsize
        or source.shape[0] < 8 // a.itemsize or source.shape[-1] < 8 // a.itemsize
    ):  # fmt: skip
        return None
    copied = fortran_copy(source)
    laid_out: np.ndarray = (copied if order == "F" else copied.T).reshape(a.shape, order=order)
    return laid_out


def _tile_copy(a: np.ndarray, k: int) -> np.ndarray:
    """:func:`fortran_copy` of one tile, ``k`` elements to a 64-bit word."""
    first, last = a.shape[0] - a.shape[0] % k, a.shape[-1] - a.shape[-1] % k
    if first == a.shape[0] and last == a.shape[-1]:
        return _word_copy(a, k)
    if not (first and last):
        return np.array(a, order="F", copy=True)
    # The rims past the last whole word along either axis are thin: NumPy's copy does them.
    out = np.empty(a.shape, dtype=a.dtype, order="F")
    out[:first, ..., :last] = _word_copy(a[:first, ..., :last], k)
    out[first:] = a[first:]
    out[:first, ..., last:] = a[:first, ..., last:]
    return out


def _word_copy(a: np.ndarray, k: int) -> np.ndarray:
    """:func:`_tile_copy` of a tile whose first and last extents are whole words."""
    first, last, middle = a.shape[0], a.shape[-1], a.shape[1:-1]
    # words[xb, i, m..., zb]: the word of row x = xb * k + i holding elements z = zb * k + 0..k-1.
    words = np.array(a, order="C", copy=True).view(np.uint64)
    words = words.reshape(first // k, k, *middle, last // k)
    bits = a.itemsize * 8
    for shift, mask in _STEPS:
        d = shift // bits  # rows exchanged: i and i + d, for every i with (i // d) even
        if d < 1:
            continue
        pairs = words.reshape(first // k, k // (2 * d), 2, d, *middle, last // k)
        lo, hi = pairs[:, :, 0], pairs[:, :, 1]
        # t = ((lo >> s) ^ hi) & m; lo ^= t << s; hi ^= t, in one scratch array.
        s = np.uint64(shift)
        t = np.right_shift(lo, s)
        np.bitwise_xor(t, hi, out=t)
        np.bitwise_and(t, np.uint64(mask), out=t)
        np.bitwise_xor(hi, t, out=hi)
        np.left_shift(t, s, out=t)
        np.bitwise_xor(lo, t, out=lo)
    # Now words[xb, j, m..., zb] holds elements x = xb * k + 0..k-1 at z = zb * k + j.
    out = np.empty(a.shape, dtype=a.dtype, order="F")
    target = out.T.view(np.uint64).reshape(last // k, k, *middle[::-1], first // k)
    n = words.ndim
    np.copyto(target, words.transpose(n - 1, 1, *range(n - 2, 1, -1), 0))
    return out
