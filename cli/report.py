"""`im report`: a report of the incidents declared in a period, as PDF, HTML, Markdown, JSON
or CSV.

Linked remote incidents are included per connector: `--include NAME_OR_TYPE`, `--include-all`,
or `--include-TYPE` for any installed connector type (such as the spec's flag for its first
connector). The `--include-TYPE` options are read when the command runs, from the connector
types the plugins register, so the core names no connector type and `im --help` loads none.
"""


import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from im.reports import Report
    from im.runtime import Runtime

_INCLUDE_TYPE = re.compile(r"^--include-([A-Za-z0-9][A-Za-z0-9_.-]*)$")


def register(app: typer.Typer) -> None:
    """Add `im report` to the root command line."""
    app.command(context_settings={"allow_extra_args": True,
                                  "ignore_unknown_options": True})(report)


def report(
    ctx: typer.Context,
    start: str = typer.Option(..., "--start", metavar="YYYY-MM-DD",
                              help="First day of the period (UTC)."),
    end: str = typer.Option(..., "--end", metavar="YYYY-MM-DD",
                            help="Last day of the period (UTC), included."),
    format_: str = typer.Option("pdf", "--format", "-f", metavar="FORMAT",
                                help="pdf, html, md, json or csv."),
    output: str = typer.Option(None, "--output", "-o", metavar="PATH",
                               help="Where to write it ('-' for standard output); default"
                                    " im-report-START-to-END.FORMAT here."),
    include: list[str] = typer.Option(
        [], "--include", metavar="NAME_OR_TYPE",
        help="Include the linked remote incidents of this connector, or of every"
             " connector of this type; repeatable."),
    include_all: bool = typer.Option(False, "--include-all",
                                     help="Include linked remote incidents of every"
                                          " connector."),
    no_fetch: bool = typer.Option(False, "--no-fetch",
                                  help="Use only what im stored; never ask connectors"
                                       " for what is missing."),
) -> None:
    """Write a report of the incidents declared from --start to --end: every incident
    and its timeline, response times (medians and 90th percentiles by severity and
    service), SLA compliance, on-call effectiveness and charts.

    --include-TYPE (for any installed connector type, see `im plugins`) adds the linked
    remote incidents of that type's connectors: numbers, links, who was paged,
    escalations, and response times measured in that system, from stored links and
    timelines and, where something is missing, fetched from the connector.
    """
    runtime: Runtime = ctx.obj
    from im.app import reports
    from im.errors import ImError, InvalidInputError

    period = reports.parse_period(start, end)
    fmt = reports.parse_format(format_)
    wanted = list(include)
    for extra in ctx.args:  # --include-TYPE, for whatever connector types are installed
        match = _INCLUDE_TYPE.match(extra)
        if match is None:
            what = "no such option" if extra.startswith("-") else "unexpected argument"
            raise InvalidInputError(f"{what}: {extra} (`im report --help` lists the"
                                    " options)")
        wanted.append(match.group(1))
    target = output or reports.default_filename(period, fmt)
    options = {"period": period, "format": fmt, "include": wanted,
               "include_all": include_all, "fetch": not no_fetch}
    if target == "-":
        # Written as it comes: a report's size follows its period, not im's memory.
        made = reports.write_report(runtime, sys.stdout.buffer, **options)
        sys.stdout.flush()
        where, say = "standard output", lambda text: typer.echo(text, err=True)
    else:
        path = Path(target).expanduser()
        if not path.name or path.is_dir():
            raise ImError(f"cannot write {target}: it is a folder; give a file name (such as"
                          f" {reports.default_filename(period, fmt)})")
        partial = path.with_name(f".{path.name}.partial")
        try:
            with partial.open("wb") as out:
                made = reports.write_report(runtime, out, **options)
            partial.replace(path)  # never leave half a report under the real name
        except OSError as error:
            partial.unlink(missing_ok=True)
            raise ImError(f"cannot write {path}: {error.strerror or error}") from None
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        where, say = str(path), typer.echo
    for note in made.report.notes:
        typer.echo(f"Warning: {note}", err=True)
    say(f"Wrote {where} ({made.format}): {_holds(made.report)}")


def _holds(report: "Report") -> str:
    count = report.summary.incidents
    if not count:
        return f"no incidents declared from {report.period}"
    text = f"{count} incident{'s' if count != 1 else ''} declared from {report.period}"
    if report.included:
        linked = sum(c.linked for c in report.included)
        fetched = sum(c.fetched for c in report.included)
        names = ", ".join(c.name for c in report.included)
        text += f", {linked} linked remote incident{'s' if linked != 1 else ''} ({names};" \
                f" {fetched} fetched)"
    return text
