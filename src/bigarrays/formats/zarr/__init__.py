"""Zarr v3 and v2: metadata models, data types and fill values, chunk keys.

The models are pure: bytes (or a dict) in, a frozen dataclass out, and back. Codec
configurations stay JSON for the codec chain to build.
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
