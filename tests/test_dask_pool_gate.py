"""The write tasks of ``store`` share the volume's engine pool instead of crowding it: a block
that fills the pool is written alone, small blocks side by side, and the gate travels by pickle
as a fresh lock."""

from __future__ import annotations

import contextlib
import pickle
import threading
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np

import bigarrays as ba
from bigarrays.adapters.dask import BoxWriter, PoolGate


def _peak_writes(vol: Any) -> tuple[list[int], Any]:
    """Wraps ``vol.write`` to record the most writes running at once."""
    lock, running, peak = threading.Lock(), [0], [0]
    inner = vol.write
    both_in = threading.Barrier(2, timeout=0.5)

    def write(*args: Any, **kwargs: Any) -> Any:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        try:
            # Give a second writer the chance to come in beside this one, as it would on a
            # busy machine; a gated one never does, and the wait ends.
            with contextlib.suppress(threading.BrokenBarrierError):
                both_in.wait()
            return inner(*args, **kwargs)
        finally:
            with lock:
                running[0] -= 1

    vol.write = write
    return peak, both_in


def test_blocks_that_fill_the_pool_are_written_one_at_a_time(tmp_path: Path) -> None:
    vol = ba.create(tmp_path / "v", shape=(64, 64, 32), dtype="uint8", chunks=(16, 16, 16),
                    threads=4, progress=False)  # fmt: skip
    data = np.random.default_rng(1).integers(0, 255, size=vol.shape, dtype=np.uint8)
    peak, _ = _peak_writes(vol)
    # Four blocks of 8 chunks each: every one asks for the whole pool of 4.
    ba.store(da.from_array(data, chunks=(32, 32, 32)), vol, blocks=(32, 32, 32),
             scheduler="threads", num_workers=2)  # fmt: skip
    assert peak[0] == 1
    np.testing.assert_array_equal(ba.open(tmp_path / "v")[...], data)


def test_blocks_of_one_chunk_are_written_side_by_side(tmp_path: Path) -> None:
    vol = ba.create(tmp_path / "v", shape=(64, 64, 16), dtype="uint8", chunks=(16, 16, 16),
                    threads=4, progress=False)  # fmt: skip
    data = np.random.default_rng(2).integers(0, 255, size=vol.shape, dtype=np.uint8)
    peak, _ = _peak_writes(vol)
    ba.store(da.from_array(data, chunks=16), vol, blocks=(16, 16, 16), scheduler="threads",
             num_workers=2)  # fmt: skip
    assert peak[0] == 2
    np.testing.assert_array_equal(ba.open(tmp_path / "v")[...], data)


def test_an_engine_of_one_thread_is_not_gated() -> None:
    gate = PoolGate(1)
    with gate.hold(100), gate.hold(100):
        assert gate.busy == 0


def test_the_gate_waits_for_room_and_lets_the_waiter_in() -> None:
    gate = PoolGate(4)
    entered = threading.Event()

    def second() -> None:
        with gate.hold(64):
            entered.set()

    with gate.hold(3):
        with gate.hold(1):  # fits beside the first
            assert gate.busy == 4
        worker = threading.Thread(target=second)
        worker.start()
        assert not entered.wait(0.05)
    assert entered.wait(5)
    worker.join()
    assert gate.busy == 0


def test_a_writer_pickles_with_a_gate_of_its_own(tmp_path: Path) -> None:
    vol = ba.create(tmp_path / "v", shape=(32, 32, 32), dtype="uint8", chunks=(16, 16, 16),
                    threads=3, progress=False)  # fmt: skip
    writer = BoxWriter(vol, vol.level.bounds, (False, False, False, True), "same_kind")
    copy = pickle.loads(pickle.dumps(writer))
    assert copy.gate is not writer.gate
    assert copy.gate.slots == 3
    assert copy.gate.busy == 0
    block = np.full((16, 16, 16), 9, np.uint8)
    assert copy.write(block, (slice(16, 32), slice(0, 16), slice(0, 16))) == block.size
    assert (ba.open(tmp_path / "v")[16:32, 0:16, 0:16] == 9).all()
