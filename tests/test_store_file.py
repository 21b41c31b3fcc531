"""What FileStore promises beyond the store contract: atomic files, clean failures, CloudVolume's
``KEY.gz`` convention, URLs and paths."""

from __future__ import annotations

import errno
import gzip
import os
import pickle
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import bigarrays.stores.file as file_module
from bigarrays.errors import (
    AccessDeniedError,
    CorruptChunkError,
    InvalidKeyError,
    KeyOutsideRootError,
    StoreError,
)
from bigarrays.stores import FileStore, open_store


def files_under(root: Path) -> set[str]:
    """Every file under ``root``, temporaries included, as ``/``-separated relative paths."""
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "vol")


# -- atomicity -------------------------------------------------------------------------------------


def test_reader_never_sees_a_partial_rewrite(store: FileStore) -> None:
    size = 2 * 2**20
    rewrites = 40
    # Each version is one repeated byte, so a torn read (two versions mixed, or a short file) shows.
    versions = {v: bytes([v]) * size for v in range(rewrites + 1)}
    store.put("k", versions[0])
    writer_started = threading.Event()
    writer_done = threading.Event()
    bad: list[str] = []
    seen: set[int] = set()

    def write() -> None:
        writer_started.set()
        for v in range(1, rewrites + 1):
            store.put("k", versions[v])
        writer_done.set()

    def read_once() -> None:
        data = store.get("k")
        if data is None:
            bad.append("missing")
        elif len(data) != size or data != versions.get(data[0]):
            bad.append(f"torn read of {len(data)} bytes starting with {data[:1]!r}")
        else:
            seen.add(data[0])

    def read() -> None:
        writer_started.wait()
        while not writer_done.is_set():
            read_once()
        read_once()

    threads = [threading.Thread(target=write), threading.Thread(target=read)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert bad == []
    assert rewrites in seen
    assert files_under(store.root) == {"k"}


# -- failed writes ---------------------------------------------------------------------------------


def test_failed_rename_keeps_old_value_and_no_temp_file(
    store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.put("dir/k", b"old")

    def fail(*args: Any) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(StoreError, match="Input/output error") as info:
        store.put("dir/k", b"new")
    assert isinstance(info.value, OSError)
    monkeypatch.undo()
    assert store.get("dir/k") == b"old"
    assert files_under(store.root) == {"dir/k"}


def test_disk_full_is_named(store: FileStore, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(StoreError, match="no space left on device"):
        store.put("k", b"x")
    monkeypatch.undo()
    assert files_under(store.root) == set()


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (OSError(errno.EIO, "Input/output error"), StoreError),
        (PermissionError(errno.EACCES, "Permission denied"), AccessDeniedError),
        # An interrupt is no OSError, and must not leave a temporary file either.
        (KeyboardInterrupt(), KeyboardInterrupt),
    ],
    ids=["EIO", "EACCES", "interrupt"],
)
def test_failure_mid_write_keeps_old_value_and_no_temp_file(
    store: FileStore,
    monkeypatch: pytest.MonkeyPatch,
    error: BaseException,
    expected: type[BaseException],
) -> None:
    store.put("k", b"old value")
    written: list[int] = []

    def failing_write(fd: int, view: memoryview) -> None:
        written.append(os.write(fd, view[: len(view) // 2]))
        raise error

    monkeypatch.setattr(file_module, "write_all", failing_write)
    with pytest.raises(expected):
        store.put("k", b"a new value that is long enough to be split")
    monkeypatch.undo()
    assert written, "the failure should come after part of the value"
    assert written[0] > 0
    assert store.get("k") == b"old value"
    assert files_under(store.root) == {"k"}


def test_value_that_is_no_buffer_leaves_no_temp_file(store: FileStore) -> None:
    store.put("k", b"old")
    with pytest.raises(TypeError):
        store.put("k", "text")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        store.put("new", 12345)  # type: ignore[arg-type]
    assert store.get("k") == b"old"
    assert files_under(store.root) == {"k"}


def test_stray_temp_file_is_no_key(store: FileStore) -> None:
    # What a crash between write and rename leaves behind.
    store.root.mkdir(parents=True)
    (store.root / f"k{file_module.TMP_MARK}0123abcd").write_bytes(b"half a val")
    assert set(store.list()) == set()
    assert store.get("k") is None
    assert not store.exists("k")
    store.put("k", b"whole value")
    assert set(store.list()) == {"k"}
    assert store.get("k") == b"whole value"


def test_empty_key_is_refused(store: FileStore, tmp_path: Path) -> None:
    # The empty key is the root folder itself; "KEY.gz" of it would be a file beside the root.
    beside = store.root.with_name(store.root.name + ".gz")
    beside.write_bytes(b"not ours")
    for key in ("", "/", "."):
        with pytest.raises(ValueError, match="not a key"):
            store.put(key, b"x")
        with pytest.raises(ValueError, match="not a key"):
            store.get(key)
        with pytest.raises(ValueError, match="not a key"):
            store.delete(key)
    assert beside.read_bytes() == b"not ours"
    assert not store.root.exists() or files_under(store.root) == set()


def test_folder_is_no_key(store: FileStore) -> None:
    store.put("dir/k", b"x")
    assert store.get("dir") is None
    assert store.get_range("dir", 0, 1) is None
    assert store.size("dir") is None
    # A path through a file: the OS says "not a directory", the store says "no such key".
    assert store.get("dir/k/deeper") is None
    assert not store.exists("dir/k/deeper")


# -- permissions -----------------------------------------------------------------------------------
# We run as root, where chmod does not stop anyone, so the OS's refusal is simulated.


def _deny(*args: Any, **kwargs: Any) -> Any:
    raise PermissionError(errno.EACCES, "Permission denied")


def test_unreadable_file_is_access_denied(
    store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.put("k", b"secret")
    monkeypatch.setattr(file_module, "open", _deny, raising=False)
    reads: list[Callable[[], bytes | None]] = [
        lambda: store.get("k"),
        lambda: store.get_range("k", 0, 2),
    ]
    for read in reads:
        with pytest.raises(AccessDeniedError, match="permission denied") as info:
            read()
        assert isinstance(info.value, PermissionError)
        assert isinstance(info.value, StoreError)


def test_unwritable_folder_is_access_denied(
    store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.put("k", b"old")
    monkeypatch.setattr(os, "open", _deny)
    with pytest.raises(AccessDeniedError, match="permission denied"):
        store.put("k", b"new")
    with pytest.raises(AccessDeniedError):
        store.put("other", b"new")
    monkeypatch.undo()
    assert store.get("k") == b"old"
    assert files_under(store.root) == {"k"}


def test_refused_rename_is_access_denied(store: FileStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.put("k", b"old")
    monkeypatch.setattr(os, "replace", _deny)
    with pytest.raises(AccessDeniedError):
        store.put("k", b"new")
    monkeypatch.undo()
    assert store.get("k") == b"old"
    assert files_under(store.root) == {"k"}


def test_refused_delete_is_access_denied(store: FileStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.put("k", b"kept")
    monkeypatch.setattr(os, "unlink", _deny)
    with pytest.raises(AccessDeniedError):
        store.delete("k")
    monkeypatch.undo()
    assert store.get("k") == b"kept"


# -- URLs and paths --------------------------------------------------------------------------------


def test_plain_path_and_file_urls_name_the_same_folder(tmp_path: Path) -> None:
    root = tmp_path / "vol"
    stores = [
        FileStore(root),
        FileStore(str(root)),
        FileStore(f"file://{root}"),
        FileStore(f"file://localhost{root}"),
        FileStore(root.as_uri()),
        open_store(f"file://localhost{root}"),
    ]
    for s in stores:
        assert isinstance(s, FileStore)
        assert s.root == root
        assert s == stores[0]
    stores[2].put("k", b"x")
    assert stores[3].get("k") == b"x"
    assert (root / "k").read_bytes() == b"x"


def test_relative_path_is_resolved_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = FileStore("rel/vol")
    assert store.root == tmp_path / "rel" / "vol"
    # A later chdir must not move the store: workers and pickles rely on a fixed root.
    monkeypatch.chdir(tmp_path.parent)
    store.put("k", b"x")
    assert (tmp_path / "rel" / "vol" / "k").read_bytes() == b"x"


def test_home_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert FileStore("~/vol").root == tmp_path / "vol"
    store = open_store("~/vol")
    assert isinstance(store, FileStore)
    assert store.root == tmp_path / "vol"


def test_url_with_odd_characters_round_trips(tmp_path: Path) -> None:
    # Characters that URLs escape or give meaning to must survive store.url -> open_store.
    root = tmp_path / "a vol #1 %20 ?x=y"
    store = FileStore(root)
    store.put("k", b"x")
    again = open_store(store.url)
    assert again == store
    assert isinstance(again, FileStore)
    assert again.root == root
    assert again.get("k") == b"x"


@pytest.mark.parametrize("url", ["file://otherhost/x", "file://example.com/data/vol"])
def test_file_url_with_a_host_is_refused(url: str) -> None:
    with pytest.raises(StoreError, match="file:///"):
        FileStore(url)
    with pytest.raises(StoreError, match="name no host"):
        open_store(url)


# -- CloudVolume's KEY.gz convention ---------------------------------------------------------------


def test_gzip_file_written_by_hand_reads_decoded(store: FileStore) -> None:
    value = b"chunk bytes " * 500
    (store.root / "8_8_40").mkdir(parents=True)
    # gzip.open writes a header with a file name and time, as other tools' gzip files have.
    with gzip.open(store.root / "8_8_40" / "0-64_0-64_0-64.gz", "wb") as f:
        f.write(value)
    key = "8_8_40/0-64_0-64_0-64"
    assert store.get(key) == value
    assert store.exists(key)
    assert set(store.list()) == {key}
    assert set(store.list("8_8_40/0-64")) == {key}
    assert store.get_range(key, 12, 6) == value[12:18]
    assert store.get_range(key, -4) == value[-4:]
    assert store.size(key) == (store.root / "8_8_40" / "0-64_0-64_0-64.gz").stat().st_size


def test_concatenated_gzip_members_read_whole(store: FileStore) -> None:
    # `cat a.gz b.gz > c.gz` is a valid gzip file holding both.
    store.root.mkdir(parents=True)
    (store.root / "k.gz").write_bytes(gzip.compress(b"first,") + gzip.compress(b"second"))
    assert store.get("k") == b"first,second"


def test_gzip_put_is_stored_as_dot_gz(store: FileStore) -> None:
    value = b"v" * 1000
    store.put("k", gzip.compress(value), content_encoding="gzip")
    # CloudVolume and plain `zcat` must find it where they look.
    assert files_under(store.root) == {"k.gz"}
    assert gzip.decompress((store.root / "k.gz").read_bytes()) == value
    store.put("k", b"plain")
    assert files_under(store.root) == {"k"}
    store.put("k", gzip.compress(value), content_encoding="gzip")
    assert files_under(store.root) == {"k.gz"}
    store.delete("k")
    assert files_under(store.root) == set()


@pytest.mark.parametrize(
    "damage",
    [
        lambda gz: b"this is not gzip at all",
        lambda gz: gz[: len(gz) // 2],
        lambda gz: gz[:20] + bytes(b ^ 0xFF for b in gz[20:40]) + gz[40:],
    ],
    ids=["not-gzip", "truncated", "flipped-bytes"],
)
def test_corrupt_gzip_file_is_corrupt_chunk(store: FileStore, damage: Any) -> None:
    store.root.mkdir(parents=True)
    gz = gzip.compress(os.urandom(1000))
    (store.root / "0-64_0-64_0-64.gz").write_bytes(damage(gz))
    with pytest.raises(CorruptChunkError, match="0-64_0-64_0-64") as info:
        store.get("0-64_0-64_0-64")
    assert isinstance(info.value, ValueError)
    assert info.value.key == "0-64_0-64_0-64"


# -- keys that climb out of the root ---------------------------------------------------------------


def test_dot_dot_keys_are_refused_by_default(tmp_path: Path) -> None:
    (tmp_path / "secret").write_bytes(b"private")
    vol = FileStore(tmp_path / "vol")
    with pytest.raises(KeyOutsideRootError, match="allow_parent_keys"):
        vol.get("../secret")
    with pytest.raises(KeyOutsideRootError):
        vol.put("../secret", b"overwritten")
    with pytest.raises(KeyOutsideRootError):
        vol.delete("8_8_40/../../secret")
    with pytest.raises(KeyOutsideRootError):
        vol.read_into("../secret", memoryview(bytearray(16)))
    assert (tmp_path / "secret").read_bytes() == b"private"


@pytest.mark.parametrize("key", ["a\\b", "..\\..\\secret", "8_8_40\\0-64_0-64_0-64"])
def test_backslash_keys_are_refused(tmp_path: Path, key: str) -> None:
    # On Windows a backslash separates folders: "..\\x" would climb out of the root there.
    vol = FileStore(tmp_path / "vol")
    for call in (lambda: vol.get(key), lambda: vol.put(key, b"x"), lambda: vol.exists(key)):
        with pytest.raises(InvalidKeyError, match="backslash"):
            call()
    assert not (tmp_path / "vol").exists()


def test_dot_dot_keys_resolve_beside_the_root_when_allowed(tmp_path: Path) -> None:
    # The precomputed format lets a scale's key point beside the dataset ("../other/8_8_40").
    vol = open_store(tmp_path / "vol", allow_parent_keys=True)
    assert isinstance(vol, FileStore)
    assert pickle.loads(pickle.dumps(vol)).allow_parent_keys
    vol.put("../shared/8_8_40/0-64_0-64_0-64", b"chunk")
    assert (tmp_path / "shared" / "8_8_40" / "0-64_0-64_0-64").read_bytes() == b"chunk"
    assert vol.get("../shared/8_8_40/0-64_0-64_0-64") == b"chunk"
    assert vol.get("8_8_40/../../shared/8_8_40/0-64_0-64_0-64") == b"chunk"
    assert FileStore(tmp_path).get("shared/8_8_40/0-64_0-64_0-64") == b"chunk"
    assert set(FileStore(tmp_path / "shared").list()) == {"8_8_40/0-64_0-64_0-64"}
    vol.delete("../shared/8_8_40/0-64_0-64_0-64")
    assert not (tmp_path / "shared" / "8_8_40" / "0-64_0-64_0-64").exists()


def test_a_failed_flush_fails_every_later_flush(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # After a failed fsync the kernel may have dropped the pages it could not write, and a
    # second fsync can succeed over lost data: no later checkpoint may claim the disk holds it.
    store = FileStore(tmp_path)
    store.checkpoint()  # starts keeping count
    store.put("a", b"1")
    flushed: list[str] = []

    def broken(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    with monkeypatch.context() as patched:
        patched.setattr(os, "fsync", broken)
        with pytest.raises(StoreError, match="Input/output error"):
            store.checkpoint()
    fsync = os.fsync

    def spy(fd: int) -> None:
        flushed.append(os.readlink(f"/proc/self/fd/{fd}"))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    store.put("b", b"2")
    with pytest.raises(StoreError, match="an earlier flush failed"):
        store.checkpoint()
    assert flushed == []
    store.checkpoint(flush=False)  # no flush asked: nothing to report
    fresh = FileStore(tmp_path)
    fresh.checkpoint()
    fresh.put("c", b"3")
    fresh.checkpoint()
    assert str(tmp_path / "c") in flushed
