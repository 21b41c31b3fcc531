"""MkDocs hook: the command-line reference, generated from the CLI's own parser at build time.

A page that holds the marker ``<!-- cli-reference -->`` gets, in its place, every sub-command of
``bigarrays.cli.build_parser()`` (nested ones too) with its usage, arguments, options, defaults
and help text, so the reference cannot drift from the code. ``python docs/hooks/cli_reference.py``
prints the generated Markdown.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

MARKER = "<!-- cli-reference -->"
WIDTH = 96
_SRC = Path(__file__).resolve().parents[2] / "src"


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, reference())


def reference() -> str:
    """The Markdown reference of the ``bigarrays`` command."""
    if str(_SRC) not in sys.path:
        sys.path.insert(0, str(_SRC))  # the tree being documented, not another installed copy
    from bigarrays.cli import build_parser

    parser = build_parser()
    out = ["## Options of every command", "", _usage(parser), ""]
    out += _arguments(parser, skip_subcommands=True)
    for prog, sub, summary in _commands(parser):
        out += [f"## {prog}", ""]
        if summary:
            out += [_text(summary[0].upper() + summary[1:]) + ".", ""]
        if sub.description:
            out += [_text(sub.description), ""]
        out += [_usage(sub), ""]
        out += _arguments(sub, skip_subcommands=False)
    return "\n".join(out).rstrip() + "\n"


def _commands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser, str]]:
    """(prog, parser, one-line help) of every sub-command, depth first, in the parser's order."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                found.append((sub.prog, sub, helps.get(name, "")))
                found += _commands(sub)
    return found


def _usage(parser: argparse.ArgumentParser) -> str:
    formatter = argparse.HelpFormatter(parser.prog, width=WIDTH)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups, "")
    return "```text\n" + formatter.format_help().strip() + "\n```"


def _arguments(parser: argparse.ArgumentParser, *, skip_subcommands: bool) -> list[str]:
    formatter = argparse.HelpFormatter(parser.prog, width=WIDTH)
    positional: list[str] = []
    optional: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
            continue
        if isinstance(action, argparse._SubParsersAction):
            if not skip_subcommands:
                names = ", ".join(f"`{n}`" for n in action.choices)
                positional.append(f"- `{action.metavar or action.dest}`: one of {names}")
            continue
        entry = _entry(action, formatter)
        (optional if action.option_strings else positional).append(entry)
    out = []
    if positional:
        out += ["**Arguments**", "", *positional, ""]
    if optional:
        out += ["**Options**", "", *optional, ""]
    return out


def _entry(action: argparse.Action, formatter: argparse.HelpFormatter) -> str:
    name = formatter._format_action_invocation(action)
    notes = []
    if action.required and action.option_strings:
        notes.append("required")
    if action.choices is not None and not isinstance(action, argparse._SubParsersAction):
        notes.append("one of " + ", ".join(f"`{c}`" for c in action.choices))
    helped = formatter._expand_help(action) if action.help else ""
    if _shows_default(action) and "default" not in helped:
        notes.append(f"default `{action.default}`")
    text = _text(helped)
    if notes:
        text = f"{text} ({'; '.join(notes)})" if text else "; ".join(notes).capitalize()
    return f"- `{name}`: {text}" if text else f"- `{name}`"


def _shows_default(action: argparse.Action) -> bool:
    if action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
        return False
    return not isinstance(action, argparse._StoreTrueAction | argparse._VersionAction)


def _text(text: str) -> str:
    """Help text as Markdown that renders as written (one line; no stray emphasis or HTML)."""
    text = " ".join(text.split())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"([\\`*_\[\]|])", r"\\\1", text)


if __name__ == "__main__":
    print(reference())
