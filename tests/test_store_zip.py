"""The zip store: conformance, cutout/save, reading archives made by other tools, crash safety."""

from __future__ import annotations

import errno
import gc
import os
import subprocess
import sys
import textwrap
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import bigarrays as ba
from bigarrays.copy import copy_dataset
from bigarrays.errors import (
    BigArraysWarning,
    CorruptChunkError,
    KeyOutsideRootError,
    StoreError,
    UnsupportedError,
)
from bigarrays.stores import FileStore, open_store, zip_archive, zip_records
from bigarrays.stores.zip import ZipStore
from bigarrays.testing import ArrayConformance, StoreConformance
from bigarrays.testing.conditional import ConditionalWriteConformance


class TestZipStore(StoreConformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[ZipStore]:
        store = open_store(tmp_path / "store.zip")
        assert isinstance(store, ZipStore)
        yield store
        store.close()


class TestZipStoreInnerFolder(StoreConformance):
    """``zip:///file.zip/folder``: the keys live below a folder inside the archive."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[ZipStore]:
        store = open_store(f"zip://{tmp_path}/store.zip/data/vol")
        assert isinstance(store, ZipStore)
        assert store.inner == "data/vol"
        yield store
        store.close()


class TestZipStoreVersions(ConditionalWriteConformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[ZipStore]:
        store = ZipStore(tmp_path / "versions.zip")
        yield store
        store.close()


class TestZipArrays(ArrayConformance):
    @pytest.fixture
    def dataset_url(self, tmp_path: Path) -> str:
        return str(tmp_path / "vol.zip")


class TestZipUrlArrays(ArrayConformance):
    @pytest.fixture
    def dataset_url(self, tmp_path: Path) -> str:
        return f"zip://{tmp_path}/vol.zip/inner"


# -- URLs ----------------------------------------------------------------------------------------


def test_urls_that_open_the_zip_store(tmp_path: Path) -> None:
    for url in [str(tmp_path / "a.zip"), (tmp_path / "a.zip").as_uri(), f"zip://{tmp_path}/a.zip",
                tmp_path / "a.ZIP"]:  # fmt: skip
        store = open_store(url)
        assert isinstance(store, ZipStore), url
        store.close()
    # A folder whose name ends in .zip is a folder.
    (tmp_path / "folder.zip").mkdir()
    assert isinstance(open_store(tmp_path / "folder.zip"), FileStore)
    store = open_store(f"zip://{tmp_path}/a.zip")
    assert open_store(store.url) == store
    assert store.url == f"zip://{tmp_path}/a.zip"
    with pytest.raises(StoreError, match="no host"):
        open_store("zip://somehost/a.zip")


# -- archives made by other tools ----------------------------------------------------------------


def test_reads_archives_made_by_zipfile_in_place(tmp_path: Path) -> None:
    path = tmp_path / "made.zip"
    big = os.urandom(100_000)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("vol/", b"")  # a folder entry, as `zip -r` makes
        z.writestr("vol/stored", big, compress_type=zipfile.ZIP_STORED)
        z.writestr("vol/deflated", b"abc" * 10_000, compress_type=zipfile.ZIP_DEFLATED)
        z.writestr("vol/sub/k.gz", __import__("gzip").compress(b"decoded"))
        z.writestr("other", b"outside the folder")
    store = open_store(f"zip://{path}/vol", read_only=True)
    assert sorted(store.list()) == ["deflated", "stored", "sub/k"]
    assert store.get("stored") == big
    assert store.get_range("stored", 50_000, 10) == big[50_000:50_010]
    assert store.get_range("stored", -5) == big[-5:]
    assert store.get("deflated") == b"abc" * 10_000
    assert store.get_range("deflated", 3, 4) == b"abca"
    assert store.get("sub/k") == b"decoded"
    assert store.get_encoded("sub/k")[1] == "gzip"  # type: ignore[index]
    with pytest.raises(KeyOutsideRootError):
        store.get("../other")
    beside = open_store(f"zip://{path}/vol", read_only=True, allow_parent_keys=True)
    assert beside.get("../other") == b"outside the folder"
    assert store.get("missing") is None
    whole = open_store(path, read_only=True)
    assert sorted(whole.list()) == ["other", "vol/deflated", "vol/stored", "vol/sub/k"]


def test_a_dataset_zipped_by_another_tool_opens_as_a_volume(tmp_path: Path) -> None:
    vol = ba.create(tmp_path / "vol", shape=(40, 30, 20), chunks=(16, 16, 16), compression="gzip")
    data = np.random.default_rng(0).integers(0, 255, (40, 30, 20), dtype=np.uint8)
    vol[...] = data
    with zipfile.ZipFile(tmp_path / "vol.zip", "w", zipfile.ZIP_DEFLATED) as z:
        for file in sorted((tmp_path / "vol").rglob("*")):
            z.write(file, "vol/" + file.relative_to(tmp_path / "vol").as_posix())
    with ba.open(f"zip://{tmp_path}/vol.zip/vol") as back:
        np.testing.assert_array_equal(back[...], data)


# -- what bigarrays writes -----------------------------------------------------------------------


def test_written_archive_is_a_standard_zip(tmp_path: Path) -> None:
    path = tmp_path / "w.zip"
    with ZipStore(path) as store:
        for i in range(5):
            store.put(f"dir/k{i}", bytes([i]) * (100 + i))
        store.put("dir/k1", b"rewritten")
        store.put("gz", __import__("gzip").compress(b"x" * 1000), content_encoding="gzip")
        store.delete("dir/k3")
    with zipfile.ZipFile(path) as z:
        assert z.testzip() is None
        assert sorted(z.namelist()) == ["dir/k0", "dir/k1", "dir/k2", "dir/k4", "gz.gz"]
        assert z.read("dir/k1") == b"rewritten"
        assert all(i.compress_type == zipfile.ZIP_STORED for i in z.infolist())
    # The last entry of a name wins after reopening, too.
    store = ZipStore(path, read_only=True)
    assert store.get("dir/k1") == b"rewritten"
    assert store.get("dir/k3") is None
    assert store.get("gz") == b"x" * 1000


def test_rewrites_grow_the_file_and_cp_compacts_it(tmp_path: Path) -> None:
    vol = ba.create(tmp_path / "v.zip", shape=(32, 32, 32), chunks=(16, 16, 16))
    for value in range(5):
        vol[...] = value
    vol.close()
    grown = (tmp_path / "v.zip").stat().st_size
    assert grown > 5 * 32**3
    copy_dataset(tmp_path / "v.zip", tmp_path / "compact.zip", progress=False)
    compact = (tmp_path / "compact.zip").stat().st_size
    assert 32**3 < compact < 1.1 * 32**3
    assert int(ba.open(tmp_path / "compact.zip")[...].max()) == 4


def test_closing_a_volume_writes_the_directory(tmp_path: Path) -> None:
    with ba.create(tmp_path / "v.zip", shape=(20, 20, 20), chunks=(8, 8, 8)) as vol:
        vol[...] = 3
        # Before close, other zip readers see only the empty directory of the new file.
    with zipfile.ZipFile(tmp_path / "v.zip") as z:
        assert len(z.namelist()) == 1 + 27
        assert z.testzip() is None
    # A Store passed in belongs to the caller: closing the volume leaves it open.
    store = ZipStore(tmp_path / "w.zip")
    with ba.create(store, shape=(8, 8, 8)) as vol:
        vol[...] = 1
    store.put("after", b"still open")
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.get("after")
    assert ZipStore(tmp_path / "w.zip").get("after") == b"still open"


def test_zip64_archives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Lowered limits write every zip64 record (sizes, offsets, counts) without gigabytes.
    monkeypatch.setattr(zip_records, "_ZIP64_LIMIT", 1000)
    monkeypatch.setattr(zip_records, "_ZIP64_COUNT", 5)
    values = {f"k{i}": os.urandom(300 * i) for i in range(12)}
    with ZipStore(tmp_path / "z.zip") as store:
        for key, value in values.items():
            store.put(key, value)
    with zipfile.ZipFile(tmp_path / "z.zip") as z:
        assert z.testzip() is None
        assert {i.filename: z.read(i) for i in z.infolist()} == values
    reread = ZipStore(tmp_path / "z.zip", read_only=True)
    assert {k: reread.get(k) for k in reread.list()} == values
    assert reread.get_range("k11", 3000, 5) == values["k11"][3000:3005]


def test_damage_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "d.zip"
    with ZipStore(path) as store:
        store.put("k", b"0123456789" * 10)
    raw = bytearray(path.read_bytes())
    at = raw.index(b"0123456789")
    raw[at] ^= 0xFF
    path.write_bytes(raw)
    with pytest.raises(CorruptChunkError, match="CRC"):
        ZipStore(path, read_only=True).get("k")
    (tmp_path / "not.zip").write_bytes(b"this is no zip file at all" * 100)
    with pytest.raises(StoreError, match="not a zip file"):
        ZipStore(tmp_path / "not.zip", read_only=True).get("k")
    with pytest.raises(KeyOutsideRootError):
        ZipStore(tmp_path / "e.zip").put("../up", b"x")
    with pytest.raises(UnsupportedError, match="above"):
        open_store(tmp_path / "e.zip", allow_parent_keys=True).put("../up", b"x")


def test_read_only_handle_on_a_missing_file_creates_nothing(tmp_path: Path) -> None:
    store = ZipStore(tmp_path / "none.zip", read_only=True)
    assert store.get("k") is None
    assert list(store.list()) == []
    assert not (tmp_path / "none.zip").exists()
    with pytest.raises(FileNotFoundError):
        ba.open(tmp_path / "none.zip")


# -- several processes ---------------------------------------------------------------------------


def _python(code: str, *args: str, **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args], text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        **kwargs,  # type: ignore[call-overload]
    )  # fmt: skip


def test_a_crash_loses_only_what_came_after_the_last_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "crash.zip"
    proc = _python(
        """
        import os, sys
        from bigarrays.stores.zip import ZipStore
        store = ZipStore(sys.argv[1])
        for i in range(100):
            store.put(f"k{i}", f"first {i}".encode() * 50)
        store.checkpoint()
        for i in range(50, 150):
            store.put(f"k{i}", f"second {i}".encode() * 50)
        store.delete("k0")
        store.put("big", os.urandom(3 << 20))  # the search for the directory spans blocks
        os._exit(0)  # no close, no finalizers: as if killed
        """,
        str(path),
    )
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    reader = ZipStore(path, read_only=True)
    assert sorted(reader.list(), key=lambda k: int(k[1:])) == [f"k{i}" for i in range(100)]
    assert all(reader.get(f"k{i}") == f"first {i}".encode() * 50 for i in range(100))
    reader.close()
    # The next writer cuts the lost tail off; closing makes a standard zip again.
    size = path.stat().st_size
    with ZipStore(path) as writer:
        writer.put("new", b"after the crash")
    assert path.stat().st_size < size
    with zipfile.ZipFile(path) as z:
        assert z.testzip() is None
        assert len(z.namelist()) == 101
        assert z.read("k99") == b"first 99" * 50


def test_one_writer_process_at_a_time_and_readers_see_checkpoints(tmp_path: Path) -> None:
    path = tmp_path / "shared.zip"
    with ZipStore(path) as store:
        store.put("k", b"v1")
    writer = _python(
        """
        import sys
        from bigarrays.stores.zip import ZipStore
        store = ZipStore(sys.argv[1])
        store.put("k", b"v2")
        store.checkpoint()
        print("written", flush=True)
        sys.stdin.readline()
        store.put("k", b"v3")
        store.close()
        """,
        str(path),
    )
    assert writer.stdout is not None
    assert writer.stdin is not None
    try:
        assert writer.stdout.readline().strip() == "written"
        store = ZipStore(path)
        assert store.get("k") == b"v2"  # the checkpoint before this process's first read
        with pytest.raises(StoreError, match="another process is writing"):
            store.put("k", b"mine")
        writer.stdin.write("go\n")
        writer.stdin.flush()
        assert writer.wait(timeout=60) == 0
    finally:
        if writer.poll() is None:
            writer.kill()
    assert store.get("k") == b"v2"
    store.refresh()
    assert store.get("k") == b"v3"
    store.put("k", b"mine")  # the writer has closed: this process may write now
    store.close()
    assert ZipStore(path, read_only=True).get("k") == b"mine"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX")
def test_a_forked_child_never_writes_with_its_parents_offsets(tmp_path: Path) -> None:
    store = ZipStore(tmp_path / "fork.zip")
    store.put("k", b"parent")
    store.checkpoint()
    pid = os.fork()
    if pid == 0:  # the child: the inherited handle reopens the file for this process
        code = 0
        try:
            if store.get("k") != b"parent":
                code = 2
            try:
                store.put("k", b"child")
                code = 3  # the parent still writes: this must have been refused
            except StoreError:
                pass
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    store.put("k2", b"parent again")
    store.close()
    with zipfile.ZipFile(tmp_path / "fork.zip") as z:
        assert z.testzip() is None
        assert z.read("k") == b"parent"


def test_a_collected_handle_never_waits_for_the_registry_lock(tmp_path: Path) -> None:
    # Garbage collection may run a handle's finalizer while this thread holds the registry
    # lock (inside another release): the finalizer must queue its release, not wait on itself.
    path = tmp_path / "gc.zip"
    store = ZipStore(path)
    store.put("k", b"value")
    other = ZipStore(path)
    finished = threading.Event()

    def collect_inside_the_lock() -> None:
        with zip_archive._ARCHIVES_LOCK:
            other._finalizer()  # what the collector calls
        finished.set()

    worker = threading.Thread(target=collect_inside_the_lock, daemon=True)
    worker.start()
    worker.join(10)
    assert finished.is_set(), "the finalizer waited for a lock its own thread holds"
    store.close()  # the next release in the process settles the queued one too
    assert zip_archive._PENDING == []
    assert str(path) not in zip_archive._ARCHIVES
    with zipfile.ZipFile(path) as zf:
        assert zf.read("k") == b"value"


def test_a_failed_flush_fails_every_later_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # After a failed fsync the kernel may have dropped the pages it could not write: a directory
    # written after a second, successful fsync would name entries that are not on disk.
    path = tmp_path / "a.zip"
    store = ZipStore(f"zip://{path}")
    store.put("a", b"1")
    store.checkpoint()
    store.put("b", b"2")
    with monkeypatch.context() as patched:
        patched.setattr(os, "fsync", _eio)
        with pytest.raises(StoreError, match="Input/output error"):
            store.checkpoint()
    store.put("c", b"3")
    with pytest.raises(StoreError, match="an earlier flush failed"):
        store.checkpoint()
    with pytest.raises(StoreError, match="an earlier flush failed"):
        store.close()
    # The last directory written stays the archive's; the store opens afresh.
    with zipfile.ZipFile(path) as z:
        assert z.namelist() == ["a"]
    again = ZipStore(f"zip://{path}")
    assert again.get("a") == b"1"
    assert again.get("b") is None
    again.put("d", b"4")
    again.close()
    assert ZipStore(f"zip://{path}", read_only=True).get("d") == b"4"


def test_a_dropped_handle_whose_flush_failed_is_a_warning_not_anothers_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A handle dropped without close is closed by the next open or close in the process: its
    # failure has nobody to go to but a warning, and the other store opens and writes.
    store = ZipStore(f"zip://{tmp_path / 'failed.zip'}")
    store.put("a", b"1")
    with monkeypatch.context() as patched:
        patched.setattr(os, "fsync", _eio)
        with pytest.raises(StoreError, match="Input/output error") as failed:
            store.checkpoint()
    del store, failed  # the traceback holds the store too
    gc.collect()
    with pytest.warns(BigArraysWarning, match="failed.zip.*an earlier flush failed"):
        other = ZipStore(f"zip://{tmp_path / 'other.zip'}")
    other.put("b", b"2")
    other.close()
    assert ZipStore(f"zip://{tmp_path / 'other.zip'}", read_only=True).get("b") == b"2"


def _eio(fd: int) -> None:
    raise OSError(errno.EIO, os.strerror(errno.EIO))
