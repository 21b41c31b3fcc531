"""The streaming writer fills the slabs it has written again rather than taking fresh memory
for each, a slab filled again never lets the frames it held before reach the store, and a
sharded target has one encoded shard in flight at a time."""

from __future__ import annotations

import threading
import uuid

import numpy as np
import pytest

import bigarrays as ba
from bigarrays.box import Box
from bigarrays.stores import MemoryStore
from bigarrays.stores.base import PutMode
from bigarrays.stores.memory import drop_namespace
from bigarrays.streaming_writer import Stream


def _frames(n: int, value: int) -> np.ndarray:
    return np.full((16, 8, n), value, dtype="uint16")  # a block: the axis z in its place


def test_written_slabs_are_filled_again(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[np.ndarray] = []  # holding them keeps a fresh slab from reusing a freed address
    write = Stream._write

    def spy(self: Stream, box: Box, slab: np.ndarray) -> None:
        seen.append(slab)
        write(self, box, slab)

    monkeypatch.setattr(Stream, "_write", spy)
    url = f"memory://slabs-{uuid.uuid4().hex}"
    frames = np.arange(80 * 16 * 8, dtype="uint16").reshape(80, 16, 8)
    with ba.stream(url, axis="z", shape=(16, 8), dtype="uint16", chunks=(16, 8, 8),
                   queue_bytes=frames[:8].nbytes) as s:  # fmt: skip
        for f in frames:
            s.append(f)
    assert len(seen) == 10
    # One slab filling, one queued or written, one spare at most.
    assert len({id(slab) for slab in seen}) <= 3
    np.testing.assert_array_equal(ba.open(url)[:, :, :], np.moveaxis(frames, 0, 2))


def test_a_slab_filled_again_in_part_stores_only_its_new_frames() -> None:
    url = f"memory://slabs-{uuid.uuid4().hex}"
    with ba.stream(url, axis="z", shape=(16, 8), dtype="uint16", chunks=(16, 8, 8),
                   checkpoint_seconds=0) as s:  # fmt: skip
        s.append(_frames(8, 7))
        s.append(_frames(8, 9))
        s.append(_frames(3, 5))  # the last slab, in part: a written one holding 7s or 9s
    vol = ba.open(url, mode="r+")
    assert vol.shape == (16, 8, 19)
    vol.resize((16, 8, 24))
    got = vol[:, :, :]
    np.testing.assert_array_equal(got[:, :, 16:19], 5)
    np.testing.assert_array_equal(got[:, :, 19:], 0)  # never the old frames


class OverlapRecorder(MemoryStore):
    """Records how many shard puts were under way at once; a put waits a little for another to
    start, so that two writers, if there were two, would be seen overlapping."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.active = self.most = 0
        self.lock = threading.Lock()
        self.second = threading.Event()

    def _put_parts(
        self, key: str, parts: list[memoryview], mode: PutMode, version: str | None
    ) -> str | None:
        with self.lock:
            self.active += 1
            self.most = max(self.most, self.active)
            if self.active > 1:
                self.second.set()
        self.second.wait(0.2)
        try:
            return super()._put_parts(key, parts, mode, version)
        finally:
            with self.lock:
                self.active -= 1


def test_a_sharded_stream_holds_one_encoded_shard_at_a_time() -> None:
    name = f"slabs-{uuid.uuid4().hex}"
    store = OverlapRecorder(name)
    try:
        frames = np.arange(32 * 16 * 16, dtype="uint16").reshape(32, 16, 16) + 1
        with ba.stream(store, axis="t", shape=(16, 16), dtype="uint16", format="zarr",
                       dims=("t", "y", "x"), chunks=(8, 16, 16),
                       sharding={"chunk_shape": [8, 8, 8]}) as s:  # fmt: skip
            s.append(frames)  # four slabs queued at once
        assert store.most == 1
        np.testing.assert_array_equal(ba.open(store)[...], frames)
    finally:
        drop_namespace(name)
