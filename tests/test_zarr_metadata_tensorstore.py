"""Zarr metadata against TensorStore's ``zarr3`` and ``zarr`` (v2) drivers: we parse what they
create, with the values they were asked for and the chunk keys they write, and they open what
we write with the same dtype, shape, chunks and fill value, bit for bit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bigarrays.formats.zarr import ArrayMetadataV2, ArrayMetadataV3, ChunkKeyEncoding, decode_fill

ts = pytest.importorskip("tensorstore")

V3_FILLS = [
    ("float32", "NaN"), ("float32", "0x7fc00001"), ("float32", -0.0), ("float16", "Infinity"),
    ("float64", "-Infinity"), ("float64", 1e300), ("complex64", ["NaN", "0x7fc00001"]),
    ("complex128", [-0.0, "Infinity"]), ("bool", True), ("uint64", 2**64 - 1),
    ("int64", -(2**63)), ("int8", -5), ("uint16", 7),
]  # fmt: skip
V2_FILLS = [
    ("<f4", "NaN"), (">f8", -0.0), ("<f2", "-Infinity"), ("<c8", ["NaN", 1.0]), ("|b1", True),
    (">u8", 2**64 - 1), ("<i2", -3), ("<f4", None),
]  # fmt: skip
GRID = {"name": "regular", "configuration": {"chunk_shape": [2, 2]}}


def files(path: Path) -> set[str]:
    return {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()}


def _open(spec: dict[str, Any], path: Path, **options: Any) -> Any:
    return ts.open({**spec, "kvstore": {"driver": "file", "path": str(path)}}, **options).result()


def _other_value(array: Any) -> np.ndarray:
    """A 2 x 2 block of a value that is not the fill value, so that the chunk is stored."""
    dtype = array.dtype.numpy_dtype
    fill = np.asarray(array.fill_value)
    candidates = (np.frombuffer(bytes([b]) * dtype.itemsize, dtype)[0] for b in (1, 0))
    return np.full((2, 2), next(v for v in candidates if not np.all(v == fill)))


@pytest.mark.parametrize(("dtype", "fill"), V3_FILLS)
@pytest.mark.parametrize("encoding", [ChunkKeyEncoding(n, s) for n in ("default", "v2")
                                      for s in ("/", ".")])  # fmt: skip
def test_we_read_what_tensorstore_zarr3_writes(
    tmp_path: Path, dtype: str, fill: Any, encoding: ChunkKeyEncoding
) -> None:
    metadata = {"shape": [5, 3], "data_type": dtype, "fill_value": fill, "chunk_grid": GRID,
                "chunk_key_encoding": encoding.to_json(), "dimension_names": ["y", None],
                "attributes": {"a": [1, {"b": None}]}}  # fmt: skip
    array = _open({"driver": "zarr3", "metadata": metadata}, tmp_path, create=True)
    array[2:4, 0:2].write(_other_value(array)).result()

    meta = ArrayMetadataV3.from_json((tmp_path / "zarr.json").read_bytes())
    assert (meta.shape, meta.chunk_shape, meta.data_type) == ((5, 3), (2, 2), np.dtype(dtype))
    assert meta.chunk_key_encoding == encoding
    assert meta.dimension_names == ("y", None)
    assert meta.attributes == {"a": [1, {"b": None}]}
    expected = decode_fill(fill, np.dtype(dtype))
    assert np.array(meta.fill_value).tobytes() == np.array(expected).tobytes()
    assert np.array(meta.fill_value).tobytes() == np.asarray(array.fill_value).tobytes()
    assert meta.to_json()["fill_value"] == json.loads(json.dumps(fill))
    assert files(tmp_path) == {"zarr.json", meta.chunk_key((1, 0))}


@pytest.mark.parametrize(("dtype", "fill"), V3_FILLS)
def test_tensorstore_zarr3_opens_what_we_write(tmp_path: Path, dtype: str, fill: Any) -> None:
    meta = ArrayMetadataV3(shape=(5, 3), data_type=np.dtype(dtype), chunk_shape=(2, 2),
                           fill_value=decode_fill(fill, np.dtype(dtype)),
                           codecs=({"name": "bytes", "configuration": {"endian": "big"}},),
                           chunk_key_encoding=ChunkKeyEncoding("default", "."),
                           dimension_names=("z", "x"))  # fmt: skip
    (tmp_path / "zarr.json").write_bytes(meta.to_bytes())
    array = _open({"driver": "zarr3"}, tmp_path)
    assert array.dtype.numpy_dtype == meta.data_type
    assert array.shape == meta.shape
    assert array.domain.labels == ("z", "x")
    assert np.asarray(array.fill_value).tobytes() == np.array(meta.fill_value).tobytes()
    assert array.chunk_layout.read_chunk.shape == meta.chunk_shape
    array[4:5, 2:3].write(_other_value(array)[:1, :1]).result()
    assert files(tmp_path) == {"zarr.json", meta.chunk_key((2, 1))}


@pytest.mark.parametrize(("dtype", "fill"), V2_FILLS)
@pytest.mark.parametrize(("order", "separator"), [("C", "."), ("F", "/")])
def test_we_read_what_tensorstore_zarr2_writes(
    tmp_path: Path, dtype: str, fill: Any, order: str, separator: str
) -> None:
    metadata = {"shape": [5, 3], "chunks": [2, 2], "dtype": dtype, "fill_value": fill,
                "order": order, "dimension_separator": separator,
                "compressor": {"id": "zstd", "level": 1}}  # fmt: skip
    array = _open({"driver": "zarr", "metadata": metadata}, tmp_path, create=True)
    array[2:4, 0:2].write(_other_value(array)).result()

    meta = ArrayMetadataV2.from_json((tmp_path / ".zarray").read_bytes())
    assert (meta.shape, meta.chunks, meta.dtype) == ((5, 3), (2, 2), np.dtype(dtype))
    assert (meta.order, meta.dimension_separator) == (order, separator)
    assert meta.compressor == {"id": "zstd", "level": 1}
    if fill is None:
        assert meta.fill_value is None
    else:
        expected = decode_fill(fill, np.dtype(dtype), version=2)
        assert np.array(meta.fill_value).tobytes() == np.array(expected).tobytes()
        assert meta.to_json()["fill_value"] == json.loads(json.dumps(fill))
    assert files(tmp_path) == {".zarray", meta.chunk_key((1, 0))}


@pytest.mark.parametrize(("dtype", "fill"), V2_FILLS)
def test_tensorstore_zarr2_opens_what_we_write(tmp_path: Path, dtype: str, fill: Any) -> None:
    np_dtype = np.dtype(dtype)
    value = None if fill is None else decode_fill(fill, np_dtype, version=2)
    meta = ArrayMetadataV2(shape=(5, 3), chunks=(2, 2), dtype=np_dtype, fill_value=value,
                           order="F", dimension_separator="/")  # fmt: skip
    (tmp_path / ".zarray").write_bytes(meta.to_bytes())
    array = _open({"driver": "zarr"}, tmp_path)
    assert array.dtype.numpy_dtype == np_dtype.newbyteorder("=")
    assert array.shape == meta.shape
    if meta.fill_value is None:  # no fill value: missing chunks read as zeros, as ours
        assert array.fill_value is None
        missing = array[0:1, 0:1].read().result()
        assert missing.tobytes() == np.array(meta.effective_fill_value).tobytes()
    else:
        assert np.asarray(array.fill_value).tobytes() == np.array(meta.fill_value).tobytes()
    array[4:5, 2:3].write(_other_value(array)[:1, :1]).result()
    assert files(tmp_path) == {".zarray", meta.chunk_key((2, 1))}


def test_tensorstore_reads_our_bytes_fill_values(tmp_path: Path) -> None:
    # zarr-python writes b"ab" in |S4 as "YWI=" (trailing NULs dropped); TensorStore refuses
    # that form and wants every byte of the item, which zarr-python reads as well.
    np_dtype = np.dtype("|S4")
    meta = ArrayMetadataV2(shape=(3,), chunks=(2,), dtype=np_dtype,
                           fill_value=decode_fill("YWI=", np_dtype, version=2))  # fmt: skip
    assert meta.to_json()["fill_value"] == "YWIAAA=="
    (tmp_path / ".zarray").write_bytes(meta.to_bytes())
    array = _open({"driver": "zarr"}, tmp_path)  # its Python binding reads no |S data back
    assert array.spec().to_json()["metadata"]["fill_value"] == "YWIAAA=="
    short = dict(meta.to_json(), fill_value="YWI=")
    (tmp_path / ".zarray").write_bytes(json.dumps(short).encode())
    with pytest.raises(ValueError, match="4 base64-encoded bytes"):
        _open({"driver": "zarr"}, tmp_path)
