"""Neuroglancer in headless Chromium shows our data where it belongs.

Every volume carries a known pattern in x and y (quadrants of distinct brightness, or two labels
in two halves); each test renders it in an "xy" panel, places the quadrants on the screenshot from
the viewer's own position and zoom, and compares their pixels. Screenshots are kept under the
artifact directory (see ``viewer_browser_support.artifact_dir``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import bigarrays as ba
from viewer_browser_support import Browser, Shot, StaticNeuroglancer

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


def assert_quadrants(means: dict[str, float]) -> None:
    """Bright left column, dark right column, top-right brighter than bottom-right."""
    left = min(means["top_left"], means["bottom_left"])
    assert left > 150, means
    assert left > means["top_right"] + 40, means
    assert means["top_right"] > means["bottom_right"] + 30, means


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
