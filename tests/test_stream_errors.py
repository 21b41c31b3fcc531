"""A stream whose disk fails: a flush (fsync) that fails and a disk that fills up give a typed
error from ``append`` or ``close``, and the dataset stays readable up to the last checkpoint."""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import bigarrays as ba
from bigarrays.errors import StoreError, StreamWriteError
from bigarrays.stores import file as file_store

FRAME = (40, 24)


def frames_of(n: int) -> np.ndarray:
    rng = np.random.default_rng(5)
    return rng.integers(0, 60000, size=(n, *FRAME), dtype=np.uint16)


def _stream_until_it_fails(path: Path, break_disk: Any) -> tuple[int, StreamWriteError]:
    """Stream 16 frames, wait for their checkpoint, break the disk, stream on; the frames the
    last checkpoint holds and the error raised."""
    frames = frames_of(40)
    s = ba.stream(str(path), axis="z", shape=FRAME, dtype="uint16", chunks=(16, 16, 8),
                  checkpoint_seconds=0, queue_bytes=1, fsync=True)  # fmt: skip
    for f in frames[:16]:
        s.append(f)
    while s.stats.checkpointed < 16:
        s.stats  # noqa: B018
    break_disk()

    def acquire() -> None:
        for f in frames[16:]:
            s.append(f)
        s.close()

    with pytest.raises(StreamWriteError) as info:
        acquire()
    with contextlib.suppress(StreamWriteError):
        s.close()  # after a failed append: it raises the failure again, and lets go of the store
    return s.stats.checkpointed, info.value


@pytest.mark.parametrize("name", ["folder", "run.zip"])
def test_a_failing_fsync_is_a_typed_error_and_the_checkpoint_stays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    def fsync(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    path = tmp_path / name
    kept, error = _stream_until_it_fails(path, lambda: monkeypatch.setattr(os, "fsync", fsync))
    assert isinstance(error, OSError)
    assert isinstance(error.__cause__, StoreError)
    assert "Input/output error" in str(error)
    monkeypatch.undo()
    vol = ba.open(path)
    assert vol.shape[2] == kept == 16
    np.testing.assert_array_equal(vol[...], np.moveaxis(frames_of(40)[:16], 0, 2))


def test_a_full_disk_is_a_typed_error_and_the_checkpoint_stays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(fd: int, view: memoryview) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    path = tmp_path / "folder"
    kept, error = _stream_until_it_fails(
        path, lambda: monkeypatch.setattr(file_store, "write_all", full)
    )
    assert "no space left on device" in str(error)
    monkeypatch.undo()
    vol = ba.open(path)
    assert vol.shape[2] == kept == 16
    np.testing.assert_array_equal(vol[...], np.moveaxis(frames_of(40)[:16], 0, 2))
