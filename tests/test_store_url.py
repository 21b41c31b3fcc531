"""The URL table: which store a URL opens, and how backends join it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import bigarrays.stores as stores
from bigarrays.errors import UnknownSchemeError
from bigarrays.stores import (
    FileStore,
    MemoryStore,
    Store,
    known_schemes,
    open_store,
    register_store,
)
from bigarrays.stores.memory import drop_namespace


@pytest.fixture
def memory_name() -> Iterator[str]:
    name = f"url-{uuid.uuid4().hex}"
    yield name
    drop_namespace(name)


@pytest.fixture
def restore_table() -> Iterator[None]:
    # register_store has no inverse; without this a test scheme would leak into later tests.
    saved = dict(stores._TABLE)
    yield
    stores._TABLE.clear()
    stores._TABLE.update(saved)


def test_plain_path_opens_a_file_store(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "vol"))
    assert isinstance(store, FileStore)
    assert store.root == tmp_path / "vol"
    assert not store.read_only


def test_path_object_opens_a_file_store(tmp_path: Path) -> None:
    store = open_store(tmp_path / "vol")
    assert isinstance(store, FileStore)
    assert store.root == tmp_path / "vol"


def test_file_url_opens_a_file_store(tmp_path: Path) -> None:
    store = open_store(f"file://{tmp_path}/vol", read_only=True)
    assert isinstance(store, FileStore)
    assert store.root == tmp_path / "vol"
    assert store.read_only
    assert store == FileStore(tmp_path / "vol", read_only=True)
    assert store.url == (tmp_path / "vol").as_uri()


def test_memory_url_opens_a_shared_memory_store(memory_name: str) -> None:
    a = open_store(f"memory://{memory_name}")
    b = open_store(f"memory://{memory_name}")
    assert isinstance(a, MemoryStore)
    assert a.name == memory_name
    assert a.url == f"memory://{memory_name}"
    assert a == b
    a.put("k", b"x")
    assert b.get("k") == b"x"
    assert MemoryStore(memory_name).get("k") == b"x"


@pytest.mark.parametrize(
    ("spelling", "kind"),
    [("FILE", FileStore), ("File", FileStore), ("MEMORY", MemoryStore)],
)
def test_scheme_is_case_insensitive(
    tmp_path: Path, memory_name: str, spelling: str, kind: type[Store]
) -> None:
    # Before the fix "FILE:///x" opened the relative folder "./FILE:/x" without complaint.
    where = str(tmp_path / "vol") if kind is FileStore else memory_name
    url = f"{spelling}://{where}"
    store = open_store(url)
    assert isinstance(store, kind)
    assert store == open_store(f"{spelling.lower()}://{where}")


def test_unknown_scheme_lists_the_known_ones() -> None:
    with pytest.raises(UnknownSchemeError) as info:
        open_store("nosuch://bucket/vol")
    err = info.value
    assert isinstance(err, ValueError)
    assert err.scheme == "nosuch"
    assert {"file", "memory"} <= set(err.known)
    message = str(err)
    assert "'nosuch'" in message
    assert "file" in message
    assert "memory" in message


def test_register_store(restore_table: None, memory_name: str) -> None:
    calls: list[tuple[str, bool, dict[str, Any]]] = []

    def factory(url: str, *, read_only: bool = False, **options: Any) -> Store:
        calls.append((url, read_only, options))
        return MemoryStore(url.split("://", 1)[1], read_only=read_only)

    assert "testmem" not in known_schemes()
    register_store("TestMem", factory)
    assert "testmem" in known_schemes()
    store = open_store(f"testmem://{memory_name}", read_only=True, region="eu")
    assert isinstance(store, MemoryStore)
    assert store.name == memory_name
    assert store.read_only
    # The factory gets the whole URL, the mode and any backend options untouched.
    assert calls == [(f"testmem://{memory_name}", True, {"region": "eu"})]
    with pytest.raises(UnknownSchemeError, match="testmem"):
        open_store("other://x")


def test_known_schemes_hold_builtins_and_no_test_leftovers() -> None:
    # Also guards restore_table: when run after test_register_store its scheme must be gone.
    assert "testmem" not in known_schemes()
    assert {"file", "memory"} <= set(known_schemes())


def test_a_store_passes_through_unchanged(tmp_path: Path, memory_name: str) -> None:
    for store in (FileStore(tmp_path), MemoryStore(memory_name)):
        assert open_store(store) is store


def test_a_store_object_refuses_options(tmp_path: Path) -> None:
    # Options apply when a URL is opened; given with an open store they would be dropped.
    store = FileStore(tmp_path)
    with pytest.raises(TypeError, match=r"concurrency=: store options apply .* not to the open"):
        open_store(store, concurrency=4)
