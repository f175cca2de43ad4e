"""The report's sections as plain tables of text, in reading order: the Markdown, HTML and
PDF formats lay out the same tables, so they always agree."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import msgspec

from im.reports.model import IncidentEntry, RemoteIncident, Report, ResponseRow, Stats

EMPTY = "No incidents were declared in this period."
RESPONSE_TIMES = (
    "TTA: time to acknowledge (first response: an acknowledgement, or the resolution when"
    " nobody acknowledged first); TTR: time to resolve (the final resolution); medians and"
    " 90th percentiles. Measured in im from the declaration, in a connector's system from the"
    " remote incident's creation.")
COMPLIANCE = ("Compliance is met / (met + breached); pending incidents are still open and"
              " within their target.")


class Table(msgspec.Struct, frozen=True, kw_only=True):
    headers: list[str]
    rows: list[list[str]]
    # Relative column widths (for the PDF); the widest text column gets the most.
    widths: list[float] | None = None
    empty: str = "None."


def duration(seconds: float | None) -> str:
    """45s, 7m30s, 2h05m, 1d03h: two units at most, rounded to the second."""
    if seconds is None:
        return "-"
    total = round(seconds)
    if total < 0:
        return "-" + duration(-total)
    if total < 60:
        return f"{total}s"
    if total < 3600:
        minutes, rest = divmod(total, 60)
        return f"{minutes}m{rest:02d}s" if rest else f"{minutes}m"
    if total < 86400:
        hours, rest = divmod(total, 3600)
        minutes = rest // 60
        return f"{hours}h{minutes:02d}m" if minutes else f"{hours}h"
    days, rest = divmod(total, 86400)
    hours = rest // 3600
    return f"{days}d{hours:02d}h" if hours else f"{days}d"


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


def when(value: datetime | None, *, seconds: bool = False) -> str:
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def sla(state: str) -> str:
    return "-" if state == "unmeasured" else state


def people(names: Sequence[str]) -> str:
    return ", ".join(names) or "-"


def remote_label(remote: RemoteIncident) -> str:
    return f"#{remote.number}" if remote.number else remote.remote_id


def scope(report: Report) -> list[str]:
    """What the report covers and how, in sentences."""
    period = f"Period: {report.period} (whole days, {report.timezone}); incidents declared in it."
    lines = [period,
             f"Generated {when(report.generated_at)} {report.timezone} by {report.generator}."]
    if report.included:
        parts = []
        for connector in report.included:
            kind = f" ({connector.type})" if connector.type else ""
            parts.append(f"{connector.name}{kind}: {connector.linked} linked,"
                         f" {connector.fetched} fetched")
        lines.append("Linked remote incidents of " + "; ".join(parts) + ".")
    else:
        lines.append("Linked remote incidents: not included.")
    sources = sorted({source for t in report.sla_targets for source in t.source.split(" + ")})
    lines.append("SLA targets: " + ", ".join(sources) + " (see SLA compliance).")
    return lines


def _median_p90(measured: Stats) -> str:
    return f"median {duration(measured.median_seconds)}, p90 {duration(measured.p90_seconds)}"


def key_figures(report: Report) -> Table:
    summary = report.summary
    by_severity = ", ".join(f"{k}: {v}" for k, v in summary.by_severity.items())
    by_status = ", ".join(f"{k}: {v}" for k, v in summary.by_status.items())
    rows = [
        ["Incidents declared", str(summary.incidents)],
        ["By severity", by_severity],
        ["By status now", by_status],
        ["Acknowledged", str(summary.acknowledged)],
        ["Resolved", f"{summary.resolved} ({summary.unresolved} unresolved)"],
        ["Time to acknowledge", _median_p90(summary.acknowledge)],
        ["Time to resolve", _median_p90(summary.resolve)],
        ["SLA compliance", (f"acknowledge {percent(summary.ack_compliance_percent)},"
                            f" resolve {percent(summary.resolve_compliance_percent)}")],
        ["Escalations", str(summary.escalations)],
    ]
    if report.included:
        rows.append(["Linked remote incidents", str(summary.linked_remote_incidents)])
    return Table(headers=["Figure", "Value"], rows=rows, widths=[1, 3])


def response_table(rows: Sequence[ResponseRow], group: str) -> Table:
    return Table(
        headers=[group, "Measured in", "Incidents", "Acknowledged", "TTA median", "TTA p90",
                 "Resolved", "TTR median", "TTR p90"],
        rows=[[r.group, r.measured_in, str(r.incidents), str(r.acknowledge.count),
               duration(r.acknowledge.median_seconds), duration(r.acknowledge.p90_seconds),
               str(r.resolve.count), duration(r.resolve.median_seconds),
               duration(r.resolve.p90_seconds)] for r in rows],
        widths=[1.3, 1.6, 1, 1.2, 1, 1, 1, 1, 1])


def sla_targets_table(report: Report) -> Table:
    return Table(headers=["Severity", "Acknowledge within", "Resolve within", "Set by"],
                 rows=[[t.severity, duration(t.ack_seconds), duration(t.resolve_seconds),
                        t.source] for t in report.sla_targets], widths=[1, 1.3, 1.3, 2])


def sla_table(report: Report) -> Table:
    return Table(
        headers=["Severity", "Measured in", "Incidents", "Ack met", "Ack breached",
                 "Ack compliance", "Resolve met", "Resolve breached", "Resolve compliance",
                 "Pending"],
        rows=[[r.severity, r.measured_in, str(r.incidents), str(r.ack_met),
               str(r.ack_breached), percent(r.ack_compliance_percent), str(r.resolve_met),
               str(r.resolve_breached), percent(r.resolve_compliance_percent),
               f"{r.ack_pending} / {r.resolve_pending}"] for r in report.sla],
        widths=[1, 1.6, 1, 0.9, 1, 1.1, 1, 1.1, 1.1, 0.9])


def responders_table(report: Report) -> Table:
    return Table(
        headers=["Responder", "Acknowledgements", "TTA median", "TTA p90",
                 "Paged or assigned", "Escalated away"],
        rows=[[r.responder, str(r.acknowledgements), duration(r.acknowledge.median_seconds),
               duration(r.acknowledge.p90_seconds), str(r.paged), str(r.escalated_away)]
              for r in report.responders],
        widths=[3, 1.3, 1, 1, 1.3, 1.2], empty="No responders.")


def escalations_table(report: Report) -> Table:
    return Table(
        headers=["Incident", "At", "System", "From", "To", "What"],
        rows=[[e.incident_id, when(e.at), e.system, people(e.from_), people(e.to), e.text]
              for e in report.escalations],
        widths=[0.8, 1.2, 1.2, 1.6, 1.6, 3], empty="No escalations.")


def daily_table(report: Report) -> Table:
    """The days on which incidents were declared (the chart shows every day)."""
    severities = list(report.summary.by_severity)
    return Table(headers=["Day", *severities, "Total"],
                 rows=[[d.day.isoformat(), *(str(d.by_severity.get(s, 0)) for s in severities),
                        str(d.total)] for d in report.daily if d.total],
                 empty="No incidents on any day.")


def incident_row(e: IncidentEntry) -> list[str]:
    return [e.id, e.severity, e.status, e.title, ", ".join(e.services), when(e.declared_at),
            duration(e.time_to_acknowledge_seconds), duration(e.time_to_resolve_seconds),
            sla(e.ack_sla), sla(e.resolve_sla)]


def incidents_table(report: Report | Sequence[IncidentEntry]) -> Table:
    entries = report.incidents if isinstance(report, Report) else report
    return Table(
        headers=["ID", "Severity", "Status", "Title", "Services", "Declared", "TTA", "TTR",
                 "Ack SLA", "Resolve SLA"],
        rows=[incident_row(e) for e in entries],
        widths=[0.8, 0.8, 0.9, 3, 1.3, 1.4, 0.7, 0.7, 0.8, 0.9], empty=EMPTY)


def incident_facts(entry: IncidentEntry) -> Table:
    rows = [
        ["Severity", entry.severity],
        ["Status", entry.status],
        ["Services", ", ".join(entry.services)],
        ["Assignee", entry.assignee or "-"],
        ["Declared", f"{when(entry.declared_at, seconds=True)} by {entry.declared_by}"],
        ["First response", "-" if entry.acknowledged_at is None else
         f"{when(entry.acknowledged_at, seconds=True)} by {entry.acknowledged_by or '-'}"
         f" (after {duration(entry.time_to_acknowledge_seconds)}; SLA {sla(entry.ack_sla)})"],
        ["Resolved", "-" if entry.resolved_at is None else
         f"{when(entry.resolved_at, seconds=True)} (after"
         f" {duration(entry.time_to_resolve_seconds)}; SLA {sla(entry.resolve_sla)})"],
    ]
    if entry.paged:
        rows.append(["Paged or assigned", people(entry.paged)])
    for times in entry.remote_times:
        acked = ("not acknowledged" if times.time_to_acknowledge_seconds is None else
                 f"acknowledged after {duration(times.time_to_acknowledge_seconds)}")
        resolved = ("not resolved" if times.time_to_resolve_seconds is None else
                    f"resolved after {duration(times.time_to_resolve_seconds)}")
        measured = (f"{acked} (SLA {sla(times.ack_sla)}), {resolved}"
                    f" (SLA {sla(times.resolve_sla)})")
        rows.append([f"In {times.connector}", measured])
    return Table(headers=["", ""], rows=rows, widths=[1, 4])


def remote_table(entry: IncidentEntry) -> Table:
    return Table(
        headers=["Connector", "Service", "Number", "Status", "Created", "TTA", "TTR", "Paged",
                 "Escalations", "Source", "Link"],
        rows=[[r.connector, r.service, remote_label(r), r.status or "-", when(r.created_at),
               duration(r.time_to_acknowledge_seconds), duration(r.time_to_resolve_seconds),
               people(r.paged),
               "; ".join(f"{when(e.at)} to {people(e.to)}" for e in r.escalations) or "-",
               r.source, r.url or "-"] for r in entry.remote],
        widths=[1.2, 0.8, 0.7, 1, 1.2, 0.6, 0.6, 1.6, 1.4, 0.7, 1.8])


def timeline_table(entry: IncidentEntry) -> Table:
    return Table(headers=["Time", "Event", "Actor", "System"],
                 rows=[[when(e.at, seconds=True), e.text, e.actor, e.system]
                       for e in entry.timeline],
                 widths=[1.4, 4.6, 1.5, 1.2], empty="No timeline events.")


def remote_log_title(remote: RemoteIncident) -> str:
    return f"Log of {remote.connector} {remote_label(remote)} ({remote.service})"


def remote_log_table(remote: RemoteIncident) -> Table:
    """A fetched remote incident's log, as the remote system recorded it."""
    return Table(headers=["Time", "Event", "Kind", "By", "To"],
                 rows=[[when(e.at, seconds=True), e.text, e.kind, e.actor or "-",
                        people(e.targets)] for e in remote.events],
                 widths=[1.4, 3.2, 1.1, 1.8, 2.2], empty="No log entries.")


def remote_logs(entry: IncidentEntry) -> list[tuple[str, Table]]:
    """The logs worth showing beside im's timeline: those fetched from the remote system
    (stored ones are already on the timeline)."""
    return [(remote_log_title(r), remote_log_table(r)) for r in entry.remote
            if r.source == "fetched" and r.events]
