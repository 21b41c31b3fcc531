"""Hostile and malformed Zarr metadata: typed errors that name the member and the bound, fast.

Valid metadata bigarrays does not handle (another chunk grid, a storage transformer, an
extension member that must be understood, an extension data type) is UnsupportedError; broken
metadata is InvalidMetadataError, an InvalidInfoError and a ValueError.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable
from typing import Any

import pytest

from bigarrays.errors import InvalidInfoError, InvalidMetadataError, UnsupportedError
from bigarrays.formats.bounded_json import MAX_JSON_BYTES, MAX_JSON_DEPTH
from bigarrays.formats.limits import MAX_INDEX, MAX_RANK
from bigarrays.formats.zarr import (
    ArrayMetadataV2,
    ArrayMetadataV3,
    GroupMetadataV2,
    GroupMetadataV3,
    node_from_json,
)


def v3() -> dict[str, Any]:
    return {
        "zarr_format": 3,
        "node_type": "array",
        "shape": [10, 10],
        "data_type": "uint16",
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [4, 4]}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": 0,
        "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
    }


def v2() -> dict[str, Any]:
    return {"zarr_format": 2, "shape": [10, 10], "chunks": [4, 4], "dtype": "<u2",
            "fill_value": 0, "order": "C", "compressor": None, "filters": None}  # fmt: skip


def edit(base: Callable[[], dict[str, Any]], **members: Any) -> dict[str, Any]:
    doc = base()
    for name, value in members.items():
        if value is DROP:
            doc.pop(name, None)
        else:
            doc[name] = value
    return doc


DROP = object()


def chunks(shape: Any) -> dict[str, Any]:
    return {"name": "regular", "configuration": {"chunk_shape": shape}}


def sharded(inner: Any, codecs: Any = None) -> list[dict[str, Any]]:
    config = {"chunk_shape": inner, "codecs": codecs or [{"name": "bytes"}],
              "index_codecs": [{"name": "bytes"}]}  # fmt: skip
    return [{"name": "sharding_indexed", "configuration": config}]


# (document, member the error names, a word of what was expected)
HOSTILE_V3: dict[str, tuple[dict[str, Any], str, str]] = {
    "chunk of 2**32 elements": (
        edit(v3, shape=[2**16, 2**16], chunk_grid=chunks([2**16, 2**16])),
        "chunk_grid.configuration.chunk_shape", "2 GiB",
    ),
    "shape past 2**62": (edit(v3, shape=[2**62, 1]), "shape[0]", "2**62 - 2"),
    "shape 2**70": (edit(v3, shape=[2**70, 1]), "shape[0]", "2**62 - 2"),
    "array bytes past int64": (
        edit(v3, shape=[2**61, 2**61], chunk_grid=chunks([1, 1])), "shape", "2**63 - 1",
    ),
    "negative extent": (edit(v3, shape=[-1, 4]), "shape[0]", ">= 0"),
    "zero chunk": (edit(v3, chunk_grid=chunks([0, 4])),
                   "chunk_grid.configuration.chunk_shape[0]", ">= 1"),
    "fractional extent": (edit(v3, shape=[10.5, 4]), "shape[0]", "integer"),
    "NaN extent": (edit(v3, shape=[float("nan"), 4]), "shape[0]", "integer"),
    "boolean extent": (edit(v3, shape=[True, 4]), "shape[0]", "integer"),
    "rank 33": (edit(v3, shape=[1] * (MAX_RANK + 1), chunk_grid=chunks([1] * (MAX_RANK + 1))),
                "shape", "at most 32"),
    "rank mismatch": (edit(v3, chunk_grid=chunks([4])), "chunk_grid.configuration.chunk_shape",
                      "dimensions"),
    "missing shape": (edit(v3, shape=DROP), "shape", "missing"),
    "missing fill value": (edit(v3, fill_value=DROP), "fill_value", "missing"),
    "missing codecs": (edit(v3, codecs=DROP), "codecs", "missing"),
    "empty codecs": (edit(v3, codecs=[]), "codecs", "non-empty"),
    "codec without a name": (edit(v3, codecs=[{"configuration": {}}]), "codecs[0].name", "name"),
    "zarr_format 2": (edit(v3, zarr_format=2), "zarr_format", "3"),
    "zarr_format true": (edit(v3, zarr_format=True), "zarr_format", "3"),
    "group node": (edit(v3, node_type="group"), "node_type", "array"),
    "data type a number": (edit(v3, data_type=7), "data_type", "uint8"),
    "fill past uint16": (edit(v3, fill_value=65536), "fill_value", "range"),
    "fill negative for uint": (edit(v3, fill_value=-1), "fill_value", "range"),
    "fill a fraction for int": (edit(v3, fill_value=1.5), "fill_value", "integer"),
    "fill NaN for int": (edit(v3, fill_value="NaN"), "fill_value", "integer"),
    "fill hex for int": (edit(v3, fill_value="0x05"), "fill_value", "integer"),
    "fill of 101 digits": (edit(v3, fill_value=10**100), "fill_value", "101 digits"),
    "fill of 100 digits": (edit(v3, fill_value=10**99), "fill_value", "range"),
    "fill 1e39 for float32": (edit(v3, data_type="float32", fill_value=1e39), "fill_value", "fit"),
    "fill 70000 for float16": (edit(v3, data_type="float16", fill_value=70000), "fill_value",
                               "fit"),
    "fill hex too long": (edit(v3, data_type="float32", fill_value="0x7fc000000"), "fill_value",
                          "hex"),
    "fill word for float": (edit(v3, data_type="float32", fill_value="nan"), "fill_value", "NaN"),
    "fill number for bool": (edit(v3, data_type="bool", fill_value=0), "fill_value", "true"),
    "fill scalar for complex": (edit(v3, data_type="complex64", fill_value=1.0), "fill_value",
                                "[real, imaginary]"),
    "fill bad imaginary": (edit(v3, data_type="complex64", fill_value=[0, "x"]), "fill_value[1]",
                           "number"),
    "separator '-'": (edit(v3, chunk_key_encoding={"name": "default",
                                                   "configuration": {"separator": "-"}}),
                      "chunk_key_encoding.configuration.separator", "'/' or '.'"),
    "key encoding name a list": (edit(v3, chunk_key_encoding={"name": []}),
                                 "chunk_key_encoding.name", "'default' or 'v2'"),
    "attributes a list": (edit(v3, attributes=[1]), "attributes", "object"),
    "dimension names too few": (edit(v3, dimension_names=["x"]), "dimension_names", "2 names"),
    "dimension name a number": (edit(v3, dimension_names=["x", 3]), "dimension_names[1]",
                                "string"),
    "inner chunk of 2**32 elements": (
        edit(v3, shape=[2**17, 2**16], chunk_grid=chunks([2**17, 2**16]),
             codecs=sharded([2**16, 2**16])),
        "codecs", "2 GiB",
    ),
    "nested inner chunk too big": (
        edit(v3, shape=[2**17, 2**16], chunk_grid=chunks([2**17, 2**16]),
             codecs=sharded([2**17, 2**16], sharded([2**16, 2**16]))),
        "codecs", "2 GiB",
    ),
    "shard index past 2 GiB": (
        edit(v3, shape=[2**20, 2**20], chunk_grid=chunks([2**20, 2**20]), codecs=sharded([1, 1])),
        "codecs[0].configuration.chunk_shape", "index",
    ),
    "inner chunk rank mismatch": (edit(v3, codecs=sharded([2])),
                                  "codecs[0].configuration.chunk_shape", "dimensions"),
}  # fmt: skip

HOSTILE_V2: dict[str, tuple[dict[str, Any], str, str]] = {
    "chunk of 2**32 elements": (edit(v2, shape=[2**16, 2**16], chunks=[2**16, 2**16]), "chunks",
                                "2 GiB"),
    "shape 2**70": (edit(v2, shape=[2**70, 1]), "shape[0]", "2**62 - 2"),
    "rank mismatch": (edit(v2, chunks=[4]), "chunks", "dimensions"),
    "dtype without byte order": (edit(v2, dtype="u2"), "dtype", "'<u2'"),
    "dtype '|u2'": (edit(v2, dtype="|u2"), "dtype", "byte order"),
    "dtype '<f16'": (edit(v2, dtype="<f16"), "dtype", "item sizes"),
    "dtype '<i3'": (edit(v2, dtype="<i3"), "dtype", "item sizes"),
    "dtype name": (edit(v2, dtype="uint16"), "dtype", "'<u2'"),
    "bytes of 2**20": (edit(v2, dtype="|S1048576"), "dtype", "bytes"),
    "order 'X'": (edit(v2, order="X"), "order", "'C' or 'F'"),
    "missing order": (edit(v2, order=DROP), "order", "missing"),
    "missing fill value": (edit(v2, fill_value=DROP), "fill_value", "missing"),
    "compressor without id": (edit(v2, compressor={"level": 1}), "compressor.id", "id"),
    "filters an object": (edit(v2, filters={"id": "delta"}), "filters", "list"),
    "filter without id": (edit(v2, filters=[{"id": "delta"}, {}]), "filters[1].id", "id"),
    "hex fill": (edit(v2, dtype="<f4", fill_value="0x7fc00000"), "fill_value", "NaN"),
    "bad base64": (edit(v2, dtype="|S4", fill_value="a!!"), "fill_value", "base64"),
    "base64 too long": (edit(v2, dtype="|S2", fill_value="YWJj"), "fill_value", "3 bytes"),
    "separator '-'": (edit(v2, dimension_separator="-"), "dimension_separator", "'/' or '.'"),
    "separator a list": (edit(v2, dimension_separator=["/"]), "dimension_separator", "'/' or '.'"),
    "zarr_format 3": (edit(v2, zarr_format=3), "zarr_format", "2"),
}  # fmt: skip


def _check(parse: Callable[..., Any], doc: Any, field: str, word: str, url: str) -> None:
    with pytest.raises(InvalidMetadataError) as caught:
        parse(json.dumps(doc).encode(), url=url)
    assert caught.value.field == field
    assert word in caught.value.detail
    assert caught.value.url == url
    assert isinstance(caught.value, InvalidInfoError | ValueError)


@pytest.mark.parametrize(("doc", "field", "word"), HOSTILE_V3.values(), ids=list(HOSTILE_V3))
def test_hostile_v3_array(doc: dict[str, Any], field: str, word: str) -> None:
    _check(ArrayMetadataV3.from_json, doc, field, word, "memory://x/a/zarr.json")


@pytest.mark.parametrize(("doc", "field", "word"), HOSTILE_V2.values(), ids=list(HOSTILE_V2))
def test_hostile_v2_array(doc: dict[str, Any], field: str, word: str) -> None:
    _check(ArrayMetadataV2.from_json, doc, field, word, "memory://x/a/.zarray")


def test_error_names_the_document_when_no_url_is_given() -> None:
    with pytest.raises(InvalidMetadataError, match=r"'shape' in zarr\.json"):
        ArrayMetadataV3.from_json(edit(v3, shape=DROP))
    with pytest.raises(InvalidMetadataError, match=r"'shape' in \.zarray"):
        ArrayMetadataV2.from_json(edit(v2, shape=DROP))


UNSUPPORTED_V3: dict[str, tuple[dict[str, Any], str]] = {
    "rectilinear grid": (edit(v3, chunk_grid={"name": "rectilinear", "configuration": {}}),
                         "rectilinear"),
    "storage transformer": (edit(v3, storage_transformers=[{"name": "x"}]), "storage"),
    "must understand": (edit(v3, extension={"must_understand": True}), "'extension'"),
    "object without must_understand": (edit(v3, extension={"a": 1}), "'extension'"),
    "bare unknown member": (edit(v3, extension=1), "'extension'"),
    "extension data type": (edit(v3, data_type={"name": "numpy.datetime64"}), "data type"),
    "raw bits data type": (edit(v3, data_type="r16"), "data type"),
    "string data type": (edit(v3, data_type="string"), "data type"),
    "other key encoding": (edit(v3, chunk_key_encoding={"name": "sharded"}), "'sharded'"),
}  # fmt: skip


@pytest.mark.parametrize(("doc", "word"), UNSUPPORTED_V3.values(), ids=list(UNSUPPORTED_V3))
def test_unsupported_v3(doc: dict[str, Any], word: str) -> None:
    with pytest.raises(UnsupportedError, match=word) as caught:
        ArrayMetadataV3.from_json(doc, url="s3://b/a/zarr.json")
    assert str(caught.value).startswith("s3://b/a/zarr.json: ")


@pytest.mark.parametrize("dtype", ["<M8[s]", "<m8[ns]", "<U4", "|O", [["a", "<i4"], ["b", "<f4"]]])
def test_unsupported_v2_dtypes(dtype: Any) -> None:
    with pytest.raises(UnsupportedError, match="not supported"):
        ArrayMetadataV2.from_json(edit(v2, dtype=dtype, fill_value=None))


def test_members_that_may_be_ignored_are_kept_verbatim() -> None:
    ext = {"must_understand": False, "nested": {"x": [1, 2.5, None]}}
    doc = edit(v3, extension=ext, storage_transformers=[])
    meta = ArrayMetadataV3.from_json(doc)
    assert meta.extra == {"extension": ext, "storage_transformers": []}
    assert meta.to_json()["extension"] == ext
    assert ArrayMetadataV3.from_json(meta.to_bytes()) == meta
    group = GroupMetadataV3.from_json({"zarr_format": 3, "node_type": "group", "x": ext})
    assert group.to_json() == {"zarr_format": 3, "node_type": "group", "attributes": {}, "x": ext}
    with pytest.raises(UnsupportedError, match="'x'"):
        GroupMetadataV3.from_json({"zarr_format": 3, "node_type": "group", "x": 1})


def test_v2_unknown_members_are_kept() -> None:
    meta = ArrayMetadataV2.from_json(edit(v2, tool={"made_by": "a microscope"}))
    assert meta.to_json()["tool"] == {"made_by": "a microscope"}
    assert GroupMetadataV2.from_json({"zarr_format": 2, "x": 1}).to_json() == {
        "zarr_format": 2,
        "x": 1,
    }


PARSERS = [ArrayMetadataV3.from_json, ArrayMetadataV2.from_json, GroupMetadataV3.from_json,
           GroupMetadataV2.from_json]  # fmt: skip


@pytest.mark.parametrize("parse", PARSERS)
@pytest.mark.parametrize(
    ("data", "word"),
    [(b"[" * 100_000 + b"]" * 100_000, f"at most {MAX_JSON_DEPTH}"),
     (b'{"shape": [' + b"9" * 5000 + b"]}", "5000 digits"),
     (b" " * (MAX_JSON_BYTES + 1), "16 MiB"),
     (b"{\"zarr_format\": 3", "not valid JSON"),
     (b"\xff\xfe\x00", "not valid JSON"),
     (b"[]", "JSON object"),
     (b"null", "JSON object")],
    ids=["deep", "long integer", "huge", "truncated", "not UTF-8", "list", "null"],
)  # fmt: skip
def test_hostile_bytes(parse: Callable[..., Any], data: bytes, word: str) -> None:
    with pytest.raises(InvalidMetadataError, match=word):
        parse(data)


def test_values_at_the_bounds_are_valid() -> None:
    doc = edit(v3, shape=[MAX_INDEX, 1], chunk_grid=chunks([2**30, 1]), data_type="uint8")
    meta = ArrayMetadataV3.from_json(doc)
    assert meta.shape == (MAX_INDEX, 1)
    assert ArrayMetadataV3.from_json(meta.to_json()) == meta
    # A shard far past 2 GiB is fine when what is decoded at once is small.
    doc = edit(v3, shape=[2**16, 2**16], chunk_grid=chunks([2**16, 2**16]),
               codecs=sharded([256, 256]))  # fmt: skip
    meta = ArrayMetadataV3.from_json(doc)
    assert meta.decoded_chunk_shape == (256, 256)
    big = copy.deepcopy(doc)
    big["shape"] = [1] * MAX_RANK
    big["chunk_grid"] = chunks([1] * MAX_RANK)
    big["codecs"] = [{"name": "bytes"}]
    assert ArrayMetadataV3.from_json(big).ndim == MAX_RANK


def test_lenient_forms_that_mean_the_same() -> None:
    long_form = ArrayMetadataV3.from_json(edit(v3, data_type={"name": "uint16"}))
    assert long_form == ArrayMetadataV3.from_json(v3())
    assert long_form.to_json()["data_type"] == "uint16"
    for absent in (DROP, None):
        meta = ArrayMetadataV2.from_json(edit(v2, dimension_separator=absent))
        assert meta.dimension_separator == "."
        assert meta.chunk_key((1, 2)) == "1.2"


def test_checked_refuses_what_a_reader_would() -> None:
    meta = ArrayMetadataV3.from_json(v3())
    assert meta.checked() == meta
    too_big = dataclasses.replace(meta, chunk_shape=(2**16, 2**16), shape=(2**16, 2**16))
    with pytest.raises(InvalidMetadataError, match="2 GiB"):
        too_big.checked()
    with pytest.raises(UnsupportedError, match="'x'"):
        dataclasses.replace(meta, extra={"x": 1}).checked()
    old = ArrayMetadataV2.from_json(v2())
    with pytest.raises(InvalidMetadataError, match="dimensions"):
        dataclasses.replace(old, chunks=(1,)).checked()


def test_node_from_json_dispatches_on_node_type() -> None:
    assert isinstance(node_from_json(json.dumps(v3()).encode()), ArrayMetadataV3)
    group = {"zarr_format": 3, "node_type": "group", "attributes": {"a": 1}}
    assert node_from_json(group) == GroupMetadataV3(attributes={"a": 1})
    with pytest.raises(InvalidMetadataError, match="'array' or 'group'") as caught:
        node_from_json(edit(v3, node_type="other"), url="memory://x/zarr.json")
    assert caught.value.url == "memory://x/zarr.json"
