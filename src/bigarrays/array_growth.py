"""Growing and shrinking an array: ``resize``, ``append``, and writes that a concurrent resize
renamed the chunks of (see ``Dataset.renamed``).

The metadata is changed by the format, conditionally (``Dataset.resized``), so that processes
resizing or appending at once never lose each other's size change; what a shrink crops is
cleared here, so old data never reappears when the array grows again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from bigarrays.box import Box
from bigarrays.cache import CachedSource, ChunkCache
from bigarrays.chunk_source import ChunkSource
from bigarrays.errors import (
    DtypeMismatchError,
    InvalidArgumentError,
    ShapeMismatchError,
    UnsupportedError,
    VersionConflictError,
)
from bigarrays.formats.base import Dataset, Level, Resized
from bigarrays.formats.merge import MAX_CONFLICT_RETRIES
from bigarrays.indexing import Casting, coerce_value, exact_values, parse_key
from bigarrays.pipeline import ChunkEngine


class GrowableArray:
    """The growing half of :class:`~bigarrays.array.BigArray`, over the level it holds."""

    _dataset: Dataset
    _level: Level
    _source: ChunkSource
    _engine: ChunkEngine
    _mip: int
    cache: ChunkCache | None
    skip_empty: bool
    url: Any
    dims: Any
    dtype: Any
    shape: Any

    def _check_open(self) -> None:
        raise NotImplementedError

    def _check_writable(self) -> None:
        raise NotImplementedError

    def _check_base(self, what: str) -> None:
        raise NotImplementedError

    def _grid_box(self, box: Box) -> Box:
        raise NotImplementedError

    def _write_box(self, box: Box, block: np.ndarray) -> None:
        raise NotImplementedError

    def resize(self, bounds_or_shape: Box | Sequence[int]) -> None:
        """Grow or shrink the array (level 0 of a one-level dataset) to new bounds.

        Pass a :class:`Box` over the axes of :attr:`bounds`, or a shape (new stops counted from
        the current starts). Only the axes given other extents than :attr:`bounds` has are
        changed: a concurrent append along another axis is kept. Precomputed volumes grow in
        either direction (the low end by whole chunks, unless the grid was fixed with
        ``max_bounds=``); Zarr arrays at the high end. Voxels cropped by a shrink are cleared,
        so a later growth shows the fill value there, never old data.
        """
        self._check_open()
        self._check_writable()
        self._check_base("resize")
        target = self._resize_target(bounds_or_shape)
        seen = self._level.bounds
        axes = [i for i in range(seen.ndim)
                if (seen.start[i], seen.stop[i]) != (target.start[i], target.stop[i])]  # fmt: skip

        def change(current: Box) -> Box:
            start, stop = list(current.start), list(current.stop)
            for i in axes:
                start[i], stop[i] = target.start[i], target.stop[i]
            return Box(start, stop)

        self._resized(change)

    def append(self, data: Any, axis: int | str = 0, *, casting: Casting = "same_kind") -> Box:
        """Write ``data`` right past the end of ``axis`` (an index into :attr:`dims`, or a name),
        growing the array; returns the box written (over the axes of :attr:`bounds`).

        ``data`` has the array's shape along the other axes, and any length along ``axis``
        (or lacks that axis: one step), and a dtype that casts to the array's under
        ``casting`` (as in :meth:`write`), checked before the array grows. The end is read from
        the stored metadata when the size is changed, conditionally, so appends by several
        processes at once each land in a range of their own, in the order their metadata
        writes happen.
        """
        self._check_open()
        self._check_writable()
        self._check_base("append")
        dims = self.dims
        j = dims.index(axis) if isinstance(axis, str) and axis in dims else axis
        if not isinstance(j, int) or not -len(dims) <= j < len(dims):
            raise InvalidArgumentError(f"axis must be one of {dims} or its index, got {axis!r}")
        j %= len(dims)
        level_axis = self._level.visible[j]
        if self._level.axes[level_axis].positional:
            raise UnsupportedError(f"cannot append along {dims[j]!r}: it is a channel axis")
        block = np.asarray(data)
        if block.dtype != self.dtype and casting != "unsafe":
            if not isinstance(data, np.ndarray):
                block = exact_values(block, self.dtype)
            elif not np.can_cast(block.dtype, self.dtype, casting=casting):
                raise DtypeMismatchError(
                    f"cannot append {block.dtype} data to a {self.dtype} array with "
                    f"casting={casting!r}; convert it first (data.astype('{self.dtype}'))"
                )
        if block.ndim == len(dims) - 1:
            block = np.expand_dims(block, j)
        if block.ndim != len(dims):
            raise ShapeMismatchError(
                f"append takes data of {len(dims)} axes {dims} (or {len(dims) - 1}: one step "
                f"along {dims[j]!r}), got shape {block.shape}"
            )
        at: list[int] = []

        def change(current: Box) -> Box:
            shape = [current.stop[i] - current.start[i] for i in self._level.visible]
            for k, (have, given) in enumerate(zip(shape, block.shape, strict=True)):
                if k != j and have != given:
                    raise ShapeMismatchError(
                        f"cannot append data of shape {block.shape} along {dims[j]!r}: the "
                        f"array's shape is {tuple(shape)}, and the other axes must match it"
                    )
            stop = list(current.stop)
            at[:] = [stop[level_axis]]
            stop[level_axis] += block.shape[j]
            return Box(current.start, stop)

        grown = self._resized(change)
        key: list[Any] = [slice(None)] * len(dims)
        key[j] = slice(at[0], at[0] + block.shape[j])
        selection = parse_key(tuple(key), self._level.axes, self._level.bounds)
        values = coerce_value(block, self.dtype, selection, casting)
        if not selection.box.empty:
            self._pin_metadata()
            source = grown.grow if grown.grow is not None else self._source
            self._engine.write(source, selection.box, values, skip_empty=self.skip_empty)
            self._write_again_if_renamed(selection.box, values)
        spatial = self._level.spatial
        box = selection.box
        return Box(tuple(box.start[i] for i in spatial), tuple(box.stop[i] for i in spatial))

    def _resize_target(self, given: Box | Sequence[int]) -> Box:
        """The bounds over every grid axis that ``resize(given)`` asks for."""
        if isinstance(given, Box):
            return self._grid_box(given)
        shape = tuple(int(n) for n in given)
        current = self._level.bounds
        axes = self._level.spatial if len(shape) == len(self._level.spatial) else None
        if axes is None and len(shape) == len(self._level.visible):
            axes = self._level.visible
        if axes is None or any(n < 0 for n in shape):
            raise InvalidArgumentError(
                f"resize takes a Box or a shape of {len(self.shape)} sizes >= 0 {self.dims}, "
                f"got {given!r}"
            )
        stop = list(current.stop)
        for i, n in zip(axes, shape, strict=True):
            stop[i] = current.start[i] + n
        return Box(current.start, stop)

    def _pin_metadata(self) -> None:
        """Note the stored metadata before a write, for :meth:`_write_again_if_renamed`."""
        if self._mip == 0:
            stored = self._dataset.renamed(pin=True)
            if stored is not None:
                self._adopt(stored)

    def _write_again_if_renamed(self, box: Box, block: np.ndarray) -> None:
        """Where a resize by another process renamed chunks this write went to (see
        ``Dataset.renamed``), take the stored metadata and write ``box`` again under it."""
        if self._mip != 0:
            return
        written: list[Dataset] = []
        for _ in range(MAX_CONFLICT_RETRIES):
            stored = self._dataset.renamed()
            if stored is None:
                # Written under the stored names now: what went under the old ones goes.
                for before in written:
                    self._dataset.drop_renamed(before, box)
                return
            written.append(self._dataset)
            self._adopt(stored)
            self._write_box(box, block)
        raise VersionConflictError("info", self.url)

    def _resized(
        self, change: Callable[[Box], Box], levels: Callable[[int, Box], Box] | None = None
    ) -> Resized:
        """Store ``change`` of the bounds, clear what it crops, and take the new level;
        ``levels`` (see ``Dataset.resized``) moves the other levels' bounds with it."""
        result = self._dataset.resized(change, levels)
        self._adopt(result.dataset)
        clear = result.clear
        fill = np.asarray(clear.fill_value, dtype=self.dtype)
        for box in _cropped(result.before, result.after):
            box = box.intersect(clear.grid.bounds)
            if not box.empty:
                block = np.broadcast_to(fill, box.shape)
                self._engine.write(clear, box, block, skip_empty=self._level.deletes_chunks)
        return result

    def _adopt(self, dataset: Dataset) -> None:
        """Read and write through ``dataset`` (level 0) from now on."""
        self._dataset = dataset
        self._level = dataset.level(0)
        if self.cache is not None:
            self.cache = ChunkCache(self.cache.max_bytes)
        self._source = (
            self._level.source
            if self.cache is None
            else CachedSource(self._level.source, self.cache)
        )


def _cropped(before: Box, after: Box) -> list[Box]:
    """Disjoint boxes that together hold the voxels of ``before`` outside ``after``."""
    out = []
    start, stop = list(before.start), list(before.stop)
    for i in range(before.ndim):
        lo = max(start[i], min(after.start[i], stop[i]))
        hi = min(stop[i], max(after.stop[i], start[i]))
        for a, b in ((start[i], lo), (hi, stop[i])):
            if a < b:
                box_start, box_stop = list(start), list(stop)
                box_start[i], box_stop[i] = a, b
                out.append(Box(box_start, box_stop))
        start[i], stop[i] = lo, hi
    return [box for box in out if not box.empty]
