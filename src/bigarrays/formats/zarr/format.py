"""Zarr v3 and v2 arrays as :class:`~bigarrays.formats.base.Dataset` s.

A Zarr array is one level: its chunk grid starts at 0 on every axis, its axes take absolute
coordinates (so ``-1`` is outside the array, as in TensorStore), and they keep the stored order.
Axis names come from ``dimension_names`` (v3) or xarray's ``_ARRAY_DIMENSIONS`` attribute (v2),
else ``dim_0``, ``dim_1``, ... ``open_zarr`` reads an array's metadata; ``create_zarr`` writes
a new array's.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np

from bigarrays.codecs.chain import CodecChain
from bigarrays.codecs.zarr_v2 import V2Chain
from bigarrays.errors import InvalidInfoError, ScaleNotFoundError, UnsupportedError
from bigarrays.formats.base import Axis, Dataset, Level
from bigarrays.formats.zarr.chunks import Chain, ZarrChunks
from bigarrays.formats.zarr.dtypes import as_fill_value, v2_typestr, v3_name
from bigarrays.formats.zarr.metadata_v2 import (
    ARRAY_KEY,
    ATTRIBUTES_KEY,
    ArrayMetadataV2,
    attributes_to_bytes,
    parse_attributes,
)
from bigarrays.formats.zarr.metadata_v3 import (
    METADATA_KEY,
    ArrayMetadataV3,
    node_from_json,
)
from bigarrays.stores import Store

ArrayMetadata = ArrayMetadataV3 | ArrayMetadataV2

#: Compressions ``create`` offers, as Zarr v3 codecs and as numcodecs (v2) configurations.
COMPRESSIONS = ("zstd", "gzip", "blosc")
DEFAULT_LEVELS = {"zstd": 3, "gzip": 5, "blosc": 5}


class ZarrDataset(Dataset):
    """One Zarr array (v3 or v2), a dataset of one level."""

    def __init__(self, store: Store, meta: ArrayMetadata, attributes: dict[str, Any]) -> None:
        super().__init__(store)
        self.meta = meta
        self.attributes = attributes
        self.format_name = "zarr" if isinstance(meta, ArrayMetadataV3) else "zarr2"

    @property
    def num_levels(self) -> int:
        return 1

    @property
    def dtype(self) -> np.dtype:
        meta = self.meta
        dtype = meta.data_type if isinstance(meta, ArrayMetadataV3) else meta.dtype
        return dtype.newbyteorder("=")

    @property
    def dims(self) -> tuple[str, ...]:
        ndim = len(self.meta.shape)
        names: Sequence[Any] | None = None
        if isinstance(self.meta, ArrayMetadataV3):
            names = self.meta.dimension_names
        else:
            names = self.attributes.get("_ARRAY_DIMENSIONS")  # xarray's convention
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
        return copy.deepcopy(self.meta.to_json())

    def _chain(self) -> tuple[Chain, str, str | None]:
        """The codec chain, the name of the chunk encoding and of the compression."""
        meta = self.meta
        if isinstance(meta, ArrayMetadataV3):
            names = [c.get("name") for c in meta.codecs]
            if "sharding_indexed" in names:
                raise UnsupportedError(
                    f"{self.store.url} is a sharded Zarr array (sharding_indexed), which "
                    "bigarrays does not read yet"
                )
            chain = CodecChain.from_json(list(meta.codecs), meta.data_type, meta.chunk_shape)
            compressions = [c.name for c in chain.bytes_bytes if c.name != "crc32c"]
            return chain, chain.array_bytes.name, compressions[0] if compressions else None
        v2 = V2Chain.from_zarray(
            meta.compressor, list(meta.filters) if meta.filters else None, meta.dtype,
            meta.chunks, meta.order,
        )  # fmt: skip
        compressor = meta.compressor.get("id") if meta.compressor else None
        return v2, "raw", compressor

    def level(self, mip: int) -> Level:
        if mip != 0:
            raise ScaleNotFoundError(f"{self.store.url} is one Zarr array (mip 0), not mip {mip}")
        meta = self.meta
        chain, encoding, compression = self._chain()
        if isinstance(meta, ArrayMetadataV3):
            chunks, fill = meta.chunk_shape, meta.fill_value
        else:
            chunks, fill = meta.chunks, meta.effective_fill_value()
        source = ZarrChunks(
            self.store, "", meta.shape, chunks, self.dtype, fill, chain, meta.chunk_key
        )
        return Level(
            source=source, axes=tuple(Axis(name) for name in self.dims),
            resolution=(1.0,) * len(meta.shape), encoding=encoding, compression=compression,
            deletes_chunks=True, native=meta,
        )  # fmt: skip


def open_zarr(store: Store, found: str, document: bytes) -> ZarrDataset:
    """The Zarr array at ``store``'s root; ``found`` and ``document`` as ``detect`` gives them."""
    url = f"{store.url.rstrip('/')}/"
    if found == "zarr":
        node = node_from_json(document, url=url + METADATA_KEY)
        if not isinstance(node, ArrayMetadataV3):
            raise UnsupportedError(
                f"{store.url} is a Zarr group; open one of its arrays (a URL below it)"
            )
        return ZarrDataset(store, node, dict(node.attributes))
    attrs_bytes = store.get(ATTRIBUTES_KEY)
    attributes = {} if attrs_bytes is None else parse_attributes(attrs_bytes, url=url)
    array = store.get(ARRAY_KEY) if document is not None else None
    if array is None:
        raise UnsupportedError(
            f"{store.url} is a Zarr v2 group; open one of its arrays (a URL below it)"
        )
    return ZarrDataset(store, ArrayMetadataV2.from_json(array, url=url + ARRAY_KEY), attributes)


def _v3_codecs(dtype: np.dtype, compression: str | None, level: int | None) -> list[dict]:
    codecs: list[dict[str, Any]] = [{"name": "bytes", "configuration": {"endian": "little"}}]
    if compression == "zstd":
        codecs.append({"name": "zstd", "configuration": {"level": level, "checksum": False}})
    elif compression == "gzip":
        codecs.append({"name": "gzip", "configuration": {"level": level}})
    elif compression == "blosc":
        codecs.append({"name": "blosc", "configuration": {
            "cname": "zstd", "clevel": level, "typesize": dtype.itemsize,
            "shuffle": "shuffle" if dtype.itemsize > 1 else "bitshuffle", "blocksize": 0,
        }})  # fmt: skip
    return codecs


def _v2_compressor(dtype: np.dtype, compression: str | None, level: int | None) -> dict | None:
    if compression == "zstd":
        return {"id": "zstd", "level": level}
    if compression == "gzip":
        return {"id": "gzip", "level": level}
    if compression == "blosc":
        return {"id": "blosc", "cname": "zstd", "clevel": level, "blocksize": 0,
                "shuffle": 1 if dtype.itemsize > 1 else 2}  # fmt: skip
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
) -> ZarrDataset:
    """The metadata of a new Zarr array, checked as a reader would; nothing is written here."""
    shape = tuple(int(n) for n in shape)
    if chunks is None:
        # Whole chunks of 64 along the last three axes (z, y, x), one step along the others (t, c).
        chunks = tuple(max(1, min(64 if len(shape) - i <= 3 else 1, n)) for i, n in
                       enumerate(shape))  # fmt: skip
    chunks = tuple(int(n) for n in chunks)
    if len(chunks) != len(shape):
        raise InvalidInfoError(f"chunks {chunks} and shape {shape} differ in their number of axes")
    if dims is not None and len(dims) != len(shape):
        raise InvalidInfoError(f"dims {tuple(dims)} and shape {shape} differ in their number of axes")
    if compression is not None and compression not in COMPRESSIONS:
        raise UnsupportedError(
            f"compression {compression!r} for Zarr: one of {', '.join(COMPRESSIONS)} or None"
        )
    np_dtype = np.dtype(dtype)
    level = DEFAULT_LEVELS.get(compression or "", 0) if compression_level is None else compression_level
    fill = as_fill_value(0 if fill_value is None else fill_value, np_dtype)
    meta: ArrayMetadata
    if version == 3:
        v3_name(np_dtype)  # a data type Zarr v3 has, or a typed error
        meta = ArrayMetadataV3(
            shape=shape, data_type=np_dtype, chunk_shape=chunks, fill_value=fill,
            codecs=tuple(_v3_codecs(np_dtype, compression, level)),
            attributes=dict(attributes or {}),
            dimension_names=None if dims is None else tuple(dims),
        ).checked()  # fmt: skip
        return ZarrDataset(store, meta, dict(meta.attributes))
    v2_typestr(np_dtype)
    attrs = dict(attributes or {})
    if dims is not None:
        attrs["_ARRAY_DIMENSIONS"] = list(dims)
    meta = ArrayMetadataV2(
        shape=shape, chunks=chunks, dtype=np_dtype.newbyteorder("<") if np_dtype.itemsize > 1
        else np_dtype, fill_value=fill, order="C",
        compressor=_v2_compressor(np_dtype, compression, level),
    ).checked()  # fmt: skip
    return ZarrDataset(store, meta, attrs)


def write_metadata(dataset: ZarrDataset) -> None:
    """Store a new array's metadata (and v2 attributes) on its store."""
    meta, store = dataset.meta, dataset.store
    if isinstance(meta, ArrayMetadataV3):
        store.put(METADATA_KEY, meta.to_bytes())
        return
    if dataset.attributes:
        store.put(ATTRIBUTES_KEY, attributes_to_bytes(dataset.attributes))
    store.put(ARRAY_KEY, meta.to_bytes())
