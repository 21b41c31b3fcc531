"""A missing chunk costs one backend lookup: stores that keep a transfer encoding in the name
(``KEY.gz``: file, zip, LMDB, fsspec) look under the one name a format's writers use when the
reader says which (``encoding=``), and ``read_into`` reports a missing plain value itself.

The lookups are counted where they happen: file opens and stats (an audit hook and ``os.stat``),
zip directory and LMDB lookups, fsspec calls, and requests seen by a proxy for S3 and GCS.
"""

from __future__ import annotations

import gzip
import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import bigarrays as ba
from bigarrays.stores import FileStore, open_store
from bigarrays.stores.base import NOT_FOUND, Store
from network_servers import FaultProxy

SHAPE, CHUNKS = (128, 64, 64), (64, 64, 64)

_FILE_OPS: dict[str, Any] = {"on": False, "root": "", "ops": []}


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _FILE_OPS["on"] and event == "open" and str(args[0]).startswith(_FILE_OPS["root"]):
        _FILE_OPS["ops"].append(("open", str(args[0])))


sys.addaudithook(_audit)


@contextmanager
def file_lookups(root: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, str]]]:
    """Every open and stat of a path under ``root`` while the block runs."""
    real_stat = os.stat

    def stat(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        if _FILE_OPS["on"] and str(path).startswith(_FILE_OPS["root"]):
            _FILE_OPS["ops"].append(("stat", str(path)))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat)
    ops: list[tuple[str, str]] = []
    _FILE_OPS.update(on=True, root=str(root), ops=ops)
    try:
        yield ops
    finally:
        _FILE_OPS["on"] = False
        monkeypatch.setattr(os, "stat", real_stat)


def half_written(store: Store | str, **options: Any) -> Any:
    """A volume whose first chunk is written and whose second (x 64-128) is not."""
    vol = ba.create(store, shape=SHAPE, dtype="uint8", chunks=CHUNKS, **options)
    vol[0:64, 0:64, 0:64] = 1
    return vol


# -- the file store ------------------------------------------------------------------------------


def test_file_get_with_a_known_encoding_is_one_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileStore(tmp_path)
    store.put("a/present", b"x")
    with file_lookups(tmp_path, monkeypatch) as ops:
        assert store.get("a/missing", encoding=None) is None
    assert len(ops) == 1, ops
    with file_lookups(tmp_path, monkeypatch) as ops:
        assert store.get_encoded("a/missing", encoding="gzip") is None
    assert [op for op, _ in ops] == ["open"]
    assert ops[0][1].endswith("a/missing.gz")
    with file_lookups(tmp_path, monkeypatch) as ops:
        assert store.get_with_version("a/missing", encoding=None) == (None, None)
    assert len(ops) == 1, ops
    with file_lookups(tmp_path, monkeypatch) as ops:
        assert store.read_into("a/missing", memoryview(bytearray(8)), encoding=None) == NOT_FOUND
    assert len(ops) == 1, ops
    # A reader that does not know the encoding still finds KEY.gz, at the price of looking.
    with file_lookups(tmp_path, monkeypatch) as ops:
        assert store.get("a/missing") is None
    assert len(ops) == 4, ops


def test_the_encoding_names_the_one_place_to_look(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.put("k", gzip.compress(b"value"), content_encoding="gzip")
    assert store.get("k", encoding="gzip") == b"value"
    assert store.get("k", encoding=None) is None  # a plain-only reader does not look at KEY.gz
    assert store.get("k") == b"value"
    value, version = store.get_with_version("k", encoding="gzip")
    assert (value, version) == (b"value", store.get_with_version("k")[1])
    store.put("p", b"plain")
    assert store.read_into("p", memoryview(bytearray(5)), encoding=None) == 5
    assert store.read_into("k", memoryview(bytearray(5))) is None  # encoded: use get


@pytest.mark.parametrize("fmt", ["zarr", "precomputed-gzip"])
def test_unsharded_read_of_a_missing_chunk_is_one_lookup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    options = {"format": "zarr"} if fmt == "zarr" else {"compression": "gzip"}
    half_written(str(tmp_path / "v"), **options)
    vol = ba.open(str(tmp_path / "v"))
    with file_lookups(tmp_path / "v", monkeypatch) as ops:
        assert not vol[64:128, 0:64, 0:64].any()
    assert len(ops) == 1, ops


def test_partial_write_of_a_missing_zarr_chunk_reads_one_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    half_written(str(tmp_path / "v"), format="zarr")
    vol = ba.open(str(tmp_path / "v"), mode="r+")
    with file_lookups(tmp_path / "v", monkeypatch) as ops:
        vol[70:72, 0:2, 0:2] = 5
    # The read of the merge is one open; what follows is the conditional put under the lock.
    first_lock = next(i for i, (_, path) in enumerate(ops) if "bigarrays-tmp-lock" in path)
    read = [(op, path) for op, path in ops[:first_lock] if "/c/1/0/0" in path]
    assert len(read) == 1, ops
    assert read[0][0] == "open"
    assert vol[70:72, 0:2, 0:2].tolist() == np.full((2, 2, 2), 5).tolist()


# -- single-file stores and fsspec: lookups by name ------------------------------------------------


class CountingDict(dict):  # type: ignore[type-arg]
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.lookups = 0

    def get(self, key: Any, default: Any = None) -> Any:
        self.lookups += 1
        return super().get(key, default)


def test_zip_missing_chunk_is_one_directory_lookup(tmp_path: Path) -> None:
    store = open_store(f"zip://{tmp_path}/v.zip")
    half_written(store, format="zarr")
    archive = store._usable()  # type: ignore[attr-defined]
    archive.entries = entries = CountingDict(archive.entries)
    vol = ba.open(store)
    entries.lookups = 0
    assert not vol[64:128, 0:64, 0:64].any()
    assert entries.lookups == 1
    entries.lookups = 0
    assert store.get("zarr.json.missing", encoding=None) is None
    assert entries.lookups == 1


def test_lmdb_missing_chunk_is_one_lookup(tmp_path: Path) -> None:
    store = open_store(f"lmdb://{tmp_path}/v.lmdb")
    half_written(store, format="zarr")
    gets = [0]
    db = store._usable()  # type: ignore[attr-defined]
    read = db.read

    class Txn:
        def __init__(self, txn: Any) -> None:
            self.txn = txn

        def get(self, key: bytes, *args: Any) -> Any:
            gets[0] += 1
            return self.txn.get(key, *args)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.txn, name)

    db.read = lambda fn, default: read(lambda txn: fn(Txn(txn)), default)
    vol = ba.open(store)
    gets[0] = 0
    assert not vol[64:128, 0:64, 0:64].any()
    assert gets[0] == 1


def test_fsspec_missing_chunk_is_one_call() -> None:
    url = f"fsspec+memory://lookups-{uuid.uuid4().hex}"
    half_written(url, format="zarr")
    store = open_store(url)
    calls: list[str] = []
    for name in ("cat_file", "cat_ranges", "isfile", "info", "exists"):
        method = getattr(store.fs, name)  # type: ignore[attr-defined]

        def counted(*args: Any, _method: Any = method, _name: str = name, **kw: Any) -> Any:
            calls.append(_name)
            return _method(*args, **kw)

        setattr(store.fs, name, counted)  # type: ignore[attr-defined]
    try:
        vol = ba.open(store)
        calls.clear()
        assert not vol[64:128, 0:64, 0:64].any()
        assert calls == ["cat_file"]
    finally:
        for name in ("cat_file", "cat_ranges", "isfile", "info", "exists"):
            delattr(store.fs, name)  # type: ignore[attr-defined]


# -- object stores: requests ---------------------------------------------------------------------


def test_s3_missing_chunk_is_one_request(s3_bucket: str, moto_endpoint: str) -> None:
    with FaultProxy(moto_endpoint) as proxy:
        store = open_store(f"s3://{s3_bucket}/v", endpoint=proxy.endpoint)
        half_written(store, format="zarr")
        vol = ba.open(store)
        assert store.get("never-written") is None  # the one look at the bucket is made
        before = proxy.faults.requests
        assert not vol[64:128, 0:64, 0:64].any()
        assert store.get("never-written", encoding=None) is None
        assert proxy.faults.requests - before == 2


def test_gcs_missing_chunk_is_one_request(
    gcs_bucket: str, gcs_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FaultProxy(gcs_endpoint) as proxy:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.endpoint)
        store = open_store(f"gs://{gcs_bucket}/v")
        half_written(store, format="zarr")
        vol = ba.open(store)
        assert store.get("never-written") is None  # the one look at the bucket is made
        before = proxy.faults.requests
        assert not vol[64:128, 0:64, 0:64].any()
        assert proxy.faults.requests - before == 1
