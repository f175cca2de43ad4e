"""`im report --format pdf`: the file opens, holds the expected text, charts and outline, and
its tables break across pages with their header row repeated."""

import io
import re

import pypdf

import test_reports
from im import incidents
from im.models import Origin
from test_reports import im

# The fixtures of the known month (see test_reports.py).
august, clock, paging, runtime = (test_reports.august, test_reports.clock, test_reports.paging,
                                  test_reports.runtime)

CHARTS = {"/FormXob.IncidentsPerDay", "/FormXob.TimeToAcknowledge", "/FormXob.TimeToResolve"}


def pdf(runtime, folder, *options, start="2025-08-01", end="2025-08-31"):
    path = folder / "report.pdf"
    result = im(runtime, "report", "--start", start, "--end", end, "-o", str(path), *options)
    assert result.exit_code == 0, result.output
    return pypdf.PdfReader(path)


def texts(reader):
    return [page.extract_text() for page in reader.pages]


def forms(page):
    """The form XObjects a page draws (the charts), with their content streams."""
    resources = page.get("/Resources") or {}
    objects = resources.get("/XObject") or {}
    return {name: ref.get_object() for name, ref in objects.items()
            if ref.get_object().get("/Subtype") == "/Form"}


def outline_titles(items):
    for item in items:
        if isinstance(item, list):
            yield from outline_titles(item)
        else:
            yield item.title


def test_the_pdf_opens_with_title_page_charts_tables_and_timelines(august, tmp_path):
    reader = pdf(august, tmp_path, "--include-paging")
    assert reader.metadata.title == "Incident report: 2025-08-01 to 2025-08-31"
    pages = texts(reader)
    title = pages[0]
    for expected in ("Incident report", "2025-08-01 to 2025-08-31", "Key figures",
                     "Incidents declared", "median 16m, p90 52m30s",
                     "acknowledge 57.1%, resolve 66.7%",
                     "Linked remote incidents of ops (paging): 8 linked, 6 fetched."):
        assert expected in title, expected
    assert "Note: ops: 1 remote incident(s) could not be fetched" in title
    everything = "\n".join(pages)
    for expected in ("Response times", "SLA compliance", "On-call effectiveness",
                     "Incident timelines", "INC-4: Payments | <failing> & slow",
                     "Acknowledged by bob", "Escalated to level 2", "dan@example.com",
                     "Incidents per day by severity", "Time to resolve by severity"):
        assert expected in everything, expected
    # The charts: three vector drawings, each a form XObject with content, on one page.
    chart_pages = [i for i, page in enumerate(reader.pages) if set(forms(page)) == CHARTS]
    assert len(chart_pages) == 1
    for form in forms(reader.pages[chart_pages[0]]).values():
        assert len(form.get_data()) > 500
    # Numbers in the tables, as laid out (one cell a line).
    assert "SEV-1\nim\n3\n3\n8m\n11m12s\n3\n50m\n1h46m" in everything
    assert "SEV-1\nops\n3\n3\n5m\n10m36s\n3\n50m\n1h46m" in everything
    titles = list(outline_titles(reader.outline))
    assert titles[:4] == ["Charts", "Response times", "By severity", "By service"]
    assert "INC-3: Database cluster failure" in titles and "SLA compliance" in titles


def test_a_long_timeline_breaks_across_pages_repeating_its_header(runtime, clock, tmp_path):
    incident = incidents.declare(runtime, title="Noisy incident", severity="SEV-3",
                                 services=["web"], origin=Origin(actor="alice"))
    for number in range(1, 121):
        clock.advance(minutes=1)
        incidents.add_note(runtime, incident.id, f"Status update number {number:03d}",
                           origin=Origin(actor="alice"))
    pages = texts(pdf(runtime, tmp_path))
    with_notes = [text for text in pages if "Status update number" in text]
    assert len(with_notes) >= 3
    for text in with_notes:
        assert "Time\nEvent\nActor\nSystem\n" in text  # the header row, on every page
    found = [int(n) for text in with_notes for n in re.findall(r"Status update number (\d+)",
                                                                text)]
    assert found == list(range(1, 121))  # every row once, in order, none lost at a break


def test_an_empty_period_gives_a_pdf_that_says_so(runtime, tmp_path):
    reader = pdf(runtime, tmp_path, start="2025-02-01", end="2025-02-28")
    pages = texts(reader)
    assert "No incidents were declared in this period." in pages[0]
    assert "Incidents declared\n0" in pages[0]
    assert not any(forms(page) for page in reader.pages)


def test_the_default_pdf_file(runtime, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = im(runtime, "report", "--start", "2025-08-01", "--end", "2025-08-31")
    assert result.stdout == ("Wrote im-report-2025-08-01-to-2025-08-31.pdf (pdf): no incidents"
                             " declared from 2025-08-01 to 2025-08-31\n")
    data = (tmp_path / "im-report-2025-08-01-to-2025-08-31.pdf").read_bytes()
    assert data.startswith(b"%PDF-") and len(pypdf.PdfReader(io.BytesIO(data)).pages) >= 2


def test_many_incidents_read_in_batches_are_each_laid_out_once_in_order(runtime, clock,
                                                                       tmp_path, monkeypatch):
    """The PDF's incidents come from the store a batch at a time and are laid out as the
    pages reach them: the table of incidents (in chunks, its header on each page) and the
    timelines hold every incident once, oldest first, and the document is the one laid out
    from the whole report in memory."""
    from reportlab import rl_config

    from im.reports import as_pdf, build, build_report, parse_period

    monkeypatch.setattr(build, "BATCH", 7)
    monkeypatch.setattr(as_pdf, "CHUNK_ROWS", 10)
    monkeypatch.setattr(rl_config, "invariant", 1)  # no creation time or random id
    first = clock.now.date()
    ids = []
    for number in range(1, 91):
        clock.advance(minutes=30)
        ids.append(incidents.declare(runtime, title=f"Incident number {number:03d}",
                                     severity="SEV-3", services=["web"],
                                     origin=Origin(actor="alice")).id)
    start, end = first.isoformat(), clock.now.date().isoformat()
    reader = pdf(runtime, tmp_path, start=start, end=end)
    pages = texts(reader)
    header = "ID Severity Status Title Services Declared TTA TTR Ack SLA Resolve SLA\n"
    listed = [text for text in pages if header in text]
    assert len(listed) >= 2  # the table of incidents runs over pages, its header on each
    in_table = [n for text in listed for n in re.findall(r"Incident number (\d+)", text)]
    assert [int(n) for n in in_table] == list(range(1, 91))
    assert "INC-3 SEV-3 open Incident number 003 web" in listed[0]  # a row reads as a line
    titles = [t for t in outline_titles(reader.outline) if t.startswith("INC-")]
    assert titles == [f"{i}: Incident number {n:03d}" for n, i in enumerate(ids, 1)]
    whole = as_pdf.render_pdf(build_report(runtime, parse_period(start, end)))
    assert (tmp_path / "report.pdf").read_bytes() == whole


def test_past_so_many_incidents_the_pdf_lists_them_all_and_says_where_the_timelines_are(
        runtime, clock, tmp_path, monkeypatch):
    from im.reports import as_pdf

    monkeypatch.setattr(as_pdf, "TIMELINES", 4)
    first = clock.now.date()
    for number in range(1, 31):
        clock.advance(minutes=30)
        incidents.declare(runtime, title=f"Incident number {number:03d}", severity="SEV-3",
                          services=["web"], origin=Origin(actor="alice"))
    reader = pdf(runtime, tmp_path, start=first.isoformat(), end=clock.now.date().isoformat())
    pages = texts(reader)
    note = ("This PDF lists all 30 incidents but shows the timelines of the first 4 only; the"
            " JSON report (im report --format json) holds every incident's timeline.")
    assert note in " ".join(pages[0].split())
    listed = [int(n) for text in pages if "Declared TTA TTR" in text
              for n in re.findall(r"Incident number (\d+)", text)]
    assert listed == list(range(1, 31))
    titles = [t for t in outline_titles(reader.outline) if t.startswith("INC-")]
    assert titles == [f"INC-{n}: Incident number {n:03d}" for n in range(1, 5)]
    timelines = "\n".join(pages[[i for i, t in enumerate(pages)
                                 if "Incident timelines" in t][-1]:])
    assert note in " ".join(timelines.split())
