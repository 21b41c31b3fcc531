"""Conditional writes (versions and compare-and-swap) of the file and memory stores."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest

from bigarrays.errors import UnsupportedError
from bigarrays.stores import FileStore, MemoryStore
from bigarrays.stores.base import ANY_VERSION, Store
from bigarrays.stores.file import LOCK_STALE_SECONDS
from bigarrays.stores.memory import drop_namespace
from bigarrays.testing.conditional import ConditionalWriteConformance


class TestFileStoreVersions(ConditionalWriteConformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> FileStore:
        return FileStore(tmp_path / "store")


class TestMemoryStoreVersions(ConditionalWriteConformance):
    @pytest.fixture
    def store(self) -> MemoryStore:
        name = f"versions-{uuid.uuid4().hex}"
        yield MemoryStore(name)  # type: ignore[misc]
        drop_namespace(name)


def _lock_path(root: Path, key: str) -> Path:
    return root / (key + ".bigarrays-tmp-lock")


def test_file_store_breaks_the_lock_of_a_dead_process(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.put("k", b"one")
    # A pid that no process has: the lock's owner is gone.
    _lock_path(tmp_path, "k").write_bytes(f"{os.uname().nodename} 999999999 x".encode())
    store.put_if_version("k", b"two", ANY_VERSION)
    assert store.get("k") == b"two"
    assert not _lock_path(tmp_path, "k").exists()


def test_file_store_breaks_an_old_lock(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    lock = _lock_path(tmp_path, "k")
    lock.write_bytes(b"some-other-host 1 x")
    old = time.time() - LOCK_STALE_SECONDS - 10
    os.utime(lock, (old, old))
    store.put_if_version("k", b"one", None)
    assert store.get("k") == b"one"


def test_file_store_waits_for_a_live_lock(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    lock = _lock_path(tmp_path, "k")
    lock.write_bytes(f"{os.uname().nodename} {os.getpid()} x".encode())  # held by us: alive
    import threading

    threading.Timer(0.2, lock.unlink).start()
    t0 = time.monotonic()
    store.put_if_version("k", b"one", None)
    assert time.monotonic() - t0 >= 0.15
    assert store.get("k") == b"one"


def test_file_store_version_names_the_bytes_read(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.put("k", b"one")
    value, version = store.get_with_version("k")
    assert value == b"one"
    store.put("k", b"two")
    assert store.get_with_version("k")[1] != version


def test_default_store_has_no_conditional_writes() -> None:
    class Plain(Store):
        url = "plain://"

        def _get(self, key: str) -> bytes | None:
            return None

        def _put(self, key: str, value: object, content_encoding: str | None) -> None:
            pass

        def _delete(self, key: str) -> None:
            pass

        def _list(self, prefix: str):  # type: ignore[no-untyped-def]
            return iter(())

    plain = Plain()
    assert not plain.conditional_writes
    for call in (
        lambda: plain.get_with_version("k"),
        lambda: plain.put_if_version("k", b"", None),
        lambda: plain.delete_if_version("k", None),
    ):
        with pytest.raises(UnsupportedError, match="no conditional writes"):
            call()
