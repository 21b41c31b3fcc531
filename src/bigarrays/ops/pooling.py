"""Pooling kernels of image pyramids, voxel for voxel equal to TensorStore's ``downsample``.

A level of a pyramid is level 0 pooled by the cumulative factor, exactly as
``tensorstore.downsample(level0, factor, method)`` computes it (the oracle of the tests, on
tensorstore 0.1.86). The rules, each with how it was established ("source" is TensorStore's
``driver/downsample/downsample_nditerable.cc`` and ``downsample_util.cc``; "experiment" is a
comparison against ``ts.downsample`` of a ``ts.array``; every rule is also checked by the oracle
tests in ``tests/test_pooling.py``):

Geometry
  * Cells are anchored at absolute coordinate 0: cell ``j`` of factor ``f`` covers
    ``[j*f, (j+1)*f)``, whatever the offset of the data (experiment: negative and odd starts).
  * Only in-bounds voxels count: a cell cut by the bounds pools the voxels it has; ``mean``
    divides by their number (experiment).
  * Output domain of ``[lo, hi)``: ``[floor(lo/f), ceil(hi/f))`` for every method but
    ``stride``, which keeps only the voxels at multiples of ``f``:
    ``[ceil(lo/f), floor((hi-1)/f) + 1)``, possibly empty. An empty input gives an empty
    output that starts at the lower bound (source: ``DownsampleInterval``; experiment).

mean
  * Integers: the exact sum (TensorStore accumulates in 64 bits, in 128 bits for 64-bit
    types), divided with rounding to nearest, ties to even, negative values included
    (-1.5 -> -2, -2.5 -> -2) (source ``ComputeOutput``; experiment). Here the sums of a level
    are sums of the previous level's sums, rounded once at the end; 64-bit sums are split
    into two exact int64 sums of the 32-bit halves.
  * float32 and float64 are summed in their own type, float16 in float32, one voxel after
    the other, then divided by the count in that type (float16 rounded back once) (source
    ``MeanAccumulateElement``). The order of the sum is the lexicographic order of the
    voxels' offsets in the cell, the axis with the largest stride outermost: C order for a
    C-ordered array, Fortran order for a Fortran one (experiment: ``[[1e8, 1], [-1e8, 1]]``
    sums to 1 in C order and 2 in Fortran order). So float levels are computed from level 0
    in that order, bit for bit, with NaN and inf propagating as in any float sum.
  * complex: summed in their type like floats, then divided by ``complex(count, 0)`` as
    libgcc's ``__divsc3`` does it: ``(a + 0*(b/c)) / c`` and ``(b - 0*(a/c)) / c``, with C99's
    recovery of infinities (experiment: 0 of 120 000 random cells differ from two real
    divisions, ~11 000 differ from NumPy's complex division; ``(0+inf j)/2`` is
    ``nan+inf j`` and ``(inf+inf j)/2`` is ``inf+inf j`` in TensorStore).
  * When no axis is reduced (every factor 1, or every pooled axis one voxel long) TensorStore
    copies the data without summing it, which keeps -0.0 (a sum would give +0.0) (experiment).
  * bool: TensorStore computes it (the rounded fraction of True); bigarrays refuses it,
    because a mean of labels is a mistake (issue 13).

median
  * The lower median, element ``(n-1)//2`` of the sorted values (source: ``nth_element``
    at ``(size-1)/2``; experiment: median of (1, 2) is 1).
  * Not for complex (TensorStore refuses it); bigarrays also refuses bool (which TensorStore
    treats as mean).

mode
  * The most frequent value; ties go to the lowest value (source: sort, then the first of the
    longest runs; experiment). Complex values order by (real, imaginary) (source
    ``CompareForMode``); bool is the majority, ties to False (source: mean of bool).
  * Allowed for floats but warned (:class:`~bigarrays.errors.FloatModeWarning`).

min, max
  * Integers and bool: the plain minimum / maximum. Floats: TensorStore folds
    ``acc = v if v < acc else acc`` from +inf (max: ``acc < v`` from -inf), so NaN voxels are
    ignored, a cell of NaN only gives +inf (max: -inf), and between -0.0 and +0.0 the first in
    the order above wins (source; experiment). Float min/max are therefore folded in that
    order like float sums. Not for complex (TensorStore refuses them).

stride
  * The voxel at ``j*f`` (source ``DownsampleInterval``; experiment). Any dtype.

Where TensorStore's result is not reproduced
  * ``median`` and ``mode`` of cells with NaN, and the sign of a zero result when a cell holds
    both -0.0 and +0.0: TensorStore hands such cells to ``std::nth_element`` / ``std::sort``,
    whose result for values that are unordered (NaN) or equal (+-0) depends on the library's
    algorithm and the cell size. Here NaN sorts above every number (the median of (NaN, 1)
    is 1, TensorStore's is NaN) and each NaN is a value of its own for the mode.
  * The payload of a NaN made from two NaNs (which one an addition keeps is up to the
    compiled code); NaN stays NaN.
  * A bug of TensorStore 0.1.86 (experiment, thousands of random geometries against a
    brute-force reference): when an axis of the data lies inside a single cell that the data
    cuts on both sides (offset 1, length 2, factor 4), TensorStore pools entries of its
    accumulator that no voxel filled (min of (3, 9) gives 0, means come out as garbage);
    everywhere else it equals the reference. Here such a cell pools the voxels it has.
"""

from __future__ import annotations

import operator
import warnings
from collections.abc import Sequence

import numpy as np

from bigarrays.errors import (
    DownsampleFactorError,
    DownsampleMethodError,
    FloatModeWarning,
    MethodDtypeError,
)
from bigarrays.ops.pooling_cells import AxisCells, outer_axes
from bigarrays.ops.pooling_rank import fits as compiled_rank
from bigarrays.ops.pooling_rank import rank_levels
from bigarrays.ops.pooling_reduce import (
    Levels,
    extreme_levels,
    mean_int_levels,
    sequential,
    stride_levels,
)

METHODS = ("mean", "median", "mode", "min", "max", "stride")

# Blocks are pooled in slabs of about this many bytes (whole cells of the coarsest level).
_SLAB_BYTES = 8 * 2**20
# ... or of this many voxels for mode and median, whose sorts hold several 8-byte words per voxel
# whatever the dtype (measured: ~40 bytes per uint8 voxel, ~50 per uint64 voxel).
_RANK_SLAB_VOXELS = 2**19

_KINDS = {"b": "bool", "i": "integer", "u": "integer", "f": "float", "c": "complex"}
# Item sizes of the float and complex types TensorStore pools (any byte order).
_SIZES = {"float": (2, 4, 8), "complex": (8, 16)}
_REFUSED = {
    "bool": {"mean": "a mean of labels", "median": "a median of labels"},
    "complex": {m: "complex numbers have no order" for m in ("median", "min", "max")},
}


def _known(method: str) -> None:
    if not isinstance(method, str) or method not in METHODS:
        raise DownsampleMethodError(
            f"unknown downsampling method {method!r}; expected one of {', '.join(METHODS)}"
        )


def _fits(method: str, dtype: np.dtype) -> str:
    """The dtype's kind; raises for an unknown method or one that does not fit the dtype."""
    _known(method)
    kind = _KINDS.get(dtype.kind)
    if kind is None or dtype.itemsize not in _SIZES.get(kind, (dtype.itemsize,)):
        raise MethodDtypeError(
            f"cannot downsample data of dtype {dtype}; expected bool, an integer, float16/32/64 "
            "or complex64/128"
        )
    why = _REFUSED.get(kind, {}).get(method)
    if why is not None:
        fitting = [m for m in METHODS if m not in _REFUSED[kind]]
        raise MethodDtypeError(
            f"downsampling method {method!r} does not fit dtype {dtype} ({why}); "
            f"expected one of {', '.join(fitting)}"
        )
    return kind


def check_method(method: str, dtype: np.dtype) -> None:
    """Raise a typed error for a method that does not fit the dtype (``mean``/``median`` of bool,
    ``min``/``max``/``median`` of complex, an unknown method); warn for ``mode`` of floats."""
    dtype = np.dtype(dtype)
    if _fits(method, dtype) == "float" and method == "mode":
        warnings.warn(
            f"downsampling a {dtype} image by 'mode' keeps the lowest value of most cells "
            "(continuous values rarely repeat); 'mean' or 'median' is usual for images",
            FloatModeWarning,
            stacklevel=2,
        )


def _ints(values: Sequence[int], name: str) -> tuple[int, ...]:
    try:
        return tuple(operator.index(v) for v in values)
    except TypeError:
        raise DownsampleFactorError(f"{name} must be integers, got {values!r}") from None


def pooled_bounds(
    start: Sequence[int], stop: Sequence[int], factor: Sequence[int], method: str
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The output domain of pooling the box [start, stop) by ``factor`` (per axis)."""
    _known(method)
    lo_in, hi_in, fac = _ints(start, "start"), _ints(stop, "stop"), _ints(factor, "factor")
    if not len(lo_in) == len(hi_in) == len(fac):
        raise DownsampleFactorError(
            f"start {lo_in}, stop {hi_in} and factor {fac} must have one entry per axis"
        )
    if any(f < 1 for f in fac):
        raise DownsampleFactorError(f"downsampling factors must be positive integers, got {fac}")
    lo_out, hi_out = [], []
    for s, e, f in zip(lo_in, hi_in, fac, strict=True):
        lo = -(-s // f) if method == "stride" else s // f
        if e <= s:
            hi = lo
        elif method == "stride":
            hi = max(lo, (e - 1) // f + 1)
        else:
            hi = -(-e // f)
        lo_out.append(lo)
        hi_out.append(hi)
    return tuple(lo_out), tuple(hi_out)


def _check_factors(ndim: int, factors: Sequence[Sequence[int]]) -> list[tuple[int, ...]]:
    if len(factors) == 0:
        raise DownsampleFactorError("expected at least one cumulative factor, got none")
    out: list[tuple[int, ...]] = []
    prev = (1,) * ndim
    for factor in factors:
        f = _ints(factor, "factor")
        if len(f) != ndim:
            raise DownsampleFactorError(
                f"factor {f} has {len(f)} entries; expected one per axis of the {ndim}-D block"
            )
        if any(v < 1 for v in f):
            raise DownsampleFactorError(f"downsampling factors must be positive integers, got {f}")
        if any(b % a for a, b in zip(prev, f, strict=True)):
            raise DownsampleFactorError(
                f"cumulative factor {f} is not a multiple of the one before it, {prev}"
            )
        out.append(f)
        prev = f
    return out


def pool_levels(
    block: np.ndarray, start: Sequence[int], factors: Sequence[Sequence[int]], method: str
) -> list[tuple[np.ndarray, tuple[int, ...]]]:
    """Pool ``block`` (any ndim, the level-0 voxels of the box that starts at absolute ``start``;
    every voxel in it is in bounds) by each cumulative factor in ``factors`` (each a per-axis
    tuple, each a multiple of the one before, 1 on axes that are not pooled such as channels
    and time); returns, per factor, the pooled array and the absolute start of its box
    (``pooled_bounds(start, start+shape, factor, method)``).

    The block is read, never written or copied whole; float sums follow its memory order
    (pass precomputed blocks in Fortran order and Zarr blocks in their own order, as stored,
    to match TensorStore bit for bit). Work goes slab by slab (whole coarsest cells along the
    outermost axis, about 8 MiB each): memory beyond the block peaks at about 0.3x its bytes,
    the outputs included (measured by tracemalloc on 512x512x256 blocks, every method).
    """
    block = np.asarray(block)
    kind = _fits(method, block.dtype)
    begin = _ints(start, "start")
    if len(begin) != block.ndim:
        raise DownsampleFactorError(
            f"start {begin} has {len(begin)} entries; expected one per axis of the "
            f"{block.ndim}-D block"
        )
    cumulative = _check_factors(block.ndim, factors)
    if block.size == 0:
        end = tuple(s + n for s, n in zip(begin, block.shape, strict=True))
        out: Levels = []
        for f in cumulative:
            lo, hi = pooled_bounds(begin, end, f, method)
            shape = tuple(max(h - s, 0) for s, h in zip(lo, hi, strict=True))
            out.append((np.zeros(shape, dtype=block.dtype), lo))
        return out
    return _by_slabs(block, begin, cumulative, method, kind)


def _by_slabs(
    block: np.ndarray,
    start: tuple[int, ...],
    factors: list[tuple[int, ...]],
    method: str,
    kind: str,
) -> Levels:
    """Pool slab by slab along the outermost axis, each slab whole cells of the coarsest factor.

    Every cell of every level lies in one slab, so the levels are the slabs' levels side by
    side; working memory then scales with a slab, not with the block (the kernels' copies and
    sorts cost up to 1.5x what they read).
    """
    axis = outer_axes(block)[0]
    coarse = AxisCells(start[axis], block.shape[axis], factors[-1][axis])
    per_cell = block.nbytes / max(coarse.count, 1)
    if method in ("mode", "median"):
        if compiled_rank(block.dtype, factors) and _mostly_whole(block, start, factors[-1]):
            # The compiled kernel needs no memory but its outputs.
            return _pool(block, start, factors, method, kind)
        per_cell *= _SLAB_BYTES / _RANK_SLAB_VOXELS / block.dtype.itemsize
    step = max(1, int(_SLAB_BYTES // per_cell))
    if step >= coarse.count:
        return _pool(block, start, factors, method, kind)
    firsts = coarse.firsts()
    slabs: list[Levels] = []
    for j in range(0, coarse.count, step):
        lo = int(firsts[j])
        hi = int(firsts[j + step]) if j + step < coarse.count else block.shape[axis]
        key = tuple(slice(lo, hi) if ax == axis else slice(None) for ax in range(block.ndim))
        sub_start = tuple(s + lo if ax == axis else s for ax, s in enumerate(start))
        slabs.append(_pool(block[key], sub_start, factors, method, kind))
    return [
        (np.concatenate([levels[k][0] for levels in slabs], axis=axis), slabs[0][k][1])
        for k in range(len(factors))
    ]


def _mostly_whole(block: np.ndarray, start: Sequence[int], factor: Sequence[int]) -> bool:
    """Whether at least 7/8 of the block lies in whole cells of ``factor`` (the rest, cut by
    the block's faces, is sorted by the NumPy kernel, whose memory grows with what it sorts)."""
    whole = 1
    for s, n, f in zip(start, block.shape, factor, strict=True):
        first = min(-s % f, n)
        whole *= (n - first) // f * f
    return whole * 8 >= block.size * 7


def _pool(
    block: np.ndarray,
    start: tuple[int, ...],
    factors: list[tuple[int, ...]],
    method: str,
    kind: str,
) -> Levels:
    if method == "stride":
        return stride_levels(block, start, factors)
    if method in ("mode", "median"):
        return rank_levels(block, start, factors, method)
    if kind in ("float", "complex"):
        return [
            (
                sequential(block, start, f, method),
                tuple(s // v for s, v in zip(start, f, strict=True)),
            )
            for f in factors
        ]
    if method == "mean":
        return mean_int_levels(block, start, factors)
    return extreme_levels(block, start, factors, np.minimum if method == "min" else np.maximum)
