"""Zarr v3 and v2 arrays and OME-Zarr images through ``ba.open`` / ``ba.create``, against
zarr-python, TensorStore, ome-zarr-models and ome-zarr-py as oracles and a NumPy model."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorstore as ts
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bigarrays as ba
from bigarrays.errors import OutOfBoundsError, ScaleNotFoundError

DTYPES = ["uint8", "int16", "uint32", "int64", "float32", "float64", "bool", "complex64"]


@st.composite
def geometries(draw: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
    ndim = draw(st.integers(1, 4))
    shape = tuple(draw(st.integers(1, 24)) for _ in range(ndim))
    chunks = tuple(draw(st.integers(1, max(1, n))) for n in shape)
    return shape, chunks


def _random(shape: tuple[int, ...], dtype: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        return rng.integers(0, 2, shape).astype(bool)
    if dtype.startswith("complex"):
        return (rng.random(shape) + 1j * rng.random(shape)).astype(dtype)
    if dtype.startswith("float"):
        return rng.random(shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(max(info.min, -1000), min(info.max, 1000), shape).astype(dtype)


def _box(draw: Any, shape: tuple[int, ...]) -> tuple[slice, ...]:
    out = []
    for n in shape:
        a = draw(st.integers(0, n - 1))
        out.append(slice(a, draw(st.integers(a + 1, n))))
    return tuple(out)


SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(geometry=geometries(), dtype=st.sampled_from(DTYPES), data=st.data(),
       compression=st.sampled_from([None, "zstd", "gzip", "blosc"]),
       version=st.sampled_from(["zarr", "zarr2"]))  # fmt: skip
def test_our_writes_read_by_zarr_python_and_tensorstore(
    tmp_path_factory: pytest.TempPathFactory, geometry: Any, dtype: str, data: Any,
    compression: str | None, version: str,
) -> None:  # fmt: skip
    shape, chunks = geometry
    path = tmp_path_factory.mktemp("z") / "a.zarr"
    fill = data.draw(st.sampled_from([0, 1])) if dtype != "bool" else False
    vol = ba.create(path, shape=shape, chunks=chunks, dtype=dtype, format=version,
                    compression=compression, fill_value=fill, progress=False)  # fmt: skip
    model = np.full(shape, fill, dtype=dtype)
    for seed in range(3):  # unaligned writes over one another
        box = _box(data.draw, shape)
        block = _random(model[box].shape, dtype, seed)
        vol[box] = block
        model[box] = block
    np.testing.assert_array_equal(vol[...], model)
    assert vol.dims == tuple(f"dim_{i}" for i in range(len(shape)))
    np.testing.assert_array_equal(zarr.open_array(str(path), mode="r")[...], model)
    driver = "zarr3" if version == "zarr" else "zarr"
    store = ts.open({"driver": driver, "kvstore": {"driver": "file", "path": str(path)}}).result()
    np.testing.assert_array_equal(store.read().result(), model)
    vol.close()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"zarr_format": 3, "compressors": None},
        {"zarr_format": 3, "compressors": {"name": "gzip", "configuration": {"level": 1}}},
        {"zarr_format": 3, "serializer": {"name": "bytes", "configuration": {"endian": "big"}},
         "compressors": [{"name": "zstd", "configuration": {"level": 1, "checksum": True}},
                         {"name": "crc32c"}],
         "filters": [{"name": "transpose", "configuration": {"order": [2, 0, 1]}}]},
        {"zarr_format": 3, "chunk_key_encoding": {"name": "default", "separator": "."}},
        {"zarr_format": 3, "chunk_key_encoding": {"name": "v2", "separator": "/"}},
        {"zarr_format": 2, "order": "F"},
        {"zarr_format": 2, "chunk_key_encoding": {"name": "v2", "separator": "/"}},
    ],
    ids=["v3-raw", "v3-gzip", "v3-transpose-big-endian-crc32c", "v3-dot-keys", "v3-v2-keys",
         "v2-F-order", "v2-slash-keys"],
)  # fmt: skip
def test_we_read_and_merge_into_what_zarr_python_writes(tmp_path: Path, kwargs: dict) -> None:
    data = _random((21, 13, 9), "uint16", 0)
    path = str(tmp_path / "z.zarr")
    z = zarr.create_array(path, shape=data.shape, chunks=(8, 5, 4), dtype="uint16",
                          fill_value=3, **kwargs)  # fmt: skip
    z[:15] = data[:15]
    expected = data.copy()
    expected[15:] = 3
    with ba.open(path, mode="r+") as vol:
        np.testing.assert_array_equal(vol[...], expected)
        assert vol.fill_value == 3
        vol[2:19, 1:12, 3:8] = 7  # partial chunks: merges
        expected[2:19, 1:12, 3:8] = 7
    np.testing.assert_array_equal(zarr.open_array(path, mode="r")[...], expected)


def test_indices_are_absolute_from_zero_and_drop_axes(tmp_path: Path) -> None:
    vol = ba.create(tmp_path / "i.zarr", shape=(4, 10, 12), chunks=(1, 4, 5), dtype="int16",
                    dims=("c", "y", "x"), fill_value=-1)  # fmt: skip
    data = _random((4, 10, 12), "int16", 1)
    vol[...] = data
    assert vol.dims == ("c", "y", "x")
    assert vol.bounds == ba.Box((0, 0, 0), (4, 10, 12))
    np.testing.assert_array_equal(vol[2], data[2])
    np.testing.assert_array_equal(vol[..., 3], data[..., 3])
    np.testing.assert_array_equal(vol[1, 2:5, :], data[1, 2:5, :])
    outside = vol[-2:1, 8:12, 0:1]  # reads beyond the array are the fill value
    assert (outside[:2] == -1).all()
    assert (outside[2:, 2:] == -1).all()
    np.testing.assert_array_equal(outside[2, :2, 0], data[0, 8:10, 0])
    with pytest.raises(OutOfBoundsError):
        vol[3:5, 0, 0] = 1
    with pytest.raises(ScaleNotFoundError):
        vol.at_mip(1)


STORE_URLS = {
    "memory": lambda tmp, request: f"memory://zarr-{uuid.uuid4().hex}",
    "zip": lambda tmp, request: str(tmp / "vol.zip"),
    "lmdb": lambda tmp, request: f"lmdb://{tmp / 'vol.lmdb'}",
    "s3": lambda tmp, request: f"s3://{request.getfixturevalue('s3_bucket')}/z",
    "gcs": lambda tmp, request: f"gs://{request.getfixturevalue('gcs_bucket')}/z",
}


@pytest.mark.parametrize("store", STORE_URLS)
@pytest.mark.parametrize("version", ["zarr", "zarr2"])
def test_every_store_holds_zarr(tmp_path: Path, request: Any, store: str, version: str) -> None:
    url = STORE_URLS[store](tmp_path, request)
    data = _random((30, 20), "float32", 2)
    with ba.create(url, shape=(30, 20), chunks=(8, 8), dtype="float32", format=version,
                   compression="zstd", threads=8) as vol:  # fmt: skip
        vol[...] = data
        # Threads writing parts of shared chunks: conditional merges lose nothing.
        rows = [(a, a + 3) for a in range(0, 30, 3)]

        def write(ab: tuple[int, int]) -> None:
            vol[ab[0] : ab[1], 3:17] = ab[0]

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(write, rows))
        for a, b in rows:
            data[a:b, 3:17] = a
    with ba.open(url) as back:
        assert back.format == version
        np.testing.assert_array_equal(back[...], data)


def test_ome_zarr_image_is_valid_ngff_and_reopens(tmp_path: Path) -> None:
    from ome_zarr_models.v05.image import Image

    path = tmp_path / "img.ome.zarr"
    with ba.create(path, shape=(2, 8, 16, 16), dims=("c", "z", "y", "x"), dtype="uint16",
                   resolution=(40, 8, 8)) as vol:  # fmt: skip
        vol[:, 2:6, 3:13, 5:9] = 11
        assert vol.resolution == (1.0, 40.0, 8.0, 8.0)
    Image.from_zarr(zarr.open_group(str(path), mode="r"))  # validates the whole image
    with ba.open(path) as back:
        assert back.dims == ("c", "z", "y", "x")
        assert back.mips == 1
        assert int(back[1].sum()) == 11 * 4 * 10 * 4


@pytest.mark.filterwarnings("ignore:Call to deprecated class Scaler:DeprecationWarning")
def test_ome_zarr_pyramid_written_by_ome_zarr_py_opens_with_its_levels(tmp_path: Path) -> None:
    from ome_zarr.io import parse_url
    from ome_zarr.writer import write_image

    data = _random((1, 16, 64, 64), "uint8", 3)
    root = zarr.open_group(parse_url(str(tmp_path / "py.ome.zarr"), mode="w").store, mode="w")
    write_image(data, root, axes="czyx")
    vol = ba.open(tmp_path / "py.ome.zarr")
    assert vol.dims == ("c", "z", "y", "x")
    assert vol.mips >= 2
    np.testing.assert_array_equal(vol[...], data)
    coarse = vol.at_mip(1)
    assert coarse.shape[2] == 32
    assert coarse.resolution[2] == 2 * vol.resolution[2]


def test_raw_chunks_of_a_local_array_are_read_into_the_buffer(tmp_path: Path) -> None:
    data = _random((40, 30, 20), "uint16", 4)
    with ba.create(tmp_path / "raw.zarr", shape=data.shape, chunks=(16, 16, 8),
                   dtype="uint16") as vol:  # fmt: skip
        vol[...] = data
    raw = ba.open(tmp_path / "raw.zarr")
    assert raw.level.source.fast_raw
    assert raw.level.source.inline_chunks > 1
    # Rows 3-9 of the first axis only, from chunks that are whole and from edge chunks.
    np.testing.assert_array_equal(raw[3:9, 5:29, 1:19], data[3:9, 5:29, 1:19])
    np.testing.assert_array_equal(raw[33:40, :, :], data[33:40])
    big = str(tmp_path / "big.zarr")
    z = zarr.create_array(big, shape=data.shape, chunks=(16, 16, 8), dtype="uint16",
                          serializer={"name": "bytes", "configuration": {"endian": "big"}},
                          compressors=None)  # fmt: skip
    z[...] = data
    other = ba.open(big)
    assert not other.level.source.fast_raw  # stored bytes are not this machine's order
    np.testing.assert_array_equal(other[3:9, 5:29, 1:19], data[3:9, 5:29, 1:19])


@pytest.mark.parametrize("fmt", ["zarr", "zarr2"])
def test_a_zero_dimensional_array_round_trips(tmp_path, fmt) -> None:
    import zarr

    url = tmp_path / "scalar.zarr"
    vol = ba.create(url, shape=(), dtype="float32", chunks=(), format=fmt)
    vol[()] = 3.5
    assert vol[()] == np.float32(3.5)
    assert vol[...].shape == ()
    assert ba.open(url)[()] == np.float32(3.5)
    assert zarr.open_array(str(url), mode="r")[()] == np.float32(3.5)


@pytest.mark.parametrize(
    ("shape", "chunks", "dtype", "fill"),
    [
        ((10, 7, 5), (4, 4, 4), "uint8", 3),  # edge chunks on every axis
        ((9, 9), (4, 4), "float32", float("nan")),
        ((6,), (6,), "int64", -1),
        ((), (), "uint16", 5),  # 0-d
    ],
)
def test_raw_chunks_from_the_scratch_buffer_match_zarr_pythons_bytes(
    tmp_path: Path, shape: tuple[int, ...], chunks: tuple[int, ...], dtype: str, fill: Any
) -> None:
    """Whole raw chunks go to a local folder from the engine's scratch buffer (edge chunks
    padded there with the fill value): the files are zarr-python's, byte for byte."""
    data = _random(shape, dtype, 1)
    ours = ba.create(tmp_path / "ours.zarr", shape=shape, dtype=dtype, chunks=chunks or None,
                     format="zarr", fill_value=fill, progress=False)  # fmt: skip
    assert ours.level.source.fast_raw
    put, kinds = ours.store.put, set()

    def spy(key: str, value: Any, **options: Any) -> Any:
        kinds.add(type(value))
        return put(key, value, **options)

    ours.store.put = spy  # type: ignore[method-assign]
    ours[...] = data
    assert kinds == {memoryview}  # every chunk went out of the scratch buffer
    theirs = zarr.create_array(
        store=str(tmp_path / "theirs.zarr"), shape=shape, dtype=dtype, fill_value=fill,
        chunks=chunks if shape else "auto", compressors=None, filters=None,
        config={"write_empty_chunks": True},
    )  # fmt: skip
    theirs[...] = data

    def files(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in (root / "c").rglob("*")
                if p.is_file()}  # fmt: skip

    assert files(tmp_path / "ours.zarr") == files(tmp_path / "theirs.zarr")
