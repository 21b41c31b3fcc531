"""``bigarrays view``: serve, print the URL (and the ssh -L line), stop cleanly on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.error
from pathlib import Path

import numpy as np
import pytest

import bigarrays as ba
from bigarrays.commands.view import tunnel_hint
from network_servers import free_port
from viewer_helpers import fetch, state_of

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _start(args: list[str], env_extra: dict[str, str] | None = None) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("SSH_CONNECTION", None)
    env.update(env_extra or {})
    command = [sys.executable, "-m", "bigarrays.cli", "view", *args]
    pipe = subprocess.PIPE
    return subprocess.Popen(command, stdout=pipe, stderr=pipe, text=True, env=env)


def _stop(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    return proc.returncode, out, err


@pytest.fixture
def volume(tmp_path):
    vol = ba.create(tmp_path / "vol", shape=(64, 64, 16), dtype="uint8", chunks=(32, 32, 16))
    vol[:, :, :] = np.arange(64 * 64 * 16, dtype=np.uint8).reshape((64, 64, 16), order="F")
    vol.close()
    return tmp_path / "vol"


def test_serves_until_ctrl_c_then_exits_0(volume):
    port = free_port()
    proc = _start([str(volume), "--port", str(port), "--layout", "xy"])
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith(f"http://127.0.0.1:{port}/")
        state = state_of(url)
        assert state["layout"] == "xy"
        source = state["layers"][0]["source"].removeprefix("precomputed://")
        key = f"{_scale_key(volume)}/0-32_0-32_0-16"
        status, _, body = fetch(source + key)
        assert status == 200
        assert body == (volume / key).read_bytes()
        assert fetch(url.split("#", 1)[0])[0] == 200
    finally:
        code, out, err = _stop(proc)
    assert code == 0, err
    assert "Traceback" not in err
    assert "stopped" in out
    with pytest.raises(urllib.error.URLError, match="refused"):
        fetch(f"http://127.0.0.1:{port}/")


def _scale_key(volume: Path) -> str:
    with ba.open(volume) as vol:
        return str(vol.scale.key)


def test_prints_the_ssh_tunnel_in_an_ssh_session(volume):
    proc = _start([str(volume)], {"SSH_CONNECTION": "10.0.0.9 50000 10.0.0.5 2222"})
    try:
        url = proc.stdout.readline().strip()
        hint = proc.stdout.readline().strip()
        port = url.split(":")[2].split("/")[0]
        assert hint.endswith(f"ssh -L {port}:127.0.0.1:{port} -p 2222 {_user()}@10.0.0.5")
    finally:
        assert _stop(proc)[0] == 0


def _user() -> str:
    import getpass

    return getpass.getuser()


def test_tunnel_hint_only_for_loopback_in_ssh():
    ssh = {"SSH_CONNECTION": "1.2.3.4 5 6.7.8.9 22"}
    assert tunnel_hint(8000, "127.0.0.1", ssh) == f"ssh -L 8000:127.0.0.1:8000 {_user()}@6.7.8.9"
    assert tunnel_hint(8000, "0.0.0.0", ssh) is None
    assert tunnel_hint(8000, "127.0.0.1", {}) is None


def test_a_taken_port_is_one_line_and_exit_1(volume):
    import socket

    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        proc = _start([str(volume), "--port", str(port)])
        _, err = proc.communicate(timeout=60)
    finally:
        holder.close()
    assert proc.returncode == 1
    assert err.startswith("bigarrays: error: cannot serve the viewer on 127.0.0.1:")
    assert str(port) in err
    assert "Traceback" not in err


def test_a_missing_dataset_is_an_error(tmp_path):
    proc = _start([str(tmp_path / "nothing")])
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert err.startswith("bigarrays: error:")
