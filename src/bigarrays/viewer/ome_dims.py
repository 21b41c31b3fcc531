"""The dimensions Neuroglancer gives a Zarr array or OME-Zarr image, for the viewer's state.

Neuroglancer names an OME-Zarr image's axes as its ``multiscales`` do (a channel axis becomes a
local dimension, ``c'``, so it is left out here), in metres for space units and seconds for time
units. The viewer orders x, y, z first, so that the first panel is the xy plane whatever order
the array stores its axes in. A Zarr array without OME metadata has no units to go by: its
dimensions are left for Neuroglancer to work out (an empty tuple).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bigarrays.formats.zarr.units import SPACE_UNITS, TIME_UNITS, ngff_unit
from bigarrays.viewer.state import Dimension

if TYPE_CHECKING:
    from bigarrays.array import BigArray


def _multiscales(document: dict[str, Any]) -> list[Any] | None:
    attributes = document.get("attributes", document)
    if isinstance(attributes, dict):
        ome = attributes.get("ome", attributes)
        if isinstance(ome, dict) and isinstance(ome.get("multiscales"), list):
            found: list[Any] = ome["multiscales"]
            return found
    return None


def ome_dimensions(vol: BigArray) -> tuple[Dimension, ...]:
    multiscales = _multiscales(vol.info)
    if not multiscales or not isinstance(multiscales[0], dict):
        return _named_dimensions(vol)
    axes = multiscales[0].get("axes") or []
    bounds = vol.level.bounds
    resolution = vol.resolution
    if len(axes) != len(bounds.start) or len(resolution) != len(axes):
        return ()
    space: list[Dimension] = []
    other: list[Dimension] = []
    for i, axis in enumerate(axes):
        name = axis if isinstance(axis, str) else str(axis.get("name"))
        kind = None if isinstance(axis, str) else axis.get("type")
        unit = None if isinstance(axis, str) else axis.get("unit")
        if kind == "channel" or (isinstance(axis, str) and axis == "c"):
            continue
        scale, symbol = float(resolution[i]), ""
        if unit:
            named = ngff_unit(unit)
            if named in SPACE_UNITS:
                scale, symbol = scale * SPACE_UNITS[named] / 1e9, "m"
            elif named in TIME_UNITS:
                scale, symbol = scale * TIME_UNITS[named], "s"
        elif kind == "space" or name in ("x", "y", "z"):
            symbol = ""
        dim = Dimension(name, scale, symbol, bounds.start[i], bounds.stop[i])
        (space if kind == "space" or name in ("x", "y", "z") else other).append(dim)
    order = {"x": 0, "y": 1, "z": 2}
    space.sort(key=lambda d: order.get(d.name, 3))
    return tuple(space + other)


def _named_dimensions(vol: BigArray) -> tuple[Dimension, ...]:
    """A Zarr v3 array without OME metadata, whose ``dimension_names`` include x and y:
    Neuroglancer names its axes so, unitless; x, y, z first keeps the first panel the xy plane
    (in stored order a C-ordered (z, y, x) array would show z across)."""
    names = vol.info.get("dimension_names")
    bounds = vol.level.bounds
    if not isinstance(names, list) or not {"x", "y"} <= set(names):
        return ()
    if len(names) != len(bounds.start):
        return ()
    dims = [
        Dimension(str(n), 1.0, "", lo, hi)
        for n, lo, hi in zip(names, bounds.start, bounds.stop, strict=True)
    ]
    order = {"x": 0, "y": 1, "z": 2}
    return tuple(sorted(dims, key=lambda d: order.get(d.name, 3)))
