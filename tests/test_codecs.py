"""The chunk encodings (jpeg, png, compressed_segmentation) and compressions (gzip, zstd, br,
blosc): round trips of every allowed combination, refusals at create time, what is recorded in
the info, how compressed chunks are stored, and errors for damaged chunks."""

from __future__ import annotations

import gzip
import itertools
import math
import struct
import warnings
import zlib
from pathlib import Path
from typing import Any

import brotli
import numpy as np
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

import bigarrays as ba
from bigarrays.box import Box
from bigarrays.codecs import (
    CODEC_OPTIONS,
    available_encodings,
    fitting_encodings,
    make_codec,
)
from bigarrays.codecs import blosc as blosc_codec
from bigarrays.codecs import compressed_segmentation as cseg_codec
from bigarrays.codecs import png as png_codec
from bigarrays.codecs.image2d import from_image, to_image
from bigarrays.codecs.png import encode_png, filter_rows
from bigarrays.errors import CorruptChunkError, UnsupportedError, ViewerCompatibilityWarning
from bigarrays.stores import content_encoding
from bigarrays.synthetic import synthetic_em

# -- what is allowed -----------------------------------------------------------------------------

ALL_DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "float32",
              "float64", "int64", "bool")  # fmt: skip
EXTENSION = ("float64", "int64", "bool")
#: encoding -> [(dtype, channels)] it holds.
ALLOWED: dict[str, list[tuple[str, int]]] = {
    "raw": [(d, c) for d in ALL_DTYPES for c in (1, 3)],
    "jpeg": [("uint8", 1), ("uint8", 3)],
    "png": [(d, c) for d in ("uint8", "uint16") for c in (1, 2, 3, 4)],
    "compressed_segmentation": [(d, c) for d in ("uint32", "uint64") for c in (1, 2)],
}
COMPRESSIONS = (None, "gzip", "zstd", "br", "blosc")
COMBINATIONS = [
    (enc, dtype, nch, comp)
    for enc, pairs in ALLOWED.items()
    for (dtype, nch) in pairs
    for comp in COMPRESSIONS
]

SIZE = (21, 13, 7)  # no multiple of the chunk on any axis: edge chunks everywhere
CHUNKS = (8, 8, 4)
OFFSET = (-5, 3, -2)


def create(url: str | Path, **kwargs: Any) -> ba.BigArray:
    """ba.create, silencing the viewer warnings of extension dtypes and blosc (tested below)."""
    args: dict[str, Any] = {"shape": SIZE, "chunks": CHUNKS, "voxel_offset": OFFSET} | kwargs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ViewerCompatibilityWarning)
        return ba.create(url, **args)


def smooth_image(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """uint8 (x, y, z, c) data a JPEG can hold well: EM-like, one shifted copy per channel."""
    x, y, z, c = shape
    chans = [synthetic_em(Box((7 * i, 0, 0), (7 * i + x, y, z)), seed=seed) for i in range(c)]
    return np.asfortranarray(np.stack(chans, axis=-1))


def random_data(shape: tuple[int, ...], dtype: str, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt == np.bool_:
        return rng.integers(0, 2, size=shape).astype(bool)
    if dt.kind == "f":
        return (rng.standard_normal(shape) * 1e3).astype(dt)
    info = np.iinfo(dt)
    data = rng.integers(info.min, info.max, size=shape, dtype=dt, endpoint=True)
    # Runs of equal values, as labels and images have, so every compression has work to do.
    data[: shape[0] // 2] = data[: shape[0] // 2, :1]
    return data


def labels(shape: tuple[int, ...], dtype: str, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(*(np.arange(s) for s in shape[:3]), indexing="ij")
    region = (x // 3 + 5 * (y // 4) + 17 * (z // 2)).astype(np.int64)
    ids = rng.integers(1, np.iinfo(dtype).max, size=region.max() + 1, dtype=dtype)
    return np.stack([np.roll(ids, c)[region] for c in range(shape[3])], axis=-1)


def data_for(encoding: str, dtype: str, nch: int, seed: int = 0) -> np.ndarray:
    shape = (*SIZE, nch)
    if encoding == "jpeg":
        return smooth_image(shape, seed)
    if encoding == "compressed_segmentation":
        return labels(shape, dtype, seed)
    return random_data(shape, dtype, seed)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal shapes and bytes (NaN, -0.0 and bool compare as stored)."""
    flat = [np.ascontiguousarray(v).view(np.uint8) for v in (a, b)]
    return a.shape == b.shape and np.array_equal(flat[0], flat[1])


def as4d(arr: np.ndarray) -> np.ndarray:
    return arr if arr.ndim == 4 else arr[..., None]


# -- round trips ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("encoding", "dtype", "nch", "compression"), COMBINATIONS)
def test_round_trip_every_allowed_combination(
    encoding: str, dtype: str, nch: int, compression: str | None
) -> None:
    url = f"memory://codecs-{encoding}-{dtype}-{nch}-{compression}"
    vol = create(url, dtype=dtype, num_channels=nch, encoding=encoding, compression=compression,
                 layer_type="image", overwrite=True)  # fmt: skip
    data = data_for(encoding, dtype, nch)
    vol[...] = data if nch > 1 else data[..., 0]
    # A fresh reader is told nothing: encoding and compression come from the info.
    back = as4d(ba.open(url)[...])
    assert back.shape == data.shape
    assert back.dtype == np.dtype(dtype)
    if encoding == "jpeg":
        assert psnr(back, data) > 30
    else:
        assert same_bits(back, data)  # bit for bit
    # An unaligned write is a read-modify-write through the codec and compression.
    box = (slice(OFFSET[0] + 3, OFFSET[0] + 12), slice(None), slice(OFFSET[2] + 1, OFFSET[2] + 2))
    patch = data_for(encoding, dtype, nch, seed=1)[3:12, :, 1:2]
    vol[box] = patch if nch > 1 else patch[..., 0]
    data[3:12, :, 1:2] = patch
    again = as4d(ba.open(url)[...])
    if encoding == "jpeg":
        assert psnr(again, data) > 30
    else:
        assert same_bits(again, data)


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("encoding", ["raw", "png", "compressed_segmentation", "jpeg"])
def test_round_trip_on_disk(tmp_path: Path, encoding: str, compression: str | None) -> None:
    dtype = {"compressed_segmentation": "uint64", "png": "uint16"}.get(encoding, "uint8")
    vol = create(tmp_path / "v", dtype=dtype, encoding=encoding, compression=compression)
    data = data_for(encoding, dtype, 1)[..., 0]
    vol[...] = data
    back = ba.open(tmp_path / "v")[...]
    if encoding == "jpeg":
        assert psnr(back, data) > 30
    else:
        assert np.array_equal(back, data)


LAYOUTS = {
    "fortran": lambda a: np.asfortranarray(a),
    "c": lambda a: np.ascontiguousarray(a),
    "strided": lambda a: np.repeat(a, 2, axis=1)[:, ::2],
    "reversed": lambda a: np.ascontiguousarray(a[::-1])[::-1],
    "readonly": lambda a: _readonly(a),
}


def _readonly(a: np.ndarray) -> np.ndarray:
    b = np.asfortranarray(a)
    b.flags.writeable = False
    return b


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize(
    ("encoding", "dtype", "nch"),
    [("jpeg", "uint8", 1), ("jpeg", "uint8", 3), ("png", "uint16", 3), ("png", "uint8", 2),
     ("compressed_segmentation", "uint32", 2), ("compressed_segmentation", "uint64", 1)],
)  # fmt: skip
def test_codecs_take_any_memory_layout(encoding: str, dtype: str, nch: int, layout: str) -> None:
    codec = make_codec(encoding, dtype, nch)
    data = data_for(encoding, dtype, nch)
    shape = data.shape
    reference = codec.decode(codec.encode(np.asfortranarray(data)), shape, "k")
    chunk = LAYOUTS[layout](data)
    assert np.array_equal(chunk, data)
    out = codec.decode(codec.encode(chunk), shape, "k")
    assert out.shape == shape
    assert np.array_equal(out, reference)
    if encoding != "jpeg":
        assert np.array_equal(out, data)


def test_every_format_encoding_but_compresso_and_jxl_is_available() -> None:
    assert available_encodings() == ["compressed_segmentation", "jpeg", "png", "raw"]


def test_image_layout_is_x_wide_and_y_times_z_high() -> None:
    chunk = np.arange(2 * 3 * 4 * 2).reshape(2, 3, 4, 2, order="F")
    image = to_image(chunk)
    assert image.shape == (12, 2, 2)
    # Row y + 3 z holds the x-run at (y, z); channels interleaved per pixel.
    for x, y, z, c in itertools.product(range(2), range(3), range(4), range(2)):
        assert image[y + 3 * z, x, c] == chunk[x, y, z, c]
    assert np.array_equal(from_image(image, chunk.shape), chunk)


# -- jpeg quality ----------------------------------------------------------------------------------


def test_jpeg_quality_trades_size_for_fidelity() -> None:
    data = smooth_image((64, 64, 8, 1))
    sizes, quality = [], []
    for q in (30, 60, 85, 95):
        codec = make_codec("jpeg", "uint8", 1, jpeg_quality=q)
        encoded = codec.encode(data)
        sizes.append(len(encoded))
        quality.append(psnr(codec.decode(encoded, data.shape, "k"), data))
    assert sizes == sorted(sizes)
    assert quality == sorted(quality)
    assert quality[2] > 32  # the default, 85
    assert quality[3] > 36


def test_jpeg_rgb_keeps_each_channel() -> None:
    data = smooth_image((32, 16, 4, 3))
    data[..., 1] = 255 - data[..., 1]
    codec = make_codec("jpeg", "uint8", 3, jpeg_quality=95)
    out = codec.decode(codec.encode(data), data.shape, "k")
    for c in range(3):
        assert psnr(out[..., c], data[..., c]) > 33


# -- png filters -----------------------------------------------------------------------------------


@pytest.mark.parametrize("bpp", [1, 2, 3, 4, 6, 8])
def test_png_filters_invert(bpp: int) -> None:
    """Undo the chosen filters the way a PNG reader does, row by row, pixel by pixel."""
    rng = np.random.default_rng(bpp)
    rows = np.cumsum(rng.integers(0, 9, size=(9, 5 * bpp)), axis=1).astype(np.uint8)
    rows[4] = rng.integers(0, 256, size=rows.shape[1])
    filtered = filter_rows(rows, bpp)
    assert set(filtered[:, 0].tolist()) <= {0, 1, 2, 3, 4}
    out = np.zeros(rows.shape, dtype=np.int64)
    for r in range(rows.shape[0]):
        kind, line = filtered[r, 0], filtered[r, 1:].astype(np.int64)
        for i in range(rows.shape[1]):
            a = out[r, i - bpp] if i >= bpp else 0
            b = out[r - 1, i] if r else 0
            c = out[r - 1, i - bpp] if r and i >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            paeth = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            pred = (0, a, b, (a + b) // 2, paeth)[kind]
            out[r, i] = (line[i] + pred) % 256
    assert np.array_equal(out, rows)


def test_png_level_trades_time_for_size() -> None:
    image = np.asfortranarray(smooth_image((64, 64, 4, 1))).astype(np.uint16) * 200
    sizes = [len(encode_png(to_image(image), level)) for level in (0, 1, 6, 9)]
    assert sizes[0] > sizes[1] >= sizes[2] >= sizes[3]


# -- the info records the choices ----------------------------------------------------------------


def test_create_records_codec_options_in_the_info() -> None:
    vol = create("memory://rec-jpeg", encoding="jpeg", jpeg_quality=92, overwrite=True)
    assert vol.info["scales"][0]["jpeg_quality"] == 92
    vol = create("memory://rec-png", dtype="uint16", encoding="png", png_level=3, overwrite=True)
    assert vol.info["scales"][0]["png_level"] == 3
    vol = create("memory://rec-cseg", dtype="uint32", encoding="compressed_segmentation",
                 compressed_segmentation_block_size=(4, 4, 2), overwrite=True)  # fmt: skip
    assert vol.info["scales"][0]["compressed_segmentation_block_size"] == [4, 4, 2]
    # Defaults are written down too, so every reader and later writer agrees.
    scale = create("memory://rec-default", encoding="jpeg", overwrite=True).info["scales"][0]
    assert scale["jpeg_quality"] == 85
    scale = create("memory://rec-cs", dtype="uint64", encoding="compressed_segmentation",
                   overwrite=True).info["scales"][0]  # fmt: skip
    assert scale["compressed_segmentation_block_size"] == [8, 8, 8]


@pytest.mark.parametrize(
    ("compression", "level", "member"),
    [("gzip", 9, {"compression": "gzip", "compression_level": 9}),
     ("zstd", None, {"compression": "zstd"}),
     ("br", 3, {"compression": "br", "compression_level": 3}),
     ("blosc", None, {"compression": "blosc", "blosc_cname": "lz4", "blosc_shuffle": "byte"})],
)  # fmt: skip
def test_create_records_the_compression(
    compression: str, level: int | None, member: dict[str, Any]
) -> None:
    url = f"memory://rec-{compression}"
    vol = create(url, dtype="uint16", compression=compression, compression_level=level,
                 overwrite=True)  # fmt: skip
    assert vol.info["scales"][0]["bigarrays"] == member
    vol[...] = 7
    assert ba.open(url).compression == compression
    assert (ba.open(url)[...] == 7).all()


def test_blosc_options_are_recorded_and_used() -> None:
    vol = create("memory://blosc-opts", dtype="uint8", compression="blosc", compression_level=9,
                 blosc_cname="zstd", blosc_shuffle="bit", overwrite=True)  # fmt: skip
    member = vol.info["scales"][0]["bigarrays"]
    assert member == {"compression": "blosc", "compression_level": 9, "blosc_cname": "zstd",
                      "blosc_shuffle": "bit"}  # fmt: skip
    vol[...] = 3
    stored = vol.store.get(vol.chunk_key((0, 0, 0)))
    assert stored is not None
    assert stored[2] >> 5 == 4  # the blosc header names zstd as the inner codec
    assert (ba.open("memory://blosc-opts")[...] == 3).all()


@pytest.mark.parametrize(
    ("dtype", "layer_type", "shuffle"),
    [("uint8", "image", "none"), ("uint16", "image", "byte"), ("float32", "image", "byte"),
     ("uint64", "segmentation", "none"), ("uint32", "segmentation", "none")],
)  # fmt: skip
def test_blosc_default_shuffle(dtype: str, layer_type: str, shuffle: str) -> None:
    vol = create("memory://blosc-shuffle", dtype=dtype, layer_type=layer_type,
                 compression="blosc", overwrite=True)  # fmt: skip
    assert vol.info["scales"][0]["bigarrays"]["blosc_shuffle"] == shuffle


def test_unknown_info_members_survive_beside_the_blosc_ones() -> None:
    vol = create("memory://blosc-keep", compression="blosc", overwrite=True)
    info = vol.info
    info["scales"][0]["bigarrays"]["future"] = {"x": 1}
    info["scales"][0]["mesh"] = "mesh"
    vol.store.put("info", __import__("json").dumps(info).encode())
    again = ba.open("memory://blosc-keep").info["scales"][0]
    assert again["bigarrays"]["future"] == {"x": 1}
    assert again["bigarrays"]["blosc_cname"] == "lz4"
    assert again["mesh"] == "mesh"


# -- warnings ------------------------------------------------------------------------------------


def test_blosc_warns_that_viewers_cannot_read_it() -> None:
    with pytest.warns(ViewerCompatibilityWarning, match="Neuroglancer"):
        ba.create("memory://warn-blosc", shape=(8, 8, 8), compression="blosc", overwrite=True)


@pytest.mark.parametrize("compression", [None, "gzip", "zstd", "br"])
@pytest.mark.parametrize("encoding", ["raw", "jpeg", "png"])
def test_viewer_readable_choices_do_not_warn(encoding: str, compression: str | None) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ba.create("memory://nowarn", shape=(8, 8, 8), encoding=encoding,
                  compression=compression, overwrite=True)  # fmt: skip


# -- refusals at create time ---------------------------------------------------------------------

REFUSED = [
    ("jpeg", "uint16", 1, "raw, png"),
    ("jpeg", "uint8", 2, "raw, png"),
    ("jpeg", "float32", 3, "raw"),
    ("png", "uint32", 1, "raw, compressed_segmentation"),
    ("png", "uint8", 5, "raw"),
    ("png", "int16", 1, "raw"),
    ("compressed_segmentation", "uint8", 1, "raw, jpeg, png"),
    ("compressed_segmentation", "int64", 1, "raw"),
    ("compressed_segmentation", "float32", 1, "raw"),
]


@pytest.mark.parametrize(("encoding", "dtype", "nch", "fits"), REFUSED)
def test_encodings_refuse_what_they_cannot_hold(
    tmp_path: Path, encoding: str, dtype: str, nch: int, fits: str
) -> None:
    with pytest.raises(UnsupportedError) as caught:
        create(tmp_path / "v", dtype=dtype, num_channels=nch, encoding=encoding)
    message = str(caught.value)
    assert encoding in message
    assert f"encodings that fit {dtype} with {nch} channel(s): {fits}" in message
    assert not (tmp_path / "v").exists()  # nothing half-made


def test_fitting_encodings() -> None:
    assert fitting_encodings("uint8", 1) == ["raw", "jpeg", "png"]
    assert fitting_encodings("uint8", 3) == ["raw", "jpeg", "png"]
    assert fitting_encodings("uint16", 4) == ["raw", "png"]
    assert fitting_encodings("uint64", 2) == ["raw", "compressed_segmentation"]
    assert fitting_encodings("float64", 1) == ["raw"]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"encoding": "jpeg", "jpeg_quality": 101}, UnsupportedError, "0-100"),
        ({"encoding": "jpeg", "jpeg_quality": -1}, UnsupportedError, "0-100"),
        ({"encoding": "jpeg", "jpeg_quality": 9.5}, UnsupportedError, "0-100"),
        ({"encoding": "jpeg", "chunks": (64, 1024, 128)}, UnsupportedError, "65500"),
        ({"encoding": "png", "chunks": (8, 2**16, 2**16)}, UnsupportedError, "PNG allows 2147"),
        ({"encoding": "png", "png_level": 10}, UnsupportedError, "0-9"),
        ({"encoding": "png", "jpeg_quality": 80}, ValueError, "does not apply to encoding 'png'"),
        ({"encoding": "raw", "png_level": 3}, ValueError, "does not apply"),
        ({"dtype": "uint32", "encoding": "compressed_segmentation",
          "compressed_segmentation_block_size": (0, 8, 8)}, UnsupportedError, "positive"),
        ({"dtype": "uint32", "encoding": "compressed_segmentation",
          "compressed_segmentation_block_size": (8, 8)}, UnsupportedError, "three"),
        ({"dtype": "uint32", "encoding": "compressed_segmentation",
          "compressed_segmentation_block_size": (64, 64, 64)}, UnsupportedError, "65536"),
        ({"compression": "gzip", "compression_level": 0}, UnsupportedError, "1 to 9"),
        ({"compression": "gzip", "compression_level": 10}, UnsupportedError, "1 to 9"),
        ({"compression": "zstd", "compression_level": 23}, UnsupportedError, "-7 to 22"),
        ({"compression": "br", "compression_level": 12}, UnsupportedError, "0 to 11"),
        ({"compression": "blosc", "compression_level": 10}, UnsupportedError, "1 to 9"),
        ({"compression": "blosc", "blosc_cname": "snappy"}, UnsupportedError, "lz4"),
        ({"compression": "blosc", "blosc_shuffle": "bits"}, UnsupportedError, "bit"),
        ({"compression": "gzip", "blosc_cname": "lz4"}, ValueError, "compression='blosc'"),
        ({"compression_level": 5}, UnsupportedError, "needs a compression"),
        ({"compression": "lzma"}, UnsupportedError, "br, gzip, zstd.*nor blosc"),
    ],
)  # fmt: skip
def test_bad_codec_options_are_refused(
    tmp_path: Path, kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        create(tmp_path / "v", **kwargs)
    assert not (tmp_path / "v").exists()


def test_make_codec_ignores_options_of_other_codecs() -> None:
    codec = make_codec("raw", "uint8", 1, jpeg_quality=90, png_level=None)
    assert codec.name == "raw"
    assert set(CODEC_OPTIONS) == {"jpeg_quality", "png_level",
                                  "compressed_segmentation_block_size"}  # fmt: skip
    with pytest.raises(TypeError, match="unknown codec option"):
        make_codec("raw", "uint8", 1, quality=3)


# -- compressed chunks on disk -------------------------------------------------------------------

DECOMPRESS = {
    "gzip": gzip.decompress,
    "br": brotli.decompress,
    "zstd": lambda b: zstandard.ZstdDecompressor().decompress(b),
}


@pytest.mark.parametrize(("compression", "suffix"), [("gzip", ".gz"), ("br", ".br"),
                                                     ("zstd", ".zstd"), ("blosc", "")])  # fmt: skip
def test_compressed_chunks_on_disk_use_cloudvolumes_suffixes(
    tmp_path: Path, compression: str, suffix: str
) -> None:
    vol = create(tmp_path, dtype="uint16", compression=compression)
    data = random_data((*SIZE, 1), "uint16")[..., 0]
    vol[...] = data
    key = vol.chunk_key((0, 0, 0))
    files = list((tmp_path / vol.scale.key).iterdir())
    assert len(files) == math.prod(vol.grid_shape)
    assert all(f.name.endswith(suffix) for f in files)
    stored = (tmp_path / (key + suffix)).read_bytes()
    plain = data[:8, :8, :4].tobytes(order="F")
    if compression in DECOMPRESS:
        # Standard streams: what a browser or CloudVolume decodes.
        assert DECOMPRESS[compression](stored) == plain
    else:
        assert blosc_codec.BloscCompressor().decode(stored, key) == plain
    # The raw size is what the store reports; the stored bytes are compressed.
    assert (vol.store.size(key) or 0) == len(stored) < len(plain)


@pytest.mark.parametrize("level", range(1, 10))
def test_every_gzip_level_writes_a_standard_gzip_stream(level: int) -> None:
    data = np.asfortranarray(synthetic_em(Box((0, 0, 0), (64, 64, 8)))).tobytes(order="F")
    encoded = content_encoding.encode(data, "gzip", level)
    assert encoded[:2] == b"\x1f\x8b"
    assert gzip.decompress(encoded) == data
    assert zlib.decompress(encoded, 31) == data
    assert content_encoding.decode(bytes(encoded), "gzip", "k") == data


@pytest.mark.parametrize("encoding", ["gzip", "zstd", "br"])
def test_levels_trade_speed_for_size(encoding: str) -> None:
    labels_ = labels((64, 64, 16, 1), "uint64").tobytes()
    low, high, default = content_encoding.LEVELS[encoding]
    fast = len(content_encoding.encode(labels_, encoding, max(low, 1)))
    best = len(content_encoding.encode(labels_, encoding, high if encoding != "br" else 9))
    assert best < fast
    assert content_encoding.default_level(encoding) == default


def test_gzip_reads_concatenated_members_and_zlib_streams() -> None:
    two = gzip.compress(b"abc") + gzip.compress(b"def")
    assert content_encoding.decode(two, "gzip", "k") == b"abcdef"
    assert content_encoding.decode(zlib.compress(b"xyz"), "gzip", "k") == b"xyz"


def test_gunzip_into_fills_the_buffer_or_declines() -> None:
    data = np.asfortranarray(synthetic_em(Box((0, 0, 0), (64, 64, 8)))).tobytes(order="F")
    member = bytes(content_encoding.encode(data, "gzip", 6))
    out = bytearray(len(data) + 1)
    view = memoryview(out)[: len(data)]
    assert content_encoding.gunzip_into(member, view) == len(data)
    assert bytes(view) == data
    # Everything else declines (None), so that the caller decodes the usual way and reports.
    flipped_crc = bytearray(member)
    flipped_crc[-6] ^= 1
    flipped_data = bytearray(member)
    flipped_data[len(member) // 2] ^= 0x10
    declined = {
        "other size": (member, memoryview(out)[: len(data) - 1]),
        "bigger buffer": (member, memoryview(out)),
        "crc": (bytes(flipped_crc), view),
        "damaged stream": (bytes(flipped_data), view),
        "truncated": (member[:-100], view),
        "two members": (member + gzip.compress(b""), view),
        "file name in the header": (gzip.compress(data, mtime=0), view),
        "zlib stream": (zlib.compress(data), view),
        "empty": (b"", view),
    }
    # gzip.compress writes no name; a header that carries one (FNAME) takes the general path.
    named = bytearray(declined["file name in the header"][0])
    named[3] |= 0x08
    named[10:10] = b"chunk\x00"
    declined["file name in the header"] = (bytes(named), view)
    assert content_encoding.decode(bytes(named), "gzip", "k") == data
    for why, (stored, buffer) in declined.items():
        assert content_encoding.gunzip_into(stored, buffer) is None, why


def test_gzip_raw_volume_reads_members_the_fast_path_declines(tmp_path: Path) -> None:
    """gzip'd raw chunks with a file name in the header still read (through ISA-L)."""
    vol = ba.create(tmp_path / "v", shape=(16, 16, 16), chunks=(8, 8, 8), compression="gzip")
    data = np.arange(16**3, dtype=np.uint8).reshape((16, 16, 16), order="F")
    vol[...] = data
    assert vol.level.source.gunzip_raw
    key = vol.chunk_key((1, 0, 1))
    path = tmp_path / "v" / f"{key}.gz"
    plain = gzip.decompress(path.read_bytes())
    named = bytearray(gzip.compress(plain, mtime=0))
    named[3] |= 0x08
    named[10:10] = b"chunk\x00"
    path.write_bytes(bytes(named))
    np.testing.assert_array_equal(ba.open(tmp_path / "v")[...], data)
    path.write_bytes(bytes(named[:-9]))  # damaged: the usual error
    with pytest.raises(CorruptChunkError, match=key):
        ba.open(tmp_path / "v")[...]


def test_zstd_reads_several_frames_and_frames_without_a_size() -> None:
    cctx = zstandard.ZstdCompressor(write_content_size=False)
    frames = cctx.compress(b"abc" * 100) + zstandard.ZstdCompressor().compress(b"x" * 50)
    assert content_encoding.decode(frames, "zstd", "k") == b"abc" * 100 + b"x" * 50
    assert content_encoding.sniff(frames) == "zstd"


@pytest.mark.parametrize("encoding", ["xz", "deflate", "identity2"])
def test_unknown_content_encoding_on_read_names_the_key(encoding: str) -> None:
    with pytest.raises(CorruptChunkError, match=r"'scale/0-8_0-8_0-8'.*unknown content encoding"):
        content_encoding.decode(b"data", encoding, "scale/0-8_0-8_0-8")


@pytest.mark.parametrize("encoding", ["gzip", "zstd", "br"])
def test_damaged_transfer_encoding_names_the_key(encoding: str) -> None:
    good = bytes(content_encoding.encode(b"0123456789" * 100, encoding))
    for bad in (good[: len(good) // 2], good[:-1], b"", b"\x00" * 20):
        with pytest.raises(CorruptChunkError, match="'s/k'"):
            content_encoding.decode(bad, encoding, "s/k")


def test_zstd_checksums_catch_flipped_bits() -> None:
    good = bytearray(content_encoding.encode(bytes(range(256)) * 64, "zstd"))
    good[len(good) // 2] ^= 0x10
    with pytest.raises(CorruptChunkError):
        content_encoding.decode(bytes(good), "zstd", "k")


# -- blosc ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cname", "shuffle"), list(itertools.product(blosc_codec.CNAMES, blosc_codec.SHUFFLES))
)
@pytest.mark.parametrize("typesize", [1, 2, 8])
def test_blosc_round_trips(cname: str, shuffle: str, typesize: int) -> None:
    data = random_data((32, 16, 8, 1), {1: "uint8", 2: "uint16", 8: "uint64"}[typesize]).tobytes()
    comp = blosc_codec.BloscCompressor(3, cname, shuffle, typesize=typesize)
    encoded = comp.encode(data)
    assert comp.decode(encoded, "k", len(data)) == data
    # Any compressor decodes any frame: the frame names its codec and shuffle.
    assert blosc_codec.BloscCompressor().decode(encoded, "k") == data


def test_blosc_shuffle_helps_multibyte_values() -> None:
    image = smooth_image((64, 64, 8, 1)).astype(np.uint16) * 3 + 1000
    data = image.tobytes()
    plain = len(blosc_codec.BloscCompressor(5, "lz4", "none", typesize=2).encode(data))
    shuffled = len(blosc_codec.BloscCompressor(5, "lz4", "byte", typesize=2).encode(data))
    assert shuffled < plain
    assert blosc_codec.BloscCompressor(typesize=8).shuffle == "byte"
    assert blosc_codec.BloscCompressor(typesize=1).shuffle == "none"


def test_blosc_refuses_frames_that_do_not_fit() -> None:
    comp = blosc_codec.BloscCompressor(typesize=2)
    good = bytearray(comp.encode(bytes(4000)))
    with pytest.raises(CorruptChunkError, match="holds 4000 bytes, expected 4002"):
        comp.decode(bytes(good), "k", 4002)
    with pytest.raises(CorruptChunkError, match="too short"):
        comp.decode(bytes(good[:10]), "k")
    with pytest.raises(CorruptChunkError, match="stored"):
        comp.decode(bytes(good[:-1]), "k")
    tagged = bytearray(good)
    tagged[2] = (tagged[2] & 0x1F) | (6 << 5)
    with pytest.raises(CorruptChunkError, match=r"'k'.*unknown compression tag 6"):
        comp.decode(bytes(tagged), "k")


# -- damaged chunks in a dataset -----------------------------------------------------------------

DAMAGE_CASES = [
    ("raw", "uint16", None), ("raw", "uint16", "gzip"), ("raw", "uint16", "zstd"),
    ("raw", "uint16", "br"), ("raw", "uint16", "blosc"), ("jpeg", "uint8", None),
    ("png", "uint8", None), ("png", "uint16", "gzip"),
    ("compressed_segmentation", "uint64", None), ("compressed_segmentation", "uint32", "blosc"),
]  # fmt: skip


@pytest.mark.parametrize(("encoding", "dtype", "compression"), DAMAGE_CASES)
def test_truncated_chunk_raises_corrupt_chunk_error_naming_the_key(
    tmp_path: Path, encoding: str, dtype: str, compression: str | None
) -> None:
    vol = create(tmp_path, dtype=dtype, encoding=encoding, compression=compression)
    vol[...] = data_for(encoding, dtype, 1)[..., 0]
    key = vol.chunk_key((1, 0, 0))
    path = next((tmp_path / vol.scale.key).glob(key.rsplit("/", 1)[1] + "*"))
    whole = path.read_bytes()
    for cut in (len(whole) // 2, len(whole) - 1, 3):
        path.write_bytes(whole[:cut])
        with pytest.raises(CorruptChunkError) as caught:
            ba.open(tmp_path)[...]
        assert key in str(caught.value)


def test_chunk_of_another_size_is_corrupt(tmp_path: Path) -> None:
    """A whole, valid chunk of the wrong box: each codec checks the size it decodes to."""
    for encoding, dtype in (("jpeg", "uint8"), ("png", "uint16"),
                            ("compressed_segmentation", "uint32"), ("raw", "uint8")):  # fmt: skip
        # 2x2x2 blocks: the edge chunk has fewer compressed_segmentation blocks than the inner
        # one (with as many, nothing in the format tells them apart).
        block = {"compressed_segmentation_block_size": (2, 2, 2)} if encoding[0] == "c" else {}
        vol = create(tmp_path / encoding, dtype=dtype, encoding=encoding, **block)
        vol[...] = data_for(encoding, dtype, 1)[..., 0]
        inner, edge = vol.chunk_key((0, 0, 0)), vol.chunk_key((2, 1, 1))
        vol.store.put(inner, vol.store.get(edge) or b"")
        with pytest.raises(CorruptChunkError, match=r"expected|do not fit") as caught:
            ba.open(tmp_path / encoding)[...]
        assert inner in str(caught.value)


def test_jpeg_of_the_wrong_size_is_corrupt() -> None:
    codec = make_codec("jpeg", "uint8", 1)
    other = codec.encode(np.zeros((8, 4, 2, 1), np.uint8))  # 8 x 8 pixels
    with pytest.raises(CorruptChunkError, match=r"8x8 pixels, expected 8x16"):
        codec.decode(other, (8, 8, 2, 1), "a/b")
    rgb = make_codec("jpeg", "uint8", 3).encode(np.zeros((8, 4, 2, 3), np.uint8))
    with pytest.raises(CorruptChunkError, match="expected 1 channel"):
        codec.decode(rgb, (8, 4, 2, 1), "a/b")


def test_compressed_segmentation_of_another_block_count_is_corrupt() -> None:
    small = make_codec("compressed_segmentation", "uint64", 1,
                       compressed_segmentation_block_size=(2, 2, 2))  # fmt: skip
    encoded = small.encode(labels((8, 8, 8, 1), "uint64"))  # 64 blocks
    with pytest.raises(CorruptChunkError, match="not after the 8 block headers"):
        small.decode(encoded, (4, 4, 4, 1), "k")
    with pytest.raises(CorruptChunkError, match="block headers do not fit"):
        small.decode(small.encode(labels((4, 4, 4, 1), "uint64")), (8, 8, 8, 1), "k")


def test_png_of_the_wrong_kind_is_corrupt() -> None:
    codec = make_codec("png", "uint16", 1)
    eight_bit = make_codec("png", "uint8", 1).encode(np.zeros((4, 4, 2, 1), np.uint8))
    with pytest.raises(CorruptChunkError, match="8-bit samples"):
        codec.decode(eight_bit, (4, 4, 2, 1), "k")
    rgb = make_codec("png", "uint16", 3).encode(np.zeros((4, 4, 2, 3), np.uint16))
    with pytest.raises(CorruptChunkError, match="colour type 2"):
        codec.decode(rgb, (4, 4, 2, 1), "k")
    with pytest.raises(CorruptChunkError, match="signature"):
        codec.decode(b"GIF89a" + bytes(40), (4, 4, 2, 1), "k")


# -- compressed_segmentation decoded without the GIL -----------------------------------------------


@pytest.mark.parametrize("dtype", ["uint32", "uint64"])
def test_compressed_segmentation_decoder_without_the_gil_is_found(dtype: str) -> None:
    """The installed package exports its C++ decoder, so reads scale with threads."""
    assert cseg_codec.nogil_decoder(dtype) is not None


@settings(max_examples=80, deadline=None)
@given(
    dtype=st.sampled_from(["uint32", "uint64"]),
    shape=st.tuples(*[st.integers(1, 20)] * 3, st.integers(1, 3)),
    block=st.tuples(st.integers(1, 8), st.integers(1, 8), st.integers(1, 8)),
    labels=st.integers(1, 300),
    seed=st.integers(0, 2**32 - 1),
)
def test_compressed_segmentation_decoders_agree(
    dtype: str,
    shape: tuple[int, int, int, int],
    block: tuple[int, int, int],
    labels: int,
    seed: int,
) -> None:
    """The ctypes call of the C++ decoder gives what the package's own decompress gives."""
    import compressed_segmentation

    rng = np.random.default_rng(seed)
    values = rng.integers(0, 2**32 if dtype == "uint32" else 2**64, labels, dtype=dtype)
    chunk = np.asfortranarray(values[rng.integers(0, labels, shape)])
    codec = cseg_codec.CompressedSegmentationCodec(
        np.dtype(dtype), shape[3], compressed_segmentation_block_size=block
    )
    data = codec.encode(chunk)
    ours = codec.decode(data, shape, "k")
    theirs = compressed_segmentation.decompress(data, shape, dtype, block, order="F")
    np.testing.assert_array_equal(ours, chunk)
    np.testing.assert_array_equal(theirs, chunk)
    # From an unaligned view into a larger buffer, as a zero-copy read may hand it over.
    unaligned = memoryview(b"\0" + data)[1:]
    np.testing.assert_array_equal(codec.decode(unaligned, shape, "k"), chunk)  # type: ignore[arg-type]


def test_compressed_segmentation_decodes_without_the_exported_decoder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another build of the package (no such symbol): decoding goes through its decompress."""
    monkeypatch.setattr(cseg_codec, "nogil_decoder", lambda dtype: None)
    chunk = np.asfortranarray(np.arange(2 * 9 * 4 * 3, dtype=np.uint64).reshape(2, 9, 4, 3) % 7)
    codec = cseg_codec.CompressedSegmentationCodec(np.dtype("uint64"), 3)
    np.testing.assert_array_equal(codec.decode(codec.encode(chunk), chunk.shape, "k"), chunk)


# -- png decoded through libspng's C API without the GIL -------------------------------------------

PNG_FORMATS = [(d, c) for d in ("uint8", "uint16") for c in (1, 2, 3, 4)]


def test_libspng_is_found_in_imagecodecs() -> None:
    """The installed imagecodecs exports libspng's API, so png reads scale with threads."""
    assert png_codec.libspng() is not None


def _png_round_trip(dtype: str, channels: int) -> None:
    shape = (13, 7, 5, channels)
    chunk = np.random.default_rng(channels).integers(0, np.iinfo(dtype).max, shape, dtype=dtype)
    codec = png_codec.PngCodec(np.dtype(dtype), channels)
    data = codec.encode(np.asfortranarray(chunk))
    np.testing.assert_array_equal(codec.decode(data, shape, "k"), chunk)


@pytest.mark.parametrize(("dtype", "channels"), PNG_FORMATS)
def test_png_formats_through_libspng(dtype: str, channels: int) -> None:
    _png_round_trip(dtype, channels)


@pytest.mark.parametrize(("dtype", "channels"), PNG_FORMATS)
def test_png_formats_without_libspng_symbols(
    monkeypatch: pytest.MonkeyPatch, dtype: str, channels: int
) -> None:
    """Another build of imagecodecs: imagecodecs.spng_decode and pyspng-seunglab read them."""
    monkeypatch.setattr(png_codec, "libspng", lambda: None)
    _png_round_trip(dtype, channels)


def test_png_with_a_wrong_adler32_is_corrupt() -> None:
    """A damaged zlib stream inside an IDAT whose CRC was made to match is still refused."""
    shape = (16, 8, 4, 1)
    codec = png_codec.PngCodec(np.dtype("uint8"), 1)
    data = codec.encode(np.asfortranarray(np.arange(512, dtype=np.uint8).reshape(shape)))
    at = data.index(b"IDAT") - 4
    (length,) = struct.unpack(">I", data[at : at + 4])
    payload = bytearray(data[at + 8 : at + 8 + length])
    payload[-1] ^= 0xFF  # the last byte of the Adler-32
    idat = b"IDAT" + payload
    bad = data[:at] + struct.pack(">I", length) + idat + struct.pack(">I", zlib.crc32(idat))
    bad += data[at + 12 + length :]
    with pytest.raises(CorruptChunkError, match="png"):
        codec.decode(bad, shape, "k")
