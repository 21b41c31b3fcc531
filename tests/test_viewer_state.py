"""The state a viewer opens with (centre, zoom, layers, contrast) and the routes to its server
(direct, or through a notebook server's proxy)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import bigarrays as ba
from bigarrays.viewer import stop_servers
from bigarrays.viewer.jupyter import route
from bigarrays.viewer.state import contrast_range
from viewer_helpers import fetch, state_of


@pytest.fixture(autouse=True)
def _servers(monkeypatch):
    monkeypatch.delenv("BIGARRAYS_VIEWER_PROXY", raising=False)
    yield
    stop_servers()


def test_precomputed_state_centre_zoom_and_contrast(tmp_path):
    vol = ba.create(tmp_path / "em", shape=(400, 300, 50), dtype="uint8", chunks=(64, 64, 16),
                    voxel_offset=(-100, 20, 5), resolution=(8, 8, 40))  # fmt: skip
    rng = np.random.default_rng(0)
    vol[:, :, :] = rng.integers(50, 151, (400, 300, 50), dtype=np.uint8)
    viewer = vol.view()
    state = state_of(viewer.url)
    assert state == viewer.state
    assert state["dimensions"] == {"x": [8e-9, "m"], "y": [8e-9, "m"], "z": [40e-9, "m"]}
    assert state["position"] == [100.0, 170.0, 30.0]  # the centre of the bounds
    assert state["layout"] == "4panel"
    assert state["crossSectionScale"] == pytest.approx(400 / 250)
    (layer,) = state["layers"]
    assert layer == {
        "type": "image", "name": "em", "source": "precomputed://" + viewer.data_url(),
        "shaderControls": {"normalized": {"range": layer["shaderControls"]["normalized"]["range"]}},
    }  # fmt: skip
    lo, hi = layer["shaderControls"]["normalized"]["range"]
    assert 50 <= lo < 55
    assert 145 < hi <= 150
    vol.close()


@pytest.fixture
def read_shapes(monkeypatch):
    """The shape of every ``vol[...]`` result, in order."""
    shapes = []
    real = ba.BigArray.__getitem__

    def counting(self, key):
        out = real(self, key)
        shapes.append(out.shape)
        return out

    monkeypatch.setattr(ba.BigArray, "__getitem__", counting)
    return shapes


def test_contrast_comes_from_a_bounded_sample(tmp_path, read_shapes):
    vol = ba.create(tmp_path / "big", shape=(2048, 2048, 64), dtype="uint16", chunks=(256, 256, 16))
    vol[768:1280, 768:1280, 30:34] = 1000  # the central sample, and only it
    state = vol.view().state
    assert sum(int(np.prod(s)) for s in read_shapes) <= 1 << 20  # of a volume of 2**28 voxels
    assert state["layers"][0]["shaderControls"]["normalized"]["range"] == [1000, 1001]


def test_labels_give_segmentation_layers(tmp_path):
    seg = ba.create(tmp_path / "seg", shape=(64, 64, 8), dtype="uint64", chunks=(32, 32, 8),
                    layer_type="segmentation", encoding="compressed_segmentation")  # fmt: skip
    viewer = ba.view(seg, np.zeros((8, 8, 8), np.uint32), np.zeros((8, 8, 8), np.uint8))
    types = [layer["type"] for layer in viewer.state["layers"]]
    assert types == ["segmentation", "segmentation", "image"]
    assert "shaderControls" not in viewer.state["layers"][0]
    forced = ba.view(np.zeros((8, 8, 8), np.uint8), layer_type="segmentation")
    assert forced.state["layers"][0]["type"] == "segmentation"
    seg.close()


def test_caller_layout_position_and_layers():
    a = np.zeros((100, 80, 60), np.uint8)
    b = np.ones((100, 80, 60), np.uint16)
    mask = {"name": "mask", "opacity": 0.5, "visible": False}
    viewer = ba.view(a, b, layout="xy-3d", position=(1, 2, 3), layers=["raw", mask])
    state = state_of(viewer.url)
    assert state["layout"] == "xy-3d"
    assert state["position"] == [1.0, 2.0, 3.0]
    raw, mask = state["layers"]
    assert raw["name"] == "raw"
    assert mask["name"] == "mask"
    assert mask["opacity"] == 0.5
    assert mask["visible"] is False
    assert mask["source"].startswith("precomputed://")
    assert state["selectedLayer"] == {"layer": "raw"}


def test_repeated_names_are_numbered():
    a = np.zeros((8, 8, 8), np.uint8)
    names = [layer["name"] for layer in ba.view(a, a, layers=["x", "x"]).state["layers"]]
    assert names == ["x", "x-2"]


def test_bad_state_options_are_refused():
    a = np.zeros((8, 8, 8), np.uint8)
    with pytest.raises(ba.InvalidArgumentError, match="layout"):
        ba.view(a, layout="sideways")
    with pytest.raises(ba.InvalidArgumentError, match="position"):
        ba.view(a, position=(1, 2))
    with pytest.raises(ba.InvalidArgumentError, match="one entry"):
        ba.view(a, layers=["a", "b"])
    with pytest.raises(ba.InvalidArgumentError, match="layers"):
        ba.view(a, layers=[3])


def test_a_url_source_is_opened_and_closed_with_the_viewer(tmp_path):
    vol = ba.create(tmp_path / "byurl", shape=(16, 16, 16), dtype="uint8")
    vol.close()
    viewer = ba.view(str(tmp_path / "byurl"))
    assert fetch(viewer.data_url() + "info")[0] == 200
    owned = viewer._entries[0].owned
    viewer.close()
    with pytest.raises(ba.ArrayClosedError):
        owned[0, 0, 0]


def test_ome_zarr_dimensions_put_x_y_z_first(tmp_path):
    img = ba.create(tmp_path / "img.ome.zarr", shape=(3, 20, 64, 48), dtype="uint16",
                    dims=("c", "z", "y", "x"), chunks=(1, 10, 32, 32),
                    resolution=(400, 100, 100))  # fmt: skip
    img[:, :, :, :] = 7
    viewer = img.view()
    state = viewer.state
    assert list(state["dimensions"]) == ["x", "y", "z"]  # the channel is a local dimension
    assert state["dimensions"]["x"] == [pytest.approx(100e-9), "m"]
    assert state["dimensions"]["z"] == [pytest.approx(400e-9), "m"]
    assert state["position"] == [24.0, 32.0, 10.0]
    assert state["layers"][0]["source"] == "zarr3://" + viewer.data_url()
    assert fetch(viewer.data_url() + "zarr.json")[1]["Content-Type"] == "application/json"
    img.close()


def test_contrast_range_of_samples():
    assert contrast_range(np.arange(1000)) == pytest.approx((4.995, 994.005))
    assert contrast_range(np.full(10, 3.0)) == (3.0, 4.0)
    assert contrast_range(np.array([np.nan, np.inf])) is None
    assert contrast_range(np.array([np.nan, 1.0, 2.0])) is not None


# -- routes --------------------------------------------------------------------------------------

DIRECT = "http://127.0.0.1:8123/TOKEN/"


def test_no_proxy_outside_a_kernel_or_without_the_package():
    assert route(DIRECT, 8123, "TOKEN", env={}, kernel=False, proxy=True).page == DIRECT
    assert route(DIRECT, 8123, "TOKEN", env={}, kernel=True, proxy=False).page == DIRECT


def test_proxy_through_the_notebook_server():
    found = route(DIRECT, 8123, "TOKEN", env={}, kernel=True, proxy=True,
                  server=("https://nb.example:8888", "/lab-base/"))  # fmt: skip
    assert found.proxied
    assert found.page == "/lab-base/proxy/8123/TOKEN/"
    assert found.data == "https://nb.example:8888/lab-base/proxy/8123/TOKEN/"


def test_jupyterhub_prefix_wins():
    env = {"JUPYTERHUB_SERVICE_PREFIX": "/user/ann/"}
    found = route(DIRECT, 8123, "TOKEN", env=env, kernel=True, proxy=True,
                  server=("http://127.0.0.1:8888", "/"))  # fmt: skip
    assert found.page == "/user/ann/proxy/8123/TOKEN/"


def test_environment_forces_or_disables_the_proxy():
    off = {"BIGARRAYS_VIEWER_PROXY": "0"}
    assert route(DIRECT, 1, "T", env=off, kernel=True, proxy=True).page == DIRECT
    forced = {"BIGARRAYS_VIEWER_PROXY": "/hub/user/bo"}
    found = route(DIRECT, 8123, "T", env=forced, kernel=False, proxy=False,
                  server=("http://h:1", "/"))  # fmt: skip
    assert found.page == "/hub/user/bo/proxy/8123/T/"


def test_viewer_behind_a_proxy_prefixes_page_and_data(monkeypatch):
    monkeypatch.setenv("BIGARRAYS_VIEWER_PROXY", "/user/ann/")
    monkeypatch.setattr("bigarrays.viewer.jupyter.notebook_server",
                        lambda: ("https://hub.example", "/"))  # fmt: skip
    viewer = ba.view(np.zeros((8, 8, 8), np.uint8))
    port, token = viewer.server.port, viewer.server.token
    assert viewer.url.startswith(f"/user/ann/proxy/{port}/{token}/v/0/#!")
    source = state_of(viewer.url)["layers"][0]["source"]
    assert source.startswith(
        f"precomputed://https://hub.example/user/ann/proxy/{port}/{token}/data/"
    )
    assert f'src="/user/ann/proxy/{port}/{token}/v/0/' in viewer._repr_html_()
    # The proxy hands the server the path after proxy/<port>: the server serves it.
    direct = viewer.data_url().replace(f"https://hub.example/user/ann/proxy/{port}",
                                       f"http://127.0.0.1:{port}")  # fmt: skip
    assert fetch(direct + "info")[0] == 200


@pytest.mark.parametrize("fmt", ["zarr", "zarr2"])
def test_plain_zarr_arrays_are_named_as_neuroglancer_names_them(tmp_path, fmt):
    named = ba.create(tmp_path / "named", shape=(4, 30, 20), dtype="uint8", dims=("z", "y", "x"),
                      format=fmt)  # fmt: skip
    state = named.view().state
    assert state["dimensions"] == {"x": [1.0, ""], "y": [1.0, ""], "z": [1.0, ""]}
    assert state["position"] == [10.0, 15.0, 2.0]
    unnamed = ba.create(tmp_path / "unnamed", shape=(30, 20), dtype="uint8", format=fmt)
    first = "dim_0" if fmt == "zarr" else "d0"  # Neuroglancer's names for unnamed axes
    assert list(unnamed.view().state["dimensions"]) == [first, first[:-1] + "1"]
    named.close()
    unnamed.close()


def test_kernel_and_notebook_server_detection(monkeypatch):
    import sys
    import types

    from bigarrays.viewer import jupyter

    assert not jupyter.in_kernel()  # pytest is no kernel
    shell = types.SimpleNamespace(kernel=object())
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    fake_ipython = types.ModuleType("IPython")
    fake_ipython.get_ipython = lambda: shell  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", fake_ipython)
    assert jupyter.in_kernel()
    from jupyter_server import serverapp

    running = [{"url": "http://localhost:8890/nb/", "base_url": "/nb/"}]
    monkeypatch.setattr(serverapp, "list_running_servers", lambda: iter(running))
    assert jupyter.notebook_server() == ("http://localhost:8890", "/nb/")
    found = route(DIRECT, 8123, "TOKEN", env={}, proxy=True)
    assert found.page == "/nb/proxy/8123/TOKEN/"
    assert found.data == "http://localhost:8890/nb/proxy/8123/TOKEN/"


def _two_channels(n: int = 2) -> np.ndarray:
    data = np.zeros((16, 16, 4, n), np.uint16)
    for c in range(n):
        data[..., c] = np.arange(16 * 16 * 4, dtype=np.uint16).reshape(16, 16, 4) * (c + 1)
    return data


def test_a_multichannel_image_gets_a_coloured_layer_per_channel():
    viewer = ba.view(_two_channels(3), layers=["cells"])
    layers = viewer.state["layers"]
    assert [layer["name"] for layer in layers] == ["cells c0", "cells c1", "cells c2"]
    assert viewer.state["selectedLayer"] == {"layer": "cells c0"}
    assert {layer["blend"] for layer in layers} == {"additive"}
    controls = [layer["shaderControls"] for layer in layers]
    assert [c["color"] for c in controls] == ["#ff0000", "#00ff00", "#0000ff"]
    # A channel dimension (precomputed's c^): the shader picks the channel.
    assert [c["normalized"]["channel"] for c in controls] == [[0], [1], [2]]
    # Each channel's contrast comes from its own values (channel 2 is 3x channel 0).
    hi0 = controls[0]["normalized"]["range"][1]
    hi2 = controls[2]["normalized"]["range"][1]
    assert hi2 == pytest.approx(3 * hi0, rel=0.01)
    # Indexing the viewer by name still goes by source.
    viewer["cells"] = np.zeros((8, 8, 8), np.uint8)
    assert [layer["name"] for layer in viewer.state["layers"]] == ["cells"]


def test_one_layer_for_one_channel_many_channels_or_the_callers_shader():
    assert len(ba.view(_two_channels(1)).state["layers"]) == 1
    assert len(ba.view(_two_channels(7)).state["layers"]) == 1  # Neuroglancer's slider
    shader = "void main() { emitGrayscale(toNormalized(getDataValue(1))); }"
    mine = ba.view(_two_channels(2), layers=[{"name": "mine", "shader": shader}]).state["layers"]
    assert [(layer["name"], layer["shader"]) for layer in mine] == [("mine", shader)]
    seg = ba.view(np.zeros((8, 8, 8, 2), np.uint32), layer_type="segmentation")
    assert len(seg.state["layers"]) == 1


def test_ome_zarr_channels_take_the_omero_colours_labels_and_windows(tmp_path):
    path = tmp_path / "img.ome.zarr"
    img = ba.create(path, shape=(2, 4, 32, 32), dtype="uint16", dims=("c", "z", "y", "x"),
                    chunks=(1, 4, 32, 32))  # fmt: skip
    img[0] = 100
    img[1] = 900
    img.close()
    document = json.loads((path / "zarr.json").read_text())
    document["attributes"]["ome"]["omero"] = {
        "channels": [
            {"label": "DAPI", "color": "0000FF", "window": {"start": 10, "end": 500}},
            {"label": "GFP", "color": "not a colour"},
        ]
    }
    (path / "zarr.json").write_text(json.dumps(document))
    layers = ba.view(str(path)).state["layers"]
    assert [layer["name"] for layer in layers] == ["img.ome.zarr DAPI", "img.ome.zarr GFP"]
    dapi, gfp = (layer["shaderControls"] for layer in layers)
    assert dapi == {"normalized": {"range": [10, 500]}, "color": "#0000ff"}
    assert gfp["color"] == "#00ff00"  # the palette's second colour
    assert gfp["normalized"]["range"] == [900, 901]  # from the data: one value
    # An OME-Zarr channel axis is a local dimension (c'): its position picks the channel.
    assert [layer["localPosition"] for layer in layers] == [[0], [1]]
    assert {json.dumps(layer["localDimensions"]) for layer in layers} == {'{"c\'": [1, ""]}'}


def test_repeated_omero_labels_give_numbered_channels(tmp_path):
    path = tmp_path / "img.ome.zarr"
    img = ba.create(path, shape=(2, 4, 32, 32), dtype="uint8", dims=("c", "z", "y", "x"))
    img.close()
    document = json.loads((path / "zarr.json").read_text())
    document["attributes"]["ome"]["omero"] = {"channels": [{"label": "a"}, {"label": "a"}]}
    (path / "zarr.json").write_text(json.dumps(document))
    names = [layer["name"] for layer in ba.view(str(path)).state["layers"]]
    assert names == ["img.ome.zarr c0", "img.ome.zarr c1"]


@pytest.mark.parametrize("channels", [3, 40])
def test_the_sample_of_a_multichannel_image_stays_bounded(tmp_path, read_shapes, channels):
    img = ba.create(tmp_path / "img.ome.zarr", shape=(channels, 16, 1024, 1024), dtype="uint16",
                    dims=("c", "z", "y", "x"), chunks=(1, 16, 256, 256))  # fmt: skip
    layers = img.view().state["layers"]
    assert sum(int(np.prod(s)) for s in read_shapes) <= 1 << 20
    # Every channel is sampled when each gets a layer; 40 keep one layer.
    assert len(layers) == (channels if channels <= 6 else 1)
    assert read_shapes[0][0] == (channels if channels <= 6 else 4)
