"""Growable arrays: ``vol.resize`` and ``vol.append`` against a NumPy model, read back by
TensorStore and zarr-python, raced by processes, and refused where the format would need a
rewrite."""

from __future__ import annotations

import multiprocessing
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorstore as ts
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bigarrays as ba
from bigarrays.box import Box
from bigarrays.errors import ResizeRefusedError, ShapeMismatchError
from bigarrays.stores.memory import drop_namespace

CHUNKS = (4, 3, 5)
#: The model's voxels: every array in these tests stays inside this box.
LO, HI = -16, 32


@dataclass(frozen=True)
class Kind:
    name: str
    format: str
    #: The grid ``max_bounds`` fixes (precomputed), or None.
    max_bounds: Box | None = None
    sharded: bool = False

    @property
    def zarr(self) -> bool:
        return self.format != "precomputed"

    def create(self, url: str | Path, bounds: Box) -> ba.BigArray:
        options: dict[str, Any] = {"dtype": "uint16", "progress": False}
        if self.zarr:
            options["chunks"] = tuple(2 * c for c in CHUNKS) if self.sharded else CHUNKS
            if self.sharded:
                options["sharding"] = {"chunk_shape": list(CHUNKS)}
            return ba.create(url, shape=bounds.shape, format=self.format, **options)
        if self.sharded:
            options["sharding"] = True
        return ba.create(
            url, shape=bounds.shape, voxel_offset=bounds.start, chunks=CHUNKS,
            max_bounds=self.max_bounds, **options,
        )  # fmt: skip


FIXED = Box((-12, -9, -10), (20, 21, 25))
KINDS = [
    Kind("precomputed", "precomputed"),
    Kind("precomputed-max", "precomputed", max_bounds=FIXED),
    Kind("precomputed-sharded-max", "precomputed", max_bounds=FIXED, sharded=True),
    Kind("zarr", "zarr"),
    Kind("zarr-sharded", "zarr", sharded=True),
    Kind("zarr2", "zarr2"),
]


class Model:
    """The voxels of an array that grows and shrinks: 0 outside its bounds."""

    def __init__(self, bounds: Box) -> None:
        self.bounds = bounds
        self.voxels = np.zeros((HI - LO,) * 3, dtype=np.uint16)

    def _at(self, box: Box) -> tuple[slice, ...]:
        return box.slices((LO, LO, LO))

    def read(self, box: Box) -> np.ndarray:
        out = np.zeros(box.shape, dtype=np.uint16)
        inside = box.intersect(self.bounds)
        if not inside.empty:
            out[inside.slices(box.start)] = self.voxels[self._at(inside)]
        return out

    def write(self, box: Box, block: np.ndarray) -> None:
        self.voxels[self._at(box)] = block

    def resize(self, bounds: Box) -> None:
        keep = self.read(bounds)
        self.voxels[:] = 0
        self.bounds = bounds
        if not bounds.empty:
            self.write(bounds, keep)


def _new_bounds(draw: Any, kind: Kind, now: Box) -> Box:
    if kind.zarr:
        return Box((0, 0, 0), tuple(draw(st.integers(0, 20)) for _ in range(3)))
    if kind.max_bounds is not None:
        m = kind.max_bounds
        start = [draw(st.integers(m.start[d], m.stop[d])) for d in range(3)]
        return Box(start, [draw(st.integers(start[d], m.stop[d])) for d in range(3)])
    # A grid that follows the bounds moves its origin by whole chunks.
    start = [now.start[d] + CHUNKS[d] * draw(st.integers(-2, 1)) for d in range(3)]
    start = [max(LO, min(s, HI - 1)) for s in start]
    start = [s if (s - now.start[d]) % CHUNKS[d] == 0 else now.start[d] for d, s in
             enumerate(start)]  # fmt: skip
    return Box(start, [draw(st.integers(start[d], min(HI, start[d] + 20))) for d in range(3)])


def _room(kind: Kind, bounds: Box, axis: int) -> int:
    """How far the array may grow along ``axis`` in these tests."""
    top = kind.max_bounds.stop[axis] if kind.sharded and kind.max_bounds is not None else HI
    return min(top, HI) - bounds.stop[axis]


def _check(vol: ba.BigArray, model: Model) -> None:
    b = model.bounds
    assert vol.bounds == b
    assert vol.shape == b.shape
    around = Box(tuple(s - 3 for s in b.start), tuple(s + 3 for s in b.stop))
    np.testing.assert_array_equal(vol[around], model.read(around))


@pytest.fixture
def memory_url() -> Iterator[str]:
    name = f"resize-{uuid.uuid4().hex}"
    yield f"memory://{name}"
    drop_namespace(name)


SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
@SETTINGS
@given(data=st.data())
def test_resize_and_append_match_a_numpy_model(kind: Kind, data: Any) -> None:
    draw = data.draw
    name = f"resize-{uuid.uuid4().hex}"
    url = f"memory://{name}"
    start = (0, 0, 0) if kind.zarr else tuple(draw(st.integers(-8, 4)) for _ in range(3))
    bounds = Box(start, tuple(s + draw(st.integers(0, 12)) for s in start))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    try:
        vol = kind.create(url, bounds)
        model = Model(bounds)
        for _ in range(draw(st.integers(1, 6))):
            op = draw(st.sampled_from(["write", "resize", "append"]))
            b = model.bounds
            if op == "write" and not b.empty:
                lo = [draw(st.integers(b.start[d], b.stop[d] - 1)) for d in range(3)]
                box = Box(lo, [draw(st.integers(lo[d] + 1, b.stop[d])) for d in range(3)])
                block = rng.integers(1, 60000, box.shape, dtype=np.uint16)
                vol[box] = block
                model.write(box, block)
            elif op == "resize":
                new = _new_bounds(draw, kind, b)
                vol.resize(new)
                model.resize(new)
            elif op == "append":
                axis = draw(st.integers(0, 2))
                n = min(draw(st.integers(1, 4)), _room(kind, b, axis))
                if n <= 0:
                    continue
                shape = list(b.shape)
                shape[axis] = n
                block = rng.integers(1, 60000, shape, dtype=np.uint16)
                written = vol.append(block, axis=axis)
                stop = list(b.stop)
                stop[axis] += n
                model.resize(Box(b.start, stop))
                box_start = list(b.start)
                box_start[axis] = b.stop[axis]
                assert written == Box(box_start, stop)
                if block.size:
                    model.write(written, block)
            _check(vol, model)
        vol.close()
        with ba.open(url) as again:
            _check(again, model)
    finally:
        drop_namespace(name)


def _scenario(kind: Kind, url: str | Path) -> Model:
    """Writes, appends along two axes, a shrink and a growth; the model of the result."""
    start = (0, 0, 0) if kind.zarr else (-4, 0, 3)
    bounds = Box(start, tuple(s + n for s, n in zip(start, (9, 7, 6), strict=True)))
    vol = kind.create(url, bounds)
    model = Model(bounds)
    rng = np.random.default_rng(7)
    block = rng.integers(1, 999, bounds.shape, dtype=np.uint16)
    vol[bounds] = block
    model.write(bounds, block)
    for axis, n in ((2, 4), (0, 3), (2, 1)):
        b = model.bounds
        shape = list(b.shape)
        shape[axis] = n
        block = rng.integers(1, 999, shape, dtype=np.uint16)
        written = vol.append(block, axis=axis)
        stop = list(b.stop)
        stop[axis] += n
        model.resize(Box(b.start, stop))
        model.write(written, block)
    b = model.bounds
    shrunk = Box(b.start, (b.stop[0] - 5, b.stop[1] - 2, b.stop[2] - 6))
    vol.resize(shrunk)
    model.resize(shrunk)
    low = -12 if kind.max_bounds is None else kind.max_bounds.start[0]
    grown = Box(((low if not kind.zarr else 0), *b.start[1:]), b.stop)
    vol.resize(grown)
    model.resize(grown)
    _check(vol, model)
    vol.close()
    return model


@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
def test_tensorstore_and_zarr_python_read_grown_arrays(kind: Kind, tmp_path: Path) -> None:
    path = tmp_path / ("a.zarr" if kind.zarr else "a")
    model = _scenario(kind, path)
    b = model.bounds
    if kind.zarr:
        driver = "zarr3" if kind.format == "zarr" else "zarr"
        store = ts.open({"driver": driver, "kvstore": {"driver": "file", "path": str(path)}})
        np.testing.assert_array_equal(store.result().read().result(), model.read(b))
        np.testing.assert_array_equal(zarr.open_array(str(path), mode="r")[...], model.read(b))
        return
    spec = {"driver": "neuroglancer_precomputed", "kvstore": f"file://{path}"}
    store = ts.open(spec).result()
    grid = kind.max_bounds or b  # a fixed grid shows readers all of it
    assert tuple(store.domain.inclusive_min[:3]) == grid.start
    assert tuple(store.domain.exclusive_max[:3]) == grid.stop
    seen = store[..., 0].read().result()
    np.testing.assert_array_equal(seen, model.read(grid))


@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
def test_shrink_then_grow_shows_the_fill_value_not_old_data(kind: Kind, memory_url: str) -> None:
    bounds = Box((0, 0, 0), (10, 9, 15))
    vol = kind.create(memory_url, bounds)
    vol[bounds] = 5
    vol.resize((3, 9, 2))  # cuts edge chunks along x and z and drops whole ones
    vol.resize((10, 9, 15))
    expected = np.zeros(bounds.shape, dtype=np.uint16)
    expected[:3, :, :2] = 5
    np.testing.assert_array_equal(vol[bounds], expected)
    np.testing.assert_array_equal(ba.open(memory_url)[bounds], expected)


def test_shrinking_deletes_the_chunks_past_the_end(memory_url: str) -> None:
    vol = ba.create(memory_url, shape=(20, 6), chunks=(4, 6), dtype="uint8", format="zarr")
    vol[...] = 1
    vol.resize((6, 6))
    keys = sorted(k for k in vol.store.list("") if k.startswith("c/"))
    assert keys == ["c/0/0", "c/1/0"]


def test_growth_renames_precomputed_edge_chunks_and_leaves_no_old_ones(memory_url: str) -> None:
    vol = ba.create(memory_url, shape=(6, 4, 4), chunks=(4, 4, 4), dtype="uint8")
    vol[...] = 3
    vol.resize(Box((-4, 0, 0), (9, 4, 4)))
    keys = sorted(vol.store.list("1_1_1/"))
    # 4-6 became 4-8; the chunks of fill at -4 and 8 are not written.
    assert keys == ["1_1_1/0-4_0-4_0-4", "1_1_1/4-8_0-4_0-4"]
    expected = np.zeros((13, 4, 4), dtype=np.uint8)
    expected[4:10] = 3
    np.testing.assert_array_equal(vol[...], expected)


def test_fixed_grid_resizes_change_only_the_info(memory_url: str) -> None:
    vol = ba.create(memory_url, shape=(8, 8, 0), chunks=(4, 4, 4), dtype="uint8",
                    sharding=True, max_shape=(8, 8, 64))  # fmt: skip
    info = vol.info["scales"][0]
    assert (info["size"], info["bigarrays"]["bounds"]["size"]) == ([8, 8, 64], [8, 8, 0])
    vol.append(np.ones((8, 8, 5), dtype=np.uint8), axis="z")
    keys = set(vol.store.list(""))
    vol.resize((8, 8, 40))
    assert set(vol.store.list("")) == keys
    assert vol.shape == (8, 8, 40)


@pytest.mark.parametrize(
    ("kind", "bounds", "needle"),
    [
        (KINDS[2], Box((-12, -9, -10), (20, 21, 26)), "max_shape"),
        (KINDS[0], Box((-2, 0, 0), (10, 9, 15)), "whole chunks"),
        (KINDS[3], Box((1, 0, 0), (10, 9, 15)), "high end"),
    ],
    ids=["sharded-past-its-grid", "origin-by-part-of-a-chunk", "zarr-below-0"],
)
def test_resizes_that_would_rewrite_are_refused(
    kind: Kind, bounds: Box, needle: str, memory_url: str
) -> None:
    vol = kind.create(memory_url, Box((0, 0, 0), (10, 9, 15)))
    vol[...] = 2
    info = vol.info
    with pytest.raises(ResizeRefusedError, match=needle):
        vol.resize(bounds)
    assert vol.info == info
    assert vol.bounds == Box((0, 0, 0), (10, 9, 15))
    assert (vol[...] == 2).all()


def test_append_of_the_wrong_shape_leaves_the_array_as_it_was(memory_url: str) -> None:
    vol = ba.create(memory_url, shape=(0, 4, 5), dtype="uint8", format="zarr")
    with pytest.raises(ShapeMismatchError, match=r"\(0, 4, 5\)"):
        vol.append(np.ones((2, 4, 6), dtype=np.uint8), axis=0)
    assert vol.shape == (0, 4, 5)
    assert ba.open(memory_url).shape == (0, 4, 5)
    vol.append(np.ones((4, 5), dtype=np.uint8), axis=0)  # one step: the axis may be left out
    assert vol.shape == (1, 4, 5)


def test_datasets_of_several_levels_are_refused(memory_url: str) -> None:
    vol = ba.create(memory_url, shape=(16, 16, 16), chunks=(8, 8, 8), dtype="uint8")
    vol.downsample(num_mips=1, progress=False)
    with pytest.raises(ResizeRefusedError, match="downsample"):
        vol.resize((16, 16, 20))


# -- processes racing ----------------------------------------------------------------------------

PROCESSES, STEPS = 4, 3


def _append_slabs(url: str, who: int) -> None:
    with ba.open(url, mode="r+", progress=False) as vol:
        shape = list(vol.shape)
        shape[2] = 2
        for step in range(STEPS):
            vol.append(np.full(shape, 100 * (who + 1) + step, dtype=np.uint16), axis=2)


def _grow_axis(url: str, axis: int) -> None:
    with ba.open(url, mode="r+", progress=False) as vol:
        for _ in range(STEPS):
            shape = list(vol.shape)
            shape[axis] += 1 + axis
            vol.resize(shape)


def _run(target: Any, args: list[tuple[Any, ...]]) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=target, args=a) for a in args]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0


RACERS = [KINDS[1], KINDS[2], KINDS[3], KINDS[5]]


@pytest.mark.parametrize("kind", RACERS, ids=[k.name for k in RACERS])
def test_concurrent_appenders_in_processes_lose_nothing(kind: Kind, tmp_path: Path) -> None:
    path = tmp_path / ("a.zarr" if kind.zarr else "a")
    kind.create(path, Box((0, 0, 0), (5, 4, 0))).close()
    _run(_append_slabs, [(str(path), who) for who in range(PROCESSES)])
    vol = ba.open(path)
    assert vol.shape == (5, 4, 2 * STEPS * PROCESSES)
    slabs = [int(vol[0, 0, z]) for z in range(0, vol.shape[2], 2)]
    assert sorted(slabs) == sorted(100 * (w + 1) + s for w in range(PROCESSES)
                                   for s in range(STEPS))  # fmt: skip
    for z in range(0, vol.shape[2], 2):  # each append landed whole, in a range of its own
        assert (vol[:, :, z : z + 2] == slabs[z // 2]).all()
    for who in range(PROCESSES):  # and each process's in the order it made them
        mine = [v for v in slabs if v // 100 == who + 1]
        assert mine == sorted(mine)


@pytest.mark.parametrize("kind", [*RACERS, KINDS[0]], ids=[k.name for k in [*RACERS, KINDS[0]]])
def test_concurrent_resizers_of_different_axes_keep_both(kind: Kind, tmp_path: Path) -> None:
    path = tmp_path / ("a.zarr" if kind.zarr else "a")
    kind.create(path, Box((0, 0, 0), (3, 3, 3))).close()
    _run(_grow_axis, [(str(path), 0), (str(path), 1)])
    assert ba.open(path).shape == (3 + STEPS, 3 + 2 * STEPS, 3)


@pytest.mark.parametrize(
    "options",
    [
        {"max_shape": (8, 8, 4)},
        {"max_bounds": Box((1, 0, 0), (9, 9, 9))},
        {"max_shape": (9, 9, 9), "max_bounds": Box((0, 0, 0), (9, 9, 9))},
        {"max_shape": (9, 9, 9, 9)},
        {"max_shape": (4, 4, 4), "format": "zarr"},
    ],
    ids=["too-small", "not-holding-the-offset", "both", "four-axes", "zarr-too-small"],
)
def test_max_shape_must_hold_the_array(options: dict[str, Any], memory_url: str) -> None:
    with pytest.raises(ba.InvalidArgumentError, match=r"must hold the array's bounds|not both"):
        ba.create(memory_url, shape=(8, 8, 8), dtype="uint8", **options)


def test_a_zarr_array_takes_max_shape_and_grows_past_it_all_the_same(memory_url: str) -> None:
    vol = ba.create(memory_url, shape=(2, 3), dtype="uint8", format="zarr", max_shape=(4, 3))
    vol.resize((6, 3))
    assert ba.open(memory_url).shape == (6, 3)
