"""Sharded volumes against the oracles: TensorStore writes and bigarrays reads exactly; bigarrays
writes and TensorStore and CloudVolume read exactly; shard files are TensorStore's byte for byte
where the format fixes the bytes; and the automatic spec is the one TensorStore chooses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorstore as ts
from cloudvolume import CloudVolume

import bigarrays as ba
from bigarrays.formats.precomputed.sharding import choose_sharding
from interop_helpers import (
    OFFSET,
    PARTIAL_BOXES,
    READ_BOXES,
    RESOLUTION,
    SCALE_KEY,
    SHAPE,
    absolute,
    as4d,
    assert_identical,
    index,
    random_volume,
)

pytestmark = pytest.mark.interop

CHUNKS = (8, 8, 8)  # grid 9 x 7 x 5 of the shared 70 x 50 x 33 geometry: Morton bits (4, 3, 3)


def sharding(p: int, m: int, s: int, hash: str = "identity", index: str = "raw",
             data: str = "raw") -> dict[str, Any]:  # fmt: skip
    return {"@type": "neuroglancer_uint64_sharded_v1", "preshift_bits": p, "hash": hash,
            "minishard_bits": m, "shard_bits": s, "minishard_index_encoding": index,
            "data_encoding": data}  # fmt: skip


SPECS = {
    "identity-box": sharding(3, 0, 7),
    "identity-minishards-gzip": sharding(2, 2, 6, index="gzip", data="gzip"),
    "identity-wrapped": sharding(1, 2, 2, index="gzip"),
    "murmur-raw": sharding(1, 2, 3, hash="murmurhash3_x86_128"),
    "murmur-gzip": sharding(0, 3, 4, hash="murmurhash3_x86_128", index="gzip", data="gzip"),
    "one-shard": sharding(0, 4, 0, hash="murmurhash3_x86_128", index="gzip"),
}

#: (dtype, channels, encoding, extra scale members)
ENCODINGS = {
    "raw-uint16x2": ("uint16", 2, "raw", {}),
    "raw-float32": ("float32", 1, "raw", {}),
    "jpeg-uint8": ("uint8", 1, "jpeg", {}),
    "png-uint16": ("uint16", 1, "png", {}),
    "png-uint8x3": ("uint8", 3, "png", {}),
    "png-uint8": ("uint8", 1, "png", {}),
    "cseg-uint64": ("uint64", 1, "compressed_segmentation",
                    {"compressed_segmentation_block_size": [4, 4, 4]}),
}  # fmt: skip


def ts_spec(path: Path) -> dict[str, Any]:
    return {"driver": "neuroglancer_precomputed", "kvstore": {"driver": "file", "path": str(path)}}


def ts_create(path: Path, dtype: str, channels: int, encoding: str, spec: dict[str, Any],
              **members: Any) -> ts.TensorStore:  # fmt: skip
    return ts.open(
        ts_spec(path) | {
            "create": True,
            "multiscale_metadata": {"data_type": dtype, "num_channels": channels,
                                    "type": "image"},
            "scale_metadata": {"size": list(SHAPE), "voxel_offset": list(OFFSET),
                               "chunk_size": list(CHUNKS), "resolution": list(RESOLUTION),
                               "encoding": encoding, "sharding": spec, **members},
        }
    ).result()  # fmt: skip


def volume_data(dtype: str, channels: int, encoding: str, seed: int = 0) -> np.ndarray:
    if encoding == "compressed_segmentation":
        rng = np.random.default_rng(seed)  # few labels per block, as segmentations have
        labels = rng.integers(1, 2**64 - 1, 6, dtype=np.uint64, endpoint=True)
        return labels[rng.integers(0, 6, (*SHAPE, channels))]
    data = random_volume(SHAPE, dtype, channels, seed)
    data[:20, :, :12] = 0  # some chunks of zeros, left out of the shards
    return data


def ts_read(path: Path) -> np.ndarray:
    return np.asarray(ts.open(ts_spec(path)).result()[...].read().result())


def cv_read(path: Path) -> np.ndarray:
    cv = CloudVolume(path.as_uri(), mip=0, bounded=True, fill_missing=True, progress=False,
                     parallel=1)  # fmt: skip
    stop = tuple(o + s for o, s in zip(OFFSET, SHAPE, strict=True))
    return np.asarray(cv[absolute((OFFSET, stop))])


@pytest.mark.parametrize("spec_name", list(SPECS))
@pytest.mark.parametrize("enc_name", list(ENCODINGS))
def test_tensorstore_writes_bigarrays_reads(tmp_path: Path, spec_name: str, enc_name: str) -> None:
    dtype, channels, encoding, members = ENCODINGS[enc_name]
    data = volume_data(dtype, channels, encoding)
    store = ts_create(tmp_path, dtype, channels, encoding, SPECS[spec_name], **members)
    store[...] = data
    expected = ts_read(tmp_path)  # lossy encodings: what TensorStore decodes
    if encoding != "jpeg":
        assert_identical(expected, data)
    vol = ba.open(tmp_path)
    assert vol.scale.sharding is not None
    assert_identical(as4d(vol[...]), expected)
    for box in READ_BOXES:
        assert_identical(as4d(vol[absolute(box)]), expected[index(box)])


@pytest.mark.parametrize("spec_name", list(SPECS))
@pytest.mark.parametrize(
    "enc_name", ["raw-uint16x2", "raw-float32", "cseg-uint64", "png-uint16", "png-uint8"]
)
def test_bigarrays_writes_tensorstore_and_cloudvolume_read(
    tmp_path: Path, spec_name: str, enc_name: str
) -> None:
    dtype, channels, encoding, members = ENCODINGS[enc_name]
    vol = ba.create(tmp_path, shape=SHAPE, dtype=dtype, chunks=CHUNKS, voxel_offset=OFFSET,
                    resolution=RESOLUTION, num_channels=channels, encoding=encoding,
                    sharding=SPECS[spec_name], **members)  # fmt: skip
    data = volume_data(dtype, channels, encoding, seed=1)
    vol[...] = data[..., 0] if channels == 1 else data
    # Unaligned writes over it: partial shards are read, merged and rewritten.
    model = data.copy()
    for i, box in enumerate(PARTIAL_BOXES):
        block = volume_data(dtype, channels, encoding, seed=10 + i)[index(box)]
        vol[absolute(box)] = block[..., 0] if channels == 1 else block
        model[index(box)] = block
    assert_identical(ts_read(tmp_path), model)
    if enc_name == "png-uint16":
        # CloudVolume 12 decodes 16-bit grey png through pyspng's automatic format, which yields
        # twice the pixels; pinned so that a fixed CloudVolume turns this into a real check.
        with pytest.raises(ValueError, match="cannot reshape"):
            cv_read(tmp_path)
    else:
        assert_identical(as4d(cv_read(tmp_path)), model)


def test_shard_files_equal_tensorstores_byte_for_byte(tmp_path: Path) -> None:
    spec = SPECS["identity-minishards-gzip"] | {"minishard_index_encoding": "raw",
                                                "data_encoding": "raw"}  # fmt: skip
    data = volume_data("uint16", 2, "raw", seed=4)
    ts_create(tmp_path / "ts", "uint16", 2, "raw", spec)[...] = data
    vol = ba.create(tmp_path / "ba", shape=SHAPE, dtype="uint16", chunks=CHUNKS,
                    voxel_offset=OFFSET, resolution=RESOLUTION, num_channels=2,
                    sharding=spec)  # fmt: skip
    vol[...] = data
    theirs = {p.name: p.read_bytes() for p in (tmp_path / "ts" / SCALE_KEY).iterdir()}
    ours = {p.name: p.read_bytes() for p in (tmp_path / "ba" / SCALE_KEY).iterdir()}
    assert sorted(theirs) == sorted(ours)
    assert theirs == ours


@pytest.mark.parametrize(
    ("size", "chunk", "dtype", "target"),
    [
        ((512, 512, 512), (64, 64, 64), "uint8", 1 << 30),
        ((1000, 700, 300), (64, 64, 32), "uint8", 1 << 26),
        ((70, 50, 33), (8, 8, 8), "uint16", 1 << 13),
        ((2048, 2048, 100), (128, 128, 16), "uint8", 1 << 28),
        ((4096, 4096, 4096), (64, 64, 64), "uint32", 1 << 30),
        ((10, 10, 10), (4, 4, 4), "uint8", 1 << 20),
    ],
)
def test_automatic_spec_is_tensorstores(
    tmp_path: Path, size: tuple[int, int, int], chunk: tuple[int, int, int], dtype: str,
    target: int,
) -> None:  # fmt: skip
    itemsize = np.dtype(dtype).itemsize
    ts.open(
        ts_spec(tmp_path) | {
            "create": True,
            "multiscale_metadata": {"data_type": dtype, "num_channels": 1, "type": "image"},
            "scale_metadata": {"size": list(size), "chunk_size": list(chunk),
                               "resolution": [1, 1, 1], "encoding": "raw"},
            "schema": {"chunk_layout": {"write_chunk": {"elements": target // itemsize}}},
        }
    ).result()  # fmt: skip
    theirs = json.loads((tmp_path / "info").read_text())["scales"][0]["sharding"]
    vol = ba.create(tmp_path / "ours", shape=size, chunks=chunk, dtype=dtype, sharding=True,
                    shard_size_bytes=target, compression="gzip")  # fmt: skip
    ours = vol.info["scales"][0]["sharding"]
    assert ours == theirs
    grid = [-(-s // c) for s, c in zip(size, chunk, strict=True)]
    chunk_bytes = int(np.prod(chunk)) * itemsize
    assert choose_sharding(grid, chunk_bytes, target, data_encoding="gzip").to_json() == theirs
