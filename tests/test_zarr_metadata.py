"""Zarr v3 and v2 metadata against zarr-python 3, both ways: what it writes parses to the same
values, what we write it opens with the same shape, dtype, fill value (bit for bit), chunks,
attributes and dimension names, and chunk keys are the keys it writes."""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

import numcodecs
import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from zarr.core.buffer import cpu

from bigarrays.formats.zarr import (
    V3_DATA_TYPES,
    ArrayMetadataV2,
    ArrayMetadataV3,
    GroupMetadataV2,
    GroupMetadataV3,
    as_fill_value,
    attributes_to_bytes,
    decode_fill,
    encode_fill,
    parse_attributes,
)
from zarr_metadata_strategies import (
    ATTRIBUTES,
    ENCODINGS,
    bits_of,
    fill_values,
    grids,
    is_canonical,
    v2_arrays,
    v3_arrays,
)

ORACLE = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # zarr-python's unstable-dtype notes


class Store:
    """A zarr-python MemoryStore whose keys the test reads and writes directly."""

    def __init__(self) -> None:
        self.items: dict[str, Any] = {}
        self.zarr = zarr.storage.MemoryStore(store_dict=self.items)

    def __getitem__(self, key: str) -> bytes:
        return bytes(self.items[key].to_bytes())

    def __setitem__(self, key: str, data: bytes) -> None:
        self.items[key] = cpu.Buffer.from_bytes(data)

    def chunk_keys(self) -> set[str]:
        return {k for k in self.items if k not in {"zarr.json", ".zarray", ".zattrs", ".zgroup"}}


def same_fill(ours: Any, theirs: Any, dtype: np.dtype) -> bool:
    return bits_of(ours, dtype.newbyteorder("=")) == bits_of(theirs, dtype.newbyteorder("="))


def write_chunks(array: Any, chosen: list[tuple[int, ...]]) -> None:
    """Write the whole chunks at ``chosen`` grid indices, with a value other than the fill."""
    size = array.dtype.itemsize
    fill = array.fill_value if array.fill_value is not None else np.zeros((), array.dtype)[()]
    candidates = (np.frombuffer(bytes([byte]) * size, array.dtype)[0] for byte in (1, 0))
    value = next(v for v in candidates if not np.all(np.array(v) == np.array(fill)))
    for index in chosen:
        box = tuple(slice(i * c, (i + 1) * c) for i, c in zip(index, array.chunks, strict=True))
        array[box] = np.full(np.shape(array[box]), value, dtype=array.dtype)


def some_indices(draw: st.DrawFn, grid: tuple[int, ...]) -> list[tuple[int, ...]]:
    if math.prod(grid) == 0:
        return []
    one = st.tuples(*(st.integers(0, g - 1) for g in grid))
    return sorted(set(draw(st.lists(one, min_size=1, max_size=3))))


# -- ours -> zarr-python ---------------------------------------------------------------------------


@ORACLE
@given(meta=v3_arrays(), data=st.data())
def test_zarr_python_opens_what_we_write_v3(meta: ArrayMetadataV3, data: st.DataObject) -> None:
    assert ArrayMetadataV3.from_json(meta.to_bytes()) == meta
    store = Store()
    store["zarr.json"] = meta.to_bytes()
    array = zarr.open_array(store.zarr, mode="r+", config={"write_empty_chunks": True})
    assert array.shape == meta.shape
    assert array.dtype == meta.data_type
    assert array.chunks == meta.chunk_shape
    assert array.attrs.asdict() == meta.attributes
    assert array.metadata.dimension_names == meta.dimension_names
    if meta.data_type.kind == "c" and not is_canonical(meta.fill_value, meta.data_type):
        # zarr-python 3.1 cannot read a hex NaN inside a complex pair (the spec allows one).
        pair = meta.to_json()["fill_value"]
        assert any(isinstance(p, str) and p.startswith("0x") for p in pair)
        return
    if meta.data_type == np.float16 and not is_canonical(meta.fill_value, meta.data_type):
        # zarr-python 3.1 reads a float16 hex NaN through a wider float and keeps only its NaN-ness
        # (0x7e01 -> 0x7e00); wider floats keep the payload.
        assert str(meta.to_json()["fill_value"]).startswith("0x")
        assert np.isnan(array.fill_value)
    else:
        assert same_fill(meta.fill_value, array.fill_value, meta.data_type)
    chosen = some_indices(data.draw, meta.grid_shape)
    write_chunks(array, chosen)
    assert store.chunk_keys() == {meta.chunk_key(i) for i in chosen}


@ORACLE
@given(meta=v2_arrays(), attributes=ATTRIBUTES, data=st.data())
def test_zarr_python_opens_what_we_write_v2(
    meta: ArrayMetadataV2, attributes: dict[str, Any], data: st.DataObject
) -> None:
    assert ArrayMetadataV2.from_json(meta.to_bytes()) == meta or not is_canonical(
        meta.fill_value, meta.dtype
    )
    store = Store()
    store[".zarray"] = meta.to_bytes()
    store[".zattrs"] = attributes_to_bytes(attributes)
    array = zarr.open_array(store.zarr, mode="r+", config={"write_empty_chunks": True})
    assert array.shape == meta.shape
    assert array.dtype == meta.dtype
    assert array.chunks == meta.chunks
    assert array.metadata.order == meta.order
    assert array.attrs.asdict() == attributes
    if meta.fill_value is None:
        assert array.metadata.fill_value is None
    elif is_canonical(meta.fill_value, meta.dtype):
        assert same_fill(meta.fill_value, array.fill_value, meta.dtype)
    else:  # v2 has no form for a NaN's payload: it reads back as the canonical NaN
        assert np.isnan(array.fill_value).any()
    chosen = some_indices(data.draw, meta.grid_shape)
    write_chunks(array, chosen)
    assert store.chunk_keys() == {meta.chunk_key(i) for i in chosen}


# -- zarr-python -> ours ---------------------------------------------------------------------------


@ORACLE
@given(grid=grids(), dtype_name=st.sampled_from(V3_DATA_TYPES), data=st.data())
def test_we_read_what_zarr_python_writes_v3(
    grid: tuple[tuple[int, ...], tuple[int, ...]], dtype_name: str, data: st.DataObject
) -> None:
    shape, chunks = grid
    dtype = np.dtype(dtype_name)
    fill = data.draw(fill_values(dtype))
    encoding = data.draw(st.sampled_from(ENCODINGS))
    attributes = data.draw(ATTRIBUTES)
    names = data.draw(st.none() | st.lists(st.text(max_size=3), min_size=len(shape),
                                           max_size=len(shape)).map(tuple))  # fmt: skip
    store = Store()
    array = zarr.create_array(
        store=store.zarr, shape=shape, chunks=chunks, dtype=dtype, fill_value=fill,
        chunk_key_encoding=encoding.to_json() | {"separator": encoding.separator},
        dimension_names=names, attributes=attributes, zarr_format=3,
        config={"write_empty_chunks": True},
    )  # fmt: skip
    meta = ArrayMetadataV3.from_json(store["zarr.json"])
    assert (meta.shape, meta.chunk_shape, meta.data_type) == (shape, chunks, dtype)
    assert meta.chunk_key_encoding == encoding
    assert meta.attributes == attributes
    assert meta.dimension_names == (names or None)  # zarr-python drops () of a 0-d array
    if is_canonical(fill, dtype):
        assert same_fill(meta.fill_value, fill, dtype)
    else:  # zarr-python writes every NaN as "NaN"
        assert store["zarr.json"].count(b'"NaN"') >= 1
    assert same_fill(meta.fill_value, zarr.open_array(store.zarr).fill_value, dtype)
    assert meta.codecs == tuple(json.loads(store["zarr.json"])["codecs"])
    chosen = some_indices(data.draw, meta.grid_shape)
    write_chunks(array, chosen)
    assert store.chunk_keys() == {meta.chunk_key(i) for i in chosen}
    assert ArrayMetadataV3.from_json(meta.to_json()) == meta


@ORACLE
@given(meta=v2_arrays(), attributes=ATTRIBUTES)
def test_we_read_what_zarr_python_writes_v2(
    meta: ArrayMetadataV2, attributes: dict[str, Any]
) -> None:
    store = Store()
    zarr.create_array(
        store=store.zarr, shape=meta.shape, chunks=meta.chunks, dtype=meta.dtype,
        fill_value=meta.fill_value, order=meta.order, attributes=attributes, zarr_format=2,
        chunk_key_encoding={"name": "v2", "separator": meta.dimension_separator},
        compressors=None if meta.compressor is None else numcodecs.Zstd(level=1),
        filters=None,
    )  # fmt: skip
    ours = ArrayMetadataV2.from_json(store[".zarray"])
    assert (ours.shape, ours.chunks, ours.dtype, ours.order) == (
        meta.shape, meta.chunks, meta.dtype, meta.order)  # fmt: skip
    assert ours.dimension_separator == meta.dimension_separator
    assert ours.compressor == meta.compressor
    assert parse_attributes(store[".zattrs"]) == attributes
    if meta.fill_value is None:
        assert ours.fill_value is None
    elif is_canonical(meta.fill_value, meta.dtype):
        assert ours.fill_value is not None
        assert same_fill(ours.fill_value, meta.fill_value, meta.dtype)
    assert ArrayMetadataV2.from_json(ours.to_json()) == ours


def test_chunk_keys_of_every_chunk_match_zarr_python() -> None:
    for encoding, shape in itertools.product(ENCODINGS, [(), (3,), (5, 3), (2, 3, 4)]):
        store = Store()
        array = zarr.create_array(store=store.zarr, shape=shape, chunks=(2,) * len(shape),
                                  dtype="u1", fill_value=0, zarr_format=3,
                                  chunk_key_encoding=encoding.to_json())  # fmt: skip
        array[...] = 1
        meta = ArrayMetadataV3.from_json(store["zarr.json"])
        keys = {meta.chunk_key(i) for i in np.ndindex(*meta.grid_shape)}
        assert store.chunk_keys() == keys, (encoding, shape)
        for key in keys:
            index = meta.chunk_key_encoding.index(key, meta.ndim)
            assert index is not None
            assert meta.chunk_key(index) == key
        assert meta.chunk_key_encoding.index("zarr.json", meta.ndim) is None


def test_chunk_key_outside_the_grid_is_refused() -> None:
    meta = ArrayMetadataV3.from_json(json.loads(_zarr_json((5, 3), (2, 2))))
    assert meta.chunk_key((2, 1)) == "c/2/1"
    for index in [(3, 0), (0, 2), (-1, 0), (0,), (0, 0, 0)]:
        with pytest.raises(IndexError, match="outside the grid"):
            meta.chunk_key(index)


def _zarr_json(shape: tuple[int, ...], chunks: tuple[int, ...], **kw: Any) -> bytes:
    store = Store()
    zarr.create_array(store=store.zarr, shape=shape, chunks=chunks, dtype="u1", **kw)
    return store["zarr.json"]


def test_groups_both_ways() -> None:
    store = Store()
    group = zarr.create_group(store=store.zarr, attributes={"ome": {"version": "0.5"}})
    group.create_array("a", shape=(3,), dtype="u1")
    zarr.consolidate_metadata(store.zarr)
    meta = GroupMetadataV3.from_json(store["zarr.json"])
    assert meta.attributes == {"ome": {"version": "0.5"}}
    assert meta.extra["consolidated_metadata"]["must_understand"] is False
    assert GroupMetadataV3.from_json(meta.to_bytes()) == meta

    ours = Store()
    ours["zarr.json"] = GroupMetadataV3(attributes={"a": [1, None]}).to_bytes()
    assert zarr.open_group(ours.zarr, mode="r").attrs.asdict() == {"a": [1, None]}

    v2 = Store()
    zarr.create_group(store=v2.zarr, zarr_format=2, attributes={"b": 2})
    assert GroupMetadataV2.from_json(v2[".zgroup"]) == GroupMetadataV2()
    assert parse_attributes(v2[".zattrs"]) == {"b": 2}
    mine = Store()
    mine[".zgroup"] = GroupMetadataV2().to_bytes()
    mine[".zattrs"] = attributes_to_bytes({"c": 3})
    assert zarr.open_group(mine.zarr, mode="r", zarr_format=2).attrs.asdict() == {"c": 3}


# -- fill values -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "value", "v3", "v2"),
    [("float32", np.float32(np.nan), "NaN", "NaN"),
     ("float32", np.array([0x7FC00001], "u4").view("f4")[0], "0x7fc00001", "NaN"),
     ("float32", np.array([0xFFC00000], "u4").view("f4")[0], "0xffc00000", "NaN"),
     ("float16", np.array([0x7E01], "u2").view("f2")[0], "0x7e01", "NaN"),
     ("float64", np.float64(-0.0), -0.0, -0.0),
     ("float64", np.float64(np.inf), "Infinity", "Infinity"),
     ("float16", np.float16(-np.inf), "-Infinity", "-Infinity"),
     ("float32", np.float32(0.1), float(np.float32(0.1)), float(np.float32(0.1))),
     ("complex64", np.complex64(complex(np.nan, -0.0)), ["NaN", -0.0], ["NaN", -0.0]),
     ("uint64", np.uint64(2**64 - 1), 2**64 - 1, 2**64 - 1),
     ("int64", np.int64(-(2**63)), -(2**63), -(2**63)),
     ("bool", np.True_, True, True)],
)  # fmt: skip
def test_fill_value_json_forms(dtype: str, value: Any, v3: Any, v2: Any) -> None:
    np_dtype = np.dtype(dtype)
    assert _json_equal(encode_fill(value, np_dtype), v3)
    assert _json_equal(encode_fill(value, np_dtype, version=2), v2)
    back = decode_fill(v3, np_dtype)
    assert type(back) is np_dtype.type
    assert bits_of(back, np_dtype) == bits_of(value, np_dtype)


def _json_equal(a: Any, b: Any) -> bool:
    return json.dumps(a) == json.dumps(b)


def test_v2_bytes_fill_values_are_base64_as_zarr_python_writes_them() -> None:
    for typestr, value in [("|S4", b"ab"), ("|V3", b"abc")]:
        store = Store()
        zarr.create_array(store=store.zarr, shape=(2,), dtype=typestr, fill_value=value,
                          zarr_format=2)  # fmt: skip
        meta = ArrayMetadataV2.from_json(store[".zarray"])
        assert meta.fill_value is not None
        assert bytes(meta.fill_value) == value
        ours = Store()
        ours[".zarray"] = meta.to_bytes()
        theirs = zarr.open_array(store.zarr, mode="r").fill_value
        assert bytes(zarr.open_array(ours.zarr, mode="r").fill_value).rstrip(b"\0") == value
        assert bytes(theirs).rstrip(b"\0") == value


def test_v2_null_fill_value_reads_as_zero() -> None:
    meta = ArrayMetadataV2.from_json(_zarray(dtype=">f8", fill_value=None))
    assert meta.fill_value is None
    assert meta.to_json()["fill_value"] is None
    assert bits_of(meta.effective_fill_value, np.dtype("f8")) == bits_of(0.0, np.dtype("f8"))


def _zarray(**members: Any) -> dict[str, Any]:
    return {"zarr_format": 2, "shape": [4], "chunks": [2], "dtype": "<u2", "fill_value": 0,
            "order": "C", "compressor": None, "filters": None, **members}  # fmt: skip


@pytest.mark.parametrize(
    ("value", "dtype", "bits"),
    [(np.array([0x7FC00001], "u4").view("f4")[0], "float32", "0100c07f"),
     (np.float64(-0.0), "float64", "0000000000000080"),
     (3, "uint8", "03"),
     (float("nan"), "float16", "007e"),
     (1 + 2j, "complex64", "0000803f00000040"),
     (0, "bool", "00"),
     (b"ab", "|V3", "616200"),
     (b"ab", "|S3", "616200"),
     (np.uint16(7), ">u2", "0700")],
)  # fmt: skip
def test_user_fill_values_keep_their_bits(value: Any, dtype: str, bits: str) -> None:
    out = as_fill_value(value, dtype)
    assert np.array(out, dtype=np.dtype(dtype).newbyteorder("<")).tobytes().hex() == bits


@pytest.mark.parametrize(("value", "dtype"), [(256, "uint8"), (-1, "uint64"), (1e39, "float32"),
                                             (0.5, "int8"), ("x", "float32")])  # fmt: skip
def test_user_fill_values_that_do_not_fit_are_refused(value: Any, dtype: str) -> None:
    with pytest.raises(ValueError, match="fill_value"):
        as_fill_value(value, dtype)


def test_equality_compares_fill_values_bit_for_bit() -> None:
    doc = json.loads(_zarr_json((4,), (2,), fill_value=0.0))
    doc["data_type"] = "float32"
    zero = ArrayMetadataV3.from_json(doc)
    negative = ArrayMetadataV3.from_json({**doc, "fill_value": -0.0})
    nan = ArrayMetadataV3.from_json({**doc, "fill_value": "NaN"})
    payload = ArrayMetadataV3.from_json({**doc, "fill_value": "0x7fc00001"})
    assert zero != negative
    assert nan == ArrayMetadataV3.from_json(nan.to_json())
    assert nan != payload
    assert payload.to_json()["fill_value"] == "0x7fc00001"
