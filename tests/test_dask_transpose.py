"""C-ordered Dask blocks into a Fortran-ordered volume: ``fortran_copy`` and its use by
``ba.store``. Oracle: ``np.asfortranarray``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import bigarrays as ba
from bigarrays.transpose import fortran_copy

DTYPES = ["uint8", "int8", "uint16", "int32", "float32", "uint64", "float64", "bool"]


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_fortran_copy_equals_numpy(data: st.DataObject) -> None:
    dtype = np.dtype(data.draw(st.sampled_from(DTYPES)))
    # Sizes that are multiples of 8 take the word-wise path; others the plain one.
    side = st.one_of(st.sampled_from([8, 16, 24]), st.integers(1, 13))
    shape = tuple(data.draw(st.lists(side, min_size=1, max_size=4)))
    a = data.draw(hnp.arrays(dtype, shape))
    got = fortran_copy(a)
    assert got.flags.f_contiguous
    assert (got.dtype, got.shape) == (a.dtype, a.shape)
    np.testing.assert_array_equal(got, a)
    assert not np.shares_memory(got, a)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32"])
def test_fortran_copy_of_a_typical_block(dtype: str) -> None:
    a = np.random.default_rng(5).integers(0, 250, size=(64, 32, 48, 2)).astype(dtype)
    np.testing.assert_array_equal(fortran_copy(a), np.asfortranarray(a))
    np.testing.assert_array_equal(fortran_copy(a[..., 0].copy()), a[..., 0])
    view = a[8:40, 2:30, 8:48, 1]  # a strided view, its last axis not contiguous
    np.testing.assert_array_equal(fortran_copy(view), view)
    view = a[8:40, 2:30, 8:48]  # its last axis contiguous
    np.testing.assert_array_equal(fortran_copy(view), view)


@pytest.mark.parametrize("shape", [(264, 136, 200), (260, 130, 203), (136, 8, 3, 264)])
def test_fortran_copy_of_an_array_larger_than_a_tile(shape: tuple[int, ...]) -> None:
    # Tiles of TILE along every axis; edge tiles not a multiple of 8 take the plain path.
    a = np.random.default_rng(7).integers(0, 250, size=shape).astype("uint8")
    got = fortran_copy(a)
    assert got.flags.f_contiguous
    np.testing.assert_array_equal(got, a)


def test_store_hands_the_engine_fortran_ordered_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vol = ba.create(tmp_path / "v", shape=(64, 48, 40), dtype="uint8", chunks=(16, 16, 8),
                    voxel_offset=(-9, 3, 1), progress=False)  # fmt: skip
    data = np.random.default_rng(6).integers(0, 255, size=vol.shape, dtype=np.uint8)
    orders: list[bool] = []
    write = ba.BigArray.write

    def spy(self: ba.BigArray, box: Any, value: np.ndarray, **kw: Any) -> None:
        orders.append(bool(value.flags.f_contiguous))
        write(self, box, value, **kw)

    monkeypatch.setattr(ba.BigArray, "write", spy)
    ba.store(da.from_array(np.ascontiguousarray(data), chunks=(32, 16, 16)), vol,
             blocks=(32, 16, 16), scheduler="sync")  # fmt: skip
    assert len(orders) == 2 * 3 * 3  # one write per block: 64/32 x 48/16 x 40/16
    assert all(orders)
    np.testing.assert_array_equal(ba.open(vol.url)[...], data)
