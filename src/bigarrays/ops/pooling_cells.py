"""The pooling cells of one axis: which voxels of a block fall into which cell.

Cell ``j`` of factor ``f`` covers the absolute coordinates ``[j*f, (j+1)*f)``; a block that
starts at ``start`` and holds ``length`` voxels meets the cells ``start // f`` up to
``ceil((start + length) / f)``, the first and last of them possibly cut. Every kernel of the
pooling modules walks cells through this one class, so the anchoring rule lives in one place.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np


@dataclass(frozen=True)
class AxisCells:
    """The cells of factor ``factor`` that the voxels ``[start, start + length)`` fall into."""

    start: int
    length: int
    factor: int

    @property
    def origin(self) -> int:
        """Position of the block's first voxel inside its cell (``start mod factor``)."""
        return self.start % self.factor

    @property
    def first(self) -> int:
        """Absolute index of the first cell."""
        return self.start // self.factor

    @property
    def count(self) -> int:
        """Number of cells the block meets (0 for an empty block)."""
        if self.length <= 0:
            return 0
        return -(-(self.start + self.length) // self.factor) - self.first

    def extents(self) -> np.ndarray:
        """Voxels of the block in each cell (the divisor of ``mean``)."""
        j = np.arange(self.count, dtype=np.int64)
        lo = np.maximum(j * self.factor - self.origin, 0)
        hi = np.minimum((j + 1) * self.factor - self.origin, self.length)
        return hi - lo

    def firsts(self) -> np.ndarray:
        """Local index of the first voxel of each cell."""
        j = np.arange(self.count, dtype=np.int64)
        return np.maximum(j * self.factor - self.origin, 0)

    def offset(self, k: int) -> tuple[slice, slice] | None:
        """For offset ``k`` inside a cell (``0 <= k < factor``): the cells that have a voxel at
        that offset (a slice of cells) and those voxels (a strided slice of the block), or None.
        """
        f = self.factor
        j0 = 0 if k >= self.origin else 1
        p0 = j0 * f + k - self.origin
        if p0 >= self.length:
            return None
        n = -(-(self.length - p0) // f)
        return slice(j0, j0 + n), slice(p0, p0 + (n - 1) * f + 1, f)

    def offsets(self) -> Iterator[tuple[slice, slice]]:
        for k in range(self.factor):
            pair = self.offset(k)
            if pair is not None:
                yield pair

    def runs(self) -> list[tuple[slice, slice, int]]:
        """Consecutive cells of equal extent: (cells, their voxels, extent), at most three."""
        ext = self.extents()
        out: list[tuple[slice, slice, int]] = []
        j = 0
        pos = 0
        while j < len(ext):
            e = int(ext[j])
            n = 1
            while j + n < len(ext) and ext[j + n] == e:
                n += 1
            out.append((slice(j, j + n), slice(pos, pos + n * e), e))
            pos += n * e
            j += n
        return out


def grid(start: Sequence[int], shape: Sequence[int], factor: Sequence[int]) -> list[AxisCells]:
    return [AxisCells(s, n, f) for s, n, f in zip(start, shape, factor, strict=True)]


def outer_axes(a: np.ndarray) -> list[int]:
    """Axes from the outermost in memory (largest stride) to the innermost.

    TensorStore iterates a cell's voxels in the memory order of its source (the order that
    float sums depend on), and separable reductions are fastest along whole planes first.
    """
    strides = [abs(s) if n > 1 else 0 for s, n in zip(a.strides, a.shape, strict=True)]
    return sorted(range(a.ndim), key=lambda ax: -strides[ax])


def layout(a: np.ndarray) -> Literal["C", "F"]:
    """The order ("C" or "F") in which to allocate arrays derived from ``a``."""
    return "F" if a.flags.f_contiguous and not a.flags.c_contiguous else "C"


def counts(
    cells: Sequence[AxisCells], key: tuple[slice | np.ndarray, ...] | None = None
) -> np.ndarray:
    """Voxels per cell (of the cells ``key`` selects) as an int64 array that broadcasts against
    the pooled array."""
    total: np.ndarray = np.ones((1,) * len(cells), dtype=np.int64)
    for ax, c in enumerate(cells):
        ext = c.extents() if key is None else c.extents()[key[ax]]
        shape = [1] * len(cells)
        shape[ax] = len(ext)
        total = total * ext.reshape(shape)
    return total


def along(ndim: int, axis: int, index: slice | np.ndarray) -> tuple[slice | np.ndarray, ...]:
    """An index tuple that applies ``index`` on ``axis`` and takes everything elsewhere."""
    key: list[slice | np.ndarray] = [slice(None)] * ndim
    key[axis] = index
    return tuple(key)
