"""Writes of arrays in any memory layout: C-ordered, Fortran-ordered and strided arrays of every
element size into unaligned boxes of precomputed (x fastest) and Zarr (C order) volumes, and the
word-wise transposing copy (``ordered_copy``) the engine cuts them with. Oracle: a NumPy model."""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import bigarrays as ba
from bigarrays.transpose import ordered_copy

#: 1, 2, 4, 8 and (Zarr only) 16-byte elements.
PRECOMPUTED_DTYPES = ["bool", "uint8", "int8", "uint16", "int16", "uint32", "float32", "int64",
                      "float64"]  # fmt: skip
ZARR_DTYPES = [*PRECOMPUTED_DTYPES, "float16", "complex64", "complex128"]


def _layout(data: st.DataObject, value: np.ndarray) -> np.ndarray:
    """``value`` (C-ordered) as a C-ordered, Fortran-ordered, strided or permuted array."""
    layout = data.draw(st.sampled_from(["C", "F", "strided", "permuted", "reversed"]), "layout")
    if layout == "F":
        return np.asfortranarray(value)
    if layout == "strided":
        # Every other element of a larger array, along every axis.
        big = np.zeros(tuple(2 * n for n in value.shape), dtype=value.dtype)
        big[tuple(slice(None, None, 2) for _ in value.shape)] = value
        return big[tuple(slice(None, None, 2) for _ in value.shape)]
    if layout == "permuted":
        # A C-ordered array of the axes (1, 2, 0), seen in the value's axis order.
        return np.ascontiguousarray(value.transpose(1, 2, 0)).transpose(2, 0, 1)
    if layout == "reversed":
        return value[::-1, :, ::-1].copy()[::-1, :, ::-1]
    return value


# bool, int64 and float64 are precomputed extensions, which creating a volume warns about.
@pytest.mark.filterwarnings("ignore::bigarrays.errors.ViewerCompatibilityWarning")
@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_writes_of_any_layout_read_back_as_written(data: st.DataObject) -> None:
    fmt = data.draw(st.sampled_from(["precomputed", "zarr"]), "format")
    dtype = np.dtype(data.draw(st.sampled_from(PRECOMPUTED_DTYPES if fmt == "precomputed"
                                               else ZARR_DTYPES), "dtype"))  # fmt: skip
    shape = tuple(data.draw(st.lists(st.integers(1, 40), min_size=3, max_size=3), "shape"))
    chunks = tuple(data.draw(st.lists(st.sampled_from([4, 8, 16, 24]), min_size=3, max_size=3)))
    on_disk = data.draw(st.booleans(), "on disk")
    # A sharded Zarr array is a batched source: the engine hands it every piece at once.
    sharding = None
    if fmt == "zarr" and data.draw(st.booleans(), "sharded"):
        sharding = {"chunk_shape": [c // 2 for c in chunks]}
    model = np.zeros(shape, dtype=dtype)
    with tempfile.TemporaryDirectory() as tmp:
        url = str(Path(tmp) / "v") if on_disk else f"memory://orders-{uuid.uuid4().hex}"
        vol = ba.create(url, shape=shape, dtype=dtype, chunks=chunks, format=fmt,
                        sharding=sharding, progress=False)  # fmt: skip
        for _ in range(data.draw(st.integers(1, 3), "writes")):
            start = [data.draw(st.integers(0, n - 1)) for n in shape]
            stop = [data.draw(st.integers(a + 1, n)) for a, n in zip(start, shape, strict=True)]
            box = tuple(slice(a, b) for a, b in zip(start, stop, strict=True))
            extent = tuple(b - a for a, b in zip(start, stop, strict=True))
            value = data.draw(hnp.arrays(dtype, extent))
            vol[box] = _layout(data, value)
            model[box] = value
        np.testing.assert_array_equal(ba.open(url)[...], model)


@pytest.mark.parametrize("dtype", ["uint8", "bool", "int16", "float32"])
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize(
    "shape", [(64, 64, 64), (37, 64, 61), (8, 3, 16), (64, 1, 64, 1), (1, 24, 1, 40), (64, 9)]
)
def test_ordered_copy_lays_bytes_out_in_the_order_asked(
    dtype: str, order: Literal["C", "F"], shape: tuple[int, ...]
) -> None:
    a = np.random.default_rng(3).integers(0, 255, size=shape).astype(dtype)
    other = np.asfortranarray(a) if order == "C" else np.ascontiguousarray(a)
    got = ordered_copy(other, order)
    assert got is not None
    assert got.flags.c_contiguous if order == "C" else got.flags.f_contiguous
    np.testing.assert_array_equal(got, a)
    assert not np.shares_memory(got, other)
    # A view of part of it, as the engine cuts pieces out of a block, into a buffer it reuses
    # (dirty from the copy before).
    part = other[tuple(slice(n // 8, n - 1) if n >= 16 else slice(None) for n in shape)]
    buffer = bytearray(b"\xff" * (a.nbytes + 5))
    got = ordered_copy(part, order, buffer)
    assert got is not None
    assert got.flags.c_contiguous if order == "C" else got.flags.f_contiguous
    assert np.shares_memory(got, np.frombuffer(buffer, np.uint8))
    np.testing.assert_array_equal(got, part)


@pytest.mark.parametrize(
    "a",
    [
        np.zeros((64, 64, 64), dtype=np.uint8, order="F"),  # in the order asked already
        np.zeros((64, 64, 64), dtype=np.float64),  # NumPy's copy is as fast for 8 bytes
        np.zeros((1, 64, 1), dtype=np.uint8),  # one axis with extent: nothing to transpose
        np.zeros((64, 64, 4), dtype=np.uint8),  # fewer than a word's 8 elements across
        np.zeros((64, 64, 64), dtype=np.uint8)[..., ::2],  # elements not contiguous
    ],
)
def test_ordered_copy_declines_what_numpy_copies_as_fast(a: np.ndarray) -> None:
    assert ordered_copy(a, "F") is None


@pytest.mark.parametrize("fmt", ["precomputed", "zarr"])
@pytest.mark.parametrize("on_disk", [True, False])
def test_the_engine_hands_sources_pieces_in_their_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str, on_disk: bool
) -> None:
    """A byte array in the other order reaches the source already transposed, whole chunks and
    merged parts alike (the source's own copy would move it a byte at a time)."""
    url = str(tmp_path / "v") if on_disk else f"memory://pieces-{uuid.uuid4().hex}"
    vol = ba.create(url, shape=(64, 48, 40), dtype="uint8", chunks=(16, 16, 16), format=fmt,
                    progress=False)  # fmt: skip
    source = vol.level.source
    order = source.order
    seen: list[np.ndarray] = []

    def spy(name: str) -> Any:
        method = getattr(source, name)

        def called(*args: Any, **kw: Any) -> Any:
            seen.append(next(a for a in args if isinstance(a, np.ndarray)))
            return method(*args, **kw)

        return called

    for name in ("save_view", "save", "merge"):
        monkeypatch.setattr(source, name, spy(name))
    value = np.random.default_rng(4).integers(0, 255, size=(60, 41, 37), dtype=np.uint8)
    # Every piece at least a word's 8 bytes across x and z.
    vol[2:62, 3:44, 3:40] = np.asfortranarray(value) if order == "C" else value
    assert seen
    contiguous = "c_contiguous" if order == "C" else "f_contiguous"
    assert all(getattr(part.flags, contiguous) for part in seen)
    np.testing.assert_array_equal(ba.open(url)[2:62, 3:44, 3:40], value)
