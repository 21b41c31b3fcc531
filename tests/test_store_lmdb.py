"""The LMDB store: conformance, cutout/save, map growth, and several processes at once."""

from __future__ import annotations

import gzip
import hashlib
import multiprocessing
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lmdb
import pytest

import bigarrays as ba
from bigarrays.errors import MissingDependencyError, StoreError, UnsupportedError
from bigarrays.stores import lmdb as lmdb_store
from bigarrays.stores import open_store
from bigarrays.stores.lmdb import LmdbStore
from bigarrays.testing import ArrayConformance, StoreConformance
from bigarrays.testing.conditional import ConditionalWriteConformance

SMALL_MAP = 1 << 20


@pytest.fixture
def small_map(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 1 MiB first map: writes of a few MiB must grow it."""
    monkeypatch.setattr(lmdb_store, "INITIAL_MAP_SIZE", SMALL_MAP)


class TestLmdbStore(StoreConformance):
    @pytest.fixture
    def store(self, tmp_path: Path, small_map: None) -> Iterator[LmdbStore]:
        store = open_store(f"lmdb://{tmp_path}/store.lmdb")
        assert isinstance(store, LmdbStore)
        yield store
        store.close()


class TestLmdbStoreVersions(ConditionalWriteConformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[LmdbStore]:
        store = LmdbStore(tmp_path / "versions.lmdb")
        yield store
        store.close()


class TestLmdbArrays(ArrayConformance):
    @pytest.fixture
    def dataset_url(self, tmp_path: Path) -> str:
        return f"lmdb://{tmp_path}/vol.lmdb"


def test_url_and_files(tmp_path: Path) -> None:
    store = open_store(f"lmdb://{tmp_path}/a.lmdb")
    assert store.url == f"lmdb://{tmp_path}/a.lmdb"
    assert open_store(store.url) == store
    store.put("k", b"v")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.lmdb", "a.lmdb-lock"]
    with pytest.raises(StoreError, match="no host"):
        open_store("lmdb://host/a.lmdb")


def test_the_map_grows_as_needed(tmp_path: Path, small_map: None) -> None:
    store = LmdbStore(tmp_path / "grow.lmdb")
    values = {f"k{i}": os.urandom(256 * 1024) for i in range(40)}  # 10 MiB into a 1 MiB map
    for key, value in values.items():
        store.put(key, value)
    assert store._db.env.info()["map_size"] >= 10 * SMALL_MAP
    assert all(store.get(k) == v for k, v in values.items())


def test_encodings_live_in_the_key_and_values_are_the_bytes_put(tmp_path: Path) -> None:
    store = LmdbStore(tmp_path / "enc.lmdb")
    packed = gzip.compress(b"chunk" * 100)
    store.put("8_8_40/0-64_0-64_0-64", packed, content_encoding="gzip")
    store.put("info", b"{}")
    store.close()
    with lmdb.open(str(tmp_path / "enc.lmdb"), subdir=False, readonly=True) as env, \
            env.begin() as txn:  # fmt: skip
        assert dict(txn.cursor()) == {b"8_8_40/0-64_0-64_0-64.gz": packed, b"info": b"{}"}


def test_reads_the_folder_layout_of_other_tools(tmp_path: Path) -> None:
    with lmdb.open(str(tmp_path / "made"), map_size=1 << 24) as env, env.begin(write=True) as txn:
        txn.put(b"info", b"{}")
        txn.put(b"a/b", b"value")
    store = open_store(f"lmdb://{tmp_path}/made", read_only=True)
    assert sorted(store.list()) == ["a/b", "info"]
    assert store.get_range("a/b", 1, 3) == b"alu"


def test_missing_database_and_bad_input(tmp_path: Path) -> None:
    ro = LmdbStore(tmp_path / "none.lmdb", read_only=True)
    assert ro.get("k") is None
    assert list(ro.list()) == []
    assert not ro.exists("k")
    assert not (tmp_path / "none.lmdb").exists()
    with pytest.raises(FileNotFoundError):
        ba.open(f"lmdb://{tmp_path}/none.lmdb")
    store = LmdbStore(tmp_path / "db.lmdb")
    store.delete("never-written")
    assert not (tmp_path / "db.lmdb").exists()  # a delete creates no database
    with pytest.raises(UnsupportedError, match="511 bytes"):
        store.put("k" * 600, b"x")
    assert store.get("k" * 600) is None
    (tmp_path / "junk.lmdb").write_bytes(b"not an lmdb file" * 1000)
    with pytest.raises(StoreError, match="LMDB"):
        LmdbStore(tmp_path / "junk.lmdb").get("k")
    store.put("k", b"v")
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.get("k")


def test_missing_package_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(__import__("sys").modules, "lmdb", None)
    with pytest.raises(MissingDependencyError, match=r"bigarrays\[lmdb\]"):
        open_store(f"lmdb://{tmp_path}/x.lmdb")


def test_many_threads_share_commits(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    store = LmdbStore(tmp_path / "threads.lmdb")
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: store.put(f"k{i}", str(i).encode() * 1000), range(400)))
    assert len(list(store.list())) == 400
    assert store.get("k123") == b"123" * 1000


# -- several processes: readers never see half a value, the writer grows the map under them ------


def _value(key: int, version: int) -> bytes:
    body = f"{key}:{version}:".encode() * (1000 + 150 * (key % 50))
    return hashlib.sha256(body).digest() + body


def _check(value: bytes, key: int) -> int:
    digest, body = value[:32], value[32:]
    assert hashlib.sha256(body).digest() == digest, "a torn value"
    k, version, _ = body.split(b":", 2)
    assert int(k) == key
    return int(version)


def _writer(url: str, keys: int, versions: int, start: Any) -> None:
    lmdb_store.INITIAL_MAP_SIZE = SMALL_MAP
    store = open_store(url)
    start.wait(60)  # the readers are reading
    for version in range(versions):
        for key in range(keys):
            store.put(f"k{key}", _value(key, version))
    store.put("done", b"1")
    store.close()


def _reader(url: str, keys: int, result: Any, start: Any) -> None:
    try:
        lmdb_store.INITIAL_MAP_SIZE = SMALL_MAP  # the writer grows the map past this one
        store = open_store(url, read_only=True)
        latest = [-1] * keys
        reads = 0
        store.get("start")
        start.wait(60)
        while True:
            finished = store.get("done") is not None
            for key in range(keys):
                value = store.get(f"k{key}")
                if value is not None:
                    version = _check(value, key)
                    assert version >= latest[key], "a value went back in time"
                    latest[key] = version
                    reads += 1
            if finished:
                break
        assert isinstance(store, LmdbStore)
        result.put(("ok", store._db.env.info()["map_size"], min(latest)))
    except BaseException as exc:
        result.put(("error", repr(exc), 0))


def test_several_reader_processes_and_one_writer(tmp_path: Path, small_map: None) -> None:
    url = f"lmdb://{tmp_path}/shared.lmdb"
    LmdbStore(url).put("start", b"")  # the readers open an existing database
    keys, versions = 60, 8
    ctx = multiprocessing.get_context("spawn")
    result = ctx.Queue()
    start = ctx.Barrier(4)
    readers = [ctx.Process(target=_reader, args=(url, keys, result, start)) for _ in range(3)]
    writer = ctx.Process(target=_writer, args=(url, keys, versions, start))
    for p in [*readers, writer]:
        p.start()
    writer.join(120)
    outcomes = [result.get(timeout=120) for _ in readers]
    for p in readers:
        p.join(30)
    assert writer.exitcode == 0
    for status, detail, last in outcomes:
        assert status == "ok", detail
        assert last == versions - 1  # each reader saw the final version of every key
        assert detail > SMALL_MAP  # and adopted the map the writer grew
    store = LmdbStore(url, read_only=True)
    assert all(_check(store.get(f"k{k}") or b"", k) == versions - 1 for k in range(keys))
    # About 3 MiB of live values were rewritten 8 times into a 1 MiB first map.
    assert (tmp_path / "shared.lmdb").stat().st_size > SMALL_MAP


def test_a_store_collected_while_another_opens_does_not_deadlock(
    tmp_path: Path, monkeypatch
) -> None:
    import gc
    import threading

    from bigarrays.stores import lmdb as lmdb_store

    dropped = lmdb_store.LmdbStore(tmp_path / "a.lmdb")
    dropped.cycle = dropped  # type: ignore[attr-defined]  # freed only by the collector
    del dropped
    made = lmdb_store._Database.__init__

    def collecting(self: Any, path: Path) -> None:
        gc.collect()  # the collection an allocation inside _acquire may set off
        made(self, path)

    monkeypatch.setattr(lmdb_store._Database, "__init__", collecting)
    opened: list[Any] = []
    worker = threading.Thread(
        target=lambda: opened.append(lmdb_store.LmdbStore(tmp_path / "b.lmdb")), daemon=True
    )
    worker.start()
    worker.join(timeout=30)
    assert opened, "opening a store while another was being collected never returned"
    opened[0].close()
