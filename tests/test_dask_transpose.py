"""C-ordered Dask blocks into a Fortran-ordered volume: ``fortran_copy`` and the pieces
``ba.store`` has the engine hand the volume. Oracle: ``np.asfortranarray``."""

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


def test_store_hands_the_source_fortran_ordered_pieces_of_c_ordered_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Blocks reach the volume as Dask made them (no copy of a whole block); the engine
    transposes each chunk's piece as it cuts it."""
    vol = ba.create(tmp_path / "v", shape=(64, 48, 40), dtype="uint8", chunks=(16, 16, 8),
                    voxel_offset=(-9, 3, 1), progress=False)  # fmt: skip
    data = np.random.default_rng(6).integers(0, 255, size=vol.shape, dtype=np.uint8)
    blocks: list[np.ndarray] = []
    pieces: list[np.ndarray] = []
    write = ba.BigArray.write
    source = vol.level.source
    save_view = source.save_view

    def spy(self: ba.BigArray, box: Any, value: np.ndarray, **kw: Any) -> None:
        blocks.append(value)
        write(self, box, value, **kw)

    def spy_save(index: Any, box: Any, part: np.ndarray, scratch: bytearray) -> None:
        pieces.append(part.copy(order="K"))
        save_view(index, box, part, scratch)

    monkeypatch.setattr(ba.BigArray, "write", spy)
    monkeypatch.setattr(source, "save_view", spy_save)
    ba.store(da.from_array(np.ascontiguousarray(data), chunks=(32, 16, 16)), vol,
             blocks=(32, 16, 16), scheduler="sync")  # fmt: skip
    assert len(blocks) == 2 * 3 * 3  # one write per block: 64/32 x 48/16 x 40/16
    assert not any(block.flags.f_contiguous for block in blocks)  # still laid out as Dask made them
    assert len(pieces) == 4 * 3 * 5
    assert all(piece.flags.f_contiguous for piece in pieces)
    np.testing.assert_array_equal(ba.open(vol.url)[...], data)
