"""Hypothesis strategies for Zarr metadata: every dtype, fill values down to NaN payloads and -0.0,
both key encodings and separators, attributes and dimension names."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from hypothesis import strategies as st

from bigarrays.formats.zarr import V3_DATA_TYPES, ArrayMetadataV2, ArrayMetadataV3, ChunkKeyEncoding

ENCODINGS = [ChunkKeyEncoding(name, sep) for name in ("default", "v2") for sep in ("/", ".")]
BYTES_CODEC = {"name": "bytes", "configuration": {"endian": "little"}}
V2_TYPESTRS = ["|b1", "|i1", "|u1", *(f"{o}{k}{n}" for o in "<>" for k in "iu" for n in (2, 4, 8)),
               *(f"{o}f{n}" for o in "<>" for n in (2, 4, 8)),
               *(f"{o}c{n}" for o in "<>" for n in (8, 16)), "|S1", "|S5", "|V3"]  # fmt: skip


def bits_of(value: Any, dtype: np.dtype) -> bytes:
    return np.array(value, dtype=dtype).tobytes()


def is_canonical(value: Any, dtype: np.dtype) -> bool:
    """No NaN, or only the NaN NumPy makes of float("nan") (what "NaN" stands for)."""
    if dtype.kind not in "fc":
        return True
    part = np.dtype(f"f{dtype.itemsize // (2 if dtype.kind == 'c' else 1)}")
    parts = np.array([value], dtype=dtype.newbyteorder("=")).view(part)
    return all(not math.isnan(p) or bits_of(p, part) == bits_of(math.nan, part) for p in parts)


def _float(dtype: np.dtype) -> st.SearchStrategy[np.generic]:
    bits = dtype.itemsize * 8
    unsigned = np.dtype(f"u{dtype.itemsize}")
    return st.one_of(
        st.floats(width=bits).map(dtype.type),  # type: ignore[arg-type]
        st.sampled_from([math.nan, -math.nan, math.inf, -math.inf, -0.0, 0.0]).map(dtype.type),
        st.integers(0, 2**bits - 1).map(lambda b: np.array([b], unsigned).view(dtype)[0]),
    )


def fill_values(dtype: np.dtype) -> st.SearchStrategy[np.generic]:
    dtype = dtype.newbyteorder("=")
    if dtype.kind == "b":
        return st.booleans().map(np.bool_)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return st.integers(int(info.min), int(info.max)).map(dtype.type)
    if dtype.kind == "f":
        return _float(dtype)
    if dtype.kind == "c":
        part = np.dtype(f"f{dtype.itemsize // 2}")
        return st.tuples(_float(part), _float(part)).map(
            lambda p: np.array(p, dtype=part).view(dtype)[0]
        )
    return st.binary(min_size=dtype.itemsize, max_size=dtype.itemsize).map(
        lambda b: np.array(b, dtype=dtype)[()]
    )


JSON_SCALARS = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=6)
JSON = st.recursive(
    JSON_SCALARS | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
ATTRIBUTES = st.dictionaries(st.text(max_size=6), JSON, max_size=4)


@st.composite
def grids(draw: st.DrawFn, max_ndim: int = 6) -> tuple[tuple[int, ...], tuple[int, ...]]:
    ndim = draw(st.integers(0, max_ndim))
    extent = 9 if ndim <= 3 else 4
    shape = tuple(draw(st.lists(st.integers(0, extent), min_size=ndim, max_size=ndim)))
    chunks = tuple(draw(st.lists(st.integers(1, 5), min_size=ndim, max_size=ndim)))
    return shape, chunks


@st.composite
def v3_arrays(draw: st.DrawFn) -> ArrayMetadataV3:
    shape, chunks = draw(grids())
    dtype = np.dtype(draw(st.sampled_from(V3_DATA_TYPES)))
    names = st.lists(st.none() | st.text(max_size=4), min_size=len(shape), max_size=len(shape))
    return ArrayMetadataV3(
        shape=shape,
        data_type=dtype,
        chunk_shape=chunks,
        fill_value=draw(fill_values(dtype)),
        codecs=(BYTES_CODEC,),
        chunk_key_encoding=draw(st.sampled_from(ENCODINGS)),
        attributes=draw(ATTRIBUTES),
        dimension_names=draw(st.none() | names.map(tuple)),
    )


@st.composite
def v2_arrays(draw: st.DrawFn) -> ArrayMetadataV2:
    shape, chunks = draw(grids())
    dtype = np.dtype(draw(st.sampled_from(V2_TYPESTRS)))
    return ArrayMetadataV2(
        shape=shape,
        chunks=chunks,
        dtype=dtype,
        fill_value=draw(st.none() | fill_values(dtype)),
        order=draw(st.sampled_from(["C", "F"])),
        compressor=draw(st.sampled_from([None, {"id": "zstd", "level": 1}])),
        filters=None,
        dimension_separator=draw(st.sampled_from(["/", "."])),
    )
