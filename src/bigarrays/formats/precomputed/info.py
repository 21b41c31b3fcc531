"""The precomputed ``info`` document: parse, validate, and write it back without losing keys.

Every member the format defines is a typed field; everything else (``mesh``, ``skeletons``,
``segment_properties``, other tools' extensions) rides along in ``extra`` and is written back as it
came. Validation errors are :class:`~bigarrays.errors.InvalidInfoError` and name the member, e.g.
``scales[1].chunk_sizes``.
"""

from __future__ import annotations

import json
import math
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from bigarrays.errors import InvalidInfoError
from bigarrays.formats import limits
from bigarrays.formats.bounded_json import parse_json
from bigarrays.formats.limits import MAX_CHUNK_BYTES, MAX_INDEX

#: Data types of the format (Neuroglancer and TensorStore read these).
FORMAT_DATA_TYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "float32")
#: bigarrays' own extension: stored raw, no viewer reads them.
EXTENSION_DATA_TYPES = ("float64", "int64", "bool")
DATA_TYPES = FORMAT_DATA_TYPES + EXTENSION_DATA_TYPES

LAYER_TYPES = ("image", "segmentation")
ENCODINGS = ("raw", "jpeg", "png", "compressed_segmentation", "compresso", "jxl")
SHARDING_TYPE = "neuroglancer_uint64_sharded_v1"
SHARDING_HASHES = ("identity", "murmurhash3_x86_128")
SHARDING_ENCODINGS = ("raw", "gzip")

#: The scale member where bigarrays keeps what the format has no member for.
EXTENSION_KEY = "bigarrays"

Vec3 = tuple[int, int, int]

# -- bounds ----------------------------------------------------------------------------------------
# The bounds every format keeps live in formats/limits.py; these are the ones of precomputed alone.

#: A sharded chunk id is a uint64 Morton code of the grid index.
MAX_CHUNK_ID_BITS = 64
#: A writer builds a shard's whole index, ``16 * 2**minishard_bits`` bytes: the chunk bound
#: (2 GiB) again. TensorStore accepts up to 60: an index of 16 * 2**60 bytes nobody can write.
MAX_MINISHARD_BITS = 27


def _fail(field_name: str, message: str) -> InvalidInfoError:
    return InvalidInfoError(message, field=field_name)


def _int(value: Any, name: str, *, minimum: int | None = None) -> int:
    return limits.integer(value, name, _fail, minimum=minimum)


def _vec3(value: Any, name: str, *, minimum: int | None = None) -> Vec3:
    if not isinstance(value, list | tuple) or len(value) != 3:
        raise _fail(name, f"expected a list of 3 integers [x, y, z], got {value!r}")
    x, y, z = (_int(v, f"{name}[{i}]", minimum=minimum) for i, v in enumerate(value))
    return (x, y, z)


def _resolution(value: Any, name: str) -> tuple[float, float, float]:
    if not isinstance(value, list | tuple) or len(value) != 3:
        raise _fail(name, f"expected a list of 3 numbers [x, y, z] (nm), got {value!r}")
    out = []
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
            raise _fail(f"{name}[{i}]", f"expected a positive number, got {v!r}")
        out.append(float(v))
    return (out[0], out[1], out[2])


def check_key(key: Any, name: str) -> str:
    """A scale key: a folder below the info file, in characters every store can name."""
    if not isinstance(key, str) or posixpath.normpath(key.strip("/") or ".") == ".":
        # "" or "." would put the chunks in the dataset's root, beside (and mixed up with)
        # the info file and other scales.
        raise _fail(name, f"expected a folder name such as '8_8_40', got {key!r}")
    # A NUL ends a file name; other control characters break HTTP request lines and terminals;
    # a lone surrogate has no UTF-8 bytes; a backslash is a folder separator on Windows.
    bad = next((c for c in key if not c.isprintable() or c == "\\"), None)
    if bad is not None:
        raise _fail(
            name, f"{bad!r} in {key!r}: a key is printable characters other than a backslash"
        )
    return key


def check_extent(size: Sequence[int], offset: Sequence[int], names: tuple[str, str]) -> None:
    """Refuse voxel coordinates outside TensorStore's finite range (see :data:`MAX_INDEX`)."""
    size_name, offset_name = names
    for i, (s, o) in enumerate(zip(size, offset, strict=True)):
        if not -MAX_INDEX <= o <= MAX_INDEX:
            raise _fail(f"{offset_name}[{i}]", f"{o} lies outside +-(2**62 - 2), the coordinates "
                        "TensorStore and bigarrays address")  # fmt: skip
        if o + s > MAX_INDEX:
            raise _fail(f"{size_name}[{i}]", f"voxel_offset + size = {o + s} passes 2**62 - 2, "
                        "the largest coordinate TensorStore and bigarrays address")  # fmt: skip


def check_chunk_bytes(chunk: Sequence[int], num_channels: int, itemsize: int, name: str) -> None:
    """Refuse a chunk of more than :data:`MAX_CHUNK_BYTES` bytes when decoded."""
    limits.check_chunk_bytes(chunk, itemsize, name, _fail, channels=num_channels)


def check_volume_bytes(size: Sequence[int], num_channels: int, itemsize: int, name: str) -> None:
    """Refuse a volume whose byte count (``nbytes``) does not fit in an int64."""
    limits.check_volume_bytes(size, itemsize, name, _fail, channels=num_channels)


def chunk_id_bits(size: Sequence[int], chunk: Sequence[int]) -> int:
    """Bits of the compressed Morton code (the sharded chunk id) of a grid of chunks."""
    return sum(max(0, -(-s // c) - 1).bit_length() for s, c in zip(size, chunk, strict=True))


def check_chunk_id_bits(size: Sequence[int], chunk: Sequence[int], name: str) -> None:
    bits = chunk_id_bits(size, chunk)
    if bits > MAX_CHUNK_ID_BITS:
        grid = tuple(-(-s // c) for s, c in zip(size, chunk, strict=True))
        raise _fail(name, f"a sharded grid of {grid} chunks needs {bits}-bit chunk ids; the "
                    "sharded format has 64: use bigger chunks")  # fmt: skip


def _plain_number(v: float) -> int | float:
    """8.0 -> 8, so that resolutions written back look as they were written."""
    return int(v) if float(v).is_integer() else v


def data_type_to_dtype(data_type: str) -> np.dtype:
    # Little-endian as the format stores it; numpy's "bool" has no byte order.
    return np.dtype(data_type if data_type == "bool" else np.dtype(data_type).newbyteorder("<"))


def dtype_to_data_type(dtype: Any) -> str:
    """The info ``data_type`` for a NumPy dtype, or InvalidInfoError listing the allowed ones."""
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = str(dtype)
    if name not in DATA_TYPES:
        allowed = ", ".join(DATA_TYPES)
        raise _fail("data_type", f"{name!r} is not supported; choose one of {allowed}")
    return str(name)


@dataclass(frozen=True)
class ShardingSpec:
    """``neuroglancer_uint64_sharded_v1``: validated here, used by the sharded reader/writer."""

    preshift_bits: int
    minishard_bits: int
    shard_bits: int
    hash: str = "identity"
    minishard_index_encoding: str = "raw"
    data_encoding: str = "raw"
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, obj: Any, name: str = "sharding") -> ShardingSpec:
        if not isinstance(obj, dict):
            raise _fail(name, f"expected an object, got {obj!r}")
        kind = obj.get("@type")
        if kind != SHARDING_TYPE:
            raise _fail(f"{name}.@type", f"expected {SHARDING_TYPE!r}, got {kind!r}")
        bits = {}
        for member in ("preshift_bits", "minishard_bits", "shard_bits"):
            if member not in obj:
                raise _fail(f"{name}.{member}", "missing")
            bits[member] = _int(obj[member], f"{name}.{member}", minimum=0)
        for member, allowed in (
            ("hash", SHARDING_HASHES),
            ("minishard_index_encoding", SHARDING_ENCODINGS),
            ("data_encoding", SHARDING_ENCODINGS),
        ):
            value = obj.get(member, "raw" if member != "hash" else None)
            if value not in allowed:
                raise _fail(f"{name}.{member}", f"expected one of {allowed}, got {value!r}")
        total = bits["preshift_bits"] + bits["minishard_bits"] + bits["shard_bits"]
        if total > 64:
            raise _fail(name, f"preshift_bits + minishard_bits + shard_bits = {total} > 64")
        if bits["minishard_bits"] > MAX_MINISHARD_BITS:
            raise _fail(f"{name}.minishard_bits", f"must be <= {MAX_MINISHARD_BITS} (a shard "
                        f"index of 16 * 2**bits bytes), got {bits['minishard_bits']}")  # fmt: skip
        known = {"@type", "preshift_bits", "minishard_bits", "shard_bits", "hash",
                 "minishard_index_encoding", "data_encoding"}  # fmt: skip
        return cls(
            hash=obj["hash"],
            minishard_index_encoding=obj.get("minishard_index_encoding", "raw"),
            data_encoding=obj.get("data_encoding", "raw"),
            extra={k: v for k, v in obj.items() if k not in known},
            **bits,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "@type": SHARDING_TYPE,
            "preshift_bits": self.preshift_bits,
            "hash": self.hash,
            "minishard_bits": self.minishard_bits,
            "shard_bits": self.shard_bits,
            "minishard_index_encoding": self.minishard_index_encoding,
            "data_encoding": self.data_encoding,
            **self.extra,
        }


_SCALE_MEMBERS = {
    "key", "size", "resolution", "voxel_offset", "chunk_sizes", "encoding",
    "compressed_segmentation_block_size", "sharding", "jpeg_quality", "png_level",
}  # fmt: skip


#: What bigarrays keeps in a scale's ``EXTENSION_KEY`` member (other keys there are preserved).
_BLOSC_MEMBERS = ("blosc_cname", "blosc_shuffle")
_EXTENSION_MEMBERS = ("compression", "compression_level", *_BLOSC_MEMBERS)


@dataclass(frozen=True)
class Scale:
    """One resolution level of a volume."""

    key: str
    size: Vec3
    resolution: tuple[float, float, float]
    chunk_sizes: tuple[Vec3, ...]
    encoding: str = "raw"
    voxel_offset: Vec3 = (0, 0, 0)
    compressed_segmentation_block_size: Vec3 | None = None
    sharding: ShardingSpec | None = None
    jpeg_quality: int | None = None
    png_level: int | None = None
    #: Whole-chunk transfer compression bigarrays writes with (kept under ``EXTENSION_KEY``).
    compression: str | None = None
    compression_level: int | None = None
    #: For ``compression="blosc"``: the inner codec and the shuffle filter (same member).
    blosc_cname: str | None = None
    blosc_shuffle: str | None = None
    #: Members this model does not know, written back unchanged.
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def chunk_size(self) -> Vec3:
        """The chunk size readers and writers use: the first of ``chunk_sizes``."""
        return self.chunk_sizes[0]

    @property
    def sharded(self) -> bool:
        return self.sharding is not None

    @classmethod
    def from_json(cls, obj: Any, name: str = "scales[0]") -> Scale:
        if not isinstance(obj, dict):
            raise _fail(name, f"expected an object, got {obj!r}")
        for member in ("key", "size", "resolution", "chunk_sizes", "encoding"):
            if member not in obj:
                raise _fail(f"{name}.{member}", "missing")
        key = check_key(obj["key"], f"{name}.key")
        size = _vec3(obj["size"], f"{name}.size", minimum=0)
        resolution = _resolution(obj["resolution"], f"{name}.resolution")
        voxel_offset = _vec3(obj.get("voxel_offset", [0, 0, 0]), f"{name}.voxel_offset")
        check_extent(size, voxel_offset, (f"{name}.size", f"{name}.voxel_offset"))

        chunk_sizes_json = obj["chunk_sizes"]
        if not isinstance(chunk_sizes_json, list) or not chunk_sizes_json:
            raise _fail(f"{name}.chunk_sizes", f"expected a non-empty list of [x, y, z], got "
                        f"{chunk_sizes_json!r}")  # fmt: skip
        chunk_sizes = tuple(
            _vec3(c, f"{name}.chunk_sizes[{i}]", minimum=1) for i, c in enumerate(chunk_sizes_json)
        )
        encoding = obj["encoding"]
        if encoding not in ENCODINGS:
            raise _fail(f"{name}.encoding", f"expected one of {', '.join(ENCODINGS)}, got "
                        f"{encoding!r}")  # fmt: skip

        block = obj.get("compressed_segmentation_block_size")
        if encoding == "compressed_segmentation":
            if block is None:
                raise _fail(
                    f"{name}.compressed_segmentation_block_size",
                    "required when the encoding is compressed_segmentation",
                )
            block = _vec3(block, f"{name}.compressed_segmentation_block_size", minimum=1)
        elif block is not None:
            block = _vec3(block, f"{name}.compressed_segmentation_block_size", minimum=1)

        sharding = None
        if obj.get("sharding") is not None:
            sharding = ShardingSpec.from_json(obj["sharding"], f"{name}.sharding")
            if len(chunk_sizes) != 1:
                raise _fail(
                    f"{name}.chunk_sizes",
                    f"a sharded scale has exactly one chunk size, got {len(chunk_sizes)}",
                )
            check_chunk_id_bits(size, chunk_sizes[0], f"{name}.chunk_sizes[0]")

        jpeg_quality = obj.get("jpeg_quality")
        if jpeg_quality is not None:
            jpeg_quality = _int(jpeg_quality, f"{name}.jpeg_quality", minimum=0)
            if jpeg_quality > 100:
                raise _fail(f"{name}.jpeg_quality", f"must be <= 100, got {jpeg_quality}")
        png_level = obj.get("png_level")
        if png_level is not None:
            png_level = _int(png_level, f"{name}.png_level", minimum=0)
            if png_level > 9:
                raise _fail(f"{name}.png_level", f"must be <= 9, got {png_level}")

        ext = obj.get(EXTENSION_KEY, {})
        if not isinstance(ext, dict):
            raise _fail(f"{name}.{EXTENSION_KEY}", f"expected an object, got {ext!r}")
        compression = ext.get("compression")
        if compression is not None and not isinstance(compression, str):
            raise _fail(f"{name}.{EXTENSION_KEY}.compression", f"expected a string, got "
                        f"{compression!r}")  # fmt: skip
        level = ext.get("compression_level")
        if level is not None:
            level = _int(level, f"{name}.{EXTENSION_KEY}.compression_level")
        blosc: dict[str, str | None] = {}
        for member in _BLOSC_MEMBERS:
            value = ext.get(member)
            if value is not None and not isinstance(value, str):
                raise _fail(f"{name}.{EXTENSION_KEY}.{member}", f"expected a string, got "
                            f"{value!r}")  # fmt: skip
            blosc[member] = value
        ext_rest = {k: v for k, v in ext.items() if k not in _EXTENSION_MEMBERS}

        extra = {k: v for k, v in obj.items() if k not in _SCALE_MEMBERS and k != EXTENSION_KEY}
        if ext_rest:
            extra[EXTENSION_KEY] = ext_rest
        return cls(
            key=key,
            size=size,
            resolution=resolution,
            voxel_offset=voxel_offset,
            chunk_sizes=chunk_sizes,
            encoding=encoding,
            compressed_segmentation_block_size=block,
            sharding=sharding,
            jpeg_quality=jpeg_quality,
            png_level=png_level,
            compression=compression,
            compression_level=level,
            blosc_cname=blosc["blosc_cname"],
            blosc_shuffle=blosc["blosc_shuffle"],
            extra=extra,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "key": self.key,
            "size": list(self.size),
            "resolution": [_plain_number(r) for r in self.resolution],
            "voxel_offset": list(self.voxel_offset),
            "chunk_sizes": [list(c) for c in self.chunk_sizes],
            "encoding": self.encoding,
        }
        if self.compressed_segmentation_block_size is not None:
            out["compressed_segmentation_block_size"] = list(
                self.compressed_segmentation_block_size
            )
        if self.sharding is not None:
            out["sharding"] = self.sharding.to_json()
        if self.jpeg_quality is not None:
            out["jpeg_quality"] = self.jpeg_quality
        if self.png_level is not None:
            out["png_level"] = self.png_level
        extra = dict(self.extra)
        ext = dict(extra.pop(EXTENSION_KEY, {}))
        if self.compression is not None:
            ext["compression"] = self.compression
        if self.compression_level is not None:
            ext["compression_level"] = self.compression_level
        if self.blosc_cname is not None:
            ext["blosc_cname"] = self.blosc_cname
        if self.blosc_shuffle is not None:
            ext["blosc_shuffle"] = self.blosc_shuffle
        out.update(extra)
        if ext:
            out[EXTENSION_KEY] = ext
        return out


_INFO_MEMBERS = {"type", "data_type", "num_channels", "scales"}


@dataclass(frozen=True)
class Info:
    """The whole ``info`` document of a multiscale volume."""

    data_type: str
    num_channels: int
    scales: tuple[Scale, ...]
    type: str = "image"
    #: Members this model does not know (``@type``, ``mesh``, ...), written back unchanged.
    extra: Mapping[str, Any] = field(
        default_factory=lambda: {"@type": "neuroglancer_multiscale_volume"}
    )

    @property
    def dtype(self) -> np.dtype:
        return data_type_to_dtype(self.data_type)

    @classmethod
    def from_json(cls, obj: Any) -> Info:
        if not isinstance(obj, dict):
            raise InvalidInfoError(f"expected a JSON object, got {type(obj).__name__}")
        for member in ("type", "data_type", "num_channels", "scales"):
            if member not in obj:
                raise _fail(member, "missing")
        kind = obj.get("@type")
        if kind is not None and kind != "neuroglancer_multiscale_volume":
            raise _fail("@type", f"expected 'neuroglancer_multiscale_volume', got {kind!r}")
        if obj["type"] not in LAYER_TYPES:
            raise _fail("type", f"expected one of {', '.join(LAYER_TYPES)}, got {obj['type']!r}")
        if obj["data_type"] not in DATA_TYPES:
            raise _fail("data_type", f"expected one of {', '.join(DATA_TYPES)}, got "
                        f"{obj['data_type']!r}")  # fmt: skip
        num_channels = _int(obj["num_channels"], "num_channels", minimum=1)
        if num_channels > MAX_CHUNK_BYTES:
            raise _fail("num_channels", f"must be <= 2**31 (a chunk holds every channel, in at "
                        f"most 2 GiB), got {num_channels}")  # fmt: skip
        scales_json = obj["scales"]
        if not isinstance(scales_json, list) or not scales_json:
            raise _fail("scales", f"expected a non-empty list, got {scales_json!r}")
        scales = tuple(Scale.from_json(s, f"scales[{i}]") for i, s in enumerate(scales_json))
        itemsize = data_type_to_dtype(obj["data_type"]).itemsize
        for i, scale in enumerate(scales):
            for j, chunk in enumerate(scale.chunk_sizes):
                check_chunk_bytes(chunk, num_channels, itemsize, f"scales[{i}].chunk_sizes[{j}]")
            check_volume_bytes(scale.size, num_channels, itemsize, f"scales[{i}].size")
        keys = [s.key for s in scales]
        if len(set(keys)) != len(keys):
            raise _fail("scales", f"two scales share a key: {keys}")
        return cls(
            type=obj["type"],
            data_type=obj["data_type"],
            num_channels=num_channels,
            scales=scales,
            extra={k: v for k, v in obj.items() if k not in _INFO_MEMBERS},
        )

    @classmethod
    def from_bytes(cls, data: bytes, url: str | None = None) -> Info:
        try:
            return cls.from_json(parse_json(data))
        except InvalidInfoError as exc:
            if url is None:
                raise
            raise InvalidInfoError(exc.detail, field=exc.field, url=url) from None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if "@type" in self.extra:
            out["@type"] = self.extra["@type"]
        out.update(
            type=self.type,
            data_type=self.data_type,
            num_channels=self.num_channels,
            scales=[s.to_json() for s in self.scales],
        )
        out.update({k: v for k, v in self.extra.items() if k != "@type"})
        return out

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_json(), indent=2).encode() + b"\n"

    def scale(self, mip: int) -> Scale:
        return self.scales[mip]

    def with_scales(self, scales: Sequence[Scale]) -> Info:
        return replace(self, scales=tuple(scales))


def scale_key_for(resolution: Sequence[float]) -> str:
    """The key CloudVolume and TensorStore give a scale: ``"8_8_40"`` for 8x8x40 nm."""
    return "_".join(str(_plain_number(float(r))) for r in resolution)
