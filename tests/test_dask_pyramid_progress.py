"""Pyramids built on Dask report the cluster's progress, as ``cp --dask`` does.

Oracle: the local run's bar. The same pyramid built on a process-based LocalCluster and on
Dask's threaded scheduler opens a bar of the same total (one unit per block) and advances it
once per block as the scheduler reports the block done; the bar stays silent with
``progress=False``, with ``-q``, and when standard error is not a terminal.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from distributed import Client

import bigarrays as ba
from bigarrays.adapters import dask_run
from bigarrays.cli import main
from bigarrays.ops import pyramid

SHAPE = (64, 64, 32)


class Bars:
    """Every bar opened, wrapping the real one: (total, description, drawn) and the advances."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.opened: list[tuple[int, str, bool]] = []
        self.advanced = 0
        for module in (dask_run, pyramid):
            monkeypatch.setattr(module, "progress_bar", self._bar(module.progress_bar))

    def _bar(self, real: Any) -> Any:
        @contextmanager
        def bar(total: int, description: str, enabled: bool | None) -> Iterator[Any]:
            with real(total, description, enabled) as advance:
                self.opened.append((total, description, advance is not None))
                if advance is None:
                    yield None
                    return

                def tick() -> None:
                    self.advanced += 1
                    advance()

                yield tick

        return bar

    def clear(self) -> None:
        self.opened, self.advanced = [], 0


class _Terminal(io.StringIO):
    """Standard error as a terminal shows it: the bar draws into it."""

    def isatty(self) -> bool:
        return True


def _volume(path: Path) -> ba.BigArray:
    vol = ba.create(path, shape=SHAPE, dtype="uint8", chunks=(8, 8, 8), voxel_offset=(-3, 5, 0),
                    progress=False)  # fmt: skip
    vol[...] = np.random.default_rng(16).integers(1, 255, SHAPE, dtype=np.uint8)
    return vol


def _build(vol: ba.BigArray, scheduler: Any, progress: bool | None) -> None:
    # A small memory target: many blocks, so the bar has steps to show.
    vol.downsample((2, 2, 2), num_mips=2, memory_target=64 << 10, scheduler=scheduler,
                   progress=progress)  # fmt: skip


def test_a_pyramid_on_dask_advances_the_bar_once_per_block_as_the_local_run_does(
    tmp_path: Path, dask_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    bars = Bars(monkeypatch)
    _build(_volume(tmp_path / "local"), None, True)
    ((blocks, description, drawn),) = bars.opened
    assert drawn
    assert bars.advanced == blocks > 1
    assert description.startswith("pyramid of ")
    for where, scheduler in (("cluster", dask_client), ("threads", "threads")):
        bars.clear()
        _build(_volume(tmp_path / where), scheduler, True)
        assert bars.opened == [(blocks, description.replace("local", where), True)]
        assert bars.advanced == blocks
    bars.clear()
    _build(_volume(tmp_path / "quiet"), dask_client, False)
    assert [drawn for _, _, drawn in bars.opened] == [False]
    assert bars.advanced == 0


def test_downsample_dask_shows_a_bar_on_a_terminal_only(
    tmp_path: Path, dask_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    bars = Bars(monkeypatch)
    address = dask_client.scheduler.address
    url = str(_volume(tmp_path / "vol").url)
    command = ["downsample", url, "--factor", "2,2,2", "--mips", "2", "--memory", "16K",
               "--overwrite", "--dask", address]  # fmt: skip
    assert main(command) == 0  # standard error is captured, so not a terminal
    assert [drawn for _, _, drawn in bars.opened] == [False]
    monkeypatch.setattr(sys, "stderr", _Terminal())
    bars.clear()
    assert main(command) == 0
    ((blocks, _, drawn),) = bars.opened
    assert drawn
    assert bars.advanced == blocks >= 64
    bars.clear()
    assert main([*command, "-q"]) == 0
    assert [drawn for _, _, drawn in bars.opened] == [False]
    assert bars.advanced == 0
    local = _volume(tmp_path / "local")
    local.downsample((2, 2, 2), num_mips=2)
    for k in (1, 2):  # and the levels are the local run's
        np.testing.assert_array_equal(ba.open(url, mip=k)[...], local.at_mip(k)[...])


def test_a_memory_or_zip_pyramid_is_refused_on_worker_processes(
    dask_client: Client, tmp_path: Path
) -> None:
    """Worker processes would write their levels into stores of their own, lost: refused
    before any level is added, as ``cp --dask`` refuses them."""
    from bigarrays.errors import UnsupportedError

    for url in ("memory://pyramid-on-dask", tmp_path / "v.zip"):
        vol = ba.create(url, shape=(64, 64, 64), dtype="uint8", chunks=(32, 32, 32))
        vol[...] = 1
        with pytest.raises(UnsupportedError, match="cannot be shared by the worker processes"):
            vol.downsample(num_mips=1, scheduler=dask_client)
        assert vol.mips == 1
        vol.downsample(num_mips=1, scheduler="threads")  # in this process: fine
        assert vol.mips == 2
        vol.close()
