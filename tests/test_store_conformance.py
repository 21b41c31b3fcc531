"""Every store shipped with bigarrays passes the conformance suite of ``bigarrays.testing``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bigarrays.stores import FileStore, MemoryStore
from bigarrays.stores.memory import drop_namespace
from bigarrays.testing import StoreConformance


class TestFileStore(StoreConformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> FileStore:
        # A root that does not exist yet: the store must create folders as it writes.
        return FileStore(tmp_path / "store")


class TestMemoryStore(StoreConformance):
    @pytest.fixture
    def store(self) -> Iterator[MemoryStore]:
        # Namespaces are process-wide: a unique one keeps tests (and xdist workers) apart.
        name = f"conformance-{uuid.uuid4().hex}"
        yield MemoryStore(name)
        drop_namespace(name)
