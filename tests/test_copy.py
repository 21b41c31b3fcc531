"""``bigarrays cp``: a dataset copied between every pair of backends, as stored (gzip as gzip)."""

from __future__ import annotations

import gzip
import itertools
import json
import os
import shutil
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import bigarrays as ba
from bigarrays.copy import copy_dataset
from bigarrays.errors import (
    BigArraysWarning,
    DatasetExistsError,
    DatasetNotFoundError,
    UnsupportedError,
)
from bigarrays.stores import Store, open_store
from bigarrays.stores.memory import drop_namespace
from bigarrays.testing.counting import CountingStore

SHAPE = (40, 36, 20)
EXTRA = {
    "mesh/info": (b'{"@type": "neuroglancer_legacy_mesh"}', None),
    "mesh/7:0": (b"fragment bytes", None),
    "segment_properties/info": (gzip.compress(b'{"inline": {}}'), "gzip"),
}


@pytest.fixture
def make_url(tmp_path: Path) -> Iterator[Callable[[str, str], str]]:
    """``make_url(kind, name)``: a fresh URL on the backend ``kind``."""
    namespaces: list[str] = []

    def make(kind: str, name: str) -> str:
        unique = f"{name}-{uuid.uuid4().hex[:8]}"
        if kind == "file":
            return str(tmp_path / unique)
        if kind == "zip":
            return str(tmp_path / f"{unique}.zip")
        if kind == "lmdb":
            return f"lmdb://{tmp_path}/{unique}.lmdb"
        namespaces.append(unique)
        return f"memory://{unique}" if kind == "memory" else f"fsspec+memory://{unique}"

    yield make
    import fsspec

    for name in namespaces:
        drop_namespace(name)
        if fsspec.filesystem("memory").exists(f"/{name}"):
            fsspec.filesystem("memory").rm(f"/{name}", recursive=True)


def make_dataset(url: str) -> np.ndarray:
    data = np.random.default_rng(5).integers(0, 8, SHAPE, dtype=np.uint16)
    with ba.create(url, shape=SHAPE, dtype="uint16", chunks=(16, 16, 8), voxel_offset=(-8, 0, 3),
                   compression="gzip") as vol:  # fmt: skip
        vol[...] = data
        for key, (value, encoding) in EXTRA.items():
            vol.store.put(key, value, content_encoding=encoding)
    return data


def stored(store: Store) -> dict[str, tuple[bytes, str | None] | None]:
    return {key: store.get_encoded(key) for key in store.list()}


KINDS = ["file", "memory", "zip", "lmdb", "fsspec"]


@pytest.mark.parametrize("dst_kind", KINDS)
@pytest.mark.parametrize("src_kind", KINDS)
def test_copy_between_every_pair(
    make_url: Callable[[str, str], str], src_kind: str, dst_kind: str
) -> None:
    src, dst = make_url(src_kind, "src"), make_url(dst_kind, "dst")
    data = make_dataset(src)
    result = copy_dataset(src, dst, progress=False)
    source, target = open_store(src, read_only=True), open_store(dst, read_only=True)
    expected = stored(source)
    assert result.objects == len(expected) == 1 + 3 * 3 * 3 + len(EXTRA)
    # Every object arrives as it was stored: the same bytes under the same encoding.
    assert stored(target) == expected
    assert expected["segment_properties/info"] == EXTRA["segment_properties/info"]
    assert {enc for key, (_, enc) in expected.items() if "/" in key and "-" in key} == {"gzip"}  # type: ignore[misc]
    with ba.open(dst) as vol:
        np.testing.assert_array_equal(vol[...], data)
        assert vol.compression == "gzip"
    source.close()
    target.close()


def test_copy_into_a_zip_closes_it_and_store_objects_stay_open(tmp_path: Path) -> None:
    make_dataset(str(tmp_path / "src"))
    copy_dataset(tmp_path / "src", tmp_path / "out.zip", progress=False)
    with zipfile.ZipFile(tmp_path / "out.zip") as z:  # the central directory is written
        assert z.testzip() is None
        assert "info" in z.namelist()
    target = open_store(tmp_path / "mine.zip")
    copy_dataset(tmp_path / "src", target, progress=False, threads=1)
    target.put("still", b"open")  # a Store passed in is the caller's to close
    target.close()


def test_overwrite_replaces_the_old_dataset(make_url: Callable[[str, str], str]) -> None:
    src, dst = make_url("file", "src"), make_url("zip", "dst")
    data = make_dataset(src)
    with ba.create(dst, shape=(100, 100, 100), chunks=(16, 16, 8)) as old:
        old[80:100, 80:100, 80:100] = 9  # a chunk the new dataset does not have
    with pytest.raises(DatasetExistsError, match="overwrite"):
        copy_dataset(src, dst, progress=False)
    copy_dataset(src, dst, progress=False, overwrite=True)
    back = ba.open(dst)
    assert back.shape == SHAPE
    np.testing.assert_array_equal(back[...], data)
    assert not any(k.startswith("1_1_1/80-96") for k in back.store.list())


def test_bad_requests(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="no precomputed volume"):
        copy_dataset(tmp_path / "none", tmp_path / "dst", progress=False)
    make_dataset(str(tmp_path / "src"))
    with pytest.raises(UnsupportedError, match="onto itself"):
        copy_dataset(tmp_path / "src", (tmp_path / "src").as_uri(), progress=False)
    with pytest.raises(ValueError, match="threads"):
        copy_dataset(tmp_path / "src", tmp_path / "dst", threads=0)


def test_scales_beside_the_dataset_are_left_out(tmp_path: Path) -> None:
    src = tmp_path / "a" / "vol"
    data = make_dataset(str(src))
    info = json.loads((src / "info").read_text())
    key = info["scales"][0]["key"]
    shutil.move(src / key, tmp_path / "a" / "shared")
    info["scales"][0]["key"] = "../shared"
    (src / "info").write_text(json.dumps(info))
    np.testing.assert_array_equal(ba.open(src, allow_parent_keys=True)[...], data)
    with pytest.warns(BigArraysWarning, match="'../shared'.* not copied"):
        copy_dataset(src, tmp_path / "b" / "vol", progress=False)
    assert not (tmp_path / "b" / "shared").exists()
    assert all(p.startswith("vol/") for p in files_under(tmp_path / "b"))


def test_hostile_scale_key_copies_nothing_from_outside(tmp_path: Path) -> None:
    # An extra scale "../../home/.ssh" must not carry files from beside the source to beside
    # the destination.
    home = tmp_path / "home" / ".ssh"
    home.mkdir(parents=True)
    (home / "id_rsa").write_bytes(b"PRIVATE KEY")
    src = tmp_path / "datasets" / "src"
    make_dataset(str(src))
    info = json.loads((src / "info").read_text())
    info["scales"].append({**info["scales"][0], "key": "../../home/.ssh"})
    (src / "info").write_text(json.dumps(info))
    dst = tmp_path / "out" / "datasets" / "dst"
    with pytest.warns(BigArraysWarning, match="home/.ssh"):
        copy_dataset(src, dst, progress=False)
    assert not (tmp_path / "out" / "home").exists()
    assert all(not p.startswith("home") for p in files_under(tmp_path / "out"))
    assert "PRIVATE" not in "".join(
        p.read_text(errors="replace") for p in (tmp_path / "out").rglob("*") if p.is_file()
    )


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_progress_bar_can_be_forced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_dataset(str(tmp_path / "src"))
    result = copy_dataset(tmp_path / "src", tmp_path / "dst", progress=True)
    assert result.objects == 31
    assert result.bytes > 0
    capsys.readouterr()


# -- the console script --------------------------------------------------------------------------


def cp(*args: str) -> subprocess.CompletedProcess[str]:
    beside = Path(sys.executable).with_name("bigarrays")
    script = str(beside) if beside.exists() else shutil.which("bigarrays")
    assert script, "the bigarrays console script is not installed (pip install -e .)"
    return subprocess.run([script, "cp", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "200"}, check=False)  # fmt: skip


def test_console_script_through_every_file_backend(tmp_path: Path) -> None:
    data = make_dataset(str(tmp_path / "src"))
    hops = [str(tmp_path / "src"), str(tmp_path / "packed.zip"), f"lmdb://{tmp_path}/db.lmdb",
            f"fsspec+file://{tmp_path}/fs", (tmp_path / "back").as_uri()]  # fmt: skip
    for src, dst in itertools.pairwise(hops):
        proc = cp(src, dst, "-q")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == proc.stderr == ""  # -q: no progress, nothing at all
    np.testing.assert_array_equal(ba.open(tmp_path / "back")[...], data)
    # gzip stayed gzip all the way round, byte for byte.
    assert stored(open_store(tmp_path / "back")) == stored(open_store(tmp_path / "src"))
    assert any(p.suffix == ".gz" for p in (tmp_path / "back").rglob("*"))


def test_console_script_errors(tmp_path: Path) -> None:
    make_dataset(str(tmp_path / "src"))
    make_dataset(str(tmp_path / "dst.zip"))
    proc = cp(str(tmp_path / "src"), str(tmp_path / "dst.zip"), "-q")
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("bigarrays: error: a dataset already exists")
    assert cp(str(tmp_path / "src"), str(tmp_path / "dst.zip"), "-q", "--overwrite").returncode == 0
    proc = cp(str(tmp_path / "nothing"), str(tmp_path / "x"), "-q")
    assert proc.returncode == 1
    assert "no precomputed volume" in proc.stderr


def test_copy_across_the_cloud_stores(tmp_path: Path, s3_bucket: str, gcs_bucket: str) -> None:
    """A volume goes folder -> S3 -> GCS -> zip -> folder served over HTTP -> folder, exact.

    Chunks are gzip'd: on S3 and GCS that is each object's Content-Encoding, in the folder, the
    zip and on the web server a ``.gz`` name; every hop must keep both the bytes and the
    encoding, so the last folder holds what the first did.
    """
    from network_servers import StaticServer

    first = str(tmp_path / "first")
    data = make_dataset(first)
    hops = [first, f"s3://{s3_bucket}/vol", f"gs://{gcs_bucket}/vol", str(tmp_path / "v.zip")]
    for src, dst in itertools.pairwise(hops):
        copy_dataset(src, dst, progress=False)
        with ba.open(dst) as vol:
            np.testing.assert_array_equal(vol[...], data)
            assert vol.compression == "gzip"
    # Unpack the zip into a folder a web server serves, then copy back from HTTP.
    served = tmp_path / "site"
    copy_dataset(hops[-1], str(served / "vol"), progress=False)
    server = StaticServer(served).start()
    try:
        last = str(tmp_path / "last")
        copy_dataset(f"{server.url}/vol", last, progress=False)
    finally:
        server.stop()
    source, target = open_store(first, read_only=True), open_store(last, read_only=True)
    # HTTP cannot list: the copy takes the keys the info implies (every chunk), so the objects
    # no info names (meshes, segment properties) stay behind.
    expected = {k: v for k, v in stored(source).items() if k not in EXTRA}
    assert stored(target) == expected
    assert len(expected) == 1 + 3 * 3 * 3


def test_copy_a_sharded_volume_from_a_server_that_cannot_list(tmp_path: Path) -> None:
    from network_servers import StaticServer

    data = np.random.default_rng(9).integers(0, 200, (64, 48, 40), dtype=np.uint8)
    with ba.create(tmp_path / "site" / "vol", shape=data.shape, chunks=(16, 16, 16),
                   sharding={"@type": "neuroglancer_uint64_sharded_v1", "preshift_bits": 2,
                             "hash": "identity", "minishard_bits": 1, "shard_bits": 3,
                             "minishard_index_encoding": "raw", "data_encoding": "raw"},
                   ) as vol:  # fmt: skip
        vol[...] = data
    server = StaticServer(tmp_path / "site").start()
    try:
        copy_dataset(f"{server.url}/vol", tmp_path / "copy", progress=False)
    finally:
        server.stop()
    source = open_store(tmp_path / "site" / "vol", read_only=True)
    copied = open_store(tmp_path / "copy", read_only=True)
    assert stored(copied) == stored(source)
    assert sum(k.endswith(".shard") for k in copied.list()) > 1
    with ba.open(tmp_path / "copy") as vol:
        np.testing.assert_array_equal(vol[...], data)


@pytest.mark.parametrize("target", ["folder", "zip", "lmdb"])
def test_cp_copies_a_zarr_image_object_by_object(tmp_path: Path, target: str) -> None:
    src = tmp_path / "img.ome.zarr"
    with ba.create(src, shape=(2, 8, 20, 20), dims=("c", "z", "y", "x"), chunks=(1, 4, 8, 8),
                   resolution=(40, 8, 8), compression="zstd") as vol:  # fmt: skip
        vol[1, 2:7, 3:19, 0:11] = 5
    dst = {"folder": str(tmp_path / "out.ome.zarr"), "zip": str(tmp_path / "out.zip"),
           "lmdb": f"lmdb://{tmp_path / 'out.lmdb'}"}[target]  # fmt: skip
    copy_dataset(str(src), dst, progress=False)
    with ba.open(dst) as back, ba.open(src) as original:
        assert back.format == "zarr"
        assert back.dims == ("c", "z", "y", "x")
        assert back.resolution == original.resolution
        np.testing.assert_array_equal(back[...], original[...])
    with pytest.raises(ba.DatasetExistsError):
        copy_dataset(str(src), dst, progress=False)


def test_cp_writes_zarr_metadata_after_the_chunks(tmp_path: Path) -> None:
    src = tmp_path / "a.zarr"
    ba.create(src, shape=(16, 16), chunks=(8, 8), dtype="uint8")[...] = 1
    order: list[str] = []

    class Recording(CountingStore):
        def _put(self, key: str, value: Any, encoding: str | None) -> None:
            order.append(key)
            super()._put(key, value, encoding)

    copy_dataset(str(src), Recording(open_store(tmp_path / "b.zarr")), progress=False)
    assert order[-1] == "zarr.json"
    assert len(order) == 5  # four chunks, then the metadata
