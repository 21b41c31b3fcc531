"""The streaming acquisition writer: frames in, whole chunks out, checkpoints, resume, errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import bigarrays as ba
from bigarrays.errors import (
    DatasetExistsError,
    DtypeMismatchError,
    InvalidArgumentError,
    ShapeMismatchError,
    StreamClosedError,
    StreamWriteError,
)
from bigarrays.stores.memory import MemoryStore

METADATA = ("info", "zarr.json", ".zarray", ".zattrs", ".zgroup")


def frames_xy(n: int, shape: tuple[int, ...] = (40, 24), start: int = 0) -> np.ndarray:
    """``n`` distinct uint16 frames (along a new first axis), frame i a function of i alone."""
    size = int(np.prod(shape))
    base = np.arange(size, dtype=np.uint32).reshape(shape)
    return np.stack([((base * 7 + i * 131) % 65521).astype(np.uint16)
                     for i in range(start, start + n)])  # fmt: skip


class RecordingStore(MemoryStore):
    """A memory store that records the chunk keys read and can refuse chunk writes."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.reads: list[str] = []
        self.fail_after: int | None = None
        self.puts = 0
        #: When set, chunk writes wait for it (a slow disk).
        self.gate: threading.Event | None = None

    def _record(self, key: str) -> None:
        if not key.endswith(METADATA):
            self.reads.append(key)

    def _get(self, key: str) -> bytes | None:
        self._record(key)
        return super()._get(key)

    def _get_bounded(self, key: str, max_size: int) -> bytes | None:
        self._record(key)
        return super()._get_bounded(key, max_size)

    def _get_encoded(self, key: str) -> Any:
        self._record(key)
        return super()._get_encoded(key)

    def _get_with_version(self, key: str, *args: Any) -> Any:  # type: ignore[override]
        self._record(key)
        return super()._get_with_version(key, *args)

    def _get_range_with_version(self, key: str, *args: Any) -> Any:  # type: ignore[override]
        self._record(key)
        return super()._get_range_with_version(key, *args)

    def _put_if_version(self, key: str, *args: Any) -> Any:  # type: ignore[override]
        if not key.endswith(METADATA):
            self.puts += 1
            if self.fail_after is not None and self.puts > self.fail_after:
                raise OSError(28, "No space left on device")
            if self.gate is not None:
                self.gate.wait()
        return super()._put_if_version(key, *args)


def test_frames_stream_into_a_new_precomputed_volume() -> None:
    frames = frames_xy(37)
    with ba.stream("memory://stream-new", axis="z", shape=(40, 24), dtype="uint16",
                   chunks=(16, 16, 8), checkpoint_seconds=0) as s:  # fmt: skip
        for f in frames:
            s.append(f)
    stats = s.stats
    assert (stats.frames, stats.written, stats.lag) == (37, 37, 0)
    assert stats.bytes == frames.nbytes
    assert stats.checkpointed == 37
    vol = ba.open("memory://stream-new")
    assert vol.shape == (40, 24, 37)
    np.testing.assert_array_equal(vol[:, :, :], np.moveaxis(frames, 0, 2))


def test_blocks_of_several_frames_and_zarr_dims() -> None:
    frames = frames_xy(21, (3, 32, 32))  # (t, c, y, x)
    dims = ("t", "c", "y", "x")
    with ba.stream("memory://stream-zarr.zarr", axis="t", shape=(3, 32, 32), dtype="uint16",
                   dims=dims, chunks=(4, 1, 16, 16), format="zarr") as s:  # fmt: skip
        s.append(frames[0])
        s.append(frames[1:11])  # a block crossing a chunk boundary
        for f in frames[11:]:
            s.append(f)
    vol = ba.open("memory://stream-zarr.zarr")
    assert vol.shape == (21, 3, 32, 32)
    np.testing.assert_array_equal(vol[...], frames)


def test_no_chunk_is_read_and_empty_chunks_are_skipped() -> None:
    store = RecordingStore("stream-noread")
    frames = frames_xy(20)
    frames[8:16] = 0  # one slab of chunks that hold the fill value alone
    with ba.stream(store, axis="z", shape=(40, 24), dtype="uint16", chunks=(16, 16, 8),
                   checkpoint_seconds=0) as s:  # fmt: skip
        for f in frames:
            s.append(f)
    assert store.reads == []
    vol = ba.open(store)
    np.testing.assert_array_equal(vol[:, :, :], np.moveaxis(frames, 0, 2))
    keys = set(store.list())
    assert not any(k.endswith("_8-16") for k in keys)
    assert any(k.endswith("_0-8") for k in keys)
    assert any(k.endswith("_16-20") for k in keys)


def test_checkpoints_show_whole_slabs_while_streaming() -> None:
    frames = frames_xy(30)
    s = ba.stream("memory://stream-live", axis="z", shape=(40, 24), dtype="uint16",
                  chunks=(16, 16, 8), checkpoint_seconds=0, queue_bytes=1)  # fmt: skip
    for f in frames[:19]:
        s.append(f)
    # queue_bytes=1 lets one slab wait: appending the third slab's frames waited for the first.
    seen = ba.open("memory://stream-live")
    assert seen.shape[2] in (8, 16)
    np.testing.assert_array_equal(seen[:, :, :], np.moveaxis(frames[: seen.shape[2]], 0, 2))
    for f in frames[19:]:
        s.append(f)
    s.close()
    assert ba.open("memory://stream-live").shape[2] == 30
    with pytest.raises(StreamClosedError):
        s.append(frames[0])


def _stored(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    "options",
    [
        {"chunks": (16, 16, 8)},
        {"chunks": (16, 16, 8), "compression": "gzip"},
        {"chunks": (8, 8, 4), "sharding": True, "shard_size_bytes": 8 * 8 * 4 * 2 * 8},
        {"format": "zarr", "dims": ("z", "y", "x"), "chunks": (8, 16, 16)},
        {
            "format": "zarr",
            "dims": ("z", "y", "x"),
            "chunks": (8, 16, 16),
            "sharding": True,
            "compression": "zstd",
        },
        # Inner chunks cut by the frame's edges (24 of 32, 40 of 64), raw: put from the slab.
        {
            "format": "zarr",
            "dims": ("z", "y", "x"),
            "chunks": (8, 32, 32),
            "sharding": {"chunk_shape": [4, 16, 16]},
            "compression": None,
            "fill_value": 3,
        },
        {
            "format": "zarr",
            "dims": ("z", "y", "x"),
            "chunks": (8, 32, 32),
            "sharding": {"chunk_shape": [4, 16, 16]},
            "compression": "blosc",
        },
    ],
    ids=[
        "precomputed",
        "precomputed-gzip",
        "precomputed-sharded",
        "zarr",
        "zarr-sharded",
        "zarr-sharded-raw-edges",
        "zarr-sharded-blosc",
    ],
)
def test_stream_writes_the_bytes_a_whole_write_does(tmp_path: Path, options: dict) -> None:
    n = 37
    zarr = options.get("format") == "zarr"
    frames = frames_xy(n, (24, 40))  # (y, x) for Zarr; read as (x, y) for precomputed
    sharded = options.get("sharding") and not zarr
    frame_shape = (24, 40)
    full = (n, 24, 40) if zarr else (24, 40, n)
    axis = "z"
    extra: dict[str, Any] = {"max_shape": (24, 40, 64)} if sharded else {}
    with ba.stream(str(tmp_path / "s"), axis=axis, shape=frame_shape, dtype="uint16",
                   checkpoint_seconds=0, **options, **extra) as s:  # fmt: skip
        for f in frames:
            s.append(f)
    if sharded:
        ref = ba.create(str(tmp_path / "r"), shape=(24, 40, 0), dtype="uint16", **options,
                        **extra)  # fmt: skip
        ref.resize((24, 40, n))
    else:
        ref = ba.create(str(tmp_path / "r"), shape=full, dtype="uint16", **options)
    ref[...] = frames if zarr else np.moveaxis(frames, 0, 2)
    ref.close()
    a, b = _stored(tmp_path / "s"), _stored(tmp_path / "r")
    assert sorted(a) == sorted(b)
    assert len(a) > 2
    for key in a:
        if not key.endswith(METADATA):
            assert a[key] == b[key], key
    got = ba.open(str(tmp_path / "s"))[...]
    np.testing.assert_array_equal(got, frames if zarr else np.moveaxis(frames, 0, 2))


def test_two_cameras_write_their_own_channels_at_once() -> None:
    url = "memory://stream-two.zarr"
    ba.create(url, shape=(0, 2, 32, 32), dtype="uint16", dims=("t", "c", "y", "x"),
              chunks=(4, 1, 16, 16), format="zarr").close()  # fmt: skip
    frames = {c: frames_xy(23, (32, 32), start=1000 * c) for c in (0, 1)}

    # Both open before either writes: a stream starts at the end stored when it opens.
    streams = [ba.stream(url, axis="t", region={"c": c}, resume=True, checkpoint_seconds=0)
               for c in (0, 1)]  # fmt: skip

    def camera(c: int) -> None:
        with streams[c] as s:
            for f in frames[c]:
                s.append(f)

    threads = [threading.Thread(target=camera, args=(c,)) for c in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    vol = ba.open(url)
    assert vol.shape == (23, 2, 32, 32)
    for c in (0, 1):
        np.testing.assert_array_equal(vol[:, c], frames[c])


def test_region_off_the_write_units_is_refused() -> None:
    vol = ba.create("memory://stream-region.zarr", shape=(0, 32, 32), dtype="uint8",
                    dims=("t", "y", "x"), chunks=(4, 16, 16), format="zarr")  # fmt: skip
    with pytest.raises(InvalidArgumentError, match="whole write units"):
        ba.stream(vol, axis="t", region={"y": slice(0, 8)})


def test_wrong_frames_are_refused_with_typed_errors() -> None:
    with ba.stream("memory://stream-wrong", axis="z", shape=(40, 24), dtype="uint16",
                   chunks=(16, 16, 8)) as s:  # fmt: skip
        with pytest.raises(ShapeMismatchError, match=r"\(40, 24\)"):
            s.append(np.zeros((24, 40), np.uint16))
        with pytest.raises(DtypeMismatchError, match="uint16"):
            s.append(np.zeros((40, 24), np.float32))
        s.append(np.ones((40, 24), np.uint16))
    np.testing.assert_array_equal(ba.open("memory://stream-wrong")[:, :, :], 1)


def test_an_existing_dataset_needs_resume() -> None:
    ba.create("memory://stream-exists", shape=(8, 8, 0), dtype="uint8").close()
    with pytest.raises(DatasetExistsError, match="resume=True"):
        ba.stream("memory://stream-exists", axis="z")


def test_a_failing_store_raises_and_keeps_the_last_checkpoint() -> None:
    store = RecordingStore("stream-fail")
    frames = frames_xy(40)
    s = ba.stream(store, axis="z", shape=(40, 24), dtype="uint16", chunks=(16, 16, 8),
                  checkpoint_seconds=0, queue_bytes=1)  # fmt: skip
    for f in frames[:16]:
        s.append(f)
    store.fail_after = store.puts  # the disk is full from now on

    def acquire() -> None:
        for f in frames[16:]:
            s.append(f)
        s.close()

    with pytest.raises(StreamWriteError, match="No space left") as info:
        acquire()
    assert isinstance(info.value, OSError)
    with pytest.raises(StreamWriteError):
        s.close()
    vol = ba.open(store)
    assert vol.shape[2] in (8, 16)
    np.testing.assert_array_equal(vol[:, :, :], np.moveaxis(frames[: vol.shape[2]], 0, 2))


def test_resume_after_a_clean_close_continues_the_partial_slab() -> None:
    url = "memory://stream-resume"
    frames = frames_xy(30)
    with ba.stream(url, axis="z", shape=(40, 24), dtype="uint16", chunks=(16, 16, 8)) as s:
        for f in frames[:13]:
            s.append(f)
    with ba.stream(url, axis="z", resume=True) as s:
        assert s.position == 13
        for f in frames[13:]:
            s.append(f)
    np.testing.assert_array_equal(ba.open(url)[:, :, :], np.moveaxis(frames, 0, 2))


CHILD = """
import sys
import numpy as np
import bigarrays as ba
sys.path.insert(0, {tests!r})
from test_streaming import frames_xy
s = ba.stream({url!r}, axis="z", shape=(40, 24), dtype="uint16", chunks=(16, 16, 8),
              checkpoint_seconds=0, queue_bytes=1)
for i in range(100000):
    s.append(frames_xy(1, start=i)[0])
    if i % 8 == 0:
        print(s.stats.checkpointed, flush=True)
"""


def kill_once_checkpointed(script: str, frames: int) -> None:
    """Run a writer ``script`` that prints its checkpointed extent, and kill it with SIGKILL once
    that reaches ``frames``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)],
                             stdout=subprocess.PIPE, text=True, env=env)  # fmt: skip
    assert child.stdout is not None
    for line in child.stdout:
        if int(line) >= frames:
            break
    child.send_signal(signal.SIGKILL)
    child.wait()


def test_a_killed_writer_loses_nothing_before_its_checkpoint(tmp_path: Path) -> None:
    url = str(tmp_path / "run")
    kill_once_checkpointed(CHILD.format(tests=str(Path(__file__).parent), url=url), 40)
    vol = ba.open(url)
    n = vol.shape[2]
    assert n >= 40
    assert n % 8 == 0
    np.testing.assert_array_equal(vol[:, :, :], np.moveaxis(frames_xy(n), 0, 2))
    with ba.stream(url, axis="z", resume=True) as s:
        assert s.position == n
        for f in frames_xy(13, start=n):
            s.append(f)
    vol = ba.open(url)
    assert vol.shape[2] == n + 13
    np.testing.assert_array_equal(vol[:, :, :], np.moveaxis(frames_xy(n + 13), 0, 2))


def _ingest(*argv: str) -> int:
    from bigarrays.cli import main

    return main(list(argv))


def test_ingest_a_folder_of_tiffs_into_precomputed(tmp_path: Path) -> None:
    import tifffile

    frames = frames_xy(11, (24, 40))  # TIFF pages are (y, x)
    for i, f in enumerate(frames):  # 2 < 10 by number, not by text: natural order matters
        tifffile.imwrite(tmp_path / f"frame{i}.tif", f)
    dst = str(tmp_path / "vol")
    assert _ingest("ingest", str(tmp_path / "frame*.tif"), dst, "--axis", "z",
                   "--chunks", "16,16,4", "-q") == 0  # fmt: skip
    vol = ba.open(dst)
    assert vol.shape == (40, 24, 11)
    np.testing.assert_array_equal(vol[:, :, :].T, frames)


def test_ingest_a_multipage_tiff_and_a_npy_stack_into_zarr(tmp_path: Path) -> None:
    import tifffile

    frames = frames_xy(9, (24, 40))
    tifffile.imwrite(tmp_path / "stack.tif", frames)
    np.save(tmp_path / "stack.npy", frames)
    for name in ("stack.tif", "stack.npy"):
        dst = str(tmp_path / f"{name}.zarr")
        assert _ingest("ingest", str(tmp_path / name), dst, "--axis", "z", "--format", "zarr",
                       "--dims", "z,y,x", "--chunks", "4,16,16", "--compression", "zstd",
                       "-q") == 0  # fmt: skip
        np.testing.assert_array_equal(ba.open(dst)[...], frames)


def test_ingest_writes_a_pyramid_as_it_goes(tmp_path: Path) -> None:
    frames = frames_xy(12, (24, 40))
    np.save(tmp_path / "stack.npy", frames)
    dst = str(tmp_path / "v.ome.zarr")
    assert _ingest("ingest", str(tmp_path / "stack.npy"), dst, "--axis", "z", "--dims",
                   "z,y,x", "--chunks", "4,16,16", "--mips", "1", "--factor", "2,2,2",
                   "--method", "mean", "-q") == 0  # fmt: skip
    vol = ba.open(dst)
    assert vol.mips == 2
    ref = ba.create(tmp_path / "ref.ome.zarr", shape=frames.shape, dtype="uint16",
                    dims=("z", "y", "x"), chunks=(4, 16, 16))  # fmt: skip
    ref[...] = frames
    ref.downsample(factor=(2, 2, 2), num_mips=1, method="mean")
    np.testing.assert_array_equal(vol.at_mip(1)[...], ref.at_mip(1)[...])


def test_ingest_resume_skips_the_frames_stored(tmp_path: Path) -> None:
    frames = frames_xy(10, (24, 40))
    np.save(tmp_path / "a.npy", frames[:6])
    np.save(tmp_path / "b.npy", frames[6:])
    dst = str(tmp_path / "vol")
    assert _ingest("ingest", str(tmp_path / "a.npy"), dst, "--chunks", "8,8,4", "-q") == 0
    assert _ingest("ingest", str(tmp_path / "*.npy"), dst, "--resume", "-q") == 0
    np.testing.assert_array_equal(ba.open(dst)[:, :, :].T, frames)


def test_ingest_of_nothing_is_a_usage_error(tmp_path: Path, capsys: Any) -> None:
    assert _ingest("ingest", str(tmp_path / "*.tif"), str(tmp_path / "vol"), "-q") == 1
    assert "no files match" in capsys.readouterr().err


def test_a_sharded_precomputed_volume_needs_a_fixed_grid() -> None:
    from bigarrays.errors import ResizeRefusedError

    with pytest.raises(ResizeRefusedError, match="max_shape"):
        ba.stream("memory://stream-sharded", axis="z", shape=(16, 16), dtype="uint8",
                  chunks=(8, 8, 4), sharding=True)  # fmt: skip
    with ba.stream("memory://stream-sharded-fixed", axis="z", shape=(16, 16), dtype="uint8",
                   chunks=(8, 8, 4), sharding=True, max_shape=(16, 16, 64)) as s:  # fmt: skip
        s.append(np.full((16, 16, 10), 3, np.uint8))
    vol = ba.open("memory://stream-sharded-fixed")
    assert vol.shape == (16, 16, 10)
    np.testing.assert_array_equal(vol[:, :, :], 3)


def test_append_blocks_while_the_queue_is_full() -> None:
    store = RecordingStore("stream-backpressure")
    store.gate = threading.Event()
    frames = frames_xy(40)
    slab = frames[:8].nbytes
    s = ba.stream(store, axis="z", shape=(40, 24), dtype="uint16", chunks=(16, 16, 8),
                  queue_bytes=2 * slab)  # fmt: skip
    appended: list[int] = []

    def acquire() -> None:
        for i, f in enumerate(frames):
            s.append(f)
            appended.append(i)

    camera = threading.Thread(target=acquire)
    camera.start()
    camera.join(timeout=0.5)
    assert camera.is_alive()  # the store holds every put: the third full slab cannot queue
    assert len(appended) == 23
    stats = s.stats  # the 24th frame is in the slab that waits for room: appended, not returned
    assert (stats.frames, stats.written, stats.lag) == (24, 0, 24)
    store.gate.set()
    camera.join()
    s.close()
    np.testing.assert_array_equal(ba.open(store)[:, :, :], np.moveaxis(frames, 0, 2))
