"""The ``bigarrays`` command, run through the installed console script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

import bigarrays as ba
from bigarrays.cli import main, parse_box
from bigarrays.synthetic import synthetic_em


def _script() -> str:
    beside = Path(sys.executable).with_name("bigarrays")
    found = str(beside) if beside.exists() else shutil.which("bigarrays")
    assert found, "the bigarrays console script is not installed (pip install -e .)"
    return found


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.run(
        [_script(), *args], capture_output=True, text=True, env=env, timeout=300, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"bigarrays {' '.join(args)} failed:\n{proc.stderr}")
    return proc


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("bigarrays: error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in proc.stderr


@pytest.fixture
def volume(tmp_path: Path) -> tuple[Path, np.ndarray]:
    path = tmp_path / "vol"
    vol = ba.create(path, shape=(70, 50, 33), chunks=(16, 16, 16), voxel_offset=(-20, 5, 0),
                    resolution=(4, 4, 40))  # fmt: skip
    data = synthetic_em(vol.bounds)
    vol[:, :, :] = data
    return path, data


def test_help_on_every_command() -> None:
    top = run("--help")
    for command in ("info", "create", "cutout", "cp", "demo"):
        assert command in top.stdout
        proc = run(command, "--help")
        assert proc.stdout.startswith(f"usage: bigarrays {command}")
    assert run("--version").stdout.startswith("bigarrays ")


def test_create_then_info(tmp_path: Path) -> None:
    url = (tmp_path / "made").as_uri()
    run("create", url, "--shape", "100,80,60", "--dtype", "uint16", "--chunks", "32,32,16",
        "--offset", "-10,0,5", "--resolution", "8,8,40", "--compression", "gzip")  # fmt: skip
    vol = ba.open(url)
    assert vol.shape == (100, 80, 60)
    assert vol.dtype == np.uint16
    assert vol.chunks == (32, 32, 16)
    assert vol.voxel_offset == (-10, 0, 5)
    assert vol.resolution == (8.0, 8.0, 40.0)
    assert vol.compression == "gzip"

    vol = ba.open(url, mode="r+")
    vol[-10:22, 0:32, 5:21] = 7
    out = run("info", url).stdout
    assert "uint16" in out
    assert "100 x 80 x 60" in out
    assert "[-10:90, 0:80, 5:65)" in out
    assert "32 x 32 x 16" in out
    assert "raw + gzip" in out
    assert "(48 in a 4 x 3 x 4 grid)" in out
    assert "stored       1 objects" in out


def test_create_refuses_existing_and_bad_arguments(volume: tuple[Path, np.ndarray]) -> None:
    path, _ = volume
    proc = run("create", str(path), "--shape", "10,10,10", check=False)
    assert_one_line_error(proc, "already exists", "overwrite")
    proc = run("create", str(path) + "2", "--shape", "10,10", check=False)
    assert_one_line_error(proc, "--shape", "3 integers")
    proc = run("create", str(path) + "3", "--shape", "10,10,10", "--dtype", "complex64",
               check=False)  # fmt: skip
    assert_one_line_error(proc, "complex64", "uint8")
    run("create", str(path), "--shape", "10,10,10", "--overwrite")
    assert ba.open(path).shape == (10, 10, 10)


def test_cutout_npy_and_tif(volume: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    path, data = volume
    npy = tmp_path / "cut.npy"
    run("cutout", str(path), "-25:13,7:40,3:30", "-o", str(npy))
    cut = np.load(npy)
    expected = np.zeros((38, 33, 27), np.uint8)
    expected[5:, :, :] = data[0:33, 2:35, 3:30]  # x from -25: the first 5 lie outside
    np.testing.assert_array_equal(cut, expected)

    tif = tmp_path / "cut.tif"
    run("cutout", str(path), ":,:,10:12", "-o", str(tif))
    pages = tifffile.imread(tif)
    assert pages.shape == (2, 50, 70)  # z, y, x
    np.testing.assert_array_equal(pages, data[:, :, 10:12].T)


def test_cutout_errors(volume: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    path, _ = volume
    proc = run("cutout", str(tmp_path / "nothing"), "0:1,0:1,0:1", "-o", str(tmp_path / "a.npy"),
               check=False)  # fmt: skip
    assert_one_line_error(proc, "no precomputed volume")
    proc = run("cutout", str(path), "0:1,0:1", "-o", str(tmp_path / "a.npy"), check=False)
    assert_one_line_error(proc, "x0:x1,y0:y1,z0:z1")
    proc = run("cutout", str(path), "0:1,0:1,0:1", "-o", str(tmp_path / "a.png"), check=False)
    assert_one_line_error(proc, ".npy or .tif")
    proc = run("cutout", "nosuch://x", "0:1,0:1,0:1", "-o", str(tmp_path / "a.npy"), check=False)
    assert_one_line_error(proc, "nosuch", "file", "memory")


def test_info_of_bad_info_names_the_field(tmp_path: Path) -> None:
    (tmp_path / "bad").mkdir()
    info = {"type": "image", "data_type": "uint8", "num_channels": 1,
            "scales": [{"key": "s", "size": [4, 4, 4], "resolution": [1, 1, 1],
                        "chunk_sizes": [[0, 4, 4]], "encoding": "raw"}]}  # fmt: skip
    (tmp_path / "bad" / "info").write_text(json.dumps(info))
    proc = run("info", str(tmp_path / "bad"), check=False)
    assert_one_line_error(proc, "scales[0].chunk_sizes[0][0]")


def test_demo_small(tmp_path: Path) -> None:
    proc = run("demo", str(tmp_path / "demo"), "--shape", "200,150,70", "--quiet")
    out = proc.stdout
    for step in ("write", "read", "cutouts", "rewrite"):
        assert f"  {step} " in out
    assert "All checks passed" in out
    assert "MiB/s" in out
    vol = ba.open(tmp_path / "demo" / "em")
    np.testing.assert_array_equal(vol[:, :, :], synthetic_em(vol.bounds))


def test_parse_box_uses_bounds_for_empty_sides() -> None:
    bounds = ba.Box((-5, 0, 0), (5, 10, 20))
    assert parse_box(":,2:,:7", bounds) == ba.Box((-5, 2, 0), (5, 10, 7))
    assert parse_box("-4:-1,:,3:4", bounds) == ba.Box((-4, 0, 3), (-1, 10, 4))
    with pytest.raises(ValueError, match="empty range"):
        parse_box(":,:,:-3", bounds)


def test_create_with_encodings_and_compressions(tmp_path: Path) -> None:
    jpeg = tmp_path / "jpeg"
    run("create", str(jpeg), "--shape", "40,30,20", "--encoding", "jpeg", "--jpeg-quality", "93")
    assert ba.open(jpeg).info["scales"][0]["jpeg_quality"] == 93
    png = tmp_path / "png"
    run("create", str(png), "--shape", "40,30,20", "--dtype", "uint16", "--channels", "3",
        "--encoding", "png", "--png-level", "2", "--compression", "zstd")  # fmt: skip
    scale = ba.open(png).info["scales"][0]
    assert (scale["png_level"], scale["bigarrays"]) == (2, {"compression": "zstd"})
    cseg = tmp_path / "cseg"
    run("create", str(cseg), "--shape", "40,30,20", "--dtype", "uint64", "--layer-type",
        "segmentation", "--encoding", "compressed_segmentation", "--cseg-block-size", "4,4,2",
        "--compression", "br", "--compression-level", "9")  # fmt: skip
    scale = ba.open(cseg).info["scales"][0]
    assert scale["compressed_segmentation_block_size"] == [4, 4, 2]
    assert scale["bigarrays"] == {"compression": "br", "compression_level": 9}
    vol = ba.open(cseg, mode="r+")
    vol[...] = 12345678901
    assert (ba.open(cseg)[...] == 12345678901).all()
    # blosc works and warns on one line that viewers cannot read it.
    proc = run("create", str(tmp_path / "blosc"), "--shape", "40,30,20", "--dtype", "uint16",
               "--compression", "blosc", "--blosc-cname", "zstd",
               "--blosc-shuffle", "bit")  # fmt: skip
    assert proc.stderr.strip().startswith("bigarrays: warning: blosc")
    assert "Neuroglancer" in proc.stderr
    assert ba.open(tmp_path / "blosc").info["scales"][0]["bigarrays"]["blosc_cname"] == "zstd"
    # Refusals are one line that names what would fit.
    proc = run("create", str(tmp_path / "bad"), "--shape", "4,4,4", "--dtype", "uint16",
               "--encoding", "jpeg", check=False)  # fmt: skip
    assert_one_line_error(proc, "jpeg", "encodings that fit uint16", "raw, png")
    proc = run("create", str(tmp_path / "bad"), "--shape", "4,4,4", "--compression", "gzip",
               "--compression-level", "12", check=False)  # fmt: skip
    assert_one_line_error(proc, "gzip", "1 to 9")
    proc = run("create", str(tmp_path / "bad"), "--shape", "4,4,4", "--dtype", "uint32",
               "--encoding", "compressed_segmentation", "--cseg-block-size", "8,8",
               check=False)  # fmt: skip
    assert_one_line_error(proc, "--cseg-block-size", "3 integers")
    assert not (tmp_path / "bad").exists()


def test_info_of_an_ome_zarr_image(tmp_path: Path) -> None:
    ba.create(tmp_path / "img.ome.zarr", shape=(2, 8, 16, 16), dims=("c", "z", "y", "x"),
              chunks=(1, 8, 8, 8), resolution=(40, 8, 8), compression="zstd").close()  # fmt: skip
    out = run("info", str(tmp_path / "img.ome.zarr")).stdout
    assert "format       zarr" in out
    assert "axes         c, z, y, x" in out
    assert "shape        2 x 8 x 16 x 16" in out
    assert "resolution   1 x 40 x 8 x 8" in out
    assert "encoding     bytes + zstd" in out


def test_cutout_of_a_zarr_image_takes_one_range_per_axis(tmp_path: Path) -> None:
    url = tmp_path / "img.ome.zarr"
    vol = ba.create(url, shape=(2, 6, 20, 30), dtype="uint16", chunks=(1, 4, 8, 8),
                    dims=("c", "z", "y", "x"))  # fmt: skip
    data = np.arange(2 * 6 * 20 * 30, dtype=np.uint16).reshape(2, 6, 20, 30)
    vol[...] = data
    assert main(["cutout", str(url), "1:2,:,5:15,3:30", "-o", str(tmp_path / "c.npy")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "c.npy"), data[1:2, :, 5:15, 3:30])
    assert main(["cutout", str(url), ":,2:3,:,:", "-o", str(tmp_path / "c.tif"), "-q"]) == 0
    with tifffile.TiffFile(tmp_path / "c.tif") as tif:
        assert tif.series[0].axes == "CZYX"
        np.testing.assert_array_equal(tif.asarray(), data[:, 2:3])
    assert main(["cutout", str(url), "0:1,0:1,0:1", "-o", str(tmp_path / "bad.npy")]) == 1
