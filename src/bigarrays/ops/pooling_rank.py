"""Pooling by rank: the mode and the median of each cell, always from the level-0 voxels.

Both need a cell's values together. Most cells of a label volume (and many of an image) hold
one value only, so uniformity is found first, cheaply and level by level (a coarse cell is
uniform when its finer cells are uniform and equal); only the other cells are gathered as rows
of their level-0 voxels and sorted. The block is cut into runs of cells of equal extent (the
cut first and last cells of an axis apart from the whole ones), so rows never need padding.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from bigarrays.ops.pooling_cells import AxisCells, along, grid, layout, outer_axes
from bigarrays.ops.pooling_reduce import Levels, level_start, relative


def _uniform_axis(
    values: np.ndarray, same: np.ndarray | None, axis: int, cells: AxisCells
) -> tuple[np.ndarray, np.ndarray]:
    """Along one axis: each cell's first value, and whether all of its values equal that one."""
    first = np.take(values, cells.firsts(), axis=axis)
    shape = list(values.shape)
    shape[axis] = cells.count
    out_same = np.ones(shape, dtype=bool, order=layout(values))
    for dst, src in cells.offsets():
        target = out_same[along(values.ndim, axis, dst)]
        eq = values[along(values.ndim, axis, src)] == first[along(values.ndim, axis, dst)]
        if same is not None:
            eq &= same[along(values.ndim, axis, src)]
        target &= eq
    return first, out_same


def _uniform(
    values: np.ndarray, same: np.ndarray | None, start: Sequence[int], factor: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Each cell's first value and whether the cell is uniform (``same`` marks finer cells that
    are uniform themselves; None when ``values`` are voxels)."""
    cells = grid(start, values.shape, factor)
    for axis in outer_axes(values):
        if factor[axis] == 1:
            continue
        values, same = _uniform_axis(values, same, axis, cells[axis])
    if same is None:
        same = np.ones(values.shape, dtype=bool)
    return values, same


def _mode_rows(rows: np.ndarray) -> np.ndarray:
    """The most frequent value of each row; the lowest of the most frequent ones on ties."""
    s = np.sort(rows, axis=1)
    n = s.shape[1]
    new_run = np.empty(s.shape, dtype=bool)
    new_run[:, 0] = True
    np.not_equal(s[:, 1:], s[:, :-1], out=new_run[:, 1:])
    position = np.arange(n, dtype=np.int32 if n < 2**31 else np.int64)
    run_start = np.maximum.accumulate(np.where(new_run, position, 0), axis=1)
    # argmax returns the first maximum: the earliest (lowest) value among equally long runs.
    best = np.argmax(position - run_start, axis=1)
    modes: np.ndarray = s[np.arange(len(s)), best]
    return modes


def _median_rows(rows: np.ndarray) -> np.ndarray:
    """The lower median of each row (element ``(n - 1) // 2`` of the sorted row)."""
    k = (rows.shape[1] - 1) // 2
    return np.partition(rows, k, axis=1)[:, k]


def _gather(
    block: np.ndarray, cells: Sequence[AxisCells], todo: np.ndarray, method: str
) -> np.ndarray:
    """Pool the cells flagged in ``todo`` from the voxels of ``block``, run of equal cells by run;
    the cells not flagged are left 0."""
    out: np.ndarray = np.zeros(todo.shape, dtype=block.dtype, order=layout(block))
    pick = _mode_rows if method == "mode" else _median_rows
    for runs in itertools.product(*(c.runs() for c in cells)):
        cell_key = tuple(r[0] for r in runs)
        where = np.nonzero(todo[cell_key])
        if len(where[0]) == 0:
            continue
        voxels = block[tuple(r[1] for r in runs)]
        split: list[int] = []
        for r in runs:
            split += [r[0].stop - r[0].start, r[2]]
        # (n0, e0, n1, e1, ...): cell index and position in the cell on alternate axes.
        cells_view = voxels.reshape(split)
        key: list[np.ndarray | slice] = []
        for w in where:
            key += [w, slice(None)]
        rows = cells_view[tuple(key)].reshape(len(where[0]), -1)
        region = out[cell_key]
        region[where] = pick(rows)
    return out


def rank_levels(
    block: np.ndarray, start: Sequence[int], factors: Sequence[Sequence[int]], method: str
) -> Levels:
    """``mode`` or ``median`` of every cumulative factor, each from the level-0 voxels."""
    out: Levels = []
    values: np.ndarray = block
    same: np.ndarray | None = None
    cur_start = tuple(start)
    for g, f in zip(relative(factors), factors, strict=True):
        values, same = _uniform(values, same, cur_start, g)
        cur_start = level_start(cur_start, g)
        todo = ~same
        if todo.any():
            pooled = _gather(block, grid(start, block.shape, f), todo, method)
            result = np.where(same, values, pooled)
        else:
            result = values.copy(order="K")
        out.append((result, cur_start))
    return out
