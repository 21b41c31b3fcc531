"""Geometry, data and file helpers shared by the TensorStore and CloudVolume interop tests.

Everything here is independent of bigarrays' own code: chunk names and raw chunk bytes are worked
out from the format notes, so that a test can check all three tools against one expectation.
"""

from __future__ import annotations

import gzip
import itertools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import bigarrays as ba

#: The data types of the format, the ones every tool reads and writes.
DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "float32")

# 70x50x33 is no multiple of 16 on any axis, so every axis has a truncated edge chunk (the z edge
# is one voxel thick), and the negative offset puts chunk borders at -20, -4, 12, ... not at 0.
SHAPE = (70, 50, 33)
CHUNKS = (16, 16, 16)
OFFSET = (-20, 5, -7)
RESOLUTION = (4, 4, 40)
SCALE_KEY = "4_4_40"
#: The corner chunk, truncated on every axis: 6 x 2 x 1 voxels.
CORNER_CHUNK = "44-50_53-55_25-26"

Box3 = tuple[tuple[int, int, int], tuple[int, int, int]]

#: Unaligned boxes in absolute coordinates, written in this order. They overlap, reach the
#: volume's corners and leave most chunks untouched.
PARTIAL_BOXES: tuple[Box3, ...] = (
    ((-20, 5, -7), (-13, 40, 0)),
    ((3, 20, 10), (47, 24, 26)),
    ((-15, 30, -2), (10, 33, 12)),
    ((44, 50, 20), (50, 55, 26)),
)

#: Boxes to read back, in absolute coordinates: unaligned, one voxel thin, and the whole volume.
READ_BOXES: tuple[Box3, ...] = (
    ((-20, 5, -7), (50, 55, 26)),
    ((-5, 6, 8), (13, 38, 10)),
    ((49, 54, 25), (50, 55, 26)),
    ((-20, 20, -7), (-19, 54, 26)),
)


def index(box: Box3, offset: Sequence[int] = OFFSET) -> tuple[slice, slice, slice]:
    """The slices of a model array (index 0 at ``offset``) that hold an absolute ``box``."""
    (x0, y0, z0), (x1, y1, z1) = box
    ox, oy, oz = offset
    return slice(x0 - ox, x1 - ox), slice(y0 - oy, y1 - oy), slice(z0 - oz, z1 - oz)


def absolute(box: Box3) -> tuple[slice, slice, slice]:
    """The slices that select an absolute ``box`` in bigarrays, TensorStore or CloudVolume."""
    return index(box, (0, 0, 0))


def random_volume(
    shape: Sequence[int], dtype: str, num_channels: int, seed: int = 0, *, nonzero: bool = False
) -> np.ndarray:
    """An ``(x, y, z, c)`` array over the full range of ``dtype``.

    float32 data carries NaN, infinities, -0.0 and a subnormal, which only a bit-exact path keeps.
    With ``nonzero``, no voxel is 0 (so no chunk equals the fill value).
    """
    rng = np.random.default_rng(seed)
    full = (*shape, num_channels)
    dt = np.dtype(dtype)
    if dt.kind == "f":
        data = (rng.standard_normal(full) * 1e3).astype(dt)
        flat = data.reshape(-1)
        specials = [
            np.nan,
            np.inf,
            -np.inf,
            -0.0,
            np.finfo(dt).smallest_subnormal,
            np.finfo(dt).max,
        ]
        flat[rng.choice(flat.size, len(specials), replace=False)] = specials
    else:
        info = np.iinfo(dt)
        data = rng.integers(info.min, info.max, size=full, dtype=dt, endpoint=True)
    if nonzero:
        data[data == 0] = 1
    return data


def user_view(block: np.ndarray, num_channels: int) -> np.ndarray:
    """A 4-D block as bigarrays shapes it: ``(x, y, z)`` for one channel."""
    return block[..., 0] if num_channels == 1 else block


def as4d(array: Any) -> np.ndarray:
    """An ``(x, y, z[, c])`` array as ``(x, y, z, c)``."""
    array = np.asarray(array)
    return array[..., np.newaxis] if array.ndim == 3 else array


def assert_identical(actual: Any, expected: np.ndarray) -> None:
    """Same shape, same dtype and the same bits in every voxel (NaN payloads and -0.0 included)."""
    actual = np.asarray(actual)
    assert actual.shape == expected.shape
    assert actual.dtype == expected.dtype
    bits = np.dtype(f"u{expected.dtype.itemsize}")
    assert np.array_equal(actual.view(bits), expected.view(bits))


def chunk_boxes(
    shape: Sequence[int] = SHAPE, offset: Sequence[int] = OFFSET, chunks: Sequence[int] = CHUNKS
) -> dict[str, Box3]:
    """Every chunk's name and absolute box, on the grid anchored at ``offset`` (edges truncated)."""
    axes = [
        [(o + g * c, o + min((g + 1) * c, s)) for g in range(math.ceil(s / c))]
        for s, o, c in zip(shape, offset, chunks, strict=True)
    ]
    out = {}
    for (x0, x1), (y0, y1), (z0, z1) in itertools.product(*axes):
        out[f"{x0}-{x1}_{y0}-{y1}_{z0}-{z1}"] = ((x0, y0, z0), (x1, y1, z1))
    return out


def touched_chunks(boxes: Sequence[Box3]) -> set[str]:
    """The names of the chunks that at least one of ``boxes`` overlaps."""

    def overlaps(a: Box3, b: Box3) -> bool:
        return all(max(a[0][i], b[0][i]) < min(a[1][i], b[1][i]) for i in range(3))

    return {name for name, box in chunk_boxes().items() if any(overlaps(box, b) for b in boxes)}


def raw_chunks(
    model: np.ndarray, names: Sequence[str] | set[str] | None = None
) -> dict[str, bytes]:
    """The raw encoding of chunks of a 4-D ``model`` at OFFSET: little-endian, x fastest."""
    boxes = chunk_boxes()
    wire = model.dtype.newbyteorder("<")
    return {
        name: model[index(boxes[name])].astype(wire).tobytes(order="F")
        for name in (boxes if names is None else names)
    }


def chunk_files(root: Path, *, gunzip: bool = False) -> dict[str, bytes]:
    """The chunk files of the test scale under dataset ``root``: file name -> stored bytes.

    With ``gunzip``, every file must be ``NAME.gz``; it is listed as NAME with its bytes decoded.
    """
    files = {p.name: p.read_bytes() for p in (root / SCALE_KEY).iterdir() if p.is_file()}
    if not gunzip:
        return files
    assert all(name.endswith(".gz") for name in files), sorted(files)
    return {name.removesuffix(".gz"): gzip.decompress(data) for name, data in files.items()}


def partial_model(dtype: str, num_channels: int, seed: int = 1) -> tuple[list, np.ndarray]:
    """Blocks for PARTIAL_BOXES (no zero voxels) and the volume they make when written in order."""
    model = np.zeros((*SHAPE, num_channels), dtype=dtype)
    writes = []
    for i, box in enumerate(PARTIAL_BOXES):
        shape = [b - a for a, b in zip(*box, strict=True)]
        block = random_volume(shape, dtype, num_channels, seed + i, nonzero=True)
        model[index(box)] = block
        writes.append((box, block))
    return writes, model


def ba_create(path: Path, dtype: str, num_channels: int = 1, **options: Any) -> ba.BigArray:
    """A bigarrays volume of the shared test geometry."""
    return ba.create(
        str(path),
        shape=SHAPE,
        dtype=dtype,
        chunks=CHUNKS,
        voxel_offset=OFFSET,
        resolution=RESOLUTION,
        num_channels=num_channels,
        **options,
    )


def check_bigarrays_geometry(vol: ba.BigArray, dtype: str, num_channels: int) -> None:
    """A volume another tool made looks to bigarrays as it was made."""
    assert vol.shape == (SHAPE if num_channels == 1 else (*SHAPE, num_channels))
    assert vol.dtype == np.dtype(dtype)
    assert vol.num_channels == num_channels
    assert vol.chunks == CHUNKS
    assert vol.voxel_offset == OFFSET
    assert vol.resolution == tuple(float(r) for r in RESOLUTION)
    assert vol.bounds == ba.Box(OFFSET, tuple(o + s for o, s in zip(OFFSET, SHAPE, strict=True)))
