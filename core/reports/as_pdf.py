"""The report as a PDF (reportlab): a title page with the key figures, charts, tables that
break across pages with their header row repeated, and every incident's timeline. A4
landscape, so the wide tables stay readable; the outline (bookmarks) lists every section and
incident."""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterable, Iterator
from typing import IO, Any
from xml.sax.saxutils import escape, quoteattr

from reportlab.lib import colors  # type: ignore[import-untyped]
from reportlab.lib.enums import TA_LEFT  # type: ignore[import-untyped]
from reportlab.lib.pagesizes import A4, landscape  # type: ignore[import-untyped]
from reportlab.lib.styles import ParagraphStyle  # type: ignore[import-untyped]
from reportlab.pdfbase.pdfmetrics import stringWidth  # type: ignore[import-untyped]
from reportlab.platypus import (  # type: ignore[import-untyped]
    BaseDocTemplate,
    CondPageBreak,
    Flowable,
    Frame,
    KeepTogether,
    NextPageTemplate,
    PageBreak,
    PageTemplate,
    Paragraph,
    Spacer,
)
from reportlab.platypus import Table as PdfTable  # type: ignore[import-untyped]
from reportlab.platypus import TableStyle  # type: ignore[import-untyped]

from im.humanize import printable
from im.reports.charts import all_charts, incidents_per_day, response_by_severity
from im.reports.model import IncidentEntry, Report
from im.reports.tables import (
    COMPLIANCE,
    EMPTY,
    RESPONSE_TIMES,
    Table,
    escalations_table,
    incident_facts,
    incident_row,
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

PAGE = landscape(A4)
MARGIN = 36
GRID = colors.HexColor("#c8ced6")
HEADER_FILL = colors.HexColor("#e9eef3")
MUTED = colors.HexColor("#57606a")

_base = ParagraphStyle("base", fontName="Helvetica", fontSize=9, leading=12, alignment=TA_LEFT)
STYLES = {
    "title": ParagraphStyle("title", _base, fontName="Helvetica-Bold", fontSize=30,
                            leading=36, spaceAfter=10),
    "subtitle": ParagraphStyle("subtitle", _base, fontSize=16, leading=20, spaceAfter=14),
    "h1": ParagraphStyle("h1", _base, fontName="Helvetica-Bold", fontSize=16, leading=20,
                         spaceBefore=6, spaceAfter=8),
    "h2": ParagraphStyle("h2", _base, fontName="Helvetica-Bold", fontSize=12, leading=15,
                         spaceBefore=10, spaceAfter=5),
    "h3": ParagraphStyle("h3", _base, fontName="Helvetica-Bold", fontSize=9.5, leading=12,
                         spaceBefore=6, spaceAfter=3, keepWithNext=1),
    "body": ParagraphStyle("body", _base, spaceAfter=5),
    "muted": ParagraphStyle("muted", _base, textColor=MUTED, spaceAfter=2),
    "note": ParagraphStyle("note", _base, backColor=colors.HexColor("#fff8c5"),
                           borderPadding=4, spaceBefore=4, spaceAfter=8),
    "empty": ParagraphStyle("empty", _base, fontName="Helvetica-Bold", fontSize=12,
                            leading=16, spaceBefore=6, spaceAfter=10),
    "cell": ParagraphStyle("cell", _base, fontSize=7.5, leading=9.2),
    "head": ParagraphStyle("head", _base, fontName="Helvetica-Bold", fontSize=7.5,
                           leading=9.2),
}


def _text(value: str) -> str:
    """Plain text as Paragraph markup (which is XML: &, < and > must be escaped), without
    control characters."""
    return escape(printable(value))


def _cell(value: str) -> str:
    value = printable(value)
    if value.startswith(("https://", "http://")) and " " not in value:
        href = quoteattr(value)  # the quoted, escaped attribute value
        return f'<link href={href} color="blue">{_text(value)}</link>'
    return _text(value)


class Chart(Flowable):  # type: ignore[misc]
    """A drawing placed as a PDF form XObject: vector graphics, and findable as a chart."""

    def __init__(self, name: str, drawing: Any) -> None:
        super().__init__()
        self.name = name
        self.drawing = drawing
        self.width, self.height = drawing.width, drawing.height

    def wrap(self, available_width: float, available_height: float) -> tuple[float, float]:
        return self.width, self.height

    def draw(self) -> None:
        from reportlab.graphics import renderPDF  # type: ignore[import-untyped]

        self.canv.beginForm(self.name)
        renderPDF.draw(self.drawing, self.canv, 0, 0)
        self.canv.endForm()
        self.canv.doForm(self.name)


class Heading(Paragraph):  # type: ignore[misc]
    """A heading that adds itself to the PDF outline."""

    def __init__(self, text: str, level: int, key: str) -> None:
        super().__init__(_text(text), STYLES[f"h{level + 1}"])
        self.outline = (text, level, key)
        self.keepWithNext = True


class ReportDocument(BaseDocTemplate):  # type: ignore[misc]
    def __init__(self, buffer: IO[bytes], report: Report) -> None:
        super().__init__(
            buffer, pagesize=PAGE, leftMargin=MARGIN, rightMargin=MARGIN, topMargin=MARGIN + 8,
            bottomMargin=MARGIN, title=f"{report.title}: {report.period}",
            author=report.generator, subject=f"Incidents declared {report.period}",
            creator=report.generator)
        self.report = report
        frame = Frame(self.leftMargin, self.bottomMargin, self.width, self.height, id="body")
        self.addPageTemplates([PageTemplate(id="title", frames=[frame]),
                               PageTemplate(id="body", frames=[frame], onPage=self._decorate)])

    def _decorate(self, canvas: Any, doc: Any) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 7.5)
        canvas.setFillColor(MUTED)
        top = PAGE[1] - MARGIN + 6
        canvas.drawString(MARGIN, top, f"{self.report.title}: {self.report.period}")
        canvas.drawRightString(PAGE[0] - MARGIN, top, f"Page {doc.page}")
        canvas.drawString(MARGIN, MARGIN - 18, f"Generated by {self.report.generator}; all"
                                               f" times {self.report.timezone}")
        canvas.restoreState()

    def afterFlowable(self, flowable: Any) -> None:
        outline = getattr(flowable, "outline", None)
        if outline:
            text, level, key = outline
            self.canv.bookmarkPage(key)
            self.canv.addOutlineEntry(text, key, level=level, closed=level > 0)


SHORT_TABLE = 15  # rows: a table this short moves to the next page whole rather than split


# A long table is laid out as consecutive tables of this many rows, drawn as one: reportlab
# lays out again every row left of a table at each page break, so one table of N rows cost
# O(N x pages) (a 20,000-line timeline 50 s); in chunks each page break costs one chunk.
CHUNK_ROWS = 50


def _table_cell(value: str, inner_width: float) -> Any:
    """A cell's content: the text itself when it fits on one line (drawn in the cell style's
    font), else a Paragraph, which wraps it (and makes a URL a link). A Paragraph is parsed
    and laid out, most of a long table's cost: most cells (times, names) fit on a line."""
    text = printable(value)
    cell = STYLES["cell"]
    if ("\n" not in text and not text.startswith(("https://", "http://"))
            and stringWidth(text, cell.fontName, cell.fontSize) <= inner_width):
        return text
    return Paragraph(_cell(value), cell)


def _chunk(header: list[Any] | None, rows: list[list[Any]], widths: list[float],
           label_column: bool) -> Any:
    """One table of a long table's rows, styled as the whole; `header` repeated at its page
    breaks; `label_column`: a table without a header has its first column shaded."""
    cell = STYLES["cell"]
    result = PdfTable(([header] if header else []) + rows, colWidths=widths,
                      repeatRows=1 if header else 0, hAlign="LEFT")
    style = [("GRID", (0, 0), (-1, -1), 0.4, GRID), ("VALIGN", (0, 0), (-1, -1), "TOP"),
             ("FONT", (0, 0), (-1, -1), cell.fontName, cell.fontSize, cell.leading),
             ("TOPPADDING", (0, 0), (-1, -1), 2), ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
             ("LEFTPADDING", (0, 0), (-1, -1), 3), ("RIGHTPADDING", (0, 0), (-1, -1), 3)]
    if header:
        style.append(("BACKGROUND", (0, 0), (-1, 0), HEADER_FILL))
    elif label_column:
        style.append(("BACKGROUND", (0, 0), (0, -1), HEADER_FILL))
    result.setStyle(TableStyle(style))
    return result


class _Continued(Flowable):  # type: ignore[misc]
    """The rows of a long table after its first chunk: drawn on under the chunk before
    without a header row, but at the top of a page with the header again, as one long table
    repeats it at each page break."""

    def __init__(self, header: list[Any] | None, rows: list[list[Any]], widths: list[float],
                 label_column: bool) -> None:
        super().__init__()
        self._header, self._rows, self._widths = header, rows, widths
        self._label_column = label_column
        self._table: Any = None
        self._at_top: bool | None = None

    def _laid_out(self) -> Any:
        frame = getattr(self, "_frame", None)  # set by the frame that places it
        at_top = bool(frame is not None and frame._atTop)
        if self._table is None or at_top != self._at_top:
            self._at_top = at_top
            self._table = _chunk(self._header if at_top else None, self._rows, self._widths,
                                 self._label_column)
        return self._table

    def wrap(self, available_width: float, available_height: float) -> tuple[float, float]:
        width, height = self._laid_out().wrap(available_width, available_height)
        return width, height

    def split(self, available_width: float, available_height: float) -> list[Any]:
        table = self._laid_out()
        parts = table.split(available_width, available_height)
        if not parts or self._at_top:
            return parts  # at the top: the header repeats at the break by itself
        shown = len(parts[0]._cellvalues)
        return [parts[0], _Continued(self._header, self._rows[shown:], self._widths,
                                     self._label_column)]

    def drawOn(self, canvas: Any, x: float, y: float, _sW: float = 0) -> None:  # noqa: N802,N803
        self._table.drawOn(canvas, x, y, _sW)


def _layout(headers: list[str], weights: list[float] | None, width: float
            ) -> tuple[list[float], list[float], list[Any] | None]:
    weights = weights or [1.0] * len(headers)
    widths = [width * w / sum(weights) for w in weights]
    inner = [w - 6 for w in widths]  # less the cell's left and right padding
    header = ([Paragraph(_text(h), STYLES["head"]) for h in headers] if any(headers)
              else None)
    return widths, inner, header


def table(data: Table, width: float) -> list[Any]:
    """The flowables of a table: splat them into a story (`*table(...)`)."""
    if not data.rows:
        return [Paragraph(_text(data.empty), STYLES["body"])]
    widths, inner, header = _layout(data.headers, data.widths, width)
    label_column = header is None
    chunks: list[Any] = []
    for start in range(0, len(data.rows), CHUNK_ROWS):
        rows = [[_table_cell(c, inner[i]) for i, c in enumerate(row)]
                for row in data.rows[start:start + CHUNK_ROWS]]
        chunks.append(_chunk(header, rows, widths, label_column) if start == 0
                      else _Continued(header, rows, widths, label_column))
    return [KeepTogether(chunks)] if len(data.rows) <= SHORT_TABLE else chunks


_PAD_TOP, _PAD_BOTTOM, _PAD_SIDE = 2, 3, 3  # a cell's padding, as _chunk styles a table's
_MOST_LINES = 12  # a cell wraps to this many lines at most; the rest ends in "..."


def _lines(text: str, font: str, size: float, width: float) -> list[str]:
    from reportlab.lib.utils import simpleSplit  # type: ignore[import-untyped]

    text = printable(text)
    # No Helvetica glyph is wider than the font size: a short text fits without measuring.
    if "\n" not in text and (len(text) * size <= width
                             or stringWidth(text, font, size) <= width):
        return [text]
    lines = simpleSplit(text, font, size, width) or [""]
    return lines if len(lines) <= _MOST_LINES else [*lines[:_MOST_LINES - 1], "..."]


class _Rows(Flowable):  # type: ignore[misc]
    """Rows of a long list of plain text (a period's incidents) drawn straight on the canvas,
    laid out as `table` lays out a table (the same grid, fonts, padding and header, repeated
    at the top of each page; text wraps within its cell) at a fraction of a reportlab Table's
    cost, which at 100,000 rows was most of the PDF's time. `first`: the list's first rows,
    under its header wherever they land; the others show the header only at a page's top."""

    def __init__(self, header: list[list[str]], rows: list[list[list[str]]],
                 widths: list[float], first: bool) -> None:
        super().__init__()
        self._header, self._rows, self._widths, self._first = header, rows, widths, first
        self._heights = [self._height(row, STYLES["cell"].leading) for row in rows]
        self._header_height = self._height(header, STYLES["head"].leading)
        self._with_header = first

    @staticmethod
    def _height(row: list[list[str]], leading: float) -> float:
        return max(len(lines) for lines in row) * leading + _PAD_TOP + _PAD_BOTTOM

    def _shows_header(self) -> bool:
        frame = getattr(self, "_frame", None)  # set by the frame that places it
        return self._first or bool(frame is not None and frame._atTop)

    def wrap(self, available_width: float, available_height: float) -> tuple[float, float]:
        self._with_header = self._shows_header()
        self.width = sum(self._widths)
        self.height = sum(self._heights) + (self._header_height if self._with_header else 0)
        return self.width, self.height

    def split(self, available_width: float, available_height: float) -> list[Any]:
        with_header = self._shows_header()
        used = self._header_height if with_header else 0
        fit = 0
        for height in self._heights:
            if used + height > available_height:
                break
            used += height
            fit += 1
        if fit == 0:
            if not with_header or self._first:  # on to the next page, header and all
                return []
            fit = 1  # a row taller than a page: drawn past its bottom rather than lost
        head = _Rows(self._header, self._rows[:fit], self._widths, self._first)
        head._first = with_header  # shown as it was measured here
        return [head, _Rows(self._header, self._rows[fit:], self._widths, False)]

    def draw(self) -> None:
        canv = self.canv
        cell, head = STYLES["cell"], STYLES["head"]
        rows = [(self._header, self._header_height, head)] if self._with_header else []
        rows += [(row, height, cell) for row, height in zip(self._rows, self._heights,
                                                            strict=True)]
        lefts = list(itertools.accumulate([0.0, *self._widths]))
        top = self.height
        if self._with_header:
            canv.setFillColor(HEADER_FILL)
            canv.rect(0, top - self._header_height, self.width, self._header_height,
                      stroke=0, fill=1)
        canv.setFillColor(colors.black)
        text = canv.beginText()
        y = top
        for row, height, style in rows:
            text.setFont(style.fontName, style.fontSize, style.leading)
            for left, lines in zip(lefts, row, strict=False):
                baseline = y - _PAD_TOP - style.fontSize
                for line in lines:
                    text.setTextOrigin(left + _PAD_SIDE, baseline)
                    # the text alone: textOut would measure it to move a cursor not used
                    text._textOut(line)
                    baseline -= style.leading
            y -= height
        canv.drawText(text)
        canv.setStrokeColor(GRID)
        canv.setLineWidth(0.4)
        edges = list(itertools.accumulate([top, *(-h for _, h, _ in rows)]))
        canv.lines([(0, e, self.width, e) for e in edges]
                   + [(x, top, x, edges[-1]) for x in lefts])


def _long_table(headers: list[str], weights: list[float], rows: Iterable[list[str]],
                width: float) -> Iterator[Any]:
    """A table of rows that come one at a time (a report's incidents): laid out a chunk
    (CHUNK_ROWS) at a time as the page layout asks for them, drawn as _Rows."""
    widths, inner, _ = _layout(headers, weights, width)
    cell, head = STYLES["cell"], STYLES["head"]
    header = [_lines(h, head.fontName, head.fontSize, inner[i]) for i, h in enumerate(headers)]
    chunk: list[list[list[str]]] = []
    first = True
    for row in rows:
        chunk.append([_lines(c, cell.fontName, cell.fontSize, inner[i])
                      for i, c in enumerate(row)])
        if len(chunk) == CHUNK_ROWS:
            yield _Rows(header, chunk, widths, first)
            chunk, first = [], False
    if chunk:
        yield _Rows(header, chunk, widths, first)


class _Story(list):  # type: ignore[type-arg]
    """A story whose flowables are made as the layout reaches them: reportlab takes a list
    and reads a few flowables ahead of the one it places (those kept with the next), so this
    list holds those few and fills up from `more` whenever it is read."""

    AHEAD = 32

    def __init__(self, more: Iterator[Any]) -> None:
        super().__init__()
        self._more: Iterator[Any] | None = more

    def _fill(self, wanted: int) -> None:
        while self._more is not None and list.__len__(self) < wanted:
            try:
                self.append(next(self._more))
            except StopIteration:
                self._more = None

    def __len__(self) -> int:
        self._fill(self.AHEAD)
        return list.__len__(self)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, int) and index >= 0:
            self._fill(max(index + 1, self.AHEAD))
        return list.__getitem__(self, index)


# The PDF lays out the timelines of this many incidents (the first of the period): past a
# few hundred pages nobody reads them there, and each costs reportlab milliseconds (100,000
# would take minutes). The JSON report holds every incident's.
TIMELINES = 1000


def _timelines_note(report: Report) -> str | None:
    count = report.summary.incidents
    if count <= TIMELINES:
        return None
    return (f"This PDF lists all {count:,} incidents but shows the timelines of the first"
            f" {TIMELINES:,} only; the JSON report (im report --format json) holds every"
            " incident's timeline.")


def _title_page(report: Report, width: float) -> list[Any]:
    story: list[Any] = [
        Spacer(1, 40),
        Paragraph(_text(report.title), STYLES["title"]),
        Paragraph(_text(report.period), STYLES["subtitle"]),
    ]
    story += [Paragraph(_text(line), STYLES["muted"]) for line in scope(report)]
    story.append(Spacer(1, 10))
    if report.empty:
        story.append(Paragraph(_text(EMPTY), STYLES["empty"]))
    notes = [*report.notes, *filter(None, [_timelines_note(report)])]
    story += [Paragraph(_text(f"Note: {note}"), STYLES["note"]) for note in notes]
    story += [Paragraph("Key figures", STYLES["h2"]), *table(key_figures(report), width * 0.7)]
    contents = ["Charts", "Response times", "SLA compliance", "On-call effectiveness",
                "Incidents", "Incident timelines"]
    story += [Paragraph("Contents", STYLES["h2"]),
              Paragraph(_text(" / ".join(contents)), STYLES["body"])]
    return story


def render_pdf(report: Report) -> bytes:
    buffer = io.BytesIO()
    write_pdf(report, report.incidents, buffer)
    return buffer.getvalue()


def _incident_rows(entries: Iterable[IncidentEntry]) -> Iterator[list[str]]:
    for entry in entries:
        yield incident_row(entry)


def _timelines(entries: Iterable[IncidentEntry], width: float) -> Iterator[Any]:
    for entry in entries:
        yield from [CondPageBreak(120),
                    Heading(f"{entry.id}: {entry.title}", 1, f"incident-{entry.id}"),
                    *table(incident_facts(entry), width * 0.75)]
        if entry.remote:
            yield from [Paragraph("Linked remote incidents", STYLES["h3"]),
                        *table(remote_table(entry), width)]
        yield from [Paragraph("Timeline", STYLES["h3"]), *table(timeline_table(entry), width)]
        for title, log in remote_logs(entry):
            yield from [Paragraph(_text(title), STYLES["h3"]), *table(log, width)]
        yield Spacer(1, 8)


def write_pdf(report: Report, entries: Iterable[IncidentEntry], out: IO[bytes]) -> None:
    """The PDF of `report` whose incidents are `entries` (read twice, for the table of
    incidents and for their timelines): the figures and charts first, then the incidents
    laid out as the pages reach them, never all at once; the timelines of the first
    TIMELINES incidents."""
    doc = ReportDocument(out, report)
    width = doc.width
    story: list[Any] = _title_page(report, width)
    story += [NextPageTemplate("body"), PageBreak()]

    story.append(Heading("Charts", 0, "charts"))
    if report.empty:
        story.append(Paragraph(_text(EMPTY), STYLES["empty"]))
    elif all_charts(report):
        half = (width - 20) / 2
        story.append(Chart("IncidentsPerDay", incidents_per_day(report, width=width)))
        story.append(Spacer(1, 12))
        pair = PdfTable([[Chart("TimeToAcknowledge",
                                response_by_severity(report, "acknowledge", width=half)),
                          Chart("TimeToResolve",
                                response_by_severity(report, "resolve", width=half))]],
                        colWidths=[half + 10, half + 10], hAlign="LEFT")
        pair.setStyle(TableStyle([("LEFTPADDING", (0, 0), (-1, -1), 0)]))
        story.append(pair)

    story += [CondPageBreak(200), Heading("Response times", 0, "response"),
              Paragraph(_text(RESPONSE_TIMES), STYLES["body"]),
              Heading("By severity", 1, "response-severity"),
              *table(response_table(report.response_by_severity, "Severity"), width),
              Heading("By service", 1, "response-service"),
              *table(response_table(report.response_by_service, "Service"), width)]
    story += [CondPageBreak(200), Heading("SLA compliance", 0, "sla"),
              KeepTogether([Paragraph("Targets", STYLES["h3"]),
                            *table(sla_targets_table(report), width * 0.6)]),
              Paragraph(_text(COMPLIANCE), STYLES["body"]),
              *table(sla_table(report), width)]
    story += [CondPageBreak(200), Heading("On-call effectiveness", 0, "oncall"),
              Heading("Responders", 1, "responders"), *table(responders_table(report), width),
              Heading("Escalations", 1, "escalations"),
              *table(escalations_table(report), width)]
    story += [PageBreak(), Heading("Incidents", 0, "incidents")]
    count = report.summary.incidents
    listed = incidents_table([])
    if count <= SHORT_TABLE:  # a short table moves to the next page whole, as `table` does
        story += table(incidents_table(list(entries)), width)
        more: Iterator[Any] = iter(())
    else:
        more = _long_table(listed.headers, listed.widths or [], _incident_rows(entries),
                           width)
    if count:
        note = _timelines_note(report)
        more = itertools.chain(
            more, [PageBreak(), Heading("Incident timelines", 0, "timelines")],
            [Paragraph(_text(note), STYLES["body"])] if note else [],
            _timelines(itertools.islice(entries, TIMELINES), width))
    doc.build(_Story(itertools.chain(story, more)))
