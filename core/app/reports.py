"""Report operations: a report of the incidents declared in a period, rendered in a format.

Building and rendering are `im.reports`'; here the connectors to include are chosen and
checked, and the result comes with the file name a report of that period and format gets.
Where the bytes go (a file, standard output, an HTTP answer) is the front end's choice.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING

import msgspec

from im.reports import (
    Period,
    Report,
    default_filename,
    parse_format,
    parse_period,
    resolve_includes,
)
from im.reports.stream import write_report as _write

if TYPE_CHECKING:
    from im.runtime import Runtime

__all__ = ["MadeReport", "WrittenReport", "default_filename", "make_report", "parse_format",
           "parse_period", "write_report"]


class MadeReport(msgspec.Struct, frozen=True, kw_only=True):
    """A report, rendered: `data` is the file's bytes in `format`, `filename` the name it
    gets by default (im-report-START-to-END.FORMAT)."""

    report: Report
    format: str
    data: bytes
    filename: str


class WrittenReport(msgspec.Struct, frozen=True, kw_only=True):
    """A report written where it was asked: `report` holds its figures and notes, not its
    incidents (its summary counts them)."""

    report: Report
    format: str
    filename: str


def write_report(runtime: Runtime, out: IO[bytes], *, period: Period, format: str,
                 include: Sequence[str] = (), include_all: bool = False,
                 fetch: bool = True) -> WrittenReport:
    """Write the report of `period` (parse_period) in `format` (pdf, html, md, json or csv)
    to `out` as its incidents come from the store, a batch at a time (im.reports.stream).
    `include` names connectors, or connector types, whose linked remote incidents it adds;
    `include_all` adds every connector's. With `fetch`, connectors are asked for what im did
    not store; without, the report holds only what im stored."""
    fmt = parse_format(format)
    connectors = resolve_includes(runtime, include, every=include_all)
    report = _write(runtime, period, fmt, out, connectors=connectors, fetch=fetch)
    return WrittenReport(report=report, format=fmt, filename=default_filename(period, fmt))


def make_report(runtime: Runtime, *, period: Period, format: str,
                include: Sequence[str] = (), include_all: bool = False,
                fetch: bool = True) -> MadeReport:
    """The report of `period` as `write_report` writes it, in memory: `data` is the file's
    bytes (its `report` without incidents, as write_report's)."""
    buffer = io.BytesIO()
    written = write_report(runtime, buffer, period=period, format=format, include=include,
                           include_all=include_all, fetch=fetch)
    return MadeReport(report=written.report, format=written.format, data=buffer.getvalue(),
                      filename=written.filename)
