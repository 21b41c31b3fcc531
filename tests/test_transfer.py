"""The seam that the local conversion and ``cp --dask`` share (``bigarrays.transfer``).

Oracle: ``convert_format``. A dataset written block by block through :func:`new_dataset` and
finished by its callable holds the same objects, byte for byte, as the conversion leaves; it is
no dataset until then, and its writer crosses a pickle without any way to write the root.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

import bigarrays as ba
from bigarrays.convert import convert_format
from bigarrays.errors import DatasetNotFoundError, InvalidArgumentError, InvalidInfoError
from bigarrays.formats.detect import detect
from bigarrays.stores import open_store
from bigarrays.transfer import BlockReader, check_conversion, new_dataset, open_source


def _objects(path: Path) -> dict[str, bytes]:
    store = open_store(path, read_only=True)
    return {key: store.get(key) or b"" for key in sorted(store.list(""))}


@pytest.fixture
def source(tmp_path: Path) -> Path:
    vol = ba.create(tmp_path / "src", shape=(40, 30, 12), dtype="uint16", chunks=(16, 16, 8),
                    voxel_offset=(-5, 7, 1), progress=False)  # fmt: skip
    vol[...] = np.random.default_rng(5).integers(1, 9000, vol.shape).astype("uint16")
    vol.downsample((2, 2, 1), num_mips=1)
    return tmp_path / "src"


@pytest.mark.parametrize("format", ["zarr", "zarr2", "precomputed"])
def test_blocks_written_through_the_seam_equal_the_conversion(
    tmp_path: Path, source: Path, format: str
) -> None:
    convert_format(source, tmp_path / "oracle", format, chunks=(8, 8, 4), progress=False)
    reader = BlockReader(open_source(open_store(source, read_only=True)), threads=2)
    plans = [p.__class__(p.size, p.voxel_offset, p.resolution, (8, 8, 4)) for p in reader.plans]
    target = open_store(tmp_path / "out")
    writer, finish = new_dataset(target, format, plans, reader.dataset.dtype, reader.channels)
    writer = pickle.loads(pickle.dumps(writer))  # as a worker gets it
    assert writer.unit(0) == (8, 8, 4)
    assert reader.unit(0) == (16, 16, 8)
    for mip, plan in enumerate(plans):
        writer.write(mip, plan.bounds, reader.read(mip, plan.bounds), plan.voxel_offset)
    with pytest.raises(DatasetNotFoundError):
        detect(open_store(tmp_path / "out", read_only=True))  # no root metadata yet
    finish()
    writer.close()
    reader.close()
    assert _objects(tmp_path / "out") == _objects(tmp_path / "oracle")


def test_bad_conversion_options_are_refused_before_anything_opens() -> None:
    assert check_conversion("zarr", [8, 8, 4], None) == (8, 8, 4)
    with pytest.raises(InvalidArgumentError, match="format must be one of"):
        check_conversion("n5", None, None)
    with pytest.raises(InvalidArgumentError, match="threads"):
        check_conversion("zarr", None, 0)
    with pytest.raises(InvalidInfoError, match="three positive sizes"):
        check_conversion("zarr", (8, 8), None)
