"""How the engine pastes chunks into the array it returns: row by row, and into memory that is
not zeroed first when every voxel of the box gets pasted or filled."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import bigarrays as ba
from bigarrays import pipeline
from bigarrays.pipeline import paste_into


@pytest.mark.parametrize("dtype", ["uint8", "int16", "float64", "complex64", "bool"])
@pytest.mark.parametrize("order", ["C", "F"])
def test_paste_into_copies_any_part_of_either_order(dtype: str, order: str) -> None:
    rng = np.random.default_rng(0)
    big = np.zeros((9, 10, 11), dtype=dtype, order=order)  # type: ignore[call-overload]
    src = np.asarray(rng.integers(0, 100, (13, 12, 14)), order=order).astype(dtype)
    for dst_box, src_box in [
        (np.s_[1:5, 2:9, 3:10], np.s_[0:4, 3:10, 5:12]),
        (np.s_[0:9, 0:10, 0:11], np.s_[2:11, 1:11, 0:11]),
        (np.s_[4:5, 2:3, 1:9], np.s_[0:1, 0:1, 0:8]),
        (np.s_[1:6, 0:10, 5:6], np.s_[2:7, 1:11, 3:4]),
        (np.s_[0:3, 0:8:2, 1:10:3], np.s_[0:3, 0:4, 0:3]),
    ]:
        want = big.copy()
        want[dst_box] = src[src_box]
        paste_into(big[dst_box], src[src_box])
        np.testing.assert_array_equal(big, want)


def test_paste_into_casts_like_copyto() -> None:
    dst = np.zeros((4, 4), np.uint16)
    paste_into(dst[1:3, 1:3], np.full((2, 2), 7.9))
    assert dst[1:3, 1:3].tolist() == [[7, 7], [7, 7]]
    assert int(dst.sum()) == 28


@pytest.mark.parametrize("fmt", ["zarr", "precomputed"])
def test_reads_inside_the_bounds_fill_no_array_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    """A box inside the bounds is all pasted or filled piece by piece, missing chunks (never
    written) included, so no filled array is made for it; a box reaching outside still gets one."""
    vol = ba.create(tmp_path / "a", shape=(20, 18, 16), dtype="int16", chunks=(8, 8, 8),
                    format=fmt, fill_value=5 if fmt == "zarr" else None,
                    progress=False)  # fmt: skip
    model = np.full(vol.shape, 5 if fmt == "zarr" else 0, np.int16)
    model[0:8, 0:16, 0:16] = np.arange(8 * 16 * 16).reshape(8, 16, 16)
    vol[0:8, 0:16, 0:16] = model[0:8, 0:16, 0:16]
    made: list[tuple[int, ...]] = []
    filled = pipeline.filled

    def spy(shape: tuple[int, ...], *args: object) -> np.ndarray:
        made.append(tuple(shape))
        return filled(shape, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline, "filled", spy)
    for threads in (1, 3):
        reader = ba.open(tmp_path / "a", threads=threads)
        for box in [np.s_[3:19, 2:17, 1:15], np.s_[...], np.s_[9:20, 0:18, 0:16]]:
            np.testing.assert_array_equal(reader[box], model[box])
        assert made == []
    np.testing.assert_array_equal(reader[-2:4, 0:3, 0:3][2:], model[0:4, 0:3, 0:3])
    assert [shape[:3] for shape in made] == [(6, 3, 3)]
