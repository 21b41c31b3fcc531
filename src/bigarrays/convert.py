"""Convert a whole dataset between precomputed and (OME-)Zarr (``bigarrays cp --format``).

Every level is converted, finest first, and lands at the same physical place:

* precomputed -> ``"zarr"``: an OME-Zarr (NGFF 0.5) image, a Zarr v3 group whose arrays ``"0"``,
  ``"1"``, ... are the scales, with axes ``("c",) "z", "y", "x"`` in C order (the precomputed
  ``(x, y, z, c)`` Fortran array transposed; a ``c`` axis only for several channels, chunked one
  channel at a time). Scale ``k``'s resolution (nm) and ``voxel_offset`` go into its ``scale``
  and ``translation`` by :func:`~bigarrays.formats.zarr.ome.multiscale_for`, since a Zarr
  array's indices start at 0.
* precomputed -> ``"zarr2"``: the same image as NGFF 0.4 over Zarr v2 arrays.
* (OME-)Zarr -> ``"precomputed"``: one scale per level, encoding raw, placed by
  :func:`~bigarrays.formats.zarr.ome.level_geometry` (offsets rounded to whole voxels, which
  ome-zarr-py's images, centred at 0, need). A plain Zarr array has resolution 1 nm and offset 0;
  unnamed axes are taken as ``(c,) z, y, x``. Space units are converted to nanometres (no unit:
  nanometres); a time axis, or any other axis, must have one element.

A precomputed segmentation becomes a plain unsigned-integer array (Zarr has no labels layer or
compressed_segmentation codec); the way back is an image of raw chunks. Converting a precomputed
volume to ``"precomputed"`` re-chunks it (and re-compresses it): a segmentation stays one, raw.

Memory is bounded: a level is copied in tiles of whole destination chunks (so no chunk is read,
merged and written again) of about :data:`TILE_BYTES`, :data:`TILES_IN_FLIGHT` at a time, each
tile's chunks read and written by the arrays' thread pools. Chunks that hold only zeros are not
written. The destination's root metadata is written last: a conversion that fails half-way leaves
no dataset there, only chunks that the next attempt (with ``overwrite``) replaces.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from bigarrays.array import BigArray
from bigarrays.box import Box
from bigarrays.errors import InvalidArgumentError, InvalidInfoError, UnsupportedError
from bigarrays.formats.base import Dataset
from bigarrays.formats.detect import FORMATS, detect
from bigarrays.formats.existing import clear_destination
from bigarrays.formats.precomputed.format import (
    INFO_KEY,
    PrecomputedDataset,
    create_info,
    open_dataset,
)
from bigarrays.formats.precomputed.info import Info
from bigarrays.formats.zarr.format import (
    ZarrDataset,
    create_ome_levels,
    create_zarr,
    open_zarr,
    write_image_metadata,
)
from bigarrays.formats.zarr.ome import level_geometry
from bigarrays.formats.zarr.units import nanometres_per
from bigarrays.pipeline import run_bounded
from bigarrays.progress import progress_bar
from bigarrays.stores import Store, open_store

__all__ = ["ConvertResult", "convert_format"]

#: Uncompressed size a tile grows to (it is at least one source chunk along each axis).
TILE_BYTES = 64 << 20
#: Tiles read and written at once: one is read while another is written.
TILES_IN_FLIGHT = 2
#: What each output format compresses its chunks with unless told.
DEFAULT_COMPRESSION = {"precomputed": "none", "zarr": "zstd", "zarr2": "zstd"}

Vec3 = tuple[int, int, int]


@dataclass(frozen=True)
class ConvertResult:
    """What a conversion wrote: levels, voxels (every channel) and the time it took."""

    levels: int
    voxels: int
    seconds: float


@dataclass(frozen=True)
class LevelPlan:
    """One level in precomputed terms, along x, y, z."""

    size: Vec3
    voxel_offset: Vec3
    resolution: tuple[float, float, float]
    chunks: Vec3

    @property
    def bounds(self) -> Box:
        return Box.from_shape(self.size, self.voxel_offset)


class _Reader:
    """A source dataset of any format, read as precomputed-style ``(x, y, z, c)`` blocks."""

    def __init__(self, dataset: Dataset, threads: int | None) -> None:
        self.dataset = dataset
        # No bar per tile: the conversion shows its own.
        self.arrays = [BigArray(dataset, mip=k, threads=threads, progress=False)
                       for k in range(dataset.num_levels)]  # fmt: skip
        self.channels = dataset.num_channels
        self.roles = _roles(dataset) if isinstance(dataset, ZarrDataset) else ()
        self.plans = [self._plan(k) for k in range(dataset.num_levels)]

    def _plan(self, mip: int) -> LevelPlan:
        vol = self.arrays[mip]
        if not self.roles:  # precomputed
            return LevelPlan(_vec3(vol.shape[:3]), _vec3(vol.voxel_offset),
                             _res3(vol.resolution), _vec3(vol.chunks))  # fmt: skip
        assert isinstance(self.dataset, ZarrDataset)
        shape, chunks = vol.level.bounds.shape, vol.level.source.grid.chunk
        for i, role in enumerate(self.roles):
            if role not in "xyzc" and shape[i] != 1:
                name = vol.dims[i]
                raise UnsupportedError(
                    f"{vol.url}: axis {name!r} has {shape[i]} elements; precomputed volumes have "
                    f"x, y, z and channels only, so a {name!r} axis must have one element"
                )
        where = [self.roles.index(a) for a in "xyz"]
        resolution = [1.0, 1.0, 1.0]
        offset = [0, 0, 0]
        multiscale = self.dataset.multiscale
        if multiscale is not None:
            geometry = level_geometry(multiscale, mip)
            for j, i in enumerate(where):
                unit = multiscale.axes[i].unit
                per = 1.0 if unit is None else nanometres_per(unit)
                resolution[j] = geometry.resolution[i] * per
                offset[j] = geometry.voxel_offset[i]
        return LevelPlan(
            _vec3(shape[i] for i in where), _vec3(offset), _res3(resolution),
            _vec3(chunks[i] for i in where),
        )  # fmt: skip

    def read(self, mip: int, box: Box) -> np.ndarray:
        """The voxels of ``box`` (x, y, z, absolute) as an ``(x, y, z, c)`` array."""
        vol = self.arrays[mip]
        if not self.roles:
            block = vol[tuple(slice(a, b) for a, b in zip(box.start, box.stop, strict=True))]
            return block if block.ndim == 4 else block[..., np.newaxis]
        start = self.plans[mip].voxel_offset
        key: list[slice | int] = []
        kept: list[str] = []
        for role in self.roles:
            if role in "xyz":
                j = "xyz".index(role)
                key.append(slice(box.start[j] - start[j], box.stop[j] - start[j]))
            elif role == "c":
                key.append(slice(None))
            else:
                key.append(0)
                continue
            kept.append(role)
        block = vol[tuple(key)]
        if "c" not in kept:
            block, kept = block[..., np.newaxis], [*kept, "c"]
        return np.transpose(block, [kept.index(a) for a in "xyzc"])

    def close(self) -> None:
        for vol in self.arrays:
            vol.close()


def _roles(dataset: ZarrDataset) -> tuple[str, ...]:
    """What each axis of a Zarr dataset is: ``x``, ``y``, ``z``, ``c``, or ``-`` (any other)."""
    dims = dataset.dims
    if dataset.multiscale is not None:
        kinds = [axis.type for axis in dataset.multiscale.axes]
        space = [i for i, kind in enumerate(kinds) if kind == "space"]
        roles = ["c" if kind == "channel" else "-" for kind in kinds]
        if len(space) == 3:
            # Space axes named x, y, z say which is which; others are z, y, x as NGFF orders them.
            named = {dims[i] for i in space} == {"x", "y", "z"}
            for i, name in zip(space, "zyx", strict=True):
                roles[i] = dims[i] if named else name
            return tuple(roles)
    elif set(dims) >= {"x", "y", "z"}:
        return tuple(d if d in ("x", "y", "z", "c") else "-" for d in dims)
    elif len(dims) in (3, 4) and all(d == f"dim_{i}" for i, d in enumerate(dims)):
        return tuple("czyx"[-len(dims) :])
    raise UnsupportedError(
        f"{dataset.store.url} has axes {dims}; converting to precomputed needs three space axes "
        "(named x, y and z, or typed 'space' in OME-NGFF metadata)"
    )


def _vec3(values: Sequence[int] | Iterator[int]) -> Vec3:
    x, y, z = (int(v) for v in values)
    return (x, y, z)


def _res3(values: Sequence[float]) -> tuple[float, float, float]:
    x, y, z = (float(v) for v in values)
    return (x, y, z)


class _Writer:
    """The destination's levels, each a writable array, and the root metadata written last."""

    def __init__(
        self, arrays: list[BigArray], zarr_axes: bool, finish: Callable[[], object]
    ) -> None:
        self.arrays = arrays
        self.zarr_axes = zarr_axes
        self._finish = finish

    def write(self, mip: int, box: Box, block: np.ndarray, offset: Vec3) -> None:
        """Write an ``(x, y, z, c)`` block at ``box`` (x, y, z, absolute)."""
        vol = self.arrays[mip]
        spans = [slice(a, b) for a, b in zip(box.start, box.stop, strict=True)]
        single = block.shape[3] == 1
        if not self.zarr_axes:
            vol[tuple(spans)] = block[..., 0] if single else block
            return
        # Zarr indices start at 0 where precomputed's start at the level's voxel_offset.
        zyx = [slice(s.start - o, s.stop - o) for s, o in zip(spans, offset, strict=True)][::-1]
        vol[tuple(zyx if single else [slice(None), *zyx])] = (
            block[..., 0].T if single else np.transpose(block, (3, 2, 1, 0))
        )

    def finish(self) -> None:
        self._finish()

    def close(self) -> None:
        for vol in self.arrays:
            vol.close()


def _precomputed_writer(
    store: Store, plans: Sequence[LevelPlan], dtype: np.dtype, channels: int,
    compression: str | None, threads: int | None, layer_type: str,
) -> _Writer:  # fmt: skip
    scales = []
    for plan in plans:
        info = create_info(
            plan.size, dtype, plan.chunks, plan.voxel_offset, plan.resolution, channels,
            layer_type, "raw", compression, compression_level=None, jpeg_quality=None,
            png_level=None, compressed_segmentation_block_size=None, blosc_cname=None,
            blosc_shuffle=None, sharding=None, shard_size_bytes=None, skip_empty=True,
        )  # fmt: skip
        scales.append(info.scales[0])
    keys = [s.key for s in scales]
    if len(set(keys)) != len(keys):
        raise InvalidInfoError(
            f"two levels have the same resolution (scale keys {keys}); precomputed names each "
            "scale by its resolution, so every level needs its own"
        )
    info = Info.from_bytes(info.with_scales(scales).to_bytes())
    dataset = PrecomputedDataset(store, info)
    arrays = [_writable(dataset, k, threads) for k in range(len(plans))]
    return _Writer(arrays, False, lambda: store.put(INFO_KEY, info.to_bytes()))


def _zarr_writer(
    store: Store, version: int, plans: Sequence[LevelPlan], dtype: np.dtype, channels: int,
    compression: str | None, threads: int | None,
) -> _Writer:  # fmt: skip
    lead = (channels,) if channels > 1 else ()
    dims = ("c", "z", "y", "x")[-len(lead) - 3 :]
    levels = []
    for plan in plans:
        levels.append(create_zarr(
            store, version=version, shape=lead + plan.size[::-1], dtype=dtype,
            chunks=(1,) * len(lead) + plan.chunks[::-1], dims=dims, fill_value=0,
            compression=compression, compression_level=None, attributes=None,
        ))  # fmt: skip
    resolutions = [(1.0,) * len(lead) + plan.resolution[::-1] for plan in plans]
    offsets = [(0,) * len(lead) + plan.voxel_offset[::-1] for plan in plans]
    image = create_ome_levels(levels, resolutions, offsets, unit="nanometer")
    arrays = [_writable(image, k, threads) for k in range(len(plans))]
    return _Writer(arrays, True, lambda: write_image_metadata(image))


def _writable(dataset: Dataset, mip: int, threads: int | None) -> BigArray:
    # No bar per tile (the conversion has its own); zero chunks are not written.
    return BigArray(dataset, mip=mip, mode="r+", threads=threads, progress=False, skip_empty=True)


def _tiles(plan: LevelPlan, source_chunks: Vec3, bytes_per_voxel: int) -> list[Box]:
    """Boxes of whole destination chunks (clipped to the level) that tile it, z slowest: each
    at least a source chunk wide, so no source chunk is read twice along an axis where one
    tile would hold it, and grown x first to about :data:`TILE_BYTES`."""
    chunk, bounds = plan.chunks, plan.bounds
    grid = [-(-s // c) for s, c in zip(plan.size, chunk, strict=True)]
    n = [max(1, min(g, -(-s // c))) for g, s, c in zip(grid, source_chunks, chunk, strict=True)]
    for axis in range(3):
        others = math.prod(n[b] * chunk[b] for b in range(3) if b != axis)
        fit = TILE_BYTES // max(1, others * chunk[axis] * bytes_per_voxel)
        n[axis] = max(n[axis], min(grid[axis], fit))
    step = [k * c for k, c in zip(n, chunk, strict=True)]
    ranges = [range(a, b, s) for a, b, s in zip(bounds.start, bounds.stop, step, strict=True)]
    starts = [(x, y, z) for z in ranges[2] for y in ranges[1] for x in ranges[0]]
    return [
        Box(start, tuple(min(a + s, b) for a, s, b in zip(start, step, bounds.stop, strict=True)))
        for start in starts
    ]


def convert_format(
    src: str | os.PathLike[str] | Store,
    dst: str | os.PathLike[str] | Store,
    format: str,
    *,
    chunks: Sequence[int] | None = None,
    compression: str | None = None,
    overwrite: bool = False,
    threads: int | None = None,
    progress: bool | None = None,
) -> ConvertResult:
    """Convert the dataset at ``src`` (any format, every level) to ``format`` at ``dst``.

    ``format`` is ``"zarr"`` (an OME-Zarr NGFF 0.5 image over Zarr v3), ``"zarr2"`` (NGFF 0.4
    over Zarr v2) or ``"precomputed"``; see the module's text for how axes and placement carry
    over. ``chunks`` (x, y, z) re-chunks every level (a Zarr chunk is then ``(1,) z, y, x``);
    None keeps each level's source chunks. ``compression`` None picks the format's default
    (:data:`DEFAULT_COMPRESSION`), ``"none"`` none. A dataset at ``dst`` raises
    :class:`~bigarrays.errors.DatasetExistsError` unless ``overwrite``. ``progress`` True/False
    forces the bar on or off; None shows it on a terminal for long conversions.
    """
    if format not in FORMATS:
        raise InvalidArgumentError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    if threads is not None and threads < 1:
        raise InvalidArgumentError(f"threads must be >= 1, got {threads}")
    if chunks is not None:
        chunks = _vec3(chunks) if len(chunks) == 3 else chunks
        if len(chunks) != 3 or any(c < 1 for c in chunks):
            raise InvalidInfoError(f"chunks must be three positive sizes (x, y, z), got {chunks}")
    if compression is None:
        compression = DEFAULT_COMPRESSION[format]
    started = time.perf_counter()
    source = open_store(src, read_only=True)
    try:
        found, document = detect(source)
        dataset: Dataset = (
            open_dataset(source, writable=False, info_bytes=document)
            if found == "precomputed" else open_zarr(source, found, document)
        )  # fmt: skip
        reader = _Reader(dataset, threads)
        try:
            target = open_store(dst, read_only=False)
            try:
                voxels = _convert(reader, target, format, chunks, compression, overwrite,
                                  threads, progress)  # fmt: skip
            finally:
                if not isinstance(dst, Store):
                    target.close()  # a zip writes its central directory here
        finally:
            reader.close()
    finally:
        if not isinstance(src, Store):
            source.close()
    return ConvertResult(len(reader.plans), voxels, time.perf_counter() - started)


def _convert(
    reader: _Reader, target: Store, format: str, chunks: Sequence[int] | None,
    compression: str, overwrite: bool, threads: int | None, progress: bool | None,
) -> int:  # fmt: skip
    source = reader.dataset.store
    if source.url.rstrip("/") == target.url.rstrip("/"):
        raise UnsupportedError(f"cannot convert {source.url} onto itself; write it elsewhere")
    plans = list(reader.plans)
    if chunks is not None:
        plans = [replace(plan, chunks=_vec3(chunks)) for plan in plans]
    dtype, channels = reader.dataset.dtype, reader.channels
    codec = None if compression == "none" else compression
    # Every argument is checked (by building the new metadata) before an old dataset goes.
    if format == "precomputed":
        # A precomputed segmentation stays one (raw); Zarr has no layer type, so it gives images.
        layer_type = reader.dataset.layer_type
        writer = _precomputed_writer(target, plans, dtype, channels, codec, threads, layer_type)
    else:
        version = 3 if format == "zarr" else 2
        writer = _zarr_writer(target, version, plans, dtype, channels, codec, threads)
    try:
        clear_destination(target, overwrite)
        work = [
            (mip, box)
            for mip, plan in enumerate(plans)
            for box in _tiles(plan, reader.plans[mip].chunks, channels * dtype.itemsize)
        ]
        # The bar counts destination chunks: a few large tiles still show steady progress.
        total = sum(math.prod(_chunks_in(box, plans[mip].chunks)) for mip, box in work)
        description = f"converting {source.url} to {format} at {target.url}"
        pool = ThreadPoolExecutor(TILES_IN_FLIGHT, thread_name_prefix="bigarrays-convert")
        with progress_bar(total, description, progress) as advance, pool:
            lock = threading.Lock()

            def copy_tile(item: tuple[int, Box]) -> None:
                mip, box = item
                writer.write(mip, box, reader.read(mip, box), plans[mip].voxel_offset)
                if advance is not None:
                    with lock:
                        for _ in range(math.prod(_chunks_in(box, plans[mip].chunks))):
                            advance()

            run_bounded(copy_tile, work, pool, TILES_IN_FLIGHT)
        writer.finish()
    finally:
        writer.close()
    return sum(math.prod(plan.size) * channels for plan in plans)


def _chunks_in(box: Box, chunks: Vec3) -> tuple[int, ...]:
    """Chunks along each axis of a tile (its last chunks may be cut by the level's end)."""
    return tuple(-(-n // c) for n, c in zip(box.shape, chunks, strict=True))
