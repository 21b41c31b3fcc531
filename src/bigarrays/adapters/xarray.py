"""``vol.to_xarray()``: a labelled ``xarray.DataArray`` over ``vol.to_dask()``.

Coordinates are physical positions in one convention for every format, Neuroglancer's: voxel
``j`` (absolute) of a space axis spans ``[j * r, (j + 1) * r)``, and its coordinate is the lower
corner ``j * r``. For an OME-Zarr image, ``j`` is the array index plus the level's offset that
NGFF's transforms give (``formats.zarr.ome``), so a precomputed volume and its conversion to
OME-Zarr get the same coordinates; NGFF's own numbers name voxel centres, half a voxel further.
Axes without a resolution (channels of a precomputed volume, a plain Zarr array) are labelled by
their indices.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bigarrays.adapters.dask import to_dask
from bigarrays.array import BigArray
from bigarrays.errors import MissingDependencyError
from bigarrays.formats.zarr.format import ZarrDataset
from bigarrays.formats.zarr.ome import level_geometry

try:
    import xarray
except ImportError:  # pragma: no cover - the test extra installs it
    raise MissingDependencyError("xarray", "dask", "vol.to_xarray()") from None

__all__ = ["to_xarray"]


def axis_geometry(vol: BigArray) -> list[tuple[float, float, str | None] | None]:
    """Per axis of ``vol.dims``: (resolution, offset in voxels, unit), or None for an axis
    labelled by its indices."""
    level = vol.level
    dataset = vol._dataset  # the format's placement of the level, which BigArray does not model
    multiscale = dataset.multiscale if isinstance(dataset, ZarrDataset) else None
    geometry = level_geometry(multiscale, vol.mip) if multiscale is not None else None
    scaled = [g for g in level.visible if not level.axes[g].positional]
    out: list[tuple[float, float, str | None] | None] = []
    for g in level.visible:
        axis = level.axes[g]
        if axis.positional:
            out.append(None)
        elif geometry is not None and multiscale is not None:
            unit = multiscale.axes[g].unit
            out.append((geometry.resolution[g], geometry.offset[g], unit))
        elif vol.format == "precomputed":
            r = level.resolution[scaled.index(g)]
            out.append((r, float(level.bounds.start[g]), "nanometer"))
        else:
            out.append(None)  # a plain Zarr array places nothing
    return out


def to_xarray(vol: BigArray, chunks: Any = None) -> xarray.DataArray:
    """The volume as a DataArray (see :meth:`BigArray.to_xarray`)."""
    data = to_dask(vol, chunks)
    coords: dict[str, Any] = {}
    for name, n, placed in zip(vol.dims, vol.shape, axis_geometry(vol), strict=True):
        index = np.arange(n)
        if placed is None:
            coords[name] = (name, index)
            continue
        r, offset, unit = placed
        coords[name] = (name, (index + offset) * r, {"units": unit} if unit else {})
    attrs: dict[str, Any] = {"url": vol.url, "mip": vol.mip, "format": vol.format,
             "voxel_offset": tuple(vol.bounds.start)}  # fmt: skip
    return xarray.DataArray(data, dims=vol.dims, coords=coords, attrs=attrs)
