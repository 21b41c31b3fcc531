"""The dimensions Neuroglancer gives a Zarr array or OME-Zarr image, for the viewer's state.

Neuroglancer names an OME-Zarr image's axes as its ``multiscales`` do (a channel axis becomes a
local dimension, ``c'``, so it is left out here), in metres for space units and seconds for time
units, placed where its ``coordinateTransformations`` translate it. A Zarr array without OME
metadata is named by its dimension names, without units. The viewer orders x, y, z first, so
that the first panel is the xy plane whatever order the array stores its axes in.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from bigarrays.errors import BigArraysError
from bigarrays.formats.zarr.ome import OmeAttributes, level_geometry
from bigarrays.formats.zarr.units import SPACE_UNITS, TIME_UNITS, ngff_unit
from bigarrays.viewer.state import Dimension

if TYPE_CHECKING:
    from bigarrays.array import BigArray


#: bigarrays' name of an axis the array does not name; Neuroglancer's is ``d<i>`` for Zarr v2.
_UNNAMED = re.compile(r"^dim_(\d+)$")


def _multiscales(document: dict[str, Any]) -> list[Any] | None:
    attributes = document.get("attributes", document)
    if isinstance(attributes, dict):
        ome = attributes.get("ome", attributes)
        if isinstance(ome, dict) and isinstance(ome.get("multiscales"), list):
            found: list[Any] = ome["multiscales"]
            return found
    return None


AxisInfo = tuple[str, str | None, str | None]


def _origin(vol: BigArray, n: int) -> list[float]:
    """Where the lower corner of level 0's voxel 0 lies, in level-0 voxels, as Neuroglancer
    places an OME-Zarr image: its translations, less half a voxel on space axes (NGFF puts the
    translation at a voxel's centre); 0 for a plain Zarr array."""
    attributes = vol.info.get("attributes", vol.info)
    try:
        ome = OmeAttributes.from_json(attributes)
        offset = level_geometry(ome.multiscales[0], 0).offset if ome.multiscales else ()
    except (BigArraysError, ValueError, TypeError):
        offset = ()
    return [float(o) for o in offset] if len(offset) == n else [0.0] * n


def _axes(vol: BigArray) -> list[AxisInfo]:
    """(name, type, unit) per axis, as Neuroglancer names them: the OME-Zarr ``multiscales``
    axes, else the array's dimension names (Neuroglancer's own for unnamed ones)."""
    multiscales = _multiscales(vol.info)
    if multiscales and isinstance(multiscales[0], dict):
        out: list[AxisInfo] = []
        for axis in multiscales[0].get("axes") or []:
            if isinstance(axis, str):  # NGFF 0.3: axes are their names
                out.append((axis, "channel" if axis == "c" else None, None))
            else:
                out.append((str(axis.get("name")), axis.get("type"), axis.get("unit")))
        return out
    names: list[AxisInfo] = []
    for name in vol.dims:
        unnamed = _UNNAMED.match(name)
        if unnamed and vol.format == "zarr2":
            name = f"d{unnamed.group(1)}"
        names.append((name, None, None))
    return names


def channel_axis(vol: BigArray) -> tuple[int, str] | None:
    """The OME-Zarr channel axis of ``vol`` and the local dimension Neuroglancer makes of it
    (its name and a prime), or None."""
    for i, (name, kind, _) in enumerate(_axes(vol)):
        if kind == "channel":
            return i, f"{name}'"
    return None


def omero_channels(vol: BigArray) -> list[dict[str, Any]]:
    """The ``omero`` channel entries of an OME-Zarr image (label, colour, window), or []."""
    attributes = vol.info.get("attributes", vol.info)
    if not isinstance(attributes, dict):
        return []
    for holder in (attributes.get("ome"), attributes):  # NGFF 0.5, then 0.4
        omero = holder.get("omero") if isinstance(holder, dict) else None
        if isinstance(omero, dict) and isinstance(omero.get("channels"), list):
            return [c if isinstance(c, dict) else {} for c in omero["channels"]]
    return []


def zarr_dimensions(vol: BigArray) -> tuple[Dimension, ...]:
    axes = _axes(vol)
    bounds = vol.level.bounds
    resolution = vol.resolution
    if len(axes) != len(bounds.start) or len(resolution) != len(axes):
        return ()
    origin = _origin(vol, len(axes))
    space: list[Dimension] = []
    other: list[Dimension] = []
    for i, (name, kind, unit) in enumerate(axes):
        if kind == "channel":
            continue
        scale, symbol = float(resolution[i]), ""
        if unit:
            named = ngff_unit(unit)
            if named in SPACE_UNITS:
                scale, symbol = scale * SPACE_UNITS[named] / 1e9, "m"
            elif named in TIME_UNITS:
                scale, symbol = scale * TIME_UNITS[named], "s"
        lo, hi = bounds.start[i] + origin[i], bounds.stop[i] + origin[i]
        dim = Dimension(name, scale, symbol, lo, hi)
        (space if kind == "space" or name in ("x", "y", "z") else other).append(dim)
    order = {"x": 0, "y": 1, "z": 2}
    space.sort(key=lambda d: order.get(d.name, 3))
    return tuple(space + other)
