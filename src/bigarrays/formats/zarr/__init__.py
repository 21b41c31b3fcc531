"""Zarr v3 and v2: metadata models, data types and fill values, chunk keys.

The models are pure: bytes (or a dict) in, a frozen dataclass out, and back; a format module
does the I/O::

    meta = node_from_json(store.get("a/zarr.json"), url="s3://b/a/zarr.json")  # array or group
    meta.shape, meta.data_type, meta.fill_value, meta.dimension_names, meta.codecs
    key = "a/" + meta.chunk_key((0, 3, 1))                # "c/0/3/1", "0.3.1", ...
    store.put("a/zarr.json", replace(meta, attributes=new).to_bytes())   # other members kept

    old = ArrayMetadataV2.from_json(store.get("a/.zarray"))
    attrs = parse_attributes(store.get("a/.zattrs"))

Codec configurations stay JSON for the codec chain to build. Broken metadata raises
:class:`~bigarrays.errors.InvalidMetadataError`; valid metadata bigarrays does not handle raises
:class:`~bigarrays.errors.UnsupportedError`. A writer builds a model and calls ``checked()``
before writing it, so that it never writes what a reader refuses.
"""

from bigarrays.formats.zarr.chunk_keys import ChunkKeyEncoding
from bigarrays.formats.zarr.dtypes import (
    V3_DATA_TYPES,
    as_fill_value,
    decode_fill,
    encode_fill,
    v2_dtype,
    v2_typestr,
    v3_dtype,
    v3_name,
)
from bigarrays.formats.zarr.metadata_v2 import (
    ARRAY_KEY,
    ATTRIBUTES_KEY,
    GROUP_KEY,
    ArrayMetadataV2,
    GroupMetadataV2,
    attributes_to_bytes,
    parse_attributes,
)
from bigarrays.formats.zarr.metadata_v3 import (
    METADATA_KEY,
    ArrayMetadataV3,
    GroupMetadataV3,
    node_from_json,
)

__all__ = [
    "ARRAY_KEY",
    "ATTRIBUTES_KEY",
    "GROUP_KEY",
    "METADATA_KEY",
    "V3_DATA_TYPES",
    "ArrayMetadataV2",
    "ArrayMetadataV3",
    "ChunkKeyEncoding",
    "GroupMetadataV2",
    "GroupMetadataV3",
    "as_fill_value",
    "attributes_to_bytes",
    "decode_fill",
    "encode_fill",
    "node_from_json",
    "parse_attributes",
    "v2_dtype",
    "v2_typestr",
    "v3_dtype",
    "v3_name",
]
