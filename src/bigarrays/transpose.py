"""A fast copy of an array between C and Fortran memory order, for the engine's writes.

Most arrays come C-ordered (NumPy's default, Dask's blocks); a precomputed volume stores x
fastest, and a Zarr array the other way round. NumPy's copy from one order to the other moves
one element at a time with a large stride on one side, which for bytes runs an order of
magnitude below a plain copy. Here the elements move in machine words instead: the array is cut
into small square tiles of its first and last axes (8 x 8 bytes, 4 x 4 uint16, 2 x 2 uint32),
each tile is transposed inside the eight 64-bit words that hold it by the classic exchange of
its quarter, half... blocks (shifts, masks, xors over all tiles at once), and the words are then
put in place by one NumPy copy of 8-byte elements.

The words and the exchange's temporaries live in buffers each thread keeps: fresh ones, for a
chunk-sized piece, come from the system as new pages, and faulting those in cost more than all
the exchanges (the copy of a 64³ byte piece ran at 560 MiB/s with fresh buffers, 1,300 reused).
"""

from __future__ import annotations

import itertools
import sys
import threading
from typing import Literal

import numpy as np

__all__ = ["fortran_copy", "ordered_copy"]

#: (shift in bits, mask) of each exchange step, the widest first.
_STEPS = ((32, 0x00000000FFFFFFFF), (16, 0x0000FFFF0000FFFF), (8, 0x00FF00FF00FF00FF))

#: Edge of the cubes a large array is transposed in, so that each cube's words stay in the
#: processor's caches while they move (2 MiB of uint8).
TILE = 128

#: The largest buffer a thread keeps (a tile of 4-byte elements is 8 MiB); larger temporaries
#: (a tile of many axes) are allocated each time.
_KEPT_BYTES = 16 << 20

_local = threading.local()


def fortran_copy(a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``a`` copied into a new Fortran-ordered array (``np.asfortranarray`` without sharing),
    or into ``out`` (of ``a``'s shape and dtype), which is returned."""
    if out is None:
        out = np.empty(a.shape, dtype=a.dtype, order="F")
    k = 8 // a.itemsize if a.itemsize in (1, 2, 4) else 0
    if (
        k == 0 or a.ndim < 2 or a.strides[-1] != a.itemsize or sys.byteorder != "little"
        or a.size == 0
    ):  # fmt: skip
        np.copyto(out, a)
        return out
    if all(n <= TILE for n in a.shape):
        _tile_copy(a, k, out)
        return out
    for starts in itertools.product(*(range(0, n, TILE) for n in a.shape)):
        tile = tuple(slice(i, i + TILE) for i in starts)
        _tile_copy(a[tile], k, out[tile])
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


def _tile_copy(a: np.ndarray, k: int, out: np.ndarray) -> None:
    """:func:`fortran_copy` of one tile into ``out``, ``k`` elements to a 64-bit word."""
    first, last = a.shape[0] - a.shape[0] % k, a.shape[-1] - a.shape[-1] % k
    if not (first and last):
        np.copyto(out, a)
        return
    whole = first == a.shape[0] and last == a.shape[-1]
    core = a if whole else a[:first, ..., :last]
    target = out if whole else out[:first, ..., :last]
    if target.flags.f_contiguous:
        _word_copy(core, k, target)
    else:
        moved = _scratch(2, core.nbytes).view(a.dtype).reshape(core.shape, order="F")
        _word_copy(core, k, moved)
        np.copyto(target, moved)
    if not whole:
        # The rims past the last whole word along either axis are thin: NumPy's copy does them.
        out[first:] = a[first:]
        out[:first, ..., last:] = a[:first, ..., last:]


def _word_copy(a: np.ndarray, k: int, out: np.ndarray) -> None:
    """:func:`_tile_copy` of a tile whose first and last extents are whole words into ``out``,
    a Fortran-contiguous array."""
    first, last, middle = a.shape[0], a.shape[-1], a.shape[1:-1]
    # words[xb, i, m..., zb]: the word of row x = xb * k + i holding elements z = zb * k + 0..k-1.
    words = _scratch(0, a.nbytes)
    np.copyto(words.view(a.dtype).reshape(a.shape), a)
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
        t = _scratch(1, a.nbytes // 2).reshape(lo.shape)
        np.right_shift(lo, s, out=t)
        np.bitwise_xor(t, hi, out=t)
        np.bitwise_and(t, np.uint64(mask), out=t)
        np.bitwise_xor(hi, t, out=hi)
        np.left_shift(t, s, out=t)
        np.bitwise_xor(lo, t, out=lo)
    # Now words[xb, j, m..., zb] holds elements x = xb * k + 0..k-1 at z = zb * k + j.
    target = out.T.view(np.uint64).reshape(last // k, k, *middle[::-1], first // k)
    n = words.ndim
    np.copyto(target, words.transpose(n - 1, 1, *range(n - 2, 1, -1), 0))


def _scratch(slot: int, nbytes: int) -> np.ndarray:
    """``nbytes`` (a multiple of 8) of 64-bit words, from buffer ``slot`` of this thread."""
    words = nbytes // 8
    if nbytes > _KEPT_BYTES:
        return np.empty(words, dtype=np.uint64)
    buffers: list[np.ndarray] | None = getattr(_local, "buffers", None)
    if buffers is None:
        buffers = _local.buffers = [np.empty(0, dtype=np.uint64) for _ in range(3)]
    if buffers[slot].size < words:
        buffers[slot] = np.empty(words, dtype=np.uint64)
    return buffers[slot][:words]
