"""A resize that renames precomputed edge chunks, raced by a process that writes those chunks
with the info it read before: no write may be lost, whichever side gets there first."""

from __future__ import annotations

import multiprocessing
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import bigarrays as ba
from bigarrays.formats.precomputed import resize as precomputed_resize
from bigarrays.stores.memory import drop_namespace

ROWS = 32
ROUNDS = 4
#: x sizes the resizer cycles through: every one of them clips the only chunk along x.
SIZES = [*range(10, 33), *range(31, 10, -1)]


def _value(r: int, k: int) -> int:
    return (r * ROWS + k) % 250 + 1


def _write_rows(path: str, barrier: Any, done: Any) -> None:
    vol = ba.open(path, mode="r+", progress=False)
    barrier.wait()
    for r in range(ROUNDS):
        for k in range(ROWS):
            vol[0:10, k, 0] = _value(r, k)
    done.set()


def _resize_until_done(path: str, barrier: Any, done: Any) -> None:
    vol = ba.open(path, mode="r+", progress=False)
    barrier.wait()
    for _ in range(500):  # bounded: a writer that died must not keep it going
        if done.is_set():
            break
        for size in SIZES:
            vol.resize((size, ROWS, 1))


def test_a_writer_holding_the_old_info_loses_nothing_to_a_resize(tmp_path: Path) -> None:
    path = tmp_path / "v"
    ba.create(path, shape=(10, ROWS, 1), chunks=(64, ROWS, 1), dtype="uint8").close()
    ctx = multiprocessing.get_context("spawn")
    barrier, done = ctx.Barrier(2), ctx.Event()
    procs = [ctx.Process(target=f, args=(str(path), barrier, done), daemon=True)
             for f in (_write_rows, _resize_until_done)]  # fmt: skip
    for p in procs:
        p.start()
    for p in procs:
        p.join(240)
        assert p.exitcode == 0
    vol = ba.open(path)
    expected = np.array([_value(ROUNDS - 1, k) for k in range(ROWS)], dtype="uint8")
    np.testing.assert_array_equal(vol[0:10, :, 0], np.broadcast_to(expected, (10, ROWS)))
    # A write that lost the race may have left a chunk under an old name; no later resize
    # shows it.
    vol = ba.open(path, mode="r+")
    for size in SIZES:
        vol.resize((size, ROWS, 1))
        np.testing.assert_array_equal(vol[0:10, :, 0], np.broadcast_to(expected, (10, ROWS)))
        assert not vol[10:size, :, 0].any()


@pytest.fixture
def memory_url() -> Iterator[str]:
    name = f"race-{uuid.uuid4().hex}"
    yield f"memory://{name}"
    drop_namespace(name)


def test_a_write_after_the_copy_is_written_again_under_the_new_name(
    memory_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The interleaving the processes above hit by chance, made to happen every time: another
    writer, holding the old info, changes an edge chunk after the resize copied it."""
    vol = ba.create(memory_url, shape=(10, 4, 1), chunks=(16, 4, 1), dtype="uint8")
    vol[0:10, :, 0] = 1
    other = ba.open(memory_url, mode="r+")
    other[0:10, 0, 0] = 1  # it notes the info's version
    real = precomputed_resize._move_edges
    writer: list[threading.Thread] = []

    def move_then_race(*args: Any) -> Any:
        moved = real(*args)
        if not writer:

            def write() -> None:
                other[0:10, 2, 0] = 7

            writer.append(threading.Thread(target=write))
            writer[0].start()
            # The write lands under the old name before the resize goes on.
            old_name = f"{vol.scale.key}/0-10_0-4_0-1"
            while (vol.store.get(old_name) or b"")[20:30] != b"\x07" * 10:
                time.sleep(0.001)
        return moved

    monkeypatch.setattr(precomputed_resize, "_move_edges", move_then_race)
    vol.resize((12, 4, 1))
    writer[0].join(30)
    got = ba.open(memory_url)[0:12, :, 0]
    want = np.ones((12, 4), "uint8")
    want[10:] = 0
    want[0:10, 2] = 7
    np.testing.assert_array_equal(got, want)
    assert other.shape == (12, 4, 1)  # the other writer took the new info


def test_a_resize_that_died_is_finished_by_the_next_and_writers_do_not_wait_forever(
    memory_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    vol = ba.create(memory_url, shape=(10, 4, 1), chunks=(16, 4, 1), dtype="uint8")
    vol[0:10, :, 0] = 3
    writer = ba.open(memory_url, mode="r+")
    writer[0:10, 0, 0] = 3  # it notes the info's version

    def die(*args: Any) -> Any:
        raise KeyboardInterrupt  # the resizing process stops after marking the info

    monkeypatch.setattr(precomputed_resize, "_move_edges", die)
    with pytest.raises(KeyboardInterrupt):
        vol.resize((12, 4, 1))
    monkeypatch.undo()
    info = ba.open(memory_url).info
    assert info["scales"][0]["bigarrays"]["resizing"] is True
    monkeypatch.setattr(precomputed_resize, "RESIZE_WAIT_SECONDS", 0.05)
    with pytest.raises(ba.errors.ResizeRefusedError, match="resize it again"):
        writer[0:10, 1, 0] = 5
    ba.open(memory_url, mode="r+").resize((12, 4, 1))
    assert "resizing" not in ba.open(memory_url).info["scales"][0].get("bigarrays", {})
    writer[0:10, 1, 0] = 5
    got = ba.open(memory_url)[0:12, :, 0]
    want = np.full((12, 4), 3, "uint8")
    want[10:] = 0
    want[0:10, 1] = 5
    np.testing.assert_array_equal(got, want)
