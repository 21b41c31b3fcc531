"""``Store.get_ranges``: one coalescer (``bigarrays.stores.ranges``) for every backend, one backend
read per merged span, and the sharded readers of both formats reading through it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import bigarrays as ba
from bigarrays.errors import StaleReadError
from bigarrays.stores import FileStore, MemoryStore
from bigarrays.stores.ranges import LOCAL, REMOTE, RangePolicy, coalesce, cut
from bigarrays.testing.counting import CountingStore


def test_coalesce_merges_close_ranges_up_to_a_span() -> None:
    ranges = [(100, 100), (0, 50), (60, 30), (1000, 10), (205, 95)]
    spans = coalesce(ranges, RangePolicy(gap=5, max_span=10_000))
    assert [(s.start, s.end, sorted(s.members)) for s in spans] == [
        (0, 50, [1]), (60, 90, [2]), (100, 300, [0, 4]), (1000, 1010, [3]),
    ]  # fmt: skip
    assert len(coalesce(ranges, RangePolicy(gap=10**6, max_span=10**6))) == 1
    assert len(coalesce(ranges, RangePolicy(gap=10**6, max_span=150))) == 4
    assert coalesce([(0, 10), (5, 2)], RangePolicy(gap=0, max_span=100))[0].end == 10
    assert coalesce([], LOCAL) == []


def test_cut_gives_each_range_its_bytes_and_short_ones_past_the_end() -> None:
    value = bytes(range(200))
    ranges = [(10, 5), (0, 3), (190, 20)]
    spans = coalesce(ranges, RangePolicy(gap=1000, max_span=1000))
    assert cut(ranges, spans, [value[s.start : s.end] for s in spans]) == [
        value[10:15], value[0:3], value[190:],
    ]  # fmt: skip


def test_policy_is_checked() -> None:
    with pytest.raises(ValueError, match="gap"):
        RangePolicy(gap=-1, max_span=10)
    assert REMOTE.gap >= 512 << 10 > LOCAL.gap


def test_one_backend_read_per_merged_span(tmp_path: Path) -> None:
    inner = FileStore(tmp_path)
    value = np.random.default_rng(0).bytes(1 << 20)
    inner.put("k", value)
    store = CountingStore(inner)
    # Two ranges in one page, one far away: two reads on a local disk.
    ranges = [(0, 100), (200, 100), (900_000, 50)]
    assert store.get_ranges("k", ranges) == [value[s : s + n] for s, n in ranges]
    assert store.counts["get_range"] == 2
    store.reset()
    store.range_policy = REMOTE  # an object store reads the gap through: one request
    assert store.get_ranges("k", ranges) == [value[s : s + n] for s, n in ranges]
    assert store.counts["get_range"] == 1


def test_get_ranges_through_a_runner_and_when_missing() -> None:
    store = MemoryStore("ranges-runner")
    store.clear()
    store.put("k", bytes(range(256)) * 1000)
    seen: list[int] = []

    def run(fn, items):  # type: ignore[no-untyped-def]
        for item in items:
            seen.append(item)
            fn(item)

    got = store.get_ranges("k", [(0, 4), (200_000, 4)], run=run)
    assert got == [bytes(range(4)), (bytes(range(256)) * 1000)[200_000:200_004]]
    assert seen == [0, 1]  # the two spans went through the runner
    assert store.get_ranges("missing", [(0, 4), (200_000, 4)]) is None
    assert store.get_ranges("k", []) == []
    assert store.get_ranges("missing", []) is None
    with pytest.raises(ValueError, match="start >= 0"):
        store.get_ranges("k", [(-1, 2)])


def test_get_ranges_if_version() -> None:
    store = MemoryStore("ranges-version")
    store.clear()
    store.put("k", b"0123456789" * 10)
    _, version = store.get_with_version("k")
    assert store.get_ranges_if_version("k", [(0, 2), (50, 3)], version) == [b"01", b"012"]
    store.put("k", b"x" * 100)
    with pytest.raises(StaleReadError):
        store.get_ranges_if_version("k", [(0, 2), (50, 3)], version)
    assert store.get_ranges_if_version("missing", [(0, 2)], None) is None


@pytest.mark.parametrize("fmt", ["precomputed", "zarr"])
def test_sharded_reads_go_through_get_ranges(tmp_path: Path, fmt: str) -> None:
    """Both sharded readers merge their chunk ranges with the store's policy: a whole shard of
    contiguous chunks is one read on a local disk, not one per chunk."""
    store = FileStore(tmp_path / "v")
    shape, chunks = (64, 64, 64), (16, 16, 16)
    if fmt == "zarr":
        vol = ba.create(store, shape=shape, dtype="uint8", chunks=shape, format="zarr",
                        sharding={"chunk_shape": list(chunks)})  # fmt: skip
    else:
        vol = ba.create(store, shape=shape, dtype="uint8", chunks=chunks, sharding=True)
    model = np.random.default_rng(1).integers(0, 255, shape, dtype=np.uint8)
    vol[...] = model
    counting = CountingStore(FileStore(tmp_path / "v"))
    again = ba.open(counting)
    counting.reset()
    np.testing.assert_array_equal(again[...], model)
    # Index reads aside, the 64 chunks of the shard come in a single span read.
    chunk_reads = counting.counts["get_range"]
    assert chunk_reads <= 4, counting.counts
