"""Printing for the CLI: plain tables, JSON, and times as people read them."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import typer

from im.humanize import ago, duration, percent, printable, when

__all__ = ["ago", "duration", "echo_error", "mark", "paint", "percent", "print_json", "table",
           "when"]

MARK_COLOURS = {"✓": "green", "✗": "red", "!": "yellow"}


def colour(err: bool = False) -> bool:
    """Whether to colour what goes to stdout (stderr with `err`): only on a terminal, and
    never with NO_COLOR set (https://no-color.org) or on a dumb terminal."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    stream = sys.stderr if err else sys.stdout
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # replaced or closed streams
        return False


def paint(text: str, fg: str, *, err: bool = False, bold: bool = False) -> str:
    """`text` in colour `fg` (a Click colour name) where colour() allows, else as it is."""
    return typer.style(text, fg=fg, bold=bold) if colour(err) else text


def mark(symbol: str, *, err: bool = False) -> str:
    """A check mark (✓, ✗ or !) in its colour."""
    return paint(symbol, MARK_COLOURS[symbol], err=err, bold=True)


def echo_error(message: str) -> None:
    """The one line a failed command prints on stderr: `Error: ...`, the word in red."""
    typer.echo(f"{paint('Error:', 'red', err=True, bold=True)} {printable(message)}",
               err=True)


def width(text: str) -> int:
    """Columns `text` takes on a terminal: 2 for each wide character (CJK, most emoji), 0 for
    combining marks."""
    if text.isascii():
        return len(text)
    from wcwidth import wcswidth  # only for text that needs it: it costs start-up time

    columns = wcswidth(text)
    return columns if columns >= 0 else len(text)  # a control character: no better guess


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns padded to their widest cell, two spaces apart; the last column is not padded.
    Widths are counted in terminal columns, so wide characters keep the columns aligned."""
    cells = [[printable(str(h)) for h in headers]] + [
        ["" if c is None else printable(str(c)) for c in r] for r in rows]
    widths = [[width(cell) for cell in row] for row in cells]
    column = [max(row[i] for row in widths) for i in range(len(headers))]
    lines = []
    for row, row_widths in zip(cells, widths, strict=True):
        padded = [cell + " " * (column[i] - row_widths[i]) for i, cell in enumerate(row[:-1])]
        lines.append("  ".join([*padded, row[-1]]).rstrip())
    return "\n".join(lines)


def print_json(value: Any) -> None:
    import msgspec

    typer.echo(msgspec.json.format(msgspec.json.encode(value), indent=2).decode())
