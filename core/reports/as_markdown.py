"""The report as Markdown (GitHub-flavoured tables), for wikis, tickets and e-mail."""

from __future__ import annotations

import re

from im.humanize import printable
from im.reports.model import Report
from im.reports.tables import (
    COMPLIANCE,
    EMPTY,
    RESPONSE_TIMES,
    Table,
    daily_table,
    escalations_table,
    incident_facts,
    incidents_table,
    key_figures,
    remote_logs,
    remote_table,
    response_table,
    responders_table,
    scope,
    sla_table,
    sla_targets_table,
    timeline_table,
)


_URL = re.compile(r"^https?://[^\s<>]+$")


def _cell(text: str) -> str:
    text = printable(text)
    if _URL.match(text):
        return f"<{text}>"  # an autolink: nothing inside it is markup
    return _escape(text) or " "


def table(data: Table) -> str:
    if not data.rows:
        return data.empty
    headers = [_cell(h) for h in data.headers]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in data.rows]
    return "\n".join(lines)


def _escape(text: str) -> str:
    """Inline text that Markdown must not read as markup."""
    out = " ".join(printable(text).split())
    for char in "\\`*_[]<>#|":
        out = out.replace(char, "\\" + char)
    return out


def render_markdown(report: Report) -> bytes:
    parts = [f"# {_escape(report.title)}: {report.period}", "\n".join(
        f"- {_escape(line)}" for line in scope(report))]
    for note in report.notes:
        parts.append(f"> Note: {_escape(note)}")
    parts += ["## Summary", table(key_figures(report))]
    if report.empty:
        parts.append(f"**{EMPTY}**")
    parts += [
        "## Response times by severity",
        RESPONSE_TIMES,
        table(response_table(report.response_by_severity, "Severity")),
        "## Response times by service",
        table(response_table(report.response_by_service, "Service")),
        "## SLA compliance",
        table(sla_targets_table(report)),
        COMPLIANCE,
        table(sla_table(report)),
        "## On-call effectiveness",
        "### Responders",
        table(responders_table(report)),
        "### Escalations",
        table(escalations_table(report)),
        "## Incidents per day",
        "Days without incidents are left out.",
        table(daily_table(report)),
        "## Incidents",
        table(incidents_table(report)),
    ]
    for entry in report.incidents:
        parts += [f"### {entry.id}: {_escape(entry.title)}", table(incident_facts(entry))]
        if entry.remote:
            parts += ["#### Linked remote incidents", table(remote_table(entry))]
        parts += ["#### Timeline", table(timeline_table(entry))]
        for title, log in remote_logs(entry):
            parts += [f"#### {_escape(title)}", table(log)]
    return ("\n\n".join(parts) + "\n").encode()
