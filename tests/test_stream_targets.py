"""Streams into the targets of a "too many small files" setup and of the cloud: one zip file (its
central directory checkpointed with the metadata), LMDB, and S3, where a shard larger than the
part size goes up as a multipart upload."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import bigarrays as ba
from bigarrays.stores.s3 import S3Store

FRAME = (40, 24)


def frames_of(n: int, shape: tuple[int, ...] = FRAME) -> np.ndarray:
    rng = np.random.default_rng(11)
    return rng.integers(0, 60000, size=(n, *shape), dtype=np.uint16)


def _read_elsewhere(url: str) -> dict[str, Any]:
    """The shape and the level-0 voxels of ``url`` as a new process opens it."""
    code = textwrap.dedent(f"""
        import json, sys
        import bigarrays as ba
        vol = ba.open({url!r})
        json.dump({{"shape": list(vol.shape), "data": vol[...].tolist()}}, sys.stdout)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)  # fmt: skip
    seen: dict[str, Any] = json.loads(out.stdout)
    return seen


def test_a_zip_reader_mid_run_sees_the_checkpointed_frames(tmp_path: Path) -> None:
    path = tmp_path / "run.zip"
    frames = frames_of(30)
    s = ba.stream(str(path), axis="z", shape=FRAME, dtype="uint16", chunks=(16, 16, 8),
                  checkpoint_seconds=0)  # fmt: skip
    try:
        for f in frames[:20]:
            s.append(f)
        while s.stats.checkpointed < 16:  # two slabs written and checkpointed
            s.stats  # noqa: B018
        seen = _read_elsewhere(str(path))
        z = seen["shape"][2]
        assert z in (16, 24)  # a third slab may have been checkpointed meanwhile: never a part
        np.testing.assert_array_equal(np.array(seen["data"]), np.moveaxis(frames[:z], 0, 2))
        for f in frames[20:]:
            s.append(f)
    finally:
        s.close()
    with zipfile.ZipFile(path) as archive:  # a zip any tool reads, of stored entries
        assert {i.compress_type for i in archive.infolist()} == {zipfile.ZIP_STORED}
        assert archive.testzip() is None
    np.testing.assert_array_equal(ba.open(path)[...], np.moveaxis(frames, 0, 2))


def test_a_stream_into_lmdb(tmp_path: Path) -> None:
    url = f"lmdb://{tmp_path / 'run.lmdb'}"
    frames = frames_of(21)
    with ba.stream(url, axis="z", shape=FRAME, dtype="uint16", chunks=(16, 16, 8),
                   checkpoint_seconds=0) as s:  # fmt: skip
        for f in frames[:11]:
            s.append(f)
    with ba.stream(url, axis="z", resume=True) as s:
        for f in frames[11:]:
            s.append(f)
    vol = ba.open(url)
    assert vol.shape == (*FRAME, 21)
    np.testing.assert_array_equal(vol[...], np.moveaxis(frames, 0, 2))


def test_shards_larger_than_a_part_go_up_in_parts(
    s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    part = 5 << 20  # the smallest part S3 takes
    monkeypatch.setattr(S3Store, "MULTIPART_THRESHOLD", part)
    monkeypatch.setattr(S3Store, "PART_SIZE", part)
    uploads: list[int] = []
    real = S3Store._put_multipart

    def counted(self: S3Store, key: str, name: str, body: Any, *args: Any) -> Any:
        uploads.append(sum(memoryview(b).nbytes for b in body))
        return real(self, key, name, body, *args)

    monkeypatch.setattr(S3Store, "_put_multipart", counted)
    url = f"s3://{s3_bucket}/run"
    shape = (256, 256)
    frames = frames_of(70, shape)  # noise: a shard of 8 chunks of 256x256x8 stays 8 MiB
    with ba.stream(url, axis="z", shape=shape, dtype="uint16", chunks=(256, 256, 8),
                   sharding=True, max_shape=(256, 256, 128),
                   checkpoint_seconds=0) as s:  # fmt: skip
        for f in frames:
            s.append(f)
    assert uploads
    assert all(n > part for n in uploads)
    vol = ba.open(url)
    assert vol.shape == (*shape, 70)
    np.testing.assert_array_equal(vol[...], np.moveaxis(frames, 0, 2))
