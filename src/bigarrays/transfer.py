"""Whole datasets moved level by level in blocks: the part of a conversion or a reshard that
does not depend on where it runs.

A :class:`BlockReader` reads every level of a dataset of any format as precomputed-style
``(x, y, z, c)`` blocks at absolute x, y, z coordinates, with a :class:`LevelPlan` of each level
(size, offset, resolution, chunks along x, y, z). :func:`new_dataset` checks the options of a new
dataset of any format, builds its metadata and returns a :class:`BlockWriter` that writes such
blocks into its levels, with the callable that writes its metadata (the info; or the Zarr
arrays' documents, then the group's). Nothing is written before the driver asks.

The drivers decide which blocks, in what order and where: :func:`bigarrays.convert.convert_format`
on a local pool of threads, :mod:`bigarrays.adapters.dask_copy` as Dask tasks. The metadata is
written by the driver after the last block, never by the writer, so a writer sent to other
processes carries no way to write it, and a job that fails part-way leaves no dataset behind.
Readers and writers pickle (their arrays reopen their stores from their settings).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from bigarrays.array import BigArray
from bigarrays.box import Box
from bigarrays.errors import InvalidArgumentError, InvalidInfoError, UnsupportedError
from bigarrays.formats.base import Dataset
from bigarrays.formats.detect import FORMATS, detect
from bigarrays.formats.precomputed.format import (
    INFO_KEY,
    PrecomputedDataset,
    create_info,
    open_dataset,
)
from bigarrays.formats.precomputed.info import Info
from bigarrays.formats.precomputed.sharding import DEFAULT_SHARD_BYTES
from bigarrays.formats.zarr.format import (
    ZarrArray,
    ZarrDataset,
    create_ome_levels,
    create_zarr,
    open_zarr,
    write_image_metadata,
)
from bigarrays.formats.zarr.metadata_v3 import ArrayMetadataV3
from bigarrays.formats.zarr.ome import level_geometry
from bigarrays.formats.zarr.sharding import shard_for_size, sharded_metadata
from bigarrays.formats.zarr.units import nanometres_per
from bigarrays.stores import Store

__all__ = [
    "DEFAULT_COMPRESSION",
    "BlockReader",
    "BlockWriter",
    "LevelPlan",
    "check_conversion",
    "new_dataset",
    "open_source",
    "sharding_of",
]

#: What each output format compresses its chunks with unless told.
DEFAULT_COMPRESSION = {"precomputed": "none", "zarr": "zstd", "zarr2": "zstd"}

Vec3 = tuple[int, int, int]


def open_source(store: Store) -> Dataset:
    """The dataset of any format at ``store``'s root, read-only."""
    found, document = detect(store)
    if found == "precomputed":
        return open_dataset(store, writable=False, info_bytes=document)
    return open_zarr(store, found, document)


def check_conversion(format: str, chunks: Sequence[int] | None, threads: int | None) -> Vec3 | None:
    """Refuse a conversion's bad options before anything is opened; ``chunks`` as x, y, z."""
    if format not in FORMATS:
        raise InvalidArgumentError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    if threads is not None and threads < 1:
        raise InvalidArgumentError(f"threads must be >= 1, got {threads}")
    if chunks is None:
        return None
    if len(chunks) != 3 or any(c < 1 for c in chunks):
        raise InvalidInfoError(f"chunks must be three positive sizes (x, y, z), got {chunks}")
    return _vec3(chunks)


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


class BlockReader:
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

    def unit(self, mip: int) -> Vec3:
        """Level ``mip``'s read unit (a chunk, or a whole shard) along x, y, z."""
        level = self.arrays[mip].level
        names = self.roles or tuple(a.name for a in level.axes)
        return _xyz(level.unit, names)

    @property
    def shard_bytes(self) -> int | None:
        """The uncompressed bytes of a shard of the finest level (None: it is not sharded,
        its read unit is a chunk). A Zarr shard holds the channels its shape spans (one, as
        ``cp`` writes them), a precomputed one every channel."""
        if self.unit(0) == self.plans[0].chunks:
            return None
        return math.prod(self.arrays[0].level.unit) * self.dataset.dtype.itemsize

    def close(self) -> None:
        for vol in self.arrays:
            vol.close()


def _xyz(values: Sequence[int], names: Sequence[str]) -> Vec3:
    """The entries of ``values`` (one per axis named in ``names``) along x, y, z."""
    x, y, z = (int(values[list(names).index(a)]) for a in "xyz")
    return (x, y, z)


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


class BlockWriter:
    """The destination's levels, each an array open ``"r+"``, written ``(x, y, z, c)`` block
    by block; ``zarr_axes``: the arrays are Zarr's ``(c,) z, y, x``."""

    def __init__(self, arrays: list[BigArray], zarr_axes: bool = False) -> None:
        self.arrays = arrays
        self.zarr_axes = zarr_axes

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

    def unit(self, mip: int) -> Vec3:
        """Level ``mip``'s write unit (a chunk, or a whole shard) along x, y, z: a block of
        whole units is written without reading back."""
        level = self.arrays[mip].level
        names = tuple(a.name for a in level.axes) if self.zarr_axes else ("x", "y", "z", "c")
        return _xyz(level.unit, names)

    def close(self) -> None:
        for vol in self.arrays:
            vol.close()


def sharding_of(
    reader: BlockReader, shard: bool | None, shard_size_bytes: int | None
) -> tuple[bool, int | None]:
    """Whether a conversion's destination is sharded, and its target shard size: as asked, else
    as the source's finest level (shards of the same uncompressed size)."""
    source = reader.shard_bytes
    sharded = source is not None if shard is None else shard
    if sharded and shard_size_bytes is None and source is not None:
        return True, source
    return sharded, shard_size_bytes


def new_dataset(
    target: Store, format: str, plans: Sequence[LevelPlan], dtype: np.dtype, channels: int,
    compression: str | None = None, threads: int | None = None, layer_type: str = "image",
    shard: bool = False, shard_size_bytes: int | None = None,
) -> tuple[BlockWriter, Callable[[], object]]:  # fmt: skip
    """A new dataset of ``format`` (``"precomputed"``, ``"zarr"``, ``"zarr2"``) at ``target``
    with one level per plan: its writer, and the callable that writes its root metadata.

    ``compression`` None is the format's default (:data:`DEFAULT_COMPRESSION`), ``"none"``
    none. Every option is checked by building the metadata, and nothing is written here: the
    writer writes chunks (those that hold only zeros are skipped), and the callable writes every
    metadata document (the info; or each Zarr array's, then the group's). ``layer_type``
    (precomputed only): a segmentation stays one, of raw chunks. ``shard``: every level sharded,
    shards of about ``shard_size_bytes`` uncompressed (default 1 GiB) of the plan's chunks
    (precomputed ``neuroglancer_uint64_sharded_v1``; Zarr v3 ``sharding_indexed``, the index at
    the end; Zarr v2 has no sharding).
    """
    codec_name = DEFAULT_COMPRESSION[format] if compression is None else compression
    codec = None if codec_name == "none" else codec_name
    if shard_size_bytes is not None and (not shard or shard_size_bytes < 1):
        raise InvalidArgumentError(
            f"shard_size_bytes={shard_size_bytes!r}: a positive size, for a sharded conversion"
        )
    if format == "precomputed":
        return _precomputed_writer(target, plans, dtype, channels, codec, threads, layer_type,
                                   shard, shard_size_bytes)  # fmt: skip
    if shard and format == "zarr2":
        raise UnsupportedError("Zarr v2 has no sharding: convert to format 'zarr' (v3) to shard")
    version = 3 if format == "zarr" else 2
    target_bytes = (shard_size_bytes or DEFAULT_SHARD_BYTES) if shard else None
    return _zarr_writer(target, version, plans, dtype, channels, codec, threads, target_bytes)


def _precomputed_writer(
    store: Store, plans: Sequence[LevelPlan], dtype: np.dtype, channels: int,
    compression: str | None, threads: int | None, layer_type: str, shard: bool,
    shard_size_bytes: int | None,
) -> tuple[BlockWriter, Callable[[], object]]:  # fmt: skip
    scales = []
    for plan in plans:
        info = create_info(
            plan.size, dtype, plan.chunks, plan.voxel_offset, plan.resolution, channels,
            layer_type, "raw", compression, compression_level=None, jpeg_quality=None,
            png_level=None, compressed_segmentation_block_size=None, blosc_cname=None,
            blosc_shuffle=None, sharding=True if shard else None,
            shard_size_bytes=shard_size_bytes, skip_empty=not shard,
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
    arrays = [_writable(dataset, k, threads, shard) for k in range(len(plans))]
    return BlockWriter(arrays), lambda: store.put(INFO_KEY, info.to_bytes())


def _zarr_writer(
    store: Store, version: int, plans: Sequence[LevelPlan], dtype: np.dtype, channels: int,
    compression: str | None, threads: int | None, shard_bytes: int | None,
) -> tuple[BlockWriter, Callable[[], object]]:  # fmt: skip
    lead = (channels,) if channels > 1 else ()
    dims = ("c", "z", "y", "x")[-len(lead) - 3 :]
    levels = []
    for plan in plans:
        shape, inner = lead + plan.size[::-1], (1,) * len(lead) + plan.chunks[::-1]
        chunks = inner
        if shard_bytes is not None:
            chunks = shard_for_size(shape, inner, np.dtype(dtype).itemsize, shard_bytes)
        level = create_zarr(
            store, version=version, shape=shape, dtype=dtype, chunks=chunks, dims=dims,
            fill_value=0, compression=compression, compression_level=None, attributes=None,
        )  # fmt: skip
        meta = level.meta
        if shard_bytes is not None and isinstance(meta, ArrayMetadataV3):
            meta = sharded_metadata(meta, inner, "end")
            level = ZarrDataset(store, [ZarrArray("", meta, dict(meta.attributes))])
        levels.append(level)
    resolutions = [(1.0,) * len(lead) + plan.resolution[::-1] for plan in plans]
    offsets = [(0,) * len(lead) + plan.voxel_offset[::-1] for plan in plans]
    image = create_ome_levels(levels, resolutions, offsets, unit="nanometer")
    arrays = [_writable(image, k, threads, shard_bytes is not None) for k in range(len(plans))]
    return BlockWriter(arrays, zarr_axes=True), lambda: write_image_metadata(image)


def _writable(dataset: Dataset, mip: int, threads: int | None, sharded: bool) -> BigArray:
    # No bar per tile (the conversion has its own); zero chunks are not written (shards leave
    # them out by themselves).
    return BigArray(dataset, mip=mip, mode="r+", threads=threads, progress=False,
                    skip_empty=not sharded)  # fmt: skip
