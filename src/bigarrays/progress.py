"""Progress bars for long operations: a bar on a terminal, nothing otherwise or when asked."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

#: Operations on fewer chunks than this finish too fast for a bar to help.
MIN_CHUNKS_FOR_BAR = 64
#: The narrowest bar drawn; a description is shortened to leave it this much room.
MIN_BAR_WIDTH = 20


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
    from rich.table import Column

    console = Console(stderr=True)
    # The bar takes the width the other columns leave (a fixed 40 columns left the line short of
    # a wide terminal); a description too long for the terminal is cut, not the counts.
    counts = 2 * len(str(total)) + 1
    room = console.width - counts - 2 * len("0:00:00") - 4 - MIN_BAR_WIDTH
    if len(description) > room:
        description = description[: max(room - 1, 0)] + "…"
    with Progress(
        TextColumn("{task.description}", table_column=Column(no_wrap=True)),
        BarColumn(bar_width=None, table_column=Column(ratio=1)),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        expand=True,
    ) as bar:
        task = bar.add_task(description, total=total)
        yield lambda: bar.advance(task)
