"""Chunks stored as ``KEY.gz`` (``.br``, ``.zstd``) on a local disk: bigarrays keeps a CloudVolume
gzip volume gzip when it writes into it, and warns at create() that TensorStore's file driver
reads such a volume as zeros."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import tensorstore as ts

import bigarrays as ba
from bigarrays.errors import ViewerCompatibilityWarning
from interop_helpers import CHUNKS as CV_CHUNKS
from interop_helpers import SHAPE as CV_SHAPE
from test_interop_cloudvolume import cv_create, cv_open

SHAPE = (64, 48, 32)


def cloudvolume_gzip_volume(path: Path) -> np.ndarray:
    """A one-scale uint8 volume written by CloudVolume with its default gzip (info: none)."""
    model = np.random.default_rng(5).integers(0, 255, (*CV_SHAPE, 1), dtype=np.uint8)
    vol = cv_create(path, "uint8", 1, compress="gzip")
    vol[:, :, :] = model
    return model


def scale_files(path: Path) -> list[str]:
    info = ba.open(path).info
    return sorted(p.name for p in (path / info["scales"][0]["key"]).iterdir())


@pytest.mark.interop
def test_writing_into_a_cloudvolume_gzip_volume_keeps_it_gzip(tmp_path: Path) -> None:
    model = cloudvolume_gzip_volume(tmp_path)
    names = scale_files(tmp_path)
    assert names
    assert all(n.endswith(".gz") for n in names)
    vol = ba.open(tmp_path, mode="r+")  # no write_compression: the stored chunks tell
    assert vol.compression == "gzip"
    start = vol.voxel_offset
    vol[start[0] : start[0] + 20, start[1] : start[1] + 20, start[2] : start[2] + 20] = 3
    model[:20, :20, :20] = 3
    # No plain twin beside any .gz: CloudVolume's later writes stay visible to both tools.
    assert scale_files(tmp_path) == names
    cv = cv_open(tmp_path, compress="gzip")
    c = CV_CHUNKS  # CloudVolume writes whole chunks only
    cv[start[0] : start[0] + c[0], start[1] : start[1] + c[1], start[2] : start[2] + c[2]] = (
        np.full((*c, 1), 200, np.uint8)
    )
    model[: c[0], : c[1], : c[2]] = 200
    np.testing.assert_array_equal(ba.open(tmp_path)[...], model[..., 0])
    np.testing.assert_array_equal(np.asarray(cv_open(tmp_path)[:, :, :]), model)


def test_write_compression_none_writes_plain_chunks(tmp_path: Path) -> None:
    vol = ba.create(tmp_path / "v", shape=SHAPE, chunks=(32, 32, 32))
    vol[...] = 1
    # An info that records no compression over gzip'd chunks, as CloudVolume leaves them.
    gz = ba.open(tmp_path / "v", mode="r+", write_compression="gzip")
    gz[...] = 2
    assert all(n.endswith(".gz") for n in scale_files(tmp_path / "v"))
    assert ba.open(tmp_path / "v", mode="r+").compression == "gzip"
    plain = ba.open(tmp_path / "v", mode="r+", write_compression="none")
    assert plain.compression is None
    plain[...] = 3
    assert not any(n.endswith(".gz") for n in scale_files(tmp_path / "v"))
    assert ba.open(tmp_path / "v", mode="r+").compression is None
    assert ba.open(tmp_path / "v")[...].min() == 3


def test_a_scale_without_its_first_chunk_is_listed(tmp_path: Path) -> None:
    vol = ba.create(tmp_path / "v", shape=SHAPE, chunks=(32, 32, 32))
    start = vol.voxel_offset
    ba.open(tmp_path / "v", mode="r+", write_compression="zstd")[
        start[0] + 32 :, start[1] + 32 :, start[2] :
    ] = 5
    assert not any(n.startswith("0-32_0-32_") for n in scale_files(tmp_path / "v"))
    assert ba.open(tmp_path / "v", mode="r+").compression == "zstd"


def test_an_empty_scale_stays_as_its_info_says(tmp_path: Path) -> None:
    ba.create(tmp_path / "v", shape=SHAPE, chunks=(32, 32, 32))
    assert ba.open(tmp_path / "v", mode="r+").compression is None


@pytest.mark.interop
@pytest.mark.parametrize("compression", ["gzip", "zstd", "br"])
def test_create_warns_that_tensorstore_reads_local_suffixed_chunks_as_zeros(
    tmp_path: Path, compression: str
) -> None:
    path = tmp_path / compression
    with pytest.warns(ViewerCompatibilityWarning, match="TensorStore") as record:
        vol = ba.create(path, shape=SHAPE, chunks=(32, 32, 32), compression=compression)
    assert record[0].filename == __file__  # points at the caller's create()
    vol[...] = 7
    spec = {"driver": "neuroglancer_precomputed", "kvstore": {"driver": "file", "path": str(path)}}
    # The claim the warning makes: TensorStore sees no chunk at all, only the fill value.
    assert int(ts.open(spec).result().read().result().sum()) == 0


@pytest.mark.interop
def test_no_warning_where_tensorstore_reads_the_chunks(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", ViewerCompatibilityWarning)
        plain = ba.create(tmp_path / "plain", shape=SHAPE, chunks=(32, 32, 32))
        ba.create(f"memory://suffix-{tmp_path.name}", shape=SHAPE, compression="gzip")
        ba.create(tmp_path / "sharded", shape=SHAPE, compression="gzip", sharding=True)
    plain[...] = 7
    spec = {"driver": "neuroglancer_precomputed",
            "kvstore": {"driver": "file", "path": str(tmp_path / "plain")}}  # fmt: skip
    assert int(ts.open(spec).result().read().result().sum()) == 7 * int(np.prod(SHAPE))
