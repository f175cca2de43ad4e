"""`im sla`: running SLA timers, soonest first; `im sla check` records and notifies breaches
(for cron, where `im serve` does not run). Both call `im.app.sla` and format."""

from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from datetime import datetime

    from im.app.sla import Breach
    from im.runtime import Runtime
    from im.sla import Timer


def register(app: typer.Typer) -> None:
    """Add the `sla` group to the root command line."""
    sla_app = typer.Typer(help="SLA timers: acknowledge and resolve targets by severity.",
                          rich_markup_mode=None)
    sla_app.callback(invoke_without_command=True)(running_timers)
    sla_app.command()(check)
    app.add_typer(sla_app, name="sla")


def running_timers(ctx: typer.Context,
                   json_output: bool = typer.Option(False, "--json", help="Print JSON."),
                   ) -> None:
    """List running SLA timers, soonest due first."""
    runtime: Runtime = ctx.obj
    if ctx.invoked_subcommand is not None:
        return
    from im.app import sla
    from im.cli.output import print_json, table, when

    now = runtime.clock()
    found = sla.running_timers(runtime)
    source = "targets set by: " + ", ".join(f"{severity.value} {by}"
                                             for severity, by in found.policy.set_by.items())
    for note in found.policy.notes:
        typer.echo(f"Note: {note}", err=True)
    if json_output:
        print_json([{"incident": r.incident.id, "title": r.incident.title,
                     **_timer(r.timer, now)} for r in found.timers])
        return
    if not found.timers:
        typer.echo(f"No SLA timers running ({source}).")
        return
    typer.echo(table(["Incident", "Severity", "Timer", "Due", "State", "Title"],
                     [[r.incident.id, r.incident.severity.value, r.timer.kind,
                       when(r.timer.due_at)[:16], r.timer.describe(now).split(" ", 1)[1],
                       r.incident.title] for r in found.timers]))
    typer.echo(f"({source})")


def check(ctx: typer.Context) -> None:
    """Record and notify SLA breaches now (what `im serve` does every 15 seconds)."""
    runtime: Runtime = ctx.obj
    from im.app import sla
    from im.cli.incidents import deliver
    from im.humanize import duration

    refused = 0

    def notify(breach: "Breach") -> None:
        nonlocal refused
        # Delivered before the next breach is queued, so its lines follow its own.
        incident, timer = breach.incident, breach.timer
        verb = "acknowledged" if timer.kind == "ack" else "resolved"
        typer.echo(f"{incident.id}: SLA breached, not {verb} within"
                   f" {duration(timer.target_seconds)} ({incident.severity.value})")
        refused += deliver(runtime, incident, refusal_exits=False)

    if not sla.check_breaches(runtime, each=notify):
        typer.echo("No new SLA breaches.")
    if refused:  # every breach recorded and tried first
        from im.cli import EXIT_REFUSED

        raise typer.Exit(EXIT_REFUSED)


def _timer(timer: "Timer", now: "datetime") -> dict[str, object]:
    import msgspec

    data = msgspec.structs.asdict(timer)
    data["state"] = timer.describe(now)
    return data
