"""Neuroglancer in headless Chromium shows our data where it belongs.

Every volume carries a known pattern in x and y (quadrants of distinct brightness, or two labels
in two halves); each test renders it in an "xy" panel, places the quadrants on the screenshot from
the viewer's own position and zoom, and compares their pixels. Screenshots are kept under the
artifact directory (see ``viewer_browser_support.artifact_dir``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import bigarrays as ba
from viewer_browser_support import Browser, Shot, StaticNeuroglancer, with_state

SHAPE = (128, 96, 8)  # x, y, z
# Quadrant values: left column bright, right column dark, and in the right column the top (small
# y) brighter than the bottom, so that a mirror in x or in y shows.
TOP_LEFT, BOTTOM_LEFT, TOP_RIGHT, BOTTOM_RIGHT = 250, 230, 140, 40


def quadrants(shape: tuple[int, ...] = SHAPE, dtype: str = "uint8") -> np.ndarray:
    data = np.empty(shape, dtype, order="F")
    half_x, half_y = shape[0] // 2, shape[1] // 2
    data[:half_x, :half_y] = TOP_LEFT
    data[:half_x, half_y:] = BOTTOM_LEFT
    data[half_x:, :half_y] = TOP_RIGHT
    data[half_x:, half_y:] = BOTTOM_RIGHT
    return data


def quadrant_means(
    shot: Shot,
    offset: tuple[float, float] = (0, 0),
    shape: tuple[int, ...] = SHAPE,
    voxel_size: tuple[float, float] | None = None,
) -> dict[str, float]:
    """Mean brightness of the middle of each quadrant of the volume, as shown."""
    x0, y0 = offset
    sx, sy = shape[0] / 4, shape[1] / 4
    # The middle half of each quadrant: clear of its edges, however the data is resampled.
    xs = {"left": (x0 + 0.5 * sx, x0 + 1.5 * sx), "right": (x0 + 2.5 * sx, x0 + 3.5 * sx)}
    ys = {"top": (y0 + 0.5 * sy, y0 + 1.5 * sy), "bottom": (y0 + 2.5 * sy, y0 + 3.5 * sy)}
    return {
        f"{v}_{h}": float(shot.voxels(xs[h], ys[v], voxel_size).mean())
        for v in ("top", "bottom")
        for h in ("left", "right")
    }


def assert_clean(shot: Shot) -> None:
    """No request failed and no script threw while the page loaded."""
    assert shot.errors == [], shot.errors


def assert_quadrants(means: dict[str, float]) -> None:
    """Bright left column, dark right column, top-right brighter than bottom-right."""
    left = min(means["top_left"], means["bottom_left"])
    assert left > 150, means
    assert left > means["top_right"] + 40, means
    assert means["top_right"] > means["bottom_right"] + 30, means


def colour_plane(shot: Shot, index: int) -> Shot:
    """``shot`` with its colour ``index`` (0 red, 1 green, 2 blue) in every colour: the
    brightness one channel of a multi-channel image adds."""
    plane = np.repeat(shot.image[..., index : index + 1], 3, axis=2)
    return dataclasses.replace(shot, image=plane)


def assert_mirrored(means: dict[str, float]) -> None:
    """The quadrants mirrored in x: bright right column, top-left brighter than bottom-left."""
    right = min(means["top_right"], means["bottom_right"])
    assert right > 150, means
    assert right > means["top_left"] + 40, means
    assert means["top_left"] > means["bottom_left"] + 30, means


def test_static_server_renders_a_precomputed_volume(browser: Browser, tmp_path: Path) -> None:
    # Neuroglancer's client and a volume on the standard library's file server: proves the
    # browser, WebGL and the readiness wait before any viewer code of ours is involved.
    vol = ba.create(
        tmp_path / "vol",
        shape=SHAPE,
        dtype="uint8",
        chunks=(64, 64, 8),
        resolution=(8, 8, 8),
    )
    vol[:, :, :] = quadrants()
    state = {
        "layers": [{"type": "image", "name": "vol", "source": "precomputed://{data}/vol"}],
        "layout": "xy",
        # With the dimensions given, the zoom below is in voxels per pixel from the start.
        "dimensions": {axis: [8e-9, "m"] for axis in "xyz"},
        "position": [SHAPE[0] / 2, SHAPE[1] / 2, SHAPE[2] / 2],
        "crossSectionScale": 0.3,
    }
    with StaticNeuroglancer(tmp_path) as server:
        shot = browser.load(server.url(state), "static_precomputed")
    assert shot.image.shape == (600, 800, 3)
    assert_quadrants(quadrant_means(shot))
    # Outside the volume the panel shows its background, not data.
    outside = shot.voxels((SHAPE[0] + 20, SHAPE[0] + 40), (0, 20))
    assert abs(float(outside.mean()) - TOP_LEFT) > 60


# -- through ba.view ----------------------------------------------------------------------------


def view_and_load(
    browser: Browser, name: str, *sources: object, layers: int | None = None, **options: object
) -> Shot:
    """``sources`` viewed in an "xy" panel, once the data of its ``layers`` (one per source by
    default) is drawn."""
    viewer = ba.view(*sources, layout="xy", **options)
    try:
        shot = browser.load(viewer.url, name, layers=layers or len(sources))
    finally:
        viewer.close()
    assert_clean(shot)
    return shot


def test_view_precomputed_gzip(browser: Browser, tmp_path: Path) -> None:
    # gzip chunks go out as stored, with Content-Encoding: the browser inflates them.
    vol = ba.create(
        tmp_path / "vol",
        shape=SHAPE,
        dtype="uint8",
        chunks=(32, 32, 8),
        resolution=(8, 8, 8),
        compression="gzip",
    )
    vol[:, :, :] = quadrants()
    shot = view_and_load(browser, "view_precomputed_gzip", vol)
    assert_quadrants(quadrant_means(shot))


def test_view_precomputed_negative_offset_by_url(browser: Browser, tmp_path: Path) -> None:
    offset = (-40, -1000, 3)
    vol = ba.create(
        tmp_path / "vol",
        shape=SHAPE,
        dtype="uint16",
        chunks=(64, 64, 8),
        voxel_offset=offset,
        resolution=(4, 4, 30),
    )
    vol[-40 : SHAPE[0] - 40, -1000 : SHAPE[1] - 1000, 3 : SHAPE[2] + 3] = quadrants(
        dtype="uint16"
    ) * np.uint16(200)
    shot = view_and_load(browser, "view_precomputed_offset", str(tmp_path / "vol"))
    assert_quadrants(quadrant_means(shot, offset=offset[:2]))


def test_view_sharded_precomputed(browser: Browser, tmp_path: Path) -> None:
    vol = ba.create(
        tmp_path / "vol",
        shape=SHAPE,
        dtype="uint8",
        chunks=(32, 32, 8),
        resolution=(8, 8, 8),
        sharding=True,
        # Several shards, each of several chunks.
        shard_size_bytes=4 * 32 * 32 * 8,
    )
    vol[:, :, :] = quadrants()
    assert any(key.endswith(".shard") for key in vol.store.list(""))
    shot = view_and_load(browser, "view_sharded", vol)
    assert_quadrants(quadrant_means(shot))


def test_view_zarr_v3(browser: Browser, tmp_path: Path) -> None:
    # Stored in C order (z, y, x); the panel still shows x across and y down.
    img = ba.create(
        tmp_path / "vol.zarr",
        shape=SHAPE[::-1],
        dtype="uint8",
        dims=("z", "y", "x"),
        chunks=(8, 32, 32),
        compression="zstd",
    )
    img[:, :, :] = quadrants().T
    shot = view_and_load(browser, "view_zarr_v3", img)
    assert_quadrants(quadrant_means(shot))


def test_view_ome_zarr_multiscale(browser: Browser, tmp_path: Path) -> None:
    img = ba.create(
        tmp_path / "img.ome.zarr",
        shape=(2, *SHAPE[::-1]),
        dtype="uint16",
        dims=("c", "z", "y", "x"),
        chunks=(1, 8, 32, 32),
        resolution=(40, 8, 8),
    )
    # Two channels, shown added up in red and green: the quadrants, and the quadrants
    # mirrored in x.
    img[0, :, :, :] = quadrants(dtype="uint16").T * np.uint16(100)
    img[1, :, :, :] = quadrants(dtype="uint16")[::-1].T * np.uint16(100)
    img.downsample(num_mips=2)
    shot = view_and_load(browser, "view_ome_zarr", img, layers=2)
    assert_quadrants(quadrant_means(colour_plane(shot, 0)))
    assert_mirrored(quadrant_means(colour_plane(shot, 1)))
    assert max(quadrant_means(colour_plane(shot, 2)).values()) < 30  # no channel is blue


def test_view_precomputed_channels_in_colour(browser: Browser, tmp_path: Path) -> None:
    vol = ba.create(tmp_path / "vol", shape=SHAPE, num_channels=2, dtype="uint8",
                    chunks=(32, 32, 8), resolution=(8, 8, 8))  # fmt: skip
    vol[:, :, :, 0] = quadrants()
    vol[:, :, :, 1] = quadrants()[::-1]
    shot = view_and_load(browser, "view_precomputed_channels", vol, layers=2)
    assert_quadrants(quadrant_means(colour_plane(shot, 0)))
    assert_mirrored(quadrant_means(colour_plane(shot, 1)))


def test_view_a_scale_kept_beside_the_dataset(browser: Browser, tmp_path: Path) -> None:
    # Key "../shared": the viewer serves it under an alias the browser does not resolve.
    vol = ba.create(tmp_path / "vol", shape=SHAPE, dtype="uint8", chunks=(32, 32, 8),
                    resolution=(8, 8, 8))  # fmt: skip
    vol[:, :, :] = quadrants()
    info = json.loads((tmp_path / "vol" / "info").read_text())
    (tmp_path / "vol" / info["scales"][0]["key"]).rename(tmp_path / "shared")
    info["scales"][0]["key"] = "../shared"
    (tmp_path / "vol" / "info").write_text(json.dumps(info))
    shared = ba.open(tmp_path / "vol", allow_parent_keys=True)
    assert_quadrants(quadrant_means(view_and_load(browser, "view_parent_key", shared)))


def test_view_ome_zarr_translated(browser: Browser, tmp_path: Path) -> None:
    # An image placed far from the origin by its multiscale's translation (as ome-zarr-py and
    # converters write them): the view starts on it, not on an empty region at the origin.
    path = tmp_path / "moved.ome.zarr"
    img = ba.create(path, shape=SHAPE[::-1], dtype="uint8", dims=("z", "y", "x"),
                    chunks=(8, 32, 32), resolution=(40, 8, 8))  # fmt: skip
    img[:, :, :] = quadrants().T
    document = json.loads((path / "zarr.json").read_text())
    dataset = document["attributes"]["ome"]["multiscales"][0]["datasets"][0]
    for transform in dataset["coordinateTransformations"]:
        if transform["type"] == "translation":  # moved 500 voxels in y, 1000 in x
            transform["translation"][1] += 8.0 * 500
            transform["translation"][2] += 8.0 * 1000
    (path / "zarr.json").write_text(json.dumps(document))
    shot = view_and_load(browser, "view_ome_zarr_translated", ba.open(path))
    assert_quadrants(quadrant_means(shot, offset=(1000, 500)))


def _precomputed_pyramid(tmp_path: Path) -> tuple[ba.BigArray, ba.BigArray]:
    vol = ba.create(
        tmp_path / "vol", shape=LARGE, dtype="uint8", chunks=(32, 32, 8), resolution=(8, 8, 8)
    )
    vol[:, :, :] = quadrants(LARGE)
    vol.downsample(num_mips=1)
    return vol, ba.open(tmp_path / "vol", mode="r+", mip=1)


def _ome_zarr_pyramid(tmp_path: Path) -> tuple[ba.BigArray, ba.BigArray]:
    img = ba.create(
        tmp_path / "img.ome.zarr",
        shape=LARGE[::-1],
        dtype="uint8",
        dims=("z", "y", "x"),
        chunks=(8, 32, 32),
        resolution=(8, 8, 8),
    )
    img[:, :, :] = quadrants(LARGE).T
    img.downsample(num_mips=1)
    return img, ba.open(tmp_path / "img.ome.zarr", mode="r+", mip=1)


LARGE = (256, 192, 8)


@pytest.mark.parametrize("make", [_precomputed_pyramid, _ome_zarr_pyramid])
def test_zoomed_out_view_reads_the_coarser_level(
    browser: Browser,
    tmp_path: Path,
    make: Callable[[Path], tuple[ba.BigArray, ba.BigArray]],
) -> None:
    # Level 1 holds the pattern mirrored in x: only a read of level 1 can show it that way.
    full, coarse = make(tmp_path)
    level1 = np.asarray(coarse[:, :, :])
    x_first = coarse.dims[0] == "x"
    coarse[:, :, :] = level1[::-1] if x_first else level1[:, :, ::-1]
    assert (coarse.shape if x_first else coarse.shape[::-1])[:2] == (LARGE[0] // 2, LARGE[1] // 2)
    viewer = ba.view(full, layout="xy")
    try:
        near = browser.load(viewer.url, f"levels_{make.__name__}_near")
        # Three voxels of level 0 per pixel: Neuroglancer draws level 1 (two per voxel).
        far = browser.load(with_state(viewer.url, crossSectionScale=3), f"levels_{make.__name__}")
    finally:
        viewer.close()
    assert_clean(near)
    assert_clean(far)
    assert_quadrants(quadrant_means(near, shape=LARGE))
    assert_mirrored(quadrant_means(far, shape=LARGE))


def test_notebook_iframe_shows_the_data(browser: Browser) -> None:
    # What Jupyter shows for a viewer: its _repr_html_ inside a page of another origin.
    viewer = ba.view(quadrants(), layout="xy")
    try:
        page = f"<!doctype html><html><body>{viewer._repr_html_()}</body></html>"
        shot = browser.load_html(page, "notebook_iframe")
    finally:
        viewer.close()
    assert_clean(shot)
    assert_quadrants(quadrant_means(shot))


def test_view_dask_array(browser: Browser) -> None:
    import dask.array as da

    data = da.from_array(quadrants(), chunks=(50, 40, 8))
    shot = view_and_load(browser, "view_dask", data, resolution=(8, 8, 8))
    assert_quadrants(quadrant_means(shot))


def test_view_numpy_array(browser: Browser) -> None:
    data = quadrants(dtype="float32") / np.float32(255)
    shot = view_and_load(browser, "view_numpy", data, resolution=(6, 6, 30), voxel_offset=(5, 7, 0))
    assert_quadrants(quadrant_means(shot, offset=(5, 7)))


def labels_halves(shape: tuple[int, ...] = SHAPE, dtype: str = "uint32") -> np.ndarray:
    labels = np.full(shape, 17, dtype, order="F")
    labels[shape[0] // 2 :] = 90001
    return labels


def assert_two_segments(shot: Shot, shape: tuple[int, ...] = SHAPE) -> None:
    """Two coloured, different segments: left half and right half."""
    quarter = shape[0] / 4
    ys = (shape[1] * 0.25, shape[1] * 0.75)
    left = np.median(shot.voxels((0.5 * quarter, 1.5 * quarter), ys).reshape(-1, 3), axis=0)
    right = np.median(shot.voxels((2.5 * quarter, 3.5 * quarter), ys).reshape(-1, 3), axis=0)
    outside = np.median(shot.voxels((shape[0] + 10, shape[0] + 30), ys).reshape(-1, 3), axis=0)
    for colour in (left, right):
        # A segment colour is saturated: not grey, not the background.
        assert colour.max() - colour.min() > 40, (left, right, outside)
        assert np.abs(colour - outside).max() > 40, (left, right, outside)
    assert np.abs(left - right).max() > 40, (left, right)


def test_view_segmentation_precomputed(browser: Browser, tmp_path: Path) -> None:
    vol = ba.create(
        tmp_path / "seg",
        shape=SHAPE,
        dtype="uint32",
        chunks=(64, 64, 8),
        resolution=(8, 8, 8),
        layer_type="segmentation",
        encoding="compressed_segmentation",
    )
    vol[:, :, :] = labels_halves()
    shot = view_and_load(browser, "view_segmentation", vol)
    assert shot.state["layers"][0]["type"] == "segmentation"
    assert_two_segments(shot)


def test_view_numpy_segmentation(browser: Browser) -> None:
    shot = view_and_load(
        browser, "view_numpy_segmentation", labels_halves(dtype="uint64"),
        layer_type="segmentation",
    )  # fmt: skip
    assert shot.state["layers"][0]["type"] == "segmentation"
    assert_two_segments(shot)


def test_refresh_shows_the_new_data(browser: Browser) -> None:
    # Large enough that the whole-array view draws a downsampled level, whose chunks the
    # server pools once and keeps: only refresh() makes it pool the new data.
    shape = (2048, 1536, 4)
    data = quadrants(shape)
    viewer = ba.view(data, layout="xy")
    try:
        before = browser.load(viewer.url, "refresh_before")
        assert_clean(before)
        assert_quadrants(quadrant_means(before, shape=shape))
        assert before.state["crossSectionScale"] > 2, "expected a zoom that shows a coarse level"
        data[:] = data[::-1].copy(order="F")  # mirror in x, in place
        viewer.refresh()
        shot = browser.load(viewer.url, "refresh_after")
    finally:
        viewer.close()
    assert_clean(shot)
    assert_mirrored(quadrant_means(shot, shape=shape))


def test_assigning_new_data_to_a_layer_shows_it(browser: Browser) -> None:
    viewer = ba.view(quadrants(), layout="xy")
    try:
        assert_quadrants(quadrant_means(browser.load(viewer.url, "assign_before")))
        viewer["array"] = np.asfortranarray(quadrants()[::-1])  # mirrored in x: a new array
        shot = browser.load(viewer.url, "assign_after")
    finally:
        viewer.close()
    assert_clean(shot)
    assert_mirrored(quadrant_means(shot))


def test_command_line_view_renders_in_the_browser(browser: Browser, tmp_path: Path) -> None:
    # `bigarrays view` in a process of its own, as a user runs it; its first line is the URL.
    vol = ba.create(tmp_path / "vol", shape=SHAPE, dtype="uint8", chunks=(64, 64, 8))
    vol[:, :, :] = quadrants()
    vol.close()
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    command = [sys.executable, "-m", "bigarrays.cli", "view", str(tmp_path / "vol")]
    proc = subprocess.Popen(
        [*command, "--layout", "xy"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        shot = browser.load(url, "command_line_view")
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert_clean(shot)
    assert_quadrants(quadrant_means(shot))
