"""Pooling kernels that reduce cell by cell: mean, min, max and stride.

Integer and bool data reduce separably (one axis at a time) and each level reduces the one
before, which is exact: integer sums are kept whole (never rounded) until the end, and min/max
and stride nest. Floating-point data cannot share work: TensorStore adds (or compares) a cell's
voxels one after another in the memory order of the source, so a float level is computed from
level 0 in exactly that order (see :func:`sequential`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np

from bigarrays.errors import UnsupportedError
from bigarrays.ops.pooling_cells import AxisCells, along, counts, grid, layout, outer_axes

Levels = list[tuple[np.ndarray, tuple[int, ...]]]
Transform = Callable[[np.ndarray], np.ndarray]

_INT64_MAX = 2**63 - 1
# A 64-bit mean splits each value into 32-bit halves whose sums must stay exact in int64.
_MAX_CELL_64 = 2**30


def reduce_axis(
    a: np.ndarray,
    axis: int,
    cells: AxisCells,
    op: np.ufunc,
    dtype: np.dtype,
    identity: object,
    pre: Transform | None = None,
) -> np.ndarray:
    """Reduce ``a`` along ``axis`` with ``op`` over the cells of ``cells``, in ``dtype``."""
    shape = list(a.shape)
    shape[axis] = cells.count
    pairs = list(cells.offsets())
    whole = [pair for pair in pairs if pair[0] == slice(0, cells.count)]

    def part(src: slice) -> np.ndarray:
        voxels = a[along(a.ndim, axis, src)]
        return voxels if pre is None else pre(voxels)

    out: np.ndarray
    if len(whole) >= 2:
        # Two offsets that every cell has start the result in one pass, without a fill.
        out = op(part(whole[0][1]), part(whole[1][1]), dtype=dtype)
        pairs = [pair for pair in pairs if pair not in whole[:2]]
    else:
        out = np.full(shape, identity, dtype=dtype, order=layout(a))
    for dst, src in pairs:
        target = out[along(a.ndim, axis, dst)]
        op(target, part(src), out=target)
    return out


def reduce_cells(
    a: np.ndarray,
    start: Sequence[int],
    factor: Sequence[int],
    op: np.ufunc,
    dtype_for: Callable[[int], tuple[np.dtype, object]],
    pre: Transform | None = None,
) -> np.ndarray:
    """Reduce every pooled axis of ``a`` in turn, outermost in memory first (whole planes).

    ``dtype_for(g)`` gives the accumulator dtype and identity for a reduction by ``g``; ``pre``
    is applied to the voxels of the first reduction only (it reads ``a``).
    """
    cells = grid(start, a.shape, factor)
    out = a
    for axis in outer_axes(a):
        if factor[axis] == 1:
            continue
        dtype, identity = dtype_for(factor[axis])
        out = reduce_axis(out, axis, cells[axis], op, dtype, identity, pre if out is a else None)
    if out is a:
        out = a.astype(dtype_for(1)[0], order="K") if pre is None else pre(a)
    return out


def relative(factors: Sequence[Sequence[int]]) -> list[tuple[int, ...]]:
    """Each cumulative factor divided by the one before (the first by 1)."""
    prev = (1,) * len(factors[0])
    out = []
    for f in factors:
        out.append(tuple(b // a for a, b in zip(prev, f, strict=True)))
        prev = tuple(f)
    return out


def level_start(start: Sequence[int], factor: Sequence[int]) -> tuple[int, ...]:
    return tuple(s // f for s, f in zip(start, factor, strict=True))


# --- min, max (integers and bool) --------------------------------------------------------------


def extreme_levels(
    block: np.ndarray, start: Sequence[int], factors: Sequence[Sequence[int]], op: np.ufunc
) -> Levels:
    """min (``op=np.minimum``) or max of ordered non-float data; level k reduces level k-1."""
    dtype = block.dtype
    if dtype == np.bool_:
        identity: object = op is np.minimum
    else:
        info = np.iinfo(dtype)
        identity = info.max if op is np.minimum else info.min
    out: Levels = []
    cur, cur_start = block, tuple(start)
    for g in relative(factors):
        cur = reduce_cells(cur, cur_start, g, op, lambda _g: (dtype, identity))
        cur_start = level_start(cur_start, g)
        out.append((cur, cur_start))
    return out


# --- mean (integers) -----------------------------------------------------------------------------


def _sum_dtype(kind: str, bound: int) -> np.dtype:
    """The narrowest integer dtype that holds every sum whose magnitude is at most ``bound``,
    with room to spare for the rounding of :func:`_divide` (it adds up to half a divisor)."""
    names = ("uint16", "uint32", "uint64") if kind == "u" else ("int16", "int32", "int64")
    for name in names:
        dt = np.dtype(name)
        if np.iinfo(dt).max >= 2 * bound:
            return dt
    raise AssertionError("bound exceeds 64 bits; the caller splits such sums")


def _divide(sums: np.ndarray, count: int | np.ndarray) -> np.ndarray:
    """``sums / count`` rounded to nearest, ties to even (TensorStore's integer mean).

    A scalar power-of-two count (whole cells of a power-of-two factor, the usual case) divides
    by shifting, in the dtype of the sums.
    """
    if isinstance(count, int) and count & (count - 1) == 0:
        if count == 1:
            return sums
        # floor((s + half - 1 + q_odd) / count): carries exactly when the remainder is above
        # half, or equal to it with an odd quotient.
        shift = count.bit_length() - 1
        rounded = sums >> shift
        rounded &= 1
        rounded += sums
        rounded += count // 2 - 1
        rounded >>= shift
        return rounded
    q = sums // count
    r = sums - q * count
    # r > count/2 rounds up; r == count/2 (count even) rounds to the even quotient.
    half = count // 2
    up = (r > half) | ((r == half) & (count % 2 == 0) & ((q & 1) == 1))
    result: np.ndarray = q + up.astype(q.dtype)
    return result


def _means(sums: np.ndarray, cells: Sequence[AxisCells], dtype: np.dtype) -> np.ndarray:
    """The rounded mean of every cell from its sum: whole cells share one scalar divisor, and
    only the cut cells at the block's faces need their own counts."""
    out = np.empty(sums.shape, dtype=dtype, order=layout(sums))
    whole = []
    for c in cells:
        ext = c.extents()
        j0 = 0 if ext[0] == c.factor else 1
        j1 = c.count if ext[-1] == c.factor else c.count - 1
        whole.append(slice(j0, max(j0, j1)))
    inner = tuple(whole)
    volume = int(np.prod([c.factor for c in cells]))
    out[inner] = _divide(sums[inner], volume)
    for axis, c in enumerate(cells):
        for cut in (slice(0, whole[axis].start), slice(whole[axis].stop, c.count)):
            if cut.stop <= cut.start:
                continue
            key = along(len(cells), axis, cut)
            out[key] = _divide(sums[key].astype(np.int64), counts(cells, key))
    return out


def mean_int_levels(
    block: np.ndarray, start: Sequence[int], factors: Sequence[Sequence[int]]
) -> Levels:
    """Integer mean, exact for every integer dtype, rounded half to even once per level.

    Sums of level k are sums of level k-1's sums, kept in the narrowest dtype that cannot
    overflow. Sums that could pass int64 (64-bit data) are kept as two int64 sums of the high
    and low 32-bit halves and divided exactly.
    """
    dtype = block.dtype
    info = np.iinfo(dtype)
    magnitude = max(info.max, -info.min)
    volume = max(int(np.prod(f)) for f in factors)
    if magnitude * volume > _INT64_MAX:
        return _mean_split_levels(block, start, factors)
    kind = "u" if dtype.kind == "u" else "i"
    out: Levels = []
    sums, sums_start, bound = block, tuple(start), magnitude
    for g, f in zip(relative(factors), factors, strict=True):

        def dtype_for(step: int) -> tuple[np.dtype, object]:
            nonlocal bound
            bound *= step
            return _sum_dtype(kind, bound), 0

        sums = reduce_cells(sums, sums_start, g, np.add, dtype_for)
        sums_start = level_start(sums_start, g)
        out.append((_means(sums, grid(start, block.shape, f), dtype), sums_start))
    return out


def _mean_split_levels(
    block: np.ndarray, start: Sequence[int], factors: Sequence[Sequence[int]]
) -> Levels:
    dtype = block.dtype
    if max(int(np.prod(f)) for f in factors) >= _MAX_CELL_64:
        raise UnsupportedError(
            f"mean of {dtype} over cells of {_MAX_CELL_64} voxels or more is not supported; "
            "expected a smaller cumulative factor"
        )
    i64 = np.dtype(np.int64)

    def high(v: np.ndarray) -> np.ndarray:
        # An arithmetic shift for int64 (the high half keeps the sign), logical for uint64.
        h: np.ndarray = (v >> np.array(32, dtype=v.dtype)).astype(i64)
        return h

    def low(v: np.ndarray) -> np.ndarray:
        lo32: np.ndarray = (v & np.array(0xFFFFFFFF, dtype=v.dtype)).astype(i64)
        return lo32

    out: Levels = []
    hi: np.ndarray = block
    lo: np.ndarray = block
    cur_start = tuple(start)
    for k, (g, f) in enumerate(zip(relative(factors), factors, strict=True)):
        first = k == 0
        hi = reduce_cells(hi, cur_start, g, np.add, lambda _g: (i64, 0), high if first else None)
        lo = reduce_cells(lo, cur_start, g, np.add, lambda _g: (i64, 0), low if first else None)
        cur_start = level_start(cur_start, g)
        c = counts(grid(start, block.shape, f))
        # total = hi * 2**32 + lo = c * (qh * 2**32 + ql + q2) + r with 0 <= r < c; the
        # quotient is assembled modulo 2**64, exact because the mean fits the dtype.
        qh, rh = np.divmod(hi, c)
        ql, rl = np.divmod(lo, c)
        q2, r = np.divmod(rh * (1 << 32) + rl, c)
        with np.errstate(over="ignore"):
            q = (
                (qh.astype(np.uint64) << np.uint64(32))
                + ql.astype(np.uint64)
                + q2.astype(np.uint64)
            )
            half = c.astype(np.uint64) // np.uint64(2)
            r64 = r.astype(np.uint64)
            even = (c % 2 == 0) & ((q & np.uint64(1)) == 1)
            value = q + ((r64 > half) | ((r64 == half) & even)).astype(np.uint64)
        out.append((value.view(np.uint64).astype(dtype, casting="unsafe"), cur_start))
    return out


# --- float mean, min, max in TensorStore's order ----------------------------------------------


def sequential(
    block: np.ndarray, start: Sequence[int], factor: Sequence[int], kind: str
) -> np.ndarray:
    """``mean``, ``min`` or ``max`` of float or complex data, voxel by voxel in TensorStore's order.

    TensorStore visits a cell's voxels in lexicographic order of their offsets, the axis with
    the largest stride outermost, and folds each into an accumulator: ``acc += v`` (float16 in
    float32), ``acc = v if v < acc else acc`` (min, from +inf) or ``acc = v if acc < v else acc``
    (max, from -inf). Here the fold runs over offsets, vectorised over all cells at once.
    """
    if all(f == 1 or n == 1 for f, n in zip(factor, block.shape, strict=True)):
        # TensorStore copies data that no factor reduces, without the sum that would turn
        # -0.0 into +0.0 (and a complex infinity into NaN).
        return block.copy(order="K")
    with np.errstate(over="ignore", invalid="ignore"):
        return _fold(block, start, factor, kind)


def _fold(block: np.ndarray, start: Sequence[int], factor: Sequence[int], kind: str) -> np.ndarray:
    cells = grid(start, block.shape, factor)
    shape = tuple(c.count for c in cells)
    dtype = block.dtype
    if kind == "mean":
        acc_dtype = np.dtype(np.float32) if dtype == np.float16 else dtype
        acc: np.ndarray = np.zeros(shape, dtype=acc_dtype, order=layout(block))
    else:
        acc_dtype = dtype
        acc = np.full(shape, np.inf if kind == "min" else -np.inf, dtype=dtype, order=layout(block))
    everything = [(slice(None), slice(None))]
    pairs = [list(c.offsets()) if f > 1 else everything for c, f in zip(cells, factor, strict=True)]
    axes = outer_axes(block)
    for combo in itertools.product(*(pairs[ax] for ax in axes)):
        picked = dict(zip(axes, combo, strict=True))
        dst = tuple(picked[ax][0] for ax in range(block.ndim))
        src = tuple(picked[ax][1] for ax in range(block.ndim))
        target = acc[dst]
        v = block[src]
        if kind == "mean":
            np.add(target, v, out=target, casting="unsafe")
        elif kind == "min":
            np.copyto(target, v, where=v < target)
        else:
            np.copyto(target, v, where=target < v)
    if kind != "mean":
        return acc
    c = counts(cells)
    if acc_dtype.kind == "c":
        return _complex_divide(acc, c)
    mean: np.ndarray = (acc / c.astype(acc_dtype)).astype(dtype, copy=False)
    return mean


def _complex_divide(acc: np.ndarray, count: np.ndarray) -> np.ndarray:
    """``acc / complex(count, 0)`` as TensorStore's C++ computes it (libgcc's ``__divsc3``).

    With a zero imaginary divisor that is ``(a + 0*(b/c)) / c`` and ``(b - 0*(a/c)) / c``: finite
    parts round like real divisions (NumPy's complex division does not), an infinite part
    makes the other one NaN, and a NaN + NaN*j result from infinite parts is recovered as
    infinities of the parts' signs (C99 Annex G).
    """
    a, b = acc.real, acc.imag
    c = count.astype(a.dtype)
    zero = a.dtype.type(0)
    x = (a + zero * (b / c)) / c
    y = (b - zero * (a / c)) / c
    lost = np.isnan(x) & np.isnan(y) & (np.isinf(a) | np.isinf(b))
    if lost.any():
        one = a.dtype.type(1)
        sa = np.copysign(np.where(np.isinf(a), one, zero), a)
        sb = np.copysign(np.where(np.isinf(b), one, zero), b)
        inf = a.dtype.type(np.inf)
        x = np.where(lost, inf * (sa * c + sb * zero), x)
        y = np.where(lost, inf * (sb * c - sa * zero), y)
    result = np.empty(acc.shape, dtype=acc.dtype, order=layout(acc))
    result.real = x
    result.imag = y
    return result


# --- stride -------------------------------------------------------------------------------------


def stride_levels(
    block: np.ndarray, start: Sequence[int], factors: Sequence[Sequence[int]]
) -> Levels:
    """The voxel at each multiple of the factor: level k samples level k-1."""
    out: Levels = []
    cur, cur_start = block, tuple(start)
    for g in relative(factors):
        key = []
        new_start = []
        for s, n, step in zip(cur_start, cur.shape, g, strict=True):
            first = -(-s // step)
            key.append(slice(first * step - s, n, step))
            new_start.append(first)
        cur = cur[tuple(key)]
        cur_start = tuple(new_start)
        out.append((cur, cur_start))
    return [(np.array(a, order="K", copy=True), s) for a, s in out]
