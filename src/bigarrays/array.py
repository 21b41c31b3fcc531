"""BigArray: one level of a dataset, indexed like a NumPy array with absolute coordinates.

A BigArray knows no format: it holds a :class:`~bigarrays.formats.base.Level` (a chunk source, its
axes and bounds) that a format module built, and turns ``vol[...]`` into reads and writes of
boxes through the chunk engine. ``bigarrays.open`` and ``bigarrays.create`` (``bigarrays.api``)
find the format and make one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from bigarrays.array_growth import GrowableArray
from bigarrays.array_views import ArrayManners, TransposedArray
from bigarrays.box import Box
from bigarrays.cache import CachedSource, ChunkCache
from bigarrays.chunk_source import ChunkSource
from bigarrays.errors import (
    ArrayClosedError,
    OutOfBoundsError,
    ReadOnlyError,
    UnsupportedError,
)
from bigarrays.formats.base import Dataset, Level
from bigarrays.indexing import Casting, coerce_value, parse_key
from bigarrays.ops import pyramid
from bigarrays.pipeline import ChunkEngine
from bigarrays.progress import progress_bar, wants_bar
from bigarrays.stores import Store

Mode = Literal["r", "r+"]


class BigArray(GrowableArray, ArrayManners):
    """One level of a dataset (a precomputed scale). Index it with absolute voxel coordinates.

    Obtain one with :func:`bigarrays.open` or :func:`bigarrays.create` rather than constructing
    it directly. It behaves as NumPy code expects where that is cheap to honour: ``len(vol)``,
    ``np.asarray(vol)`` (below :attr:`array_limit` bytes), iteration over its first axis, and
    ``vol.T`` / ``vol.transpose(...)``, lazy views whose reads and writes go through the
    permuted axes.
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        mip: int = 0,
        mode: Mode = "r",
        fill_missing: bool = True,
        threads: int | None = None,
        progress: bool | None = None,
        owns_store: bool = False,
        cache_bytes: int = 0,
        skip_empty: bool = False,
        update_pyramid: bool = False,
    ) -> None:
        self._dataset = dataset
        self._store = dataset.store
        self._level: Level = dataset.level(mip)
        self._mip = mip
        self._mode = mode
        self.fill_missing = fill_missing
        self.progress = progress
        # open() and create() own the store they opened from a URL, and close it with the array;
        # a Store passed in belongs to the caller, and at_mip() views share their parent's.
        self._owns_store = owns_store
        self._closed = False
        self._engine = ChunkEngine(self._store.default_concurrency if threads is None else threads)
        #: Decoded chunks kept for repeated reads (``cache_bytes`` > 0), or None.
        self.cache: ChunkCache | None = ChunkCache(cache_bytes) if cache_bytes > 0 else None
        layout = self._level.source
        self._source: ChunkSource = (
            layout if self.cache is None else CachedSource(layout, self.cache)
        )
        if skip_empty and not self._level.deletes_chunks:
            raise UnsupportedError(
                "skip_empty applies to unsharded scales: a shard holds its chunks together"
            )
        #: When True, chunks whose voxels all hold the fill value are not written (and a stored
        #: copy is deleted): they read back the same, and the store holds fewer objects.
        self.skip_empty = skip_empty
        #: When True (mip 0 only), every write also recomputes the part of the other levels
        #: that it changes (see :meth:`update_pyramid`).
        self.update_pyramid_on_write = update_pyramid

    # -- description -----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self._store.url

    @property
    def store(self) -> Store:
        return self._store

    @property
    def format(self) -> str:
        """The dataset's format: ``"precomputed"``."""
        return self._dataset.format_name

    @property
    def mode(self) -> Mode:
        return self._mode

    @property
    def info(self) -> dict[str, Any]:
        """The dataset's metadata document as a dict (a copy: changing it changes nothing)."""
        return self._dataset.document()

    @property
    def level(self) -> Level:
        """The format's level behind this array: its chunk source, axes and bounds."""
        return self._level

    @property
    def scale(self) -> Any:
        """The format's own description of this level (a precomputed ``Scale``)."""
        return self._level.native

    @property
    def mip(self) -> int:
        return self._mip

    @property
    def mips(self) -> int:
        return self._dataset.num_levels

    @property
    def dims(self) -> tuple[str, ...]:
        """The names of the axes, in the order indices and results have them."""
        return tuple(self._level.axes[i].name for i in self._level.visible)

    @property
    def dtype(self) -> np.dtype:
        return self._dataset.dtype

    @property
    def fill_value(self) -> Any:
        """What voxels never written read as."""
        return self._level.source.fill_value

    @property
    def num_channels(self) -> int:
        return self._dataset.num_channels

    @property
    def layer_type(self) -> str:
        return self._dataset.layer_type

    @property
    def shape(self) -> tuple[int, ...]:
        size = self._level.bounds.shape
        return tuple(size[i] for i in self._level.visible)

    @property
    def chunks(self) -> tuple[int, ...]:
        """The chunk shape along the axes of :attr:`bounds`."""
        chunk = self._level.source.grid.chunk
        return tuple(chunk[i] for i in self._level.spatial)

    @property
    def voxel_offset(self) -> tuple[int, ...]:
        return self.bounds.start

    @property
    def resolution(self) -> tuple[float, ...]:
        return self._level.resolution

    @property
    def encoding(self) -> str:
        return self._level.encoding

    @property
    def compression(self) -> str | None:
        return self._level.compression

    @property
    def bounds(self) -> Box:
        """The voxels of the volume, in absolute coordinates (channels not included)."""
        full = self._level.bounds
        axes = self._level.spatial
        return Box(tuple(full.start[i] for i in axes), tuple(full.stop[i] for i in axes))

    @property
    def grid_shape(self) -> tuple[int, ...]:
        """How many chunks the volume has along each axis of :attr:`bounds`."""
        grid = self._level.source.grid.grid_shape
        return tuple(grid[i] for i in self._level.spatial)

    @property
    def num_chunks(self) -> int:
        """How many chunks tile the volume (stored or not)."""
        return self._level.source.grid.num_chunks

    @property
    def threads(self) -> int:
        return self._engine.threads

    def chunk_key(self, index: Sequence[int]) -> str:
        """The store key of the chunk at grid ``index`` (along the axes of :attr:`bounds`)."""
        full = [0] * len(self._level.axes)
        for axis, i in zip(self._level.spatial, index, strict=True):
            full[axis] = i
        return self._level.source.key(tuple(full))

    def __repr__(self) -> str:
        b = self.bounds
        box = ", ".join(f"{a}:{c}" for a, c in zip(b.start, b.stop, strict=True))
        return (
            f"<BigArray {self.url} mip={self.mip} shape={self.shape} dtype={self.dtype} "
            f"chunks={self.chunks} bounds=[{box}] encoding={self.encoding}"
            f"{'+' + self.compression if self.compression else ''} mode={self.mode!r}>"
        )

    def at_mip(self, mip: int) -> BigArray:
        """The same volume at level ``mip``, sharing the store and settings."""
        self._check_open()
        skip_empty = self.skip_empty
        if skip_empty and 0 <= mip < self.mips:
            skip_empty = self._dataset.level(mip).deletes_chunks
        other = BigArray(
            self._dataset, mip=mip, mode=self._mode, fill_missing=self.fill_missing,
            threads=self._engine.threads, progress=self.progress,
            cache_bytes=self.cache.max_bytes if self.cache is not None else 0,
            skip_empty=skip_empty, update_pyramid=self.update_pyramid_on_write and mip == 0,
        )  # fmt: skip
        other.array_limit = self.array_limit
        return other

    # -- reading and writing ---------------------------------------------------------------------
    def __getitem__(self, key: Any) -> np.ndarray:
        self._check_open()
        selection = parse_key(key, self._level.axes, self._level.bounds)
        return selection.squeeze(self._read_box(selection.box))

    def __setitem__(self, key: Any, value: Any) -> None:
        self.write(key, value)

    def read(self, box: Box) -> np.ndarray:
        """The voxels of ``box`` (like ``vol[box]``)."""
        return self[box]

    def write(self, box: Any, data: Any, *, casting: Casting = "same_kind") -> None:
        """Write ``data`` to ``box`` (a Box or any index ``vol[...]`` takes), like
        ``vol[box] = data``.

        ``data`` broadcasts to the box as in a NumPy assignment. Its dtype must cast to the
        volume's under ``casting`` (NumPy's rules): the default "same_kind" writes float64 into
        float32, and refuses int64 into uint8 unless ``casting="unsafe"``; scalars and lists
        must hold values that the volume's dtype represents exactly (but with "unsafe").
        """
        self._check_open()
        self._check_writable()
        selection = parse_key(box, self._level.axes, self._level.bounds)
        block = coerce_value(data, self.dtype, selection, casting)
        self._pin_metadata()
        self._write_box(selection.box, block)
        self._write_again_if_renamed(selection.box, block)
        if self.update_pyramid_on_write:
            self._update_levels(selection.box)

    def _permuted(self, order: tuple[int, ...]) -> ArrayManners:
        return self if order == tuple(range(self.ndim)) else TransposedArray(self, order)

    def _axis_indices(self) -> list[range]:
        bounds = self._level.bounds
        return [
            range(0, bounds.stop[i] - bounds.start[i])
            if self._level.axes[i].positional
            else range(bounds.start[i], bounds.stop[i])
            for i in self._level.visible
        ]

    # -- pyramids ----------------------------------------------------------------------------------
    def downsample(
        self,
        factor: str | Sequence[int] = "auto",
        num_mips: int | None = None,
        method: str = "auto",
        bounds: Box | None = None,
        chunks: Sequence[int] | None = None,
        encoding: str | None = None,
        compression: str | None = None,
        sharding: Any = None,
        *,
        memory_target: int = pyramid.DEFAULT_MEMORY_TARGET,
        threads: int | None = None,
        progress: bool | None = None,
        overwrite: bool = False,
        scheduler: Any = None,
    ) -> None:
        """Add downsampled levels (mips 1, 2, ...) to the dataset and write them.

        Level k is level 0 pooled by its cumulative factor, exactly as
        ``tensorstore.downsample(level0, factor, method)`` computes it: blocks of the factor
        anchored at coordinate 0, partial blocks at the bounds pooled over the voxels they hold,
        integer means rounded half to even.

        - ``factor``: ``"auto"`` (halve the finest space axes until the voxels are near
          isotropic, then all of them) or one integer per axis of :attr:`bounds`, such as
          ``(2, 2, 1)``, repeated for each level. Channel and time axes are never pooled.
        - ``num_mips``: how many levels to add; None stops at the first that fits in one chunk.
        - ``method``: ``"auto"`` (``mode`` for segmentation, ``mean`` for images), ``mean``,
          ``median``, ``mode``, ``min``, ``max`` or ``stride``.
        - ``bounds``: pool only this box of level 0 now (the levels cover the whole volume).
        - ``chunks``, ``encoding``, ``compression``, ``sharding``: of the new levels
          (precomputed), by default those of level 0.
        - ``memory_target``: bytes of voxels in memory at once; ``threads`` blocks at a time.
        - ``overwrite``: replace levels the dataset has already (else ``LevelExistsError``).
        - ``scheduler``: run the blocks as Dask tasks: a scheduler name ("threads",
          "processes"), a ``distributed.Client`` or a scheduler's address (``tcp://...``). The
          store must be one every worker reaches (not ``memory://`` across processes).
        """
        self._check_open()
        self._check_writable()
        self._check_base("downsample")
        region = None if bounds is None else self._grid_box(bounds)
        self._dataset = pyramid.build(
            self._dataset, self._engine, factor=factor, num_mips=num_mips, method=method,
            region=region, chunks=chunks, encoding=encoding, compression=compression,
            sharding=sharding, memory_target=memory_target, threads=threads,
            progress=self.progress if progress is None else progress, overwrite=overwrite,
            scheduler=scheduler,
        )  # fmt: skip

    def update_pyramid(
        self,
        box: Box | None = None,
        *,
        method: str = "auto",
        memory_target: int = pyramid.DEFAULT_MEMORY_TARGET,
        threads: int | None = None,
        progress: bool | None = None,
        scheduler: Any = None,
    ) -> None:
        """Recompute the part of every level above 0 that level-0 ``box`` (None: all) affects,
        widened to whole chunks (or shards) of each level. Call it after writing ``box``.
        ``scheduler`` runs the blocks on Dask, as in :meth:`downsample`."""
        self._check_open()
        self._check_writable()
        self._check_base("update_pyramid")
        region = None if box is None else self._grid_box(box)
        chosen = pyramid.resolve_method(method, self._dataset, self.dtype)
        pyramid.run(self._dataset, self._engine, region, method=chosen,
                    memory_target=memory_target, threads=threads,
                    progress=self.progress if progress is None else progress,
                    scheduler=scheduler)  # fmt: skip

    def _update_levels(self, box: Box) -> None:
        chosen = pyramid.resolve_method("auto", self._dataset, self.dtype)
        pyramid.run(self._dataset, self._engine, box, method=chosen, progress=self.progress)

    def _check_base(self, what: str) -> None:
        if self._mip != 0:
            raise UnsupportedError(
                f"{what} pools level 0: call it on mip 0 (vol.at_mip(0)), not mip {self._mip}"
            )

    def _grid_box(self, box: Box) -> Box:
        """``box`` (over :attr:`bounds`' axes) as a box over every grid axis of the level."""
        spatial = self._level.spatial
        if box.ndim != len(spatial):
            raise OutOfBoundsError(
                f"box {box} has {box.ndim} axes; the volume's bounds have {len(spatial)}"
            )
        full = self._level.bounds
        start, stop = list(full.start), list(full.stop)
        for axis, a, b in zip(spatial, box.start, box.stop, strict=True):
            start[axis], stop[axis] = a, b
        return Box(start, stop)

    def _read_box(self, box: Box) -> np.ndarray:
        n = self._source.grid.count(box)
        if not wants_bar(self.progress, n):  # the common case, kept cheap for small cutouts
            return self._engine.read(self._source, box, fill_missing=self.fill_missing, count=n)
        with progress_bar(n, f"reading {box}", self.progress) as advance:
            return self._engine.read(
                self._source, box, fill_missing=self.fill_missing, on_chunk=advance, count=n
            )

    def _write_box(self, box: Box, block: np.ndarray) -> None:
        full = self._level.bounds
        if not full.contains(box):
            raise OutOfBoundsError(self._outside(box))
        if box.empty:
            return
        n = self._source.grid.count(box)
        with progress_bar(n, f"writing {box}", self.progress) as advance:
            self._engine.write(
                self._source, box, block, on_chunk=advance, skip_empty=self.skip_empty
            )

    def _outside(self, box: Box) -> str:
        """What is wrong with a write of ``box`` that reaches outside the level's bounds."""
        full, axes = self._level.bounds, self._level.axes
        spatial = self._level.spatial
        shown = Box(tuple(box.start[i] for i in spatial), tuple(box.stop[i] for i in spatial))
        extra = ""
        for i, axis in enumerate(axes):
            if axis.positional and not full.start[i] <= box.start[i] <= box.stop[i] <= full.stop[i]:
                n = full.stop[i] - full.start[i]
                extra += f" channels {box.start[i]}:{box.stop[i]} of {n},"
        return (
            f"cannot write box {shown}:{extra} it reaches outside the volume's bounds "
            f"{self.bounds}; nothing was written"
        )

    def _check_open(self) -> None:
        if self._closed:
            # The store may be closed with it (a zip's directory written): a write now would be
            # lost or land after the finished file, a read could see a released handle.
            raise ArrayClosedError(f"{self.url} is closed; open it again to read or write it")

    def _check_writable(self) -> None:
        if self._mode == "r":
            raise ReadOnlyError(f"{self.url} is open read-only; open it with mode='r+' to write")

    # -- Dask and xarray -------------------------------------------------------------------------
    def to_dask(self, chunks: Any = None) -> Any:
        """This level as a lazy ``dask.array.Array``. Its index 0 is ``vol.bounds.start``, not
        coordinate 0: element ``k`` along an axis is voxel ``vol.bounds.start + k`` (channels
        count from 0), and the array's name carries the offset (``bigarrays-offset(x,y,z)-…``).

        Blocks lie on the storage grid: whole write units (chunks, or whole shards on a
        sharded level) anchored where the grid is, by default as many as fit in about 32 MiB
        (one unit where a unit is bigger); ``chunks`` sets them (an int for every axis or one
        per axis, -1 for a whole axis, or ``"auto"`` for Dask's ``array.chunk-size``), rounded
        up to whole units. Each block is read as ``vol[box]``
        when computed; the array pickles, so any Dask scheduler runs it (a worker reopens the
        store once). Needs ``pip install 'bigarrays[dask]'``.
        """
        from bigarrays.adapters.dask import to_dask

        return to_dask(self, chunks)

    def to_xarray(self, chunks: Any = None) -> Any:
        """This level as an ``xarray.DataArray`` over :meth:`to_dask` (``chunks`` as there), with
        ``dims`` :attr:`dims` and coordinates in physical units: voxel ``j`` (absolute) of a
        space axis sits at ``resolution * j``, its lower corner as Neuroglancer places it; each
        coordinate's ``attrs["units"]`` names the unit. Needs ``xarray`` and Dask."""
        from bigarrays.adapters.xarray import to_xarray

        return to_xarray(self, chunks)

    def view(self, **options: Any) -> Any:
        """Show this dataset in Neuroglancer, served from this process: ``ba.view(self,
        **options)`` (see :func:`bigarrays.viewer.view`); returns the viewer, whose ``.url``
        opens it. Needs ``pip install 'bigarrays[viewer]'``."""
        from bigarrays.viewer import view

        return view(self, **options)

    # -- life cycle ------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the worker threads and close the store if this array opened it from a URL.

        Closing is what writes a zip file's central directory; a Store object passed to
        ``open`` / ``create`` is left open for its owner to close. Reading or writing a closed
        array raises :class:`~bigarrays.errors.ArrayClosedError`.
        """
        self._closed = True
        self._engine.close()
        if self._owns_store:
            self._owns_store = False
            self._store.close()

    def __enter__(self) -> BigArray:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        return {
            "dataset": self._dataset, "mip": self._mip,
            "mode": self._mode, "fill_missing": self.fill_missing,
            "threads": self._engine.threads, "progress": self.progress,
            "owns_store": self._owns_store,
            "cache_bytes": self.cache.max_bytes if self.cache is not None else 0,
            "skip_empty": self.skip_empty,
            "update_pyramid": self.update_pyramid_on_write,
        }  # fmt: skip

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state.pop("dataset"), **state)  # type: ignore[misc]
