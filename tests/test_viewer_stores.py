"""Datasets on other stores through the viewer's server: S3 (moto, on 127.0.0.1), GCS (the
emulator), a zip file and memory://, with their bytes and encodings as stored."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

import bigarrays as ba
from bigarrays.viewer import stop_servers
from viewer_helpers import fetch


@pytest.fixture(autouse=True)
def _servers():
    yield
    stop_servers()


def _pattern(shape) -> np.ndarray:
    return (np.arange(np.prod(shape)) % 251).astype(np.uint8).reshape(shape, order="F")


def test_s3_gzip_chunks_keep_their_content_encoding(s3_bucket):
    vol = ba.create(f"s3://{s3_bucket}/em", shape=(64, 64, 16), dtype="uint8",
                    chunks=(32, 32, 16), compression="gzip")  # fmt: skip
    data = _pattern((64, 64, 16))
    vol[:, :, :] = data
    viewer = vol.view()
    key = vol.chunk_key((1, 1, 0))
    status, headers, body = fetch(viewer.data_url() + key, {"Accept-Encoding": "gzip"})
    assert status == 200
    assert headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(body) == np.asfortranarray(data[32:, 32:, :]).tobytes(order="F")
    with ba.open(viewer.data_url()) as served:  # and through plain HTTP again
        np.testing.assert_array_equal(served[:, :, :], data)
    vol.close()


def test_gcs_sharded_volume_answers_ranges(gcs_bucket):
    vol = ba.create(f"gs://{gcs_bucket}/sharded", shape=(64, 64, 64), dtype="uint8",
                    chunks=(16, 16, 16), sharding=True)  # fmt: skip
    data = _pattern((64, 64, 64))
    vol[:, :, :] = data
    viewer = vol.view()
    shard = next(k for k in vol.store.list() if k.endswith(".shard"))
    whole = vol.store.get(shard)
    status, _, body = fetch(viewer.data_url() + shard, {"Range": "bytes=-100"})
    assert (status, body) == (206, whole[-100:])
    with ba.open(viewer.data_url()) as served:
        np.testing.assert_array_equal(served[:, :, :], data)
    vol.close()


def test_zarr_in_a_zip_and_in_memory(tmp_path):
    data = _pattern((40, 30, 20))
    with ba.create(tmp_path / "img.zip", shape=(20, 30, 40), dtype="uint8", dims=("z", "y", "x"),
                   chunks=(10, 16, 16), format="zarr") as vol:  # fmt: skip
        vol[:, :, :] = data.T
    zipped = ba.open(tmp_path / "img.zip")
    memory = ba.create(
        "memory://viewer-test", shape=(40, 30, 20), dtype="uint8", chunks=(16, 16, 8)
    )
    memory[:, :, :] = data
    viewer = ba.view(zipped, memory)
    assert viewer.state["layers"][0]["source"].startswith("zarr3://")
    with ba.open(viewer.data_url(0)) as served:
        np.testing.assert_array_equal(served[:, :, :], data.T)
    with ba.open(viewer.data_url(1)) as served:
        np.testing.assert_array_equal(served[:, :, :], data)
    zipped.close()
    memory.close()
