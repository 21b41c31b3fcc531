"""The CI rule of ``ci_skips``: a skipped test fails the run when ``CI`` is set, only then."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent


@pytest.mark.parametrize(("ci", "code"), [("true", 1), ("", 0)])
def test_a_skip_fails_the_run_in_ci_only(tmp_path: Path, ci: str, code: int) -> None:
    (tmp_path / "test_one.py").write_text(
        "import pytest\n\ndef test_skipped():\n    pytest.skip('no server')\n\n"
        "def test_run():\n    assert True\n"
    )
    env = {**os.environ, "CI": ci, "PYTHONPATH": str(TESTS)}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "ci_skips", "-p", "no:cacheprovider",
         str(tmp_path / "test_one.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert ("counts as a failure" in proc.stdout) == bool(ci)
