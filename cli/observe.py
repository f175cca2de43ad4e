"""What operators look at: `im connector status` and `health` (registered in the connector
group by im.cli.connectors), `im metrics connector`, and `im logs`. Each command calls
im.app (its figures come from im.observability, computed from recorded activity; the log
lines are those im.logs recorded) and formats what it returns."""


from typing import TYPE_CHECKING

import typer

from im.cli.context import runtime
from im.runtime import Runtime

if TYPE_CHECKING:
    from im.app.logs import LogLine

JSON = typer.Option(False, "--json", help="Print JSON.")


def _key_option(runtime: Runtime, type_name: str) -> str:
    """How `im connector update` takes a connector type's key from standard input: its option
    for its first secret setting (`--api-key -`), else `--set PATH=-`."""
    from im.connector_config import secret_paths

    cls = runtime.connector_type(type_name)
    secrets = sorted(secret_paths(cls.Settings))
    for option, path in sorted(cls.options.items()):
        if path in secrets:
            return f"--{option} -"
    return f"--set {secrets[0]}=-" if secrets else "--set KEY=-"


def status(ctx: typer.Context, name: str = typer.Argument(..., help="The connector."),
           json_output: bool = JSON) -> None:
    """Show a connector's state: direction, last sync, activity and errors in 24 h."""
    from im.app import connectors
    from im.cli.output import print_json, when

    figures = connectors.status(runtime(ctx), name)
    if json_output:
        print_json(figures)
        return
    lines = [
        f"Connector: {figures.name} ({figures.type})",
        f"Status: {figures.status.capitalize()}" + (
            f" (the key was refused; give a new one: im connector update {name}"
            f" {_key_option(runtime(ctx), figures.type)}, the key on standard input)"
            if figures.status == "key refused" else ""),
        f"Direction: {figures.direction.capitalize()}",
        f"Last Sync: {when(figures.last_sync) if figures.last_sync else 'never'}",
        f"Incidents Synced: {figures.incidents_synced_24h} (last 24h)",
        f"Sync Errors: {figures.sync_errors_24h}",
        "Webhook: " + ("Disabled" if not figures.webhook_enabled else
                       "Enabled (events ignored: the connector is outbound)"
                       if figures.direction == "outbound" else "Enabled"),
        f"Queued: {figures.queued} change(s) waiting, {figures.failed} failed",
    ]
    if figures.quarantined:
        lines.append(f"Quarantined Events: {figures.quarantined}"
                     f" (im connector replay {name})")
    lines.append(f"Last Error: {figures.last_error} ({when(figures.last_error_at)})"
                 if figures.last_error and figures.last_error_at
                 else f"Last Error: {figures.last_error or '-'}")
    if figures.last_poll_error:
        lines.append(f"Last poll failed: {figures.last_poll_error}"
                     f" ({when(figures.last_poll_failed_at)})")
    from im.humanize import printable  # the last error is the remote's words

    typer.echo("\n".join(printable(line) for line in lines))


def health(ctx: typer.Context, name: str = typer.Argument(..., help="The connector."),
           json_output: bool = JSON) -> None:
    """Check a connector's health now. Exit code: 0 healthy, 1 degraded, 2 unhealthy."""
    from im.app import connectors
    from im.cli import waiting
    from im.cli.output import mark, paint, print_json
    from im.humanize import printable

    found = connectors.health(runtime(ctx), name, deadline=waiting.deadline(),
                              busy=waiting.spinner)
    if json_output:
        print_json(found)
    else:
        shade = {"healthy": "green", "degraded": "yellow"}.get(found.health, "red")
        typer.echo(f"Health: {paint(found.health.capitalize(), shade, bold=True)}")
        for check in found.checks:
            # the error rate is a figure, shown as the spec shows it: without a mark,
            # unless it is too high
            sign = mark("✗") + " " if not check.ok else "" if check.name == "errors" \
                else mark("✓") + " "
            typer.echo(f"{check.label or check.name}: {sign}{printable(check.detail)}")
            if not check.ok and check.fix:
                typer.echo(printable(f"  Fix: {check.fix}"))
    raise typer.Exit({"healthy": 0, "degraded": 1}.get(found.health, 2))


def register(app: typer.Typer) -> None:
    """Add the `metrics` group and `im logs` to the root command line (`status` and `health`
    are in the connector group: im.cli.connectors adds them)."""
    metrics_app = typer.Typer(help="Figures about im's activity.", no_args_is_help=True,
                              rich_markup_mode=None)
    metrics_app.command("connector")(metrics_connector)
    app.add_typer(metrics_app, name="metrics")
    app.command("logs")(show_logs)


def metrics_connector(ctx: typer.Context,
                      name: str = typer.Argument(..., help="The connector."),
                      json_output: bool = JSON) -> None:
    """A connector's figures: incidents, sync success and time, API calls, webhooks."""
    from im.app import connectors
    from im.cli.output import percent, print_json

    figures = connectors.metrics(runtime(ctx), name)
    if json_output:
        print_json(figures)
        return
    success = percent(figures.sync_success_rate) if figures.sync_success_rate is not None \
        else "- (nothing synced in 24h)"
    average = f"{figures.average_sync_seconds:.1f}s" if \
        figures.average_sync_seconds is not None else "-"
    typer.echo("\n".join([
        f"Connector: {figures.name}",
        f"Total Incidents: {figures.total_incidents:,}",
        f"Sync Success Rate: {success}",
        f"Average Sync Time: {average}",
        f"API Calls (24h): {figures.api_calls_24h:,}",
        "Rate Limit Usage: " + (percent(figures.rate_limit_usage)
                                if figures.rate_limit_usage is not None
                                else "unknown (the connector does not know its limit)"),
        f"Webhook Events (24h): {figures.webhook_events_24h:,}",
    ]))


def show_logs(
    ctx: typer.Context,
    component: str = typer.Option(None, "--component", "-c",
                                  help="webhook, sync, server, cli, connector or"
                                  " workflows."),
    filter_: str = typer.Option(None, "--filter", help="Only lines mentioning this"
                                " (a connector's name or type, an incident, any text)."),
    since: str = typer.Option(None, "--since", help="How far back: 10m, 2h, 1d, or a"
                              " date/time."),
    level: str = typer.Option("info", "--level", help="Lowest level: debug, info,"
                              " warning, error."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines."),
    limit: int = typer.Option(200, "--limit", min=1, max=100_000,
                              help="At most this many lines."),
    json_output: bool = typer.Option(False, "--json", help="One JSON object a line."),
) -> None:
    """Show the structured logs recorded by `im serve` and the CLI."""
    import time

    from im.app import logs

    wanted = logs.query(component=component, level=level, text=filter_)
    start = _since(runtime(ctx), since) if since else None
    last = 0
    while True:
        lines = logs.read(runtime(ctx), wanted, since=start, after_id=last, limit=limit)
        for line in lines:
            _print_log(line, json_output)
            last = line.id
        if not follow:
            if not lines and not last:
                typer.echo("No log lines match.", err=True)
            return
        time.sleep(0.5)


def _since(runtime: Runtime, text: str):  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime, timedelta

    from im.connectors import parse_duration
    from im.errors import InvalidInputError

    try:
        return runtime.clock() - timedelta(seconds=parse_duration(text))
    except OverflowError:
        raise InvalidInputError(f"--since {text} reaches back before year 1") from None
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInputError(f"--since takes 10m, 2h, 1d or a date/time, not {text!r}"
                                ) from None
    try:  # a time without a zone is local time
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidInputError(f"--since {text} is out of range") from None


def _print_log(line: "LogLine", json_output: bool) -> None:
    from im.cli.output import when

    if json_output:
        import msgspec

        typer.echo(msgspec.json.encode(line).decode())
        return
    from im.humanize import printable  # logged requests and answers hold outside text

    where = line.component + (f"/{line.connector}" if line.connector else "")
    extra = " ".join(f"{k}={v}" for k, v in line.data.items() if k not in ("body", "headers"))
    typer.echo(printable(f"{when(line.at)} {line.level.upper():<7} {where}:"
                         f" {line.message}" + (f" ({extra})" if extra else "")))
    if line.data.get("body"):
        typer.echo(printable(f"    body: {line.data['body']}"))
