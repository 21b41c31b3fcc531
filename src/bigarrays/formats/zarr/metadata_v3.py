"""Zarr v3 ``zarr.json`` of arrays and groups: parse, validate, and write back without losing
members.

Codec configurations stay JSON (a tuple of dicts, as given); the codec chain builds codecs from
them. Members the specification does not define are kept verbatim and written back, but only
if marked ``{"must_understand": false}``: the specification, zarr-python and TensorStore all
refuse the others, and so does this reader (UnsupportedError).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bigarrays.errors import UnsupportedError
from bigarrays.formats import limits
from bigarrays.formats.zarr import document as doc
from bigarrays.formats.zarr.chunk_keys import ChunkKeyEncoding, checked_key
from bigarrays.formats.zarr.dtypes import decode_fill, encode_fill, v3_dtype, v3_name

METADATA_KEY = "zarr.json"
SHARDING_CODEC = "sharding_indexed"

_ARRAY_MEMBERS = (
    "zarr_format", "node_type", "shape", "data_type", "chunk_grid", "chunk_key_encoding",
    "fill_value", "codecs", "attributes", "dimension_names",
)  # fmt: skip
#: Bytes per inner chunk in a shard's index: an (offset, nbytes) pair of uint64s.
_SHARD_INDEX_ENTRY = 16


def _extra_members(obj: Mapping[str, Any], known: tuple[str, ...]) -> dict[str, Any]:
    """Members the specification does not define: kept if they may be ignored, else refused."""
    extra = {k: v for k, v in obj.items() if k not in known}
    for name, value in extra.items():
        if name == "storage_transformers":
            if value != []:
                raise UnsupportedError(f"storage transformers {value!r} are not supported")
        elif not (isinstance(value, Mapping) and value.get("must_understand") is False):
            raise UnsupportedError(f"member {name!r} of {METADATA_KEY} is not one bigarrays "
                                   "understands, and it is not marked {\"must_understand\": "
                                   "false}")  # fmt: skip
    return extra


def _node_type(obj: Mapping[str, Any], expected: str) -> None:
    found = doc.require(obj, "node_type")
    if found != expected:
        raise doc.fail("node_type", f"expected {expected!r}, got {found!r}")


def _attributes(obj: Mapping[str, Any]) -> dict[str, Any]:
    return doc.mapping(obj.get("attributes", {}), "attributes")


def _chunk_grid(value: Any) -> Any:
    grid = doc.mapping(value, "chunk_grid")
    if grid.get("name") != "regular":
        if not isinstance(grid.get("name"), str):
            raise doc.fail("chunk_grid.name", f"expected 'regular', got {grid.get('name')!r}")
        raise UnsupportedError(f"chunk grid {grid['name']!r} is not supported; bigarrays reads "
                               "'regular' grids")  # fmt: skip
    config = doc.mapping(grid.get("configuration"), "chunk_grid.configuration")
    if "chunk_shape" not in config:
        raise doc.fail("chunk_grid.configuration.chunk_shape", "missing")
    return config["chunk_shape"]


def _codecs(value: Any) -> tuple[dict[str, Any], ...]:
    if not isinstance(value, list) or not value:
        raise doc.fail("codecs", f"expected a non-empty list of codecs, got {value!r}")
    out = []
    for i, codec in enumerate(value):
        if isinstance(codec, str):  # the short-hand of a codec without configuration
            codec = {"name": codec}
        codec = doc.mapping(codec, f"codecs[{i}]")
        if not isinstance(codec.get("name"), str):
            raise doc.fail(f"codecs[{i}].name", f"expected a codec name, got {codec.get('name')!r}")
        out.append(codec)
    return tuple(out)


def _dimension_names(value: Any, ndim: int) -> tuple[str | None, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != ndim:
        raise doc.fail("dimension_names", f"expected a list of {ndim} names, got {value!r}")
    for i, name in enumerate(value):
        if name is not None and not isinstance(name, str):
            raise doc.fail(f"dimension_names[{i}]", f"expected a string or null, got {name!r}")
    return tuple(value)


def decoded_chunk_shape(
    codecs: tuple[dict[str, Any], ...], chunk_shape: tuple[int, ...], field: str = "codecs"
) -> tuple[int, ...]:
    """The shape of the smallest unit a read decodes: the inner chunk of (nested) shards."""
    for i, codec in enumerate(codecs):
        if codec.get("name") != SHARDING_CODEC:
            continue
        where = f"{field}[{i}].configuration"
        config = doc.mapping(codec.get("configuration"), where)
        inner = doc.integers(doc.require(config, "chunk_shape"), f"{where}.chunk_shape", minimum=1)
        if len(inner) != len(chunk_shape):
            raise doc.fail(f"{where}.chunk_shape", f"{len(inner)} dimensions for chunks of "
                           f"{len(chunk_shape)}")  # fmt: skip
        entries = math.prod(-(-c // s) for c, s in zip(chunk_shape, inner, strict=True))
        if entries * _SHARD_INDEX_ENTRY > limits.MAX_CHUNK_BYTES:
            raise doc.fail(f"{where}.chunk_shape", f"a shard of {entries} inner chunks has an "
                           "index of more than 2 GiB (2**31)")  # fmt: skip
        nested = config.get("codecs", [])
        nested = _codecs(nested) if isinstance(nested, list) and nested else ()
        return decoded_chunk_shape(nested, inner, f"{where}.codecs")
    return chunk_shape


@dataclass(frozen=True, eq=False)
class ArrayMetadataV3:
    """The ``zarr.json`` of a Zarr v3 array on a regular chunk grid."""

    shape: tuple[int, ...]
    data_type: np.dtype
    chunk_shape: tuple[int, ...]
    fill_value: np.generic
    codecs: tuple[dict[str, Any], ...]
    chunk_key_encoding: ChunkKeyEncoding = field(default_factory=ChunkKeyEncoding)
    attributes: Mapping[str, Any] = field(default_factory=dict)
    dimension_names: tuple[str | None, ...] | None = None
    #: Members this model does not define, written back unchanged (an empty
    #: ``storage_transformers``, ``{"must_understand": false}`` extensions).
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __eq__(self, other: object) -> bool:
        return doc.same_fields(self, other, self.data_type)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @functools.cached_property  # every chunk key checks its index against it
    def grid_shape(self) -> tuple[int, ...]:
        """Chunks (shards, for a sharded array) along each dimension."""
        return doc.grid_shape(self.shape, self.chunk_shape)

    @property
    def decoded_chunk_shape(self) -> tuple[int, ...]:
        """The shape of what a read decodes at once: the inner chunk of a sharded array."""
        return decoded_chunk_shape(self.codecs, self.chunk_shape)

    def chunk_key(self, index: tuple[int, ...]) -> str:
        """The key of the chunk (or shard) at grid ``index``, relative to the array."""
        return checked_key(self.chunk_key_encoding, index, self.grid_shape)

    @classmethod
    def from_json(
        cls, data: bytes | Mapping[str, Any], *, url: str | None = None
    ) -> ArrayMetadataV3:
        with doc.reading(url or METADATA_KEY):
            return cls._parse(doc.load(data))

    @classmethod
    def _parse(cls, obj: dict[str, Any]) -> ArrayMetadataV3:
        doc.check_format(obj, 3)
        _node_type(obj, "array")
        dtype = v3_dtype(doc.require(obj, "data_type"))
        chunk_json = _chunk_grid(doc.require(obj, "chunk_grid"))
        names = ("shape", "chunk_grid.configuration.chunk_shape")
        shape, chunks = doc.shape_and_chunks(doc.require(obj, "shape"), chunk_json, names)
        codecs = _codecs(doc.require(obj, "codecs"))
        inner = decoded_chunk_shape(codecs, chunks)
        doc.check_bytes(
            shape, inner, dtype.itemsize, (names[0], names[1] if inner == chunks else "codecs")
        )
        return cls(
            shape=shape,
            data_type=dtype,
            chunk_shape=chunks,
            fill_value=decode_fill(doc.require(obj, "fill_value"), dtype),
            codecs=codecs,
            chunk_key_encoding=ChunkKeyEncoding.from_json(doc.require(obj, "chunk_key_encoding")),
            attributes=_attributes(obj),
            dimension_names=_dimension_names(obj.get("dimension_names"), len(shape)),
            extra=_extra_members(obj, _ARRAY_MEMBERS),
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "zarr_format": 3,
            "node_type": "array",
            "shape": list(self.shape),
            "data_type": v3_name(self.data_type),
            "chunk_grid": {
                "name": "regular",
                "configuration": {"chunk_shape": list(self.chunk_shape)},
            },
            "chunk_key_encoding": self.chunk_key_encoding.to_json(),
            "fill_value": encode_fill(self.fill_value, self.data_type),
            "codecs": doc.json_list(self.codecs),
            "attributes": dict(self.attributes),
        }
        if self.dimension_names is not None:
            out["dimension_names"] = list(self.dimension_names)
        out.update(self.extra)
        return out

    def to_bytes(self) -> bytes:
        return doc.dumps(self.to_json())

    def checked(self) -> ArrayMetadataV3:
        """This metadata, validated as a reader would (a writer calls it before writing)."""
        return ArrayMetadataV3.from_json(self.to_json())


@dataclass(frozen=True)
class GroupMetadataV3:
    """The ``zarr.json`` of a Zarr v3 group."""

    attributes: Mapping[str, Any] = field(default_factory=dict)
    #: Members this model does not define (``consolidated_metadata``), written back unchanged.
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(
        cls, data: bytes | Mapping[str, Any], *, url: str | None = None
    ) -> GroupMetadataV3:
        with doc.reading(url or METADATA_KEY):
            obj = doc.load(data)
            doc.check_format(obj, 3)
            _node_type(obj, "group")
            known = ("zarr_format", "node_type", "attributes")
            return cls(attributes=_attributes(obj), extra=_extra_members(obj, known))

    def to_json(self) -> dict[str, Any]:
        return {
            "zarr_format": 3,
            "node_type": "group",
            "attributes": dict(self.attributes),
            **self.extra,
        }

    def to_bytes(self) -> bytes:
        return doc.dumps(self.to_json())


def node_from_json(
    data: bytes | Mapping[str, Any], *, url: str | None = None
) -> ArrayMetadataV3 | GroupMetadataV3:
    """The array or group a ``zarr.json`` describes, by its ``node_type``, parsed once."""
    with doc.reading(url or METADATA_KEY):
        obj = doc.load(data)
    kind = obj.get("node_type")
    if kind == "group":
        return GroupMetadataV3.from_json(obj, url=url)
    if kind == "array":
        return ArrayMetadataV3.from_json(obj, url=url)
    with doc.reading(url or METADATA_KEY):
        raise doc.fail("node_type", f"expected 'array' or 'group', got {kind!r}")
