"""Progress bars for long operations: a bar on a terminal, nothing otherwise or when asked."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

#: Operations on fewer chunks than this finish too fast for a bar to help.
MIN_CHUNKS_FOR_BAR = 64


def wants_bar(setting: bool | None, total: int) -> bool:
    """``setting`` True/False forces the bar on/off; None shows it for long jobs on a terminal."""
    if setting is not None:
        return setting
    return total >= MIN_CHUNKS_FOR_BAR and sys.stderr.isatty()


@contextmanager
def progress_bar(
    total: int, description: str, enabled: bool | None = None
) -> Iterator[Callable[[], None] | None]:
    """Yields an ``advance()`` callback to call once per unit of work, or None when silent."""
    if not wants_bar(enabled, total):
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=total)
        yield lambda: bar.advance(task)
