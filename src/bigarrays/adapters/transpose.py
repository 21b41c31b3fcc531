"""A fast Fortran-ordered copy of a C-ordered array (Dask's blocks, for a precomputed volume).

Dask hands its blocks over C-ordered; a precomputed volume stores x fastest. NumPy's copy from
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

import numpy as np

__all__ = ["fortran_copy"]

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


def _tile_copy(a: np.ndarray, k: int) -> np.ndarray:
    """:func:`fortran_copy` of one tile, ``k`` elements to a 64-bit word."""
    if a.shape[0] % k or a.shape[-1] % k:
        return np.array(a, order="F", copy=True)
    first, last, middle = a.shape[0], a.shape[-1], a.shape[1:-1]
    # words[xb, i, m..., zb]: the word of row x = xb * k + i holding elements z = zb * k + 0..k-1.
    words = np.array(a, order="C", copy=True).view(np.uint64)
    words = words.reshape(first // k, k, *middle, last // k)
    bits = a.itemsize * 8
    for shift, mask in _STEPS:
        d = shift // bits  # rows exchanged: i and i + d
        if d < 1:
            continue
        m, s = np.uint64(mask), np.uint64(shift)
        for i in range(k):
            if (i // d) % 2:
                continue
            lo, hi = words[:, i], words[:, i + d]
            t = ((lo >> s) ^ hi) & m
            lo ^= t << s
            hi ^= t
    # Now words[xb, j, m..., zb] holds elements x = xb * k + 0..k-1 at z = zb * k + j.
    out = np.empty(a.shape, dtype=a.dtype, order="F")
    target = out.T.view(np.uint64).reshape(last // k, k, *middle[::-1], first // k)
    n = words.ndim
    np.copyto(target, words.transpose(n - 1, 1, *range(n - 2, 1, -1), 0))
    return out
