"""Conversions between precomputed and OME-Zarr keep or change sharding (``bigarrays cp
--format ... [--shard | --unshard] [--shard-size]``): shards of whole chunks sized by one rule
on both sides, written whole (never read back and merged), read by zarr-python and TensorStore,
and the same bytes when the conversion runs on Dask."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

import bigarrays as ba
from bigarrays.convert import LevelPlan, _tiles, convert_format
from bigarrays.errors import InvalidArgumentError, UnsupportedError
from bigarrays.formats.shard_writes import ShardWriter
from bigarrays.formats.zarr.sharding import shard_for_size

SIZE, OFFSET, CHUNKS = (96, 80, 40), (-16, 8, -8), (16, 16, 8)


def _volume(path: Path, **options: Any) -> np.ndarray:
    data = np.random.default_rng(4).integers(1, 250, SIZE, dtype=np.uint8)
    data[:16, :16, :8] = 0  # a chunk of zeros: left out of its shard on both sides
    with ba.create(path, shape=SIZE, dtype="uint8", chunks=CHUNKS, voxel_offset=OFFSET,
                   resolution=(4, 4, 40), **options) as vol:  # fmt: skip
        vol[...] = data
    return data


@pytest.fixture
def no_merges(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any read of a stored shard for a merge: conversions write whole shards only."""

    def refuse(self: ShardWriter, g: Any) -> None:
        raise AssertionError(f"shard {g.key} written in part")

    monkeypatch.setattr(ShardWriter, "_read_old", refuse)


def _zarr_codecs(path: Path) -> tuple[list[str], list[int]]:
    meta = json.loads((path / "0" / "zarr.json").read_text())
    return [c["name"] for c in meta["codecs"]], meta["chunk_grid"]["configuration"]["chunk_shape"]


def test_a_sharded_volume_converts_to_sharded_ome_zarr_and_back(
    tmp_path: Path, no_merges: None
) -> None:
    src = tmp_path / "src"
    data = _volume(src, sharding=True, shard_size_bytes=16 * 16 * 8 * 8)  # 8 chunks a shard
    img = tmp_path / "img.ome.zarr"
    convert_format(src, img, "zarr", shard_size_bytes=16 * 16 * 8 * 8)
    names, shard = _zarr_codecs(img)
    assert names == ["sharding_indexed"]
    assert shard == [16, 32, 32]  # z, y, x: x and y doubled first, then z
    np.testing.assert_array_equal(zarr.open_array(str(img / "0"))[:], data.T)
    back = tmp_path / "back"
    convert_format(img, back, "precomputed")  # sharded as the source is
    with ba.open(back) as vol:
        assert vol.info["scales"][0]["sharding"]["@type"] == "neuroglancer_uint64_sharded_v1"
        assert vol.voxel_offset == OFFSET
        assert vol.level.unit[:3] == (32, 32, 16)
        np.testing.assert_array_equal(vol[...], data)


def test_shard_and_unshard_override_the_source(tmp_path: Path, no_merges: None) -> None:
    src = tmp_path / "src"
    data = _volume(src)
    img = tmp_path / "img.ome.zarr"
    convert_format(src, img, "zarr", shard=True, shard_size_bytes=1 << 20)
    names, shard = _zarr_codecs(img)
    assert names == ["sharding_indexed"]
    assert shard == [40, 80, 96]  # the whole volume: 1 MiB holds it
    flat = tmp_path / "flat.ome.zarr"
    convert_format(img, flat, "zarr", shard=False)
    assert _zarr_codecs(flat) == (["bytes", "zstd"], [8, 16, 16])
    sharded = tmp_path / "sharded"
    convert_format(flat, sharded, "precomputed", shard=True, shard_size_bytes=4096)
    for path in (img, flat):
        np.testing.assert_array_equal(zarr.open_array(str(path / "0"))[:], data.T)
    ts = pytest.importorskip("tensorstore")
    spec = {"driver": "neuroglancer_precomputed", "kvstore": {"driver": "file",
            "path": str(sharded)}}  # fmt: skip
    np.testing.assert_array_equal(ts.open(spec).result().read().result()[..., 0], data)


def test_zarr2_has_no_sharding_and_nothing_is_written(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _volume(src)
    with pytest.raises(UnsupportedError, match="Zarr v2 has no sharding"):
        convert_format(src, tmp_path / "v2.zarr", "zarr2", shard=True)
    assert not (tmp_path / "v2.zarr").exists() or not any((tmp_path / "v2.zarr").iterdir())


def test_tiles_of_a_sharded_destination_are_whole_shards() -> None:
    plan = LevelPlan((100, 70, 30), (-5, 3, -1), (1.0, 1.0, 1.0), (16, 16, 8))
    unit = (64, 32, 16)
    tiles = _tiles(plan, unit, (16, 16, 8), 1)
    covered = np.zeros(plan.size, dtype=int)
    for box in tiles:
        for axis in range(3):
            assert (box.start[axis] - plan.voxel_offset[axis]) % unit[axis] == 0
        inside = zip(box.start, box.stop, plan.voxel_offset, strict=True)
        covered[tuple(slice(a - o, b - o) for a, b, o in inside)] += 1
    assert (covered == 1).all()


@pytest.mark.parametrize(
    ("shape", "inner", "target", "expected"),
    [
        ((512, 512, 512), (64, 64, 64), 1 << 30, (512, 512, 512)),  # the whole volume fits
        ((512, 512, 512), (64, 64, 64), 1 << 20, (64, 128, 128)),  # 4 chunks: x, then y
        ((512, 512, 512), (64, 64, 64), 5 << 18, (64, 128, 128)),  # 5: the nearest power, 4
        ((512, 512, 512), (64, 64, 64), 3 << 19, (128, 128, 128)),  # 6: a tie goes up, 8
        ((3, 300, 1000, 1000), (1, 64, 64, 64), 1 << 30, (1, 320, 1024, 1024)),  # c: 1
        ((100,), (64,), 1 << 30, (128,)),  # a shard may pass the array's end
        ((8, 8, 8), (8, 8, 8), 1, (8, 8, 8)),  # never less than a chunk
    ],
)
def test_the_shard_rule(
    shape: tuple[int, ...], inner: tuple[int, ...], target: int, expected: tuple[int, ...]
) -> None:
    assert shard_for_size(shape, inner, 1, target) == expected


def test_channels_round_trip_to_the_same_shards(tmp_path: Path, no_merges: None) -> None:
    # A precomputed shard holds every channel, a Zarr one a channel: the size in bytes carries
    # over, so the way back gives the source's shards again.
    src = tmp_path / "src"
    with ba.create(src, shape=(100, 90, 40), dtype="uint16", chunks=(32, 32, 16), num_channels=3,
                   sharding=True, shard_size_bytes=32 * 32 * 16 * 2 * 3 * 8) as vol:  # fmt: skip
        data = np.random.default_rng(5).integers(0, 999, (100, 90, 40, 3), dtype=np.uint16)
        vol[...] = data
        unit = vol.level.unit
    convert_format(src, tmp_path / "img.ome.zarr", "zarr")
    np.testing.assert_array_equal(
        zarr.open_array(str(tmp_path / "img.ome.zarr" / "0"))[:], data.transpose(3, 2, 1, 0)
    )
    convert_format(tmp_path / "img.ome.zarr", tmp_path / "back", "precomputed")
    with ba.open(tmp_path / "back") as back:
        assert back.level.unit == unit
        np.testing.assert_array_equal(back[...], data)


def test_a_shard_size_without_sharding_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _volume(src)
    for shard, size in ((False, 1 << 20), (True, 0)):
        with pytest.raises(InvalidArgumentError, match="shard_size_bytes"):
            convert_format(src, tmp_path / "out.ome.zarr", "zarr", shard=shard,
                           shard_size_bytes=size)  # fmt: skip
        assert not (tmp_path / "out.ome.zarr" / "zarr.json").exists()
