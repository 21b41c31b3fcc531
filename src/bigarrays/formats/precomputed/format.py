"""The Neuroglancer precomputed format as a :class:`~bigarrays.formats.base.Dataset`.

A dataset is an ``info`` document and one folder of chunks (or shards) per scale; each scale is a
level, finest first. ``open_dataset`` reads the info, ``create_info`` checks ``create()``'s
arguments and makes the info of a one-scale volume, ``delete_dataset`` removes one.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from bigarrays.arguments import check_codec_choices, real3, whole, whole3
from bigarrays.box import Box
from bigarrays.chunk_source import ChunkSource
from bigarrays.errors import (
    DatasetNotFoundError,
    InvalidInfoError,
    ResizeRefusedError,
    ScaleNotFoundError,
    UnsupportedError,
    ViewerCompatibilityWarning,
)
from bigarrays.formats.base import Axis, Dataset, Level, LevelSpec, Resized
from bigarrays.formats.precomputed.chunks import open_layout
from bigarrays.formats.precomputed.info import (
    EXTENSION_DATA_TYPES,
    LAYER_TYPES,
    Info,
    Scale,
    check_chunk_bytes,
    check_extent,
    check_volume_bytes,
    dtype_to_data_type,
    scale_key_for,
)
from bigarrays.formats.precomputed.sharding import resolve_sharding
from bigarrays.formats.precomputed.stored_compression import with_stored_compression
from bigarrays.stores import Store, content_encoding, delete_folder

INFO_KEY = "info"


class PrecomputedDataset(Dataset):
    """A precomputed volume: its info, and a level per scale."""

    format_name = "precomputed"

    def __init__(self, store: Store, info: Info) -> None:
        super().__init__(store)
        self.info = info
        #: The version of the info last checked by ``renamed`` (None: not yet).
        self._seen: str | None = None

    @property
    def num_levels(self) -> int:
        return len(self.info.scales)

    @property
    def dtype(self) -> np.dtype:
        return self.info.dtype

    @property
    def num_channels(self) -> int:
        return self.info.num_channels

    @property
    def layer_type(self) -> str:
        return self.info.type

    def document(self) -> dict[str, Any]:
        return copy.deepcopy(self.info.to_json())

    @property
    def pooling_method(self) -> str | None:
        from bigarrays.formats.precomputed.levels import recorded_method

        return recorded_method(self.info)

    def with_levels(
        self, specs: Sequence[LevelSpec], *, method: str, replace_levels: bool
    ) -> PrecomputedDataset:
        from bigarrays.formats.precomputed.levels import add_scales

        stored = add_scales(
            self.store, self.info, specs, method=method, replace_levels=replace_levels
        )
        # The first scale keeps what this session knows of it (the compression it writes with).
        return PrecomputedDataset(self.store, stored.with_scales(
            [self.info.scales[0], *stored.scales[1:]]))  # fmt: skip

    def resized(
        self, change: Callable[[Box], Box], levels: Callable[[int, Box], Box] | None = None
    ) -> Resized:
        from bigarrays.formats.precomputed.resize import resize

        step, stored = resize(self.store, change, self._session, levels)
        dataset = PrecomputedDataset(self.store, self._session(stored))
        return Resized(dataset, step.before, step.after, dataset.level(0).source)

    def renamed(self, *, pin: bool = False) -> PrecomputedDataset | None:
        from bigarrays.formats.precomputed.resize import renamed_info

        if pin and self._seen is not None:
            return None
        found = renamed_info(self.store, self.info, self._seen)
        if found is None:
            return None
        stored, version = found
        if stored is None:
            self._seen = version
            return None
        dataset = PrecomputedDataset(self.store, self._session(stored))
        dataset._seen = version
        return dataset

    def drop_renamed(self, before: Dataset, box: Box) -> None:
        from bigarrays.formats.precomputed.resize import drop_old_names

        if isinstance(before, PrecomputedDataset):
            drop_old_names(self.store, before.info, box)

    def ahead(self, bounds: Box, mip: int = 0) -> ChunkSource:
        from bigarrays.formats.precomputed.resize import stored_extent

        scale = self.info.scales[mip]
        grid = Box.from_shape(scale.size, scale.voxel_offset)
        box = Box(bounds.start[:3], bounds.stop[:3])
        fixed = scale.sharding is not None or stored_extent(scale) is not None or mip > 0
        if not grid.contains(box) and fixed:
            raise ResizeRefusedError(
                f"cannot write {box} of {self.store.url}: it lies outside the fixed grid {grid}; "
                "create the volume with max_shape= (or max_bounds=) covering the growth"
            )
        if grid.contains(box) or any(a < b for a, b in zip(box.start, grid.start, strict=True)):
            return self.level(mip).source
        stop = tuple(max(a, b) for a, b in zip(grid.stop, box.stop, strict=True))
        size = tuple(b - a for a, b in zip(grid.start, stop, strict=True))
        wider = replace(scale, size=size)  # type: ignore[arg-type]
        return open_layout(self.store, self.info.with_scales([wider, *self.info.scales[1:]]), 0)

    def _session(self, info: Info) -> Info:
        """``info`` (as stored) with the compression this session writes its first scale with."""
        mine, scale = self.info.scales[0], info.scales[0]
        if scale.sharding is None and scale.compression is None and mine.compression:
            scale = replace(scale, compression=mine.compression,
                            compression_level=mine.compression_level)  # fmt: skip
        return info.with_scales([scale, *info.scales[1:]])

    def level(self, mip: int) -> Level:
        from bigarrays.formats.precomputed.resize import level_extent

        scales = self.info.scales
        if not 0 <= mip < len(scales):
            raise ScaleNotFoundError(
                f"{self.store.url} has {len(scales)} scale(s) (mip 0..{len(scales) - 1}), "
                f"not mip {mip}"
            )
        scale = scales[mip]
        source = open_layout(self.store, self.info, mip)
        return Level(
            source=source,
            axes=(Axis("x"), Axis("y"), Axis("z"),
                  Axis("c", positional=True, hidden=self.info.num_channels == 1,
                       kind="channel")),
            resolution=scale.resolution,
            encoding=scale.encoding,
            compression=scale.compression,
            deletes_chunks=scale.sharding is None,
            native=scale,
            write_unit=source.shard_shape, extent=level_extent(self.info, mip),
        )  # fmt: skip


def read_info(store: Store, data: bytes | None = None) -> Info:
    """The info at ``store`` (``data``: its bytes, when the caller has read them already)."""
    if data is None:
        data = store.get(INFO_KEY)
    if data is None:
        raise DatasetNotFoundError(f"no precomputed volume at {store.url}: it has no 'info' file")
    return Info.from_bytes(data, url=f"{store.url.rstrip('/')}/{INFO_KEY}")


def open_dataset(
    store: Store,
    *,
    writable: bool,
    write_compression: str | None = None,
    info_bytes: bytes | None = None,
) -> PrecomputedDataset:
    """The dataset at ``store``; see ``bigarrays.open`` for ``write_compression``."""
    info = read_info(store, info_bytes)
    if write_compression is None and writable:
        info = with_stored_compression(store, info)
    elif write_compression is not None and write_compression != "none":
        info = _with_write_compression(info, write_compression)
    return PrecomputedDataset(store, info)


def _with_write_compression(info: Info, compression: str) -> Info:
    if compression not in content_encoding.SUFFIXES:
        raise ValueError(
            f"write_compression must be one of {', '.join(content_encoding.known())} or "
            f"'none', got {compression!r}"
        )
    scales = []
    for scale in info.scales:
        if scale.sharding is None and scale.compression is None:
            scale = replace(scale, compression=compression)
        scales.append(scale)
    return info.with_scales(scales)


def create_info(
    shape: Sequence[int],
    dtype: Any,
    chunks: Sequence[int],
    voxel_offset: Sequence[int],
    resolution: Sequence[float],
    num_channels: int,
    layer_type: str,
    encoding: str,
    compression: str | None,
    *,
    compression_level: int | None,
    jpeg_quality: int | None,
    png_level: int | None,
    compressed_segmentation_block_size: Sequence[int] | None,
    blosc_cname: str | None,
    blosc_shuffle: str | None,
    sharding: bool | dict[str, Any] | None,
    shard_size_bytes: int | None,
    skip_empty: bool,
) -> Info:
    """The info of a new one-scale volume, every argument checked (see ``bigarrays.create``);
    what the reader would make of it, so that a create never writes an info it refuses."""
    size = whole3(shape, "shape")
    if any(s < 0 for s in size):
        raise InvalidInfoError(f"shape must not be negative, got {size}")
    chunk_size = whole3(chunks, "chunks")
    if any(c < 1 for c in chunk_size):
        raise InvalidInfoError(f"chunks must be positive, got {chunk_size}")
    offset = whole3(voxel_offset, "voxel_offset")
    res = real3(resolution, "resolution")
    if any(not r > 0 for r in res):
        raise InvalidInfoError(f"resolution must be positive (nm per voxel), got {res}")
    data_type = dtype_to_data_type(dtype)
    if whole(num_channels, "num_channels") < 1:
        raise InvalidInfoError(f"num_channels must be an integer >= 1, got {num_channels!r}")
    num_channels = int(num_channels)
    if layer_type not in LAYER_TYPES:
        raise InvalidInfoError(
            f"layer_type must be one of {', '.join(LAYER_TYPES)}, got {layer_type!r}"
        )
    if layer_type == "segmentation" and num_channels != 1:
        raise InvalidInfoError("a segmentation volume has one channel")
    codec_members = check_codec_choices(
        encoding, data_type, num_channels, chunk_size, compression, compression_level,
        sharded=bool(sharding), layer_type=layer_type, jpeg_quality=jpeg_quality,
        png_level=png_level,
        compressed_segmentation_block_size=compressed_segmentation_block_size,
        blosc_cname=blosc_cname, blosc_shuffle=blosc_shuffle,
    )  # fmt: skip
    itemsize = np.dtype(data_type).itemsize
    check_extent(size, offset, ("shape", "voxel_offset"))
    check_chunk_bytes(chunk_size, num_channels, itemsize, "chunks")
    check_volume_bytes(size, num_channels, itemsize, "shape")
    sharding_spec = resolve_sharding(
        sharding,
        grid_shape=tuple(-(-s // c) for s, c in zip(size, chunk_size, strict=True)),
        chunk_bytes=math.prod(chunk_size) * num_channels * itemsize,
        target_bytes=shard_size_bytes,
        compression=compression,
    )
    if sharding_spec is not None and skip_empty:
        raise UnsupportedError(
            "skip_empty applies to unsharded scales: a shard holds its chunks together"
        )
    if sharding_spec is not None and compression_level is not None:
        raise InvalidInfoError(
            "compression_level does not apply to a sharded scale (gzip's default)"
        )
    if data_type in EXTENSION_DATA_TYPES:
        warnings.warn(
            f"data type {data_type!r} is a bigarrays extension: Neuroglancer and TensorStore "
            "cannot read this volume (CloudVolume can)",
            ViewerCompatibilityWarning,
            stacklevel=3,  # create_info, create, the caller
        )

    scale = Scale(
        key=scale_key_for(res),
        size=size,
        resolution=res,
        voxel_offset=offset,
        chunk_sizes=(chunk_size,),
        encoding=encoding,
        compression=None if sharding_spec is not None else compression,
        compression_level=compression_level,
        sharding=sharding_spec,
        **codec_members,
    )
    info = Info(data_type=data_type, num_channels=num_channels, scales=(scale,), type=layer_type)
    return Info.from_bytes(info.to_bytes())


def delete_dataset(store: Store, info_bytes: bytes) -> None:
    """Remove the chunks of every scale the old info names, then the info itself."""
    try:
        old = Info.from_bytes(info_bytes)
        prefixes = [s.key for s in old.scales]
    except ValueError:
        prefixes = []  # an unreadable info names no scales; replace the file alone
    for prefix in prefixes:
        delete_folder(store, prefix)
    store.delete(INFO_KEY)
