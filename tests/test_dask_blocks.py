"""The default blocks of ``vol.to_dask()``: whole write units grown to a byte target.

One unit per block made a 512³ read 2,048 Dask tasks of one vol[box] each, at a third of a direct
read's speed; blocks of whole units of ~32 MiB keep the grid alignment and lose the overhead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import bigarrays as ba
from bigarrays.adapters.dask import DEFAULT_BLOCK_BYTES, grown_units


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
