"""The compiled mode and median of integer data against ``tensorstore.downsample``, and the
reused block buffers of pyramid runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorstore as ts
from hypothesis import given, settings
from hypothesis import strategies as st

import bigarrays as ba
from bigarrays.box import Box
from bigarrays.ops import pooling_rank
from bigarrays.ops.pooling import pool_levels
from bigarrays.ops.pooling_rank import fits
from bigarrays.pipeline import ChunkEngine

INTS = ["int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"]


def oracle(x: np.ndarray, start, factor, method: str) -> tuple[np.ndarray, tuple[int, ...]]:
    view = ts.array(x)[ts.d[:].translate_to[tuple(start)]]
    out = ts.downsample(view, list(factor), method)
    return out.read().result(), tuple(int(v) for v in out.domain.inclusive_min)


def assert_like_tensorstore(x: np.ndarray, start, factors, method: str) -> None:
    for (got, got_start), factor in zip(pool_levels(x, start, factors, method), factors,
                                        strict=True):  # fmt: skip
        want, want_start = oracle(x, start, factor, method)
        assert got_start == want_start, (factor, got_start, want_start)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want, err_msg=f"factor {factor}")


@st.composite
def label_blocks(draw):
    """Blocks of a few whole coarsest cells (and cut ones at the faces) holding segments: runs
    of equal labels along every axis, from few labels (ties) or the dtype's extremes."""
    method = draw(st.sampled_from(["mode", "median"]))
    dtype = np.dtype(draw(st.sampled_from((["bool"] if method == "mode" else []) + INTS)))
    ndim = draw(st.integers(1, 4))
    step = tuple(draw(st.sampled_from([1, 2, 2, 3])) for _ in range(ndim))
    if ndim == 4:  # a channel axis, never pooled
        step = (*step[:3], 1)
    factors = [step]
    for _ in range(draw(st.integers(0, 2))):
        grow = [draw(st.sampled_from([1, 2])) for _ in range(ndim)]
        factors.append(tuple(f * g if ax < 3 else 1 for ax, (f, g) in enumerate(zip(
            factors[-1], grow, strict=True))))  # fmt: skip
    big = factors[-1]
    shape = tuple(f * draw(st.integers(1, 3)) + draw(st.integers(0, f)) for f in big)
    start = tuple(draw(st.integers(-2 * f, 2 * f)) for f in big)
    if dtype == np.bool_:
        labels = np.array([False, True])
    else:
        info = np.iinfo(dtype)
        extremes = [int(info.min), int(info.max), int(info.min) + 1, int(info.max) - 1]
        picked = draw(st.lists(st.sampled_from([0, 1, 2, 3, *extremes]), min_size=1, max_size=4))
        labels = np.array(picked, dtype=object).astype(dtype)
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    # Segments: a label per box of a random grid, so most finest cells are uniform.
    grain = tuple(int(rng.integers(1, 4)) for _ in range(ndim))
    size = [-(-n // g) for n, g in zip(shape, grain, strict=True)]
    coarse = rng.integers(0, len(labels), size=size)
    index = np.ix_(*(np.arange(n) // g for n, g in zip(shape, grain, strict=True)))
    x = labels[coarse[index]]
    noise = rng.random(shape) < draw(st.sampled_from([0.0, 0.1, 0.5]))
    x[noise] = labels[rng.integers(0, len(labels), size=int(noise.sum()))]
    order = draw(st.sampled_from("CF"))
    return np.asarray(x, order=order), start, factors, method


@settings(max_examples=80, deadline=None)
@given(label_blocks())
def test_compiled_mode_and_median_equal_tensorstore(case) -> None:
    x, start, factors, method = case
    assert fits(x.dtype, factors)
    assert_like_tensorstore(x, start, factors, method)


@pytest.mark.parametrize("dtype", INTS)
@pytest.mark.parametrize("method", ["mode", "median"])
def test_cells_sorted_by_quicksort_order_signed_values(dtype: str, method: str) -> None:
    # 4x4x4 finest cells hold 64 voxels: more than the insertion sort takes. The mode ties
    # between the extremes and the median lies between them: signed order or unsigned shows.
    info = np.iinfo(dtype)
    rng = np.random.default_rng(3)
    middle = -1 if info.min < 0 else info.max // 2
    values = np.array([info.min, middle, info.max, 0, 1], dtype=object).astype(dtype)
    x = values[rng.integers(0, len(values), size=(8, 8, 8))]
    x[:4, :4, :4].reshape(-1)[:32] = info.min
    x[:4, :4, :4].reshape(-1)[32:] = info.max
    assert_like_tensorstore(np.asfortranarray(x), (0, 0, 0), [(4, 4, 4), (8, 8, 8)], method)


def test_whole_cells_go_to_the_compiled_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    sorted_shapes = []
    sort = pooling_rank._sorted_levels

    def spy(block, start, factors, method):
        sorted_shapes.append(block.shape)
        return sort(block, start, factors, method)

    monkeypatch.setattr(pooling_rank, "_sorted_levels", spy)
    rng = np.random.default_rng(0)
    x = np.asfortranarray(rng.integers(0, 3, size=(22, 16, 9)).astype(np.uint64))
    assert_like_tensorstore(x, (0, 0, 0), [(2, 2, 1), (4, 4, 1)], "mode")
    assert sorted_shapes == [(2, 16, 9)]  # the last 2 voxels of x: a cut coarsest cell
    sorted_shapes.clear()
    pool_levels(x, (0, 0, 0), [(2, 2, 1)], "mode")
    assert sorted_shapes == []
    pool_levels(x[:20], (0, 0, 0), [(2, 2, 1)], "mode")
    assert sorted_shapes == []
    pool_levels(x[:20].astype(np.float32), (0, 0, 0), [(2, 2, 1)], "median")
    assert sorted_shapes == [(20, 16, 9)]  # floats are sorted by NumPy


@pytest.mark.parametrize("batched", [False, True])
def test_read_into_a_reused_array_fills_missing_chunks(tmp_path: Path, batched: bool) -> None:
    sharding = {"chunk_shape": (4, 4, 4)} if batched else None
    vol = ba.create(str(tmp_path / "v.zarr"), shape=(8, 8, 8), dtype="uint16", chunks=(4, 4, 4),
                    fill_value=7, sharding=sharding, progress=False)  # fmt: skip
    vol[0:4, 0:4, 0:4] = np.full((4, 4, 4), 3, dtype=np.uint16)
    engine = ChunkEngine(2)
    try:
        source = vol.level.source
        out = np.full((8, 8, 8), 99, dtype=np.uint16, order=source.order)
        got = engine.read(source, Box((0, 0, 0), (8, 8, 8)), out=out)
    finally:
        engine.close()
    assert got is out
    want = np.full((8, 8, 8), 7, dtype=np.uint16)
    want[0:4, 0:4, 0:4] = 3
    np.testing.assert_array_equal(got, want)


def test_pyramid_blocks_read_into_one_buffer_leave_nothing_behind(tmp_path: Path) -> None:
    # Blocks after the first are read into the first one's buffer: a block whose chunks are
    # missing must read as fill value there, not as the block before it.
    vol = ba.create(str(tmp_path / "v"), shape=(64, 64, 32), dtype="uint32", chunks=(16, 16, 16),
                    layer_type="segmentation", progress=False)  # fmt: skip
    data = np.zeros((64, 64, 32), dtype=np.uint32, order="F")
    data[:32] = 5
    data[40:48, 0:16, 0:16] = 9
    vol[0:32, :, :] = data[:32]
    vol[32:64, 0:16, 0:16] = data[32:, 0:16, 0:16]
    vol.downsample(factor=(2, 2, 2), num_mips=2, memory_target=40_000, threads=1)
    for k, f in ((1, 2), (2, 4)):
        want, _ = oracle(data, (0, 0, 0), (f, f, f), "mode")
        np.testing.assert_array_equal(vol.at_mip(k)[...], want)
