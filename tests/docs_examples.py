"""The code blocks of a documentation page and the directives that tell the tests how to run them.

A page's ```` ```python ```` blocks run in order in one namespace; its shell blocks
(```` ```sh ````, ```` ```bash ````, ```` ```console ````) have every ``bigarrays ...`` command
parsed by the CLI's own parser, or run when the block is marked ``run``. Directives are HTML
comments, which the site does not show:

- ``<!-- docs-test: s3 -->``: a moto S3 server, with ``AWS_ENDPOINT_URL`` and test credentials
  in the environment, and every bucket that the page's code names (``s3://NAME/...``) created
  empty; ``gcs`` does the same with the GCS emulator and ``STORAGE_EMULATOR_HOST``.
- ``<!-- docs-test: http https://data.example.org -->``: a local static HTTP server that serves
  the page's working folder; the code runs with that origin replaced by the server's address.
- ``<!-- docs-test: dask tcp://scheduler:8786 -->``: a ``dask.distributed`` cluster (one worker
  process-less, two threads); the code runs with that address replaced by the cluster's.
- ``<!-- docs-test: map FROM TO -->``: the code runs with ``FROM`` replaced by ``TO`` (an
  absolute example path such as ``/data/`` mapped into the working folder).
- ``<!-- docs-test: setup`` + code + ``-->``: hidden code run at that place (data a page's
  example assumes, such as a camera's frames).
- ``<!-- docs-test: skip REASON -->``: the next block is not run; the reason is mandatory.
- ``<!-- docs-test: run -->``: the next shell block runs in a shell, in the working folder.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

PYTHON = frozenset({"python", "py", "pycon"})
SHELL = frozenset({"sh", "bash", "console", "shell"})
_FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w+-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```",
                    re.S | re.M)  # fmt: skip
_DIRECTIVE = re.compile(r"<!--\s*docs-test:\s*(?P<word>[\w-]+)(?P<rest>.*?)-->", re.S)
_PAGE_WORDS = frozenset({"s3", "gcs", "http", "dask", "map"})
_BLOCK_WORDS = frozenset({"skip", "run"})


class DirectiveError(ValueError):
    """A docs-test directive that the runner does not understand."""


@dataclass
class Block:
    kind: str  # "python", "shell" or "setup"
    code: str
    line: int
    skip: str | None = None
    run: bool = False


@dataclass
class Page:
    path: Path
    blocks: list[Block] = field(default_factory=list)
    s3: bool = False
    gcs: bool = False
    http_origins: list[str] = field(default_factory=list)
    dask_addresses: list[str] = field(default_factory=list)
    maps: list[tuple[str, str]] = field(default_factory=list)

    def rewrite(self, code: str, http_endpoint: str | None = None) -> str:
        """``code`` as it runs here: mapped paths and the local server's address."""
        for old, new in self.maps:
            code = code.replace(old, new)
        for origin in self.http_origins:
            if http_endpoint is not None:
                code = code.replace(origin, http_endpoint)
        return code

    def buckets(self, scheme: str) -> list[str]:
        text = "\n".join(b.code for b in self.blocks)
        return sorted(set(re.findall(rf"\b{scheme}://([a-z0-9][a-z0-9.\-]+[a-z0-9])", text)))


def parse_page(path: Path) -> Page:
    """The page's blocks and directives, in the order they appear."""
    text = path.read_text()
    page = Page(path)
    events: list[tuple[int, str, re.Match[str]]] = [
        (m.start(), "fence", m) for m in _FENCE.finditer(text)
    ]
    fences = [(m.start(), m.end()) for _, _, m in events]
    for m in _DIRECTIVE.finditer(text):
        if not any(a <= m.start() < b for a, b in fences):
            events.append((m.start(), "directive", m))
    pending: dict[str, str] = {}
    for pos, what, m in sorted(events, key=lambda e: e[0]):
        line = text.count("\n", 0, pos) + 1
        if what == "directive":
            _directive(page, m["word"], m["rest"], line, pending)
            continue
        lang = m["lang"].lower()
        kind = "python" if lang in PYTHON else "shell" if lang in SHELL else None
        if kind is None:
            continue
        code = _dedent(m["body"], m["indent"])
        block = Block(kind, code, line, skip=pending.pop("skip", None), run="run" in pending)
        pending.pop("run", None)
        page.blocks.append(block)
    if pending:
        raise DirectiveError(f"{path.name}: {sorted(pending)} directive(s) precede no code block")
    return page


def _directive(page: Page, word: str, rest: str, line: int, pending: dict[str, str]) -> None:
    where = f"{page.path.name}:{line}"
    args = rest.strip()
    if word == "setup":
        page.blocks.append(Block("setup", args + "\n", line))
    elif word == "s3":
        page.s3 = True
    elif word == "gcs":
        page.gcs = True
    elif word == "http":
        if not args:
            raise DirectiveError(f"{where}: 'http' names the origin the examples use")
        page.http_origins.append(args)
    elif word == "dask":
        if not args:
            raise DirectiveError(f"{where}: 'dask' names the scheduler address the examples use")
        page.dask_addresses.append(args)
    elif word == "map":
        parts = args.split()
        if len(parts) != 2:
            raise DirectiveError(f"{where}: 'map' takes FROM and TO, got {args!r}")
        page.maps.append((parts[0], parts[1]))
    elif word == "skip":
        if not args:
            raise DirectiveError(f"{where}: 'skip' needs the reason the block cannot run")
        pending["skip"] = args
    elif word == "run":
        pending["run"] = ""
    else:
        known = sorted(_PAGE_WORDS | _BLOCK_WORDS | {"setup"})
        raise DirectiveError(f"{where}: unknown docs-test directive {word!r}; known: {known}")


def _dedent(body: str, indent: str) -> str:
    if not indent:
        return body
    return "".join(s[len(indent) :] if s.startswith(indent) else s for s in body.splitlines(True))


def shell_commands(code: str) -> list[list[str]]:
    """The commands of a shell block as argument lists: continuations joined, comments and a
    ``$ `` prompt dropped, output lines of a console block (no prompt) left out."""
    lines = code.replace("\\\n", " ").splitlines()
    prompted = any(s.lstrip().startswith("$ ") for s in lines)
    commands = []
    for s in lines:
        s = s.strip()
        if prompted:
            if not s.startswith("$ "):
                continue
            s = s[2:]
        argv = shlex.split(s, comments=True)
        if argv:
            commands.append(argv)
    return commands
