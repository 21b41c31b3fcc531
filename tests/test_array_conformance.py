"""Cutout and save end to end on the file and memory backends."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bigarrays.stores.memory import drop_namespace
from bigarrays.testing import ArrayConformance


class TestFileArrays(ArrayConformance):
    @pytest.fixture
    def dataset_url(self, tmp_path: Path) -> str:
        return (tmp_path / "vol").as_uri()


class TestPlainPathArrays(ArrayConformance):
    @pytest.fixture
    def dataset_url(self, tmp_path: Path) -> str:
        return str(tmp_path / "vol")


class TestMemoryArrays(ArrayConformance):
    @pytest.fixture
    def dataset_url(self) -> Iterator[str]:
        name = f"arrays-{uuid.uuid4().hex}"
        yield f"memory://{name}"
        drop_namespace(name)
