"""In-memory arrays served as precomputed volumes: the bytes decode to the array's values, with
our codecs, with ``ba.open`` over HTTP and with TensorStore's precomputed driver."""

from __future__ import annotations

import json

import numpy as np
import pytest

import bigarrays as ba
from bigarrays.codecs.compressed_segmentation import CompressedSegmentationCodec
from bigarrays.codecs.raw import RawCodec
from bigarrays.ops.pooling import pool_levels
from bigarrays.viewer import stop_servers
from bigarrays.viewer.memory_source import MemorySource
from viewer_helpers import fetch


@pytest.fixture(autouse=True)
def _servers():
    yield
    stop_servers()


def _image(shape=(150, 130, 70), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 60000, shape, dtype=np.uint16)


def _labels(shape=(100, 90, 40)) -> np.ndarray:
    x, y, z = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    return (1 + x // 7 + 100 * (y // 9) + 10000 * (z // 5)).astype(np.uint64)


def _pooled(a: np.ndarray, start, factor, method: str) -> np.ndarray:
    """``a`` (x, y, z) at absolute ``start`` pooled once by ``factor`` (what level 1 holds)."""
    ((out, _),) = pool_levels(a[..., None], (*start, 0), [(*factor, 1)], method)
    return out[..., 0]


def test_chunks_decode_to_the_array_values_with_our_codec():
    a = _image()
    viewer = ba.view(a, resolution=(4, 4, 30), voxel_offset=(-10, 5, 0))
    info = json.loads(fetch(viewer.data_url() + "info")[2])
    scale = info["scales"][0]
    assert scale["voxel_offset"] == [-10, 5, 0]
    assert scale["size"] == [150, 130, 70]
    assert scale["resolution"] == [4.0, 4.0, 30.0]
    assert info["data_type"] == "uint16"
    codec = RawCodec(np.dtype("uint16"), 1)
    # An edge chunk, cut to the bounds as precomputed stores it.
    status, _, body = fetch(viewer.data_url() + "0/118-140_69-133_64-70")
    assert status == 200
    chunk = codec.decode(body, (22, 64, 6, 1), "k")[..., 0]
    np.testing.assert_array_equal(chunk, a[128:150, 64:128, 64:70])


def test_levels_are_pooled_from_the_level_before():
    a = _image()
    viewer = ba.view(a, resolution=(4, 4, 30))
    info = json.loads(fetch(viewer.data_url() + "info")[2])
    assert len(info["scales"]) > 2
    assert info["scales"][1]["resolution"] == [8.0, 8.0, 30.0]
    assert info["scales"][1]["size"] == [75, 65, 70]
    level1 = _pooled(a, (0, 0, 0), (2, 2, 1), "mean")
    status, _, body = fetch(viewer.data_url() + "1/64-75_0-64_0-64")
    assert status == 200
    chunk = RawCodec(np.dtype("uint16"), 1).decode(body, (11, 64, 64, 1), "k")[..., 0]
    np.testing.assert_array_equal(chunk, level1[64:75, 0:64, 0:64])


def test_read_over_http_with_bigarrays_and_tensorstore():
    import tensorstore as ts

    a = _image(seed=3)
    viewer = ba.view(a, resolution=(4, 4, 30), voxel_offset=(-10, 5, 0))
    with ba.open(viewer.data_url()) as served:
        np.testing.assert_array_equal(served[:, :, :], a)
        level1 = served.at_mip(1)
        expected = _pooled(a, (-10, 5, 0), (2, 2, 1), "mean")
        np.testing.assert_array_equal(level1[:, :, :], expected)
    store = ts.open({"driver": "neuroglancer_precomputed", "kvstore": viewer.data_url()}).result()
    got = store.read().result()
    np.testing.assert_array_equal(np.asarray(got)[..., 0], a)
    level1 = ts.open({"driver": "neuroglancer_precomputed", "kvstore": viewer.data_url(),
                      "scale_index": 1}).result()  # fmt: skip
    np.testing.assert_array_equal(np.asarray(level1.read().result())[..., 0], expected)


def test_labels_are_compressed_segmentation_pooled_by_mode():
    import tensorstore as ts

    labels = _labels()
    viewer = ba.view(labels)
    info = json.loads(fetch(viewer.data_url() + "info")[2])
    assert info["type"] == "segmentation"
    assert info["data_type"] == "uint64"
    assert info["scales"][0]["encoding"] == "compressed_segmentation"
    codec = CompressedSegmentationCodec(np.dtype("uint64"), 1)
    body = fetch(viewer.data_url() + "0/64-100_0-64_0-40")[2]
    np.testing.assert_array_equal(codec.decode(body, (36, 64, 40, 1), "k")[..., 0],
                                  labels[64:100, 0:64, 0:40])  # fmt: skip
    store = ts.open({"driver": "neuroglancer_precomputed", "kvstore": viewer.data_url()}).result()
    np.testing.assert_array_equal(np.asarray(store.read().result())[..., 0], labels)
    level1 = ts.open({"driver": "neuroglancer_precomputed", "kvstore": viewer.data_url(),
                      "scale_index": 1}).result()  # fmt: skip
    expected = _pooled(labels, (0, 0, 0), (2, 2, 1), "mode")  # z fits one chunk: kept
    np.testing.assert_array_equal(np.asarray(level1.read().result())[..., 0], expected)


def test_dask_arrays_are_read_chunk_by_chunk():
    import dask.array as da

    a = _image((130, 70, 20), seed=5)
    lazy = da.from_array(a, chunks=(50, 50, 10))
    viewer = ba.view(lazy, resolution=(2, 2, 2))
    source = viewer.sources[0]
    assert isinstance(source, MemorySource)
    assert not source.numpy
    with ba.open(viewer.data_url()) as served:
        np.testing.assert_array_equal(served[:, :, :], a)
        np.testing.assert_array_equal(served.at_mip(1)[:, :, :],
                                      _pooled(a, (0, 0, 0), (2, 2, 1), "mean"))  # fmt: skip


@pytest.mark.parametrize(
    ("dtype", "layer_type", "served", "kind"),
    [
        ("int64", None, "uint64", "segmentation"),
        ("int32", None, "uint32", "segmentation"),
        ("uint8", "segmentation", "uint8", "segmentation"),
        ("float64", None, "float32", "image"),
        ("bool", None, "uint8", "image"),
        ("int16", None, "int16", "image"),
    ],
)
def test_types_are_sent_as_neuroglancer_reads_them(dtype, layer_type, served, kind):
    a = (np.arange(8 * 8 * 4).reshape((8, 8, 4)) % 3).astype(dtype)
    source = MemorySource(a, layer_type=layer_type)
    assert source.layer_type == kind
    info = json.loads(source.get("info", ()).body)
    assert info["data_type"] == served
    assert info["type"] == kind
    with ba.open(ba.view(a, layer_type=layer_type).data_url()) as vol:
        np.testing.assert_array_equal(vol[:, :, :], a.astype(served))


def test_two_dimensional_and_channel_arrays():
    flat = _image((300, 200), seed=7)
    viewer = ba.view(flat)
    info = json.loads(fetch(viewer.data_url() + "info")[2])
    assert info["scales"][0]["size"] == [300, 200, 1]
    assert info["scales"][0]["chunk_sizes"] == [[256, 200, 1]]  # cut to the array
    assert viewer.layout == "xy"  # a single slice: one panel
    with ba.open(viewer.data_url()) as vol:
        np.testing.assert_array_equal(vol[:, :, 0], flat)
    rgb = np.random.default_rng(8).integers(0, 255, (40, 30, 5, 3), dtype=np.uint8)
    with ba.open(ba.view(rgb).data_url()) as vol:
        assert vol.num_channels == 3
        np.testing.assert_array_equal(vol[:, :, :], rgb)


def test_pooled_chunks_are_cached_and_refresh_drops_them(monkeypatch):
    import bigarrays.viewer.memory_source as memory_source

    calls = []
    real = memory_source.pool_levels

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(memory_source, "pool_levels", counting)
    source = MemorySource(_image((256, 256, 8)))
    key = "2/0-64_0-64_0-8"  # z fits one chunk: never halved
    first = source.get(key, ()).body
    pooled = len(calls)
    assert pooled >= 2  # level 2 from level 1, level 1 from level 0
    assert source.get(key, ()).body == first
    assert len(calls) == pooled
    source.refresh()
    assert source.get(key, ()).body == first
    assert len(calls) == 2 * pooled


def test_keys_of_no_chunk_are_none():
    source = MemorySource(_image((100, 100, 10)))
    for key in (
        "0/1-65_0-64_0-10",
        "0/0-63_0-64_0-10",
        "0/0-64_0-64_0-11",
        "9/0-64_0-64_0-10",
        "0/100-164_0-64_0-10",
        "0/-64-0_0-64_0-10",
        "0/0-64_0-64",
        "x",
        "0/info",
    ):
        assert source.get(key, ()) is None, key


def test_bad_arrays_and_options_are_refused():
    with pytest.raises(ba.InvalidArgumentError, match="2, 3 or 4 axes"):
        ba.view(np.zeros(5))
    with pytest.raises(ba.InvalidArgumentError, match="layer_type"):
        ba.view(np.zeros((4, 4, 4)), layer_type="mesh")
    with pytest.raises(ba.InvalidArgumentError, match="resolution"):
        ba.view(np.zeros((4, 4, 4)), resolution=(1, 1))
    with pytest.raises(ba.errors.UnsupportedError, match="complex"):
        ba.view(np.zeros((4, 4, 4), np.complex64))
    with pytest.raises(ba.InvalidArgumentError, match="at least one"):
        ba.view()


@pytest.mark.parametrize("layout", ["C", "F", "strided", "zyx.T", "float64"])
def test_every_memory_layout_serves_x_fastest_bytes(layout):
    base = _image((90, 70, 50), seed=11)
    arrays = {
        "C": base, "F": np.asfortranarray(base), "strided": _image((180, 70, 100))[::2, :, ::2],
        "zyx.T": np.ascontiguousarray(base.T).T, "float64": base.astype(np.float64),
    }  # fmt: skip
    a = arrays[layout]
    source = MemorySource(a)
    body = source.get("0/64-90_0-64_0-50", ()).body
    served = np.float32 if layout == "float64" else np.uint16
    got = np.frombuffer(bytes(body), served).reshape((26, 64, 50), order="F")
    np.testing.assert_array_equal(got, a[64:90, 0:64, 0:50].astype(served))


def test_the_contrast_sample_of_a_dask_array_reads_a_bounded_box():
    import dask.array as da

    computed: list[int] = []

    def block(x, block_info=None):
        computed.append(x.size)
        return np.full(x.shape, 7, np.uint8)

    lazy = da.zeros((4096, 4096, 1024), dtype=np.uint8, chunks=(256, 256, 64))
    lazy = lazy.map_blocks(block, dtype=np.uint8)
    viewer = ba.view(lazy)
    assert viewer.state["layers"][0]["shaderControls"]["normalized"]["range"] == [7, 8]
    assert sum(computed) <= 4 * 512 * 512 * 64  # the blocks around one central slab, not 2**34


def test_levels_keep_the_detail_of_axes_one_chunk_spans():
    """A tall stack whose x and y fit in one chunk: the levels halve z alone."""
    a = np.zeros((40, 30, 1000), np.uint8)
    viewer = ba.view(a, resolution=(4, 4, 4))
    info = json.loads(fetch(viewer.data_url() + "info")[2])
    sizes = [scale["size"] for scale in info["scales"]]
    assert sizes[1] == [40, 30, 500]
    assert [s[:2] for s in sizes] == [[40, 30]] * len(sizes)
    assert sizes[-1][2] <= info["scales"][-1]["chunk_sizes"][0][2]
