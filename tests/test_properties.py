"""Property tests: BigArray against a NumPy model of the volume.

Random geometries (sizes, negative offsets, chunk sizes that leave truncated edge chunks, channels,
every dtype) and random sequences of writes inside the bounds, reads anywhere (crossing the bounds
or wholly outside) and writes that reach outside (which must raise and change nothing).
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bigarrays as ba
from bigarrays.box import Box
from bigarrays.errors import ViewerCompatibilityWarning
from bigarrays.stores.memory import drop_namespace
from bigarrays.testing.strategies import (
    Geometry,
    boxes,
    boxes_crossing,
    boxes_inside,
    dtype_values,
    geometries,
    voxel_data,
)

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class Model:
    """A NumPy array of the volume's voxels (x, y, z, c); outside the bounds everything is 0."""

    def __init__(self, geom: Geometry) -> None:
        self.geom = geom
        self.bounds = geom.bounds
        self.voxels = np.zeros((*geom.size, geom.num_channels), dtype=geom.dtype)

    def read(self, box: Box) -> np.ndarray:
        out = np.zeros((*box.shape, self.geom.num_channels), dtype=self.geom.dtype)
        overlap = box.intersect(self.bounds)
        if not overlap.empty:
            out[overlap.slices(box.start)] = self.voxels[overlap.slices(self.bounds.start)]
        return out if self.geom.num_channels > 1 else out[..., 0]

    def write(self, box: Box, data: Any) -> None:
        assert self.bounds.contains(box)
        target = self.voxels[box.slices(self.bounds.start)]
        target[...] = data if self.geom.num_channels > 1 or np.ndim(data) == 0 else data[..., None]


@contextmanager
def volume(geom: Geometry, threads: int) -> Iterator[ba.BigArray]:
    name = f"prop-{uuid.uuid4().hex}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ViewerCompatibilityWarning)
            vol = ba.create(f"memory://{name}", threads=threads, **geom.create_kwargs())
        with vol:
            yield vol
    finally:
        drop_namespace(name)


def index_of(box: Box) -> tuple[slice, ...]:
    return tuple(slice(a, b) for a, b in zip(box.start, box.stop, strict=True))


@dataclass(frozen=True)
class Write:
    box: Box
    data: Any  # an array of the box's shape, or a scalar


@dataclass(frozen=True)
class Read:
    box: Box


@dataclass(frozen=True)
class BadWrite:
    box: Box
    data: Any


def operations(geom: Geometry) -> st.SearchStrategy[Write | Read | BadWrite]:
    bounds = geom.bounds
    writes = boxes_inside(bounds, allow_empty=True).flatmap(
        lambda b: st.builds(
            Write,
            st.just(b),
            st.one_of(voxel_data(geom.block_shape(b), geom.dtype), dtype_values(geom.dtype)),
        )
    )
    reads = st.builds(Read, boxes(bounds, margin=10))
    bad = boxes_crossing(bounds, margin=10).flatmap(
        lambda b: st.builds(
            BadWrite,
            st.just(b),
            st.one_of(st.just(None), dtype_values(geom.dtype)),
        )
    )
    return st.one_of(writes, writes, reads, reads, bad)


@SETTINGS
@given(data=st.data())
def test_reads_and_writes_match_the_model(data: st.DataObject) -> None:
    geom = data.draw(geometries(max_size=40, max_chunk=16, max_grid=8), label="geometry")
    threads = data.draw(st.sampled_from([1, 3]), label="threads")
    ops = data.draw(st.lists(operations(geom), min_size=1, max_size=8), label="operations")
    model = Model(geom)
    with volume(geom, threads) as vol:
        assert vol.shape == geom.shape
        assert vol.bounds == geom.bounds
        for op in ops:
            if isinstance(op, Write):
                vol[index_of(op.box)] = op.data
                model.write(op.box, op.data)
            elif isinstance(op, BadWrite):
                before = {k: vol.store.get(k) for k in vol.store.list()}
                shape = geom.block_shape(op.box)
                value = np.ones(shape, dtype=geom.dtype) if op.data is None else op.data
                with pytest.raises(ba.OutOfBoundsError):
                    vol[index_of(op.box)] = value
                assert {k: vol.store.get(k) for k in vol.store.list()} == before
            else:
                got = vol[index_of(op.box)]
                assert got.dtype == np.dtype(geom.dtype)
                np.testing.assert_array_equal(got, model.read(op.box))
        # At the end the whole volume, and a margin around it, equals the model.
        around = Box(
            tuple(a - 2 for a in geom.bounds.start), tuple(b + 2 for b in geom.bounds.stop)
        )
        np.testing.assert_array_equal(vol[index_of(around)], model.read(around))
        np.testing.assert_array_equal(vol[...], model.read(geom.bounds))
        # Only chunks of the grid are stored, each with the clipped chunk's byte length.
        keys = [k for k in vol.store.list() if k != "info"]
        assert len(keys) <= vol.num_chunks
        itemsize = np.dtype(geom.dtype).itemsize
        for key in keys:
            box = ba.Box(*_parse(key))
            assert geom.bounds.contains(box)
            stored = vol.store.get(key)
            assert stored is not None
            assert len(stored) == box.size * geom.num_channels * itemsize


def _parse(key: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    from bigarrays.formats.precomputed import parse_chunk_name

    box = parse_chunk_name(key)
    return box.start, box.stop


def selections(geom: Geometry) -> st.SearchStrategy[tuple[Any, ...]]:
    """Keys mixing slices (crossing the bounds) and integers, with a channel index or not."""
    bounds = geom.bounds
    axes = []
    for a, b in zip(bounds.start, bounds.stop, strict=True):
        lo, hi = a - 5, b + 5
        sl = st.tuples(st.integers(lo, hi), st.integers(lo, hi)).map(
            lambda ab: slice(min(ab), max(ab))
        )
        axes.append(st.one_of(sl, st.integers(lo, hi - 1), st.just(slice(None))))
    spatial = st.tuples(*axes)
    if geom.num_channels == 1:
        return spatial
    c = geom.num_channels
    channel = st.one_of(
        st.integers(-c, c - 1),
        st.tuples(st.integers(0, c), st.integers(0, c)).map(lambda ab: slice(min(ab), max(ab))),
        st.just(slice(None)),
    )
    return st.one_of(spatial, st.tuples(*axes, channel))


def model_index(geom: Geometry, key: tuple[Any, ...]) -> tuple[Box, tuple[Any, ...]]:
    """The 3-D box a key reads, and how to index the model's read of it (x, y, z[, c])."""
    bounds = geom.bounds
    start, stop, post = [], [], []
    for axis, item in enumerate(key[:3]):
        if isinstance(item, slice):
            a = bounds.start[axis] if item.start is None else item.start
            b = bounds.stop[axis] if item.stop is None else item.stop
            start.append(a)
            stop.append(max(a, b))
            post.append(slice(None))
        else:
            start.append(item)
            stop.append(item + 1)
            post.append(0)
    if len(key) == 4:
        post.append(key[3])
    return Box(start, stop), tuple(post)


@SETTINGS
@given(data=st.data())
def test_selections_match_numpy_on_the_model(data: st.DataObject) -> None:
    geom = data.draw(geometries(max_size=24, max_chunk=10, max_grid=8), label="geometry")
    fill = data.draw(voxel_data((*geom.size, geom.num_channels), geom.dtype), label="fill")
    keys = data.draw(st.lists(selections(geom), min_size=1, max_size=6), label="keys")
    model = Model(geom)
    model.write(geom.bounds, fill if geom.num_channels > 1 else fill[..., 0])
    with volume(geom, threads=2) as vol:
        vol[...] = fill if geom.num_channels > 1 else fill[..., 0]
        for key in keys:
            box, post = model_index(geom, key)
            expected = model.read(box)[post]
            got = vol[key]
            assert got.shape == expected.shape
            np.testing.assert_array_equal(got, expected)


@SETTINGS
@given(data=st.data())
def test_writes_through_selections_match_numpy(data: st.DataObject) -> None:
    geom = data.draw(geometries(max_size=24, max_chunk=10, max_grid=8), label="geometry")
    model = Model(geom)
    with volume(geom, threads=2) as vol:
        for _ in range(data.draw(st.integers(1, 4), label="writes")):
            box = data.draw(boxes_inside(geom.bounds), label="box")
            # Integers on some axes (dropping them) and a channel index when there are several.
            key: list[Any] = []
            post: list[Any] = []
            for a, b in zip(box.start, box.stop, strict=True):
                if b - a == 1 and data.draw(st.booleans()):
                    key.append(a)
                    post.append(0)
                else:
                    key.append(slice(a, b))
                    post.append(slice(None))
            if geom.num_channels > 1:
                c = data.draw(st.integers(-geom.num_channels, geom.num_channels - 1))
                key.append(c)
                post.append(c)
            else:
                post.append(0)
            shape = np.zeros((*box.shape, geom.num_channels))[tuple(post)].shape
            value = data.draw(voxel_data(shape, geom.dtype), label="value")
            vol[tuple(key)] = value
            model.voxels[box.slices(geom.bounds.start)][(slice(None),) * 3 + (post[3],)] = (
                value.reshape(box.shape)
            )
            np.testing.assert_array_equal(vol[...], model.read(geom.bounds))
