"""The compiled transposing copy (``bigarrays.ops.transpose_jit``) behind ``fortran_copy`` and
``ordered_copy``: exact for every dtype, every layout it takes, and NumPy's copy for the rest.
Oracle: NumPy's own copy."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bigarrays import transpose
from bigarrays.ops import transpose_jit
from bigarrays.transpose import fortran_copy, ordered_copy

# Every kind of 1, 2 and 4 bytes (the kernels move their bits), in both byte orders, and some
# the kernels leave to NumPy.
DTYPES = ["uint8", "int8", "bool", "uint16", ">u2", "int16", "float16", "uint32", ">i4",
          "float32", ">f4", "int32", "U1", "uint64", "float64", "complex64", "S3",
          "M8[s]"]  # fmt: skip


@pytest.fixture(autouse=True)
def _kernels_for_any_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """The small arrays hypothesis draws go through the kernels too."""
    monkeypatch.setattr(transpose, "MIN_KERNEL_BYTES", 0)


@pytest.fixture
def kernel_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The ``k`` of every call of a compiled kernel."""
    calls: list[int] = []
    for k, kernel in list(transpose_jit.KERNELS.items()):

        def spy(src: np.ndarray, dst: np.ndarray, k: int = k, kernel: Any = kernel) -> None:
            calls.append(k)
            kernel(src, dst)

        monkeypatch.setitem(transpose_jit.KERNELS, k, spy)
    return calls


def _layouts(data: st.DataObject, a: np.ndarray) -> np.ndarray:
    """``a`` as it is, or a view of a bigger array: strided, offset so that its words are not
    aligned, or reversed along an axis."""
    how = data.draw(st.sampled_from(["plain", "offset", "strided", "reversed"]))
    if how == "offset" and a.ndim:
        # One element more in front of the last axis: every row starts off a word boundary.
        big = np.zeros((*a.shape[:-1], a.shape[-1] + 1), dtype=a.dtype)
        big[..., 1:] = a
        return big[..., 1:]
    if how == "strided" and a.ndim >= 2:
        big = np.zeros((a.shape[0] * 2, *a.shape[1:]), dtype=a.dtype)
        big[::2] = a
        return big[::2]
    if how == "reversed" and a.ndim >= 2:
        return np.ascontiguousarray(a[::-1])[::-1]
    return a


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_fortran_copy_is_exact_for_every_dtype_and_layout(data: st.DataObject) -> None:
    dtype = np.dtype(data.draw(st.sampled_from(DTYPES)))
    side = st.one_of(st.sampled_from([8, 16, 24, 64]), st.integers(1, 19))
    shape = tuple(data.draw(st.lists(side, min_size=1, max_size=4)))
    a = _layouts(data, data.draw(hnp.arrays(dtype, shape)))
    got = fortran_copy(a)
    assert got.flags.f_contiguous
    assert (got.dtype, got.shape) == (a.dtype, a.shape)
    # Bit for bit: NaNs and negative zeros too.
    assert got.tobytes(order="F") == np.asfortranarray(a).tobytes(order="F")
    back = ordered_copy(got, "C")
    if back is not None:
        assert back.flags.c_contiguous
        assert back.tobytes() == np.ascontiguousarray(a).tobytes()


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32", "float32"])
@pytest.mark.parametrize("shape", [(64, 64, 64), (128, 128, 128), (64, 64, 64, 1)])
def test_a_chunk_is_transposed_by_the_kernel(
    kernel_calls: list[int], dtype: str, shape: tuple[int, ...]
) -> None:
    a = np.random.default_rng(1).integers(0, 1 << 30, size=shape).astype(dtype)
    got = ordered_copy(a, "F")
    assert got is not None
    np.testing.assert_array_equal(got, a)
    assert kernel_calls
    assert set(kernel_calls) == {8 // a.itemsize}


@pytest.mark.parametrize("shape", [(1, 64, 48), (64, 48, 1, 1), (64, 1, 48, 1)])
def test_axes_of_one_take_no_part_in_the_layout(
    kernel_calls: list[int], shape: tuple[int, ...]
) -> None:
    # A camera frame one voxel thick, with one channel, into a Fortran-ordered slab or chunk:
    # the strides of its axes of extent 1 say nothing, and the kernel still takes it.
    a = np.random.default_rng(2).integers(0, 60000, size=shape).astype(np.uint16)
    out = np.empty(shape, np.uint16, order="F")
    assert fortran_copy(a, out) is out
    np.testing.assert_array_equal(out, a)
    assert kernel_calls == [4]


@pytest.mark.parametrize(
    "a",
    [
        np.arange(64**3, dtype=">u2").reshape(64, 64, 64).byteswap().view("<u2")[:, :, ::2],
        np.zeros((64, 64, 64), dtype=np.float64),  # 8-byte elements: a plain strided copy
        np.zeros((64, 64, 64), dtype=np.complex64),
        np.array([[b"abc"] * 16] * 16, dtype="S3"),  # 3-byte elements
    ],
)
def test_what_the_kernels_do_not_take_goes_through_numpy(
    kernel_calls: list[int], a: np.ndarray
) -> None:
    got = fortran_copy(a)
    assert got.tobytes(order="F") == np.asfortranarray(a).tobytes(order="F")
    assert kernel_calls == []


def test_a_destination_that_is_not_fortran_like_goes_through_numpy(
    kernel_calls: list[int],
) -> None:
    a = np.random.default_rng(2).integers(0, 255, size=(16, 16, 16), dtype=np.uint8)
    out = np.zeros((16, 16, 16), dtype=np.uint8)  # C-ordered: nothing to transpose
    assert fortran_copy(a, out) is out
    np.testing.assert_array_equal(out, a)
    assert kernel_calls == []


def test_a_piece_laid_out_as_the_file_is_written_as_it_lies(tmp_path: Any) -> None:
    """The engine's transposed copy of a C-ordered piece is the chunk file's bytes already: it
    goes to the store without a second copy through the scratch buffer."""
    import bigarrays as ba

    vol = ba.create(tmp_path / "v", shape=(32, 32, 16), dtype="uint16", chunks=(16, 16, 16),
                    progress=False)  # fmt: skip
    source = vol.level.source
    assert source.fast_raw
    part = np.asfortranarray(
        np.random.default_rng(4).integers(0, 60000, size=(16, 16, 16, 1), dtype=np.uint16)
    )
    scratch = bytearray(b"\xab" * (part.nbytes + 1))
    index = (1, 0, 0, 0)
    box = source.grid.chunk_box(index)
    source.save_view(index, box, part, scratch)
    assert scratch == bytearray(b"\xab" * (part.nbytes + 1))
    np.testing.assert_array_equal(ba.open(tmp_path / "v")[16:32, 0:16, 0:16], part[..., 0])
    # Any other layout still goes through the buffer.
    c_part = np.ascontiguousarray(part[::-1])
    source.save_view(index, box, c_part, scratch)
    assert scratch != bytearray(b"\xab" * (part.nbytes + 1))
    np.testing.assert_array_equal(ba.open(tmp_path / "v")[16:32, 0:16, 0:16], c_part[..., 0])


def test_a_small_write_does_not_load_the_kernels(tmp_path: Any) -> None:
    # numba's import and cache cost about a second: a notebook's first small write skips them.
    import subprocess
    import sys

    code = (
        "import sys, numpy as np, bigarrays as ba\n"
        f"vol = ba.create({str(tmp_path / 'v')!r}, shape=(64, 64, 64), chunks=(32, 32, 32))\n"
        "vol[0:32, 0:32, 0:32] = np.ones((32, 32, 32), np.uint8)\n"
        "assert vol[0:32, 0:32, 0:32].sum() == 32**3\n"
        "print('numba' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
