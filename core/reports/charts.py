"""The report's charts as reportlab drawings: vector graphics in the PDF, SVG in the HTML.
Only the PDF and HTML formats import this module (reportlab is not needed to start im)."""

from __future__ import annotations

import math

from reportlab.graphics.charts.barcharts import VerticalBarChart  # type: ignore[import-untyped]
from reportlab.graphics.charts.legends import Legend  # type: ignore[import-untyped]
from reportlab.graphics.shapes import Drawing, String  # type: ignore[import-untyped]
from reportlab.lib import colors  # type: ignore[import-untyped]

from im.reports.model import Report, ResponseRow
from im.reports.tables import duration

SEVERITY_COLORS = {
    "SEV-1": colors.HexColor("#b3261e"),
    "SEV-2": colors.HexColor("#e8710a"),
    "SEV-3": colors.HexColor("#f2b600"),
    "SEV-4": colors.HexColor("#5f7d95"),
}
MEDIAN_COLOR = colors.HexColor("#1f6feb")
P90_COLOR = colors.HexColor("#9ec5fe")
FONT = "Helvetica"
TITLE_FONT = "Helvetica-Bold"


def _nice_step(top: float, ticks: int = 5) -> float:
    """A step of 1, 2 or 5 times a power of ten giving about `ticks` ticks up to `top`."""
    if top <= 0:
        return 1
    raw = top / ticks
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power


def _titled(width: float, height: float, title: str) -> Drawing:
    drawing = Drawing(width, height)
    drawing.add(String(0, height - 12, title, fontName=TITLE_FONT, fontSize=10))
    return drawing


def incidents_per_day(report: Report, width: float = 480, height: float = 230) -> Drawing:
    """Stacked bars: incidents declared each day, by severity."""
    drawing = _titled(width, height, "Incidents per day by severity")
    severities = list(SEVERITY_COLORS)
    days = report.daily
    chart = VerticalBarChart()
    chart.x, chart.y, chart.width, chart.height = 32, 40, width - 110, height - 70
    chart.data = [[d.by_severity.get(s, 0) for d in days] for s in severities]
    chart.categoryAxis.style = "stacked"
    every = max(1, math.ceil(len(days) / 16))
    chart.categoryAxis.categoryNames = [
        d.day.strftime("%m-%d") if i % every == 0 else "" for i, d in enumerate(days)]
    chart.categoryAxis.labels.angle = 60
    chart.categoryAxis.labels.boxAnchor = "ne"
    chart.categoryAxis.labels.fontName = FONT
    chart.categoryAxis.labels.fontSize = 6
    top = max((d.total for d in days), default=0)
    step = max(1, _nice_step(top))
    chart.valueAxis.valueMin = 0
    chart.valueAxis.valueMax = max(step, math.ceil(top / step) * step)
    chart.valueAxis.valueStep = step
    chart.valueAxis.labels.fontName = FONT
    chart.valueAxis.labels.fontSize = 7
    chart.valueAxis.labelTextFormat = lambda value: f"{value:g}"
    chart.groupSpacing = 1 if len(days) > 20 else 3
    for index, severity in enumerate(severities):
        chart.bars[index].fillColor = SEVERITY_COLORS[severity]
        chart.bars[index].strokeColor = None
    drawing.add(chart)
    drawing.add(_legend(width - 70, height - 40,
                        [(SEVERITY_COLORS[s], s) for s in severities]))
    return drawing


def _legend(x: float, y: float, pairs: list[tuple[object, str]]) -> Legend:
    legend = Legend()
    legend.x, legend.y = x, y
    legend.alignment = "right"
    legend.fontName = FONT
    legend.fontSize = 7
    legend.dx = legend.dy = 7
    legend.deltay = 10
    legend.columnMaximum = len(pairs)
    legend.colorNamePairs = pairs
    return legend


def _unit(seconds: float) -> tuple[float, str]:
    if seconds <= 2 * 3600:
        return 60, "minutes"
    if seconds <= 72 * 3600:
        return 3600, "hours"
    return 86400, "days"


def response_by_severity(report: Report, which: str, width: float = 480,
                         height: float = 190) -> Drawing:
    """Median and 90th percentile of the time to acknowledge (`which` = "acknowledge") or to
    resolve ("resolve") for each severity, measured in im."""
    label = "acknowledge" if which == "acknowledge" else "resolve"
    rows: list[ResponseRow] = [r for r in report.response_by_severity
                               if r.measured_in == "im" and r.group in SEVERITY_COLORS]
    measures = [getattr(r, which) for r in rows]
    medians = [m.median_seconds for m in measures]
    p90s = [m.p90_seconds for m in measures]
    top = max([v for v in medians + p90s if v is not None], default=0.0)
    unit, unit_name = _unit(top)
    drawing = _titled(width, height, f"Time to {label} by severity ({unit_name};"
                                     " median and 90th percentile)")
    chart = VerticalBarChart()
    chart.x, chart.y, chart.width, chart.height = 40, 25, width - 130, height - 55
    chart.data = [[(v or 0) / unit for v in medians], [(v or 0) / unit for v in p90s]]
    chart.categoryAxis.categoryNames = [r.group for r in rows]
    chart.categoryAxis.labels.fontName = FONT
    chart.categoryAxis.labels.fontSize = 8
    step = _nice_step(top / unit) if top else 1
    chart.valueAxis.valueMin = 0
    chart.valueAxis.valueMax = max(step, math.ceil(top / unit / step) * step)
    chart.valueAxis.valueStep = step
    chart.valueAxis.labels.fontName = FONT
    chart.valueAxis.labels.fontSize = 7
    chart.valueAxis.labelTextFormat = lambda value: f"{value:g}"
    chart.bars[0].fillColor = MEDIAN_COLOR
    chart.bars[1].fillColor = P90_COLOR
    chart.bars.strokeColor = None
    chart.barLabels.fontName = FONT
    chart.barLabels.fontSize = 6
    chart.barLabels.nudge = 5
    chart.barLabelFormat = lambda value: duration(value * unit) if value else ""
    drawing.add(chart)
    drawing.add(_legend(width - 85, height - 40,
                        [(MEDIAN_COLOR, "median"), (P90_COLOR, "90th percentile")]))
    return drawing


def all_charts(report: Report, *, wide: float = 480, narrow: float = 480
               ) -> list[tuple[str, Drawing]]:
    """(name, drawing) of each chart, in reading order; none for an empty report."""
    if report.empty:
        return []
    return [("IncidentsPerDay", incidents_per_day(report, width=wide)),
            ("TimeToAcknowledge", response_by_severity(report, "acknowledge", width=narrow)),
            ("TimeToResolve", response_by_severity(report, "resolve", width=narrow))]
