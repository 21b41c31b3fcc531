"""Whole-dataset conversion between precomputed and (OME-)Zarr (``bigarrays cp --format``).

Oracles: zarr-python reads the Zarr we write, ome-zarr-models validates its NGFF metadata,
ome-zarr-py writes an image we convert, and TensorStore reads the precomputed we make of it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

import bigarrays as ba
from bigarrays.convert import LevelPlan, _tiles, convert_format
from bigarrays.errors import DatasetExistsError, UnsupportedError
from bigarrays.formats.zarr.ome import Axis, level_geometry, multiscale_for

#: Three scales: anisotropic, odd negative offsets, chunks that do not divide the sizes.
SCALES = [
    # (size, voxel_offset, resolution, chunks)
    ((37, 29, 11), (-7, -13, -3), (4.5, 4.5, 40.0), (16, 8, 4)),
    ((19, 15, 11), (-3, -7, -3), (9.0, 9.0, 40.0), (8, 8, 4)),
    ((10, 8, 6), (-1, -3, -1), (18.0, 18.0, 80.0), (8, 4, 4)),
]


def _rng_block(shape: tuple[int, ...], dtype: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(1, 200, size=shape).astype(dtype)


def make_precomputed(
    path: Path, channels: int, dtype: str = "uint16", layer_type: str = "image",
    encoding: str = "raw",
) -> list[np.ndarray]:  # fmt: skip
    """A three-scale volume at ``path``; returns each scale's voxels ``(x, y, z[, c])``."""
    size, offset, res, chunks = SCALES[0]
    with ba.create(path, shape=size, dtype=dtype, chunks=chunks, voxel_offset=offset,
                   resolution=res, num_channels=channels, layer_type=layer_type,
                   encoding=encoding, compression="gzip") as vol:  # fmt: skip
        info = vol.info
    scale0 = info["scales"][0]
    for size, offset, res, chunks in SCALES[1:]:
        info["scales"].append({
            **scale0, "key": "_".join(f"{r:g}" for r in res), "size": list(size),
            "voxel_offset": list(offset), "resolution": list(res), "chunk_sizes": [list(chunks)],
        })  # fmt: skip
    (path / "info").write_text(json.dumps(info))
    truth = []
    for mip, (size, _, _, _) in enumerate(SCALES):
        shape = size + ((channels,) if channels > 1 else ())
        data = _rng_block(shape, dtype, mip)
        with ba.open(path, mode="r+", mip=mip) as vol:
            vol[...] = data
        truth.append(data)
    return truth


@pytest.mark.parametrize("channels", [1, 3])
def test_precomputed_to_ome_zarr_and_back_keeps_voxels_and_placement(
    tmp_path: Path, channels: int
) -> None:
    from ome_zarr_models.v05.image import Image

    src, ome, back = tmp_path / "src", tmp_path / "img.ome.zarr", tmp_path / "back"
    truth = make_precomputed(src, channels)
    result = convert_format(src, ome, "zarr", progress=False)
    assert result.levels == 3

    group = zarr.open_group(str(ome), mode="r")
    Image.from_zarr(group)  # validates the whole image: metadata and arrays
    multiscale = group.attrs["ome"]["multiscales"][0]
    names = [a["name"] for a in multiscale["axes"]]
    assert names == (["c", "z", "y", "x"] if channels > 1 else ["z", "y", "x"])
    lead = 1 if channels > 1 else 0
    space = [Axis(n, "space", "nanometer") for n in "zyx"]
    axes = ([Axis("c", "channel")] if lead else []) + space
    for mip, (_, offset, res, _) in enumerate(SCALES):
        stored = np.asarray(group[str(mip)][...])
        expected = np.transpose(truth[mip], (3, 2, 1, 0)) if lead else truth[mip].T
        np.testing.assert_array_equal(stored, expected)  # zarr-python sees C-ordered (c)zyx
        # The placement is what the ome.py formulas give for this scale.
        level = multiscale_for([((1.0,) * lead + res[::-1], (0,) * lead + offset[::-1], "0")],
                               axes).datasets[0]  # fmt: skip
        transforms = {t["type"]: t[t["type"]] for t in
                      multiscale["datasets"][mip]["coordinateTransformations"]}  # fmt: skip
        assert transforms["scale"] == list(level.scale)
        assert transforms["translation"] == list(level.translation or ())

    convert_format(ome, back, "precomputed", progress=False)
    for mip, (size, offset, res, chunks) in enumerate(SCALES):
        with ba.open(back, mip=mip) as vol:
            assert vol.shape[:3] == size
            assert vol.voxel_offset == offset
            assert vol.resolution == res
            assert vol.chunks == chunks
            assert vol.num_channels == channels
            assert vol.encoding == "raw"
            np.testing.assert_array_equal(vol[...], truth[mip])


def test_precomputed_to_zarr2_and_back(tmp_path: Path) -> None:
    from ome_zarr_models.v04.image import Image

    src, img, back = tmp_path / "src", tmp_path / "img.zarr", tmp_path / "back"
    truth = make_precomputed(src, 2, dtype="float32")
    convert_format(src, img, "zarr2", compression="blosc", progress=False)
    group = zarr.open_group(str(img), mode="r", zarr_format=2)
    Image.from_zarr(group)
    assert group.attrs["multiscales"][0]["version"] == "0.4"
    np.testing.assert_array_equal(group["1"][...], np.transpose(truth[1], (3, 2, 1, 0)))
    convert_format(img, back, "precomputed", compression="none", progress=False)
    for mip, (_, offset, res, _) in enumerate(SCALES):
        with ba.open(back, mip=mip) as vol:
            assert (vol.voxel_offset, vol.resolution, vol.compression) == (offset, res, None)
            np.testing.assert_array_equal(vol[...], truth[mip])


@pytest.mark.parametrize("fmt", ["zarr", "zarr2"])
def test_ome_zarr_py_reads_every_level_we_write(tmp_path: Path, fmt: str) -> None:
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    src, img = tmp_path / "src", tmp_path / "img.ome.zarr"
    truth = make_precomputed(src, 3)
    convert_format(src, img, fmt, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # it notes that it read 0.4 where it asked for 0.5
        node = next(iter(Reader(parse_url(str(img)))()))
    assert [a["name"] for a in node.metadata["axes"]] == ["c", "z", "y", "x"]
    assert len(node.data) == 3
    for mip, level in enumerate(node.data):
        np.testing.assert_array_equal(np.asarray(level), np.transpose(truth[mip], (3, 2, 1, 0)))


def test_segmentation_becomes_a_plain_uint_array_and_rechunks(tmp_path: Path) -> None:
    src, img = tmp_path / "seg", tmp_path / "seg.ome.zarr"
    truth = make_precomputed(src, 1, dtype="uint32", layer_type="segmentation",
                             encoding="compressed_segmentation")  # fmt: skip
    convert_format(src, img, "zarr", chunks=(32, 16, 8), progress=False)
    array = zarr.open_array(str(img / "0"), mode="r")
    assert array.dtype == np.uint32
    assert array.chunks == (8, 16, 32)  # x, y, z given; Zarr's z, y, x stored
    np.testing.assert_array_equal(array[...], truth[0].T)
    back = tmp_path / "back"
    convert_format(img, back, "precomputed", progress=False)
    with ba.open(back) as vol:
        assert (vol.layer_type, vol.encoding) == ("image", "raw")
        np.testing.assert_array_equal(vol[...], truth[0])
    # Between precomputed volumes (a re-chunking), a segmentation stays one, raw.
    rechunked = tmp_path / "rechunked"
    convert_format(src, rechunked, "precomputed", chunks=(20, 20, 20), progress=False)
    with ba.open(rechunked, mip=2) as vol:
        assert (vol.layer_type, vol.encoding, vol.chunks) == ("segmentation", "raw", (20, 20, 20))
        np.testing.assert_array_equal(vol[...], truth[2])


def test_ome_zarr_py_image_converts_to_precomputed_that_tensorstore_reads(
    tmp_path: Path,
) -> None:
    import tensorstore as ts
    from ome_zarr.io import parse_url

    with warnings.catch_warnings():  # its default argument is a deprecated class
        warnings.simplefilter("ignore", DeprecationWarning)
        from ome_zarr.writer import write_image

    data = _rng_block((2, 12, 40, 56), "uint8", 7)
    root = zarr.open_group(parse_url(str(tmp_path / "py.ome.zarr"), mode="w").store, mode="w")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        write_image(data, root, axes="czyx")
    paths = [d["path"] for d in root.attrs["ome"]["multiscales"][0]["datasets"]]
    levels = len(paths)
    out = tmp_path / "pre"
    convert_format(tmp_path / "py.ome.zarr", out, "precomputed", progress=False)
    with ba.open(out) as vol:
        assert vol.mips == levels >= 2
        assert vol.voxel_offset == (0, 0, 0)  # level 0 centred at 0 rounds to offset 0
    for mip in range(levels):
        spec = {"driver": "neuroglancer_precomputed", "kvstore": f"file://{out}",
                "scale_index": mip}  # fmt: skip
        got = ts.open(spec, read=True).result().read().result()  # (x, y, z, c)
        expected = np.asarray(root[paths[mip]][...])  # (c, z, y, x)
        np.testing.assert_array_equal(np.asarray(got), np.transpose(expected, (3, 2, 1, 0)))


def test_unit_and_half_voxel_offsets_come_back_from_a_hand_written_multiscale(
    tmp_path: Path,
) -> None:
    # A micrometre image whose level 1 starts 3 voxels in: resolution in nm, offset in voxels.
    img = tmp_path / "um.ome.zarr"
    group = zarr.open_group(str(img), mode="w")
    axes = [Axis(n, "space", "micrometer") for n in "zyx"]
    levels = [((0.5, 0.25, 0.25), (0, 0, 0), "0"), ((1.0, 0.5, 0.5), (-3, 3, 1), "1")]
    multiscale = multiscale_for(levels, axes)
    for k, shape in enumerate([(8, 16, 16), (4, 8, 8)]):
        group.create_array(str(k), shape=shape, dtype="int16", chunks=(4, 4, 4))[...] = k + 1
    group.attrs["ome"] = {"version": "0.5", "multiscales": [multiscale.to_json()]}
    out = tmp_path / "pre"
    convert_format(img, out, "precomputed", progress=False)
    with ba.open(out, mip=1) as vol:
        expected = level_geometry(multiscale, 1)
        assert vol.voxel_offset == expected.voxel_offset[::-1] == (1, 3, -3)
        assert vol.resolution == (500.0, 500.0, 1000.0)
        assert int(vol[...].sum()) == 2 * 4 * 8 * 8


def test_existing_destination_is_refused_unless_overwrite(tmp_path: Path) -> None:
    src, img = tmp_path / "src", tmp_path / "img.ome.zarr"
    make_precomputed(src, 1)
    convert_format(src, img, "zarr", progress=False)
    with pytest.raises(DatasetExistsError):
        convert_format(src, img, "zarr", progress=False)
    convert_format(src, img, "zarr", overwrite=True, compression="gzip", progress=False)
    assert zarr.open_array(str(img / "2"), mode="r").shape == SCALES[2][0][::-1]


def test_an_axis_precomputed_has_not_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.zarr"
    with ba.create(path, shape=(2, 4, 4, 4), dims=("t", "z", "y", "x")) as vol:
        vol[...] = 1
    with pytest.raises(UnsupportedError, match="'t'"):
        convert_format(path, tmp_path / "out", "precomputed", progress=False)
    assert not (tmp_path / "out" / "info").exists()


def test_tiles_are_whole_destination_chunks_covering_the_level() -> None:
    plan = LevelPlan((100, 70, 30), (-5, 3, -1), (1.0, 1.0, 1.0), (16, 16, 8))
    tiles = _tiles(plan, plan.chunks, (32, 16, 8), 2)
    covered = np.zeros(plan.size, dtype=int)
    for box in tiles:
        for axis in range(3):
            rel = box.start[axis] - plan.voxel_offset[axis]
            assert rel % plan.chunks[axis] == 0
            assert (box.stop[axis] - plan.voxel_offset[axis]) % plan.chunks[axis] == 0 or (
                box.stop[axis] == plan.bounds.stop[axis]
            )
        sl = tuple(
            slice(a - o, b - o)
            for a, b, o in zip(box.start, box.stop, plan.voxel_offset, strict=True)
        )
        covered[sl] += 1
    assert (covered == 1).all()


def test_small_tiles_and_the_bar_count_every_destination_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from contextlib import contextmanager

    import bigarrays.convert as convert

    seen: dict[str, int] = {"total": 0, "advanced": 0}

    @contextmanager
    def counting_bar(total: int, description: str, enabled: bool | None = None) -> Any:
        seen["total"] = total

        def advance() -> None:
            seen["advanced"] += 1

        yield advance

    monkeypatch.setattr(convert, "TILE_BYTES", 1)  # every tile is one source chunk wide
    monkeypatch.setattr(convert, "progress_bar", counting_bar)
    src, img = tmp_path / "src", tmp_path / "img.zarr"
    truth = make_precomputed(src, 3)
    convert_format(src, img, "zarr2", chunks=(8, 8, 4))
    expected = sum(-(-x // 8) * -(-y // 8) * -(-z // 4) for (x, y, z), *_ in SCALES)
    assert seen == {"total": expected, "advanced": expected}
    for mip in range(3):
        with ba.open(img, mip=mip) as vol:
            np.testing.assert_array_equal(vol[...], np.transpose(truth[mip], (3, 2, 1, 0)))


# --- the command line ---------------------------------------------------------------------------


def _cli(*args: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bigarrays.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def test_cli_cp_format_zarr_end_to_end(tmp_path: Path) -> None:
    src, img = tmp_path / "src", tmp_path / "img.ome.zarr"
    truth = make_precomputed(src, 1)
    done = _cli("cp", src, img, "--format", "zarr", "--chunks", "8,8,8", "-q")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert done.stderr == ""
    with ba.open(img, mip=2) as vol:
        assert vol.dims == ("z", "y", "x")
        assert vol.chunks == (8, 8, 8)
        np.testing.assert_array_equal(vol[...], truth[2].T)
    again = _cli("cp", src, img, "--format", "zarr")
    assert again.returncode == 1
    assert "already exists" in again.stderr
    assert "--overwrite" in again.stderr
    back = _cli("cp", img, tmp_path / "back", "--format", "precomputed", "--compression",
                "zstd", "-q")  # fmt: skip
    assert back.returncode == 0, back.stderr
    with ba.open(tmp_path / "back", mip=1) as vol:
        assert vol.compression == "zstd"
        assert vol.voxel_offset == SCALES[1][1]
        np.testing.assert_array_equal(vol[...], truth[1])


def test_cli_cp_format_errors_and_help(tmp_path: Path) -> None:
    helped = _cli("cp", "--help")
    assert helped.returncode == 0
    text = " ".join(helped.stdout.split())
    assert "--format" in text
    assert "--chunks" in text
    assert "z, y, x" in text
    missing = _cli("cp", tmp_path / "nothing", tmp_path / "out", "--format", "zarr")
    assert missing.returncode == 1
    assert "no dataset" in missing.stderr
    bad = _cli("cp", tmp_path / "a", tmp_path / "b", "--format", "hdf5")
    assert bad.returncode == 2
    src = tmp_path / "src"
    make_precomputed(src, 1)
    v2 = _cli("cp", src, tmp_path / "c", "--format", "zarr2", "--shard")
    assert v2.returncode == 1
    assert "Zarr v2 has no sharding" in v2.stderr
    both = _cli("cp", src, tmp_path / "c", "--format", "zarr", "--unshard", "--shard-size", "1M")
    assert both.returncode == 1
    assert "--shard-size" in both.stderr
    assert not (tmp_path / "c").exists()
    chunks = _cli("cp", src, tmp_path / "c", "--chunks", "8,8,8")
    assert chunks.returncode == 1
    assert "--format" in chunks.stderr


def test_space_axes_are_found_by_name_whatever_their_order(tmp_path: Path) -> None:
    # NGFF fixes no order among space axes: an image stored (y, x, z) converts by its names.
    img = tmp_path / "yxz.ome.zarr"
    group = zarr.open_group(str(img), mode="w")
    axes = [Axis(n, "space", "nanometer") for n in "yxz"]
    multiscale = multiscale_for([((4.0, 2.0, 30.0), (5, -2, 7), "0")], axes)
    data = _rng_block((6, 10, 3), "uint8", 11)  # (y, x, z)
    group.create_array("0", shape=data.shape, dtype="uint8", chunks=(4, 4, 4))[...] = data
    group.attrs["ome"] = {"version": "0.5", "multiscales": [multiscale.to_json()]}
    out = tmp_path / "pre"
    convert_format(img, out, "precomputed", progress=False)
    with ba.open(out) as vol:
        assert vol.shape == (10, 6, 3)
        assert vol.resolution == (2.0, 4.0, 30.0)
        assert vol.voxel_offset == (-2, 5, 7)
        np.testing.assert_array_equal(vol[...], np.transpose(data, (1, 0, 2)))


def test_convert_to_and_from_s3_and_into_a_zip(s3_bucket: str, tmp_path: Path) -> None:
    from bigarrays.cli import main

    src = tmp_path / "src"
    truth = make_precomputed(src, 3)
    url = f"s3://{s3_bucket}/img.ome.zarr"
    assert main(["cp", str(src), url, "--format", "zarr", "--chunks", "16,16,8", "-q"]) == 0
    with ba.open(url, mip=1) as vol:
        assert vol.dims == ("c", "z", "y", "x")
        assert vol.chunks == (1, 8, 16, 16)
        np.testing.assert_array_equal(vol[...], np.transpose(truth[1], (3, 2, 1, 0)))
    packed = tmp_path / "back.zip"
    assert main(["cp", url, str(packed), "--format", "precomputed", "-q"]) == 0
    for mip, (_, offset, res, _) in enumerate(SCALES):
        with ba.open(packed, mip=mip) as vol:
            assert (vol.voxel_offset, vol.resolution, vol.chunks) == (offset, res, (16, 16, 8))
            np.testing.assert_array_equal(vol[...], truth[mip])
