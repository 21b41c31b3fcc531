"""The Zarr v2 chain (numcodecs filters and compressor, C or F order) against zarr-python's
``zarr_format=2`` arrays: the same bytes, and each reads what the other writes."""

from __future__ import annotations

import json
import zlib
from typing import Any

import numcodecs
import numpy as np
import pytest
import zarr
import zarr.storage
from zarr.core.buffer import default_buffer_prototype

from bigarrays.codecs.zarr_v2 import V2Chain
from bigarrays.errors import CorruptChunkError, InvalidCodecError, UnsupportedError

DTYPES = [
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "complex64", "complex128", ">u2", ">f8", ">i4",
]  # fmt: skip
SHAPE = (6, 5, 3)
COMPRESSORS: dict[str, dict[str, Any] | None] = {
    "none": None,
    "blosc": {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1, "blocksize": 0},
    "blosc-zstd-bit": {"id": "blosc", "cname": "zstd", "clevel": 3, "shuffle": 2, "blocksize": 0},
    "zstd": {"id": "zstd", "level": 3},
    "gzip": {"id": "gzip", "level": 5},
    "zlib": {"id": "zlib", "level": 1},
    "lz4": {"id": "lz4", "acceleration": 1},
    "bz2": {"id": "bz2", "level": 9},
    "lzma": {"id": "lzma", "preset": 1},
}


def filters_for(name: str, dtype: np.dtype) -> list[dict[str, Any]] | None:
    if name == "delta":
        return [{"id": "delta", "dtype": dtype.str}]
    if name == "shuffle":
        return [{"id": "shuffle", "elementsize": dtype.itemsize}]
    return None


def random_chunk(dtype: np.dtype, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dtype.kind == "b":
        return rng.integers(0, 2, SHAPE).astype(bool)
    if dtype.kind in "iu":
        return rng.integers(0, 100, SHAPE).astype(dtype)
    if dtype.kind == "f":
        return rng.normal(0, 1e3, SHAPE).astype(dtype)
    return (rng.normal(0, 1, SHAPE) + 1j * rng.normal(0, 1, SHAPE)).astype(dtype)


def zarr_array(chunk: np.ndarray, zarray: dict[str, Any]) -> tuple[zarr.Array, Any]:
    store = zarr.storage.MemoryStore()
    compressor = zarray["compressor"]
    filters = zarray["filters"]
    arr = zarr.create_array(
        store=store, shape=chunk.shape, chunks=chunk.shape, dtype=zarray["dtype"],
        zarr_format=2, order=zarray["order"], fill_value=0,
        compressors=None if compressor is None else numcodecs.get_codec(compressor),
        filters=None if filters is None else [numcodecs.get_codec(f) for f in filters],
        config={"write_empty_chunks": True},
    )  # fmt: skip
    return arr, store


def stable(data: bytes, compressor: dict[str, Any] | None) -> bytes:
    """``data`` with the gzip header's time stamp (the only byte that moves) zeroed."""
    if compressor is not None and compressor["id"] == "gzip":
        return data[:4] + bytes(4) + data[8:]
    return data


def cases() -> list[Any]:
    out = []
    for dtype in DTYPES:
        for comp in COMPRESSORS:
            for filt in ("none", "delta", "shuffle"):
                if filt == "delta" and np.dtype(dtype).kind in "bc":
                    continue  # delta subtracts: no meaning for bool or complex
                for order in "CF":
                    out.append(pytest.param(dtype, comp, filt, order,
                                            id=f"{dtype}-{comp}-{filt}-{order}"))  # fmt: skip
    return out


@pytest.mark.parametrize(("dtype", "comp", "filt", "order"), cases())
def test_v2_chain_matches_zarr_python(dtype: str, comp: str, filt: str, order: str) -> None:
    dt = np.dtype(dtype)
    chunk = random_chunk(dt, zlib.crc32(f"{dtype}{comp}{filt}{order}".encode()))
    wanted = {"dtype": dt.str, "order": order, "compressor": COMPRESSORS[comp],
              "filters": filters_for(filt, dt)}  # fmt: skip
    arr, store = zarr_array(chunk, wanted)
    arr[...] = chunk
    zarray = json.loads(store._store_dict[".zarray"].to_bytes())
    theirs = bytes(store._store_dict["0.0.0"].to_bytes())
    chain = V2Chain.from_zarray(
        zarray["compressor"], zarray["filters"], np.dtype(zarray["dtype"]), SHAPE,
        zarray["order"],
    )  # fmt: skip
    ours = chain.encode(chunk)
    assert stable(ours, zarray["compressor"]) == stable(theirs, zarray["compressor"])
    # What zarr-python reads back (delta on floats rounds, so not always ``chunk`` itself).
    expected = arr[...]
    if not (filt == "delta" and dt.kind == "f"):
        np.testing.assert_array_equal(expected, chunk)
    got = chain.decode(theirs, "0.0.0")
    assert got.shape == SHAPE
    assert got.dtype == dt.newbyteorder("=")
    np.testing.assert_array_equal(got, expected)
    # zarr-python reads the chunk we wrote.
    store._store_dict["0.0.0"] = default_buffer_prototype().buffer.from_bytes(ours)
    np.testing.assert_array_equal(zarr.open_array(store=store, mode="r")[...], expected)


def test_f_order_chunk_is_stored_fortran_and_decoded_logically() -> None:
    chunk = np.arange(np.prod(SHAPE), dtype="<u2").reshape(SHAPE)
    chain = V2Chain.from_zarray(None, None, np.dtype("<u2"), SHAPE, "F")
    data = chain.encode(chunk)
    assert data == chunk.tobytes(order="F")
    got = chain.decode(data, "k")
    np.testing.assert_array_equal(got, chunk)
    assert got.flags.f_contiguous


def test_big_endian_is_stored_big_and_decoded_native() -> None:
    chunk = np.arange(np.prod(SHAPE), dtype="uint32").reshape(SHAPE)
    chain = V2Chain.from_zarray(None, None, np.dtype(">u4"), SHAPE, "C")
    data = chain.encode(chunk)
    assert data == chunk.astype(">u4").tobytes()
    got = chain.decode(data, "k")
    assert got.dtype == np.dtype("uint32")
    np.testing.assert_array_equal(got, chunk)


def test_to_zarray_round_trips() -> None:
    comp = {"id": "blosc", "cname": "zstd", "clevel": 3, "shuffle": 2, "blocksize": 0}
    filters = [{"id": "delta", "dtype": "<i4"}]
    chain = V2Chain.from_zarray(comp, filters, np.dtype("<i4"), SHAPE, "C")
    again = chain.to_zarray()
    assert again["compressor"]["cname"] == "zstd"
    assert again["filters"][0]["id"] == "delta"
    twin = V2Chain.from_zarray(again["compressor"], again["filters"], np.dtype("<i4"), SHAPE)
    chunk = random_chunk(np.dtype("<i4"), 7)
    assert twin.encode(chunk) == chain.encode(chunk)


def test_unknown_ids_are_unsupported_and_named() -> None:
    with pytest.raises(UnsupportedError, match="'no-such-codec'"):
        V2Chain.from_zarray({"id": "no-such-codec"}, None, np.dtype("u1"), SHAPE)
    with pytest.raises(UnsupportedError, match="filter 'nope'"):
        V2Chain.from_zarray(None, [{"id": "nope"}], np.dtype("u1"), SHAPE)


@pytest.mark.parametrize(
    ("compressor", "filters", "order", "match"),
    [
        ({"cname": "lz4"}, None, "C", "string id"),
        ({"id": "zstd", "lvl": 3}, None, "C", "cannot build"),
        (None, {"id": "delta"}, "C", "must be a list"),
        (None, None, "K", "order must be"),
    ],
)
def test_malformed_zarray_is_refused(compressor: Any, filters: Any, order: str, match: str) -> None:
    with pytest.raises(InvalidCodecError, match=match):
        V2Chain.from_zarray(compressor, filters, np.dtype("<i4"), SHAPE, order)


@pytest.mark.parametrize("comp", [c for c in COMPRESSORS if c != "none"])
def test_wrong_size_and_damage_are_corrupt(comp: str) -> None:
    config = COMPRESSORS[comp]
    chain = V2Chain.from_zarray(config, None, np.dtype("<u2"), SHAPE)
    smaller = V2Chain.from_zarray(config, None, np.dtype("<u2"), (6, 5, 2))
    with pytest.raises(CorruptChunkError) as caught:
        chain.decode(smaller.encode(np.ones((6, 5, 2), "<u2")), "0.0.1")
    assert caught.value.key == "0.0.1"
    good = chain.encode(random_chunk(np.dtype("<u2"), 1))
    with pytest.raises(CorruptChunkError):
        chain.decode(good[: len(good) // 2], "0.0.1")


def test_wrong_size_without_compressor_is_corrupt() -> None:
    chain = V2Chain.from_zarray(None, [{"id": "shuffle", "elementsize": 2}], "<u2", SHAPE)
    with pytest.raises(CorruptChunkError, match="expected 180"):
        chain.decode(bytes(178), "k")
