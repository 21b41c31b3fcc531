"""Several handles on one dataset, reads and writes interleaved, against a NumPy model.

Each handle has its own caches (a sharded scale's minishard indexes, a zip's directory, a file
store's known folders); none may make a read return stale or wrong voxels after another handle
wrote, and no write may undo another handle's. Handles share no state but the store.
"""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import bigarrays as ba

SHAPE = (20, 12, 10)
OFFSET = (-6, 3, -2)
CHUNKS = (8, 8, 4)
HANDLES = 3

SHARDED = {"@type": "neuroglancer_uint64_sharded_v1", "preshift_bits": 0, "hash": "identity",
           "minishard_bits": 1, "shard_bits": 1, "minishard_index_encoding": "gzip",
           "data_encoding": "gzip"}  # fmt: skip

LAYOUTS = {
    "file-raw": ("file", {}),
    "file-gzip": ("file", {"compression": "gzip"}),
    "memory-raw": ("memory", {}),
    "zip-raw": ("zip", {}),
    "lmdb-gzip": ("lmdb", {"compression": "gzip"}),
    "file-sharded": ("file", {"sharding": SHARDED}),
    "zip-sharded": ("zip", {"sharding": SHARDED}),
    "memory-sharded": ("memory", {"sharding": SHARDED}),
}


def _intervals(lo: int, hi: int) -> st.SearchStrategy[tuple[int, int]]:
    return st.tuples(st.integers(lo, hi), st.integers(lo, hi)).map(sorted).map(tuple)


def boxes(inside: bool) -> st.SearchStrategy[tuple[slice, ...]]:
    pad = 0 if inside else 4
    axes = [_intervals(o - pad, o + s + pad) for o, s in zip(OFFSET, SHAPE, strict=True)]
    return st.tuples(*axes).map(lambda ab: tuple(slice(a, b) for a, b in ab))


class Handles(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory()
        self.handles: list[ba.BigArray] = []
        self.model = np.zeros(SHAPE, np.uint16)

    @initialize(layout=st.sampled_from(sorted(LAYOUTS)))
    def open_handles(self, layout: str) -> None:
        kind, options = LAYOUTS[layout]
        root = Path(self.tmp.name)
        url = {
            "file": str(root / "vol"),
            "memory": f"memory://handles-{uuid.uuid4().hex}",
            "zip": str(root / "vol.zip"),
            "lmdb": f"lmdb://{root / 'vol.lmdb'}",
        }[kind]
        first = ba.create(url, shape=SHAPE, voxel_offset=OFFSET, chunks=CHUNKS, dtype="uint16",
                          progress=False, threads=2, **options)  # fmt: skip
        self.handles = [first] + [
            ba.open(url, mode="r+", progress=False, threads=2) for _ in range(HANDLES - 1)
        ]

    @rule(which=st.integers(0, HANDLES - 1), box=boxes(inside=True), value=st.integers(0, 65535))
    def write(self, which: int, box: tuple[slice, ...], value: int) -> None:
        self.handles[which][box] = value
        local = tuple(slice(s.start - o, s.stop - o) for s, o in zip(box, OFFSET, strict=True))
        self.model[local] = value

    @rule(which=st.integers(0, HANDLES - 1), box=boxes(inside=False))
    def read(self, which: int, box: tuple[slice, ...]) -> None:
        got = self.handles[which][box]
        expected = np.zeros(tuple(s.stop - s.start for s in box), np.uint16)
        src, dst = [], []
        for s, o, n in zip(box, OFFSET, SHAPE, strict=True):
            a, b = max(s.start, o), min(s.stop, o + n)
            if b <= a:
                return np.testing.assert_array_equal(got, expected)
            src.append(slice(a - o, b - o))
            dst.append(slice(a - s.start, b - s.start))
        expected[tuple(dst)] = self.model[tuple(src)]
        np.testing.assert_array_equal(got, expected)

    @invariant()
    def every_handle_reads_the_model(self) -> None:
        for handle in self.handles:
            np.testing.assert_array_equal(handle[:, :, :], self.model)

    def teardown(self) -> None:
        for handle in self.handles:
            handle.close()
        self.tmp.cleanup()


Handles.TestCase.settings = settings(
    max_examples=40, stateful_step_count=12, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)  # fmt: skip
TestHandles = Handles.TestCase
