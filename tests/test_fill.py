"""``is_fill`` says whether every voxel has exactly the fill value's bits, for every dtype."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bigarrays.fill import filled, is_fill

DTYPES = ["bool", "uint8", "int16", "uint32", "int64", "float16", "float32", "float64",
          "complex64", "complex128"]  # fmt: skip


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fill_value", [0, 1])
@pytest.mark.parametrize("where", [0, 7, -1])
def test_one_voxel_off_the_fill_anywhere_is_seen(dtype: str, fill_value: int, where: int) -> None:
    chunk = filled((4, 5, 3), np.dtype(dtype), fill_value, "F")
    assert is_fill(chunk, fill_value)
    chunk.reshape(-1, order="A")[where] = not fill_value if dtype == "bool" else fill_value + 2
    assert not is_fill(chunk, fill_value)
    assert not is_fill(chunk[::-1, ::-1], fill_value)  # a view holding every voxel


def test_nan_and_signed_zero_fills_compare_bits() -> None:
    assert is_fill(np.full(6, np.nan), np.nan)
    assert not is_fill(np.array([np.nan, 1.0]), np.nan)
    assert not is_fill(np.array([-0.0, 0.0]), 0.0)  # -0.0 is not the fill 0.0
    assert is_fill(np.zeros(0, np.uint8))


@settings(max_examples=200, deadline=None)
@given(hnp.arrays(st.sampled_from(["uint8", "int32", "float64"]), hnp.array_shapes(max_dims=3)),
       st.sampled_from([0, 3]))  # fmt: skip
def test_is_fill_equals_the_numpy_model(chunk: np.ndarray, fill_value: int) -> None:
    bits = chunk.view(f"u{chunk.dtype.itemsize}")
    target = np.asarray(fill_value, chunk.dtype).reshape(1).view(bits.dtype)[0]
    assert is_fill(chunk, fill_value) == bool((bits == target).all())
