"""What a new user meets on the command line: info's compression ratio, cp's summary and bar,
the demo's suggestions, and the package an fsspec protocol is missing."""

from __future__ import annotations

import os
import re
import select
import shlex
import struct
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest
import tifffile

import bigarrays as ba
from bigarrays.cli import main
from bigarrays.stores.fsspec import FsspecDependencyError

ROOT = Path(__file__).resolve().parents[1]


def _ratio(out: str) -> float:
    found = re.search(r"stored\s+\d+ objects, [^,]+, ([\d.]+)x smaller", out)
    assert found, out
    return float(found.group(1))


def test_info_ratio_counts_the_chunks_stored(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Two chunks of noise in a volume of 64 chunks: gzip saves nothing on them, whatever the
    size of the volume (the ratio was 32x, the volume's size over the bytes stored)."""
    url = tmp_path / "noise"
    vol = ba.create(url, shape=(256, 256, 256), chunks=(64, 64, 64), compression="gzip")
    rng = np.random.default_rng(0)
    vol[0:128, 0:64, 0:64] = rng.integers(0, 256, (128, 64, 64), dtype=np.uint8)
    assert main(["info", str(url)]) == 0
    assert _ratio(capsys.readouterr().out) == pytest.approx(1.0, abs=0.01)

    vol[0:128, 0:64, 0:64] = 3  # the same two chunks, now all one value
    vol[250:256, 0:5, 0:64] = 3  # and an edge chunk, counted by its own (clipped) box
    assert main(["info", str(url)]) == 0
    assert _ratio(capsys.readouterr().out) > 50


def test_cp_ends_with_a_summary(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = tmp_path / "src"
    vol = ba.create(src, shape=(64, 64, 32), chunks=(32, 32, 32))
    vol[...] = 1
    assert main(["cp", str(src), str(tmp_path / "dst")]) == 0
    out = capsys.readouterr().out.strip()
    stored = sum(p.stat().st_size for p in src.rglob("*") if p.is_file())
    found = re.fullmatch(r"copied 5 objects, (.+) in ([\d.]+) s \(([\d.]+|inf) MiB/s\)", out)
    assert found, out
    assert found.group(1) == f"{stored / 1024:.1f} KiB"
    assert main(["cp", str(src), str(tmp_path / "dst2"), "-q"]) == 0
    assert capsys.readouterr().out == ""


def _run_on_a_terminal(columns: int, *args: str) -> str:
    """The command's output on a pseudo-terminal ``columns`` wide, escape sequences removed."""
    import fcntl
    import pty
    import termios

    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "TERM")}
    env["TERM"] = "xterm"
    pid, fd = pty.fork()
    if pid == 0:  # the child: run the command on the terminal
        os.execve(sys.executable, [sys.executable, "-m", "bigarrays.cli", *args], env)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    out, deadline = b"", time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1)
        if not ready:
            continue
        try:
            data = os.read(fd, 65536)
        except OSError:  # the child ended and closed the terminal
            break
        if not data:
            break
        out += data
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, out
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.decode())


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")
@pytest.mark.parametrize(("columns", "folder"), [(70, "a-long-folder-name-" * 3), (300, "f")])
def test_cp_progress_bar_spans_the_terminal(tmp_path: Path, columns: int, folder: str) -> None:
    """A long description on a narrow terminal is cut before the counts are; a short one on a
    wide terminal leaves the bar the rest of the line."""
    src = tmp_path / folder / "src"
    src.parent.mkdir()
    vol = ba.create(src, shape=(64, 64, 64), chunks=(16, 16, 16))  # 64 chunks: a bar
    vol[...] = 1
    text = _run_on_a_terminal(columns, "cp", str(src), str(tmp_path / "dst"))
    frames = [f for f in re.split(r"[\r\n]", text) if "/65" in f]
    assert frames, text
    last = frames[-1]
    assert "65/65" in last  # the counts are never what a narrow terminal cuts
    assert len(last) >= columns - 1, last  # the line fills the terminal
    assert "copied 65 objects" in text


def test_tifffile_is_a_core_dependency() -> None:
    """The demo suggests a .tif cutout: it must work on the default install."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert any(re.match(r"tifffile\b", dep) for dep in project["dependencies"])


def test_the_demos_suggested_cutout_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    assert main(["demo", str(tmp_path / "demo"), "--shape", "130,70,40", "-q"]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if "bigarrays cutout" in ln)
    args = line.split("bigarrays ", 1)[1].split()
    assert args[2] == "0:130,0:70,20:21"  # a plane inside the volume, whatever its shape
    monkeypatch.chdir(tmp_path)
    assert main(args) == 0
    page = tifffile.imread(tmp_path / "slice.tif").squeeze(0)
    vol = ba.open(tmp_path / "demo" / "em")
    np.testing.assert_array_equal(page, vol[:, :, 20].T)


def test_fsspec_names_the_missing_backend_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "paramiko", None)  # as if it were not installed
    monkeypatch.delitem(sys.modules, "fsspec.implementations.sftp", raising=False)
    import fsspec

    registered = sys.modules["fsspec.registry"]._registry  # where fsspec keeps imported classes
    monkeypatch.delitem(registered, "sftp", raising=False)
    assert "sftp" in fsspec.available_protocols()
    with pytest.raises(FsspecDependencyError, match=r"needs the package 'paramiko'") as caught:
        ba.open("fsspec+sftp://127.0.0.1/vol")
    assert caught.value.package == "paramiko"
    assert "'fsspec'" not in str(caught.value)


def test_bench_readme_smoke_test_is_small() -> None:
    """The smoke test runs the main table alone on a small volume (the default sections took
    96 s), with plain ``python``."""
    text = (ROOT / "bench" / "README.md").read_text()
    line = next(ln for ln in text.splitlines() if "compare.py" in ln and "smoke test" in ln)
    words = shlex.split(line.split("#", 1)[0])
    assert words[:2] == ["python", "bench/compare.py"]
    assert int(words[words.index("--size") + 1]) <= 64
    assert words[words.index("--sections") + 1] == ""
    assert words[words.index("--repeat") + 1] == "1"


def test_demo_suggestion_runs_as_a_process(tmp_path: Path) -> None:
    """The console script as a user runs it (no import of the test's environment)."""
    done = subprocess.run(
        [sys.executable, "-m", "bigarrays.cli", "demo", str(tmp_path / "d"), "--shape",
         "64,64,16", "-q"], capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "0:64,0:64,8:9 -o slice.tif" in done.stdout
