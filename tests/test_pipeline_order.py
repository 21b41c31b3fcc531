"""The engine walks a source's chunks in the order they lie in its arrays: first axis fastest
for Fortran-ordered sources (precomputed), last axis fastest for C-ordered ones (Zarr)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import bigarrays as ba
from bigarrays.box import Box, ChunkGrid


def test_pieces_in_c_order_are_the_same_pieces_last_axis_fastest() -> None:
    grid = ChunkGrid(origin=(-3, 0, 5), size=(20, 17, 9), chunk=(8, 5, 4))
    box = Box((-1, 2, 5), (15, 17, 13))
    f = list(grid.pieces(box))
    c = list(grid.pieces(box, "C"))
    assert sorted(c) == sorted(f)
    assert [p.chunk_index for p in c] == sorted(p.chunk_index for p in c)
    assert [p.chunk_index[::-1] for p in f] == sorted(p.chunk_index[::-1] for p in f)
    assert list(ChunkGrid((), (), ()).pieces(Box((), ()), "C")) == list(
        ChunkGrid((), (), ()).pieces(Box((), ()))
    )


@pytest.mark.parametrize(("fmt", "order"), [("zarr", "C"), ("precomputed", "F")])
def test_the_engine_reads_and_writes_chunks_in_the_sources_order(
    tmp_path: Path, fmt: str, order: str
) -> None:
    vol = ba.create(tmp_path / "a", shape=(24, 20, 16), dtype="uint8", chunks=(8, 4, 4),
                    format=fmt, threads=1, progress=False)  # fmt: skip
    source = vol.level.source
    assert source.order == order
    seen: list[tuple[int, ...]] = []
    save_view, load_view = source.save_view, source.load_view

    def saving(index: Any, *args: Any) -> None:
        seen.append(tuple(index[:3]))
        save_view(index, *args)

    def loading(index: Any, *args: Any) -> Any:
        seen.append(tuple(index[:3]))
        return load_view(index, *args)

    source.save_view = saving  # type: ignore[method-assign]
    source.load_view = loading  # type: ignore[method-assign]
    model = np.arange(24 * 20 * 16, dtype=np.uint8).reshape(24, 20, 16)
    vol[...] = model
    np.testing.assert_array_equal(vol[...], model)
    half = len(seen) // 2
    assert seen[:half] == seen[half:]
    key = (lambda i: i) if order == "C" else (lambda i: i[::-1])
    assert seen[:half] == sorted(seen[:half], key=key)
    assert len(set(seen[:half])) == 3 * 5 * 4


@pytest.mark.parametrize("chunks", [1, 2, 3, 6])
def test_a_request_of_few_chunks_hands_the_pool_no_idle_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunks: int
) -> None:
    vol = ba.create(tmp_path / "a", shape=(8, 8, 48), dtype="uint8", chunks=(8, 8, 8),
                    format="zarr", compression="zstd", threads=4, progress=False)  # fmt: skip
    model = np.arange(8 * 8 * 48, dtype=np.uint8).reshape(8, 8, 48)
    vol[...] = model
    reader = ba.open(tmp_path / "a", threads=4)
    assert reader.level.source.inline_chunks == 1
    executor = reader._engine.executor
    assert executor is not None
    submitted: list[object] = []
    submit = executor.submit

    def counting(*args: Any, **kwargs: Any) -> Any:
        submitted.append(args[0])
        return submit(*args, **kwargs)

    monkeypatch.setattr(executor, "submit", counting)
    box = np.s_[:, :, 0 : 8 * chunks]
    np.testing.assert_array_equal(reader[box], model[box])
    # The caller is one of the workers.
    assert len(submitted) == min(4, chunks) - 1
