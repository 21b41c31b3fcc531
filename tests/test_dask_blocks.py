"""The default blocks of ``vol.to_dask()``: whole write units grown to a byte target.

One unit per block made a 512³ read 2,048 Dask tasks of one vol[box] each, at a third of a direct
read's speed; blocks of whole units of ~32 MiB keep the grid alignment and lose the overhead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import bigarrays as ba
from bigarrays.adapters.dask import DEFAULT_BLOCK_BYTES, MIN_TASK_BYTES, grown_units


def test_default_blocks_are_whole_units_grown_to_the_byte_target(tmp_path: Path) -> None:
    vol = ba.create(tmp_path / "v", shape=(300, 200, 100), dtype="uint16", chunks=(32, 32, 16),
                    voxel_offset=(-7, 3, 5), progress=False)  # fmt: skip
    data = np.random.default_rng(3).integers(0, 60000, size=vol.shape).astype("uint16")
    vol[...] = data
    arr = vol.to_dask()
    inner = [sizes[1:-1] for sizes in arr.chunks]
    # Every block edge inside the volume lies on a chunk edge, anchored at the grid's origin.
    for axis, (sizes, chunk, lo) in enumerate(zip(arr.chunks, (32, 32, 16), (-7, 3, 5),
                                                   strict=True)):  # fmt: skip
        edges = lo + np.cumsum(sizes)[:-1]
        assert ((edges - lo) % chunk == 0).all(), axis
    assert all(len(set(s)) <= 1 for s in inner)
    block = max(arr.chunks[0]) * max(arr.chunks[1]) * max(arr.chunks[2]) * 2
    assert 32 * 32 * 16 * 2 < block <= DEFAULT_BLOCK_BYTES
    assert arr.npartitions <= 2
    np.testing.assert_array_equal(arr.compute(), data)
    assert vol.to_dask(chunks=(32, 32, 16)).chunks[0][:2] == (32, 32)  # chunks= still decides


def test_grown_units_fill_the_fastest_axis_first() -> None:
    # 64³ uint8 units over 8 x 8 x 8 of them, 32 MiB: F order grows x to the extent, then y,
    # then z with what is left; C order the other way round.
    assert grown_units((64, 64, 64), (8, 8, 8), 1, 32 << 20, "F") == (512, 512, 128)
    assert grown_units((64, 64, 64), (8, 8, 8), 1, 32 << 20, "C") == (128, 512, 512)
    # A unit above the target stays one unit.
    assert grown_units((64, 64, 64), (8, 8, 8), 8, 1 << 10, "F") == (64, 64, 64)


def test_store_merges_small_dask_blocks_into_blocks_of_the_byte_target(tmp_path: Path) -> None:
    import dask.array as da

    vol = ba.create(tmp_path / "v", shape=(256, 256, 128), dtype="uint8", chunks=(32, 32, 32),
                    voxel_offset=(5, -3, 0), progress=False)  # fmt: skip
    data = np.random.default_rng(4).integers(0, 255, size=vol.shape, dtype=np.uint8)
    lazy = ba.store(da.from_array(data, chunks=32), vol, compute=False)
    stored = next(k for k in lazy.dask.layers if k.startswith("bigarrays-store"))
    # 8 MiB in 32 KiB Dask chunks: one task, not 256.
    assert len(lazy.dask.layers[stored]) == 1
    lazy.compute(scheduler="threads")
    np.testing.assert_array_equal(ba.open(vol.url)[...], data)


def test_store_writes_aligned_blocks_as_they_come(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Blocks of whole units and of MIN_TASK_BYTES or more are not rechunked: a rechunk would
    copy every voxel once more for fewer tasks that cost less than that copy."""
    import dask.array as da

    vol = ba.create(tmp_path / "v", shape=(256, 256, 64), dtype="uint8", chunks=(32, 32, 32),
                    voxel_offset=(32, -32, 0), progress=False)  # fmt: skip
    data = np.random.default_rng(5).integers(0, 255, size=vol.shape, dtype=np.uint8)
    darr = da.from_array(data, chunks=(128, 128, 64))  # 1 MiB blocks, edges on chunk edges
    assert MIN_TASK_BYTES <= 128 * 128 * 64

    def refuse(*_: Any, **__: Any) -> None:
        raise AssertionError("rechunked")

    monkeypatch.setattr(da.Array, "rechunk", refuse)
    lazy = ba.store(darr, vol, compute=False)
    stored = next(k for k in lazy.dask.layers if k.startswith("bigarrays-store"))
    assert len(lazy.dask.layers[stored]) == darr.npartitions == 4
    assert int(lazy.compute(scheduler="threads")) == data.size
    np.testing.assert_array_equal(ba.open(vol.url)[...], data)
    # Off the unit edges they are rechunked, whatever their size.
    monkeypatch.undo()
    shifted = ba.create(tmp_path / "w", shape=(256, 256, 64), dtype="uint8", chunks=(32, 32, 32),
                        voxel_offset=(16, 0, 0), progress=False)  # fmt: skip
    ba.store(darr, shifted, scheduler="threads")
    np.testing.assert_array_equal(ba.open(shifted.url)[...], data)


def test_store_computes_the_writes_and_nothing_after_them(tmp_path: Path) -> None:
    """compute=True runs the write tasks alone: no reduction of their counts, which in a graph
    of small blocks doubled the tasks the scheduler ran."""
    import dask.array as da
    from dask.callbacks import Callback

    vol = ba.create(tmp_path / "v", shape=(128, 128, 128), dtype="uint8", chunks=(64, 64, 64),
                    progress=False)  # fmt: skip
    data = np.random.default_rng(6).integers(0, 255, size=vol.shape, dtype=np.uint8)
    keys: list[str] = []

    def seen(key: Any, *_: Any) -> None:
        keys.append(key[0] if isinstance(key, tuple) else key)

    with Callback(posttask=seen):  # type: ignore[no-untyped-call]
        ba.store(da.from_array(data, chunks=(64, 128, 128)), vol, scheduler="sync")
    writes = [k for k in keys if str(k).startswith("bigarrays-store-")]
    assert len(writes) >= 2
    # Only the source's blocks, the writes and Dask's own finalize step ran: no "sum-..." tree.
    assert all(str(k).startswith(("bigarrays-", "array-", "finalize-")) for k in keys), set(keys)
    np.testing.assert_array_equal(ba.open(vol.url)[...], data)
