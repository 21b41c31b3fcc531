"""``ba.view(...)`` and the :class:`Viewer` it returns.

Every viewer of the process registers its sources with one server (started on first use, in a
daemon thread); a viewer is its sources, its layout and position, and the URL that shows them.
"""

from __future__ import annotations

import html
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from bigarrays.errors import InvalidArgumentError
from bigarrays.viewer.jupyter import Route, route
from bigarrays.viewer.memory_source import MemorySource
from bigarrays.viewer.server import ViewerServer, get_server
from bigarrays.viewer.sources import DatasetSource, Source
from bigarrays.viewer.state import (
    MAX_CHANNEL_LAYERS,
    PALETTE,
    Channel,
    Dimension,
    LayerSpec,
    build_state,
    contrast_range,
    named,
    spatial_dimensions,
    state_url,
)

if TYPE_CHECKING:
    from bigarrays.array import BigArray

#: The layout when none is given: the three planes and 3-D for volumes, one plane for images
#: that are a single z slice.
DEFAULT_LAYOUT = "4panel"
FLAT_LAYOUT = "xy"
#: The client page's path below the server's root (the client takes its id from ``v/<id>/``).
PAGE = "v/0/"


@dataclass
class _Entry:
    sid: str
    source: Source
    spec: LayerSpec
    #: A BigArray the viewer opened from a URL (closed with the viewer), or None.
    owned: Any = None
    #: ``resolution``, ``voxel_offset`` and ``layer_type`` as ``view`` was given them.
    options: tuple[Any, ...] = (None, None, None)


class Viewer:
    """Neuroglancer showing some sources: ``.url`` opens it; in a notebook it shows inline.

    ``refresh()`` makes the viewer load the data again (after an in-memory array changed);
    ``viewer[i] = data`` (or ``viewer["name"] = data``) shows new data in a layer;
    ``close()`` (or leaving a ``with`` block) stops serving its sources.
    """

    def __init__(
        self,
        server: ViewerServer,
        entries: list[_Entry],
        *,
        layout: str,
        position: Sequence[float] | None,
        layers: Sequence[str | Mapping[str, Any]] | None,
        route: Route,
    ) -> None:
        self.server = server
        self._entries = entries
        self.layout = layout
        self.position = position
        self.layers = layers
        self.route = route
        self.generation = 0
        self.closed = False
        self.state  # noqa: B018 - check layout, position and layers now, not at the first .url

    @property
    def sources(self) -> list[Source]:
        return [e.source for e in self._entries]

    def data_url(self, index: int = 0) -> str:
        """The HTTP root that source ``index`` is served under (this generation)."""
        return f"{self.route.data}data/{self._entries[index].sid}/{self.generation}/"

    @property
    def state(self) -> dict[str, Any]:
        """The Neuroglancer state the URL carries (a fresh dict)."""
        specs = []
        for i, entry in enumerate(self._entries):
            url = f"{entry.source.scheme}://{self.data_url(i)}"
            specs.append(replace(entry.spec, url=url))
        return build_state(specs, layout=self.layout, position=self.position, layers=self.layers)

    @property
    def url(self) -> str:
        return state_url(self.route.page + PAGE, self.state)

    def refresh(self) -> Viewer:
        """Serve the data anew: sources forget what they derived from it, and the data URLs
        change, so that Neuroglancer drops the chunks it holds. Open (or display) the new
        ``url``; returns the viewer."""
        for entry in self._entries:
            entry.source.refresh()
        self.generation += 1
        return self

    def __setitem__(self, layer: int | str, data: Any) -> None:
        """Show ``data`` (an array, a BigArray or a URL) in layer ``layer`` (its index or its
        name) instead of what it showed. The layer keeps its name and its state; an array is
        placed with the ``resolution`` and ``voxel_offset`` the viewer was made with. The data
        URLs change as with :meth:`refresh`: open (or display) the new ``url``."""
        index = self._index(layer)
        old = self._entries[index]
        new = _entry(self.server, data, index, *old.options)
        new.spec = replace(new.spec, name=old.spec.name)
        self._entries[index] = new
        self.server.unregister(old.sid)
        if old.owned is not None:
            old.owned.close()
        self.generation += 1

    def _index(self, layer: int | str) -> int:
        if isinstance(layer, str):
            names = [spec.name for spec in named([e.spec for e in self._entries], self.layers)]
            if layer not in names:
                raise KeyError(f"the viewer has no layer {layer!r}; its layers are {names}")
            return names.index(layer)
        if not -len(self._entries) <= layer < len(self._entries):
            raise IndexError(f"the viewer has {len(self._entries)} layer(s), not layer {layer}")
        return layer % len(self._entries)

    def close(self) -> None:
        """Stop serving this viewer's sources (the server keeps running for the others)."""
        if self.closed:
            return
        self.closed = True
        for entry in self._entries:
            self.server.unregister(entry.sid)
            if entry.owned is not None:
                entry.owned.close()

    def __enter__(self) -> Viewer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __str__(self) -> str:
        return self.url

    def __repr__(self) -> str:
        return f"Viewer({self.url})"

    def _repr_html_(self) -> str:
        src = html.escape(self.url, quote=True)
        return (
            f'<iframe src="{src}" width="100%" height="600" style="border:0" '
            "allowfullscreen></iframe>"
            f'<div><a href="{src}" target="_blank" rel="noopener">open in a new tab</a></div>'
        )


_HEX_COLOUR = re.compile(r"[0-9a-fA-F]{6}")


def _name(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1] or "data"


def _dataset_spec(vol: BigArray, layer_type: str | None) -> LayerSpec:
    """The layer of a dataset: Neuroglancer shows all of its levels, so level 0 describes it."""
    base = vol.at_mip(0) if vol.mip else vol
    try:
        kind = layer_type or base.layer_type
        dims = _dataset_dims(base)
        contrast = None
        channels: tuple[Channel, ...] = ()
        if kind == "image":
            axis, local, omero = _channel_axis(base)
            if axis is not None and base.shape[axis] > MAX_CHANNEL_LAYERS:
                axis = None  # one layer: the sample stays bounded
            sample = _central_sample(base, whole=axis)
            contrast = contrast_range(sample)
            if axis is not None:
                channels = image_channels(sample, axis, local, omero)
    finally:
        if base is not vol:
            base.close()  # its reader threads; the store stays open, it is vol's
    return LayerSpec(_name(vol.url), "", kind, dims, contrast, channels=channels)


def _channel_axis(vol: BigArray) -> tuple[int | None, str, list[dict[str, Any]]]:
    """The axis of ``vol``'s channels, the local dimension Neuroglancer makes of it ("" for a
    channel dimension) and OME-Zarr's ``omero`` entries for them."""
    if vol.format == "precomputed":
        return (3 if len(vol.dims) == 4 else None), "", []
    from bigarrays.viewer.zarr_dims import channel_axis, omero_channels

    found = channel_axis(vol)
    if found is None:
        return None, "", []
    return found[0], found[1], omero_channels(vol)


def image_channels(
    sample: np.ndarray, axis: int, local: str, omero: Sequence[Mapping[str, Any]] = ()
) -> tuple[Channel, ...]:
    """The channels of an image whose ``sample`` holds every channel along ``axis``: one
    layer each when there are 2 to :data:`MAX_CHANNEL_LAYERS`, else none (one layer)."""
    n = sample.shape[axis]
    if not 2 <= n <= MAX_CHANNEL_LAYERS:
        return ()
    entries = [dict(omero[i]) if i < len(omero) else {} for i in range(n)]
    labels = [str(e.get("label") or "") for e in entries]
    if len(set(labels)) < n or "" in labels:
        labels = [f"c{i}" for i in range(n)]
    channels = []
    for i, entry in enumerate(entries):
        colour = str(entry.get("color", ""))
        colour = f"#{colour.lower()}" if _HEX_COLOUR.fullmatch(colour) else PALETTE[i]
        window = entry.get("window")
        contrast = None
        if isinstance(window, Mapping):
            lo, hi = window.get("start"), window.get("end")
            if isinstance(lo, int | float) and isinstance(hi, int | float) and hi > lo:
                contrast = (float(lo), float(hi))
        if contrast is None:
            contrast = contrast_range(np.take(sample, i, axis=axis))
        channels.append(Channel(i, labels[i], colour, contrast, local))
    return tuple(channels)


def _dataset_dims(vol: BigArray) -> tuple[Dimension, ...]:
    bounds = vol.bounds
    if vol.format == "precomputed":
        return tuple(
            Dimension(n, r / 1e9, "m", lo, hi)
            for n, r, lo, hi in zip("xyz", vol.resolution, bounds.start, bounds.stop, strict=False)
        )
    from bigarrays.viewer.zarr_dims import zarr_dimensions

    return zarr_dimensions(vol)


def _central_sample(vol: BigArray, max_voxels: int = 1 << 20, whole: int | None = None) -> Any:
    """A central box of ``vol`` of at most about ``max_voxels``: all of axis ``whole``, 4 voxels
    of the other axes but the two longest, and as much of those as the rest leaves room for."""
    bounds = vol.bounds
    extents = [hi - lo for lo, hi in zip(bounds.start, bounds.stop, strict=True)]
    others = [i for i in range(len(extents)) if i != whole]
    largest = sorted(others, key=lambda i: -extents[i])[:2]
    sizes = [e if i == whole else min(e, 4) for i, e in enumerate(extents)]
    rest = math.prod(n for i, n in enumerate(sizes) if i not in largest)
    side = max(1, int((max_voxels / max(rest, 1)) ** 0.5))
    key = []
    for i, (lo, hi) in enumerate(zip(bounds.start, bounds.stop, strict=True)):
        n = min(hi - lo, side) if i in largest else sizes[i]
        a = lo + (hi - lo - n) // 2
        key.append(slice(a, a + n))
    return vol[tuple(key)]


def _memory_spec(source: MemorySource, name: str, layer_type: str | None) -> LayerSpec:
    bounds = source.bounds
    dims = tuple(
        Dimension(n, r / 1e9, "m", lo, hi)
        for n, r, lo, hi in zip("xyz", source.resolution, bounds.start, bounds.stop, strict=True)
    )
    contrast = None
    channels: tuple[Channel, ...] = ()
    if source.layer_type == "image":
        sample = source.sample()
        contrast = contrast_range(sample)
        channels = image_channels(sample, 3, "")
    return LayerSpec(name, "", source.layer_type, dims, contrast, channels=channels)


def _entry(
    server: ViewerServer,
    item: Any,
    index: int,
    resolution: Sequence[float] | None,
    voxel_offset: Sequence[int] | None,
    layer_type: str | None,
) -> _Entry:
    from bigarrays.api import open as open_dataset
    from bigarrays.array import BigArray

    owned = None
    if isinstance(item, str | os.PathLike):
        item = owned = open_dataset(item)
    source: Source
    if isinstance(item, BigArray):
        source = DatasetSource(item)
        spec = _dataset_spec(item, layer_type)
    else:
        source = MemorySource(
            item, resolution=resolution, voxel_offset=voxel_offset, layer_type=layer_type
        )
        spec = _memory_spec(source, "array" if index == 0 else f"array{index + 1}", layer_type)
    options = (resolution, voxel_offset, layer_type)
    return _Entry(server.register(source), source, spec, owned, options)


def view(
    *sources: Any,
    layout: str | None = None,
    position: Sequence[float] | None = None,
    layers: Sequence[str | Mapping[str, Any]] | None = None,
    port: int | None = None,
    bind: str = "127.0.0.1",
    resolution: Sequence[float] | None = None,
    voxel_offset: Sequence[int] | None = None,
    layer_type: str | None = None,
) -> Viewer:
    """Show ``sources`` in Neuroglancer, served by this process; returns the :class:`Viewer`.

    A source is a BigArray (any format, any store), a URL or path (opened with ``ba.open``),
    or an in-memory array (NumPy, Dask, ...) of axes ``(x, y, z)``, ``(x, y)`` or ``(x, y, z,
    channel)``. ``resolution`` (nm per voxel, x y z) and ``voxel_offset`` place in-memory
    arrays; ``layer_type`` ("image" or "segmentation") overrides the layer every source gets.
    ``layout`` is Neuroglancer's ("4panel" for volumes, "xy" for single slices by default;
    "xy-3d", "3d", ...), ``position`` the voxel the view is centred on (one value per
    dimension of the first source; its centre by default), ``layers`` a name or a dict of
    Neuroglancer layer state per source. The server listens on ``bind`` (127.0.0.1: this
    machine only) and ``port`` (None: the running server's, else a free one).
    """
    if not sources:
        raise InvalidArgumentError("view() needs at least one source: an array, BigArray or URL")
    if layer_type not in (None, "image", "segmentation"):
        raise InvalidArgumentError(
            f"layer_type must be 'image' or 'segmentation', got {layer_type!r}"
        )
    server = get_server(port, bind)
    entries: list[_Entry] = []
    try:
        for i, item in enumerate(sources):
            entries.append(_entry(server, item, i, resolution, voxel_offset, layer_type))
        if layout is None:
            layout = _default_layout(entries)
        found = route(server.url, server.port, server.token)
        return Viewer(server, entries, layout=layout, position=position, layers=layers,
                      route=found)  # fmt: skip
    except BaseException:
        for entry in entries:
            server.unregister(entry.sid)
            if entry.owned is not None:
                entry.owned.close()
        raise


def _default_layout(entries: list[_Entry]) -> str:
    spatial = spatial_dimensions(entries[0].spec.dims)
    if len(spatial) == 3 and spatial[2].hi - spatial[2].lo <= 1:
        return FLAT_LAYOUT
    return DEFAULT_LAYOUT
