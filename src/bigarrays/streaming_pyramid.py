"""The levels of a pyramid written while a stream runs, so that a viewer has an overview.

Each slab of level 0 that a stream writes is pooled at once into every other level (level k
from level 0 by its cumulative factor, as ``vol.downsample`` pools, so the result is the same).
A level's voxels gather in buffers one write unit deep along the streamed axis and spanning the
stream's region, pooled, along the others; a buffer is written whole once every plane of it has
arrived, and never read back. A buffer still filling (the coarse edge of the acquisition) is
written at checkpoints and at close, padded with the fill value, and again once it fills, which
is the one rewrite a pyramid costs.

Slabs never cut a pooling cell: level 0's write unit along the axis must be a multiple of every
level's factor there. Levels grow with level 0 at checkpoints (``Dataset.resized`` with
``levels``): the levels of a precomputed volume need a fixed grid (``max_shape``).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from bigarrays.box import Box
from bigarrays.errors import InvalidArgumentError
from bigarrays.fill import filled
from bigarrays.formats.base import Dataset, LevelSpec
from bigarrays.ops.pooling import pool_levels, pooled_bounds
from bigarrays.ops.pyramid import level_factor, pyramid_factors, resolve_method

if TYPE_CHECKING:
    from bigarrays.array import BigArray


def refuse_moving_grid(vol: BigArray) -> None:
    """Refuse levels on a precomputed volume whose chunk grid follows its bounds (made without
    ``max_shape``): growing it would rename the chunks of every level, which resizes refuse, so
    its stream would fail at its first checkpoint."""
    if vol.format == "precomputed" and vol.level.extent is None:
        raise InvalidArgumentError(
            f"{vol.url} is a precomputed volume whose chunk grid follows its bounds (it was made "
            "without max_shape=): a stream that writes levels (mips=) grows them all, which "
            "would rename the chunks of every level. Create it with max_shape= (or "
            "max_bounds=) covering the acquisition, or stream level 0 alone and build the "
            "pyramid afterwards (vol.downsample)"
        )


def add_levels(vol: BigArray, mips: int, factor: Any, method: str) -> None:
    """Add ``mips`` empty levels to ``vol`` (one level, about to be streamed into), sized for
    its grid, their bounds following level 0's."""
    dataset = vol._dataset
    base = dataset.level(0)
    method = resolve_method(method, dataset, dataset.dtype)
    # A fixed grid (max_shape) sizes the levels' grids, so that they never move either.
    grid = base.source.grid.bounds if base.extent is not None else base.bounds
    specs = []
    for f in pyramid_factors(base, factor, mips):
        start, stop = pooled_bounds(grid.start, grid.stop, f, method)
        specs.append(LevelSpec(f, Box(start, stop)))
    vol._adopt(dataset.with_levels(specs, method=method, replace_levels=False))
    vol._resized(lambda bounds: bounds, StreamPyramid.follow(vol._dataset, method))


@dataclass
class _Buffer:
    """One write unit of a level along the axis, filling: its voxels and the planes come."""

    data: np.ndarray
    have: np.ndarray
    dirty: bool = False


@dataclass
class _Level:
    mip: int
    factor: tuple[int, ...]
    #: The level's part of the stream's region (its extent along the axis unused).
    box: Box
    unit: int
    origin: int
    #: The grid writes are clipped to, where it is fixed (None: it grows, as Zarr's does).
    grid: Box | None
    #: The level's bounds when the stream began: voxels a resumed buffer reads back.
    stored: Box
    fill: Any
    order: Any
    buffers: dict[int, _Buffer] = field(default_factory=dict)


class StreamPyramid:
    """Pools the slabs a :class:`~bigarrays.streaming_writer.Stream` writes into the levels."""

    def __init__(self, vol: BigArray, axis: int, region: Box, unit: int, method: str) -> None:
        dataset = vol._dataset
        self._vol = vol
        self._axis = axis
        self._method = resolve_method(method, dataset, dataset.dtype)
        base = dataset.level(0)
        self._levels: list[_Level] = []
        for k in range(1, dataset.num_levels):
            level = dataset.level(k)
            f = level_factor(base, level, k)
            if unit % f[axis]:
                raise InvalidArgumentError(
                    f"level {k} pools {f[axis]} planes along the streamed axis, which does not "
                    f"divide level 0's write unit of {unit} there: a slab would cut its cells. "
                    "Choose chunks (or shards) along the axis that are a multiple of the factor"
                )
            start, stop = pooled_bounds(region.start, region.stop, f, self._method)
            source = level.source
            self._levels.append(_Level(
                k, f, Box(start, stop), level.unit[axis], source.grid.origin[axis],
                source.grid.bounds if level.extent is not None else None, level.bounds,
                source.fill_value, source.order,
            ))  # fmt: skip
        # One writer of the levels at a time: a buffer written at a checkpoint must never land
        # after the same unit written whole.
        self._lock = threading.Lock()

    @staticmethod
    def follow(dataset: Dataset, method: str) -> Any:
        """``levels`` for ``Dataset.resized``: level k's bounds, level 0's pooled."""
        base = dataset.level(0)
        factors = [level_factor(base, dataset.level(k), k) for k in range(1, dataset.num_levels)]

        def bounds(k: int, after: Box) -> Box:
            start, stop = pooled_bounds(after.start, after.stop, factors[k - 1], method)
            return Box(start, stop)

        return bounds

    @property
    def levels(self) -> Any:
        return self.follow(self._vol._dataset, self._method)

    def add(self, box: Box, data: np.ndarray) -> None:
        """Pool the level-0 slab ``data`` (voxels ``box``) into every level; write the units
        it completes."""
        if not self._levels:
            return
        pooled = pool_levels(data, box.start, [lv.factor for lv in self._levels], self._method)
        with self._lock:
            for level, (values, start) in zip(self._levels, pooled, strict=True):
                self._deposit(level, values, start)

    def flush(self) -> None:
        """Write the units still filling that changed since they were last written."""
        with self._lock:
            for level in self._levels:
                for u, buffer in level.buffers.items():
                    if buffer.dirty:
                        self._write(level, u, buffer)

    def _deposit(self, level: _Level, values: np.ndarray, start: Sequence[int]) -> None:
        a = self._axis
        lo, hi = start[a], start[a] + values.shape[a]
        first, last = (lo - level.origin) // level.unit, (hi - 1 - level.origin) // level.unit
        for u in range(first, last + 1):
            u0 = level.origin + u * level.unit
            a0, a1 = max(lo, u0), min(hi, u0 + level.unit)
            buffer = level.buffers.get(u) or self._buffer(level, u)
            into: list[Any] = [slice(None)] * values.ndim
            into[a] = slice(a0 - u0, a1 - u0)
            take: list[Any] = [slice(None)] * values.ndim
            take[a] = slice(a0 - lo, a1 - lo)
            buffer.data[tuple(into)] = values[tuple(take)]
            buffer.have[a0 - u0 : a1 - u0] = True
            buffer.dirty = True
            if buffer.have.all():
                self._write(level, u, buffer)
                del level.buffers[u]

    def _buffer(self, level: _Level, u: int) -> _Buffer:
        """A new buffer for unit ``u``, holding what the level stored there before."""
        a = self._axis
        u0 = level.origin + u * level.unit
        shape = list(level.box.shape)
        shape[a] = level.unit
        buffer = _Buffer(filled(tuple(shape), self._vol.dtype, level.fill, level.order),
                         np.zeros(level.unit, bool))  # fmt: skip
        start, stop = list(level.box.start), list(level.box.stop)
        start[a], stop[a] = u0, u0 + level.unit
        old = Box(start, stop).intersect(level.stored)
        if not old.empty:
            source = self._vol._dataset.level(level.mip).source
            buffer.data[old.slices(tuple(start))] = self._vol._engine.read(source, old)
            buffer.have[old.start[a] - u0 : old.stop[a] - u0] = True
        level.buffers[u] = buffer
        return buffer

    def _write(self, level: _Level, u: int, buffer: _Buffer) -> None:
        a = self._axis
        start, stop = list(level.box.start), list(level.box.stop)
        start[a] = level.origin + u * level.unit
        stop[a] = start[a] + level.unit
        box = Box(start, stop)
        if level.grid is not None:
            box = box.intersect(level.grid)
        buffer.dirty = False
        if box.empty:
            return
        data = buffer.data[box.slices(tuple(start))]
        vol = self._vol
        skip = vol._dataset.level(level.mip).deletes_chunks
        source = vol._dataset.ahead(box, level.mip)
        vol._engine.write(source, box, data, skip_empty=skip)
