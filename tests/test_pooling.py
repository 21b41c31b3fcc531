"""The pooling kernels of pyramids against their oracle, ``tensorstore.downsample``."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pytest
import tensorstore as ts
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bigarrays.errors import (
    BigArraysError,
    DownsampleFactorError,
    DownsampleMethodError,
    FloatModeWarning,
    MethodDtypeError,
)
from bigarrays.ops.pooling import METHODS, check_method, pool_levels, pooled_bounds

INTS = ["int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"]
FLOATS = ["float16", "float32", "float64"]
COMPLEX = ["complex64", "complex128"]
DTYPES = {
    "mean": INTS + FLOATS + COMPLEX,
    "median": INTS + FLOATS,
    "mode": ["bool", *INTS, *FLOATS, *COMPLEX],
    "min": ["bool", *INTS, *FLOATS],
    "max": ["bool", *INTS, *FLOATS],
    "stride": ["bool", *INTS, *FLOATS, *COMPLEX],
}


# --- the oracle -----------------------------------------------------------------------------------


def _ts_downsample(x: np.ndarray, start: Sequence[int], factor: Sequence[int], method: str):
    view = ts.array(x)[ts.d[:].translate_to[tuple(start)]]
    out = ts.downsample(view, list(factor), method)
    return out.read().result(), tuple(int(v) for v in out.domain.inclusive_min)


def oracle(x: np.ndarray, start: Sequence[int], factor: Sequence[int], method: str):
    """``ts.downsample``, with one detour around a TensorStore bug.

    When an axis lies inside one cell that the data cuts on both sides, TensorStore 0.1.86
    returns garbage (it pools entries of its accumulator that no voxel filled: the cell of
    [3, 9] at offset 1 by factor 4 has min 0). Moving such an axis back to the start of its cell
    keeps the cell, its voxels and their order, and TensorStore gets that one right.
    """
    moved = tuple(
        s - s % f if s % f > 0 and s % f + n < f else s
        for s, n, f in zip(start, x.shape, factor, strict=True)
    )
    if method == "stride":
        moved = tuple(start)
    return _ts_downsample(x, moved, factor, method)


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal shape, dtype and bit patterns (-0.0 differs from +0.0), where NaN equals any NaN.

    The payload of a NaN made from two NaNs depends on the order in which the machine code
    adds them, which neither TensorStore nor NumPy promise.
    """
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind not in "fc":
        return np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()
    parts = [(a.real, b.real), (a.imag, b.imag)] if a.dtype.kind == "c" else [(a, b)]
    for x, y in parts:
        nan_x, nan_y = np.isnan(x), np.isnan(y)
        if not np.array_equal(nan_x, nan_y) or x[~nan_x].tobytes() != y[~nan_y].tobytes():
            return False
    return True


def assert_like_tensorstore(x: np.ndarray, start, factors, method: str) -> None:
    levels = pool_levels(x, start, factors, method)
    assert len(levels) == len(factors)
    for (got, got_start), factor in zip(levels, factors, strict=True):
        want, want_start = oracle(x, start, factor, method)
        assert got_start == want_start, (factor, got_start, want_start)
        assert same_bits(got, want), (factor, got, want)
        stop = tuple(s + n for s, n in zip(start, x.shape, strict=True))
        lo, hi = pooled_bounds(start, stop, factor, method)
        assert lo == got_start
        assert tuple(h - low for low, h in zip(lo, hi, strict=True)) == got.shape


# --- strategies -----------------------------------------------------------------------------------


def _elements(dtype: np.dtype, method: str) -> st.SearchStrategy:
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        # Small values make ties (mode, median, the .5 of a mean); extremes test exactness.
        return st.one_of(
            st.integers(0, 3),
            st.integers(int(info.min), int(info.max)),
            st.sampled_from([int(info.min), int(info.max)]),
        )
    if dtype.kind == "b":
        return st.booleans()
    width = {"float16": 16, "float32": 32, "float64": 64}
    # median and mode of cells with NaN or both signed zeros are not TensorStore's (documented).
    wild = method not in ("median", "mode")
    if dtype.kind == "f":
        special = [np.inf, -np.inf, 0.0, 1.0, 0.5] + ([np.nan, -0.0] if wild else [])
        return st.one_of(
            st.floats(width=width[dtype.name], allow_nan=wild, allow_subnormal=True),
            st.sampled_from(special),
        ).map(lambda v: v if wild else v + 0.0)
    part = np.dtype(dtype.name.replace("complex", "float")).itemsize * 4
    real = st.one_of(st.floats(width=part, allow_nan=wild), st.sampled_from([0.0, 1.0, np.inf]))
    return st.builds(complex, real, real).map(lambda v: v if wild else v + 0.0)


@st.composite
def cases(draw, methods: Sequence[str]):
    method = draw(st.sampled_from(methods))
    dtype = np.dtype(draw(st.sampled_from(DTYPES[method])))
    ndim = draw(st.integers(1, 4))
    shape = tuple(draw(st.integers(1, 7 if ndim < 4 else 4)) for _ in range(ndim))
    start = tuple(draw(st.integers(-9, 9)) for _ in range(ndim))
    factor = tuple(draw(st.integers(1, 3)) for _ in range(ndim))
    factors = [factor]
    for _ in range(draw(st.integers(0, 2))):
        factor = tuple(f * draw(st.integers(1, 2)) for f in factor)
        factors.append(factor)
    x = draw(hnp.arrays(dtype, shape, elements=_elements(dtype, method)))
    if draw(st.booleans()):
        x = np.asfortranarray(x)
    return x, start, factors, method


# --- oracle tests ---------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(cases(["mean"]))
def test_mean_equals_tensorstore(case) -> None:
    assert_like_tensorstore(*case)


@settings(max_examples=80, deadline=None)
@given(cases(["min", "max"]))
def test_min_max_equal_tensorstore(case) -> None:
    assert_like_tensorstore(*case)


@settings(max_examples=100, deadline=None)
@given(cases(["median", "mode"]))
def test_median_mode_equal_tensorstore(case) -> None:
    assert_like_tensorstore(*case)


@settings(max_examples=60, deadline=None)
@given(cases(["stride"]))
def test_stride_equals_tensorstore(case) -> None:
    assert_like_tensorstore(*case)


@pytest.mark.parametrize("order", ["C", "F"])
def test_float_mean_adds_in_the_memory_order_of_the_block(order: str) -> None:
    # 1e8 + 1 rounds back to 1e8 in float32: the order of the sum shows in the result.
    x = np.array([[1e8, 1], [-1e8, 1]], dtype=np.float32, order=order)
    [(got, _)] = pool_levels(x, (0, 0), [(2, 2)], "mean")
    assert got[0, 0] * 4 == (1.0 if order == "C" else 2.0)
    assert_like_tensorstore(x, (0, 0), [(2, 2)], "mean")


def test_integer_mean_rounds_half_to_even_with_negative_values() -> None:
    x = np.array([0, 1, 2, 3, -1, -2, -3, -4, 5, 6], dtype=np.int16)
    [(got, start)] = pool_levels(x, (0,), [(2,)], "mean")
    assert got.tolist() == [0, 2, -2, -4, 6]
    assert start == (0,)
    assert_like_tensorstore(x, (0,), [(2,)], "mean")


@pytest.mark.parametrize("dtype", ["int64", "uint64"])
def test_64_bit_mean_is_exact_at_the_extremes(dtype: str) -> None:
    info = np.iinfo(dtype)
    x = np.array(
        [info.max, info.max, info.max, info.max - 1, info.min, info.max, info.min, info.min + 1],
        dtype=dtype,
    )
    levels = pool_levels(x, (-3,), [(2,), (4,), (8,)], "mean")
    for (got, start), f in zip(levels, (2, 4, 8), strict=True):
        lo = -3 // f
        want = []
        for j in range(lo, lo + len(got)):
            cell = [int(v) for v in x[max(j * f + 3, 0) : min((j + 1) * f + 3, len(x))]]
            total, n = sum(cell), len(cell)
            q, r = divmod(total, n)
            want.append(q + (2 * r > n or (2 * r == n and q % 2 == 1)))
        assert got.tolist() == want
        assert start == (lo,)
    assert_like_tensorstore(x, (-3,), [(2,), (4,), (8,)], "mean")


def test_float_min_max_ignore_nan_and_keep_the_first_zero() -> None:
    x = np.array([np.nan, np.nan, np.nan, 1, 1, np.nan, -0.0, 0.0, 0.0, -0.0], np.float32)
    [(low, _)] = pool_levels(x, (0,), [(2,)], "min")
    [(high, _)] = pool_levels(x, (0,), [(2,)], "max")
    assert low.tolist() == [np.inf, 1, 1, 0, 0]
    assert np.signbit(low).tolist() == [False, False, False, True, False]
    assert high.tolist() == [-np.inf, 1, 1, 0, 0]
    assert np.signbit(high).tolist() == [True, False, False, True, False]
    for method in ("min", "max"):
        assert_like_tensorstore(x, (0,), [(2,)], method)


def test_median_is_the_lower_one_and_mode_ties_go_to_the_lowest_value() -> None:
    x = np.array([[7, 3, 5, 9], [3, 7, 9, 5]], dtype=np.uint64)
    [(median, _)] = pool_levels(x, (0, 0), [(2, 2)], "median")
    [(mode, _)] = pool_levels(x, (0, 0), [(2, 2)], "mode")
    assert median.tolist() == [[3, 5]]
    assert mode.tolist() == [[3, 5]]
    for method in ("median", "mode"):
        assert_like_tensorstore(x, (0, 0), [(2, 2)], method)


def test_median_and_mode_put_nan_above_every_number() -> None:
    # TensorStore leaves these to std::nth_element / std::sort; the rule here is NumPy's order.
    x = np.array([np.nan, 1, 1, np.nan, np.nan, np.nan, 2, np.nan], np.float32)
    [(median, _)] = pool_levels(x, (0,), [(2,)], "median")
    [(mode, _)] = pool_levels(x, (0,), [(2,)], "mode")
    assert same_bits(median, np.array([1, 1, np.nan, 2], np.float32))
    assert same_bits(mode, np.array([1, 1, np.nan, 2], np.float32))


@pytest.mark.parametrize("method", ["mean", "median", "mode", "min", "max"])
def test_a_cell_cut_on_both_sides_pools_only_its_voxels(method: str) -> None:
    # The case where TensorStore 0.1.86 reads unfilled accumulator entries (see _clean).
    x = np.array([3, 9], dtype=np.uint32)
    [(got, start)] = pool_levels(x, (1,), [(4,)], method)
    assert start == (0,)
    want = {"mean": 6, "median": 3, "mode": 3, "min": 3, "max": 9}[method]
    assert got.tolist() == [want]


def test_mode_of_labels_finds_true_modes_at_every_level() -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 4, size=(16, 16, 8), dtype=np.uint64) + np.uint64(2**40)
    labels[:8, :8, :4] = 7
    factors = [(2, 2, 2), (4, 4, 2), (8, 8, 4)]
    assert_like_tensorstore(labels, (-2, 5, 0), factors, "mode")
    assert_like_tensorstore(np.asfortranarray(labels), (0, 0, 0), factors, "mode")


def test_levels_keep_the_dtype_and_leave_the_block_alone() -> None:
    x = np.asfortranarray(np.arange(6 * 5 * 4 * 2, dtype=np.uint16).reshape(6, 5, 4, 2))
    before = x.copy()
    for method in METHODS:
        levels = pool_levels(x, (1, 0, -3, 0), [(2, 2, 2, 1), (4, 4, 2, 1)], method)
        for got, _ in levels:
            assert got.dtype == np.uint16
            assert got.shape[-1] == 2
    assert same_bits(x, before)
    # One axis: a cell's voxels are already a row of the block, which must not be sorted.
    line = np.arange(16, 0, -1, dtype=np.int32)
    for method in ("mode", "median"):
        pool_levels(line, (0,), [(4,)], method)
        assert line.tolist() == list(range(16, 0, -1))


def test_channels_are_pooled_separately() -> None:
    x = np.stack([np.full((4, 4), 10, np.uint8), np.full((4, 4), 200, np.uint8)], axis=-1)
    [(got, _)] = pool_levels(x, (0, 0, 0), [(2, 2, 1)], "mean")
    assert got.shape == (2, 2, 2)
    assert (got[..., 0] == 10).all()
    assert (got[..., 1] == 200).all()


def test_an_empty_block_gives_empty_levels() -> None:
    x = np.zeros((0, 3), dtype=np.uint8)
    [(got, start)] = pool_levels(x, (3, 0), [(2, 2)], "mean")
    assert got.shape == (0, 2)
    assert start == (1, 0)


# --- pooled_bounds --------------------------------------------------------------------------------


def test_pooled_bounds_touch_every_cell_and_stride_keeps_multiples() -> None:
    assert pooled_bounds((-3, 0), (4, 7), (2, 3), "mean") == ((-2, 0), (2, 3))
    assert pooled_bounds((-3, 0), (4, 7), (2, 3), "stride") == ((-1, 0), (2, 3))
    assert pooled_bounds((1,), (2,), (2,), "stride") == ((1,), (1,))
    assert pooled_bounds((3,), (3,), (2,), "mode") == ((1,), (1,))


@settings(max_examples=100, deadline=None)
@given(
    st.integers(-20, 20),
    st.integers(0, 12),
    st.integers(1, 6),
    st.sampled_from(METHODS),
)
def test_pooled_bounds_equal_tensorstore_domains(
    start: int, size: int, f: int, method: str
) -> None:
    x = np.zeros(size, dtype=np.uint8)
    view = ts.array(x)[ts.d[:].translate_to[start]]
    domain = ts.downsample(view, [f], method).domain
    lo, hi = pooled_bounds((start,), (start + size,), (f,), method)
    assert (lo[0], hi[0]) == (domain.inclusive_min[0], domain.exclusive_max[0])


@pytest.mark.parametrize("factor", [(0, 2), (-1, 2), (2,), (2, 2, 2)])
def test_pooled_bounds_refuses_bad_factors(factor) -> None:
    with pytest.raises(DownsampleFactorError):
        pooled_bounds((0, 0), (4, 4), factor, "mean")


# --- check_method and bad arguments ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "dtype"),
    [
        ("mean", "bool"),
        ("median", "bool"),
        ("median", "complex64"),
        ("min", "complex128"),
        ("max", "complex64"),
        ("mean", "U4"),
        ("mode", "datetime64[s]"),
        ("mean", "longdouble"),
    ],
)
def test_check_method_refuses_methods_that_do_not_fit_the_dtype(method: str, dtype: str) -> None:
    with pytest.raises(MethodDtypeError) as info:
        check_method(method, np.dtype(dtype))
    assert isinstance(info.value, TypeError)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, BigArraysError)
    assert str(np.dtype(dtype)) in str(info.value)
    with pytest.raises(MethodDtypeError):
        pool_levels(np.zeros(4, dtype=dtype), (0,), [(2,)], method)


@pytest.mark.parametrize("method", ["average", "MEAN", "", None])
def test_check_method_refuses_unknown_methods(method) -> None:
    with pytest.raises(DownsampleMethodError, match="expected one of mean, median"):
        check_method(method, np.dtype("uint8"))
    with pytest.raises(ValueError, match="unknown downsampling method"):
        pool_levels(np.zeros(4, np.uint8), (0,), [(2,)], method)
    with pytest.raises(DownsampleMethodError):
        pooled_bounds((0,), (4,), (2,), method)


def test_check_method_warns_for_mode_of_floats_only() -> None:
    with pytest.warns(FloatModeWarning, match="mode"):
        check_method("mode", np.dtype("float32"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_method("mode", np.dtype("uint64"))
        check_method("mean", np.dtype("float32"))
        check_method("mode", np.dtype("bool"))
        pool_levels(np.zeros(4, np.float32), (0,), [(2,)], "mode")


@pytest.mark.parametrize(
    "factors",
    [[], [(0,)], [(-2,)], [(2, 2)], [(2,), (3,)], [(4,), (2,)], [(1.5,)]],
)
def test_pool_levels_refuses_bad_factor_lists(factors) -> None:
    with pytest.raises(DownsampleFactorError):
        pool_levels(np.zeros(8, np.uint8), (0,), factors, "mean")


def test_pool_levels_refuses_a_start_of_the_wrong_length() -> None:
    with pytest.raises(DownsampleFactorError, match="one per axis"):
        pool_levels(np.zeros((4, 4), np.uint8), (0,), [(2, 2)], "mean")


@pytest.mark.parametrize("method", METHODS)
def test_blocks_that_are_views_pool_like_copies(method: str) -> None:
    rng = np.random.default_rng(5)
    # Few mixed cells, so that mode and median pick them out of the view one by one.
    base = rng.integers(1, 3, size=(13, 10, 9), dtype=np.uint64) * (rng.random((13, 10, 9)) < 0.04)
    factors = [(2, 2, 1), (4, 4, 3)]
    for view in (base[::-1], base[:, ::2], np.asfortranarray(base)[1:, :, ::-2]):
        got = pool_levels(view, (-5, 3, 0), factors, method)
        want = pool_levels(np.ascontiguousarray(view), (-5, 3, 0), factors, method)
        for (a, a_start), (b, b_start) in zip(got, want, strict=True):
            assert a_start == b_start
            assert same_bits(a, b)
        assert_like_tensorstore(np.ascontiguousarray(view), (-5, 3, 0), factors, method)


@pytest.mark.parametrize("method", ["mean", "min", "max"])
@pytest.mark.parametrize("order", ["C", "F"])
def test_float_folds_over_slabs_keep_the_order_of_each_cell(
    method: str, order: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bigarrays.ops import pooling

    monkeypatch.setattr(pooling, "_SLAB_BYTES", 200)
    rng = np.random.default_rng(11)
    x = (rng.standard_normal((11, 9, 7)) * 10.0 ** rng.integers(-3, 8, (11, 9, 7))).astype(
        np.float32
    )
    x[rng.random(x.shape) < 0.05] = -0.0
    x = np.asarray(x, order=order)
    assert_like_tensorstore(x, (-3, 1, 2), [(2, 2, 2), (4, 2, 4)], method)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("order", ["C", "F"])
def test_blocks_pooled_in_slabs_equal_tensorstore(
    method: str, order: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bigarrays.ops import pooling

    monkeypatch.setattr(pooling, "_SLAB_BYTES", 300)
    rng = np.random.default_rng(12)
    x = np.asarray(rng.integers(0, 4, size=(21, 10, 19), dtype=np.int16), order=order)
    x[:8, :4] = 3
    factors = [(2, 2, 1), (4, 2, 3), (8, 4, 6)]
    assert_like_tensorstore(x, (-7, 3, 5), factors, method)


@pytest.mark.parametrize("dtype", [">u2", ">i8", ">f4", ">c8"])
def test_big_endian_blocks_pool_like_native_ones(dtype: str) -> None:
    # Zarr arrays may store big-endian data; the levels keep the block's dtype.
    rng = np.random.default_rng(2)
    native = rng.integers(0, 5, size=(9, 7, 5)).astype(dtype.replace(">", "<"))
    swapped = native.astype(dtype)
    for method in METHODS:
        if np.dtype(dtype).kind == "c" and method in ("median", "min", "max"):
            continue
        want = pool_levels(native, (1, -2, 0), [(2, 2, 1), (4, 4, 2)], method)
        got = pool_levels(swapped, (1, -2, 0), [(2, 2, 1), (4, 4, 2)], method)
        for (a, a_start), (b, b_start) in zip(got, want, strict=True):
            assert a.dtype == np.dtype(dtype)
            assert a_start == b_start
            assert same_bits(a.astype(b.dtype), b)
