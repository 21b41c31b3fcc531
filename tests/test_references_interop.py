"""Interop: fsspec's ReferenceFileSystem with zarr-python reads the references bigarrays writes
(HDF5 values equal to h5py's), and bigarrays reads the references kerchunk makes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fsspec
import h5py
import numpy as np
import pytest
import tifffile
import zarr
from fsspec.implementations.reference import LazyReferenceMapper

import bigarrays as ba
from bigarrays.refs import index, write_references

RNG = np.random.default_rng(5)


def _hdf5(path: Path) -> None:
    with h5py.File(path, "w") as f:
        f.create_dataset("checked", data=RNG.integers(0, 9999, (45, 33)).astype("i4"),
                         chunks=(10, 8), compression="gzip", shuffle=True,
                         fletcher32=True)  # fmt: skip
        f.create_dataset("gz", data=RNG.random((19, 7, 5)).astype(">f8"), chunks=(4, 4, 2),
                         compression="gzip", shuffle=True)  # fmt: skip
        f.create_dataset("plain", data=RNG.integers(0, 255, (40, 6)).astype("u1"))


def _zarr_group(fo: Any) -> Any:
    fs = fsspec.filesystem("reference", fo=fo, asynchronous=True, remote_protocol="file")
    return zarr.open_group(zarr.storage.FsspecStore(fs, read_only=True), mode="r", zarr_format=2)


@pytest.mark.parametrize("out", ["v1.json", "v0.json", "refs.parquet"])
def test_fsspec_and_zarr_read_our_hdf5_references(tmp_path: Path, out: str) -> None:
    _hdf5(tmp_path / "a.h5")
    refs = index(str(tmp_path / "a.h5"))
    write_references(refs, str(tmp_path / out), version=0 if out == "v0.json" else 1)
    fo: Any = str(tmp_path / out)
    if out.endswith(".parquet"):
        fo = LazyReferenceMapper(fo, fs=fsspec.filesystem("file"), engine="pyarrow")
    group = _zarr_group(fo)
    with h5py.File(tmp_path / "a.h5") as f:
        for name in ("checked", "gz", "plain"):
            np.testing.assert_array_equal(group[name][...], f[name][()], err_msg=name)


def test_fsspec_and_zarr_read_our_tiff_references(tmp_path: Path) -> None:
    data = RNG.integers(0, 60000, (3, 37, 50)).astype("u2")
    tifffile.imwrite(tmp_path / "a.tif", data, rowsperstrip=7, compression="zlib",
                     photometric="minisblack")  # fmt: skip
    write_references(index(str(tmp_path / "a.tif")), str(tmp_path / "refs.json"))
    fs = fsspec.filesystem("reference", fo=str(tmp_path / "refs.json"), asynchronous=True)
    array = zarr.open_array(zarr.storage.FsspecStore(fs, read_only=True), mode="r",
                            zarr_format=2)  # fmt: skip
    np.testing.assert_array_equal(array[...], data)


def test_bigarrays_reads_kerchunk_hdf5_references(tmp_path: Path) -> None:
    from kerchunk.hdf import SingleHdf5ToZarr

    _hdf5(tmp_path / "a.h5")
    with h5py.File(tmp_path / "a.h5", "a") as f:
        del f["checked"]  # kerchunk does not take fletcher32
    refs = SingleHdf5ToZarr(str(tmp_path / "a.h5"), inline_threshold=100).translate()
    (tmp_path / "k.json").write_text(json.dumps(refs))
    with h5py.File(tmp_path / "a.h5") as f:
        for name in ("gz", "plain"):
            vol = ba.open(f"reference://{tmp_path / 'k.json'}#{name}")
            got = vol[tuple(slice(None) for _ in vol.shape)]
            np.testing.assert_array_equal(got, f[name][()], err_msg=name)


def test_bigarrays_reads_kerchunk_tiff_references(tmp_path: Path) -> None:
    from kerchunk.tiff import tiff_to_zarr

    data = RNG.integers(0, 60000, (3, 64, 48)).astype("u2")
    # No shaped-description metadata: kerchunk 0.2 cannot turn tifffile's into attributes.
    tifffile.imwrite(tmp_path / "a.tif", data, tile=(16, 16), photometric="minisblack",
                     metadata=None)  # fmt: skip
    (tmp_path / "k.json").write_text(json.dumps(tiff_to_zarr(str(tmp_path / "a.tif"))))
    vol = ba.open(f"reference://{tmp_path / 'k.json'}")
    np.testing.assert_array_equal(vol[:, :, :], data)
