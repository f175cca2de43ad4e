"""The report as CSV: one row per incident with every measure the figures are computed from,
so a spreadsheet can recompute (or audit) them. Durations are seconds, times ISO 8601 UTC."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import IO

from im.humanize import printable
from im.reports.model import IncidentEntry, Report, SlaTarget

# Spreadsheets run a cell that starts with one of these as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _text(value: str | None) -> str:
    if value is None:
        return ""
    value = printable(value, lines=True)
    return "'" + value if value.startswith(_FORMULA_START) else value


def _time(value: datetime | None) -> str:
    return value.isoformat() if value is not None else ""


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else str(value)


def columns(report: Report) -> list[str]:
    return _columns([c.name for c in report.included])


def _columns(included: Sequence[str]) -> list[str]:
    names = [
        "id", "title", "severity", "status", "services", "assignee", "declared_by",
        "declared_at", "acknowledged_at", "acknowledged_by", "resolved_at", "closed_at",
        "time_to_acknowledge_seconds", "time_to_resolve_seconds", "ack_sla_target_seconds",
        "ack_sla", "resolve_sla_target_seconds", "resolve_sla", "escalations", "paged",
    ]
    if included:
        names.append("linked_remote_incidents")
        for name in included:
            names += [f"{name}_time_to_acknowledge_seconds", f"{name}_time_to_resolve_seconds",
                      f"{name}_ack_sla", f"{name}_resolve_sla"]
    return names


def row(report: Report, entry: IncidentEntry) -> list[str]:
    return _row(report.sla_targets, [c.name for c in report.included], entry)


def _row(targets: Sequence[SlaTarget], included: Sequence[str], entry: IncidentEntry
         ) -> list[str]:
    target = next(t for t in targets if t.severity == entry.severity)
    values = [
        entry.id, _text(entry.title), entry.severity, entry.status, " ".join(entry.services),
        _text(entry.assignee), _text(entry.declared_by), _time(entry.declared_at),
        _time(entry.acknowledged_at), _text(entry.acknowledged_by), _time(entry.resolved_at),
        _time(entry.closed_at), _number(entry.time_to_acknowledge_seconds),
        _number(entry.time_to_resolve_seconds), _number(target.ack_seconds), entry.ack_sla,
        _number(target.resolve_seconds), entry.resolve_sla, str(len(entry.escalations)),
        _text(" ".join(entry.paged)),
    ]
    if included:
        values.append(_text(" ".join(
            f"{r.connector}:{r.service}:{r.number or r.remote_id}" for r in entry.remote)))
        for name in included:
            times = next((t for t in entry.remote_times if t.connector == name), None)
            if times is None:
                values += ["", "", "", ""]
            else:
                values += [_number(times.time_to_acknowledge_seconds),
                           _number(times.time_to_resolve_seconds), times.ack_sla,
                           times.resolve_sla]
    return values


def render_csv(report: Report) -> bytes:
    out = io.BytesIO()
    write_csv(report.incidents, report.sla_targets, [c.name for c in report.included], out)
    return out.getvalue()


def write_csv(entries: Iterable[IncidentEntry], targets: Sequence[SlaTarget],
              included: Sequence[str], out: IO[bytes]) -> None:
    """The header row, then a row per entry as it comes (written a few hundred at a time)."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\r\n")
    writer.writerow(_columns(included))
    for count, entry in enumerate(entries, 1):
        writer.writerow(_row(targets, included, entry))
        if count % 256 == 0:
            out.write(text.getvalue().encode())
            text.seek(0)
            text.truncate()
    out.write(text.getvalue().encode())
