"""Every code block of every documentation page runs (or, for shell commands, parses).

One test per page under docs/: its Python blocks run in order in one namespace, in a fresh
working folder, with the servers its directives ask for (see ``docs_examples``); the
``bigarrays`` commands of its shell blocks are parsed by the CLI's parser, or run in a shell when
the block is marked ``run``. Pages added later are picked up by the glob.
"""

from __future__ import annotations

import contextlib
import io
import os
import shlex
import signal
import stat
import subprocess
import sys
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from docs_examples import Block, DirectiveError, Page, parse_page, shell_commands
from network_servers import StaticServer

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
#: A page's examples that run longer than this fail (they are meant to take seconds).
PAGE_SECONDS = 120
PAGES = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))


def test_pages_are_found() -> None:
    assert "index.md" in PAGES
    assert "getting-started.md" in PAGES


@pytest.mark.parametrize("name", PAGES)
def test_page_examples(name: str, request: pytest.FixtureRequest, tmp_path: Path,
                       monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    page = parse_page(DOCS / name)
    if not page.blocks:
        return
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT / "src"), *sys.path]))
    if page.s3:
        _s3(page, request, monkeypatch)
    if page.gcs:
        _gcs(page, request, monkeypatch)
    with (
        _http(page, work) as endpoint,
        _dask(page),
        _memory_namespaces(),
        _time_limit(name, PAGE_SECONDS),
        warnings.catch_warnings(),
    ):
        # A page may show a warning it documents (create() warns of a blosc volume); a
        # deprecation means the example has rotted.
        warnings.simplefilter("default")
        warnings.simplefilter("error", DeprecationWarning)
        warnings.simplefilter("error", FutureWarning)
        namespace: dict[str, object] = {"__name__": "__docs__"}
        for block in page.blocks:
            if block.skip is not None:
                continue
            code = page.rewrite(block.code, endpoint)
            if block.kind == "shell":
                _shell(name, block, code, tmp_path)
            else:
                # Leading newlines make a traceback's line numbers those of the page.
                exec(compile("\n" * block.line + code, f"docs/{name}", "exec"), namespace)


def _s3(page: Page, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    endpoint = request.getfixturevalue("moto_endpoint")
    request.getfixturevalue("aws_env")
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
    for bucket in page.buckets("s3"):
        # us-east-1 answers 200 to the creation of a bucket one owns already: empty it either way.
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
            s3.create_bucket(Bucket=bucket)
        for part in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in part.get("Contents", []):
                s3.delete_object(Bucket=bucket, Key=obj["Key"])
        with contextlib.suppress(s3.exceptions.ClientError):
            s3.delete_bucket_policy(Bucket=bucket)


def _gcs(page: Page, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    endpoint = request.getfixturevalue("gcs_endpoint")
    request.getfixturevalue("gcp_env")
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", endpoint)
    for bucket in page.buckets("gs"):
        url = f"{endpoint}/storage/v1/b"
        body = json.dumps({"name": bucket}).encode()
        req = urllib.request.Request(f"{url}?project=test", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})  # fmt: skip
        try:
            urllib.request.urlopen(req, timeout=10).close()
        except urllib.error.HTTPError as exc:
            if exc.code != 409:
                raise
            with urllib.request.urlopen(f"{url}/{bucket}/o", timeout=10) as resp:
                names = [o["name"] for o in json.load(resp).get("items", [])]
            for obj in names:
                quoted = urllib.parse.quote(obj, safe="")
                gone = urllib.request.Request(f"{url}/{bucket}/o/{quoted}", method="DELETE")
                urllib.request.urlopen(gone, timeout=10).close()


@contextlib.contextmanager
def _dask(page: Page) -> Iterator[None]:
    """A local cluster standing in for the scheduler addresses the page names."""
    if not page.dask_addresses:
        yield
        return
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, processes=False, threads_per_worker=2,
                      dashboard_address=None) as cluster:  # fmt: skip
        page.maps.extend((a, cluster.scheduler_address) for a in page.dask_addresses)
        yield


class _http:
    """A static server over the working folder when the page names an origin to stand in for."""

    def __init__(self, page: Page, root: Path) -> None:
        self.server = StaticServer(root) if page.http_origins else None

    def __enter__(self) -> str | None:
        if self.server is None:
            return None
        return self.server.start().url

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            self.server.stop()


@contextlib.contextmanager
def _time_limit(name: str, seconds: int) -> Iterator[None]:
    """Fail a page whose examples run too long (a server left serving, a loop on a camera)
    instead of stalling the suite."""

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"docs/{name}: the examples ran longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


class _memory_namespaces:
    """memory:// stores live as long as the process: a page's go when the page is done, so that
    another page may use the same names."""

    def __enter__(self) -> None:
        from bigarrays.stores import memory

        self.before = set(memory._NAMESPACES)

    def __exit__(self, *exc: object) -> None:
        from bigarrays.stores import memory

        with memory._LOCK:
            for table in (memory._NAMESPACES, memory._ENCODED, memory._VERSIONS):
                for name in set(table) - self.before:
                    del table[name]


def _shell(name: str, block: Block, code: str, tmp_path: Path) -> None:
    where = f"docs/{name}:{block.line}"
    if block.run and _plain_commands(code):
        _run_in_process(where, code)
        return
    if block.run:
        bin_dir = _commands_dir(tmp_path)
        env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
        proc = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", code], env=env,
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        assert proc.returncode == 0, f"{where}:\n{code}\n{proc.stdout}\n{proc.stderr}"
        return
    from bigarrays.cli import build_parser

    for argv in shell_commands(code):
        if argv[0] != "bigarrays":
            continue
        try:
            build_parser().parse_args(argv[1:])
        except SystemExit as exc:  # --help and --version exit with 0
            refused = exc.code
        else:
            refused = 0
        assert not refused, f"{where}: the CLI refuses {' '.join(argv)!r}"


def _plain_commands(code: str) -> bool:
    """True when every command of the block is ``bigarrays ...`` with nothing for a shell to do
    (no pipes, redirections, variables or wildcards)."""
    lines = [shlex.split(s, comments=True) for s in code.replace("\\\n", " ").splitlines()]
    if any(argv and argv[0] != "bigarrays" for argv in lines):
        return False
    active = "\n".join(s.partition("#")[0] for s in code.splitlines())
    return not any(c in active for c in "|&;<>$`*?")


def _run_in_process(where: str, code: str) -> None:
    """The block's commands through the CLI's ``main``, as the shell would run them but without
    an interpreter start per command."""
    from bigarrays.cli import main

    for argv in shell_commands(code):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = main(argv[1:])
            except SystemExit as exc:
                status = exc.code if isinstance(exc.code, int) else 1
        assert status == 0, f"{where}: {shlex.join(argv)} failed:\n{out.getvalue()}{err.getvalue()}"


def _commands_dir(tmp_path: Path) -> Path:
    """``bigarrays`` and ``python`` as this interpreter and this tree's sources run them."""
    bin_dir = tmp_path / "bin"
    if not bin_dir.exists():
        bin_dir.mkdir()
        script = bin_dir / "bigarrays"
        script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m bigarrays.cli "$@"\n')
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
        (bin_dir / "python").symlink_to(sys.executable)
    return bin_dir


def test_directives_are_checked(tmp_path: Path) -> None:
    bad = tmp_path / "bad.md"
    bad.write_text("<!-- docs-test: skip -->\n```python\nx = 1\n```\n")
    with pytest.raises(DirectiveError, match="reason"):
        parse_page(bad)
    bad.write_text("<!-- docs-test: serve -->\n")
    with pytest.raises(DirectiveError, match="unknown"):
        parse_page(bad)


def test_shell_commands_are_split_as_a_shell_would() -> None:
    code = (
        "bigarrays create vol --shape 8,8,8 \\\n  --dtype uint16   # a comment\n\npip install x\n"
    )
    assert shell_commands(code) == [
        ["bigarrays", "create", "vol", "--shape", "8,8,8", "--dtype", "uint16"],
        ["pip", "install", "x"],
    ]
    console = "$ bigarrays info vol\nscale 0: 8 x 8 x 8\n"
    assert shell_commands(console) == [["bigarrays", "info", "vol"]]


def test_a_page_that_runs_too_long_fails() -> None:
    import time

    with pytest.raises(TimeoutError, match="longer than 1 s"), _time_limit("slow.md", 1):
        time.sleep(30)  # interrupted after a second
