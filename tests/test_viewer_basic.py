"""ba.view / vol.view: the viewer's URL, its state, and the bytes its server sends."""

from __future__ import annotations

import json
import urllib.request
from urllib.parse import unquote

import numpy as np
import pytest

import bigarrays as ba
from bigarrays.viewer import stop_servers


@pytest.fixture(autouse=True)
def _servers():
    yield
    stop_servers()


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def _state(url: str) -> dict:
    return json.loads(unquote(url.split("#!", 1)[1]))


def test_view_numpy_serves_info_and_chunks():
    a = np.random.default_rng(0).integers(0, 255, (300, 200, 100), dtype=np.uint8)
    viewer = ba.view(a, resolution=(4, 4, 40))
    assert viewer.url.startswith("http://127.0.0.1:")
    assert str(viewer) == viewer.url
    assert viewer.url in repr(viewer)
    assert "<iframe" in viewer._repr_html_()
    status, _, body = _get(viewer.data_url(0) + "info")
    assert status == 200
    info = json.loads(body)
    assert info["scales"][0]["size"] == [300, 200, 100]
    status, _, body = _get(viewer.data_url(0) + "0/64-128_0-64_64-100")
    assert status == 200
    chunk = np.frombuffer(body, np.uint8).reshape((64, 64, 36), order="F")
    np.testing.assert_array_equal(chunk, a[64:128, 0:64, 64:100])
    state = _state(viewer.url)
    assert state["position"] == [150.0, 100.0, 50.0]
    assert state["layers"][0]["type"] == "image"
    assert state["layers"][0]["source"] == "precomputed://" + viewer.data_url(0)


def test_vol_view_serves_gzip_chunks_as_stored(tmp_path):
    with pytest.warns(ba.errors.ViewerCompatibilityWarning):
        vol = ba.create(tmp_path / "vol", shape=(100, 100, 20), dtype="uint8",
                        chunks=(32, 32, 10), compression="gzip")  # fmt: skip
    vol[:, :, :] = 7
    viewer = vol.view()
    key = vol.chunk_key((0, 0, 0))
    status, headers, body = _get(viewer.data_url() + key, {"Accept-Encoding": "gzip"})
    assert status == 200
    assert headers["Content-Encoding"] == "gzip"
    import gzip

    assert gzip.decompress(body) == bytes([7]) * (32 * 32 * 10)
    status, headers, body = _get(viewer.data_url() + key)
    assert "Content-Encoding" not in headers
    assert body == bytes([7]) * (32 * 32 * 10)
