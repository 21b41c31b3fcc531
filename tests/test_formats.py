"""The format-neutral seams: what is at a URL, and what a BigArray reports of its level."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

import bigarrays as ba
from bigarrays.errors import DatasetNotFoundError, UnsupportedError
from bigarrays.formats.detect import detect
from bigarrays.stores import open_store
from bigarrays.testing.counting import CountingStore


@pytest.mark.parametrize(
    ("marker", "name"),
    [("info", "precomputed"), ("zarr.json", "zarr"), (".zarray", "zarr2"), (".zgroup", "zarr2")],
)
def test_detect_names_the_format_by_its_marker(tmp_path: Path, marker: str, name: str) -> None:
    store = open_store(tmp_path / "d")
    store.put(marker, b"{}")
    assert detect(store) == (name, b"{}")


def test_detect_says_what_it_looked_for(tmp_path: Path) -> None:
    store = open_store(tmp_path / "empty")
    with pytest.raises(DatasetNotFoundError, match=r"no 'info' file.*zarr\.json, \.zarray"):
        detect(store)


def test_open_reads_the_info_once(tmp_path: Path) -> None:
    ba.create(tmp_path / "v", shape=(8, 8, 8), chunks=(8, 8, 8)).close()
    store = CountingStore(open_store(tmp_path / "v"))
    with ba.open(store):
        pass
    assert store.counts["get"] == 1


def test_a_plain_zarr_group_is_named_not_misread(tmp_path: Path) -> None:
    store = open_store(tmp_path / "z")
    store.put("zarr.json", json.dumps({"zarr_format": 3, "node_type": "group"}).encode())
    with pytest.raises(UnsupportedError, match="Zarr group without OME-NGFF multiscales"):
        ba.open(tmp_path / "z")


def test_an_array_describes_its_level(tmp_path: Path) -> None:
    with ba.create(tmp_path / "v", shape=(20, 10, 6), chunks=(8, 8, 4), num_channels=3,
                   voxel_offset=(-4, 0, 2), resolution=(4, 4, 40)) as vol:  # fmt: skip
        assert vol.format == "precomputed"
        assert vol.dims == ("x", "y", "z", "c")
        assert vol.shape == (20, 10, 6, 3)
        assert vol.bounds == ba.Box((-4, 0, 2), (16, 10, 8))
        assert vol.chunks == (8, 8, 4)
        assert vol.grid_shape == (3, 2, 2)
        assert vol.resolution == (4, 4, 40)
        assert vol.fill_value == 0
        assert [a.name for a in vol.level.axes] == ["x", "y", "z", "c"]
        vol[-4:16, 0:10, 2:8, 1] = 7
        back = pickle.loads(pickle.dumps(vol))
        np.testing.assert_array_equal(back[..., 1], np.full((20, 10, 6), 7, np.uint8))
    with ba.create(tmp_path / "one", shape=(4, 4, 4), chunks=(4, 4, 4)) as vol:
        assert vol.dims == ("x", "y", "z")  # a single channel is no axis of its own
        assert vol.shape == (4, 4, 4)


@pytest.mark.parametrize(("old", "new"), [("precomputed", "zarr"), ("zarr", "precomputed"),
                                          ("zarr2", "zarr")])  # fmt: skip
def test_overwrite_replaces_a_dataset_of_another_format(tmp_path: Path, old: str, new: str) -> None:
    url = tmp_path / "d"
    ba.create(url, shape=(8, 8, 8), chunks=(4, 4, 4), format=old)[...] = 5
    with pytest.raises(ba.DatasetExistsError):
        ba.create(url, shape=(8, 8, 8), chunks=(4, 4, 4), format=new)
    with ba.create(url, shape=(8, 8, 8), chunks=(4, 4, 4), format=new, overwrite=True) as vol:
        assert not vol[...].any()
        assert vol.format == new
    leftovers = {p.name for p in url.iterdir()}
    assert not leftovers & {"info", "zarr.json", ".zarray"} - {
        {"precomputed": "info", "zarr": "zarr.json", "zarr2": ".zarray"}[new]
    }


def test_create_warnings_point_at_the_caller(tmp_path: Path) -> None:
    with pytest.warns(ba.errors.ViewerCompatibilityWarning) as caught:
        ba.create(tmp_path / "v", shape=(4, 4, 4), dtype="float64").close()
    assert {w.filename for w in caught} == {__file__}


def test_open_with_a_format_looks_for_that_format_alone(tmp_path: Path) -> None:
    ba.create(tmp_path / "v", shape=(4, 4, 4), chunks=(4, 4, 4)).close()
    assert ba.open(tmp_path / "v", format="precomputed").format == "precomputed"
    with pytest.raises(DatasetNotFoundError, match=r"no zarr dataset .*zarr\.json"):
        ba.open(tmp_path / "v", format="zarr")
    with pytest.raises(ValueError, match="format must be one of"):
        ba.open(tmp_path / "v", format="n5")


@pytest.mark.parametrize(
    ("option", "match"),
    [({"voxel_offset": (1, 0, 0)}, "starts at 0"), ({"num_channels": 2}, "'c' axis"),
     ({"encoding": "jpeg"}, "codecs"), ({"resolution": (4, 4, 40)}, "OME-Zarr image"),
     ({"dims": ("x", "y")}, "differ in their number of axes")],
)  # fmt: skip
def test_zarr_create_refuses_what_does_not_apply(tmp_path: Path, option: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ba.create(tmp_path / "a.zarr", shape=(8, 8, 8), chunks=(4, 4, 4), **option)
    assert not (tmp_path / "a.zarr" / "zarr.json").exists()


def test_zarr_open_refuses_write_compression(tmp_path: Path) -> None:
    ba.create(tmp_path / "a.zarr", shape=(8, 8), chunks=(4, 4)).close()
    with pytest.raises(ValueError, match="write_compression applies to precomputed"):
        ba.open(tmp_path / "a.zarr", mode="r+", write_compression="gzip")
