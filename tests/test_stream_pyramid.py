"""A pyramid written while a stream runs: its levels equal ``vol.downsample`` of the final level 0
(and TensorStore's downsample), for precomputed and OME-Zarr, with a frame count that does not
divide the chunk; a reader mid-run sees levels that match the frames checkpointed so far."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorstore as ts

import bigarrays as ba

FRAMES = 70  # not a multiple of the chunk's 8 frames


def frames_of(n: int, shape: tuple[int, ...]) -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.integers(0, 4000, size=(n, *shape), dtype=np.uint16)


CASES = [
    pytest.param(
        "v", {"chunks": (16, 16, 8), "max_shape": (40, 36, 128)}, "z", (40, 36), id="precomputed"
    ),
    pytest.param(
        "v.ome.zarr",
        {"chunks": (8, 16, 16), "dims": ("z", "y", "x")},
        "z",
        (36, 40),
        id="ome-zarr",
    ),
]


def _stream(path: Path, options: dict[str, Any], axis: str, shape: tuple[int, ...],
            frames: np.ndarray) -> None:  # fmt: skip
    with ba.stream(str(path), axis=axis, shape=shape, dtype="uint16", mips=2,
                   factor=(2, 2, 2), method="mean", checkpoint_seconds=0,
                   **options) as s:  # fmt: skip
        s.append(frames[0])
        block = frames[1:13]  # a block crossing a slab, the axis in its place
        s.append(np.moveaxis(block, 0, 2) if s.array.dims[0] == "x" else block)
        for f in frames[13:]:
            s.append(f)


def _level0(vol: ba.BigArray, frames: np.ndarray) -> np.ndarray:
    """The frames as level 0 holds them."""
    return np.moveaxis(frames, 0, 2) if vol.dims[0] == "x" else frames


@pytest.mark.parametrize(("name", "options", "axis", "shape"), CASES)
def test_stream_levels_equal_downsample_of_level_0(
    tmp_path: Path, name: str, options: dict[str, Any], axis: str, shape: tuple[int, ...]
) -> None:
    frames = frames_of(FRAMES, shape)
    _stream(tmp_path / name, options, axis, shape, frames)
    got = ba.open(tmp_path / name)
    assert got.mips == 3
    level0 = _level0(got, frames)
    np.testing.assert_array_equal(got[...], level0)
    # The same level 0 written whole, and its pyramid built afterwards.
    ref = ba.create(tmp_path / ("ref" + name[1:]), shape=level0.shape, dtype="uint16",
                    chunks=options["chunks"], dims=options.get("dims"))  # fmt: skip
    ref[...] = level0
    ref.downsample(factor=(2, 2, 2), num_mips=2, method="mean")
    for mip in (1, 2):
        want = ref.at_mip(mip)
        have = got.at_mip(mip)
        assert have.bounds == want.bounds
        np.testing.assert_array_equal(have[...], want[...])
    if name == "v":  # TensorStore's downsample of the frames, as the oracle
        for mip, f in ((1, 2), (2, 4)):
            oracle = ts.downsample(ts.array(level0), [f, f, f], "mean").read().result()
            np.testing.assert_array_equal(got.at_mip(mip)[...], np.asarray(oracle))


def test_a_reader_mid_run_sees_levels_of_the_checkpointed_frames(tmp_path: Path) -> None:
    path = tmp_path / "live"
    frames = frames_of(40, (40, 36))
    s = ba.stream(str(path), axis="z", shape=(40, 36), dtype="uint16", chunks=(16, 16, 8),
                  max_shape=(40, 36, 64), mips=1, factor=(2, 2, 2), method="mean",
                  checkpoint_seconds=0)  # fmt: skip
    try:
        for f in frames[:20]:
            s.append(f)
        while s.stats.checkpointed < 16:  # two slabs of 8 written and checkpointed
            s.stats  # noqa: B018
        live = ba.open(path)
        z = live.shape[2]
        assert z >= 16
        assert z % 8 == 0
        coarse = live.at_mip(1)
        assert coarse.shape[2] == z // 2
        oracle = ts.downsample(ts.array(np.moveaxis(frames[:z], 0, 2)), [2, 2, 2], "mean")
        np.testing.assert_array_equal(coarse[...], np.asarray(oracle.read().result()))
    finally:
        s.close()


def test_precomputed_levels_need_a_fixed_grid() -> None:
    with pytest.raises(ba.InvalidArgumentError, match="max_shape"):
        ba.stream(f"memory://{uuid.uuid4().hex}", axis="z", shape=(8, 8), dtype="uint8",
                  mips=1)  # fmt: skip


def test_a_factor_that_cuts_slabs_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ba.InvalidArgumentError, match="divide"):
        ba.stream(str(tmp_path / "v.ome.zarr"), axis="z", shape=(16, 16), dtype="uint8",
                  dims=("z", "y", "x"), chunks=(3, 8, 8), mips=1, factor=(2, 2, 2))  # fmt: skip


@pytest.mark.parametrize("how", ["array", "resume", "levels"])
def test_levels_on_a_precomputed_grid_that_follows_its_bounds_are_refused_at_open(
    tmp_path: Path, how: str
) -> None:
    """Growing such a volume with levels would rename every level's chunks: refused before a
    frame is taken or a level added, with what to do instead."""
    path = tmp_path / "v"
    vol = ba.create(path, shape=(40, 36, 16), chunks=(16, 16, 8), dtype="uint16")
    vol[...] = 7
    if how == "levels":
        vol.downsample(num_mips=1)  # a pyramid, then a stream that would write it
    info = ba.open(path).info
    target: Any = ba.open(path, mode="r+") if how == "array" else str(path)
    with pytest.raises(ba.errors.InvalidArgumentError, match="max_shape=") as error:
        ba.stream(target, axis="z", resume=True, mips=None if how == "levels" else 1)
    assert "follows its bounds" in str(error.value)
    assert ba.open(path).info == info
