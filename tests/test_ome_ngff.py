"""OME-NGFF multiscales: parsing 0.2-0.5, writing 0.5, and the level geometry both ways.

Oracles: ome-zarr-models validates what we write (its 0.5 model, and the whole image group with
its arrays), and ome-zarr-py writes the documents we read and opens the groups we write.
"""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st
from ome_zarr.format import FormatV04, FormatV05
from ome_zarr.io import parse_url
from ome_zarr.reader import Reader
from ome_zarr_models.v05.image import Image, ImageAttrs

from bigarrays.errors import (
    InvalidInfoError,
    InvalidMetadataError,
    ScaleNotFoundError,
    UnsupportedError,
)
from bigarrays.formats.zarr.ome import (
    Axis,
    Multiscale,
    OmeAttributes,
    has_multiscales,
    level_geometry,
    multiscale_for,
)
from bigarrays.formats.zarr.units import SPACE_UNITS, TIME_UNITS, nanometres_per, ngff_unit

with warnings.catch_warnings():  # its default argument is a deprecated class, built at import
    warnings.simplefilter("ignore", DeprecationWarning)
    from ome_zarr.writer import write_image

XYZ_NM = [Axis("z", "space", "nanometer"), Axis("y", "space", "nanometer"),
          Axis("x", "space", "nanometer")]  # fmt: skip


def validate_05(attrs: dict[str, Any]) -> None:
    """ome-zarr-models' 0.5 model accepts the attributes (it raises if not)."""
    ImageAttrs.model_validate(attrs["ome"])


# --- documents written by hand from the spec ----------------------------------------------------

SPEC_05 = {
    "ome": {
        "version": "0.5",
        "multiscales": [
            {
                "name": "example",
                "axes": [
                    {"name": "t", "type": "time", "unit": "millisecond"},
                    {"name": "c", "type": "channel"},
                    {"name": "z", "type": "space", "unit": "micrometer"},
                    {"name": "y", "type": "space", "unit": "micrometer"},
                    {"name": "x", "type": "space", "unit": "micrometer"},
                ],
                "datasets": [
                    {"path": "0", "coordinateTransformations": [
                        {"type": "scale", "scale": [1.0, 1.0, 0.5, 0.5, 0.5]}]},
                    {"path": "1", "coordinateTransformations": [
                        {"type": "scale", "scale": [1.0, 1.0, 1.0, 1.0, 1.0]}]},
                    {"path": "2", "coordinateTransformations": [
                        {"type": "scale", "scale": [1.0, 1.0, 2.0, 2.0, 2.0]},
                        {"type": "translation", "translation": [0, 0, 1.25, 1.25, 1.25]}]},
                ],
                "coordinateTransformations": [
                    {"type": "scale", "scale": [0.1, 1.0, 1.0, 1.0, 1.0]}],
                "type": "gaussian",
                "metadata": {"description": "skimage.transform.pyramid_gaussian",
                             "kwargs": {"downscale": 2, "max_layer": 2}},
                "x-tool": {"kept": True},
            }
        ],
        "omero": {"channels": [{"color": "00FF00", "window": {"start": 0, "end": 255,
                                                              "min": 0, "max": 255}}]},
    },
    "other-tool": {"note": "not OME, kept beside it"},
}  # fmt: skip

SPEC_04 = {
    "multiscales": [
        {
            "version": "0.4",
            "name": "example",
            "axes": [
                {"name": "c", "type": "channel"},
                {"name": "y", "type": "space", "unit": "nanometer"},
                {"name": "x", "type": "space", "unit": "nanometer"},
            ],
            "datasets": [
                {"path": "s0", "coordinateTransformations": [
                    {"type": "scale", "scale": [1, 4, 4]},
                    {"type": "translation", "translation": [0, 2, 2]}]},
                {"path": "s1", "coordinateTransformations": [
                    {"type": "scale", "scale": [1, 8, 8]},
                    {"type": "translation", "translation": [0, 4, 4]}]},
            ],
        }
    ],
    "omero": {"channels": [{"label": "DAPI"}]},
    "labels": ["nuclei"],
    "user-key": [1, 2, 3],
}  # fmt: skip


def test_spec_05_document_reads_and_rewrites_losing_nothing() -> None:
    attrs = OmeAttributes.from_json(SPEC_05, strict=True)
    ms = attrs.multiscales[0]
    assert attrs.version == ms.version == "0.5"
    assert [a.name for a in ms.axes] == ["t", "c", "z", "y", "x"]
    assert ms.axes[0] == Axis("t", "time", "millisecond")
    assert ms.datasets[2].translation == (0.0, 0.0, 1.25, 1.25, 1.25)
    assert ms.type == "gaussian"
    assert ms.extra == {"x-tool": {"kept": True}}
    # The multiscale's own scale applies after each level's: 0.1 ms per time point.
    geometry = level_geometry(ms, 2)
    assert geometry.resolution == (0.1, 1.0, 2.0, 2.0, 2.0)
    # Level 2 centres voxel 0 at 1.25 um: its corner is at 0.25 um, an eighth of a voxel.
    assert geometry.offset == (0.0, 0.0, 0.125, 0.125, 0.125)
    assert geometry.voxel_offset == (0, 0, 0, 0, 0)
    out = attrs.to_json()
    assert out == SPEC_05  # every member, the unknown ones too, survives the rewrite
    validate_05(out)


def test_spec_04_document_moves_under_ome_when_rewritten() -> None:
    attrs = OmeAttributes.from_json(SPEC_04, strict=True)
    ms = attrs.multiscales[0]
    assert attrs.version == ms.version == "0.4"
    assert ms.datasets[0].scale == (1.0, 4.0, 4.0)
    assert level_geometry(ms, 0).offset == (0.0, 0.0, 0.0)  # centre 2 nm = corner 0 nm
    assert level_geometry(ms, 1).offset == (0.0, 0.0, 0.0)
    out = attrs.to_json()
    assert out["user-key"] == [1, 2, 3]
    assert out["ome"]["version"] == "0.5"
    assert out["ome"]["omero"] == SPEC_04["omero"]
    assert out["ome"]["labels"] == ["nuclei"]
    assert "version" not in out["ome"]["multiscales"][0]
    assert "multiscales" not in out
    assert "omero" not in out
    validate_05(out)
    # What we wrote reads back to the same model.
    assert OmeAttributes.from_json(out, strict=True).multiscales[0].datasets == ms.datasets


def test_03_axes_as_names_and_02_without_axes() -> None:
    v03 = {"multiscales": [{"version": "0.3", "axes": ["c", "y", "x"],
                            "datasets": [{"path": "0"}, {"path": "1"}]}]}  # fmt: skip
    ms = OmeAttributes.from_json(v03).multiscales[0]
    assert ms.axes == (Axis("c", "channel"), Axis("y", "space"), Axis("x", "space"))
    assert ms.datasets[1].scale == (1.0, 1.0, 1.0)  # 0.3 carries no scale
    v02 = {"multiscales": [{"version": "0.2", "datasets": [{"path": "0"}]}]}
    ms = OmeAttributes.from_json(v02).multiscales[0]
    assert [a.name for a in ms.axes] == ["t", "c", "z", "y", "x"]
    assert level_geometry(ms, 0).voxel_offset == (0, 0, 0, 0, 0)
    unversioned = {"multiscales": [{"datasets": [{"path": "0"}]}]}
    assert OmeAttributes.from_json(unversioned).multiscales[0].version == "0.2"
    with pytest.raises(InvalidMetadataError, match="version"):
        OmeAttributes.from_json(unversioned, strict=True)


def test_identity_and_lenient_transform_orders() -> None:
    doc = copy.deepcopy(SPEC_04)
    ds = doc["multiscales"][0]["datasets"][0]
    ds["coordinateTransformations"] = [
        {"type": "identity"},
        {"type": "translation", "translation": [0, 0.5, 0.5]},
        {"type": "scale", "scale": [1, 4, 4]},
    ]
    # Translation first, then scale: x -> (x + 0.5) * 4, i.e. scale 4 and translation 2.
    ms = OmeAttributes.from_json(doc).multiscales[0]
    assert ms.datasets[0].scale == (1.0, 4.0, 4.0)
    assert ms.datasets[0].translation == (0.0, 2.0, 2.0)
    with pytest.raises(InvalidMetadataError, match="exactly one scale"):
        OmeAttributes.from_json(doc, strict=True)
    ds["coordinateTransformations"] = [{"type": "identity"}, {"type": "scale", "scale": [1, 4, 4]}]
    assert OmeAttributes.from_json(doc, strict=True).multiscales[0].datasets[0].scale[1] == 4.0


def test_has_multiscales() -> None:
    assert has_multiscales(SPEC_05)
    assert has_multiscales(SPEC_04)
    assert not has_multiscales({"ome": {"version": "0.5", "labels": ["a"]}})
    assert not has_multiscales({"note": 1})


# --- ome-zarr-py as the writer of what we read, and the reader of what we write -----------------


@pytest.mark.parametrize(("zarr_format", "fmt", "attrs_file"),
                         [(3, FormatV05(), "zarr.json"), (2, FormatV04(), ".zattrs")])  # fmt: skip
def test_reads_what_ome_zarr_py_writes(
    tmp_path: Path, zarr_format: int, fmt: Any, attrs_file: str
) -> None:
    group = zarr.open_group(tmp_path / "img.zarr", mode="w", zarr_format=zarr_format)
    data = np.zeros((2, 8, 64, 64), dtype=np.uint16)
    write_image(data, group, axes="czyx", fmt=fmt, storage_options={"chunks": (1, 8, 32, 32)})
    raw = json.loads((tmp_path / "img.zarr" / attrs_file).read_text())
    attrs = OmeAttributes.from_json(raw.get("attributes", raw), strict=True)
    ms = attrs.multiscales[0]
    assert ms.version == fmt.version
    assert [a.type for a in ms.axes] == ["channel", "space", "space", "space"]
    assert len(ms.datasets) > 1
    for k in range(len(ms.datasets)):
        geometry = level_geometry(ms, k)
        assert geometry.resolution == (1.0, 1.0, 2.0**k, 2.0**k)
        # Each level's first corner is half a level-0 voxel below 0: offset 0 to the nearest.
        corner = [o * r for o, r in zip(geometry.offset[1:], geometry.resolution[1:], strict=True)]
        assert corner == [-0.5, -0.5, -0.5]
        assert geometry.voxel_offset == (0, 0, 0, 0)
    validate_05(attrs.to_json())


def test_ome_zarr_py_and_ome_zarr_models_open_what_we_write(tmp_path: Path) -> None:
    axes = [Axis("c", "channel"), *XYZ_NM]
    levels = [((1, 40, 8, 8), (0, -3, -5, 7), "0"), ((1, 40, 16, 16), (0, -3, -3, 3), "1"),
              ((1, 80, 32, 32), (0, -1, -1, 1), "2")]  # fmt: skip
    ms = multiscale_for(levels, axes, name="converted")
    attrs = OmeAttributes((ms,), other={"bigarrays": {"source": "precomputed"}}).to_json()
    path = tmp_path / "out.ome.zarr"
    group = zarr.open_group(path, mode="w", zarr_format=3)
    shapes = [(2, 16, 64, 64), (2, 16, 32, 32), (2, 8, 16, 16)]
    for (_, _, name), shape in zip(levels, shapes, strict=True):
        group.create_array(name, shape=shape, dtype="uint8", dimension_names=["c", "z", "y", "x"])
    group.attrs.update(attrs)

    Image.from_zarr(zarr.open_group(path, mode="r"))  # the whole group: arrays and metadata

    node = next(iter(Reader(parse_url(str(path)))()))
    assert node.metadata["axes"] == [a.to_json() for a in ms.axes]
    assert node.metadata["coordinateTransformations"] == [
        d.to_json()["coordinateTransformations"] for d in ms.datasets
    ]
    assert [tuple(d.shape) for d in node.data] == shapes
    raw = json.loads((path / "zarr.json").read_text())["attributes"]
    back = OmeAttributes.from_json(raw, strict=True)
    assert back.other == {"bigarrays": {"source": "precomputed"}}
    for k, (resolution, offset, _) in enumerate(levels):
        assert level_geometry(back.multiscales[0], k) == (resolution, offset)


# --- the geometry -------------------------------------------------------------------------------


def test_precomputed_levels_land_where_neuroglancer_puts_them() -> None:
    # Neuroglancer places an OME level's voxel 0 corner at translation - scale / 2, and a
    # precomputed level's at voxel_offset * resolution: the two must agree, level by level.
    levels = [((8, 8, 40), (-3, 5, -7), "8_8_40"), ((16, 16, 40), (-1, 3, -7), "16_16_40"),
              ((32, 32, 80), (-1, 1, -3), "32_32_80")]  # fmt: skip
    ms = multiscale_for(levels, XYZ_NM[::-1])
    for dataset, (resolution, offset, _) in zip(ms.datasets, levels, strict=True):
        assert dataset.translation is not None
        ng_corner = [t - s / 2 for t, s in zip(dataset.translation, dataset.scale, strict=True)]
        assert ng_corner == [o * r for o, r in zip(offset, resolution, strict=True)]
    assert ms.datasets[0].translation == (-20.0, 44.0, -260.0)


def test_time_and_channel_take_no_half_voxel() -> None:
    axes = [Axis("t", "time", "second"), Axis("c", "channel"), Axis("y", "space", "um"),
            Axis("x", "space", "um")]  # fmt: skip
    ms = multiscale_for([((0.5, 1, 0.25, 0.25), (4, 0, 0, 0), "0")], axes)
    assert ms.datasets[0].translation == (2.0, 0.0, 0.125, 0.125)
    assert ms.axes[2].unit == "micrometer"
    assert level_geometry(ms, 0) == ((0.5, 1.0, 0.25, 0.25), (4.0, 0.0, 0.0, 0.0))


def test_level_out_of_range() -> None:
    ms = multiscale_for([((8, 8, 8), (0, 0, 0), "0")], XYZ_NM)
    with pytest.raises(ScaleNotFoundError, match="level 1 does not exist"):
        level_geometry(ms, 1)


@st.composite
def pyramids(draw: st.DrawFn) -> tuple[list[Axis], list[tuple[tuple[float, ...], tuple[int, ...],
                                                                 str]]]:  # fmt: skip
    spaces = draw(st.sampled_from([["y", "x"], ["z", "y", "x"]]))
    extra = draw(st.sampled_from([[], ["t"], ["c"], ["t", "c"]]))
    names = extra + spaces
    kinds = {"t": "time", "c": "channel"}
    units = {"t": draw(st.sampled_from([None, "second", "ms"])), "c": None}
    space_unit = draw(st.sampled_from(["nanometer", "nm", "micrometer", "um", None]))
    axes = [Axis(n, kinds.get(n, "space"), units.get(n, space_unit)) for n in names]
    # Binary fractions: an integer mantissa of up to 10 bits times a power of two.
    resolution = [
        draw(st.integers(1, 1023)) * 2.0 ** draw(st.integers(-6, 6)) if n != "c" else 1.0
        for n in names
    ]
    odd_negative = st.integers(0, 2**30).map(lambda m: -(2 * m + 1))
    levels = []
    for k in range(draw(st.integers(1, 6))):
        if k:
            resolution = [r * (1 if n == "c" else draw(st.sampled_from([1, 2])))
                          for r, n in zip(resolution, names, strict=True)]  # fmt: skip
        offset = tuple(
            0 if n == "c" else draw(odd_negative | st.integers(-(2**40), 2**40)) for n in names
        )
        levels.append((tuple(resolution), offset, f"s{k}"))
    return axes, levels


@settings(max_examples=300, deadline=None)
@given(pyramids())
def test_level_geometry_round_trip_is_exact(
    pyramid: tuple[list[Axis], list[tuple[tuple[float, ...], tuple[int, ...], str]]],
) -> None:
    axes, levels = pyramid
    ms = multiscale_for(levels, axes)
    attrs = OmeAttributes((ms,)).to_json()
    validate_05(attrs)
    # Through the JSON text, as a store would hold it.
    back = OmeAttributes.from_json(json.loads(json.dumps(attrs)), strict=True).multiscales[0]
    assert back == ms
    for k, (resolution, offset, _) in enumerate(levels):
        geometry = level_geometry(back, k)
        assert geometry.resolution == resolution
        assert geometry.offset == offset
        assert geometry.voxel_offset == offset


# --- units --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "name", "nm"),
    [("nm", "nanometer", 1.0), ("nanometer", "nanometer", 1.0), ("um", "micrometer", 1e3),
     ("\u00b5m", "micrometer", 1e3), ("\u03bcm", "micrometer", 1e3), ("microns", "micrometer", 1e3),
     ("Micrometres", "micrometer", 1e3), ("mm", "millimeter", 1e6), ("cm", "centimeter", 1e7),
     ("m", "meter", 1e9), ("pm", "picometer", 1e-3), ("\u00c5", "angstrom", 0.1),
     ("Mm", "megameter", 1e15), ("inch", "inch", 25.4e6)],
)  # fmt: skip
def test_length_units(given: str, name: str, nm: float) -> None:
    assert ngff_unit(given) == name
    assert nanometres_per(given) == pytest.approx(nm, rel=1e-15)


def test_unit_tables_are_ngffs_lists() -> None:
    assert len(SPACE_UNITS) == 26
    assert len(TIME_UNITS) == 23
    assert ngff_unit("ms") == "millisecond"
    assert ngff_unit("Ms") == "megasecond"
    assert ngff_unit("min") == "minute"
    assert ngff_unit("hours") == "hour"
    with pytest.raises(InvalidMetadataError, match="not a unit of length"):
        nanometres_per("second")
    with pytest.raises(InvalidMetadataError, match="unknown unit 'furlong'"):
        ngff_unit("furlong")


def test_unknown_unit_kept_leniently_refused_strictly_and_on_write() -> None:
    doc = copy.deepcopy(SPEC_04)
    doc["multiscales"][0]["axes"][1]["unit"] = "\u00b5m"
    ms = OmeAttributes.from_json(doc).multiscales[0]
    assert ms.axes[1].unit == "\u00b5m"  # kept verbatim for rewrite
    assert OmeAttributes.from_json(doc).to_json()["ome"]["multiscales"][0]["axes"][1] == {
        "name": "y", "type": "space", "unit": "\u00b5m"}  # fmt: skip
    with pytest.raises(InvalidMetadataError, match=r"multiscales\[0\]\.axes\[1\]\.unit"):
        OmeAttributes.from_json(doc, strict=True)
    with pytest.raises(InvalidMetadataError, match="unknown unit 'parsecs per fortnight'"):
        multiscale_for(
            [((1, 1), (0, 0), "0")],
            [Axis("y", "space", "parsecs per fortnight"), Axis("x", "space")],
        )
    with pytest.raises(InvalidMetadataError, match="no unit of time"):
        multiscale_for([((1, 1, 1), (0, 0, 0), "0")], [Axis("t", "time", "nm"), *XYZ_NM[1:]])


# --- hostile and malformed documents ------------------------------------------------------------


def _entry(**changes: Any) -> dict[str, Any]:
    entry = copy.deepcopy(SPEC_04["multiscales"][0])
    entry.update(changes)
    return {"multiscales": [entry]}


def _scale(values: Any) -> dict[str, Any]:
    return _entry(datasets=[{"path": "0", "coordinateTransformations": [
        {"type": "scale", "scale": values}]}])  # fmt: skip


def _axes(*spec: tuple[str, str | None]) -> dict[str, Any]:
    axes = [{"name": n, "type": t} for n, t in spec]
    return _entry(axes=axes, datasets=[{"path": "0", "coordinateTransformations": [
        {"type": "scale", "scale": [1.0] * len(axes)}]}])  # fmt: skip


HOSTILE: list[tuple[str, Any, str]] = [
    ("not an object", [1, 2], "expected a JSON object"),
    ("ome not an object", {"ome": "0.5"}, "expected a JSON object"),
    ("multiscales not a list", {"multiscales": {"a": 1}}, "expected a list"),
    ("no datasets", _entry(datasets=[]), "at least 1"),
    ("no axes", {"multiscales": [{"version": "0.4", "datasets": [{"path": "0"}]}]}, "no axes"),
    ("a million axes", _entry(axes=[{"name": "x"}] * 1_000_000), "1000000 axes"),
    ("one axis", _axes(("x", "space")), "1 axes"),
    ("duplicate names", _axes(("x", "space"), ("x", "space")), "not unique"),
    ("four space axes", _axes(*[(n, "space") for n in "wzyx"]), "2 or 3 space axes"),
    ("two time axes", _axes(("t", "time"), ("u", "time"), ("y", "space"), ("x", "space")),
     "2 time axes"),
    ("two channel axes", _axes(("c", "channel"), ("d", "channel"), ("y", "space"),
                               ("x", "space")), "2 channel axes"),
    ("two custom axes", _axes(("a", None), ("b", "angle"), ("y", "space"), ("x", "space")),
     "2 custom axes"),
    ("channel last", _axes(("y", "space"), ("x", "space"), ("c", "channel")), "space axes, last"),
    ("time after channel", _axes(("c", "channel"), ("t", "time"), ("y", "space"), ("x", "space")),
     "time axis comes first"),
    ("axis name not a string", _entry(axes=[{"name": 5}, {"name": "y"}, {"name": "x"}]),
     "non-empty name"),
    ("unit not a string", _entry(axes=[{"name": "c", "type": "channel"}, {"name": "y",
                                 "type": "space", "unit": 1}, {"name": "x", "type": "space"}]),
     "expected a string"),
    ("scale too short", _scale([1, 2]), "list of 3 numbers"),
    ("zero scale", _scale([1, 0, 1]), "positive finite"),
    ("negative scale", _scale([1, -2, 1]), "positive finite"),
    ("NaN scale", _scale([1, float("nan"), 1]), "positive finite"),
    ("infinite scale", _scale([1, float("inf"), 1]), "positive finite"),
    ("400-digit scale", _scale([1, 10**400, 1]), "positive finite"),
    ("boolean scale", _scale([1, True, 1]), "expected a number"),
    ("string scale", _scale([1, "2", 1]), "expected a number"),
    ("no scale", _entry(datasets=[{"path": "0", "coordinateTransformations": [
        {"type": "translation", "translation": [0, 0, 0]}]}]), "no scale"),
    ("no transforms", _entry(datasets=[{"path": "0"}]), "at least 1"),
    ("affine", _entry(datasets=[{"path": "0", "coordinateTransformations": [
        {"type": "affine", "affine": [[1, 0, 0, 0]] * 3}]}]), "'affine'"),
    ("translation of NaN", _entry(datasets=[{"path": "0", "coordinateTransformations": [
        {"type": "scale", "scale": [1, 1, 1]},
        {"type": "translation", "translation": [0, float("nan"), 0]}]}]), "finite number"),
    ("path escapes the group", _entry(datasets=[{"path": "../../secret",
     "coordinateTransformations": [{"type": "scale", "scale": [1, 1, 1]}]}]), "below the group"),
    ("absolute path", _entry(datasets=[{"path": "/etc", "coordinateTransformations": [
        {"type": "scale", "scale": [1, 1, 1]}]}]), "below the group"),
    ("empty path", _entry(datasets=[{"path": "", "coordinateTransformations": [
        {"type": "scale", "scale": [1, 1, 1]}]}]), "relative array path"),
    ("NUL in path", _entry(datasets=[{"path": "a\x00", "coordinateTransformations": [
        {"type": "scale", "scale": [1, 1, 1]}]}]), "printable names"),
    ("coarsest first", _entry(datasets=[
        {"path": "1", "coordinateTransformations": [{"type": "scale", "scale": [1, 8, 8]}]},
        {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 4, 4]}]}]),
     "finest to the coarsest"),
    ("a million transforms", _entry(datasets=[{"path": "0", "coordinateTransformations": [
        {"type": "identity"}] * 1_000_000}]), "1000000 transforms; at most 16"),
    ("top-level transform of the wrong length", _entry(coordinateTransformations=[
        {"type": "scale", "scale": [1, 1]}]), "list of 3 numbers"),
]  # fmt: skip


@pytest.mark.parametrize(("doc", "match"), [(d, m) for _, d, m in HOSTILE],
                         ids=[i for i, _, _ in HOSTILE])  # fmt: skip
def test_hostile_documents_give_typed_errors(doc: Any, match: str) -> None:
    with pytest.raises(InvalidMetadataError, match=match) as info:
        OmeAttributes.from_json(doc)
    assert isinstance(info.value, InvalidInfoError)
    assert isinstance(info.value, ValueError)


def test_errors_name_the_member() -> None:
    with pytest.raises(InvalidMetadataError) as info:
        OmeAttributes.from_json(_scale([1, 0, 1]))
    assert info.value.field == "multiscales[0].datasets[0].coordinateTransformations[0].scale[1]"
    assert str(info.value).startswith("invalid metadata field 'multiscales[0].datasets[0]")


def test_levels_are_bounded_and_the_bad_one_is_named() -> None:
    good = {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 1, 1]}]}
    bad = {"path": "x", "coordinateTransformations": [{"type": "scale", "scale": [1, -1, 1]}]}
    with pytest.raises(InvalidMetadataError, match="1000000 levels; at most 64"):
        OmeAttributes.from_json(_entry(datasets=[good] * 1_000_000))
    with pytest.raises(InvalidMetadataError, match=r"datasets\[63\]"):
        OmeAttributes.from_json(_entry(datasets=[good] * 63 + [bad]))
    with pytest.raises(InvalidMetadataError, match="65 levels; expected 1 to 64"):
        multiscale_for([((8, 8, 8), (0, 0, 0), f"{k}") for k in range(65)], XYZ_NM)


def test_metadata_nested_beyond_the_stack_is_a_typed_error() -> None:
    deep: Any = 0
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(InvalidMetadataError, match="nested too deep"):
        OmeAttributes.from_json(_entry(metadata=deep))


@pytest.mark.parametrize(
    ("doc", "match"),
    [({"ome": {"version": "0.6", "multiscales": []}}, "'0.6' is not read"),
     ({"ome": {"multiscales": []}}, "None is not read"),
     (_entry(version="9.9"), "'9.9' is not read"),
     (_entry(datasets=[{"path": "0", "coordinateTransformations": [
         {"type": "scale", "path": "scales/0"}]}]), "stored in an array")],
)  # fmt: skip
def test_unsupported_versions_and_transforms(doc: Any, match: str) -> None:
    with pytest.raises(UnsupportedError, match=match):
        OmeAttributes.from_json(doc)


@pytest.mark.parametrize(
    ("levels", "match"),
    [([], "0 levels"),
     ([((8, 8, 8), (0, 0, 0), "0"), ((16, 16, 16), (0, 0, 0), "0")], "not unique"),
     ([((16, 16, 16), (0, 0, 0), "0"), ((8, 8, 8), (0, 0, 0), "1")], "finest to the coarsest"),
     ([((8, 8), (0, 0, 0), "0")], "list of 3 numbers"),
     ([((8, 0, 8), (0, 0, 0), "0")], "positive finite"),
     ([((8, 8, 8), (0, 0, 0), "../0")], "below the group")],
)  # fmt: skip
def test_multiscale_for_refuses_what_ngff_does_not_allow(levels: Any, match: str) -> None:
    with pytest.raises(InvalidMetadataError, match=match):
        multiscale_for(levels, XYZ_NM)


def test_multiscale_is_a_value() -> None:
    ms = multiscale_for([((8, 8, 8), (1, 2, 3), "0")], XYZ_NM)
    assert isinstance(ms, Multiscale)
    assert ms == multiscale_for([((8.0, 8.0, 8.0), (1, 2, 3), "0")], XYZ_NM)
