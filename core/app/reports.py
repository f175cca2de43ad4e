"""Report operations: a report of the incidents declared in a period, rendered in a format.

Building and rendering are `im.reports`'; here the connectors to include are chosen and
checked, and the result comes with the file name a report of that period and format gets.
Where the bytes go (a file, standard output, an HTTP answer) is the front end's choice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import msgspec

from im.reports import (
    Period,
    Report,
    build_report,
    default_filename,
    parse_format,
    parse_period,
    render,
    resolve_includes,
)

if TYPE_CHECKING:
    from im.runtime import Runtime

__all__ = ["MadeReport", "make_report", "parse_format", "parse_period"]


class MadeReport(msgspec.Struct, frozen=True, kw_only=True):
    """A report, rendered: `data` is the file's bytes in `format`, `filename` the name it
    gets by default (im-report-START-to-END.FORMAT)."""

    report: Report
    format: str
    data: bytes
    filename: str


def make_report(runtime: Runtime, *, period: Period, format: str,
                include: Sequence[str] = (), include_all: bool = False,
                fetch: bool = True) -> MadeReport:
    """The report of `period` (parse_period) in `format` (pdf, html, md, json or csv).
    `include` names connectors, or connector types, whose linked remote incidents it adds;
    `include_all` adds every connector's. With `fetch`, connectors are asked for what im did
    not store; without, the report holds only what im stored."""
    fmt = parse_format(format)
    connectors = resolve_includes(runtime, include, every=include_all)
    report = build_report(runtime, period, connectors=connectors, fetch=fetch)
    return MadeReport(report=report, format=fmt, data=render(report, fmt),
                      filename=default_filename(period, fmt))
