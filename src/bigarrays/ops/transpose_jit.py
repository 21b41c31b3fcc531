"""Compiled kernels of the copy between C and Fortran order (:mod:`bigarrays.transpose`).

An element-wise loop moves one byte per load and store and runs no faster than NumPy's strided
copy (~250 MiB/s for bytes). Here each k x k tile of elements (8 x 8 bytes, 4 x 4 uint16, 2 x 2
uint32) is loaded as k 64-bit words along the source's contiguous axis, transposed inside
registers by the classic exchange of its halves, quarters... (shifts, masks, xors), and stored
as k words along the destination's contiguous axis: a 64³ byte chunk moves at ~3 GiB/s.

Every kernel takes the two arrays as 3-D arrays of 64-bit words: ``s[i, m, jw]`` holds the
elements ``j = jw * k ... jw * k + k - 1`` of row ``i`` (words along the source's last axis),
``d[iw, m, j]`` holds the elements ``i = iw * k ...`` of column ``j`` (words along the
destination's first axis). A word's lowest byte is its first element: little-endian only.

Compiled on first use and cached on disk (``cache=True``), so a later process loads them.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["KERNELS"]

_S32, _S16, _S8 = np.uint64(32), np.uint64(16), np.uint64(8)
_M32 = np.uint64(0x00000000FFFFFFFF)
_M16 = np.uint64(0x0000FFFF0000FFFF)
_M8 = np.uint64(0x00FF00FF00FF00FF)


@numba.njit(nogil=True, cache=True, inline="always")
def _swap(lo: np.uint64, hi: np.uint64, s: np.uint64, m: np.uint64) -> tuple[np.uint64, np.uint64]:
    """Exchange the high ``s``-bit halves of ``lo``'s fields with the low halves of ``hi``'s."""
    t = ((lo >> s) ^ hi) & m
    return lo ^ (t << s), hi ^ t


# The middle axis is the innermost loop: the k rows the tile is read from, and the k columns it
# is written to, then advance together one row of the middle axis at a time, which keeps the
# cache lines a tile touches few and, for power-of-two chunks, out of one cache set.


@numba.njit(nogil=True, cache=True)
def _bytes(src: np.ndarray, dst: np.ndarray) -> None:  # pragma: no cover - compiled
    s, d = src, dst
    n0, n1, n2w = s.shape
    for i in range(0, n0, 8):
        iw = i // 8
        for jw in range(n2w):
            j = jw * 8
            for m in range(n1):
                w0, w1, w2, w3 = s[i, m, jw], s[i + 1, m, jw], s[i + 2, m, jw], s[i + 3, m, jw]
                w4, w5, w6, w7 = s[i + 4, m, jw], s[i + 5, m, jw], s[i + 6, m, jw], s[i + 7, m, jw]
                w0, w4 = _swap(w0, w4, _S32, _M32)
                w1, w5 = _swap(w1, w5, _S32, _M32)
                w2, w6 = _swap(w2, w6, _S32, _M32)
                w3, w7 = _swap(w3, w7, _S32, _M32)
                w0, w2 = _swap(w0, w2, _S16, _M16)
                w1, w3 = _swap(w1, w3, _S16, _M16)
                w4, w6 = _swap(w4, w6, _S16, _M16)
                w5, w7 = _swap(w5, w7, _S16, _M16)
                w0, w1 = _swap(w0, w1, _S8, _M8)
                w2, w3 = _swap(w2, w3, _S8, _M8)
                w4, w5 = _swap(w4, w5, _S8, _M8)
                w6, w7 = _swap(w6, w7, _S8, _M8)
                d[iw, m, j], d[iw, m, j + 1], d[iw, m, j + 2], d[iw, m, j + 3] = w0, w1, w2, w3
                d[iw, m, j + 4], d[iw, m, j + 5], d[iw, m, j + 6], d[iw, m, j + 7] = w4, w5, w6, w7


@numba.njit(nogil=True, cache=True)
def _shorts(src: np.ndarray, dst: np.ndarray) -> None:  # pragma: no cover - compiled
    s, d = src, dst
    n0, n1, n2w = s.shape
    for i in range(0, n0, 4):
        iw = i // 4
        for jw in range(n2w):
            j = jw * 4
            for m in range(n1):
                w0, w1, w2, w3 = s[i, m, jw], s[i + 1, m, jw], s[i + 2, m, jw], s[i + 3, m, jw]
                w0, w2 = _swap(w0, w2, _S32, _M32)
                w1, w3 = _swap(w1, w3, _S32, _M32)
                w0, w1 = _swap(w0, w1, _S16, _M16)
                w2, w3 = _swap(w2, w3, _S16, _M16)
                d[iw, m, j], d[iw, m, j + 1], d[iw, m, j + 2], d[iw, m, j + 3] = w0, w1, w2, w3


@numba.njit(nogil=True, cache=True)
def _words(src: np.ndarray, dst: np.ndarray) -> None:  # pragma: no cover - compiled
    s, d = src, dst
    n0, n1, n2w = s.shape
    for i in range(0, n0, 2):
        iw = i // 2
        for jw in range(n2w):
            j = jw * 2
            for m in range(n1):
                w0, w1 = _swap(s[i, m, jw], s[i + 1, m, jw], _S32, _M32)
                d[iw, m, j], d[iw, m, j + 1] = w0, w1


#: The kernel for ``k`` elements to a word.
KERNELS = {8: _bytes, 4: _shorts, 2: _words}
