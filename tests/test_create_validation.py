"""create() refuses what would break the dataset later, writes nothing when it refuses, and
everything it writes reopens.

Before: a shape of 10**18 per axis gave a negative ``nbytes``; ``resolution=(inf, 1, 1)`` wrote an
info with ``Infinity`` that open() refused; 1.5 voxels became 1; chunks of 2**40 voxels failed at
the first read; a bad ``threads`` was refused after the info was written.
"""

from __future__ import annotations

import json
import math
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import bigarrays as ba
from bigarrays.errors import BigArraysError, InvalidInfoError, ViewerCompatibilityWarning
from bigarrays.formats.precomputed import ShardingSpec
from bigarrays.stores.memory import drop_namespace


@pytest.fixture
def url() -> Iterator[str]:
    name = f"create-{uuid.uuid4().hex}"
    yield f"memory://{name}"
    drop_namespace(name)


def assert_nothing_at(url: str) -> None:
    with pytest.raises(ba.DatasetNotFoundError):
        ba.open(url)


REFUSED: dict[str, tuple[dict[str, Any], str]] = {
    "shape 10**18 per axis": ({"shape": (10**18,) * 3}, "2\\*\\*63 - 1"),
    "shape past 2**62": ({"shape": (2**62, 1, 1), "chunks": (2**20, 1, 1)}, "2\\*\\*62 - 2"),
    "offset past 2**62": ({"voxel_offset": (0, -(2**63), 0)}, "voxel_offset\\[1\\]"),
    "infinite resolution": ({"resolution": (math.inf, 1, 1)}, "resolution\\[0\\]"),
    "NaN resolution": ({"resolution": (1, math.nan, 1)}, "resolution\\[1\\]"),
    "negative resolution": ({"resolution": (1, 1, -4)}, "resolution must be positive"),
    "string resolution": ({"resolution": ("8", "8", "40")}, "resolution\\[0\\]"),
    "fractional shape": ({"shape": (10, 1.5, 10)}, "shape\\[1\\] must be a whole number"),
    "fractional chunks": ({"chunks": (4, 4, 2.5)}, "chunks\\[2\\] must be a whole number"),
    "fractional offset": ({"voxel_offset": (0.5, 0, 0)}, "voxel_offset\\[0\\]"),
    "NaN shape": ({"shape": (math.nan, 4, 4)}, "shape\\[0\\]"),
    "bool shape": ({"shape": (True, 4, 4)}, "shape\\[0\\]"),
    "bool channels": ({"num_channels": True}, "num_channels"),
    "fractional channels": ({"num_channels": 2.5}, "num_channels"),
    "chunks of 2**40 voxels": ({"chunks": (2**40, 1, 1)}, "2 GiB"),
    "chunk bytes with channels": (
        {"chunks": (1024, 1024, 512), "num_channels": 3, "dtype": "uint32"},
        "2 GiB",
    ),
    "shape string": ({"shape": "abc"}, "shape must be three numbers"),
    "sharded grid of 65 bits": (
        {"shape": (2**21 + 1, 2**21 + 1, 2**20 + 1), "chunks": (1, 1, 1), "sharding": True},
        "65-bit",
    ),
}


@pytest.mark.parametrize(("kwargs", "match"), REFUSED.values(), ids=list(REFUSED))
def test_refused_arguments_write_nothing(url: str, kwargs: dict[str, Any], match: str) -> None:
    args = {"shape": (10, 10, 10), "chunks": (4, 4, 4), **kwargs}
    with pytest.raises(InvalidInfoError, match=match) as caught:
        ba.create(url, **args)
    assert isinstance(caught.value, ValueError)
    assert_nothing_at(url)


@pytest.mark.parametrize(
    "spec",
    [ShardingSpec(preshift_bits=0, minishard_bits=40, shard_bits=0),
     ShardingSpec(preshift_bits=30, minishard_bits=20, shard_bits=20),
     ShardingSpec(preshift_bits=-1, minishard_bits=2, shard_bits=2)],
)  # fmt: skip
def test_a_sharding_spec_object_is_validated(url: str, spec: ShardingSpec) -> None:
    with pytest.raises(InvalidInfoError, match="sharding"):
        ba.create(url, shape=(10, 10, 10), chunks=(4, 4, 4), sharding=spec)
    assert_nothing_at(url)


def test_a_huge_shard_target_gets_the_biggest_valid_shard(url: str) -> None:
    vol = ba.create(url, shape=(2**14,) * 3, chunks=(1, 1, 1), sharding=True,
                    shard_size_bytes=2**45)  # fmt: skip
    spec = vol.info["scales"][0]["sharding"]
    assert (spec["preshift_bits"], spec["minishard_bits"], spec["shard_bits"]) == (9, 27, 6)
    assert ba.open(url).info == vol.info


def test_integral_numbers_of_any_kind_are_taken_exactly(url: str) -> None:
    vol = ba.create(url, shape=(np.int64(10), 12.0, np.uint16(5)), chunks=(np.int32(4), 4.0, 4),
                    voxel_offset=(-3.0, np.int8(-2), 0), resolution=(np.float32(0.5), 4, 40),
                    num_channels=np.int64(2))  # fmt: skip
    assert vol.shape == (10, 12, 5, 2)
    info = json.loads(json.dumps(ba.open(url).info))
    scale = info["scales"][0]
    assert scale["size"] == [10, 12, 5]
    assert all(type(v) is int for v in scale["size"])
    assert scale["chunk_sizes"] == [[4, 4, 4]]
    assert scale["voxel_offset"] == [-3, -2, 0]
    assert scale["resolution"] == [0.5, 4, 40]
    assert info["num_channels"] == 2


def test_huge_but_valid_volume_has_a_true_nbytes(url: str) -> None:
    vol = ba.create(url, shape=(2**40, 2**20, 3), chunks=(64, 64, 4), dtype="uint16")
    assert vol.nbytes == 2**40 * 2**20 * 3 * 2
    assert ba.open(url)[0:2, 0:2, 0:2].sum() == 0


@pytest.mark.parametrize("kwargs", [{"threads": 0}, {"threads": -2}])
def test_array_arguments_are_refused_before_the_info_is_written(
    tmp_path: Path, kwargs: dict[str, Any]
) -> None:
    for where in (f"memory://bad-array-{uuid.uuid4().hex}", tmp_path / "v", tmp_path / "v.zip"):
        with pytest.raises(ValueError, match="threads"):
            ba.create(where, shape=(4, 4, 4), **kwargs)
        assert_nothing_at(str(where))
    assert not (tmp_path / "v.zip").exists()


def test_refused_overwrite_keeps_the_old_dataset(url: str) -> None:
    with ba.create(url, shape=(4, 4, 4)) as vol:
        vol[...] = 7
    with pytest.raises(ValueError, match="threads"):
        ba.create(url, shape=(8, 8, 8), overwrite=True, threads=0)
    with pytest.raises(InvalidInfoError):
        ba.create(url, shape=(8, 8, 8), overwrite=True, chunks=(2**40, 1, 1))
    assert ba.open(url)[...].min() == 7


# -- the round trip ------------------------------------------------------------------------------

EDGES: dict[str, list[Any]] = {
    "shape": [0, -1, 1.5, 64.0, True, np.int64(7), np.uint64(2**40), 2**31, 2**40, 2**62 - 2,
              2**62, 10**18, math.nan],
    "chunks": [0, 1, 1.5, 8.0, np.int16(3), 2**20, 2**31, 2**40, 2**62],
    "voxel_offset": [-3.0, 0.5, np.int8(-5), -(2**62) + 2, 2**62 - 3, -(2**63), 2**63, math.inf],
    "resolution": [0, -1, 1e-320, 1e308, 2**1100, np.float32(0.1), math.inf, math.nan],
    "num_channels": [0, 2**31, 2**40, 1.0, 1.5, True, np.int64(3)],
}  # fmt: skip


@st.composite
def create_arguments(draw: st.DrawFn) -> dict[str, Any]:
    """Valid arguments, of which up to two values are replaced by edge cases."""
    three = st.tuples
    args: dict[str, Any] = {
        "shape": list(draw(three(st.integers(1, 40), st.integers(1, 40), st.integers(1, 40)))),
        "chunks": list(draw(three(st.integers(1, 16), st.integers(1, 16), st.integers(1, 16)))),
        "voxel_offset": list(draw(three(*[st.integers(-100, 100)] * 3))),
        "resolution": list(draw(three(*[st.floats(0.1, 100)] * 3))),
        "num_channels": draw(st.integers(1, 4)),
        "dtype": draw(st.sampled_from(["uint8", "uint16", "uint64", "float32", "bool"])),
        "sharding": draw(st.sampled_from([None, True])),
    }
    for _ in range(draw(st.integers(0, 2))):
        name = draw(st.sampled_from(sorted(EDGES)))
        value = draw(st.sampled_from(EDGES[name]))
        if name == "num_channels":
            args[name] = value
        else:
            args[name][draw(st.integers(0, 2))] = value
    return args


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(create_arguments())
def test_create_writes_only_what_open_reads(args: dict[str, Any]) -> None:
    url = f"memory://round-trip-{uuid.uuid4().hex}"
    refused: BigArraysError | None = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ViewerCompatibilityWarning)
            try:
                vol = ba.create(url, **args)
            except BigArraysError as exc:
                refused = exc
        if refused is not None:
            event(f"refused: {type(refused).__name__}")
            assert isinstance(refused, ValueError)
            assert_nothing_at(url)
            return
        event("created")
        again = ba.open(url)
        assert again.info == vol.info
        assert again.shape == vol.shape
        assert again.nbytes == vol.nbytes >= 0
        assert again.bounds == vol.bounds
        x, y, z = again.voxel_offset
        assert not again[x : x + 2, y : y + 2, z : z + 1].any()
    finally:
        drop_namespace(url)
