"""Indexers: a dataset in a tar or zip, HDF5 files (alone and inside a tar), TIFFs and folders of
them; every voxel read through the references equals the original reader's."""

from __future__ import annotations

import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import tifffile

import bigarrays as ba
from bigarrays.cli import main
from bigarrays.copy import copy_dataset
from bigarrays.errors import UnsupportedError
from bigarrays.refs import index, index_hdf5, index_tar, index_tiff_folder, write_references
from bigarrays.refs.model import References, Target

RNG = np.random.default_rng(17)


def _open(refs: References, tmp_path: Path, root: str = "", name: str = "refs.json") -> Any:
    write_references(refs, str(tmp_path / name))
    return ba.open(f"reference://{tmp_path / name}" + (f"#{root}" if root else ""))


def _every(vol: Any) -> np.ndarray:
    return np.asarray(vol[tuple(slice(None) for _ in vol.shape)])


def _precomputed(folder: Path) -> np.ndarray:
    data = RNG.integers(0, 65000, (70, 50, 20)).astype("uint16")
    vol = ba.create(str(folder), shape=data.shape, dtype="uint16", chunks=(32, 32, 8))
    vol[:, :, :] = data
    vol[0:32, 0:32, 0:8] = 0  # a chunk of zeros, stored anyway
    data[0:32, 0:32, 0:8] = 0
    return data


def _tar(folder: Path, out: Path, arcname: str) -> None:
    with tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as tar:
        tar.add(folder, arcname=arcname)


# -- tar ---------------------------------------------------------------------------------------


def test_tar_of_a_precomputed_volume(tmp_path: Path) -> None:
    data = _precomputed(tmp_path / "vol")
    _tar(tmp_path / "vol", tmp_path / "vol.tar", "a/deeply/nested/folder/with/a/long/name/vol")
    refs = index(str(tmp_path / "vol.tar"))
    assert not refs.skipped
    assert "info" in refs.refs
    vol = _open(refs, tmp_path)
    assert vol.format == "precomputed"
    np.testing.assert_array_equal(_every(vol), data)
    copied = copy_dataset(f"reference://{tmp_path / 'refs.json'}", str(tmp_path / "copy"))
    assert copied.objects == len(refs.refs)
    np.testing.assert_array_equal(_every(ba.open(str(tmp_path / "copy"))), data)


def test_tar_over_http_reads_headers_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bigarrays.stores.http import HTTPStore
    from network_servers import served_folder

    data = RNG.integers(0, 255, (64, 64, 64)).astype("uint8")
    with served_folder() as (root, server):
        vol = ba.create(str(tmp_path / "z.zarr"), shape=data.shape, dtype="uint8",
                        chunks=(8, 8, 8), dims=("z", "y", "x"))  # fmt: skip
        vol[:, :, :] = data
        (tmp_path / "z.zarr" / "big.bin").write_bytes(RNG.bytes(8 << 20))  # skipped over
        _tar(tmp_path / "z.zarr", root / "z.tar", "z.zarr")
        read: list[int] = []
        original = HTTPStore._get_range

        def counting(self: HTTPStore, key: str, start: int, length: int | None) -> bytes | None:
            got = original(self, key, start, length)
            read.append(len(got or b""))
            return got

        monkeypatch.setattr(HTTPStore, "_get_range", counting)
        refs = index_tar(f"{server.url}/z.tar")
        assert len([k for k in refs.refs if not k.endswith("zarr.json")]) == 512 + 1
        tar_size = (root / "z.tar").stat().st_size
        assert sum(read) < tar_size / 4, (sum(read), tar_size)  # the 8 MiB member is not read
        assert len(read) <= 8
        monkeypatch.setattr(HTTPStore, "_get_range", original)
        np.testing.assert_array_equal(_every(_open(refs, tmp_path)), data)


def test_compressed_tar_is_refused(tmp_path: Path) -> None:
    _precomputed(tmp_path / "vol")
    with tarfile.open(tmp_path / "vol.tar", "w:gz") as tar:
        tar.add(tmp_path / "vol", arcname="vol")
    with pytest.raises(UnsupportedError, match="gzip-compressed"):
        index_tar(str(tmp_path / "vol.tar"))
    with pytest.raises(UnsupportedError, match="compressed tar"):
        index(str(tmp_path / "vol.tar.gz"))


# -- zip ---------------------------------------------------------------------------------------


def test_zip_stored_entries_referenced_deflated_inlined_or_reported(tmp_path: Path) -> None:
    data = _precomputed(tmp_path / "vol")
    with zipfile.ZipFile(tmp_path / "vol.zip", "w") as zf:
        for path in sorted((tmp_path / "vol").rglob("*")):
            if path.is_file():
                how = zipfile.ZIP_DEFLATED if path.name == "info" else zipfile.ZIP_STORED
                zf.write(path, f"top/{path.relative_to(tmp_path / 'vol')}", compress_type=how)
        zf.writestr("top/big.txt", b"x" * 200_000, compress_type=zipfile.ZIP_DEFLATED)
    refs = index(str(tmp_path / "vol.zip"))
    assert isinstance(refs.refs["info"], bytes)  # small and deflated: inline
    assert [name for name, _ in refs.skipped] == ["top/big.txt"]
    assert "stored entries" in refs.skipped[0][1]
    np.testing.assert_array_equal(_every(_open(refs, tmp_path)), data)


# -- HDF5 --------------------------------------------------------------------------------------


def _hdf5(path: Path) -> None:
    with h5py.File(path, "w") as f:
        f.attrs["title"] = "scan"
        d = f.create_dataset("gz", data=RNG.integers(0, 9999, (45, 33)).astype("i4"),
                             chunks=(10, 8), compression="gzip", shuffle=True,
                             fletcher32=True)  # fmt: skip
        d.attrs["unit"] = np.bytes_(b"nm")
        f.create_dataset("group/be", data=RNG.random((9, 7, 5)).astype(">f8"), chunks=(4, 4, 2),
                         compression="gzip")  # fmt: skip
        f.create_dataset("plain", data=RNG.integers(0, 255, (40, 6)).astype("u1"))
        f.create_dataset("compact", data=np.arange(12, dtype="i2").reshape(3, 4),
                         dcpl=_compact())  # fmt: skip
        sparse = f.create_dataset("sparse", shape=(30, 30), chunks=(10, 10), dtype="f4",
                                  fillvalue=np.nan, compression="gzip")  # fmt: skip
        sparse[0:10, 10:20] = 1.5
        f.create_dataset("lzf", data=np.zeros(10, "u1"), compression="lzf")
        f.create_dataset("text", data=np.array([b"a", b"bc"]))


def _compact() -> Any:
    plist = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    plist.set_layout(h5py.h5d.COMPACT)
    return plist


def _check_hdf5(refs: References, tmp_path: Path, path: Path, prefix: str = "") -> None:
    reasons = dict(refs.skipped)
    assert "lzf" in reasons[f"{prefix}lzf"]
    assert "dtype" in reasons[f"{prefix}text"]
    with h5py.File(path) as f:
        for name in ("gz", "group/be", "plain", "compact", "sparse"):
            vol = _open(refs, tmp_path, f"{prefix}{name}")
            np.testing.assert_array_equal(_every(vol), f[name][()], err_msg=name)
    assert b'"title": "scan"' in refs.refs[f"{prefix}.zattrs"]  # type: ignore[operator]


def test_hdf5_datasets_as_zarr_arrays(tmp_path: Path) -> None:
    _hdf5(tmp_path / "a.h5")
    refs = index_hdf5(str(tmp_path / "a.h5"), split_bytes=60)
    assert sorted(
        k for k in refs.refs if k.startswith("plain/") and not k.startswith("plain/.")
    ) == [
        f"plain/{i}.0" for i in range(4)
    ]  # 40 rows of 6 bytes in chunks of 10 rows (the largest divisor of 40 within 60 bytes)
    assert "sparse/1.1" not in refs.refs  # a chunk never written: no reference, the fill value
    _check_hdf5(refs, tmp_path, tmp_path / "a.h5")


def test_hdf5_files_inside_a_tar_over_http(tmp_path: Path) -> None:
    from network_servers import served_folder

    with served_folder() as (root, server):
        _hdf5(tmp_path / "a.h5")
        with tarfile.open(root / "scans.tar", "w") as tar:
            tar.add(tmp_path / "a.h5", arcname="run1/a.h5")
            tar.add(tmp_path / "a.h5", arcname="run2/a.h5")
        refs = index_tar(f"{server.url}/scans.tar")
        assert refs.targets() == {f"{server.url}/scans.tar"}
        _check_hdf5(refs, tmp_path, tmp_path / "a.h5", prefix="run2/a.h5/")


# -- TIFF --------------------------------------------------------------------------------------

TIFFS: dict[str, tuple[Callable[[Path, np.ndarray], None], Callable[[np.ndarray], np.ndarray]]] = {
    "strips": (lambda p, d: tifffile.imwrite(p, d, rowsperstrip=7, photometric="minisblack"),
               lambda d: d),
    "zlib-strips-one-page": (lambda p, d: tifffile.imwrite(p, d[0], rowsperstrip=5,
                                                            compression="zlib"),
                             lambda d: d[0]),
    "zlib-tiles": (lambda p, d: tifffile.imwrite(p, d, tile=(16, 16), compression="zlib",
                                                 photometric="minisblack"),
                   lambda d: d),
    "big-endian": (lambda p, d: tifffile.imwrite(p, d.astype(">u2"), photometric="minisblack"),
                   lambda d: d),
    "rgb": (lambda p, d: tifffile.imwrite(p, np.stack([d[0]] * 3, -1).astype("u1"),
                                          photometric="rgb", rowsperstrip=6),
            lambda d: np.stack([d[0]] * 3, -1).astype("u1")),
}  # fmt: skip


@pytest.mark.parametrize("kind", list(TIFFS))
def test_tiff_pages_and_stacks(tmp_path: Path, kind: str) -> None:
    data = RNG.integers(0, 60000, (3, 37, 50)).astype("u2")
    write, expected = TIFFS[kind]
    write(tmp_path / "a.tif", data)
    refs = index(str(tmp_path / "a.tif"))
    assert not refs.skipped
    np.testing.assert_array_equal(_every(_open(refs, tmp_path)), expected(data))


def test_tiff_that_cannot_be_referenced_is_reported(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "a.tif", np.zeros((8, 8), "u1"), compression="lzw")
    refs = index(str(tmp_path / "a.tif"))
    assert not refs.refs
    assert "LZW" in refs.skipped[0][1]


def test_folder_of_tiffs_is_one_stack(tmp_path: Path) -> None:
    data = RNG.integers(0, 255, (5, 21, 30)).astype("u1")
    (tmp_path / "f").mkdir()
    for i, page in enumerate(data):
        tifffile.imwrite(tmp_path / "f" / f"z{i:04}.tif", page, rowsperstrip=4)
    tifffile.imwrite(tmp_path / "f" / "z9999.tif", data[0, :20])  # another shape: ends the stack
    refs = index_tiff_folder(str(tmp_path / "f"))
    assert refs.skipped[0][0].endswith("z9999.tif")
    np.testing.assert_array_equal(_every(_open(refs, tmp_path)), data)


# -- the command -------------------------------------------------------------------------------


def test_refs_command_and_cp_materialise(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _hdf5(tmp_path / "a.h5")
    for out in ("refs.json", "refs.parquet"):
        assert main(["refs", str(tmp_path / "a.h5"), "-o", str(tmp_path / out)]) == 0
        captured = capsys.readouterr()
        assert "not referenced: lzf" in captured.err
        assert "keys" in captured.out
        dst = tmp_path / f"copy-{out}"
        assert main(["cp", f"reference://{tmp_path / out}#gz", str(dst), "-q"]) == 0
        with h5py.File(tmp_path / "a.h5") as f:
            np.testing.assert_array_equal(_every(ba.open(str(dst))), f["gz"][()])
    assert main(["refs", str(tmp_path / "a.h5"), "-o", str(tmp_path / "r.json"),
                 "--kind", "tiff"]) == 1  # fmt: skip
    assert "not a TIFF" in capsys.readouterr().err


def test_references_name_absolute_targets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _hdf5(tmp_path / "a.h5")
    monkeypatch.chdir(tmp_path)
    refs = index("a.h5")
    assert {t for t in refs.targets()} == {str(tmp_path / "a.h5")}
    assert all(isinstance(v, bytes | Target) for v in refs.refs.values())


def test_tar_on_s3(tmp_path: Path, s3_bucket: str) -> None:
    from bigarrays.stores import open_store

    data = _precomputed(tmp_path / "vol")
    _tar(tmp_path / "vol", tmp_path / "vol.tar", "vol")
    open_store(f"s3://{s3_bucket}/archives").put("vol.tar", (tmp_path / "vol.tar").read_bytes())
    refs = index(f"s3://{s3_bucket}/archives/vol.tar")
    assert refs.targets() == {f"s3://{s3_bucket}/archives/vol.tar"}
    np.testing.assert_array_equal(_every(_open(refs, tmp_path)), data)
