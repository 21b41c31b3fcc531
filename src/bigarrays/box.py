"""Boxes in voxel space and the regular chunk grid that tiles a volume.

A :class:`Box` is a half-open interval per axis in absolute voxel coordinates. A :class:`ChunkGrid`
answers the one question the I/O engine asks: which chunks does a box touch, and for each, which
part of the chunk and which part of the output array correspond.
"""

from __future__ import annotations

import functools
import itertools
import operator
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

Vec = tuple[int, ...]


def _as_vec(values: Sequence[int] | int, name: str) -> Vec:
    # operator.index refuses floats: Box((0.5, 1), ...) is a mistake, not a request to truncate.
    try:
        return tuple(operator.index(v) for v in values)  # type: ignore[union-attr]
    except TypeError:
        raise TypeError(f"{name} must be a sequence of integers, got {values!r}") from None


@dataclass(frozen=True)
class Box:
    """A half-open box ``[start, stop)`` in absolute voxel coordinates, any number of axes."""

    start: Vec
    stop: Vec

    def __init__(self, start: Sequence[int], stop: Sequence[int]) -> None:
        start_v, stop_v = _as_vec(start, "start"), _as_vec(stop, "stop")
        if len(start_v) != len(stop_v):
            raise ValueError(f"Box start {start_v} and stop {stop_v} differ in length")
        object.__setattr__(self, "start", start_v)
        object.__setattr__(self, "stop", stop_v)

    @classmethod
    def _trusted(cls, start: Vec, stop: Vec) -> Box:
        """A Box from tuples of ints already checked by the caller (hot paths of the grid)."""
        box = object.__new__(cls)
        object.__setattr__(box, "start", start)
        object.__setattr__(box, "stop", stop)
        return box

    @classmethod
    def from_shape(cls, shape: Sequence[int], offset: Sequence[int] | None = None) -> Box:
        offset_v = tuple(0 for _ in shape) if offset is None else _as_vec(offset, "offset")
        return cls(offset_v, tuple(o + s for o, s in zip(offset_v, shape, strict=True)))

    @property
    def ndim(self) -> int:
        return len(self.start)

    @property
    def shape(self) -> Vec:
        # map() rather than generator expressions: these run several times per chunk.
        return tuple(map(max, map(operator.sub, self.stop, self.start), itertools.repeat(0)))

    @property
    def size(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n

    @property
    def empty(self) -> bool:
        return any(map(operator.le, self.stop, self.start))

    def intersect(self, other: Box) -> Box:
        """The common part of two boxes; empty (``.empty``) when they do not overlap."""
        if len(self.start) != len(other.start):
            raise ValueError(f"cannot intersect {self} and {other}: they differ in axes")
        start = tuple(map(max, self.start, other.start))
        stop = tuple(map(min, self.stop, other.stop))
        # Both boxes hold checked ints already: no need to check them again (a hot path).
        return Box._trusted(start, tuple(map(max, start, stop)))

    def contains(self, other: Box) -> bool:
        """True when ``other`` lies wholly inside this box (an empty box lies inside any box)."""
        if other.empty:
            return True
        return all(
            a <= c and d <= b
            for a, b, c, d in zip(self.start, self.stop, other.start, other.stop, strict=True)
        )

    def shift(self, offset: Sequence[int]) -> Box:
        return Box(
            tuple(a + o for a, o in zip(self.start, offset, strict=True)),
            tuple(b + o for b, o in zip(self.stop, offset, strict=True)),
        )

    def slices(self, origin: Sequence[int] | None = None) -> tuple[slice, ...]:
        """Slices that select this box from an array whose element 0 sits at ``origin``."""
        o = origin if origin is not None else tuple(0 for _ in self.start)
        return tuple(
            slice(a - oo, b - oo) for a, b, oo in zip(self.start, self.stop, o, strict=True)
        )

    def __repr__(self) -> str:
        return (
            "Box(" + ", ".join(f"{a}:{b}" for a, b in zip(self.start, self.stop, strict=True)) + ")"
        )


class ChunkPiece(NamedTuple):
    """Where one chunk meets a requested box."""

    chunk_index: Vec  #: grid index of the chunk
    chunk_box: Box  #: the chunk's voxels, clipped to the volume bounds
    in_chunk: tuple[slice, ...]  #: the overlap, as slices into the (clipped) chunk array
    in_box: tuple[slice, ...]  #: the overlap, as slices into the requested box's array

    @property
    def covers_chunk(self) -> bool:
        """True when the request covers the whole (clipped) chunk."""
        return all(
            s.start == 0 and s.stop == n
            for s, n in zip(self.in_chunk, self.chunk_box.shape, strict=True)
        )


@dataclass(frozen=True)
class ChunkGrid:
    """A regular grid of chunks anchored at ``origin``; chunks at the upper edge are truncated."""

    origin: Vec
    size: Vec
    chunk: Vec

    def __post_init__(self) -> None:
        if not len(self.origin) == len(self.size) == len(self.chunk):
            raise ValueError("origin, size and chunk must have the same number of axes")
        if any(c <= 0 for c in self.chunk):
            raise ValueError(f"chunk sizes must be positive, got {self.chunk}")
        if any(s < 0 for s in self.size):
            raise ValueError(f"sizes must not be negative, got {self.size}")

    @functools.cached_property
    def bounds(self) -> Box:  # cached: the grid is frozen, and every request asks for it
        return Box.from_shape(self.size, self.origin)

    @property
    def grid_shape(self) -> Vec:
        return tuple(-(-s // c) for s, c in zip(self.size, self.chunk, strict=True))

    @property
    def num_chunks(self) -> int:
        n = 1
        for g in self.grid_shape:
            n *= g
        return n

    def chunk_box(self, index: Sequence[int]) -> Box:
        """The voxels of chunk ``index``, clipped to the bounds as the format stores them."""
        start = tuple(o + i * c for o, i, c in zip(self.origin, index, self.chunk, strict=True))
        stop = tuple(
            min(a + c, o + s)
            for a, c, o, s in zip(start, self.chunk, self.origin, self.size, strict=True)
        )
        return Box._trusted(start, stop)

    def index_range(self, box: Box) -> tuple[range, ...]:
        """Per axis, the grid indices of the chunks that ``box`` touches inside the bounds."""
        bounds = self.bounds
        if len(box.start) != len(bounds.start):
            raise ValueError(f"cannot intersect {box} and {bounds}: they differ in axes")
        ranges = []
        axes = zip(box.start, box.stop, bounds.start, bounds.stop, self.chunk, strict=True)
        for a, b, lo, hi, c in axes:
            a, b = max(a, lo), min(b, hi)
            if b <= a:
                return tuple(range(0) for _ in self.chunk)
            ranges.append(range((a - lo) // c, (b - lo - 1) // c + 1))
        return tuple(ranges)

    def cover(self, box: Box) -> Box:
        """The chunks that ``box`` touches inside the bounds, as one box (clipped to the bounds).

        A write of this box covers each of its chunks whole: the aligned box to suggest when a
        write of ``box`` must not touch chunks in part.
        """
        ranges = self.index_range(box)
        if any(len(r) == 0 for r in ranges):
            return Box(box.start, box.start)
        first = self.chunk_box([r[0] for r in ranges])
        last = self.chunk_box([r[-1] for r in ranges])
        return Box(first.start, last.stop)

    def count(self, box: Box) -> int:
        """How many chunks ``box`` touches inside the bounds."""
        n = 1
        for r in self.index_range(box):
            n *= len(r)
        return n

    def indices(self, box: Box | None = None) -> Iterator[Vec]:
        """Grid indices of the chunks that ``box`` (default: the whole volume) touches."""
        ranges = self.index_range(box if box is not None else self.bounds)
        # itertools.product varies the last axis fastest; reverse so that x varies fastest,
        # which walks the chunks in the order they are laid out in Fortran-ordered output.
        for rev in itertools.product(*reversed(ranges)):
            yield rev[::-1]

    def pieces(self, box: Box, order: str = "F") -> Iterator[ChunkPiece]:
        """Every chunk that ``box`` touches inside the bounds, with its slices, x (the first
        axis) varying fastest; with ``order="C"`` the last axis varies fastest, the order in
        which chunks lie in a C-ordered array.

        The geometry is separable: each axis' chunk ranges and slices are computed once, and a
        piece is a combination of one entry per axis, so the per-chunk cost is a few tuple
        concatenations rather than box arithmetic (a cutout may touch many thousands of chunks).
        """
        per_axis = []
        for axis, indices in enumerate(self.index_range(box)):
            o, c, end = self.origin[axis], self.chunk[axis], self.origin[axis] + self.size[axis]
            lo, hi = box.start[axis], box.stop[axis]
            entries = []
            for i in indices:
                c0 = o + i * c
                c1 = min(c0 + c, end)
                a, b = max(c0, lo), min(c1, hi)
                entries.append((i, c0, c1, slice(a - c0, b - c0), slice(a - lo, b - lo)))
            per_axis.append(entries)
        trusted = Box._trusted
        if not per_axis:  # a grid of no axes is one chunk (zip below would yield no fields)
            yield ChunkPiece((), trusted((), ()), (), ())
            return
        if order == "C":
            for combo in itertools.product(*per_axis):
                index, starts, stops, in_chunk, in_box = zip(*combo, strict=True)
                yield ChunkPiece(index, trusted(starts, stops), in_chunk, in_box)
            return
        for combo in itertools.product(*reversed(per_axis)):
            # Transposed: per field, a tuple over the axes (x first).
            index, starts, stops, in_chunk, in_box = zip(*reversed(combo), strict=True)
            yield ChunkPiece(index, trusted(starts, stops), in_chunk, in_box)
