"""Pooling by rank: the mode and the median of each cell, always from the level-0 voxels.

Integer and bool data go to the compiled kernel of ``pooling_jit``, but for the coarsest cells
that a block's faces cut; those, and float and complex data, are pooled here with NumPy.

Both need a cell's values together. Most cells of a label volume (and many of an image) hold
one value only, so uniformity is found first, cheaply and level by level (a coarse cell is
uniform when its finer cells are uniform and equal); only the other cells are gathered as rows
of their level-0 voxels and sorted. A block is cut into regions of cells of equal extent (the
cut first and last cells of an axis apart from the whole ones); a region seen as an array of
shape (n0, e0, n1, e1, ...) (cell index and offset in the cell alternating) is a view, so
the uniformity test reads the block in place and rows never need padding: mixed cells are
copied out one ``np.take`` of element offsets, or, where most cells are mixed, all of them by
one transposing copy.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

import numpy as np

from bigarrays.ops.pooling_cells import AxisCells, grid, layout, outer_axes
from bigarrays.ops.pooling_reduce import Levels, level_start, relative

Region = tuple[tuple[slice, ...], np.ndarray]

# Gather all of a region's cells with one transposing copy when more than this share of them
# is mixed; picking cells costs more per cell than copying.
_DENSE = 0.25
# Rows of at least this many voxels are sorted with timsort.
_WIDE_ROW = 256


def _regions(a: np.ndarray, cells: Sequence[AxisCells]) -> Iterator[Region]:
    """Per run of equal cells on every axis: the cells' slice and the (n0, e0, ...) view."""
    for runs in itertools.product(*(c.runs() for c in cells)):
        split: list[int] = []
        for cell_slice, _, extent in runs:
            split += [cell_slice.stop - cell_slice.start, extent]
        voxels = a[tuple(r[1] for r in runs)]
        yield tuple(r[0] for r in runs), voxels.reshape(split)


def _offsets(view: np.ndarray) -> Iterator[tuple[int | slice, ...]]:
    """Index tuples of the view, one per offset inside a cell, each over all cells."""
    extents = view.shape[1::2]
    for offset in itertools.product(*(range(e) for e in extents)):
        key: list[int | slice] = []
        for k in offset:
            key += [slice(None), k]
        yield tuple(key)


def _uniform(
    values: np.ndarray, same: np.ndarray | None, start: Sequence[int], factor: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Each cell's first value, and whether all its values are equal (and, when ``same`` marks
    which finer cells are uniform themselves, all of those uniform)."""
    cells = grid(start, values.shape, factor)
    shape = tuple(c.count for c in cells)
    first = np.empty(shape, dtype=values.dtype, order=layout(values))
    uniform = np.ones(shape, dtype=bool, order=layout(values))
    same_regions = _regions(same, cells) if same is not None else None
    for cell_key, view in _regions(values, cells):
        same_view = next(same_regions)[1] if same_regions is not None else None
        head = view[next(_offsets(view))]
        first[cell_key] = head
        flags = uniform[cell_key]
        for key in _offsets(view):
            flags &= view[key] == head
            if same_view is not None:
                flags &= same_view[key]
    return first, uniform


def _rows(view: np.ndarray, axes: Sequence[int]) -> np.ndarray:
    """Every cell of the view as a row (a copy: rows are sorted in place), cells in C order of
    the cell axes taken in ``axes`` order; a row's voxels follow memory order, so the copy
    reads the block in runs."""
    order = [2 * a for a in axes] + [2 * a + 1 for a in axes]
    n_cells = int(np.prod(view.shape[0::2]))
    rows: np.ndarray = view.transpose(order).reshape(n_cells, -1)
    return rows.copy() if np.may_share_memory(rows, view) else rows


def _picked_rows(view: np.ndarray, mixed: np.ndarray) -> np.ndarray:
    """The voxels of the cells flagged in ``mixed`` as rows, cells in C order of ``mixed``.

    One ``np.take`` of element offsets into the block's buffer when the view's strides allow
    it (a C or Fortran block); otherwise fancy indexing, which copies cell by cell.
    """
    count = int(mixed.sum())
    item = view.itemsize
    strides = view.strides
    if all(st > 0 and st % item == 0 for st in strides) and view.size > 0:
        steps = [st // item for st in strides]
        cell_start = np.zeros(count, dtype=np.int64)
        for where, step in zip(np.nonzero(mixed), steps[0::2], strict=True):
            cell_start += where * step
        in_cell = np.zeros(1, dtype=np.int64)
        for extent, step in zip(view.shape[1::2], steps[1::2], strict=True):
            in_cell = (in_cell[:, None] + np.arange(extent, dtype=np.int64) * step).reshape(-1)
        span = sum((n - 1) * st for n, st in zip(view.shape, steps, strict=True)) + 1
        flat = np.lib.stride_tricks.as_strided(view, shape=(span,), strides=(item,))
        rows: np.ndarray = np.take(flat, cell_start[:, None] + in_cell[None, :])
        return rows
    index: list[np.ndarray | slice] = []
    for where in np.nonzero(mixed):
        index += [where, slice(None)]
    picked: np.ndarray = view[tuple(index)].reshape(count, -1)
    return picked


def _modes(rows: np.ndarray) -> np.ndarray:
    """The most frequent value of each row; the lowest of the most frequent ones on ties.

    Works on the runs of the sorted rows (one per distinct value of a row), not on every
    element: rows of labels have few.
    """
    # Timsort finds the runs that neighbouring voxels of one label leave in a wide row (twice
    # as fast at 512 voxels); quicksort is faster on short rows.
    rows.sort(axis=1, kind="stable" if rows.shape[1] >= _WIDE_ROW else "quicksort")
    width = rows.shape[1]
    flat = rows.reshape(-1)
    starts_run = np.empty(rows.shape, dtype=bool)
    starts_run[:, 0] = True
    np.not_equal(rows[:, 1:], rows[:, :-1], out=starts_run[:, 1:])
    starts = np.flatnonzero(starts_run)
    lengths = np.diff(starts, append=flat.size)
    row_of = starts // width
    first_run = np.flatnonzero(starts % width == 0)
    longest = np.maximum.reduceat(lengths, first_run)
    winners = np.flatnonzero(lengths == longest[row_of])
    # The first winning run of each row is its lowest value: runs are in sorted order.
    first_winner = np.ones(len(winners), dtype=bool)
    np.not_equal(row_of[winners[1:]], row_of[winners[:-1]], out=first_winner[1:])
    modes: np.ndarray = flat[starts[winners[first_winner]]]
    return modes


def _medians(rows: np.ndarray) -> np.ndarray:
    """The lower median of each row (element ``(n - 1) // 2`` of the sorted row)."""
    k = (rows.shape[1] - 1) // 2
    rows.partition(k, axis=1)
    medians: np.ndarray = rows[:, k]
    return medians


def _pool_mixed(
    block: np.ndarray, cells: Sequence[AxisCells], mixed: np.ndarray, out: np.ndarray, method: str
) -> None:
    """Write the mode or median of every cell flagged in ``mixed`` into ``out``.

    Where most cells are mixed, every cell of the region is pooled: one transposing copy costs
    less than picking cells out by fancy indexing (uniform rows give back their value).
    """
    pick = _modes if method == "mode" else _medians
    axes = outer_axes(block)
    for cell_key, view in _regions(block, cells):
        region_mixed = mixed[cell_key]
        count = int(region_mixed.sum())
        if count == 0:
            continue
        target = out[cell_key]
        if count > _DENSE * region_mixed.size:
            target.transpose(axes)[...] = pick(_rows(view, axes)).reshape(
                [target.shape[a] for a in axes]
            )
        else:
            target[region_mixed] = pick(_picked_rows(view, region_mixed))


def fits(dtype: np.dtype, factors: Sequence[Sequence[int]]) -> bool:
    """Whether the compiled kernel pools this data: integers or bool in native byte order,
    pooled along at most three axes."""
    pooled = {ax for f in factors for ax, v in enumerate(f) if v > 1}
    return dtype.kind in "biu" and dtype.isnative and len(pooled) <= 3


def rank_levels(
    block: np.ndarray, start: Sequence[int], factors: Sequence[Sequence[int]], method: str
) -> Levels:
    """``mode`` or ``median`` of every cumulative factor, each from the level-0 voxels.

    Integer data goes to the compiled kernel, but for the coarsest cells that the block's faces
    cut (the block is cut at coarsest cell boundaries, which are boundaries of every level's
    cells, so each part pools on its own); other data is sorted here.
    """
    if not fits(block.dtype, factors):
        return _sorted_levels(block, start, factors, method)
    # Imported here: loading numba takes ~0.3 s, which only pyramids of integer data pay.
    from bigarrays.ops.pooling_jit import rank_whole_cells

    out: Levels = []
    for f in factors:
        shape = _pooled_shape(start, block.shape, f)
        out.append((np.empty(shape, dtype=block.dtype, order=layout(block)), level_start(start, f)))
    sections = []
    for s, n, big in zip(start, block.shape, factors[-1], strict=True):
        a = min(-s % big, n)
        b = a + (n - a) // big * big
        sections.append([(lo, hi, lo == a and hi == b) for lo, hi in ((0, a), (a, b), (b, n))
                         if hi > lo])  # fmt: skip
    for parts in itertools.product(*sections):
        key = tuple(slice(lo, hi) for lo, hi, _ in parts)
        part_start = [s + lo for s, (lo, _, _) in zip(start, parts, strict=True)]
        if all(whole for _, _, whole in parts):
            pooled = rank_whole_cells(block[key], factors, method)
            starts = [level_start(part_start, f) for f in factors]
        else:
            levels = _sorted_levels(block[key], part_start, factors, method)
            pooled = [a for a, _ in levels]
            starts = [s for _, s in levels]
        for (target, lo), values, at in zip(out, pooled, starts, strict=True):
            place = zip(at, lo, values.shape, strict=True)
            target[tuple(slice(p - q, p - q + n) for p, q, n in place)] = values
    return out


def _pooled_shape(start: Sequence[int], shape: Sequence[int], factor: Sequence[int]) -> list[int]:
    return [-(-(s + n) // f) - s // f for s, n, f in zip(start, shape, factor, strict=True)]


def _sorted_levels(
    block: np.ndarray, start: Sequence[int], factors: Sequence[Sequence[int]], method: str
) -> Levels:
    out: Levels = []
    values: np.ndarray = block
    same: np.ndarray | None = None
    cur_start = tuple(start)
    for g, f in zip(relative(factors), factors, strict=True):
        values, same = _uniform(values, same, cur_start, g)
        cur_start = level_start(cur_start, g)
        result = values.copy(order="K")
        mixed = ~same
        if mixed.any():
            _pool_mixed(block, grid(start, block.shape, f), mixed, result, method)
        out.append((result, cur_start))
    return out
