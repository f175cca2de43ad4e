"""How long a command waits for connectors, and what it shows meanwhile.

A command that talks to a remote system gives it one overall deadline, BUDGET seconds from
when it starts to wait, whether it writes (what is not delivered by then stays queued for
`im serve`) or reads (connection checks, health, on-call, reconciling: what is not answered
by then is reported as such). A slow remote system never holds an engineer up longer.

While a command waits, a terminal shows a spinner (or a bar, when the command knows how much
there is to do) on stderr, from rich, imported only then: a pipe or a file sees the plain
output alone, and commands that do not wait never load rich.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

BUDGET = 10.0  # seconds


def deadline() -> float:
    """The time.monotonic() by which a command starting to wait now gives up waiting."""
    return time.monotonic() + BUDGET


def _terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed
        return False


@contextmanager
def spinner(text: str, *, total: int | None = None) -> Iterator[Callable[[], None]]:
    """Show `text` with a spinner (and a bar of `total` steps) on stderr while the block runs,
    on a terminal only; the line goes when the block ends. Yields a function that counts one
    step done (a no-op without a terminal)."""
    if not _terminal():
        yield lambda: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    columns: list[ProgressColumn] = [SpinnerColumn(), TextColumn("{task.description}")]
    if total:
        columns += [BarColumn(), MofNCompleteColumn()]
    columns.append(TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True,
                  redirect_stdout=False, redirect_stderr=False) as progress:
        task = progress.add_task(text, total=total or None)
        yield lambda: progress.advance(task)
