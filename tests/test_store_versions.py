"""Conditional writes (versions and compare-and-swap) of the file and memory stores."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from bigarrays.errors import UnsupportedError
from bigarrays.stores import FileStore, MemoryStore
from bigarrays.stores.base import Store
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


@pytest.mark.parametrize(
    "leftover",
    [b"", b"half of a value a writer was killed while writing", b"some-host 999999999 x"],
    ids=["empty", "partial-value", "old-style-token"],
)
def test_file_store_takes_over_a_leftover_lock_at_once(tmp_path: Path, leftover: bytes) -> None:
    # What a writer killed between creating its lock file and renaming it leaves behind: no
    # process holds the flock, so the next writer must not wait for anything.
    store = FileStore(tmp_path)
    store.put("k", b"one")
    _lock_path(tmp_path, "k").write_bytes(leftover)
    t0 = time.monotonic()
    store.put("k", b"two", mode="if_version", version=store.get_with_version("k")[1])
    store.put("k", b"three")
    assert time.monotonic() - t0 < 5, "a leftover lock file must not stall a write"
    assert store.get("k") == b"three"
    assert not _lock_path(tmp_path, "k").exists()
    assert set(store.list()) == {"k"}


def test_file_store_recovers_from_a_writer_killed_holding_the_lock(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.put("k", b"one")
    code = (
        "import fcntl, os, sys\n"
        f"fd = os.open({str(_lock_path(tmp_path, 'k'))!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "os.write(fd, b'partial')\n"
        "os.kill(os.getpid(), 9)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], check=False)
    assert proc.returncode == -9
    store.put("k", b"two", mode="if_version", version=store.get_with_version("k")[1])
    assert store.get("k") == b"two"


def test_file_store_waits_for_a_held_lock(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.put("k", b"one")
    _, version = store.get_with_version("k")
    fd = os.open(_lock_path(tmp_path, "k"), os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another writer is between its check and its rename
    done = threading.Event()

    def write() -> None:
        store.put("k", b"two")
        done.set()

    writer = threading.Thread(target=write)
    writer.start()
    assert not done.wait(0.3), "a plain put must wait for the key's lock"
    assert store.get("k") == b"one"
    os.unlink(_lock_path(tmp_path, "k"))  # what the holder's rename or cleanup does
    os.close(fd)
    writer.join(10)
    assert done.is_set()
    assert store.get("k") == b"two"
    assert store.get_with_version("k")[1] != version


def test_file_store_versions_differ_for_equal_sized_rewrites(tmp_path: Path) -> None:
    # Inodes are reused and the kernel's mtime may be coarse: many rewrites of equal size in a
    # burst must still give a new version each time.
    store = FileStore(tmp_path)
    seen = set()
    for i in range(200):
        store.put("k", bytes([i % 256]) * 64)
        seen.add(store.get_with_version("k")[1])
    assert len(seen) == 200


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
        lambda: plain.put("k", b"", mode="create"),
        lambda: plain.put("k", b"", mode="if_version", version="1"),
        lambda: plain.delete_if_version("k", None),
    ):
        with pytest.raises(UnsupportedError, match="no conditional writes"):
            call()
