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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn

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


def describe(rows: Sequence[Any], limit: int = 4,
             suffix: Callable[[list[Any]], str] | None = None) -> str:
    """Queued outbox rows in words, by incident and action in queue order: `INC-2 declare (api,
    payments), INC-2 note (api)`, the first `limit` of them and how many more. `suffix` adds
    words to each group (given its rows)."""
    groups: dict[tuple[str, str], list[Any]] = {}
    for row in rows:
        groups.setdefault((row.incident_id, row.action), []).append(row)
    parts = [f"{incident} {action} ({', '.join(row.service for row in group)})"
             + (suffix(group) if suffix else "") for (incident, action), group in groups.items()]
    more = len(parts) - limit
    return ", ".join(parts[:limit]) + (f" and {more} more" if more > 0 else "")


def interrupted(rows: Sequence[Any], saved: str | None = None) -> NoReturn:
    """Ctrl-C while delivering: say what is left queued (`rows`, still waiting) and who
    delivers it, then exit with 130. `saved`: the incident whose local change is kept."""
    import typer

    from im.cli import EXIT_INTERRUPTED

    kept = f"; {saved} is saved in im" if saved else ""
    if not rows:
        typer.echo(f"Interrupted: nothing is left queued{kept}", err=True)
        raise typer.Exit(EXIT_INTERRUPTED)
    names = sorted({row.connector for row in rows})
    syncs = " or ".join(f"`im connector sync {name}`" for name in names)
    typer.echo(f"Interrupted: left queued for {', '.join(names)}: {describe(rows)}", err=True)
    typer.echo(f"  `im serve` or {syncs} will deliver {'it' if len(rows) == 1 else 'them'}"
               f"{kept}", err=True)
    raise typer.Exit(EXIT_INTERRUPTED)
