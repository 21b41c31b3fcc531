"""Compiled mode and median of integer (and bool) data: every level from one pass over level 0.

The NumPy kernel of ``pooling_rank`` sorts the level-0 voxels of each mixed cell once per
level, and most cells of the coarse levels of a label volume are mixed (63% of the 8x8x8 cells
of a segmentation with 30-voxel segments), so its sorts cost ~20 ns per voxel. Here a compiled
loop visits each coarsest cell once: if all its voxels are equal, every level inside it is that
value; otherwise its finest cells are sorted (a handful of voxels each) into histograms, the
distinct values in order with their counts, and each coarser cell's histogram is the merge of
its children's. In a histogram the mode is the first entry of the largest count (ties go to the
lowest value, as TensorStore breaks them) and the lower median is the entry where the counts
pass ``(n - 1) // 2``: both are the statistics of the level-0 voxels, exactly, at every level.

The kernel pools a 3-D array whose every axis holds whole coarsest cells; ``pooling_rank``
cuts off the cells that a block's faces cut and hands those to the NumPy kernel.
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np

from bigarrays.ops.pooling_cells import layout

# Finest cells of at most this many voxels are sorted by insertion, larger ones by quicksort.
_INSERTION = 32
# Cells are laid out in the tile this many elements further apart than their size: a cell
# whose size is a power of two would otherwise put every cell's row y in the same cache set.
_PAD = 64

_jit = numba.njit(nogil=True, cache=True)


@numba.njit(nogil=True, cache=True, inline="always")
def _pick(vals: np.ndarray, cnts: np.ndarray, lo: int, n: int, total: int, median: bool) -> int:
    """Index of the mode (first of the largest counts) or the lower median of a histogram."""
    if median:
        target = (total - 1) // 2
        seen = 0
        for i in range(lo, lo + n):
            seen += cnts[i]
            if seen > target:
                return i
        return lo + n - 1
    best = lo
    for i in range(lo + 1, lo + n):
        if cnts[i] > cnts[best]:
            best = i
    return best


@_jit
def _gather(
    a: np.ndarray, y0: int, z0: int, b0: int, b1: int, b2: int, at: np.ndarray, tile: np.ndarray
) -> None:
    """Copy the row of coarsest cells at (y0, z0) into ``tile``, cell after cell, each cell's
    voxels in nested order (voxel (x, y, z) at ``at[0, x] + at[1, y] + at[2, z]``).

    Read in place, one cell's voxels lie on ``b1 * b2`` rows of the block that are a power of
    two apart, which defeats the caches and the prefetcher; the copy reads whole rows.
    """
    stride = b0 * b1 * b2 + _PAD
    for z in range(b2):
        for y in range(b1):
            offset = at[1, y] + at[2, z]
            row = a[:, y0 + y, z0 + z]
            for c in range(a.shape[0] // b0):
                dst = c * stride + offset
                src = c * b0
                for x in range(b0):
                    tile[dst + at[0, x]] = row[src + x]


@_jit
def _histogram(
    tile: np.ndarray,
    at: int,
    size: int,
    buf: np.ndarray,
    vals: np.ndarray,
    cnts: np.ndarray,
    lo: int,
    flip: np.generic,
) -> int:
    """The histogram of ``tile[at:at+size]`` into ``vals[lo:]``, ``cnts[lo:]``; its length.

    Values are ordered as ``v ^ flip`` (unsigned): ``flip`` is the sign bit for the unsigned
    view of signed data, 0 otherwise."""
    first = tile[at]
    same = True
    for i in range(at + 1, at + size):
        same &= tile[i] == first
    if same:
        vals[lo] = first
        cnts[lo] = size
        return 1
    if size <= _INSERTION:
        for i in range(size):
            v = tile[at + i] ^ flip
            j = i - 1
            while j >= 0 and buf[j] > v:
                buf[j + 1] = buf[j]
                j -= 1
            buf[j + 1] = v
    else:
        for i in range(size):
            buf[i] = tile[at + i] ^ flip
        buf[:size].sort()
    for i in range(size):
        buf[i] ^= flip
    runs = lo
    vals[lo] = buf[0]
    cnts[lo] = 1
    for i in range(1, size):
        if buf[i] == vals[runs]:
            cnts[runs] += 1
        else:
            runs += 1
            vals[runs] = buf[i]
            cnts[runs] = 1
    return runs - lo + 1


@_jit
def _merge(
    mv: np.ndarray,
    mc: np.ndarray,
    src: int,
    n: int,
    vals: np.ndarray,
    cnts: np.ndarray,
    lo: int,
    cn: int,
    flip: np.generic,
) -> int:
    """Merge the histogram ``mv[src, :n]`` with ``vals[lo:lo+cn]`` into ``mv[1 - src]``; the
    merged length."""
    dst = 1 - src
    i = 0
    j = lo
    end = lo + cn
    k = 0
    while i < n and j < end:
        a = mv[src, i]
        b = vals[j]
        if a == b:
            mv[dst, k] = a
            mc[dst, k] = mc[src, i] + cnts[j]
            i += 1
            j += 1
        elif a ^ flip < b ^ flip:
            mv[dst, k] = a
            mc[dst, k] = mc[src, i]
            i += 1
        else:
            mv[dst, k] = b
            mc[dst, k] = cnts[j]
            j += 1
        k += 1
    while i < n:
        mv[dst, k] = mv[src, i]
        mc[dst, k] = mc[src, i]
        i += 1
        k += 1
    while j < end:
        mv[dst, k] = vals[j]
        mc[dst, k] = cnts[j]
        j += 1
        k += 1
    return k


@_jit
def _pool_cell(
    tile: np.ndarray,
    base: int,
    first: np.ndarray,
    sizes: np.ndarray,
    place: np.ndarray,
    median: bool,
    flip: np.generic,
    buf: np.ndarray,
    vals: np.ndarray,
    cnts: np.ndarray,
    lens: np.ndarray,
    mv: np.ndarray,
    mc: np.ndarray,
    out: np.ndarray,
) -> None:
    """Every level's cells inside the mixed coarsest cell at ``tile[base]`` (nested order).

    Level k's cells have ``sizes[k]`` voxels, cell p covers voxels ``p * sizes[k]`` onwards and
    goes to ``out[first[k] + place[k, p]]``; its histogram is at entries ``p * sizes[k]`` of
    row ``k % 2`` of vals and cnts, its length at ``lens[k % 2, p]``.
    """
    vol = sizes[sizes.shape[0] - 1]
    size = sizes[0]
    v0 = vals[0]
    k0 = cnts[0]
    for p in range(vol // size):
        lo = p * size
        n = _histogram(tile, base + lo, size, buf, v0, k0, lo, flip)
        lens[0, p] = n
        out[first[0] + place[0, p]] = v0[_pick(v0, k0, lo, n, size, median)]
    for k in range(1, sizes.shape[0]):
        src = (k - 1) % 2
        dst = k % 2
        child = sizes[k - 1]
        size = sizes[k]
        per = size // child
        for p in range(vol // size):
            m = 0
            n = 0
            for c in range(p * per, p * per + per):
                lo = c * child
                cn = lens[src, c]
                if n == 0:
                    for e in range(cn):
                        mv[m, e] = vals[src, lo + e]
                        mc[m, e] = cnts[src, lo + e]
                    n = cn
                elif n == 1 and cn == 1 and mv[m, 0] == vals[src, lo]:
                    mc[m, 0] += cnts[src, lo]
                else:
                    n = _merge(mv, mc, m, n, vals[src], cnts[src], lo, cn, flip)
                    m = 1 - m
            plo = p * size
            for e in range(n):
                vals[dst, plo + e] = mv[m, e]
                cnts[dst, plo + e] = mc[m, e]
            lens[dst, p] = n
            out[first[k] + place[k, p]] = mv[m, _pick(mv[m], mc[m], 0, n, size, median)]


@_jit
def _rank_cells(
    a: np.ndarray,
    facs: np.ndarray,
    at: np.ndarray,
    place: np.ndarray,
    median: bool,
    flip: np.generic,
    out: np.ndarray,
) -> None:
    """Pool ``a`` (3-D, whole cells of ``facs[-1]``) by every cumulative factor in ``facs``
    (shape (levels, 3)) into ``out``: the levels one after the other, each in Fortran order.

    ``at`` gives each voxel of a coarsest cell its place in nested order (see ``_gather``),
    ``place[k, p]`` the offset of level k's cell p (nested order) from the coarsest cell's first
    cell in that level's output."""
    levels = facs.shape[0]
    b0, b1, b2 = facs[levels - 1, 0], facs[levels - 1, 1], facs[levels - 1, 2]
    vol = b0 * b1 * b2
    sizes = np.empty(levels, dtype=np.int64)
    offsets = np.empty(levels, dtype=np.int64)
    grid = np.empty((levels, 3), dtype=np.int64)
    pos = 0
    for k in range(levels):
        sizes[k] = facs[k, 0] * facs[k, 1] * facs[k, 2]
        for d in range(3):
            grid[k, d] = a.shape[d] // facs[k, d]
        offsets[k] = pos
        pos += grid[k, 0] * grid[k, 1] * grid[k, 2]
    first = np.empty(levels, dtype=np.int64)
    buf = np.empty(vol, dtype=a.dtype)
    vals = np.empty((2, vol), dtype=a.dtype)
    cnts = np.empty((2, vol), dtype=np.int64)
    lens = np.empty((2, vol), dtype=np.int64)
    mv = np.empty((2, vol), dtype=a.dtype)
    mc = np.empty((2, vol), dtype=np.int64)
    n_cells = a.shape[0] // b0
    stride = vol + _PAD
    tile = np.empty(n_cells * stride, dtype=a.dtype)
    for c2 in range(a.shape[2] // b2):
        for c1 in range(a.shape[1] // b1):
            _gather(a, c1 * b1, c2 * b2, b0, b1, b2, at, tile)
            for c0 in range(n_cells):
                for k in range(levels):
                    s0 = b0 // facs[k, 0]
                    s1 = b1 // facs[k, 1]
                    s2 = b2 // facs[k, 2]
                    first[k] = offsets[k] + c0 * s0 + grid[k, 0] * (c1 * s1 + grid[k, 1] * c2 * s2)
                base = c0 * stride
                value = tile[base]
                same = True
                for i in range(base + 1, base + vol):
                    if tile[i] != value:
                        same = False
                        break
                if same:
                    for k in range(levels):
                        for p in range(vol // sizes[k]):
                            out[first[k] + place[k, p]] = value
                else:
                    _pool_cell(tile, base, first, sizes, place, median, flip, buf, vals, cnts,
                               lens, mv, mc, out)  # fmt: skip


def _nested(facs: np.ndarray, grids: list[tuple[int, ...]]) -> tuple[np.ndarray, np.ndarray]:
    """The tables of ``_rank_cells``: per axis, each voxel's share of its nested index in a
    coarsest cell; per level, each cell's (nested index) offset in the level's output."""
    big = facs[-1]
    vol = int(np.prod(big))
    at = np.zeros((3, int(big.max())), dtype=np.int64)
    place = np.zeros((len(facs), vol), dtype=np.int64)
    for d in range(3):
        pos = np.arange(big[d], dtype=np.int64)
        weight = 1
        prev = 1
        # Digits from the finest level out: the offset in the finest cell, then the finest
        # cell's place in its parent, and so on; the axes of one level x fastest.
        steps = [facs[0]] + [facs[k] // facs[k - 1] for k in range(1, len(facs))]
        for step in steps:
            inner = int(np.prod(step[:d]))
            at[d, : big[d]] += (pos // prev % step[d]) * weight * inner
            weight *= int(np.prod(step))
            prev *= int(step[d])
    for k, fac in enumerate(facs):
        per = tuple(int(b // f) for b, f in zip(big, fac, strict=True))
        cells = np.indices(per).reshape(3, -1)
        # The nested index of each of level k's cells is that of its first voxel over its size.
        first_voxel = cells * fac[:, None]
        nested = (at[0, first_voxel[0]] + at[1, first_voxel[1]] + at[2, first_voxel[2]]) // int(
            np.prod(fac)
        )
        local = cells[0] + grids[k][0] * (cells[1] + grids[k][1] * cells[2])
        place[k, nested] = local
    return at, place


def rank_whole_cells(
    block: np.ndarray, factors: Sequence[Sequence[int]], method: str
) -> list[np.ndarray]:
    """``mode`` or ``median`` of ``block`` (see ``pooling_rank.fits``), whose every axis holds whole
    cells of the coarsest factor, by every cumulative factor; arrays in the block's layout."""
    ndim = block.ndim
    facs = np.ones((len(factors), max(3, ndim)), dtype=np.int64)
    facs[:, :ndim] = factors
    data = block.reshape(block.shape + (1,) * (3 - ndim)) if ndim < 3 else block
    # The kernel's three axes: the pooled ones and then others, the fastest in memory first
    # (its x); it runs once per index of the remaining axes.
    strides = [abs(s) for s in data.strides]
    pooled = [ax for ax in range(data.ndim) if facs[-1, ax] > 1]
    rest = sorted((ax for ax in range(data.ndim) if ax not in pooled), key=lambda a: strides[a])
    kernel = sorted(pooled + rest[: 3 - len(pooled)], key=lambda a: strides[a])
    looped = [ax for ax in range(data.ndim) if ax not in kernel]
    order = kernel + looped
    unsigned = data.view(np.dtype(f"u{data.dtype.itemsize}"))
    flip = unsigned.dtype.type(1 << (8 * data.dtype.itemsize - 1) if data.dtype.kind == "i" else 0)
    kfacs = np.ascontiguousarray(facs[:, kernel])
    shapes = [tuple(n // int(f) for n, f in zip(data.shape, fac, strict=True)) for fac in facs]
    outs = [np.empty(s, dtype=block.dtype, order=layout(block)) for s in shapes]
    grids = [tuple(s[ax] for ax in kernel) for s in shapes]
    sizes = [int(np.prod(g)) for g in grids]
    at, place = _nested(kfacs, grids)
    flat = np.empty(sum(sizes), dtype=unsigned.dtype)
    source = unsigned.transpose(order)
    targets = [o.view(unsigned.dtype).transpose(order) for o in outs]
    for index in np.ndindex(*source.shape[3:]):
        _rank_cells(source[(..., *index)], kfacs, at, place, method == "median", flip, flat)
        pos = 0
        for target, grid, size in zip(targets, grids, sizes, strict=True):
            target[(..., *index)] = flat[pos : pos + size].reshape(grid, order="F")
            pos += size
    return [o.reshape(o.shape[:ndim]) if ndim < 3 else o for o in outs]
