"""Fuzzing the Zarr metadata readers: whatever document a store holds, parsing it either gives a
model that writes back to itself or raises a BigArraysError; never a KeyError, TypeError,
OverflowError or any other untyped exception.

Parsing allocates nothing by the sizes a document names, so the cases run in this process.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bigarrays.errors import BigArraysError
from bigarrays.formats.zarr import (
    ArrayMetadataV2,
    ArrayMetadataV3,
    GroupMetadataV2,
    GroupMetadataV3,
    node_from_json,
)

V3 = {
    "zarr_format": 3, "node_type": "array", "shape": [10, 0, 3], "data_type": "complex64",
    "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [4, 2, 3]}},
    "chunk_key_encoding": {"name": "v2", "configuration": {"separator": "/"}},
    "fill_value": ["NaN", "0x7fc00001"],
    "codecs": [{"name": "sharding_indexed", "configuration": {
        "chunk_shape": [2, 1, 3], "codecs": [{"name": "bytes"}], "index_codecs": []}}],
    "attributes": {"ome": {"version": "0.5"}}, "dimension_names": ["z", None, "x"],
    "storage_transformers": [], "ext": {"must_understand": False},
}  # fmt: skip
V2 = {
    "zarr_format": 2, "shape": [10, 7], "chunks": [4, 4], "dtype": ">f8", "fill_value": "NaN",
    "order": "F", "compressor": {"id": "blosc", "cname": "zstd"}, "filters": [{"id": "delta"}],
    "dimension_separator": "/",
}  # fmt: skip
GROUP = {"zarr_format": 3, "node_type": "group", "attributes": {"a": [1]}}

ODD_NUMBERS = st.sampled_from([0, -1, 1, 2**31, 2**62, 2**63, 2**64, -(2**63) - 1, 10**99, 0.5,
                               -0.0, 1e308, float("nan"), float("inf"), True, False])  # fmt: skip
ODD_STRINGS = st.sampled_from(["", "NaN", "Infinity", "0x", "0x7fc00000", "0xzz", "c", "/", ".",
                               "regular", "default", "v2", "uint8", "|u2", "<f16", "\x00", "\ud800",
                               "YWJj", "C", "F"])  # fmt: skip
VALUES = st.recursive(
    st.none() | ODD_NUMBERS | ODD_STRINGS | st.integers() | st.floats() | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ODD_STRINGS, inner, max_size=3),
    max_leaves=10,
)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for key, value in doc.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            out += _paths(value, (*prefix, i))
    return out


def _replace(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    copy = dict(doc) if isinstance(doc, dict) else list(doc)
    copy[path[0]] = _replace(doc[path[0]], path[1:], value)
    return copy


@st.composite
def edited(draw: st.DrawFn, base: dict[str, Any]) -> Any:
    doc: Any = base
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(doc) if isinstance(doc, dict | list) else [()]
        path = draw(st.sampled_from(paths))
        if path and isinstance(doc, dict) and len(path) == 1 and draw(st.booleans()):
            doc = {k: v for k, v in doc.items() if k != path[0]}  # a member left out
        else:
            doc = _replace(doc, path, draw(VALUES))
    return doc


PARSERS: list[tuple[Callable[..., Any], dict[str, Any]]] = [
    (ArrayMetadataV3.from_json, V3),
    (ArrayMetadataV2.from_json, V2),
    (GroupMetadataV3.from_json, GroupMetadataV3.from_json(GROUP).to_json()),
    (GroupMetadataV2.from_json, {"zarr_format": 2}),
    (node_from_json, V3),
    (node_from_json, GROUP),
]


def _parse_or_refuse(parse: Callable[..., Any], data: bytes | dict[str, Any]) -> None:
    try:
        model = parse(data)
    except BigArraysError:
        return
    again = type(model).from_json(model.to_bytes())
    assert again == model or _has_nan(model.to_json())


def _has_nan(doc: Any) -> bool:
    """NaN in attributes or extra members: a model with one is not equal to itself."""
    text = json.dumps(doc)
    return "NaN" in text


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), which=st.integers(0, len(PARSERS) - 1))
def test_edited_documents_parse_or_raise_typed_errors(data: st.DataObject, which: int) -> None:
    parse, base = PARSERS[which]
    assert parse(base) is not None
    doc = data.draw(edited(base))
    if isinstance(doc, dict):
        _parse_or_refuse(parse, doc)
    _parse_or_refuse(parse, json.dumps(doc).encode(errors="surrogatepass"))


@settings(max_examples=300, deadline=None)
@given(which=st.integers(0, len(PARSERS) - 1), cut=st.integers(0, 2000), junk=st.binary(max_size=8))
def test_damaged_bytes_parse_or_raise_typed_errors(which: int, cut: int, junk: bytes) -> None:
    parse, base = PARSERS[which]
    text = json.dumps(base).encode()
    cut %= len(text) + 1
    _parse_or_refuse(parse, text[:cut] + junk + text[cut:])
