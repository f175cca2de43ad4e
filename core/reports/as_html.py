"""The report as one self-contained HTML page: inline CSS, charts as inline SVG, no scripts
and nothing fetched, so it can be mailed or archived as it is."""

from __future__ import annotations

import html
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

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
       color: #1d1d1f; max-width: 1100px; margin: 2em auto; padding: 0 1em; }
h1 { font-size: 1.9em; margin-bottom: .2em; }
h2 { border-bottom: 2px solid #d0d7de; padding-bottom: .2em; margin-top: 2em; }
h3 { margin-top: 1.6em; }
table { border-collapse: collapse; width: 100%; margin: .6em 0 1.2em; font-size: .9em; }
th, td { border: 1px solid #d0d7de; padding: .3em .5em; text-align: left; vertical-align: top; }
th { background: #f0f3f6; }
thead { display: table-header-group; }
tr { break-inside: avoid; }
td { overflow-wrap: anywhere; }
.facts td:first-child { width: 12em; font-weight: 600; }
.note { background: #fff8c5; border: 1px solid #d4a72c; padding: .5em .8em; }
.empty { font-weight: 600; font-size: 1.1em; }
.scope { color: #57606a; }
figure { margin: 1em 0; }
figure svg { max-width: 100%; height: auto; }
.met { color: #1a7f37; }
.breached { color: #cf222e; font-weight: 600; }
.pending { color: #9a6700; }
"""

def escape(text: str) -> str:
    """Text as HTML, without the control characters a reader's terminal or browser would act
    on (see im.humanize.printable)."""
    return html.escape(printable(text))


_URL = re.compile(r"^https?://\S+$")
_STATES = {"met", "breached", "pending"}


def _cell(text: str, tag: str = "td") -> str:
    if _URL.match(text):
        return f'<{tag}><a href="{escape(text)}">{escape(text)}</a></{tag}>'
    if text in _STATES:
        return f'<{tag} class="{text}">{text}</{tag}>'
    return f"<{tag}>{escape(text)}</{tag}>"


def table(data: Table, css: str = "", link_ids: bool = False) -> str:
    if not data.rows:
        return f"<p>{escape(data.empty)}</p>"
    cls = f' class="{css}"' if css else ""
    head = "" if not any(data.headers) else (
        "<thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in data.headers)
        + "</tr></thead>")
    rows = []
    for row in data.rows:
        cells = [_cell(c) for c in row]
        if link_ids:  # the first column names an incident detailed further down
            cells[0] = f'<td><a href="#{escape(row[0])}">{escape(row[0])}</a></td>'
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table{cls}>{head}<tbody>{''.join(rows)}</tbody></table>"


def _svg(drawing: object) -> str:
    from reportlab.graphics import renderSVG  # type: ignore[import-untyped]

    text: str = renderSVG.drawToString(drawing)
    # An inline <svg> takes no XML declaration or DOCTYPE.
    return text[text.index("<svg"):]


def render_html(report: Report) -> bytes:
    from im.reports.charts import all_charts

    title = f"{report.title}: {report.period}"
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>",
        (f"<header><h1>{escape(report.title)}</h1><p><strong>{escape(report.period)}"
         "</strong></p>"),
        '<ul class="scope">' + "".join(f"<li>{escape(line)}</li>" for line in scope(report))
        + "</ul></header>",
    ]
    out += [f'<p class="note">Note: {escape(note)}</p>' for note in report.notes]
    out += ['<section id="summary"><h2>Summary</h2>', table(key_figures(report), "facts")]
    if report.empty:
        out.append(f'<p class="empty">{escape(EMPTY)}</p>')
    out.append("</section>")
    charts = all_charts(report, wide=720)
    if charts:
        out.append('<section id="charts"><h2>Charts</h2>')
        out += [f'<figure id="chart-{name}">{_svg(drawing)}</figure>'
                for name, drawing in charts]
        out.append("</section>")
    out += [
        '<section id="response-times"><h2>Response times</h2>',
        f"<p>{escape(RESPONSE_TIMES)}</p>",
        "<h3>By severity</h3>", table(response_table(report.response_by_severity, "Severity")),
        "<h3>By service</h3>", table(response_table(report.response_by_service, "Service")),
        "</section>",
        '<section id="sla"><h2>SLA compliance</h2>', table(sla_targets_table(report)),
        f"<p>{escape(COMPLIANCE)}</p>", table(sla_table(report)), "</section>",
        '<section id="on-call"><h2>On-call effectiveness</h2><h3>Responders</h3>',
        table(responders_table(report)), "<h3>Escalations</h3>",
        table(escalations_table(report)), "</section>",
        '<section id="per-day"><h2>Incidents per day</h2>',
        "<p>Days without incidents are left out.</p>", table(daily_table(report)),
        "</section>",
        '<section id="incidents"><h2>Incidents</h2>',
        table(incidents_table(report), link_ids=True),
    ]
    for entry in report.incidents:
        out += [f'<article id="{escape(entry.id)}"><h3>{escape(entry.id)}: {escape(entry.title)}'
                "</h3>" + table(incident_facts(entry), "facts")]
        if entry.remote:
            out += ["<h4>Linked remote incidents</h4>", table(remote_table(entry))]
        out += ["<h4>Timeline</h4>", table(timeline_table(entry))]
        for title, log in remote_logs(entry):
            out += [f"<h4>{escape(title)}</h4>", table(log)]
        out.append("</article>")
    out += ["</section>", "</body></html>"]
    return ("\n".join(out) + "\n").encode()
