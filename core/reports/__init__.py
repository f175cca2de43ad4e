"""Incident reports: `im report --start DAY --end DAY --format pdf|html|md|json|csv`.

    from im.reports import build_report, parse_period, render

    report = build_report(runtime, parse_period("2025-08-01", "2025-08-31"))
    data = render(report, "md")

Building gathers and computes (im.reports.build); each format only presents the Report. The
PDF and HTML formats import reportlab when they run, never when im starts.
"""

from __future__ import annotations

from im.errors import InvalidInputError
from im.reports.build import build_report, can_describe, resolve_includes
from im.reports.model import Report
from im.reports.period import Period, parse_period
from im.reports.remote import RemoteEvent, RemoteIncidentReport, RemoteIncidentRequest

FORMATS = ("pdf", "html", "md", "json", "csv")
_ALIASES = {"markdown": "md", "htm": "html"}


def parse_format(value: str) -> str:
    name = value.strip().lower()
    name = _ALIASES.get(name, name)
    if name not in FORMATS:
        raise InvalidInputError(f"unknown format {value!r}; choose from {', '.join(FORMATS)}")
    return name


def default_filename(period: Period, format: str) -> str:
    return f"im-report-{period.start.isoformat()}-to-{period.end.isoformat()}.{format}"


def render(report: Report, format: str) -> bytes:
    """The report in one of FORMATS, as the bytes of a file."""
    name = parse_format(format)
    if name == "json":
        from im.reports.as_json import render_json

        return render_json(report)
    if name == "csv":
        from im.reports.as_csv import render_csv

        return render_csv(report)
    if name == "md":
        from im.reports.as_markdown import render_markdown

        return render_markdown(report)
    if name == "html":
        from im.reports.as_html import render_html

        return render_html(report)
    from im.reports.as_pdf import render_pdf

    return render_pdf(report)


__all__ = [
    "FORMATS", "Period", "RemoteEvent", "RemoteIncidentReport", "RemoteIncidentRequest",
    "Report", "build_report", "can_describe", "default_filename", "parse_format",
    "parse_period", "render", "resolve_includes",
]
