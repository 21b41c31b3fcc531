"""Hypothesis strategies for volumes: geometries, boxes around them, and voxel data.

Shipped with the package so that backends, codecs and downstream tools can run the same property
tests as bigarrays itself::

    from hypothesis import given
    from bigarrays.testing.strategies import geometries

    @given(geometries())
    def test_something(geom): ...

This module imports hypothesis at the top; ``bigarrays.testing`` does not import it, so bigarrays
works where hypothesis (a test extra) is missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st

from bigarrays.box import Box

#: Every data type a volume can hold: the format's eight plus bigarrays' three extensions.
FORMAT_DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "float32")
EXTENSION_DTYPES = ("float64", "int64", "bool")
DTYPES = FORMAT_DTYPES + EXTENSION_DTYPES

Vec3 = tuple[int, int, int]


@dataclass(frozen=True)
class Geometry:
    """The shape of a volume: what ``bigarrays.create`` needs besides a URL."""

    size: Vec3
    voxel_offset: Vec3
    chunks: Vec3
    num_channels: int
    dtype: str

    @property
    def bounds(self) -> Box:
        """The volume's voxels in absolute coordinates (3-D)."""
        return Box.from_shape(self.size, self.voxel_offset)

    @property
    def shape(self) -> tuple[int, ...]:
        """What ``BigArray.shape`` reports: ``(x, y, z)`` or ``(x, y, z, c)``."""
        return self.size if self.num_channels == 1 else (*self.size, self.num_channels)

    @property
    def extension_dtype(self) -> bool:
        """True for a data type that only bigarrays reads (creating it warns)."""
        return self.dtype in EXTENSION_DTYPES

    def create_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``bigarrays.create``."""
        return {
            "shape": self.size,
            "dtype": self.dtype,
            "chunks": self.chunks,
            "voxel_offset": self.voxel_offset,
            "num_channels": self.num_channels,
        }

    def block_shape(self, box: Box) -> tuple[int, ...]:
        """The shape of ``vol[box]`` for a 3-D box, with a channel axis when there are several."""
        shape = box.shape[:3]
        return shape if self.num_channels == 1 else (*shape, self.num_channels)


def _vec3(elements: st.SearchStrategy[int]) -> st.SearchStrategy[Vec3]:
    return st.tuples(elements, elements, elements)


@st.composite
def geometries(
    draw: st.DrawFn,
    *,
    min_size: int = 1,
    max_size: int = 40,
    max_offset: int = 64,
    max_chunk: int = 16,
    max_channels: int = 3,
    max_grid: int | None = None,
    dtypes: tuple[str, ...] = DTYPES,
) -> Geometry:
    """Sizes in ``[min_size, max_size]``, offsets in ``[-max_offset, max_offset]`` (negative too),
    chunk sizes in ``[1, max_chunk]`` (so edge chunks are usually truncated), 1..max_channels
    channels and any of ``dtypes``.

    ``max_grid`` caps the chunks per axis (when ``max_chunk`` allows), which bounds the work of a
    whole-volume read: one-voxel chunks on a 40-voxel axis make 64,000 chunks."""
    size = draw(_vec3(st.integers(min_size, max_size)))
    chunks = []
    for s in size:
        lowest = 1 if max_grid is None else max(1, min(max_chunk, -(-s // max_grid)))
        chunks.append(draw(st.integers(lowest, max_chunk)))
    return Geometry(
        size=size,
        voxel_offset=draw(_vec3(st.integers(-max_offset, max_offset))),
        chunks=(chunks[0], chunks[1], chunks[2]),
        num_channels=draw(st.integers(1, max_channels)),
        dtype=draw(st.sampled_from(dtypes)),
    )


def _interval(lo: int, hi: int, allow_empty: bool) -> st.SearchStrategy[tuple[int, int]]:
    """A half-open interval ``[a, b)`` with ``lo <= a <= b <= hi`` (``a < b`` unless empty)."""
    if allow_empty:
        return st.tuples(st.integers(lo, hi), st.integers(lo, hi)).map(
            lambda ab: (min(ab), max(ab))
        )
    return st.integers(lo, hi - 1).flatmap(lambda a: st.tuples(st.just(a), st.integers(a + 1, hi)))


def _box_from_intervals(intervals: list[tuple[int, int]]) -> Box:
    return Box(tuple(a for a, _ in intervals), tuple(b for _, b in intervals))


@st.composite
def boxes(draw: st.DrawFn, bounds: Box, *, margin: int = 8, allow_empty: bool = True) -> Box:
    """A box anywhere within ``margin`` voxels of ``bounds``: inside, crossing or wholly outside."""
    intervals = [
        draw(_interval(a - margin, b + margin, allow_empty))
        for a, b in zip(bounds.start, bounds.stop, strict=True)
    ]
    return _box_from_intervals(intervals)


@st.composite
def boxes_inside(draw: st.DrawFn, bounds: Box, *, allow_empty: bool = False) -> Box:
    """A box that lies wholly inside ``bounds`` (which must not be empty)."""
    intervals = [
        draw(_interval(a, b, allow_empty)) for a, b in zip(bounds.start, bounds.stop, strict=True)
    ]
    return _box_from_intervals(intervals)


@st.composite
def boxes_crossing(draw: st.DrawFn, bounds: Box, *, margin: int = 8) -> Box:
    """A non-empty box that is not contained in ``bounds``: it crosses them or lies outside."""
    margin = max(1, margin)
    intervals = [
        draw(_interval(a - margin, b + margin, allow_empty=False))
        for a, b in zip(bounds.start, bounds.stop, strict=True)
    ]
    # Push one axis past a face of the bounds so that the box is never contained in them.
    axis = draw(st.integers(0, len(intervals) - 1))
    lo, hi = bounds.start[axis], bounds.stop[axis]
    a, b = intervals[axis]
    if draw(st.booleans()):
        a = draw(st.integers(lo - margin, lo - 1))
        b = max(b, a + 1)
    else:
        b = draw(st.integers(hi + 1, hi + margin))
        a = min(a, b - 1)
    intervals[axis] = (a, b)
    return _box_from_intervals(intervals)


def dtype_values(dtype: str | np.dtype) -> st.SearchStrategy[Any]:
    """Python scalars that ``dtype`` represents exactly (finite numbers for floats)."""
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return st.booleans()
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return st.integers(int(info.min), int(info.max))
    if dt.kind == "f":
        if dt.itemsize == 4:
            return st.floats(allow_nan=False, allow_infinity=False, width=32)
        return st.floats(allow_nan=False, allow_infinity=False, width=64)
    raise ValueError(f"no value strategy for dtype {dt}")


def random_array(shape: tuple[int, ...], dtype: str | np.dtype, seed: int) -> np.ndarray:
    """A Fortran-ordered array of ``shape`` filled from ``seed``, over the whole range of ints."""
    dt = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    if dt.kind == "b":
        out: np.ndarray = rng.integers(0, 2, size=shape).astype(bool)
    elif dt.kind in "iu":
        info = np.iinfo(dt)
        out = rng.integers(int(info.min), int(info.max), size=shape, dtype=dt, endpoint=True)
    else:
        out = (rng.standard_normal(size=shape) * 1000).astype(dt)
    return np.array(out, order="F")  # np.asfortranarray would make a 0-d array 1-d


@st.composite
def voxel_data(draw: st.DrawFn, shape: tuple[int, ...], dtype: str | np.dtype) -> np.ndarray:
    """An array of ``shape`` and ``dtype``: random voxels, or one value everywhere (0 included)."""
    if draw(st.booleans()):
        seed = draw(st.integers(0, 2**32 - 1))
        return random_array(shape, dtype, seed)
    value = draw(st.one_of(st.just(0), dtype_values(dtype)))
    return np.full(shape, value, dtype=np.dtype(dtype), order="F")


__all__ = [
    "DTYPES",
    "EXTENSION_DTYPES",
    "FORMAT_DTYPES",
    "Geometry",
    "boxes",
    "boxes_crossing",
    "boxes_inside",
    "dtype_values",
    "geometries",
    "random_array",
    "voxel_data",
]
