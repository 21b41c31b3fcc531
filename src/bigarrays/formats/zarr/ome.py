"""OME-NGFF ``multiscales`` metadata: read 0.1-0.5, write 0.5, and map it to bigarrays' levels.

A pure model, no I/O: :meth:`OmeAttributes.from_json` takes a Zarr group's attributes (of a v3
``zarr.json`` or a v2 ``.zattrs``, as parsed by ``bounded_json.parse_json``) and
:meth:`OmeAttributes.to_json` gives them back in NGFF 0.5 form (``{"ome": {"version": "0.5",
"multiscales": [...]}}``), keeping what it does not model (``omero``, ``labels``, a multiscale's
``metadata``, other tools' attributes).

Geometry: where a voxel lies in physical space
----------------------------------------------
NGFF maps the array index ``i`` of a level to the physical coordinate ``i * s + t`` (``s`` and
``t`` being the level's scale and translation composed with the multiscale's own transforms) and
puts that point at the voxel's CENTER: the voxel of index 0 spans ``[t - s/2, t + s/2)``.

Precomputed describes a level by ``resolution`` ``r`` and ``voxel_offset`` ``o`` (in voxels of
that level, so a downsampled level's offset is in its own, larger voxels): the voxel of absolute
index ``j`` spans ``[j * r, (j + 1) * r)``, the CORNER convention, and the first stored voxel is
``j = o``. A Zarr array starts at index 0, so array index ``i`` is voxel ``j = i + o``, whose
center is ``(i + o + 1/2) * r``. Equating the two centers, for each SPACE axis::

    precomputed -> NGFF:   s = r        t = (o + 1/2) * r
    NGFF -> precomputed:   r = s        o = t / s - 1/2

This is the reconciliation Neuroglancer itself makes: its OME loader
(``src/datasource/zarr/ome.ts``, ``parseOmeMultiscale``) notes that the origin of an OME voxel is
its center while Neuroglancer's is the lower corner, and moves each level's translation by half a
voxel of that level. A precomputed volume converted to OME-Zarr with these formulas therefore
shows at the same place in Neuroglancer, every level. Both directions are exact in floating point
while ``(o + 1/2) * r`` needs at most 53 significant bits (offsets below 2**40 with resolutions
such as 8, 40, 4.5 or 0.25): ``o + 1/2`` is then a binary fraction, and the product, the quotient
and the subtraction round nothing.

Time, channel and custom axes hold samples, not extents, and precomputed has no such axis, so they
take no half-voxel shift: ``t = o * s`` and ``o = t / s``; every writer puts channel 0 and the
first time point at translation 0, and that maps to offset 0.

Documents written without this convention in mind (ome-zarr-py puts level 0 at translation 0)
give fractional offsets such as -0.5: :attr:`LevelGeometry.offset` keeps them exact and
:attr:`LevelGeometry.voxel_offset` rounds to the nearest voxel (halves up), the half-voxel shift
an integer voxel_offset cannot avoid; ome-zarr-py's levels all round to offset 0 together.

Validation and units
--------------------
Structure is always checked (2-5 axes, unique names, at most one time, channel and custom axis,
time first and 2-3 space axes last, one scale of the axes' length per dataset, scales positive,
finite and finest first): a document that breaks it cannot be interpreted, and every error is an
:class:`~bigarrays.errors.InvalidMetadataError` naming the member. Units are checked only when
reading with ``strict=True``: NGFF says a unit SHOULD come from its lists (UDUNITS-2 names), so
the default reads ``"µm"`` or ``"micron"`` and keeps it verbatim for rewrite, and
``units.nanometres_per`` still converts the common spellings. What :func:`multiscale_for` writes
is strict: units are normalised to NGFF names, since Neuroglancer refuses any other.
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, NamedTuple

import numpy as np

from bigarrays.errors import InvalidMetadataError, ScaleNotFoundError, UnsupportedError
from bigarrays.formats.zarr.units import UNITS_OF, ngff_unit

#: NGFF versions whose ``multiscales`` this module reads; it writes :data:`WRITE_VERSION`.
READ_VERSIONS = ("0.1", "0.2", "0.3", "0.4", "0.5")
WRITE_VERSION = "0.5"
AXIS_TYPES = ("time", "channel", "space")
#: The OME keys that NGFF 0.4 keeps at the top of ``.zattrs`` and 0.5 moves under ``ome``.
OME_KEYS = ("multiscales", "omero", "labels", "image-label", "plate", "well",
            "bioformats2raw.layout")  # fmt: skip
#: Levels of one multiscale: a pyramid halving each level spans 2**64 voxels in 64 (NGFF files
#: have a handful); the bound keeps a hostile list of a million levels from costing seconds.
MAX_LEVELS = 64
#: Transforms in one list: NGFF allows two; lenient reading composes a few more.
MAX_TRANSFORMS = 16
#: Versions 0.1 and 0.2 have no ``axes``: their arrays are always 5-D in this order.
DEFAULT_AXES = ("t", "c", "z", "y", "x")
_NAMED_AXIS_TYPES = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}

# --- validation helpers -------------------------------------------------------------------------


def _number(value: Any, name: str, *, positive: bool = False) -> float:
    # bool is an int in Python and JSON's true is no number; a 400-digit integer overflows float().
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise InvalidMetadataError(f"expected a number, got {value!r:.80}", field=name)
    try:
        out = float(value)
    except OverflowError:
        out = math.inf
    if not math.isfinite(out) or (positive and out <= 0):
        kind = "a positive finite number" if positive else "a finite number"
        raise InvalidMetadataError(f"expected {kind}, got {value!r:.80}", field=name)
    return out


def _vector(value: Any, n: int, name: str, *, positive: bool = False) -> tuple[float, ...]:
    if not isinstance(value, list | tuple) or len(value) != n:
        got = f"{len(value)} values" if isinstance(value, list | tuple) else repr(value)[:80]
        raise InvalidMetadataError(
            f"expected a list of {n} numbers, one per axis, got {got}", field=name
        )
    return tuple(_number(v, f"{name}[{i}]", positive=positive) for i, v in enumerate(value))


def _object(value: Any, name: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidMetadataError(f"expected a JSON object, got {value!r:.80}", field=name)
    return value


def _list(value: Any, name: str, *, minimum: int = 0) -> Sequence[Any]:
    if not isinstance(value, list | tuple) or len(value) < minimum:
        raise InvalidMetadataError(
            f"expected a list of at least {minimum} entries, got {value!r:.80}", field=name
        )
    return value


def _copy(value: Any, name: str) -> Any:
    """A copy of a JSON value the model keeps but does not read (``omero``, ``metadata``)."""
    try:
        return copy.deepcopy(value)
    except RecursionError:  # bounded_json.parse_json refuses these before they get here
        raise InvalidMetadataError("nested too deep to copy", field=name) from None


def _check_path(path: Any, name: str) -> str:
    # A level's path becomes a store key: it must stay below the group, as Zarr node names do.
    if not isinstance(path, str) or not path.strip("/"):
        raise InvalidMetadataError(
            f"expected a relative array path such as '0', got {path!r:.80}", field=name
        )
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts) or "\\" in path or not path.isprintable():
        raise InvalidMetadataError(
            f"{path!r:.80} is not a path below the group: expected printable names joined by "
            "'/', without '.', '..', empty parts or backslashes",
            field=name,
        )
    return path


# --- the model ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Axis:
    """One dimension; ``type`` is ``"time"``, ``"channel"``, ``"space"``, custom, or None."""

    name: str
    type: str | None = None
    unit: str | None = None

    @classmethod
    def from_json(cls, obj: Any, name: str = "axes[0]") -> Axis:
        if isinstance(obj, str):  # NGFF 0.3: axes are their names
            obj = {"name": obj, "type": _NAMED_AXIS_TYPES.get(obj)}
        obj = _object(obj, name)
        axis_name, axis_type, unit = obj.get("name"), obj.get("type"), obj.get("unit")
        if not isinstance(axis_name, str) or not axis_name:
            raise InvalidMetadataError(
                f"expected a non-empty name, got {axis_name!r:.80}", field=f"{name}.name"
            )
        for key, value in (("type", axis_type), ("unit", unit)):
            if value is not None and not isinstance(value, str):
                raise InvalidMetadataError(
                    f"expected a string, got {value!r:.80}", field=f"{name}.{key}"
                )
        return cls(axis_name, axis_type, unit)

    def to_json(self) -> dict[str, Any]:
        members = (("name", self.name), ("type", self.type), ("unit", self.unit))
        return {key: value for key, value in members if value is not None}


@dataclass(frozen=True)
class CoordinateTransform:
    """A ``scale`` or ``translation`` vector (``identity`` is read, and dropped, as a no-op)."""

    type: Literal["scale", "translation"]
    values: tuple[float, ...]

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, self.type: list(self.values)}


@dataclass(frozen=True)
class Dataset:
    """One level: the path of its array and its scale (and translation) per axis."""

    path: str
    scale: tuple[float, ...]
    translation: tuple[float, ...] | None = None

    @property
    def transforms(self) -> tuple[CoordinateTransform, ...]:
        scale = (CoordinateTransform("scale", self.scale),)
        return scale + (() if self.translation is None else
                        (CoordinateTransform("translation", self.translation),))  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "coordinateTransformations": [t.to_json() for t in self.transforms],
        }


Affine = tuple[tuple[float, ...], tuple[float, ...]]


def _then(affine: Affine, kind: str, values: tuple[float, ...]) -> Affine:
    """``x -> x * scale + translation`` followed by one more scale or translation."""
    scale, translation = affine
    if kind == "scale":
        return (
            tuple(a * b for a, b in zip(scale, values, strict=True)),
            tuple(a * b for a, b in zip(translation, values, strict=True)),
        )
    return scale, tuple(a + b for a, b in zip(translation, values, strict=True))


def _transforms(
    value: Any, n: int, name: str, *, strict: bool
) -> tuple[tuple[float, ...], tuple[float, ...] | None]:
    """A list of transforms as one (scale, translation); strict asks for NGFF's one form.

    NGFF 0.4/0.5 allow exactly ``[scale]`` or ``[scale, translation]``. Leniently, any sequence of
    scales and translations is composed in order (``x -> x * s``, then ``x -> x + t``), which is
    what the list means and how Neuroglancer reads it.
    """
    items = _list(value, name, minimum=1)
    if len(items) > MAX_TRANSFORMS:
        raise InvalidMetadataError(f"{len(items)} transforms; at most {MAX_TRANSFORMS}", field=name)
    affine: Affine = ((1.0,) * n, (0.0,) * n)
    kinds = []
    for i, item in enumerate(items):
        item = _object(item, f"{name}[{i}]")
        kind = item.get("type")
        if kind == "identity":
            continue
        if kind not in ("scale", "translation"):
            raise InvalidMetadataError(
                f"transform type {kind!r:.80}; NGFF multiscales allow 'scale' and 'translation'",
                field=f"{name}[{i}].type",
            )
        if kind not in item and "path" in item:
            raise UnsupportedError(
                f"{name}[{i}]: a {kind} stored in an array ('path') is not "
                "read; give its values inline"
            )
        values = _vector(item.get(kind), n, f"{name}[{i}].{kind}", positive=kind == "scale")
        affine = _then(affine, kind, values)
        kinds.append(kind)
    if strict and kinds not in (["scale"], ["scale", "translation"]):
        raise InvalidMetadataError(
            f"transforms {kinds}; expected exactly one scale, optionally followed by one "
            "translation",
            field=name,
        )
    if "scale" not in kinds:
        raise InvalidMetadataError("no scale transform; every level needs one", field=name)
    return affine[0], (affine[1] if "translation" in kinds else None)


def _check_axes(axes: Sequence[Axis], name: str, *, strict: bool) -> None:
    if not 2 <= len(axes) <= 5:
        raise InvalidMetadataError(f"{len(axes)} axes; NGFF images have 2 to 5", field=name)
    names = [a.name for a in axes]
    if len(set(names)) != len(names):
        raise InvalidMetadataError(f"axis names {names} are not unique", field=name)
    types = [a.type for a in axes]
    spaces = types.count("space")
    others = [t for t in types if t not in AXIS_TYPES]
    for what, count in (("time", types.count("time")), ("channel", types.count("channel")),
                        ("custom", len(others))):  # fmt: skip
        if count > 1:
            raise InvalidMetadataError(f"{count} {what} axes in {types}; at most 1", field=name)
    if spaces not in (2, 3) or types[-spaces:] != ["space"] * spaces:
        raise InvalidMetadataError(
            f"axis types {types}; expected 2 or 3 space axes, last", field=name
        )
    if "time" in types and types[0] != "time":
        raise InvalidMetadataError(f"axis types {types}; the time axis comes first", field=name)
    for i, axis in enumerate(axes if strict else ()):
        known = UNITS_OF.get(axis.type or "")
        if axis.unit is not None and known is not None and axis.unit not in known:
            raise InvalidMetadataError(
                f"unit {axis.unit!r} of a {axis.type} axis; expected one of {', '.join(known)}",
                field=f"{name}[{i}].unit",
            )


def _check_order(datasets: Sequence[Dataset], name: str) -> None:
    for k in range(1, len(datasets)):
        before, after = datasets[k - 1].scale, datasets[k].scale
        if any(b < a for a, b in zip(before, after, strict=True)):
            raise InvalidMetadataError(
                f"level {k} has a smaller scale {list(after)} than level {k - 1} "
                f"{list(before)}; levels go from the finest to the coarsest",
                field=f"{name}[{k}]",
            )


def _dataset(raw: Any, n: int, version: str, name: str, *, strict: bool) -> Dataset:
    raw = _object(raw, name)
    path = _check_path(raw.get("path"), f"{name}.path")
    transforms = raw.get("coordinateTransformations")
    if transforms is None and version in ("0.1", "0.2", "0.3"):
        return Dataset(path, (1.0,) * n)  # before 0.4 a level has no scale: its shape tells it
    where = f"{name}.coordinateTransformations"
    return Dataset(path, *_transforms(transforms, n, where, strict=strict))


@dataclass(frozen=True)
class Multiscale:
    """One entry of ``multiscales``: an image pyramid, finest level first.

    ``coordinate_transformations`` are the multiscale's own transforms, applied after each
    level's; ``version`` is the NGFF version it was read as; ``extra`` keeps members this model
    does not know, so that a rewrite loses nothing.
    """

    axes: tuple[Axis, ...]
    datasets: tuple[Dataset, ...]
    name: Any = None
    coordinate_transformations: tuple[CoordinateTransform, ...] = ()
    version: str = WRITE_VERSION
    type: Any = None
    metadata: Any = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(
        cls, obj: Any, *, version: str, strict: bool = False, name: str = "multiscales[0]"
    ) -> Multiscale:
        obj = _object(obj, name)
        if "axes" in obj:
            raw_axes = _list(obj["axes"], f"{name}.axes")
            if not 2 <= len(raw_axes) <= 5:  # before looking at each: a list may be huge
                raise InvalidMetadataError(
                    f"{len(raw_axes)} axes; NGFF images have 2 to 5", field=f"{name}.axes"
                )
        elif version in ("0.1", "0.2"):
            raw_axes = list(DEFAULT_AXES)
        else:
            raise InvalidMetadataError("no axes", field=name)
        axes = tuple(Axis.from_json(a, f"{name}.axes[{i}]") for i, a in enumerate(raw_axes))
        _check_axes(axes, f"{name}.axes", strict=strict)
        raw_datasets = _list(obj.get("datasets"), f"{name}.datasets", minimum=1)
        if len(raw_datasets) > MAX_LEVELS:
            raise InvalidMetadataError(f"{len(raw_datasets)} levels; at most {MAX_LEVELS}",
                                       field=f"{name}.datasets")  # fmt: skip
        datasets = [_dataset(d, len(axes), version, f"{name}.datasets[{i}]", strict=strict)
                    for i, d in enumerate(raw_datasets)]  # fmt: skip
        _check_order(datasets, f"{name}.datasets")
        top: tuple[CoordinateTransform, ...] = ()
        if (transforms := obj.get("coordinateTransformations")) is not None:
            where = f"{name}.coordinateTransformations"
            top = Dataset("", *_transforms(transforms, len(axes), where, strict=strict)).transforms
        known = {"axes", "datasets", "name", "coordinateTransformations", "version", "type",
                 "metadata"}  # fmt: skip
        return cls(
            axes=axes,
            datasets=tuple(datasets),
            name=_copy(obj.get("name"), name),
            coordinate_transformations=top,
            version=version,
            type=_copy(obj.get("type"), name),
            metadata=_copy(obj.get("metadata"), name),
            extra=_copy({k: v for k, v in obj.items() if k not in known}, name),
        )

    def to_json(self) -> dict[str, Any]:
        """The NGFF 0.5 entry (0.5 keeps the version beside ``multiscales``, not in it)."""
        out: dict[str, Any] = {
            "axes": [a.to_json() for a in self.axes],
            "datasets": [d.to_json() for d in self.datasets],
        }
        if self.coordinate_transformations:
            out["coordinateTransformations"] = [
                t.to_json() for t in self.coordinate_transformations
            ]
        for key, value in (("name", self.name), ("type", self.type), ("metadata", self.metadata)):
            if value is not None:
                out[key] = copy.deepcopy(value)
        out.update(copy.deepcopy(dict(self.extra)))
        return out


def _entry_version(entry: Any, name: str, *, strict: bool) -> str:
    """The version of a 0.4-or-older ``multiscales`` entry, which carries its own."""
    entry = entry if isinstance(entry, Mapping) else {}
    if entry.get("version") is not None:
        return _known_version(entry["version"], f"{name}.version")
    if strict:
        raise InvalidMetadataError(
            "no version; expected one of " + ", ".join(READ_VERSIONS), field=f"{name}.version"
        )
    axes = entry.get("axes")  # unversioned documents predate 0.4 (or forgot): the axes tell
    if not axes:
        return "0.2"
    return "0.4" if isinstance(axes, list) and isinstance(axes[0], Mapping) else "0.3"


def _known_version(version: Any, name: str) -> str:
    if version not in READ_VERSIONS:
        raise UnsupportedError(
            f"{name}: NGFF version {version!r:.40} is not read; bigarrays "
            f"reads {', '.join(READ_VERSIONS)}"
        )
    return str(version)


@dataclass(frozen=True)
class OmeAttributes:
    """The OME-NGFF part of a Zarr group's attributes, and everything around it.

    ``ome_extra`` holds the other OME members (``omero``, ``labels``, ...); ``other`` the
    attributes outside the OME namespace. Both are written back unchanged.
    """

    multiscales: tuple[Multiscale, ...]
    version: str = WRITE_VERSION
    ome_extra: Mapping[str, Any] = field(default_factory=dict)
    other: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, attrs: Any, *, strict: bool = False) -> OmeAttributes:
        """Read 0.5 (``attrs["ome"]``) or 0.4 and older (``multiscales`` at the top).

        ``strict`` also refuses units outside NGFF's lists, transforms other than one scale and
        an optional translation, and entries without a version.
        """
        attrs = _object(attrs, "attributes")
        if "ome" in attrs:
            ome = _object(attrs["ome"], "ome")
            version = _known_version(ome.get("version"), "ome.version")
            body, prefix = ome, "ome.multiscales"
            other = {k: v for k, v in attrs.items() if k != "ome"}
            ome_extra = {k: v for k, v in ome.items() if k not in ("multiscales", "version")}
        else:
            version, body, prefix = "", attrs, "multiscales"
            other = {k: v for k, v in attrs.items() if k not in OME_KEYS}
            ome_extra = {k: v for k, v in attrs.items() if k in OME_KEYS and k != "multiscales"}
        multiscales = []
        for i, entry in enumerate(_list(body.get("multiscales", []), prefix)):
            where = f"{prefix}[{i}]"
            entry_version = version or _entry_version(entry, where, strict=strict)
            multiscales.append(
                Multiscale.from_json(entry, version=entry_version, strict=strict, name=where)
            )
        if not version:
            version = multiscales[0].version if multiscales else WRITE_VERSION
        return cls(tuple(multiscales), version, _copy(ome_extra, "ome"), _copy(other, "attributes"))

    def to_json(self) -> dict[str, Any]:
        """The group's attributes in NGFF 0.5 form."""
        ome: dict[str, Any] = {"version": WRITE_VERSION}
        if self.multiscales:
            ome["multiscales"] = [m.to_json() for m in self.multiscales]
        ome.update(copy.deepcopy(dict(self.ome_extra)))
        return {**copy.deepcopy(dict(self.other)), "ome": ome}


def has_multiscales(attrs: Mapping[str, Any]) -> bool:
    """Whether a group's attributes hold NGFF ``multiscales`` (0.5 or older), i.e. an image."""
    ome = attrs.get("ome")
    return "multiscales" in (ome if isinstance(ome, Mapping) else attrs)


# --- bigarrays' levels and back -----------------------------------------------------------------


class LevelGeometry(NamedTuple):
    """A level in bigarrays' terms, one value per axis in the multiscale's order.

    ``resolution`` is the size of a voxel in the axis's unit; ``offset`` is the voxel index (in
    this level's voxels) at which the level's array starts, exact and possibly fractional.
    """

    resolution: tuple[float, ...]
    offset: tuple[float, ...]

    @property
    def voxel_offset(self) -> tuple[int, ...]:
        """``offset`` to the nearest whole voxel, halves rounded up."""
        return tuple(math.floor(o + 0.5) for o in self.offset)


def level_geometry(multiscale: Multiscale, level: int) -> LevelGeometry:
    """Resolution and offset of ``level`` (0 the finest): the formulas of the module docstring,
    after the multiscale's own transforms are applied to the level's."""
    if not 0 <= level < len(multiscale.datasets):
        raise ScaleNotFoundError(
            f"level {level} does not exist; the multiscale has {len(multiscale.datasets)} "
            f"(0 to {len(multiscale.datasets) - 1})"
        )
    dataset = multiscale.datasets[level]
    n = len(multiscale.axes)
    affine: Affine = (dataset.scale, dataset.translation or (0.0,) * n)
    for transform in multiscale.coordinate_transformations:
        affine = _then(affine, transform.type, transform.values)
    scale, translation = affine
    shift = [0.5 if axis.type == "space" else 0.0 for axis in multiscale.axes]
    offset = tuple(t / s - h for t, s, h in zip(translation, scale, shift, strict=True))
    return LevelGeometry(scale, offset)


def _normalised_axes(axes: Sequence[Axis]) -> tuple[Axis, ...]:
    out = []
    for i, axis in enumerate(axes):
        try:
            unit = None if axis.unit is None else ngff_unit(axis.unit)
        except InvalidMetadataError as exc:
            raise InvalidMetadataError(exc.detail, field=f"axes[{i}].unit") from None
        known = UNITS_OF.get(axis.type or "")
        if unit is not None and known is not None and unit not in known:
            raise InvalidMetadataError(f"{axis.unit!r} is no unit of {axis.type}",
                                       field=f"axes[{i}].unit")  # fmt: skip
        out.append(replace(axis, unit=unit))
    return tuple(out)


def multiscale_for(
    levels: Sequence[tuple[Sequence[float], Sequence[float], str]],
    axes: Sequence[Axis],
    *,
    name: Any = None,
    type: Any = None,
    metadata: Any = None,
) -> Multiscale:
    """The NGFF 0.5 multiscale of ``levels``, each ``(resolution, voxel_offset, path)`` given per
    axis in the order of ``axes`` (resolution in each axis's unit), finest first.

    The inverse of :func:`level_geometry`: ``level_geometry(multiscale_for(levels, axes), k)``
    gives back level ``k``'s resolution and offset. Units are written by their NGFF names.
    """
    axes = _normalised_axes(axes)
    _check_axes(axes, "axes", strict=True)
    n = len(axes)
    shift = [0.5 if axis.type == "space" else 0.0 for axis in axes]
    datasets = []
    for k, (resolution, offset, path) in enumerate(levels):
        scale = _vector(list(resolution), n, f"levels[{k}].resolution", positive=True)
        start = _vector(list(offset), n, f"levels[{k}].voxel_offset")
        translation = tuple((o + h) * s for o, h, s in zip(start, shift, scale, strict=True))
        datasets.append(Dataset(_check_path(path, f"levels[{k}].path"), scale, translation))
    if not 1 <= len(datasets) <= MAX_LEVELS:
        raise InvalidMetadataError(f"{len(datasets)} levels; expected 1 to {MAX_LEVELS}",
                                   field="levels")  # fmt: skip
    paths = [d.path for d in datasets]
    if len(set(paths)) != len(paths):
        raise InvalidMetadataError(f"level paths {paths} are not unique", field="levels")
    _check_order(datasets, "levels")
    return Multiscale(axes, tuple(datasets), name=name, type=type, metadata=metadata)
