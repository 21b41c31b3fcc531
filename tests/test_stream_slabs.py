"""The streaming writer fills the slabs it has written again rather than taking fresh memory
for each, a slab filled again never lets the frames it held before reach the store, and the
shards of a sharded target in flight count in the queue's bytes."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import numpy as np
import pytest

import bigarrays as ba
from bigarrays.box import Box
from bigarrays.stores import MemoryStore
from bigarrays.stores.memory import drop_namespace
from bigarrays.stores.versions import PutMode
from bigarrays.streaming_writer import Stream


def _frames(n: int, value: int) -> np.ndarray:
    return np.full((16, 8, n), value, dtype="uint16")  # a block: the axis z in its place


def test_written_slabs_are_filled_again(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[np.ndarray] = []  # holding them keeps a fresh slab from reusing a freed address
    write = Stream._write

    def spy(self: Stream, box: Box, slab: np.ndarray, *rest: Any) -> None:
        seen.append(slab)
        write(self, box, slab, *rest)

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


class InFlight(MemoryStore):
    """Records the most bytes of shards being put at once; a put waits a little for another to
    start, so that puts that may overlap are seen overlapping."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.active = self.most = self.puts_at_once = 0
        self.count = 0
        self.lock = threading.Lock()
        self.second = threading.Event()

    def _put_parts(
        self, key: str, parts: list[memoryview], mode: PutMode, version: str | None
    ) -> str | None:
        size = sum(p.nbytes for p in parts)
        with self.lock:
            self.active += size
            self.count += 1
            self.most = max(self.most, self.active)
            self.puts_at_once = max(self.puts_at_once, self.count)
            if self.count > 1:
                self.second.set()
        self.second.wait(0.2)
        try:
            return super()._put_parts(key, parts, mode, version)
        finally:
            with self.lock:
                self.active -= size
                self.count -= 1


@pytest.mark.parametrize(("compression", "at_once"), [(None, 2), ("zstd", 1)])
def test_shards_in_flight_stay_within_the_queue(compression: str | None, at_once: int) -> None:
    """Raw shards are put from their slabs, which the queue counts: two writers put two at
    once. Encoded shards are put one slab at a time, while the next slab is encoded. What
    they hold never passes the queue's bytes."""
    name = f"slabs-{uuid.uuid4().hex}"
    store = InFlight(name)
    slab = 8 * 16 * 16 * 2
    try:
        frames = np.arange(64 * 16 * 16, dtype=np.uint16).reshape(64, 16, 16) % 1000
        with ba.stream(store, axis="t", shape=(16, 16), dtype="uint16", format="zarr",
                       dims=("t", "y", "x"), chunks=(8, 16, 16), compression=compression,
                       sharding={"chunk_shape": [8, 8, 8]}, queue_bytes=2 * slab) as s:  # fmt: skip
            s.append(frames)  # eight slabs, two in the queue at once
        assert store.puts_at_once == at_once
        assert store.most <= 2 * slab + 2 * 4 * 16 + 8  # two shards' index and checksum
        np.testing.assert_array_equal(ba.open(store)[...], frames)
    finally:
        drop_namespace(name)
