"""``create(..., compression="blosc", blosc_cname=..., blosc_shuffle=...)`` of a Zarr array writes
the blosc codec asked for (they were ignored: every Zarr blosc array was zstd), and zarr-python
reads what it compressed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zarr

import bigarrays as ba
from bigarrays.errors import BigArraysError


@pytest.mark.parametrize(("fmt", "meta"), [("zarr", "zarr.json"), ("zarr2", ".zarray")])
def test_blosc_codec_and_shuffle_are_the_ones_asked_for(
    tmp_path: Path, fmt: str, meta: str
) -> None:
    path = tmp_path / "a.zarr"
    data = np.arange(64 * 48, dtype=np.uint16).reshape(64, 48)
    vol = ba.create(path, shape=data.shape, dtype="uint16", chunks=(32, 16), format=fmt,
                    compression="blosc", blosc_cname="lz4", blosc_shuffle="bit",
                    compression_level=1)  # fmt: skip
    vol[...] = data
    doc = json.loads((path / meta).read_text())
    if fmt == "zarr":
        config = doc["codecs"][-1]["configuration"]
        assert (config["cname"], config["shuffle"], config["clevel"]) == ("lz4", "bitshuffle", 1)
    else:
        config = doc["compressor"]
        assert (config["cname"], config["shuffle"], config["clevel"]) == ("lz4", 2, 1)
    np.testing.assert_array_equal(ba.open(path)[...], data)
    np.testing.assert_array_equal(zarr.open_array(str(path), mode="r")[...], data)


def test_blosc_defaults_of_a_zarr_array_stay_zstd_and_byte_shuffle(tmp_path: Path) -> None:
    ba.create(tmp_path / "a.zarr", shape=(8, 8), dtype="uint16", compression="blosc")
    config = json.loads((tmp_path / "a.zarr" / "zarr.json").read_text())["codecs"][-1]
    assert (config["configuration"]["cname"], config["configuration"]["shuffle"]) == (
        "zstd", "shuffle")  # fmt: skip


@pytest.mark.parametrize(
    "options",
    [{"compression": "blosc", "blosc_cname": "snappy"}, {"compression": "blosc",
     "blosc_shuffle": "twice"}, {"compression": "zstd", "blosc_cname": "lz4"}],
)  # fmt: skip
def test_blosc_options_blosc_has_not_are_refused(tmp_path: Path, options: dict) -> None:
    with pytest.raises(BigArraysError, match="blosc"):
        ba.create(tmp_path / "a.zarr", shape=(8, 8), dtype="uint16", **options)
    assert not (tmp_path / "a.zarr" / "zarr.json").exists()
