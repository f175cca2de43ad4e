"""Write a report as its incidents come from the store, a batch at a time: what it holds at
once follows a batch (im.reports.build.BATCH), not the period.

JSON is the document `render(report, "json")` makes, byte for byte: its figures come before
its incidents, so each incident is written, as it comes, to a spool file (in memory while
small, then on disk) and the document is the figures' part around it. CSV rows go straight
out. The PDF lays its incidents out page by page from a spool of them (im.reports.as_pdf).
Markdown and HTML are made in memory, as `render` makes them.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING

import msgspec

from im.reports.build import ReportRun
from im.reports.model import IncidentEntry, Report

if TYPE_CHECKING:
    from im.reports.period import Period
    from im.runtime import Runtime

# An incident entry written as the JSON document holds it (two levels in, so indented four
# spaces); where the document's list of incidents is.
_ITEM_INDENT = b"    "
_INCIDENTS = b'\n  "incidents": []'
SPOOL_IN_MEMORY = 8 * 1024 * 1024  # bytes a spool holds in memory before it moves to disk


class EntrySpool:
    """Incident entries put aside as they come (msgpack, length-prefixed) to be read back,
    one at a time, as often as needed: for a document whose figures come first."""

    def __init__(self) -> None:
        # closed by close(), once the document is written
        self.file: IO[bytes] = tempfile.SpooledTemporaryFile(  # noqa: SIM115
            max_size=SPOOL_IN_MEMORY)
        self.count = 0
        self._encoder = msgspec.msgpack.Encoder()

    def add(self, entry: IncidentEntry) -> None:
        data = self._encoder.encode(entry)
        self.file.write(len(data).to_bytes(4, "big") + data)
        self.count += 1

    def __iter__(self) -> Iterator[IncidentEntry]:
        decoder = msgspec.msgpack.Decoder(IncidentEntry)
        self.file.seek(0)
        for _ in range(self.count):
            size = int.from_bytes(self.file.read(4), "big")
            yield decoder.decode(self.file.read(size))

    def close(self) -> None:
        self.file.close()


def _json(run: ReportRun, out: IO[bytes]) -> Report:
    encoder = msgspec.json.Encoder()
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
        count = 0
        for entry in run.entries():
            item = msgspec.json.format(encoder.encode(entry), indent=2)
            # JSON strings never hold a raw line break: every one is the layout's.
            spool.write((b",\n" if count else b"") + _ITEM_INDENT
                        + item.replace(b"\n", b"\n" + _ITEM_INDENT))
            count += 1
        report = run.report()
        document = msgspec.json.format(encoder.encode(report), indent=2) + b"\n"
        head, tail = document.split(_INCIDENTS)  # a top-level key: once
        out.write(head)
        if count:
            out.write(b'\n  "incidents": [\n')
            spool.seek(0)
            shutil.copyfileobj(spool, out)
            out.write(b"\n  ]")
        else:
            out.write(_INCIDENTS)
        out.write(tail)
    return report


def _csv(run: ReportRun, out: IO[bytes]) -> Report:
    from im.reports.as_csv import write_csv

    write_csv(run.entries(), run.targets, run.included, out)
    return run.report()


def _pdf(run: ReportRun, out: IO[bytes]) -> Report:
    from im.reports.as_pdf import write_pdf

    spool = EntrySpool()
    try:
        for entry in run.entries():
            spool.add(entry)
        report = run.report()
        write_pdf(report, spool, out)
    finally:
        spool.close()
    return report


def write_report(runtime: Runtime, period: Period, format: str, out: IO[bytes], *,
                 connectors: tuple[str, ...] | list[str] = (), fetch: bool = True,
                 title: str = "Incident report") -> Report:
    """Write the report of `period` in `format` to `out`; the report it wrote, without its
    list of incidents (its summary says how many)."""
    from im.reports import parse_format, render

    fmt = parse_format(format)
    run = ReportRun(runtime, period, connectors=connectors, fetch=fetch, title=title)
    if fmt == "json":
        return _json(run, out)
    if fmt == "csv":
        return _csv(run, out)
    if fmt == "pdf":
        return _pdf(run, out)
    entries = list(run.entries())
    out.write(render(run.report(entries), fmt))
    return run.report()
