"""The documentation site builds without a warning (its examples run in test_docs_examples)."""

from __future__ import annotations

import argparse
import html
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def test_the_site_builds_in_strict_mode(site: Path) -> None:
    api = (site / "api" / "index.html").read_text()
    for name in ("downsample", "update_pyramid", "resize", "to_dask", "stream"):
        assert name in api, f"the API page lacks {name}"


def _commands(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield sub
                yield from _commands(sub)


def test_the_cli_reference_lists_every_command_and_option(site: Path) -> None:
    from bigarrays.cli import build_parser

    page = html.unescape((site / "cli" / "index.html").read_text())
    assert "cli-reference" not in page, "the hook did not replace the marker"
    commands = list(_commands(build_parser()))
    assert len(commands) >= 8
    for sub in commands:
        assert re.search(rf"<h2 [^>]*>{re.escape(sub.prog)}", page), f"no section for {sub.prog}"
        for action in sub._actions:
            for option in action.option_strings:
                assert option in page, f"{sub.prog} {option} is not documented"
            if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
                continue
            if action.help and "%" not in action.help:
                words = " ".join(action.help.split()[:4])
                assert words in page, f"{sub.prog}: help {action.help!r} is not shown"
