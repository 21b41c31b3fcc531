"""Zarr v3 and v2 arrays as :class:`~bigarrays.formats.base.Dataset` s.

A Zarr array is one level: its chunk grid starts at 0 on every axis, its axes take absolute
coordinates (so ``-1`` is outside the array, as in TensorStore), and they keep the stored order.
Axis names come from ``dimension_names`` (v3) or xarray's ``_ARRAY_DIMENSIONS`` attribute (v2),
else ``dim_0``, ``dim_1``, ... ``open_zarr`` reads an array's metadata; ``create_zarr`` writes
a new array's.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from bigarrays.box import Box
from bigarrays.chunk_source import ChunkSource
from bigarrays.codecs import blosc as blosc_codec
from bigarrays.codecs.chain import CodecChain
from bigarrays.codecs.zarr_v2 import V2Chain
from bigarrays.errors import (
    DatasetNotFoundError,
    InvalidInfoError,
    InvalidMetadataError,
    ScaleNotFoundError,
    UnsupportedError,
)
from bigarrays.formats.base import Axis, Dataset, Level, LevelSpec, Resized
from bigarrays.formats.zarr.chunks import Chain, ZarrChunks
from bigarrays.formats.zarr.dtypes import as_fill_value, v2_typestr, v3_name
from bigarrays.formats.zarr.metadata_v2 import (
    ARRAY_KEY,
    ATTRIBUTES_KEY,
    GROUP_KEY,
    ArrayMetadataV2,
    attributes_to_bytes,
    parse_attributes,
)
from bigarrays.formats.zarr.metadata_v3 import (
    METADATA_KEY,
    SHARDING_CODEC,
    ArrayMetadataV3,
    GroupMetadataV3,
    node_from_json,
)
from bigarrays.formats.zarr.ome import Axis as OmeAxis
from bigarrays.formats.zarr.ome import (
    Multiscale,
    OmeAttributes,
    has_multiscales,
    level_geometry,
    multiscale_for,
)
from bigarrays.formats.zarr.sharded_chunks import ShardedZarrChunks
from bigarrays.formats.zarr.sharding import ShardingConfig, is_sharded
from bigarrays.stores import Store

ArrayMetadata = ArrayMetadataV3 | ArrayMetadataV2

#: Compressions ``create`` offers, as Zarr v3 codecs and as numcodecs (v2) configurations.
COMPRESSIONS = ("zstd", "gzip", "blosc")
DEFAULT_LEVELS = {"zstd": 3, "gzip": 5, "blosc": 5}


@dataclass(frozen=True)
class ZarrArray:
    """One array of a dataset: where it lies under the dataset's root, and its metadata."""

    path: str
    meta: ArrayMetadata
    attributes: dict[str, Any]


class ZarrDataset(Dataset):
    """A Zarr array (one level), or an OME-Zarr image: a group whose NGFF ``multiscales`` names
    its levels, finest first (each a Zarr array below the group)."""

    def __init__(
        self,
        store: Store,
        arrays: Sequence[ZarrArray],
        group: dict[str, Any] | None = None,
        multiscale: Multiscale | None = None,
    ) -> None:
        super().__init__(store)
        self.arrays = tuple(arrays)
        self.group = group
        self.multiscale = multiscale
        first = self.arrays[0].meta
        self.format_name = "zarr" if isinstance(first, ArrayMetadataV3) else "zarr2"

    @property
    def meta(self) -> ArrayMetadata:
        """The finest level's array metadata."""
        return self.arrays[0].meta

    @property
    def num_levels(self) -> int:
        return len(self.arrays)

    @property
    def dtype(self) -> np.dtype:
        meta = self.meta
        dtype = meta.data_type if isinstance(meta, ArrayMetadataV3) else meta.dtype
        return dtype.newbyteorder("=")

    @property
    def dims(self) -> tuple[str, ...]:
        if self.multiscale is not None:
            return tuple(axis.name for axis in self.multiscale.axes)
        ndim = len(self.meta.shape)
        names: Sequence[Any] | None = None
        if isinstance(self.meta, ArrayMetadataV3):
            names = self.meta.dimension_names
        else:
            names = self.arrays[0].attributes.get("_ARRAY_DIMENSIONS")  # xarray's convention
            if not isinstance(names, list) or len(names) != ndim:
                names = None
        if names is None:
            return tuple(f"dim_{i}" for i in range(ndim))
        return tuple(n if isinstance(n, str) and n else f"dim_{i}" for i, n in enumerate(names))

    @property
    def num_channels(self) -> int:
        dims = self.dims
        return self.meta.shape[dims.index("c")] if "c" in dims else 1

    @property
    def layer_type(self) -> str:
        return "image"

    def document(self) -> dict[str, Any]:
        return copy.deepcopy(self.group if self.group is not None else self.meta.to_json())

    @property
    def pooling_method(self) -> str | None:
        kind = self.multiscale.type if self.multiscale is not None else None
        return kind if isinstance(kind, str) else None

    def _axes(self) -> tuple[Axis, ...]:
        if self.multiscale is not None:
            kinds = [axis.type if axis.type in ("space", "time", "channel") else "other"
                     for axis in self.multiscale.axes]  # fmt: skip
        else:
            kinds = [_AXIS_TYPES.get(name, "space") for name in self.dims]
        return tuple(Axis(name, kind=kind) for name, kind in zip(self.dims, kinds, strict=True))

    def with_levels(
        self, specs: Sequence[LevelSpec], *, method: str, replace_levels: bool
    ) -> ZarrDataset:
        from bigarrays.formats.zarr.levels import add_levels

        return add_levels(self, specs, method=method, replace_levels=replace_levels)

    def resized(
        self, change: Callable[[Box], Box], levels: Callable[[int, Box], Box] | None = None
    ) -> Resized:
        from bigarrays.formats.zarr.resize import resize

        return resize(self, change, levels)

    def ahead(self, bounds: Box, mip: int = 0) -> ChunkSource:
        array = self.arrays[mip]
        shape = tuple(max(n, b) for n, b in zip(array.meta.shape, bounds.stop, strict=True))
        wider = ZarrArray(array.path, replace(array.meta, shape=shape), array.attributes)
        arrays = list(self.arrays)
        arrays[mip] = wider
        return ZarrDataset(self.store, arrays, self.group, self.multiscale).level(mip).source

    def _chain(self, meta: ArrayMetadata) -> tuple[Chain, str, str | None]:
        """The codec chain, the name of the chunk encoding and of the compression."""
        if isinstance(meta, ArrayMetadataV3):
            if is_sharded(meta):  # named by the shards' codec, compressed as the inner chunks
                chain = ShardingConfig.of(meta).codecs
                encoding = SHARDING_CODEC
            else:
                chain = CodecChain.from_json(list(meta.codecs), meta.data_type, meta.chunk_shape)
                encoding = chain.array_bytes.name
            compressions = [c.name for c in chain.bytes_bytes if c.name != "crc32c"]
            return chain, encoding, compressions[0] if compressions else None
        v2 = V2Chain.from_zarray(
            None if meta.compressor is None else dict(meta.compressor),
            list(meta.filters) if meta.filters else None, meta.dtype, meta.chunks, meta.order,
        )  # fmt: skip
        compressor = meta.compressor.get("id") if meta.compressor else None
        return v2, "raw", compressor

    def level(self, mip: int) -> Level:
        if not 0 <= mip < len(self.arrays):
            raise ScaleNotFoundError(
                f"{self.store.url} has {len(self.arrays)} level(s) (mip 0..{len(self.arrays) - 1}),"
                f" not mip {mip}"
            )
        array = self.arrays[mip]
        meta = array.meta
        chain, encoding, compression = self._chain(meta)
        if isinstance(meta, ArrayMetadataV3):
            chunks, fill = meta.chunk_shape, meta.fill_value
        else:
            chunks, fill = meta.chunks, meta.effective_fill_value
        source: ZarrChunks | ShardedZarrChunks
        if isinstance(meta, ArrayMetadataV3) and is_sharded(meta):
            source = ShardedZarrChunks(self.store, array.path, meta, self.dtype)
        else:
            source = ZarrChunks(
                self.store, array.path, meta.shape, chunks, self.dtype, fill, chain, meta.chunk_key
            )
        resolution: tuple[float, ...] = (1.0,) * len(meta.shape)
        if self.multiscale is not None:
            resolution = level_geometry(self.multiscale, mip).resolution
        return Level(
            source=source, axes=self._axes(), resolution=resolution,
            encoding=encoding, compression=compression,
            deletes_chunks=not isinstance(source, ShardedZarrChunks), native=meta,
            write_unit=source.config.shard_shape if isinstance(source, ShardedZarrChunks) else None,
        )  # fmt: skip


def _read_array(store: Store, path: str, version: int) -> ZarrArray:
    """The array at ``path`` below the root (``""``: the root itself)."""
    head = f"{path.strip('/')}/" if path.strip("/") else ""
    where = f"{store.url.rstrip('/')}/{head}"
    if version == 3:
        data = store.get(head + METADATA_KEY)
        if data is None:
            raise DatasetNotFoundError(f"no Zarr array at {where}: it has no {METADATA_KEY}")
        node = node_from_json(data, url=where + METADATA_KEY)
        if not isinstance(node, ArrayMetadataV3):
            raise UnsupportedError(f"{where} is a Zarr group, not an array")
        return ZarrArray(path, node, dict(node.attributes))
    data = store.get(head + ARRAY_KEY)
    if data is None:
        raise DatasetNotFoundError(f"no Zarr v2 array at {where}: it has no {ARRAY_KEY}")
    attrs = store.get(head + ATTRIBUTES_KEY)
    attributes = {} if attrs is None else parse_attributes(attrs, url=where + ATTRIBUTES_KEY)
    return ZarrArray(path, ArrayMetadataV2.from_json(data, url=where + ARRAY_KEY), attributes)


def open_zarr(store: Store, found: str, document: bytes) -> ZarrDataset:
    """The Zarr array or OME-Zarr image at ``store``'s root; ``found`` and ``document`` as
    ``formats.detect`` gives them."""
    url = f"{store.url.rstrip('/')}/"
    if found == "zarr":
        node = node_from_json(document, url=url + METADATA_KEY)
        if isinstance(node, ArrayMetadataV3):
            return ZarrDataset(store, [ZarrArray("", node, dict(node.attributes))])
        attributes, group, version = dict(node.attributes), node.to_json(), 3
    else:
        if store.get(ARRAY_KEY) is not None:
            return ZarrDataset(store, [_read_array(store, "", 2)])
        attrs = store.get(ATTRIBUTES_KEY)
        attributes = {} if attrs is None else parse_attributes(attrs, url=url + ATTRIBUTES_KEY)
        group, version = attributes, 2
    if not has_multiscales(attributes):
        raise UnsupportedError(
            f"{store.url} is a Zarr group without OME-NGFF multiscales; open one of its arrays "
            "(a URL below it)"
        )
    multiscale = OmeAttributes.from_json(attributes).multiscales[0]
    arrays = [_read_array(store, d.path, version) for d in multiscale.datasets]
    ndim = len(multiscale.axes)
    for array in arrays:
        if len(array.meta.shape) != ndim:
            raise InvalidMetadataError(
                f"level {array.path!r} has {len(array.meta.shape)} axes; the multiscale names "
                f"{ndim}", url=url,
            )  # fmt: skip
    return ZarrDataset(store, arrays, group, multiscale)


#: ``create``'s ``blosc_shuffle`` names, as Zarr v3 and v2 write them.
_SHUFFLES = {"none": ("noshuffle", 0), "byte": ("shuffle", 1), "bit": ("bitshuffle", 2)}


def _blosc(dtype: np.dtype, blosc: tuple[str | None, str | None]) -> tuple[str, str]:
    """The blosc codec and shuffle asked for (``create``'s names), Zarr's defaults else."""
    cname, shuffle = blosc
    return cname or "zstd", shuffle or ("byte" if dtype.itemsize > 1 else "bit")


def _v3_codecs(
    dtype: np.dtype, compression: str | None, level: int | None,
    blosc: tuple[str | None, str | None] = (None, None),
) -> list[dict]:  # fmt: skip
    codecs: list[dict[str, Any]] = [{"name": "bytes", "configuration": {"endian": "little"}}]
    if compression == "zstd":
        codecs.append({"name": "zstd", "configuration": {"level": level, "checksum": False}})
    elif compression == "gzip":
        codecs.append({"name": "gzip", "configuration": {"level": level}})
    elif compression == "blosc":
        cname, shuffle = _blosc(dtype, blosc)
        codecs.append({"name": "blosc", "configuration": {
            "cname": cname, "clevel": level, "typesize": dtype.itemsize,
            "shuffle": _SHUFFLES[shuffle][0], "blocksize": 0,
        }})  # fmt: skip
    return codecs


def _v2_compressor(
    dtype: np.dtype, compression: str | None, level: int | None,
    blosc: tuple[str | None, str | None] = (None, None),
) -> dict | None:  # fmt: skip
    if compression == "zstd":
        return {"id": "zstd", "level": level}
    if compression == "gzip":
        return {"id": "gzip", "level": level}
    if compression == "blosc":
        cname, shuffle = _blosc(dtype, blosc)
        return {"id": "blosc", "cname": cname, "clevel": level, "blocksize": 0,
                "shuffle": _SHUFFLES[shuffle][1]}  # fmt: skip
    return None


def create_zarr(
    store: Store,
    *,
    version: int,
    shape: Sequence[int],
    dtype: Any,
    chunks: Sequence[int] | None,
    dims: Sequence[str] | None,
    fill_value: Any,
    compression: str | None,
    compression_level: int | None,
    attributes: dict[str, Any] | None,
    blosc: tuple[str | None, str | None] = (None, None),
) -> ZarrDataset:
    """The metadata of a new Zarr array, checked as a reader would; nothing is written here.
    ``blosc`` is ``(blosc_cname, blosc_shuffle)`` as ``create`` takes them."""
    shape = tuple(int(n) for n in shape)
    if chunks is None:
        # Whole chunks of 64 along the last three axes (z, y, x), one step along the others (t, c).
        chunks = tuple(max(1, min(64 if len(shape) - i <= 3 else 1, n)) for i, n in
                       enumerate(shape))  # fmt: skip
    chunks = tuple(int(n) for n in chunks)
    if len(chunks) != len(shape):
        raise InvalidInfoError(f"chunks {chunks} and shape {shape} differ in their number of axes")
    if dims is not None and len(dims) != len(shape):
        raise InvalidInfoError(
            f"dims {tuple(dims)} and shape {shape} differ in their number of axes"
        )
    if compression is not None and compression not in COMPRESSIONS:
        raise UnsupportedError(
            f"compression {compression!r} for Zarr: one of {', '.join(COMPRESSIONS)} or None"
        )
    if compression == "blosc":
        blosc_codec.check(None, *blosc)
    elif blosc != (None, None):
        raise InvalidInfoError("blosc_cname and blosc_shuffle apply to compression='blosc' only")
    np_dtype = np.dtype(dtype)
    level = compression_level
    if level is None:
        level = DEFAULT_LEVELS.get(compression or "", 0)
    fill = as_fill_value(0 if fill_value is None else fill_value, np_dtype)
    meta: ArrayMetadata
    if version == 3:
        v3_name(np_dtype)  # a data type Zarr v3 has, or a typed error
        meta = ArrayMetadataV3(
            shape=shape, data_type=np_dtype, chunk_shape=chunks, fill_value=fill,
            codecs=tuple(_v3_codecs(np_dtype, compression, level, blosc)),
            attributes=dict(attributes or {}),
            dimension_names=None if dims is None else tuple(dims),
        ).checked()  # fmt: skip
        return ZarrDataset(store, [ZarrArray("", meta, dict(meta.attributes))])
    v2_typestr(np_dtype)
    attrs = dict(attributes or {})
    if dims is not None:
        attrs["_ARRAY_DIMENSIONS"] = list(dims)
    meta = ArrayMetadataV2(
        shape=shape, chunks=chunks, dtype=np_dtype.newbyteorder("<") if np_dtype.itemsize > 1
        else np_dtype, fill_value=fill, order="C",
        compressor=_v2_compressor(np_dtype, compression, level, blosc),
    ).checked()  # fmt: skip
    return ZarrDataset(store, [ZarrArray("", meta, attrs)])


#: NGFF axis types of the usual axis names; other names are custom axes.
_AXIS_TYPES = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}


def create_ome_zarr(
    array: ZarrDataset, resolution: Sequence[float] | None, unit: str = "nanometer"
) -> ZarrDataset:
    """An OME-Zarr (NGFF 0.5) image of one level around a new v3 array: the array moves to path
    ``"0"`` below a group whose ``multiscales`` place it (``resolution`` per space axis, in
    ``unit``; time and channel axes get 1)."""
    if not isinstance(array.arrays[0].meta, ArrayMetadataV3):
        raise UnsupportedError("OME-Zarr images are written as Zarr v3 (NGFF 0.5)")
    dims = array.dims
    space = [i for i, name in enumerate(dims) if _AXIS_TYPES.get(name) == "space"]
    scale = [1.0] * len(dims)
    if resolution is not None:
        if len(resolution) != len(space):
            raise InvalidInfoError(
                f"resolution {tuple(resolution)} names {len(resolution)} axes; the image has "
                f"{len(space)} space axes ({', '.join(dims[i] for i in space)})"
            )
        for i, r in zip(space, resolution, strict=True):
            scale[i] = float(r)
    return create_ome_levels([array], [scale], [[0] * len(dims)], unit=unit)


def create_ome_levels(
    levels: Sequence[ZarrDataset],
    resolutions: Sequence[Sequence[float]],
    voxel_offsets: Sequence[Sequence[float]],
    unit: str = "nanometer",
) -> ZarrDataset:
    """An OME-Zarr image of several new arrays, finest first: level ``k`` moves to path
    ``str(k)`` below a group whose ``multiscales`` place it by ``resolutions[k]`` (in ``unit``
    along space axes) and ``voxel_offsets[k]`` (the precomputed-style index of its first voxel,
    in its own voxels), both per axis in the arrays' order, by :func:`multiscale_for`.

    Zarr v3 arrays make an NGFF 0.5 image; Zarr v2 arrays an NGFF 0.4 one, the last version
    that stores v2 (its ``multiscales`` in the group's ``.zattrs``, each entry versioned).
    """
    if not levels or not len(levels) == len(resolutions) == len(voxel_offsets):
        raise InvalidInfoError(
            f"{len(levels)} level(s), {len(resolutions)} resolution(s) and "
            f"{len(voxel_offsets)} offset(s): expected one of each per level, at least one"
        )
    dims = levels[0].dims
    metas = [level.arrays[0].meta for level in levels]
    v3 = isinstance(metas[0], ArrayMetadataV3)
    if any(isinstance(m, ArrayMetadataV3) != v3 or len(m.shape) != len(dims) for m in metas):
        raise InvalidInfoError("the levels of an image must be arrays of one Zarr version and "
                               f"of the same {len(dims)} axes {dims}")  # fmt: skip
    axes = [
        OmeAxis(name, _AXIS_TYPES.get(name), unit if _AXIS_TYPES.get(name) == "space" else None)
        for name in dims
    ]
    paths = [str(k) for k in range(len(levels))]
    multiscale = multiscale_for(list(zip(resolutions, voxel_offsets, paths, strict=True)), axes)
    arrays = [
        ZarrArray(path, level.arrays[0].meta, dict(level.arrays[0].attributes))
        for path, level in zip(paths, levels, strict=True)
    ]
    group: dict[str, Any]
    if v3:
        attributes = OmeAttributes((multiscale,)).to_json()
        group = GroupMetadataV3(attributes=attributes).to_json()
    else:
        # The model writes 0.5, whose entries are what 0.4's are minus the version they carry.
        group = {"multiscales": [{**multiscale.to_json(), "version": "0.4"}]}
        multiscale = replace(multiscale, version="0.4")
    return ZarrDataset(levels[0].store, arrays, group, multiscale)


def write_image_metadata(dataset: ZarrDataset) -> None:
    """Store a new dataset's metadata: the arrays first, then the group that names them."""
    store = dataset.store
    for array in dataset.arrays:
        head = f"{array.path}/" if array.path else ""
        if isinstance(array.meta, ArrayMetadataV3):
            store.put(head + METADATA_KEY, array.meta.to_bytes())
            continue
        if array.attributes:
            store.put(head + ATTRIBUTES_KEY, attributes_to_bytes(array.attributes))
        store.put(head + ARRAY_KEY, array.meta.to_bytes())
    if dataset.group is None:
        return
    if isinstance(dataset.meta, ArrayMetadataV3):
        store.put(METADATA_KEY, GroupMetadataV3.from_json(dataset.group).to_bytes())
        return
    store.put(ATTRIBUTES_KEY, attributes_to_bytes(dataset.group))
    store.put(GROUP_KEY, b'{\n  "zarr_format": 2\n}\n')
