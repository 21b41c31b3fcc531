"""A synthetic, EM-like image volume that is a pure function of voxel coordinates.

Any box of it can be computed on its own, so a demo or a test can write a volume slab by slab
and later check any cutout against the truth without keeping the volume in memory. It looks
roughly like electron microscopy: smooth cell interiors, dark membranes, grain.

Every ingredient is a function of two coordinates at most, so the costly parts are 2-D and only
a few cheap passes run over the 3-D box; that keeps generation faster than disk writes.
"""

from __future__ import annotations

import numpy as np

from bigarrays.box import Box

_LUT_SIZE = 1024
_FIELD_MAX = 3.0  # the field is a sum of three sines


def _intensity_table() -> np.ndarray:
    """Field value -> grey level: bright cytoplasm, dark membranes where the field is ~0."""
    f = np.linspace(-_FIELD_MAX, _FIELD_MAX, _LUT_SIZE, dtype=np.float64)
    grey = 150 + 45 * np.tanh(2 * f) - 95 * np.exp(-np.square(5 * f))
    table: np.ndarray = np.clip(grey, 0, 255).astype(np.int16)
    return table


_TABLE = _intensity_table()


def _hash_noise(a: np.ndarray, b: np.ndarray, salt: int) -> np.ndarray:
    """Deterministic noise in [-6, 6] for every (a, b) pair, from an integer hash."""
    with np.errstate(over="ignore"):
        ua, ub = a.astype(np.int64).astype(np.uint32), b.astype(np.int64).astype(np.uint32)
        h = (ua * np.uint32(73856093)) ^ (ub * np.uint32(19349663))
        h ^= np.uint32(salt * 2654435761 % 2**32)
        h ^= h >> np.uint32(15)
        h *= np.uint32(2246822519)
        h ^= h >> np.uint32(13)
    return (h % np.uint32(13)).astype(np.int16) - 6


def synthetic_em(box: Box, seed: int = 0) -> np.ndarray:
    """The uint8 voxels of ``box`` (3-D, absolute coordinates), Fortran-ordered."""
    if box.ndim != 3:
        raise ValueError(f"synthetic_em takes a 3-D box, got {box}")
    xi = np.arange(box.start[0], box.stop[0])
    yi = np.arange(box.start[1], box.stop[1])
    zi = np.arange(box.start[2], box.stop[2])
    x, y, z = (v.astype(np.float32) for v in (xi, yi, zi))
    phase = np.float32((seed % 97) * 0.37)
    # Three crossing waves, each bent by a slower one along another axis: cell-like regions
    # whose boundaries (zero crossings of the sum) become membranes.
    t_xy = np.sin(0.043 * x[:, None] + 0.9 * np.sin(0.011 * y[None, :] + phase))
    t_yz = np.sin(0.037 * y[:, None] + 0.8 * np.sin(0.013 * z[None, :]))
    t_xz = np.sin(0.029 * z[None, :] + 0.7 * np.sin(0.017 * x[:, None]))
    scale = np.float32((_LUT_SIZE - 1) / (2 * _FIELD_MAX))
    # Fold the LUT's scale and offset into the 2-D terms so the 3-D pass is adds only. The
    # 3-D arrays are built as (z, y, x) in C order, which is (x, y, z) in Fortran order: the
    # result's layout, reached without a transposing copy.
    t_yx = ((t_xy + np.float32(_FIELD_MAX)) * scale).T
    t_zy = (t_yz * scale).T
    t_zx = (t_xz * scale).T
    out = np.empty(box.shape[::-1], dtype=np.uint8)
    noise_yx = _hash_noise(yi[:, None], xi[None, :], seed)
    noise_zy = _hash_noise(zi[:, None], yi[None, :], seed + 1)
    noise_zx = _hash_noise(zi[:, None], xi[None, :], seed + 2)
    # A few z-planes at a time keep the temporaries in cache instead of allocating 8 bytes per
    # voxel for the whole box.
    step = max(1, 2**20 // max(1, t_yx.size))
    for z0 in range(0, out.shape[0], step):
        z1 = min(z0 + step, out.shape[0])
        field = t_yx[None, :, :] + t_zy[z0:z1, :, None]
        field += t_zx[z0:z1, None, :]
        grey = np.take(_TABLE, field.astype(np.intp), mode="clip")
        grey += noise_yx[None, :, :]
        grey += noise_zy[z0:z1, :, None]
        grey += noise_zx[z0:z1, None, :]
        np.clip(grey, 0, 255, out=out[z0:z1], casting="unsafe")
    return out.T
