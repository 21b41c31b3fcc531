"""A stream refused before its first frame leaves nothing of the dataset it created, and never
touches a dataset (or a file) that was there before."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import bigarrays as ba
from bigarrays.errors import BigArraysError, InvalidArgumentError, StoreError
from bigarrays.stores import open_store
from bigarrays.stores.zip import ZipStore

FRAME = (40, 24)
OPTIONS = {"axis": "z", "shape": FRAME, "dtype": "uint16", "chunks": (16, 16, 8)}


def _everything(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


@pytest.mark.parametrize(
    "name", ["folder", "new/deep/folder", "run.zip", "new/run.zip", "lmdb:db.lmdb", "arr.zarr"]
)
def test_a_stream_refused_at_open_leaves_nothing(tmp_path: Path, name: str) -> None:
    url = f"lmdb://{tmp_path}/{name[5:]}" if name.startswith("lmdb:") else str(tmp_path / name)
    options: dict[str, object] = dict(OPTIONS)
    if name.endswith(".zarr"):
        options.update(dims=("z", "y", "x"), chunks=(8, 16, 16))
    with pytest.raises(InvalidArgumentError, match="region"):
        ba.stream(url, region={"q": 1}, **options)
    assert _everything(tmp_path) == []


def test_a_store_that_refuses_at_open_leaves_no_zip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: ZipStore, *, flush: bool = True) -> None:
        raise StoreError(f"cannot flush {self.path}: Input/output error")

    monkeypatch.setattr(ZipStore, "checkpoint", refuse)
    with pytest.raises(StoreError, match="Input/output"):
        ba.stream(str(tmp_path / "run.zip"), fsync=True, **OPTIONS)
    assert _everything(tmp_path) == []


def test_a_refused_pyramid_leaves_nothing(tmp_path: Path) -> None:
    # Level 1 pools 2 planes along z; chunks 3 deep would cut its cells.
    with pytest.raises(InvalidArgumentError, match="divide"):
        ba.stream(str(tmp_path / "img.ome.zarr"), axis="z", shape=(24, 40), dtype="uint16",
                  dims=("z", "y", "x"), chunks=(3, 16, 16), mips=1, factor=(2, 2, 2))  # fmt: skip
    assert _everything(tmp_path) == []


def test_a_folder_that_was_there_keeps_its_other_files(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("sample 7")
    with pytest.raises(InvalidArgumentError):
        ba.stream(str(tmp_path / "run"), region={"q": 1}, **OPTIONS)
    assert _everything(tmp_path) == ["run", "run/notes.txt"]


def test_a_memory_dataset_refused_at_open_is_deleted() -> None:
    url = "memory://stream-discard"
    with pytest.raises(InvalidArgumentError):
        ba.stream(url, region={"q": 1}, **OPTIONS)
    assert list(open_store(url).list("")) == []


@pytest.mark.parametrize("name", ["folder", "run.zip"])
def test_a_dataset_that_was_there_is_never_deleted(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    frames = np.arange(np.prod(FRAME) * 8, dtype=np.uint16).reshape(8, *FRAME)
    with ba.stream(str(path), **OPTIONS) as s:
        for f in frames:
            s.append(f)
    before = _everything(tmp_path)
    with pytest.raises(InvalidArgumentError):
        ba.stream(str(path), resume=True, region={"q": 1}, **OPTIONS)
    assert _everything(tmp_path) == before
    np.testing.assert_array_equal(ba.open(str(path))[...], np.moveaxis(frames, 0, 2))


@pytest.mark.parametrize(
    ("name", "refused"),
    [
        ("run", {"region": {"q": 1}}),
        ("run", {"sharding": True}),  # a sharded grid without max_shape cannot grow
        ("run.zip", {"region": {"y": slice(0, 5)}}),
        ("img.ome.zarr", {"mips": 1, "factor": (2, 2, 2), "chunks": (3, 16, 16)}),
    ],
)
def test_overwrite_keeps_the_old_dataset_when_the_stream_is_refused(
    tmp_path: Path, name: str, refused: dict[str, object]
) -> None:
    """overwrite=True deletes the old dataset only once nothing the options decide can refuse
    the stream any more."""
    path = tmp_path / name
    options: dict[str, object] = dict(OPTIONS)
    if name.endswith(".zarr"):
        options.update(shape=(24, 40), dims=("z", "y", "x"), chunks=(8, 16, 16))
    frame = np.arange(np.prod(options["shape"]), dtype=np.uint16).reshape(options["shape"])
    with ba.stream(str(path), **options) as s:
        for i in range(8):
            s.append(frame + i)
    before = {p: p.read_bytes() for p in path.rglob("*") if p.is_file()} if path.is_dir() else (
        {path: path.read_bytes()})  # fmt: skip
    with pytest.raises(BigArraysError):
        ba.stream(str(path), overwrite=True, **{**options, **refused})
    after = {p: p.read_bytes() for p in path.rglob("*") if p.is_file()} if path.is_dir() else (
        {path: path.read_bytes()})  # fmt: skip
    assert after == before
    assert ba.open(str(path)).shape[0 if name.endswith(".zarr") else 2] == 8
    assert list(tmp_path.iterdir()) == [path]


def test_overwrite_replaces_the_old_dataset_once_the_stream_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "run"
    with ba.stream(str(path), **OPTIONS) as s:
        s.append(np.ones((*FRAME, 8), np.uint16))
    with ba.stream(str(path), overwrite=True, **OPTIONS) as s:
        s.append(np.full(FRAME, 7, np.uint16))
    np.testing.assert_array_equal(ba.open(str(path))[...], np.full((*FRAME, 1), 7, np.uint16))


def test_a_zarr_stream_along_an_unnamed_axis_is_refused_before_anything_is_made(
    tmp_path: Path,
) -> None:
    with pytest.raises(InvalidArgumentError, match="dims="):
        ba.stream(str(tmp_path / "a.zarr"), axis="t", shape=FRAME, dtype="uint16")
    assert _everything(tmp_path) == []
    with ba.stream(str(tmp_path / "a.zarr"), axis=0, shape=FRAME, dtype="uint16") as s:
        s.append(np.ones(FRAME, np.uint16))
    assert ba.open(str(tmp_path / "a.zarr")).shape == (1, *FRAME)
