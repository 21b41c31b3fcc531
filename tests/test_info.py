"""The info model: round trips of real documents, unknown keys kept, typed validation errors."""

from __future__ import annotations

import copy
import dataclasses
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import bigarrays as ba
from bigarrays.errors import InvalidInfoError
from bigarrays.formats.precomputed import Info, Scale, ShardingSpec
from bigarrays.stores.memory import MemoryStore, drop_namespace

# -- realistic documents ---------------------------------------------------------------------------


def tensorstore_info() -> dict[str, Any]:
    """What TensorStore writes for a sharded segmentation with a second, unsharded scale."""
    return {
        "@type": "neuroglancer_multiscale_volume",
        "data_type": "uint64",
        "num_channels": 1,
        "type": "segmentation",
        "scales": [
            {
                "chunk_sizes": [[64, 64, 64]],
                "compressed_segmentation_block_size": [8, 8, 8],
                "encoding": "compressed_segmentation",
                "key": "8_8_8",
                "resolution": [8, 8, 8],
                "sharding": {
                    "@type": "neuroglancer_uint64_sharded_v1",
                    "data_encoding": "gzip",
                    "hash": "identity",
                    "minishard_bits": 6,
                    "minishard_index_encoding": "gzip",
                    "preshift_bits": 9,
                    "shard_bits": 15,
                },
                "size": [248832, 134144, 7063],
                "voxel_offset": [0, 0, 0],
            },
            {
                "chunk_sizes": [[32, 32, 32]],
                "compressed_segmentation_block_size": [8, 8, 8],
                "encoding": "compressed_segmentation",
                "key": "16_16_16",
                "resolution": [16, 16, 16],
                "sharding": {
                    "@type": "neuroglancer_uint64_sharded_v1",
                    "data_encoding": "raw",
                    "hash": "murmurhash3_x86_128",
                    "minishard_bits": 3,
                    "minishard_index_encoding": "raw",
                    "preshift_bits": 0,
                    "shard_bits": 8,
                },
                "size": [124416, 67072, 3532],
                "voxel_offset": [0, 0, 0],
            },
        ],
    }


def cloudvolume_info() -> dict[str, Any]:
    """What CloudVolume writes for an EM image pyramid with meshes and skeletons beside it."""
    return {
        "data_type": "uint8",
        "num_channels": 1,
        "type": "image",
        "mesh": "mesh_mip_2_err_40",
        "skeletons": "skeletons_mip_2",
        "segment_properties": "segment_properties",
        "scales": [
            {
                "chunk_sizes": [[128, 128, 16]],
                "encoding": "jpeg",
                "jpeg_quality": 85,
                "key": "4_4_40",
                "resolution": [4, 4, 40],
                "size": [100000, 80000, 2000],
                "voxel_offset": [-1024, 512, 7],
                "locked": False,
            },
            {
                "chunk_sizes": [[64, 64, 64], [128, 128, 16]],
                "encoding": "png",
                "png_level": 6,
                "key": "8_8_40",
                "resolution": [8, 8, 40],
                "size": [50000, 40000, 2000],
                "voxel_offset": [-512, 256, 7],
            },
            {
                "chunk_sizes": [[64, 64, 64]],
                "encoding": "raw",
                "key": "../elsewhere/16.5_16_40",
                "resolution": [16.5, 16, 40],
                "size": [25000, 20000, 2000],
                "voxel_offset": [-256, 128, 7],
            },
        ],
    }


def bigarrays_info() -> dict[str, Any]:
    """What bigarrays writes: gzip kept in its own scale member, a float64 extension type."""
    return {
        "@type": "neuroglancer_multiscale_volume",
        "type": "image",
        "data_type": "float64",
        "num_channels": 3,
        "scales": [
            {
                "key": "1_1_1",
                "size": [10, 20, 30],
                "resolution": [1, 1, 1],
                "voxel_offset": [-5, -5, -5],
                "chunk_sizes": [[4, 4, 4]],
                "encoding": "raw",
                "bigarrays": {"compression": "gzip", "compression_level": 9, "future": [1, 2]},
            }
        ],
    }


DOCUMENTS = {
    "tensorstore": tensorstore_info,
    "cloudvolume": cloudvolume_info,
    "bigarrays": bigarrays_info,
}


@pytest.mark.parametrize("make", DOCUMENTS.values(), ids=list(DOCUMENTS))
def test_round_trip_is_exact(make: Callable[[], dict[str, Any]]) -> None:
    doc = make()
    info = Info.from_json(copy.deepcopy(doc))
    assert info.to_json() == doc
    again = Info.from_bytes(info.to_bytes())
    assert again == info
    assert again.to_json() == doc


def test_round_trip_does_not_alias_the_input() -> None:
    doc = cloudvolume_info()
    info = Info.from_json(doc)
    doc["scales"][0]["size"][0] = 1
    doc["type"] = "segmentation"
    assert info.scales[0].size == (100000, 80000, 2000)
    assert info.type == "image"


def test_tensorstore_document_fields() -> None:
    info = Info.from_json(tensorstore_info())
    assert info.type == "segmentation"
    assert info.data_type == "uint64"
    assert info.dtype.itemsize == 8
    assert info.dtype.kind == "u"
    assert info.dtype.byteorder in ("<", "=")  # little-endian
    assert info.num_channels == 1
    assert info.extra == {"@type": "neuroglancer_multiscale_volume"}
    s0, s1 = info.scales
    assert s0.key == "8_8_8"
    assert s0.size == (248832, 134144, 7063)
    assert s0.resolution == (8.0, 8.0, 8.0)
    assert s0.chunk_size == (64, 64, 64)
    assert s0.encoding == "compressed_segmentation"
    assert s0.compressed_segmentation_block_size == (8, 8, 8)
    assert s0.sharded
    assert s0.sharding == ShardingSpec(
        preshift_bits=9,
        minishard_bits=6,
        shard_bits=15,
        hash="identity",
        minishard_index_encoding="gzip",
        data_encoding="gzip",
    )
    assert s1.sharding is not None
    assert s1.sharding.hash == "murmurhash3_x86_128"
    assert info.scale(1) is s1


def test_cloudvolume_document_fields() -> None:
    info = Info.from_json(cloudvolume_info())
    assert "@type" not in info.extra
    assert info.extra == {
        "mesh": "mesh_mip_2_err_40",
        "skeletons": "skeletons_mip_2",
        "segment_properties": "segment_properties",
    }
    s0, s1, s2 = info.scales
    assert s0.encoding == "jpeg"
    assert s0.jpeg_quality == 85
    assert s0.png_level is None
    assert s0.voxel_offset == (-1024, 512, 7)
    assert s0.extra == {"locked": False}
    assert not s0.sharded
    assert s1.png_level == 6
    assert s1.chunk_sizes == ((64, 64, 64), (128, 128, 16))
    assert s1.chunk_size == (64, 64, 64)  # readers use the first
    assert s2.resolution == (16.5, 16.0, 40.0)
    assert s2.key == "../elsewhere/16.5_16_40"


def test_bigarrays_extension_member() -> None:
    info = Info.from_json(bigarrays_info())
    scale = info.scales[0]
    assert scale.compression == "gzip"
    assert scale.compression_level == 9
    # What bigarrays does not know inside its own member is kept too.
    assert scale.extra == {"bigarrays": {"future": [1, 2]}}
    assert info.dtype.name == "float64"


def test_missing_voxel_offset_defaults_to_zero() -> None:
    doc = cloudvolume_info()
    del doc["scales"][0]["voxel_offset"]
    info = Info.from_json(doc)
    assert info.scales[0].voxel_offset == (0, 0, 0)
    assert info.to_json()["scales"][0]["voxel_offset"] == [0, 0, 0]


def test_sharding_defaults_encodings_to_raw() -> None:
    spec = ShardingSpec.from_json(
        {
            "@type": "neuroglancer_uint64_sharded_v1",
            "preshift_bits": 0,
            "minishard_bits": 0,
            "shard_bits": 0,
            "hash": "identity",
            "x-note": "kept",
        }
    )
    assert spec.minishard_index_encoding == "raw"
    assert spec.data_encoding == "raw"
    assert spec.extra == {"x-note": "kept"}
    assert spec.to_json()["x-note"] == "kept"
    assert ShardingSpec.from_json(spec.to_json()) == spec


def test_unknown_keys_survive_a_rewrite() -> None:
    doc = cloudvolume_info()
    doc["x_custom"] = {"nested": [1, {"a": None}]}
    doc["scales"][1]["x_scale_custom"] = "keep me"
    info = Info.from_json(doc)
    # Rewrite: a scale grows (as a growable array would), another is dropped.
    s0 = dataclasses.replace(info.scales[0], size=(1, 2, 3))
    rewritten = info.with_scales([s0, info.scales[1]])
    out = json.loads(rewritten.to_bytes())
    assert out["mesh"] == "mesh_mip_2_err_40"
    assert out["skeletons"] == "skeletons_mip_2"
    assert out["segment_properties"] == "segment_properties"
    assert out["x_custom"] == {"nested": [1, {"a": None}]}
    assert out["scales"][0]["size"] == [1, 2, 3]
    assert out["scales"][0]["locked"] is False
    assert out["scales"][0]["jpeg_quality"] == 85
    assert out["scales"][1]["x_scale_custom"] == "keep me"
    assert out["scales"][1]["png_level"] == 6
    assert len(out["scales"]) == 2


def test_type_is_written_first_when_present() -> None:
    out = Info.from_json(tensorstore_info()).to_json()
    assert next(iter(out)) == "@type"


def test_new_info_has_type_tag() -> None:
    scale = Scale(key="1_1_1", size=(1, 1, 1), resolution=(1.0, 1.0, 1.0), chunk_sizes=((1, 1, 1),))
    info = Info(data_type="uint8", num_channels=1, scales=(scale,))
    out = info.to_json()
    assert out["@type"] == "neuroglancer_multiscale_volume"
    assert out["scales"][0]["resolution"] == [1, 1, 1]  # 1.0 written back as 1
    assert Info.from_bytes(info.to_bytes()) == info


def test_unknown_keys_survive_open_through_public_api() -> None:
    name = f"info-{uuid.uuid4().hex}"
    store = MemoryStore(name)
    try:
        doc = cloudvolume_info()
        doc["scales"] = [doc["scales"][2] | {"key": "raw_scale"}]
        store.put("info", json.dumps(doc).encode())
        with ba.open(f"memory://{name}") as vol:
            assert vol.info == doc
            assert vol.voxel_offset == (-256, 128, 7)
    finally:
        drop_namespace(name)


# -- invalid documents -----------------------------------------------------------------------------


def minimal() -> dict[str, Any]:
    return {
        "type": "image",
        "data_type": "uint8",
        "num_channels": 1,
        "scales": [
            {
                "key": "s0",
                "size": [10, 10, 10],
                "resolution": [1, 1, 1],
                "chunk_sizes": [[4, 4, 4]],
                "encoding": "raw",
            }
        ],
    }


def sharded() -> dict[str, Any]:
    doc = minimal()
    doc["scales"][0]["sharding"] = {
        "@type": "neuroglancer_uint64_sharded_v1",
        "preshift_bits": 1,
        "minishard_bits": 2,
        "shard_bits": 3,
        "hash": "identity",
    }
    return doc


def test_minimal_documents_are_valid() -> None:
    assert Info.from_json(minimal()).scales[0].size == (10, 10, 10)
    assert Info.from_json(sharded()).scales[0].sharding == ShardingSpec(1, 2, 3)


def _mutated(base: Callable[[], dict[str, Any]], change: Callable[[dict[str, Any]], object]) -> Any:
    doc = base()
    change(doc)
    return doc


def _scale(doc: dict[str, Any]) -> dict[str, Any]:
    scale: dict[str, Any] = doc["scales"][0]
    return scale


def _shard(doc: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = _scale(doc)["sharding"]
    return spec


BAD: dict[str, tuple[Any, str]] = {
    # missing members, each required one
    **{
        f"missing {m}": (_mutated(minimal, lambda d, m=m: d.pop(m)), m)
        for m in ("type", "data_type", "num_channels", "scales")
    },
    **{
        f"missing scale {m}": (_mutated(minimal, lambda d, m=m: _scale(d).pop(m)), f"scales[0].{m}")
        for m in ("key", "size", "resolution", "chunk_sizes", "encoding")
    },
    **{
        f"missing sharding {m}": (
            _mutated(sharded, lambda d, m=m: _shard(d).pop(m)),
            f"scales[0].sharding.{m}",
        )
        for m in ("preshift_bits", "minishard_bits", "shard_bits", "hash")
    },
    "missing block size": (
        _mutated(minimal, lambda d: _scale(d).update(encoding="compressed_segmentation")),
        "scales[0].compressed_segmentation_block_size",
    ),
    # wrong values
    "unknown data_type": (
        _mutated(minimal, lambda d: d.update(data_type="complex64")),
        "data_type",
    ),
    "unknown layer type": (_mutated(minimal, lambda d: d.update(type="mesh")), "type"),
    "wrong @type": (_mutated(minimal, lambda d: d.update({"@type": "zarr"})), "@type"),
    "zero channels": (_mutated(minimal, lambda d: d.update(num_channels=0)), "num_channels"),
    "bool channels": (_mutated(minimal, lambda d: d.update(num_channels=True)), "num_channels"),
    "float channels": (_mutated(minimal, lambda d: d.update(num_channels=1.5)), "num_channels"),
    "NaN channels": (
        _mutated(minimal, lambda d: d.update(num_channels=float("nan"))),
        "num_channels",
    ),
    "empty scales": (_mutated(minimal, lambda d: d.update(scales=[])), "scales"),
    "scales not a list": (_mutated(minimal, lambda d: d.update(scales={"key": "s0"})), "scales"),
    "scale not an object": (_mutated(minimal, lambda d: d.update(scales=["s0"])), "scales[0]"),
    "unknown encoding": (
        _mutated(minimal, lambda d: _scale(d).update(encoding="webp")),
        "scales[0].encoding",
    ),
    "empty key": (_mutated(minimal, lambda d: _scale(d).update(key="/")), "scales[0].key"),
    "number key": (_mutated(minimal, lambda d: _scale(d).update(key=8)), "scales[0].key"),
    "chunk size 0": (
        _mutated(minimal, lambda d: _scale(d).update(chunk_sizes=[[4, 0, 4]])),
        "scales[0].chunk_sizes[0][1]",
    ),
    "second chunk size 0": (
        _mutated(minimal, lambda d: _scale(d).update(chunk_sizes=[[4, 4, 4], [0, 1, 1]])),
        "scales[0].chunk_sizes[1][0]",
    ),
    "no chunk sizes": (
        _mutated(minimal, lambda d: _scale(d).update(chunk_sizes=[])),
        "scales[0].chunk_sizes",
    ),
    "negative size": (
        _mutated(minimal, lambda d: _scale(d).update(size=[10, 10, -1])),
        "scales[0].size[2]",
    ),
    "infinite size": (
        _mutated(minimal, lambda d: _scale(d).update(size=[float("inf"), 10, 10])),
        "scales[0].size[0]",
    ),
    "two-axis size": (
        _mutated(minimal, lambda d: _scale(d).update(size=[10, 10])),
        "scales[0].size",
    ),
    "string offset": (
        _mutated(minimal, lambda d: _scale(d).update(voxel_offset=[0, "1", 0])),
        "scales[0].voxel_offset[1]",
    ),
    "zero resolution": (
        _mutated(minimal, lambda d: _scale(d).update(resolution=[1, 0, 1])),
        "scales[0].resolution[1]",
    ),
    "bad block size": (
        _mutated(
            minimal,
            lambda d: _scale(d).update(
                encoding="compressed_segmentation", compressed_segmentation_block_size=[8, 8, 0]
            ),
        ),
        "scales[0].compressed_segmentation_block_size[2]",
    ),
    "jpeg quality 101": (
        _mutated(minimal, lambda d: _scale(d).update(encoding="jpeg", jpeg_quality=101)),
        "scales[0].jpeg_quality",
    ),
    "png level 10": (
        _mutated(minimal, lambda d: _scale(d).update(encoding="png", png_level=10)),
        "scales[0].png_level",
    ),
    "sharded with two chunk sizes": (
        _mutated(sharded, lambda d: _scale(d).update(chunk_sizes=[[4, 4, 4], [8, 8, 8]])),
        "scales[0].chunk_sizes",
    ),
    "sharding bits > 64": (
        _mutated(
            sharded, lambda d: _shard(d).update(preshift_bits=10, minishard_bits=30, shard_bits=25)
        ),
        "scales[0].sharding",
    ),
    "negative shard bits": (
        _mutated(sharded, lambda d: _shard(d).update(shard_bits=-1)),
        "scales[0].sharding.shard_bits",
    ),
    "unknown hash": (
        _mutated(sharded, lambda d: _shard(d).update(hash="sha256")),
        "scales[0].sharding.hash",
    ),
    "unknown data encoding": (
        _mutated(sharded, lambda d: _shard(d).update(data_encoding="zstd")),
        "scales[0].sharding.data_encoding",
    ),
    "unknown sharding type": (
        _mutated(sharded, lambda d: _shard(d).update({"@type": "v2"})),
        "scales[0].sharding.@type",
    ),
    "sharding not an object": (
        _mutated(minimal, lambda d: _scale(d).update(sharding="yes")),
        "scales[0].sharding",
    ),
    "extension member not an object": (
        _mutated(minimal, lambda d: _scale(d).update(bigarrays="gzip")),
        "scales[0].bigarrays",
    ),
    "duplicate scale keys": (
        _mutated(minimal, lambda d: d["scales"].append(dict(_scale(d), size=[5, 5, 5]))),
        "scales",
    ),
}


@pytest.mark.parametrize(("doc", "field"), BAD.values(), ids=list(BAD))
def test_invalid_info_names_the_field(doc: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInfoError) as caught:
        Info.from_json(copy.deepcopy(doc))
    err = caught.value
    assert isinstance(err, ValueError)
    assert isinstance(err, ba.BigArraysError)
    assert err.field == field
    assert f"invalid info field {field!r}" in str(err)


@pytest.mark.parametrize(("doc", "field"), BAD.values(), ids=list(BAD))
def test_invalid_info_from_bytes_names_the_field_and_url(doc: dict[str, Any], field: str) -> None:
    data = json.dumps(doc).encode()  # NaN and Infinity become the JSON tokens Python reads back
    with pytest.raises(InvalidInfoError) as caught:
        Info.from_bytes(data, url="memory://x/info")
    assert caught.value.field == field
    assert caught.value.url == "memory://x/info"
    assert "memory://x/info" in str(caught.value)


@pytest.mark.parametrize(
    "data",
    [b"", b"{", b'{"type": "image",}', b"\xff\xfe\x00", b"info", b'{"a": 1} trailing'],
)
def test_json_that_does_not_parse(data: bytes) -> None:
    with pytest.raises(InvalidInfoError, match="not valid JSON") as caught:
        Info.from_bytes(data, url="file:///vol/info")
    assert isinstance(caught.value, ValueError)
    assert caught.value.field is None  # no member to blame: the document as a whole is bad
    assert "file:///vol/info" in str(caught.value)


@pytest.mark.parametrize("data", [b"[]", b'"info"', b"42", b"null", b"[{}]"])
def test_json_that_is_not_an_object(data: bytes) -> None:
    with pytest.raises(InvalidInfoError, match="expected a JSON object") as caught:
        Info.from_bytes(data)
    assert caught.value.field is None


def test_non_object_passed_to_from_json() -> None:
    with pytest.raises(InvalidInfoError, match="got list"):
        Info.from_json([minimal()])


# -- through the public API ------------------------------------------------------------------------


@pytest.fixture
def memory_url() -> Iterator[str]:
    name = f"info-{uuid.uuid4().hex}"
    yield f"memory://{name}"
    drop_namespace(name)


BAD_FOR_OPEN = [
    "missing data_type",
    "unknown data_type",
    "unknown encoding",
    "chunk size 0",
    "negative size",
    "sharded with two chunk sizes",
    "sharding bits > 64",
    "unknown hash",
    "duplicate scale keys",
    "missing scale key",
]


@pytest.mark.parametrize("case", BAD_FOR_OPEN)
def test_open_folder_with_bad_info(tmp_path: Path, case: str) -> None:
    doc, field = BAD[case]
    (tmp_path / "info").write_text(json.dumps(doc))
    with pytest.raises(InvalidInfoError) as caught:
        ba.open(str(tmp_path))
    assert caught.value.field == field
    assert caught.value.url is not None
    assert caught.value.url.endswith("/info")


def test_open_folder_with_unparsable_info(tmp_path: Path) -> None:
    (tmp_path / "info").write_bytes(b"{not json")
    with pytest.raises(InvalidInfoError, match="not valid JSON"):
        ba.open(tmp_path.as_uri())


def test_open_memory_with_bad_info(memory_url: str) -> None:
    MemoryStore(memory_url).put("info", json.dumps(BAD["unknown hash"][0]).encode())
    with pytest.raises(InvalidInfoError) as caught:
        ba.open(memory_url)
    assert caught.value.field == "scales[0].sharding.hash"


def test_open_folder_without_info(tmp_path: Path) -> None:
    (tmp_path / "8_8_40").mkdir()
    (tmp_path / "8_8_40" / "0-64_0-64_0-64").write_bytes(b"\0" * 10)
    with pytest.raises(ba.DatasetNotFoundError, match="no 'info' file") as caught:
        ba.open(str(tmp_path))
    assert isinstance(caught.value, FileNotFoundError)


def test_open_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        ba.open(str(tmp_path / "does-not-exist"))


def test_open_empty_memory_store(memory_url: str) -> None:
    with pytest.raises(ba.DatasetNotFoundError):
        ba.open(memory_url)
