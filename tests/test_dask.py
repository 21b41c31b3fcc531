"""Dask arrays out of and into BigArrays: vol.to_dask(), ba.store(), ba.from_dask(), to_xarray().

Oracle: NumPy. Every test compares what Dask computes, or what a Dask write leaves in the volume,
with the same operation on a NumPy array. The cluster tests run on a process-based LocalCluster
on 127.0.0.1, so the graph, the volume and the store really travel by pickle.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import cloudpickle
import dask
import dask.array as da
import numpy as np
import pytest
import xarray
from distributed import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bigarrays as ba
from bigarrays.errors import (
    DtypeMismatchError,
    OutOfBoundsError,
    ReadOnlyError,
    ShapeMismatchError,
    UnsupportedError,
)
from bigarrays.stores import open_store
from bigarrays.testing.counting import CountingStore

RNG = np.random.default_rng(16)


@pytest.fixture
def client(dask_client: Client) -> Client:
    return dask_client


def _filled(vol: ba.BigArray) -> np.ndarray:
    data = RNG.integers(0, 250, size=vol.shape).astype(vol.dtype)
    vol[...] = data
    return data


def _precomputed(url: Any, **kw: Any) -> ba.BigArray:
    options = {"shape": (53, 41, 19), "dtype": "uint16", "chunks": (8, 8, 8),
               "voxel_offset": (-37, 5, -3), "progress": False} | kw  # fmt: skip
    return ba.create(url, **options)


def _sharded(url: Any, **kw: Any) -> ba.BigArray:
    # Shards of 2 x 2 x 2 chunks: the write unit is a 16-voxel cube.
    return _precomputed(url, sharding=True, shard_size_bytes=8 * 2 * 8**3, **kw)


def _ome(url: Any, **kw: Any) -> ba.BigArray:
    options = {"shape": (2, 19, 41, 53), "dtype": "uint16", "chunks": (1, 8, 8, 8),
               "dims": ("c", "z", "y", "x"), "resolution": (40, 8, 4),
               "progress": False} | kw  # fmt: skip
    return ba.create(url, **options)


KINDS = {
    "precomputed": (_precomputed, ""),
    "sharded": (_sharded, ""),
    "ome-zarr": (_ome, ".ome.zarr"),
}


def _url(tmp_path: Path, kind: str) -> str:
    return str(tmp_path / f"{kind}-{uuid.uuid4().hex[:8]}{KINDS[kind][1]}")


def _make(tmp_path: Path, kind: str, **kw: Any) -> ba.BigArray:
    return KINDS[kind][0](_url(tmp_path, kind), **kw)


# -- out ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(KINDS))
def test_to_dask_is_the_volume_from_its_first_voxel(tmp_path: Path, kind: str) -> None:
    vol = _make(tmp_path, kind)
    data = _filled(vol)
    arr = vol.to_dask()
    assert arr.shape == vol.shape
    assert arr.dtype == vol.dtype
    assert f"offset({','.join(map(str, vol.bounds.start))})" in arr.name
    # Blocks are the write units, tiling the grid from its origin.
    unit = [vol.level.unit[g] for g in vol.level.visible]
    for sizes, u, n in zip(arr.chunks, unit, vol.shape, strict=True):
        assert sizes[:-1] == (u,) * (len(sizes) - 1)
        assert sum(sizes) == n
    got = arr.compute(scheduler="threads")
    np.testing.assert_array_equal(got, data)
    np.testing.assert_array_equal(got, vol[...])
    # Slices Dask pushes down into a block's read: steps, reversed axes, ints.
    key = (slice(3, 20, 3), 7, slice(None, None, -2))
    if vol.ndim == 4:
        key = (1, *key)
    np.testing.assert_array_equal(arr[key].compute(scheduler="threads"), data[key])
    assert int(arr.sum().compute(scheduler="threads")) == int(data.sum(dtype=np.int64))


def test_dask_index_zero_is_bounds_start_not_coordinate_zero(tmp_path: Path) -> None:
    vol = _precomputed(tmp_path / "v")
    vol[...] = 0
    vol[-37, 5, -3] = 7  # the first voxel
    vol[0, 10, 0] = 9  # coordinate 0 on x and z
    arr = vol.to_dask()
    assert int(arr[0, 0, 0].compute()) == 7
    assert int(arr[37, 5, 3].compute()) == 9


def test_to_dask_bigger_blocks_are_whole_units(tmp_path: Path) -> None:
    vol = _sharded(tmp_path / "v")  # unit 16
    assert vol.to_dask(chunks=20).chunks == ((32, 21), (32, 9), (19,))
    assert vol.to_dask(chunks=(16, -1, None)).chunks == ((16, 16, 16, 5), (41,), (19,))
    auto = vol.to_dask(chunks="auto")
    assert all(s % 16 == 0 for sizes in auto.chunks for s in sizes[:-1])
    with pytest.raises(ValueError, match="positive int"):
        vol.to_dask(chunks=(0, 16, 16))
    with pytest.raises(ValueError, match="name 2 axes"):
        vol.to_dask(chunks=(16, 16))


def test_to_dask_graph_pickles_and_runs_elsewhere(tmp_path: Path) -> None:
    vol = _sharded(tmp_path / "v")
    data = _filled(vol)
    arr = pickle.loads(pickle.dumps(vol.to_dask()))
    np.testing.assert_array_equal(arr.compute(scheduler="sync"), data)


def test_to_dask_on_a_process_cluster(tmp_path: Path, client: Client) -> None:
    for kind in ("sharded", "ome-zarr"):
        vol = _make(tmp_path, kind)
        data = _filled(vol)
        arr = vol.to_dask()
        assert int(arr.sum().compute(scheduler=client)) == int(data.sum(dtype=np.int64))
        np.testing.assert_array_equal(arr.compute(scheduler=client), data)


# -- in ----------------------------------------------------------------------------------------
def _irregular(data: np.ndarray) -> da.Array:
    """``data`` in uneven blocks that line up with no grid."""
    chunks = []
    for n in data.shape:
        sizes, left, k = [], n, 0
        while left:
            s = min(left, (3, 11, 7, 1, 13)[k % 5])
            sizes.append(s)
            left -= s
            k += 1
        chunks.append(tuple(sizes))
    return da.from_array(data, chunks=tuple(chunks))


@pytest.mark.parametrize("kind", ["precomputed", "sharded"])
def test_store_unaligned_irregular_blocks_loses_nothing(tmp_path: Path, kind: str) -> None:
    vol = _make(tmp_path, kind)
    model = _filled(vol)
    new = RNG.integers(0, 60000, size=(30, 17, 13)).astype("uint16")
    region = (slice(-30, 0), slice(9, 26), slice(-1, 12))  # cuts units on every side
    ba.store(_irregular(new), vol, region, scheduler="threads")
    model[7:37, 4:21, 2:15] = new
    np.testing.assert_array_equal(vol[...], model)


@pytest.mark.parametrize("kind", ["precomputed", "sharded"])
def test_from_dask_on_a_process_cluster(tmp_path: Path, client: Client, kind: str) -> None:
    vol = _make(tmp_path, kind)
    model = _filled(vol)
    new = RNG.integers(0, 60000, size=(45, 33, 17)).astype("uint16")
    back = ba.from_dask(_irregular(new), vol, offset=(-35, 6, -2), scheduler=client)
    assert back is vol
    model[2:47, 1:34, 1:18] = new
    np.testing.assert_array_equal(ba.open(vol.url)[...], model)


def _die_once(block: np.ndarray, marker: str) -> np.ndarray:
    """Kill the worker process that computes the first block to get here."""
    if not block.size:
        return block  # Dask probing the function's output type, in this process
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return block
    os._exit(1)


def test_a_worker_killed_mid_write_loses_nothing(tmp_path: Path, client: Client) -> None:
    vol = _sharded(tmp_path / "v")
    model = _filled(vol)
    new = RNG.integers(0, 60000, size=(45, 33, 17)).astype("uint16")
    marker = str(tmp_path / "died")
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        darr = _irregular(new).map_blocks(_die_once, marker, meta=np.empty((0, 0, 0), new.dtype))
        ba.store(darr, vol, (slice(-35, 10), slice(6, 39), slice(-2, 15)), scheduler=client)
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert os.path.exists(marker)  # a worker did die, and its tasks ran again elsewhere
    model[2:47, 1:34, 1:18] = new
    np.testing.assert_array_equal(ba.open(vol.url)[...], model)


def test_from_dask_creates_the_dataset(tmp_path: Path) -> None:
    data = RNG.integers(0, 255, size=(40, 30, 20, 3)).astype("uint8")
    vol = ba.from_dask(_irregular(data), tmp_path / "new", offset=(-5, 7, -9), chunks=(16, 8, 8),
                       resolution=(4, 4, 40))  # fmt: skip
    assert isinstance(vol, ba.BigArray)
    assert vol.bounds == ba.Box((-5, 7, -9), (35, 37, 11))
    assert vol.num_channels == 3
    assert vol.chunks == (16, 8, 8)
    np.testing.assert_array_equal(ba.open(tmp_path / "new")[...], data)
    zarr = ba.from_dask(_irregular(data[..., 0]), tmp_path / "new.zarr", dims=("x", "y", "z"))
    np.testing.assert_array_equal(zarr[...], data[..., 0])


def test_store_writes_each_shard_once_whole(tmp_path: Path) -> None:
    store = CountingStore(open_store(str(tmp_path / "v")))
    vol = _sharded(store)
    store.reset()
    data = RNG.integers(0, 60000, size=vol.shape).astype("uint16")
    # Blocks of 40 would cut the shards at 32..48; they are rechunked to whole shards: by
    # default blocks of up to 32 MiB (here one, the whole volume), or the blocks asked for.
    darr = da.from_array(data, chunks=(40, 41, 19))
    lazy = ba.store(darr, vol, compute=False)
    stored = next(k for k in lazy.dask.layers if k.startswith("bigarrays-store"))
    assert len(lazy.dask.layers[stored]) == 1
    lazy = ba.store(darr, vol, blocks=(32, 48, 16), compute=False)
    assert isinstance(lazy, da.Array)
    stored = next(k for k in lazy.dask.layers if k.startswith("bigarrays-store"))
    assert len(lazy.dask.layers[stored]) == 2 * 1 * 2  # blocks of 32 x 48 x 16 voxels
    assert int(lazy.compute(scheduler="threads")) == data.size
    assert store.counts["put"] == 4 * 3 * 2  # every shard, once
    assert store.reads == 0  # and none merged
    np.testing.assert_array_equal(vol[...], data)


def test_store_compute_false_writes_only_when_computed(tmp_path: Path) -> None:
    vol = _precomputed(tmp_path / "v")
    data = RNG.integers(0, 60000, size=vol.shape).astype("uint16")
    lazy = ba.store(da.from_array(data, chunks=10), vol, compute=False)
    assert not vol[...].any()
    assert int(dask.compute(lazy, scheduler="threads")[0]) == data.size
    np.testing.assert_array_equal(vol[...], data)


def test_store_without_conditional_writes_refuses_partial_units(tmp_path: Path) -> None:
    url = f"fsspec+file://{tmp_path / 'vol'}"
    vol = _sharded(url)
    darr = da.ones((10, 16, 16), dtype="uint16", chunks=5)
    with pytest.raises(UnsupportedError, match=r"such as the box Box\(-37:-21, 5:21, -3:13\)"):
        ba.store(darr, vol, (slice(-37, -27), slice(5, 21), slice(-3, 13)))
    assert not vol[...].any()  # refused before a block was written
    # Whole shards need no merge, whatever the Dask array's own blocks.
    ba.store(da.ones((16, 16, 16), dtype="uint16", chunks=5), vol,
             (slice(-37, -21), slice(5, 21), slice(-3, 13)), scheduler="threads")  # fmt: skip
    assert int(vol[...].sum()) == 16**3


def test_store_refuses_bad_input_before_writing(tmp_path: Path) -> None:
    vol = _precomputed(tmp_path / "v")
    with pytest.raises(ShapeMismatchError, match="cannot fill"):
        ba.store(da.zeros((5, 5, 5), dtype="uint16"), vol)
    with pytest.raises(OutOfBoundsError, match="outside the volume's bounds"):
        ba.store(da.zeros((5, 5, 5), dtype="uint16"), vol, ba.Box((-40, 5, -3), (-35, 10, 2)))
    with pytest.raises(DtypeMismatchError, match="casting"):
        ba.store(da.zeros(vol.shape, dtype="int64"), vol)
    with pytest.raises(ReadOnlyError, match="read-only"):
        ba.store(da.zeros(vol.shape, dtype="uint16"), ba.open(vol.url))
    with pytest.raises(ValueError, match="Dask array"):
        ba.store(np.zeros(vol.shape, dtype="uint16"), vol)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="voxel_offset"):
        ba.from_dask(da.zeros((4, 4, 4)), tmp_path / "w", voxel_offset=(1, 1, 1))


def test_store_into_a_plane(tmp_path: Path) -> None:
    vol = _precomputed(tmp_path / "v")
    plane = RNG.integers(0, 60000, size=(53, 19)).astype("uint16")
    ba.store(da.from_array(plane, chunks=7), vol, (slice(None), 12, slice(None)))
    np.testing.assert_array_equal(vol[:, 12, :], plane)
    assert not vol[:, 11, :].any()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_store_then_to_dask_matches_numpy(data: st.DataObject) -> None:
    shape = data.draw(st.tuples(*[st.integers(1, 24)] * 3), label="shape")
    offset = data.draw(st.tuples(*[st.integers(-20, 20)] * 3), label="offset")
    chunks = data.draw(st.tuples(*[st.integers(1, 9)] * 3), label="chunks")
    sharded = data.draw(st.booleans(), label="sharded")
    extra: dict[str, Any] = {}
    if sharded:
        extra = {"sharding": True, "shard_size_bytes": 8 * int(np.prod(chunks))}
    vol = ba.create(f"memory://dask-{uuid.uuid4().hex}", shape=shape, dtype="uint8",
                    chunks=chunks, voxel_offset=offset, progress=False, **extra)  # fmt: skip
    model = np.zeros(shape, dtype="uint8")
    for _ in range(2):
        lo = [data.draw(st.integers(0, n - 1)) for n in shape]
        hi = [data.draw(st.integers(a + 1, n)) for a, n in zip(lo, shape, strict=True)]
        size = tuple(b - a for a, b in zip(lo, hi, strict=True))
        block = data.draw(st.tuples(*[st.integers(1, 10)] * 3), label="dask chunks")
        new = RNG.integers(1, 255, size=size).astype("uint8")
        region = tuple(slice(o + a, o + b) for o, a, b in zip(offset, lo, hi, strict=True))
        ba.store(da.from_array(new, chunks=block), vol, region, scheduler="sync")
        model[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))] = new
    out = vol.to_dask(chunks=data.draw(st.sampled_from([None, 7, "auto"]), label="out chunks"))
    np.testing.assert_array_equal(out.compute(scheduler="sync"), model)


# -- xarray ------------------------------------------------------------------------------------
def test_to_xarray_has_physical_coordinates(tmp_path: Path) -> None:
    vol = _precomputed(tmp_path / "v", resolution=(4, 6, 40), num_channels=2)
    data = _filled(vol)
    arr = vol.to_xarray()
    assert isinstance(arr, xarray.DataArray)
    assert arr.dims == ("x", "y", "z", "c")
    np.testing.assert_array_equal(arr.x, np.arange(-37, 16) * 4.0)
    np.testing.assert_array_equal(arr.z, np.arange(-3, 16) * 40.0)
    np.testing.assert_array_equal(arr.c, [0, 1])
    assert arr.x.attrs["units"] == "nanometer"
    assert arr.attrs["voxel_offset"] == (-37, 5, -3)
    picked = arr.sel(x=-148.0, y=60.0, z=0.0, c=1).compute()  # voxel (-37, 10, 0)
    assert int(picked) == int(data[0, 5, 3, 1])


def test_to_xarray_of_an_ome_zarr_image(tmp_path: Path) -> None:
    vol = _ome(tmp_path / "i.ome.zarr")
    data = _filled(vol)
    arr = vol.to_xarray()
    assert arr.dims == ("c", "z", "y", "x")
    np.testing.assert_array_equal(arr.x, np.arange(53) * 4.0)
    np.testing.assert_array_equal(arr.z, np.arange(19) * 40.0)
    assert arr.z.attrs["units"] == "nanometer"
    np.testing.assert_array_equal(arr.values, data)


def test_import_bigarrays_does_not_import_dask() -> None:
    code = "import sys, bigarrays; assert 'dask' not in sys.modules; bigarrays.store"
    subprocess.run([sys.executable, "-c", code], check=True)
