"""`im sla`: running SLA timers, soonest first; `im sla check` records and notifies breaches
(for cron, where `im serve` does not run)."""

from typing import TYPE_CHECKING

import typer

from im.runtime import Runtime

if TYPE_CHECKING:
    from im.models import Incident
    from im.sla import Timer


def add_commands(app: typer.Typer, runtime: Runtime) -> None:
    sla_app = typer.Typer(help="SLA timers: acknowledge and resolve targets by severity.",
                          rich_markup_mode=None)
    app.add_typer(sla_app, name="sla")

    @sla_app.callback(invoke_without_command=True)
    def running_timers(ctx: typer.Context,
                       json_output: bool = typer.Option(False, "--json", help="Print JSON."),
                       ) -> None:
        """List running SLA timers, soonest due first."""
        if ctx.invoked_subcommand is not None:
            return
        from im import sla
        from im.cli.output import print_json, table, when

        now = runtime.clock()
        pairs = sla.running(runtime)
        _, set_by = sla.policy(runtime)
        source = "targets set by: " + ", ".join(f"{severity.value} {by}"
                                                 for severity, by in set_by.items())
        for note in sla.sourced_policy(runtime)[1]:
            typer.echo(f"Note: {note}", err=True)
        if json_output:
            print_json([{"incident": i.id, "title": i.title, **_timer(t, now)}
                        for i, t in pairs])
            return
        if not pairs:
            typer.echo(f"No SLA timers running ({source}).")
            return
        typer.echo(table(["Incident", "Severity", "Timer", "Due", "State", "Title"],
                         [[i.id, i.severity.value, t.kind, when(t.due_at)[:16],
                           t.describe(now).split(" ", 1)[1], i.title] for i, t in pairs]))
        typer.echo(f"({source})")

    @sla_app.command()
    def check() -> None:
        """Record and notify SLA breaches now (what `im serve` does every 15 seconds)."""
        from im import sla
        from im.cli.incidents import deliver
        from im.humanize import duration

        refused = 0

        def notify(incident: "Incident", timer: "Timer") -> None:
            nonlocal refused
            # Delivered before the next breach is queued, so its lines follow its own.
            verb = "acknowledged" if timer.kind == "ack" else "resolved"
            typer.echo(f"{incident.id}: SLA breached, not {verb} within"
                       f" {duration(timer.target_seconds)} ({incident.severity.value})")
            refused += deliver(runtime, incident, refusal_exits=False)

        if not sla.check_breaches(runtime, each=notify):
            typer.echo("No new SLA breaches.")
        if refused:  # every breach recorded and tried first
            from im.cli import EXIT_REFUSED

            raise typer.Exit(EXIT_REFUSED)


def _timer(timer: object, now: object) -> dict[str, object]:
    import msgspec

    data = msgspec.structs.asdict(timer)  # type: ignore[call-overload]
    data["state"] = timer.describe(now)  # type: ignore[attr-defined]
    return data
