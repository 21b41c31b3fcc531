"""A write that lost the race with a resize of an unsharded precomputed volume (it wrote an edge
chunk under the name the old info gives, after the resize had renamed it) writes its box again
under the new name, and deletes what it left under the old one, unless a resize names that chunk
again meanwhile."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import bigarrays as ba
from bigarrays.formats.precomputed import resize as precomputed_resize
from bigarrays.stores import open_store
from bigarrays.stores.memory import drop_namespace


@pytest.fixture
def url() -> Iterator[str]:
    name = f"orphans-{uuid.uuid4().hex}"
    yield f"memory://{name}"
    drop_namespace(name)


def _chunks(url: str) -> list[str]:
    return sorted(k for k in open_store(url).list("") if k != "info")


def test_a_write_after_the_rename_leaves_no_chunk_under_the_old_name(url: str) -> None:
    vol = ba.create(url, shape=(10, 4, 1), chunks=(16, 4, 1), dtype="uint8")
    vol[0:10, :, 0] = 1
    other = ba.open(url, mode="r+")
    other[0:10, 0, 0] = 1  # it notes the info's version
    vol.resize((12, 4, 1))  # renames 0-10_0-4_0-1 to 0-12_0-4_0-1
    assert _chunks(url) == ["1_1_1/0-12_0-4_0-1"]
    other[0:10, 2, 0] = 7  # lands under the old name first, then again under the new one
    assert _chunks(url) == ["1_1_1/0-12_0-4_0-1"]
    want = np.ones((12, 4), "uint8")
    want[10:] = 0
    want[0:10, 2] = 7
    np.testing.assert_array_equal(ba.open(url)[0:12, :, 0], want)


def test_an_append_after_the_rename_leaves_no_chunk_under_the_old_name(url: str) -> None:
    vol = ba.create(url, shape=(4, 4, 10), chunks=(4, 4, 16), dtype="uint8")
    other = ba.open(url, mode="r+")
    other[:, :, 0:10] = 2
    vol.resize((4, 4, 12))
    other[:, :, 0:10] = 3
    assert _chunks(url) == ["1_1_1/0-4_0-4_0-12"]
    np.testing.assert_array_equal(ba.open(url)[:, :, 0:10], 3)


def test_a_chunk_a_resize_names_again_meanwhile_stays(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The resize back to the old size lands after the writer found the old name unnamed and
    before it deletes it: the conditional delete fails, and the chunk (now named) stays."""
    vol = ba.create(url, shape=(10, 4, 1), chunks=(16, 4, 1), dtype="uint8")
    vol[0:10, :, 0] = 1
    other = ba.open(url, mode="r+")
    other[0:10, 0, 0] = 1
    vol.resize((12, 4, 1))
    real = precomputed_resize._read_info
    raced: list[bool] = []

    def read_then_resize_back(store: Any) -> Any:
        found = real(store)
        dropping = any(f.co_name == "drop_old_names" for f in _frames())
        if dropping and not raced:
            raced.append(True)
            vol.resize((10, 4, 1))  # names 0-10_0-4_0-1 again and rewrites it
        return found

    monkeypatch.setattr(precomputed_resize, "_read_info", read_then_resize_back)
    other[0:10, 2, 0] = 7
    assert raced
    assert _chunks(url) == ["1_1_1/0-10_0-4_0-1"]
    want = np.ones((10, 4), "uint8")
    want[:, 2] = 7
    np.testing.assert_array_equal(ba.open(url)[0:10, :, 0], want)


def _frames() -> Iterator[Any]:
    import sys

    frame = sys._getframe(1)
    while frame is not None:
        yield frame.f_code
        frame = frame.f_back  # type: ignore[assignment]
