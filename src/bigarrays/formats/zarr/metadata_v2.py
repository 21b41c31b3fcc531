"""Zarr v2 ``.zarray``, ``.zgroup`` and ``.zattrs``: parse, validate, and write back without losing
members.

The compressor and filters stay numcodecs configurations (``{"id": "blosc", ...}``), as given;
the codec chain builds codecs from them. Unlike v3, Zarr v2 lets an array have no fill value
(``null``): ``fill_value`` is then None, and :attr:`ArrayMetadataV2.effective_fill_value` is the
zero that zarr-python and TensorStore read missing chunks as.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from bigarrays.formats.zarr import document as doc
from bigarrays.formats.zarr.chunk_keys import ChunkKeyEncoding, Separator, checked_key, separator
from bigarrays.formats.zarr.dtypes import decode_fill, encode_fill, scalar, v2_dtype, v2_typestr

ARRAY_KEY = ".zarray"
GROUP_KEY = ".zgroup"
ATTRIBUTES_KEY = ".zattrs"

_ARRAY_MEMBERS = (
    "zarr_format", "shape", "chunks", "dtype", "order", "fill_value", "compressor", "filters",
    "dimension_separator",
)  # fmt: skip


def _codec(value: Any, field: str) -> dict[str, Any]:
    codec = doc.mapping(value, field)
    if not isinstance(codec.get("id"), str):
        raise doc.fail(
            f"{field}.id", f"expected a codec id such as 'blosc', got {codec.get('id')!r}"
        )
    return codec


def _filters(value: Any) -> tuple[dict[str, Any], ...] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise doc.fail("filters", f"expected a list of codecs or null, got {value!r}")
    return tuple(_codec(f, f"filters[{i}]") for i, f in enumerate(value))


def _order(value: Any) -> Literal["C", "F"]:
    if value == "C":
        return "C"
    if value == "F":
        return "F"
    raise doc.fail("order", f"expected 'C' or 'F', got {value!r}")


@dataclass(frozen=True, eq=False)
class ArrayMetadataV2:
    """The ``.zarray`` of a Zarr v2 array. Its attributes live in ``.zattrs``."""

    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype: np.dtype
    fill_value: np.generic | None
    order: Literal["C", "F"] = "C"
    compressor: Mapping[str, Any] | None = None
    filters: tuple[dict[str, Any], ...] | None = None
    dimension_separator: Separator = "."
    #: Members this model does not define, written back unchanged.
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __eq__(self, other: object) -> bool:
        return doc.same_fields(self, other, self.dtype)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @functools.cached_property  # every chunk key checks its index against it
    def grid_shape(self) -> tuple[int, ...]:
        return doc.grid_shape(self.shape, self.chunks)

    @property
    def effective_fill_value(self) -> np.generic:
        """The fill value, or the dtype's zero when the array has none (``null``)."""
        if self.fill_value is not None:
            return self.fill_value
        return scalar(0, self.dtype.newbyteorder("="))

    @functools.cached_property
    def chunk_key_encoding(self) -> ChunkKeyEncoding:
        return ChunkKeyEncoding("v2", self.dimension_separator)

    def chunk_key(self, index: tuple[int, ...]) -> str:
        """The key of the chunk at grid ``index``: ``1.2.3`` (or ``1/2/3``), ``0`` for 0-d."""
        return checked_key(self.chunk_key_encoding, index, self.grid_shape)

    @classmethod
    def from_json(
        cls, data: bytes | Mapping[str, Any], *, url: str | None = None
    ) -> ArrayMetadataV2:
        with doc.reading(url or ARRAY_KEY):
            return cls._parse(doc.load(data))

    @classmethod
    def _parse(cls, obj: dict[str, Any]) -> ArrayMetadataV2:
        doc.check_format(obj, 2)
        dtype = v2_dtype(doc.require(obj, "dtype"))
        shape, chunks = doc.shape_and_chunks(
            doc.require(obj, "shape"), doc.require(obj, "chunks"), ("shape", "chunks")
        )
        doc.check_bytes(shape, chunks, dtype.itemsize, ("shape", "chunks"))
        fill_json = doc.require(obj, "fill_value")
        compressor = doc.require(obj, "compressor")
        # Absent or null: the separator of Zarr v2 from before the member existed.
        sep = obj.get("dimension_separator")
        return cls(
            shape=shape,
            chunks=chunks,
            dtype=dtype,
            fill_value=None if fill_json is None else decode_fill(fill_json, dtype, version=2),
            order=_order(doc.require(obj, "order")),
            compressor=None if compressor is None else _codec(compressor, "compressor"),
            filters=_filters(doc.require(obj, "filters")),
            dimension_separator=separator("." if sep is None else sep, "dimension_separator"),
            extra={k: v for k, v in obj.items() if k not in _ARRAY_MEMBERS},
        )

    def to_json(self) -> dict[str, Any]:
        fill = (
            None if self.fill_value is None else encode_fill(self.fill_value, self.dtype, version=2)
        )
        return {
            "zarr_format": 2,
            "shape": list(self.shape),
            "chunks": list(self.chunks),
            "dtype": v2_typestr(self.dtype),
            "fill_value": fill,
            "order": self.order,
            "filters": None if self.filters is None else doc.json_list(self.filters),
            "dimension_separator": self.dimension_separator,
            "compressor": None if self.compressor is None else dict(self.compressor),
            **self.extra,
        }

    def to_bytes(self) -> bytes:
        return doc.dumps(self.to_json())

    def checked(self) -> ArrayMetadataV2:
        """This metadata, validated as a reader would (a writer calls it before writing)."""
        return ArrayMetadataV2.from_json(self.to_json())


@dataclass(frozen=True)
class GroupMetadataV2:
    """The ``.zgroup`` of a Zarr v2 group. Its attributes live in ``.zattrs``."""

    #: Members this model does not define, written back unchanged.
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(
        cls, data: bytes | Mapping[str, Any], *, url: str | None = None
    ) -> GroupMetadataV2:
        with doc.reading(url or GROUP_KEY):
            obj = doc.load(data)
            doc.check_format(obj, 2)
            return cls(extra={k: v for k, v in obj.items() if k != "zarr_format"})

    def to_json(self) -> dict[str, Any]:
        return {"zarr_format": 2, **self.extra}

    def to_bytes(self) -> bytes:
        return doc.dumps(self.to_json())


def parse_attributes(data: bytes | Mapping[str, Any], *, url: str | None = None) -> dict[str, Any]:
    """The attributes in a ``.zattrs`` document (a JSON object), read with the same bounds."""
    with doc.reading(url or ATTRIBUTES_KEY):
        return doc.load(data)


def attributes_to_bytes(attributes: Mapping[str, Any]) -> bytes:
    return doc.dumps(attributes)
