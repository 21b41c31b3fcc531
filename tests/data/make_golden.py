"""Regenerate the golden chunk files under tests/data/golden/ with the oracles.

Run from the repository root with the test extras installed::

    python tests/data/make_golden.py

Each case is a small one-scale volume written by TensorStore or CloudVolume (never by
bigarrays), with edge chunks on every axis and a negative offset, plus ``expected.npz``: the
whole volume as the oracle itself reads it back (for the lossless encodings, exactly the data
written). ``tests/test_interop_codecs.py`` decodes every chunk file and compares bit for bit.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "golden"

SIZE = (20, 12, 6)
CHUNK = (16, 8, 4)
OFFSET = (-3, 2, 1)
RESOLUTION = (4, 4, 40)
SCALE_KEY = "4_4_40"


def smooth(dtype: str, channels: int, seed: int) -> np.ndarray:
    """An image-like (x, y, z, c) volume: smooth gradients and a little texture."""
    x, y, z = np.meshgrid(*(np.arange(s, dtype=np.float64) for s in SIZE), indexing="ij")
    out = []
    for c in range(channels):
        phase = 0.7 * (c + seed)
        v = 0.5 + 0.25 * np.sin(0.3 * x + phase) * np.cos(0.4 * y - phase) + 0.15 * np.sin(z + c)
        out.append(v)
    arr = np.clip(np.stack(out, axis=-1), 0, 1)
    top = np.iinfo(dtype).max
    return np.asfortranarray((arr * top).astype(dtype))


def labels(dtype: str, channels: int, seed: int) -> np.ndarray:
    """A label-like (x, y, z, c) volume: slanted slabs of large ids, a few per block."""
    x, y, z = np.meshgrid(*(np.arange(s, dtype=np.int64) for s in SIZE), indexing="ij")
    out = []
    for c in range(channels):
        region = (x + 2 * y + 3 * z + 5 * c + seed) // 7
        big = np.uint64(0xFFFFFFFF if dtype == "uint32" else 0xFFFF_FFFF_FFFF)
        out.append(np.uint64(123456789) * region.astype(np.uint64) % big)
    return np.asfortranarray(np.stack(out, axis=-1).astype(dtype))


#: name -> (oracle, encoding, dtype, channels, extra info members or CloudVolume compress)
CASES: dict[str, tuple[str, str, str, int, dict[str, Any]]] = {
    "ts_jpeg_u8_1": ("tensorstore", "jpeg", "uint8", 1, {"jpeg_quality": 90}),
    "ts_jpeg_u8_3": ("tensorstore", "jpeg", "uint8", 3, {}),
    "ts_png_u8_1": ("tensorstore", "png", "uint8", 1, {}),
    "ts_png_u8_2": ("tensorstore", "png", "uint8", 2, {}),
    "ts_png_u16_1": ("tensorstore", "png", "uint16", 1, {}),
    "ts_png_u16_3": ("tensorstore", "png", "uint16", 3, {}),
    "ts_png_u16_4": ("tensorstore", "png", "uint16", 4, {}),
    "ts_cseg_u32_1": ("tensorstore", "compressed_segmentation", "uint32", 1,
                      {"compressed_segmentation_block_size": [8, 8, 8]}),
    "ts_cseg_u64_1": ("tensorstore", "compressed_segmentation", "uint64", 1,
                      {"compressed_segmentation_block_size": [4, 4, 2]}),
    "ts_cseg_u64_2": ("tensorstore", "compressed_segmentation", "uint64", 2,
                      {"compressed_segmentation_block_size": [4, 3, 2]}),
    "cv_jpeg_u8_1": ("cloudvolume", "jpeg", "uint8", 1, {}),
    "cv_png_u8_1": ("cloudvolume", "png", "uint8", 1, {}),
    "cv_cseg_u64_1": ("cloudvolume", "compressed_segmentation", "uint64", 1, {}),
    "cv_raw_u16_gzip": ("cloudvolume", "raw", "uint16", 1, {"compress": "gzip"}),
    "cv_raw_u16_br": ("cloudvolume", "raw", "uint16", 1, {"compress": "br"}),
    "cv_raw_u16_zstd": ("cloudvolume", "raw", "uint16", 1, {"compress": "zstd"}),
    "cv_cseg_u32_1_gzip": ("cloudvolume", "compressed_segmentation", "uint32", 1,
                           {"compress": "gzip"}),
}  # fmt: skip


def data_for(name: str) -> np.ndarray:
    _, encoding, dtype, channels, _ = CASES[name]
    seed = sum(map(ord, name)) % 17
    if encoding == "compressed_segmentation":
        return labels(dtype, channels, seed)
    return smooth(dtype, channels, seed)


def write_tensorstore(path: Path, encoding: str, dtype: str, channels: int,
                      extra: dict[str, Any], data: np.ndarray) -> np.ndarray:  # fmt: skip
    import tensorstore as ts

    scale: dict[str, Any] = {
        "key": SCALE_KEY, "size": list(SIZE), "voxel_offset": list(OFFSET),
        "chunk_size": list(CHUNK), "resolution": list(RESOLUTION), "encoding": encoding,
    }  # fmt: skip
    scale.update(extra)
    spec = {
        "driver": "neuroglancer_precomputed",
        "kvstore": {"driver": "file", "path": str(path)},
        "multiscale_metadata": {
            "type": "segmentation" if encoding == "compressed_segmentation" else "image",
            "data_type": dtype, "num_channels": channels,
        },
        "scale_metadata": scale,
    }  # fmt: skip
    store = ts.open(spec, create=True, delete_existing=True).result()
    store[...] = data
    back: np.ndarray = store[...].read().result()
    return back


def write_cloudvolume(path: Path, encoding: str, dtype: str, channels: int,
                      extra: dict[str, Any], data: np.ndarray) -> np.ndarray:  # fmt: skip
    from cloudvolume import CloudVolume

    info = CloudVolume.create_new_info(
        num_channels=channels, layer_type="segmentation"
        if encoding == "compressed_segmentation" else "image", data_type=dtype,
        encoding=encoding, resolution=list(RESOLUTION), voxel_offset=list(OFFSET),
        chunk_size=list(CHUNK), volume_size=list(SIZE),
    )  # fmt: skip
    compress = extra.get("compress", False)
    vol = CloudVolume(f"file://{path}", info=info, compress=compress, progress=False)
    vol.commit_info()
    lo = np.array(OFFSET)
    hi = lo + np.array(SIZE)
    vol[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = data
    back = np.asarray(vol[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]])
    return back.reshape(data.shape)


def main() -> int:
    if GOLDEN.exists():
        shutil.rmtree(GOLDEN)
    GOLDEN.mkdir(parents=True)
    for name, (oracle, encoding, dtype, channels, extra) in CASES.items():
        path = GOLDEN / name
        data = data_for(name)
        writer = write_tensorstore if oracle == "tensorstore" else write_cloudvolume
        back = writer(path, encoding, dtype, channels, extra, data)
        lossless = encoding != "jpeg"
        if lossless and not np.array_equal(back, data):
            print(f"{name}: the oracle does not read back what it wrote", file=sys.stderr)
            return 1
        np.savez_compressed(path / "expected.npz", expected=back)
        (path / "case.json").write_text(json.dumps(
            {"oracle": oracle, "encoding": encoding, "dtype": dtype, "channels": channels}
        ) + "\n")  # fmt: skip
        files = sorted(p for p in path.rglob("*") if p.is_file())
        print(f"{name}: {len(files)} files, {sum(p.stat().st_size for p in files)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
