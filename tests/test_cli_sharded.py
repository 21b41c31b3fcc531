"""``bigarrays create --sharded``, ``info`` of sharded scales, ``cp --shard`` / ``--unshard``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import bigarrays as ba
from test_cli import assert_one_line_error, run


def test_create_sharded_and_info(tmp_path: Path) -> None:
    path = tmp_path / "vol"
    run("create", str(path), "--shape", "300,200,100", "--chunks", "32,32,32", "--sharded",
        "--shard-size", "4M")  # fmt: skip
    vol = ba.open(path, mode="r+")
    assert vol.scale.sharding is not None
    vol[...] = 1
    out = run("info", str(path)).stdout
    assert (
        "    sharding     identity, preshift 7, minishard 0, shard 2 bits; minishard index gzip, "
        "data raw\n" in out
    )
    assert "    shards       4 shard files, 128 chunks per shard (4.0 MiB uncompressed)" in out
    assert "    shard box    256 x 128 x 128 voxels (8 x 4 x 4 chunks)" in out
    assert "    stored       4 objects" in out


def test_info_of_a_hashed_scale(tmp_path: Path) -> None:
    spec = {"preshift_bits": 2, "minishard_bits": 1, "shard_bits": 3,
            "hash": "murmurhash3_x86_128"}  # fmt: skip
    ba.create(tmp_path / "vol", shape=(64, 64, 64), chunks=(16, 16, 16), sharding=spec)
    out = run("info", str(tmp_path / "vol"), "--no-scan").stdout
    assert "sharding     murmurhash3_x86_128, preshift 2, minishard 1, shard 3 bits" in out
    assert "    shards       7 shard files, about 9 chunks per shard" in out
    assert "    shard box    none: the hash scatters a shard's chunks over the volume" in out


def test_cp_shard_and_unshard(tmp_path: Path) -> None:
    src = ba.create(tmp_path / "src", shape=(100, 80, 40), chunks=(16, 16, 16),
                    voxel_offset=(-10, 0, 5), compression="gzip")  # fmt: skip
    data = np.random.default_rng(0).integers(0, 255, (100, 80, 40), dtype=np.uint8)
    src[...] = data
    run("cp", str(tmp_path / "src"), str(tmp_path / "sharded"), "--shard", "--shard-size", "64K",
        "-q")  # fmt: skip
    sharded = ba.open(tmp_path / "sharded")
    assert sharded.scale.sharding is not None
    assert sharded.scale.sharding.data_encoding == "gzip"
    np.testing.assert_array_equal(sharded[...], data)
    run("cp", str(tmp_path / "sharded"), str(tmp_path / "flat"), "--unshard", "-q")
    flat = ba.open(tmp_path / "flat")
    assert flat.scale.sharding is None
    np.testing.assert_array_equal(flat[...], data)
    proc = run("cp", str(tmp_path / "flat"), str(tmp_path / "sharded"), "--shard", check=False)
    assert_one_line_error(proc, "already exists", "overwrite")
    run("cp", str(tmp_path / "flat"), str(tmp_path / "sharded"), "--shard", "--overwrite", "-q")
    np.testing.assert_array_equal(ba.open(tmp_path / "sharded")[...], data)


def test_create_refuses_a_bad_shard_size(tmp_path: Path) -> None:
    proc = run("create", str(tmp_path / "v"), "--shape", "8,8,8", "--sharded", "--shard-size",
               "lots", check=False)  # fmt: skip
    assert proc.returncode != 0
    assert "not a size in bytes" in proc.stderr
