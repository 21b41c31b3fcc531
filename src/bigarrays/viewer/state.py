"""The Neuroglancer state a viewer opens with, and the URL that carries it.

One layer per source: ``image`` with a contrast range from a sample of the data (the 0.5th and
99.5th percentiles), ``segmentation`` for labels. An image of 2 to 6 channels gets a layer per
channel instead, each in its own colour (OME-Zarr's ``omero`` colours, labels and windows where
the image has them) and added up, as microscopy viewers show them; Neuroglancer alone would
show one channel and a slider. The global dimensions are the first source's
(x, y, z first, in metres or seconds as Neuroglancer counts them), the position is the centre of
its bounds, and the zoom shows all of it: ``crossSectionScale`` is voxels per screen pixel (a
panel is taken as about 450 pixels, 250 in the 4-panel layout, to fit a notebook's frame) and
``projectionScale`` the extent the 3-D view spans. The caller's ``position=``, ``layout=`` and
``layers=`` come last.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote

import numpy as np

from bigarrays.errors import InvalidArgumentError

LAYOUTS = ("xy", "xz", "yz", "3d", "4panel", "xy-3d", "xz-3d", "yz-3d", "4panel-alt")
#: Pixels a cross-section panel spans, by layout (the zoom that shows the whole data).
_PANEL_PIXELS = {"4panel": 250, "4panel-alt": 250}
_PANEL_DEFAULT = 450


@dataclass(frozen=True)
class Dimension:
    name: str
    #: Size of a voxel in ``unit`` ("m", "s" or "" for none).
    scale: float
    unit: str
    lo: float
    hi: float


#: Colours of the channels of a multi-channel image, in order, where the data names none.
PALETTE = ("#ff0000", "#00ff00", "#0000ff", "#ff00ff", "#ffff00", "#00ffff")
#: An image of more channels keeps Neuroglancer's single layer and its channel slider.
MAX_CHANNEL_LAYERS = len(PALETTE)
_CHANNEL_SHADER = (
    "#uicontrol invlerp normalized\n"
    "#uicontrol vec3 color color\n"
    "void main() { emitRGB(color * normalized()); }\n"
)


@dataclass(frozen=True)
class Channel:
    """One channel of a multi-channel image, shown as a layer of its own."""

    index: int
    label: str
    colour: str  # "#rrggbb"
    contrast: tuple[float, float] | None
    #: The local dimension whose position picks the channel (``c'``: an OME-Zarr channel
    #: axis), or "" where the shader picks it from a channel dimension (precomputed's ``c^``).
    local: str = ""


@dataclass(frozen=True)
class LayerSpec:
    """What the state needs of one source."""

    name: str
    #: Neuroglancer's data source URL (``precomputed://http://...``).
    url: str
    layer_type: str
    #: The source's dimensions, global order (x, y, z first); empty where Neuroglancer should
    #: work them out itself.
    dims: tuple[Dimension, ...] = ()
    contrast: tuple[float, float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    channels: tuple[Channel, ...] = ()


def spatial_dimensions(dims: Sequence[Dimension]) -> list[Dimension]:
    """The dimensions of space among ``dims`` (in metres, or named x, y, z), at most 3."""
    return [d for d in dims if d.unit == "m" or (d.unit == "" and d.name in ("x", "y", "z"))][:3]


def contrast_range(sample: np.ndarray) -> tuple[float, float] | None:
    """The 0.5th and 99.5th percentiles of the finite values of ``sample`` (None if it has
    none); a constant sample gets a range one unit wide."""
    values = np.asarray(sample)
    if values.dtype.kind not in "iuf" or values.size == 0:
        return None
    if values.dtype.kind == "f":
        values = values[np.isfinite(values)]
        if values.size == 0:
            return None
    lo, hi = (float(v) for v in np.percentile(values, [0.5, 99.5]))
    if hi <= lo:
        hi = lo + 1.0
    return lo, hi


def _layer(spec: LayerSpec) -> dict[str, Any]:
    layer: dict[str, Any] = {"type": spec.layer_type, "source": spec.url, "name": spec.name}
    if spec.layer_type == "image" and spec.contrast is not None:
        lo, hi = spec.contrast
        layer["shaderControls"] = {"normalized": {"range": [_number(lo), _number(hi)]}}
    layer.update(spec.extra)
    return layer


def _layers(spec: LayerSpec) -> list[dict[str, Any]]:
    """The layers of ``spec``: one, or one per channel. State the caller gave that picks the
    channel or colours the layer (a shader, a local position) keeps the single layer."""
    if (
        spec.layer_type != "image"
        or len(spec.channels) < 2
        or {"shader", "localPosition", "shaderControls"} & spec.extra.keys()
    ):
        return [_layer(spec)]
    layers = []
    for channel in spec.channels:
        normalized: dict[str, Any] = {}
        if channel.contrast is not None:
            normalized["range"] = [_number(v) for v in channel.contrast]
        layer: dict[str, Any] = {
            "type": "image",
            "source": spec.url,
            "name": f"{spec.name} {channel.label}",
            "blend": "additive",
            "opacity": 1.0,
            "shader": _CHANNEL_SHADER,
            "shaderControls": {"normalized": normalized, "color": channel.colour},
        }
        if channel.local:
            layer["localDimensions"] = {channel.local: [1, ""]}
            layer["localPosition"] = [channel.index]  # a channel's centre is its index
        else:
            normalized["channel"] = [channel.index]
        layer.update(spec.extra)
        layers.append(layer)
    return layers


def _number(v: float) -> float | int:
    return int(v) if float(v).is_integer() else float(v)


def build_state(
    specs: Sequence[LayerSpec],
    *,
    layout: str,
    position: Sequence[float] | None = None,
    layers: Sequence[str | Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The state (a JSON-able dict) showing ``specs``; see the module notes."""
    if layout not in LAYOUTS:
        raise InvalidArgumentError(f"layout must be one of {', '.join(LAYOUTS)}; got {layout!r}")
    specs = named(specs, layers)
    state: dict[str, Any] = {}
    dims = specs[0].dims if specs else ()
    if dims:
        state["dimensions"] = {d.name: [d.scale, d.unit] for d in dims}
        state["position"] = [(d.lo + d.hi) / 2 for d in dims]
        spatial = spatial_dimensions(dims) or list(dims[:2])
        span = max(max(d.hi - d.lo for d in spatial[:2]), 1.0)
        pixels = _PANEL_PIXELS.get(layout, _PANEL_DEFAULT)
        state["crossSectionScale"] = max(span / pixels, 1e-3)
        finest = min(d.scale for d in spatial)
        physical = max((d.hi - d.lo) * d.scale for d in spatial)
        state["projectionScale"] = max(physical / finest * 1.5, 1.0)
    if position is not None:
        if dims and len(position) != len(dims):
            names = ", ".join(d.name for d in dims)
            raise InvalidArgumentError(
                f"position has one coordinate per dimension ({names}): {len(dims)} values, "
                f"got {len(position)}"
            )
        state["position"] = [float(v) for v in position]
    state["layers"] = [layer for s in specs for layer in _layers(s)]
    if specs:
        state["selectedLayer"] = {"layer": state["layers"][0]["name"]}
    state["layout"] = layout
    return state


def named(
    specs: Sequence[LayerSpec], layers: Sequence[str | Mapping[str, Any]] | None
) -> list[LayerSpec]:
    """``specs`` with the caller's names and layer state merged in, one entry per source."""
    out = list(specs)
    if layers is None:
        return _unique(out)
    if len(layers) != len(specs):
        raise InvalidArgumentError(
            f"layers= has one entry (a name or a dict of layer state) per source: {len(specs)} "
            f"source(s), got {len(layers)}"
        )
    for i, given in enumerate(layers):
        spec = out[i]
        if isinstance(given, str):
            out[i] = replace(spec, name=given)
        elif isinstance(given, Mapping):
            extra = dict(given)
            name = str(extra.pop("name", spec.name))
            kind = str(extra.pop("type", spec.layer_type))
            out[i] = replace(spec, name=name, layer_type=kind, extra=extra)
        else:
            raise InvalidArgumentError(
                f"layers[{i}] must be a name or a dict of layer state, got {given!r}"
            )
    return _unique(out)


def _unique(specs: list[LayerSpec]) -> list[LayerSpec]:
    """Neuroglancer refuses two layers of one name: number the repeats."""
    seen: dict[str, int] = {}
    out = []
    for spec in specs:
        n = seen.get(spec.name, 0)
        seen[spec.name] = n + 1
        if n:
            spec = replace(spec, name=f"{spec.name}-{n + 1}")
        out.append(spec)
    return out


def state_url(base: str, state: Mapping[str, Any]) -> str:
    """``base`` with ``state`` as its fragment: ``#!`` and the JSON, URL-quoted."""
    text = json.dumps(state, separators=(",", ":"))
    return base + "#!" + quote(text, safe="/:,=@$&()*+;")
