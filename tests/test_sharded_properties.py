"""Property tests of sharded scales: random sharding specs, geometries and boxes against a NumPy
model, reads and writes interleaved (writes of whole shards, parts of shards, zeros)."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bigarrays as ba
from bigarrays.box import Box
from bigarrays.formats.precomputed.sharded_layout import ShardedLayout
from bigarrays.formats.precomputed.sharding import morton_bits
from bigarrays.stores.memory import drop_namespace
from bigarrays.testing.strategies import Geometry, boxes, boxes_inside, geometries

SETTINGS = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def sharding_specs(draw: st.DrawFn, geom: Geometry) -> dict[str, Any]:
    grid = [-(-s // c) for s, c in zip(geom.size, geom.chunks, strict=True)]
    total = sum(morton_bits(grid))
    p = draw(st.integers(0, total + 1))
    m = draw(st.integers(0, 3))
    s = draw(st.integers(0, max(0, total - p) + 1))
    return {
        "preshift_bits": p,
        "minishard_bits": m,
        "shard_bits": s,
        "hash": draw(st.sampled_from(["identity", "murmurhash3_x86_128"])),
        "minishard_index_encoding": draw(st.sampled_from(["raw", "gzip"])),
        "data_encoding": draw(st.sampled_from(["raw", "gzip"])),
    }


def _slices(box: Box) -> tuple[slice, ...]:
    return tuple(slice(a, b) for a, b in zip(box.start, box.stop, strict=True))


@SETTINGS
@given(data=st.data())
def test_sharded_volume_matches_a_numpy_model(data: st.DataObject) -> None:
    geom = data.draw(geometries(max_size=30, max_chunk=8, max_channels=2, max_grid=8,
                                dtypes=("uint8", "uint16", "float32", "uint64")))  # fmt: skip
    spec = data.draw(sharding_specs(geom))
    name = f"prop-sharded-{uuid.uuid4().hex}"
    try:
        threads = data.draw(st.sampled_from([1, 3]))
        vol = ba.create(f"memory://{name}", sharding=spec, threads=threads, **geom.create_kwargs())
        model = np.zeros((*geom.size, geom.num_channels), dtype=geom.dtype)
        multi = geom.num_channels > 1
        bounds = geom.bounds
        layout = vol.level.source
        assert isinstance(layout, ShardedLayout)
        for _ in range(data.draw(st.integers(1, 4))):
            if data.draw(st.booleans()) and layout.geometry.shard_chunks is not None:
                # A write of one whole shard (clipped to the volume).
                index = [data.draw(st.integers(0, g - 1)) for g in layout.geometry.grid_shape]
                shard = layout.shard_map.locate(layout.chunk_id(index))[0]
                sbox = layout.shard_box(shard)
                assert sbox is not None
                box = sbox.intersect(bounds)
            else:
                box = data.draw(boxes_inside(bounds))
            shape = (*box.shape, geom.num_channels)
            kind = data.draw(st.sampled_from(["random", "zeros", "const"]))
            if kind == "zeros":
                block = np.zeros(shape, geom.dtype)
            elif kind == "const":
                block = np.full(shape, 7, geom.dtype)
            else:
                rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
                block = (rng.random(shape) * 200).astype(geom.dtype)
            vol[_slices(box)] = block if multi else block[..., 0]
            model[box.shift([-o for o in bounds.start]).slices()] = block
            # Read back a random box (crossing the bounds) through a fresh volume.
            rbox = data.draw(boxes(bounds))
            got = ba.open(f"memory://{name}")[_slices(rbox)]
            expected = np.zeros((*rbox.shape, geom.num_channels), geom.dtype)
            overlap = rbox.intersect(bounds)
            if not overlap.empty:
                expected[overlap.slices(rbox.start)] = model[overlap.slices(bounds.start)]
            np.testing.assert_array_equal(got, expected if multi else expected[..., 0])
        whole = ba.open(f"memory://{name}")[...]
        np.testing.assert_array_equal(whole, model if multi else model[..., 0])
        # No shard holds only fill-value chunks.
        if not model.any():
            assert list(vol.store.list(vol.scale.key + "/")) == []
    finally:
        drop_namespace(name)
