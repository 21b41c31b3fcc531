"""The fsspec store: fsspec's memory and local file systems, and the fallback for other schemes."""

from __future__ import annotations

import gzip
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import fsspec
import pytest
from fsspec.implementations.memory import MemoryFileSystem

import bigarrays as ba
from bigarrays.errors import MissingDependencyError, UnknownSchemeError
from bigarrays.stores import open_store
from bigarrays.stores.fsspec import FsspecStore
from bigarrays.testing import ArrayConformance, StoreConformance


class ScratchFileSystem(MemoryFileSystem):
    """An fsspec file system under a protocol that bigarrays has no store of its own for."""

    protocol = "bigarrays-scratch"
    store: ClassVar[dict[str, Any]] = {}
    pseudo_dirs: ClassVar[list[str]] = [""]

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        return super()._strip_protocol(str(path).removeprefix(cls.protocol + "://"))


fsspec.register_implementation(ScratchFileSystem.protocol, ScratchFileSystem, clobber=True)


@pytest.fixture
def memory_url() -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex}"
    yield f"fsspec+memory://{name}"
    fs = fsspec.filesystem("memory")
    if fs.exists(f"/{name}"):
        fs.rm(f"/{name}", recursive=True)


class TestFsspecMemoryStore(StoreConformance):
    @pytest.fixture
    def store(self, memory_url: str) -> FsspecStore:
        store = open_store(memory_url)
        assert isinstance(store, FsspecStore)
        return store


class TestFsspecLocalStore(StoreConformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> FsspecStore:
        store = open_store(f"fsspec+file://{tmp_path}/store")
        assert isinstance(store, FsspecStore)
        return store


class TestFsspecFallbackStore(StoreConformance):
    """A scheme bigarrays does not know but fsspec does opens through fsspec."""

    @pytest.fixture
    def store(self) -> FsspecStore:
        store = open_store(f"bigarrays-scratch://{uuid.uuid4().hex}")
        assert isinstance(store, FsspecStore)
        assert isinstance(store.fs, ScratchFileSystem)
        return store


class TestFsspecMemoryArrays(ArrayConformance):
    @pytest.fixture
    def dataset_url(self, memory_url: str) -> str:
        return memory_url


class TestFsspecLocalArrays(ArrayConformance):
    @pytest.fixture
    def dataset_url(self, tmp_path: Path) -> str:
        return f"fsspec+file://{tmp_path}/vol"


def test_url_table(tmp_path: Path) -> None:
    with pytest.raises(UnknownSchemeError) as info:
        open_store("nosuchscheme://x")
    assert "fsspec+*" in str(info.value)
    assert "zip" in str(info.value)
    assert "lmdb" in str(info.value)
    # Chained fsspec URLs pass through whole.
    store = open_store(f"fsspec+simplecache::file://{tmp_path}/vol")
    assert isinstance(store, FsspecStore)
    store.put("k", b"v")
    assert (tmp_path / "vol" / "k").read_bytes() == b"v"
    assert open_store(store.url) == store
    # Storage options are part of a store's identity.
    plain = open_store(f"fsspec+file://{tmp_path}/vol")
    assert open_store(f"fsspec+file://{tmp_path}/vol/") == plain
    assert open_store(f"fsspec+file://{tmp_path}/vol", auto_mkdir=True) != plain


def test_local_writes_are_atomic_renames(tmp_path: Path) -> None:
    store = FsspecStore(f"fsspec+file://{tmp_path}")
    store.put("a/b/c", b"1" * 1000)
    store.put("a/b/c", gzip.compress(b"2" * 1000), content_encoding="gzip")
    assert sorted(p.name for p in (tmp_path / "a" / "b").iterdir()) == ["c.gz"]
    assert store.get("a/b/c") == b"2" * 1000
    assert store.get_encoded("a/b/c") == ((tmp_path / "a/b/c.gz").read_bytes(), "gzip")
    # A stray temp file (a writer killed mid-put) is never listed.
    (tmp_path / "a" / "b" / "d.bigarrays-tmp-123").write_bytes(b"partial")
    assert list(store.list()) == ["a/b/c"]


def test_get_ranges(memory_url: str) -> None:
    store = FsspecStore(memory_url)
    value = bytes(range(256)) * 4
    store.put("plain", value)
    store.put("gz", gzip.compress(value), content_encoding="gzip")
    ranges = [(0, 10), (500, 20), (1020, 100), (2000, 5)]
    expected = [value[s : s + n] for s, n in ranges]
    assert store.get_ranges("plain", ranges) == expected
    assert store.get_ranges("gz", ranges) == expected
    assert store.get_ranges("missing", ranges) is None
    assert store.get_ranges("plain", []) == []
    with pytest.raises(ValueError, match="start"):
        store.get_ranges("plain", [(-1, 3)])


def test_a_volume_on_an_fsspec_scheme_without_prefix() -> None:
    url = f"bigarrays-scratch://vol-{uuid.uuid4().hex}"
    with ba.create(url, shape=(20, 20, 20), chunks=(8, 8, 8), compression="gzip") as vol:
        vol[0:16, 8:20, 0:20] = 7  # whole chunks: this store has no conditional writes
    back = ba.open(url)
    assert isinstance(back.store, FsspecStore)
    assert int(back[...].sum()) == 7 * 16 * 12 * 20
    assert any(k.endswith(".gz") for k in ScratchFileSystem.store)


def test_missing_packages_name_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    fsspec.register_implementation(
        "bigarrays-absent", "bigarrays_absent_package.AbsentFileSystem", clobber=True,
        errtxt="Install bigarrays_absent_package to use it",
    )  # fmt: skip
    with pytest.raises(MissingDependencyError, match="bigarrays_absent_package"):
        open_store("fsspec+bigarrays-absent://x")
    with pytest.raises(MissingDependencyError, match="bigarrays_absent_package"):
        open_store("bigarrays-absent://x")  # the fallback, too
    monkeypatch.setitem(sys.modules, "fsspec", None)
    with pytest.raises(MissingDependencyError, match=r"bigarrays\[fsspec\]"):
        open_store("fsspec+memory://x")
    # Without fsspec, a scheme nobody serves is simply unknown.
    with pytest.raises(UnknownSchemeError):
        open_store("bigarrays-scratch://x")
