"""Incident commands: declare, ack, resolve, close, reopen, note, assign, list, show, timeline."""


from typing import TYPE_CHECKING, Any

import typer

from im.runtime import Runtime

if TYPE_CHECKING:
    from im.models import Incident

# im.incidents and im.models (msgspec) are imported inside the commands: building the command
# line, for `im --help` or another command, does not load them.

INCIDENT = typer.Option(..., "--incident", "-i", help="The incident, e.g. INC-12.")
JSON = typer.Option(False, "--json", help="Print JSON instead of text.")


def delivery(runtime: Runtime, incident: "Incident") -> dict[str, Any]:
    """Push what this change queued, within the command's time (what is left waits for `im
    serve` or `im connector sync`, so a slow remote system never holds the on-call engineer
    up); what each connector did (`synced`: the lines its timeline got), what failed
    (`errors`), and how many changes wait (`queued`) or were refused for good and set aside
    (`failed`). An outage only delays a change. Ctrl-C says what is left queued (exit 130)."""
    outcome: dict[str, Any] = {"synced": [], "errors": [], "queued": 0, "failed": 0}
    if not runtime.store.outbox(incident_id=incident.id, statuses=("pending",)):
        return outcome
    from im.cli import waiting
    from im.sync import deliver_outbox

    before = {event.id for event in runtime.store.timeline(incident.id)}
    try:
        with waiting.spinner(f"Delivering {incident.id} to {_names(runtime, incident)}"):
            report = deliver_outbox(runtime, incident_id=incident.id, budget=waiting.BUDGET)
    except KeyboardInterrupt:
        waiting.interrupted(runtime.store.outbox(
            incident_id=incident.id, statuses=("pending", "delivering")), saved=incident.id)
    outcome["synced"] = [{"connector": event.system, "text": event.text}
                         for event in runtime.store.timeline(incident.id)
                         if event.id not in before and event.kind == "sync"]
    outcome["errors"] = list(report.errors)
    # Changes wait in order: behind one waiting for its retry, later ones were not tried.
    waiting_rows = runtime.store.outbox(incident_id=incident.id,
                                        statuses=("pending", "delivering"))
    outcome["queued"] = len(waiting_rows)
    outcome["waiting_for"] = sorted({row.connector for row in waiting_rows})
    outcome["failed"] = report.failed
    return outcome


def deliver(runtime: Runtime, incident: "Incident", *, refusal_exits: bool = True) -> int:
    """Push what this change queued, and say what happened. A change a connector refused for
    good is said to be kept in im, and the command exits with EXIT_REFUSED (unless
    `refusal_exits` is off: then the caller does, once it is done). Returns how many changes
    were refused."""
    from im.humanize import printable

    outcome = delivery(runtime, incident)
    for line in outcome["synced"]:  # a remote system's words: no control characters
        typer.echo(printable(f"  {line['connector']}: {line['text']}"))
    for error in outcome["errors"]:
        typer.echo(printable(f"  ! {error}"), err=True)
    if outcome["queued"]:
        syncs = " or ".join(f"`im connector sync {name}`" for name in outcome["waiting_for"])
        typer.echo(f"  {outcome['queued']} change(s) queued; `im serve` or {syncs} will deliver"
                   " them", err=True)
    if outcome["failed"]:
        _say_refused(runtime, incident.id, outcome["failed"])
        if refusal_exits:
            from im.cli import EXIT_REFUSED

            raise typer.Exit(EXIT_REFUSED)
    return int(outcome["failed"])


def _say_refused(runtime: Runtime, incident_id: str, count: int) -> None:
    syncs = " or ".join(f"`im connector sync {name} --retry-failed`" for name in sorted(
        {row.connector for row in runtime.store.outbox(incident_id=incident_id,
                                                       statuses=("failed",))}))
    typer.echo(f"  {count} change(s) refused for good and set aside; {incident_id} keeps the"
               f" change in im. Fix the cause, then {syncs} sends {'it' if count == 1 else 'them'}"
               " again", err=True)


def print_change_json(runtime: Runtime, incident: "Incident", **extra: Any) -> None:
    """A change's JSON, the same for every command that changes an incident: the incident,
    its links, anything the command adds (`note`: the timeline event), and `sync`, what each
    connector did with the change."""
    outcome = delivery(runtime, incident)
    outcome.pop("waiting_for", None)
    _print_incident_json(runtime, incident.id, **extra, sync=outcome)
    if outcome["failed"]:  # said on stderr, after the JSON; exits as the text output does
        from im.cli import EXIT_REFUSED

        _say_refused(runtime, incident.id, outcome["failed"])
        raise typer.Exit(EXIT_REFUSED)


def add_commands(app: typer.Typer, runtime: Runtime) -> None:
    @app.command()
    def declare(
        sev: str = typer.Option(..., "--sev", "-s", help="Severity: SEV-1 (critical) to SEV-4."),
        title: str = typer.Option(..., "--title", "-t", help="What is broken, in one line."),
        service: list[str] = typer.Option(
            ..., "--service", help="Affected service; repeat or comma-separate for several."),
        description: str = typer.Option("", "--description", "-d", help="Details."),
        field: list[str] = typer.Option([], "--field", "-f", help="Custom field key=value."),
        json_output: bool = JSON,
    ) -> None:
        """Declare an incident; connectors create it in their systems."""
        from im import incidents

        incident = incidents.declare(
            runtime, title=title, severity=incidents.parse_severity(sev),
            services=service, description=description, fields=incidents.parse_fields(field),
        )
        if json_output:
            print_change_json(runtime, incident)
            return
        typer.echo(f"Declared {incident.id}: {incident.severity.value} {incident.title}"
                   f" ({', '.join(incident.services)})")
        deliver(runtime, incident)

    def _change(action: str, incident_id: str, note: str, verb: str,
                json_output: bool) -> None:
        from im import incidents
        from im.models import Action

        incident = incidents.transition(runtime, incident_id, Action[action], note=note)
        if json_output:
            print_change_json(runtime, incident)
            return
        typer.echo(f"{verb} {incident.id} ({incident.status.value})")
        deliver(runtime, incident)

    @app.command()
    def ack(incident: str = INCIDENT,
            note: str = typer.Option("", "--note", "-n", help="What you are doing."),
            json_output: bool = JSON) -> None:
        """Acknowledge an incident: someone is on it (status mitigated)."""
        _change("ACK", incident, note, "Acknowledged", json_output)

    @app.command()
    def resolve(incident: str = INCIDENT,
                note: str = typer.Option("", "--note", "-n", help="How it was fixed."),
                json_output: bool = JSON) -> None:
        """Resolve an incident: the issue is fixed."""
        _change("RESOLVE", incident, note, "Resolved", json_output)

    @app.command()
    def close(incident: str = INCIDENT,
              note: str = typer.Option("", "--note", "-n", help="Closing remarks."),
              json_output: bool = JSON) -> None:
        """Close an incident for good (resolving it where it is still open)."""
        _change("CLOSE", incident, note, "Closed", json_output)

    @app.command()
    def reopen(incident: str = INCIDENT,
               note: str = typer.Option("", "--note", "-n", help="Why it is back."),
               json_output: bool = JSON) -> None:
        """Reopen a resolved or closed incident."""
        _change("REOPEN", incident, note, "Reopened", json_output)

    @app.command()
    def note(text: str = typer.Argument(None, help="The note."),
             incident: str = INCIDENT,
             note_option: str = typer.Option(None, "--note", "-n",
                                             help="The note (instead of the argument), as"
                                                  " ack and resolve take it."),
             json_output: bool = JSON) -> None:
        """Add a note to an incident's timeline (and to linked remote incidents)."""
        from im import incidents
        from im.errors import InvalidInputError

        if (text is None) == (note_option is None):
            raise InvalidInputError("give the note once: im note --incident INC-1 \"text\""
                                    " (or --note \"text\")")
        event = incidents.add_note(runtime, incident, text if text is not None else note_option)
        noted = incidents.get(runtime, event.incident_id)
        if json_output:
            print_change_json(runtime, noted, note=event)
            return
        typer.echo(f"Noted on {event.incident_id}")
        deliver(runtime, noted)

    @app.command()
    def assign(incident: str = INCIDENT,
               to: str = typer.Option(..., "--to", help="Who takes it (e.g. an email)."),
               json_output: bool = JSON) -> None:
        """Assign an incident to someone (in linked systems too)."""
        from im import incidents
        from im.connectors import AssigneeRequest

        found = incidents.get(runtime, incident)
        to = to.strip()
        if not to:
            from im.errors import InvalidInputError

            raise InvalidInputError("an assignee is required (--to, e.g. an email)")
        # Refuse someone a linked system does not know before changing anything.
        for name in sorted({link.connector for link in runtime.store.links(found.id)}):
            record = runtime.store.get_connector(name)
            if record is not None and record.enabled and record.settings.get(
                    "sync_direction", "outbound") != "inbound":
                runtime.connector(name).check_assignee(AssigneeRequest(assignee=to))
        changed = incidents.assign(runtime, found.id, to)
        if json_output:
            print_change_json(runtime, changed)
            return
        typer.echo(f"Assigned {changed.id} to {changed.assignee}")
        deliver(runtime, changed)

    @app.command()
    def severity(incident: str = INCIDENT,
                 sev: str = typer.Option(..., "--sev", "-s", help="The new severity."),
                 json_output: bool = JSON) -> None:
        """Change an incident's severity (SLA targets follow; connectors are told)."""
        from im import incidents

        changed = incidents.set_severity(runtime, incident, sev)
        if json_output:
            print_change_json(runtime, changed)
            return
        typer.echo(f"{changed.id} is now {changed.severity.value}")
        deliver(runtime, changed)

    @app.command("list")
    def list_(
        status: list[str] = typer.Option([], "--status", help="open, mitigated, resolved,"
                                          " closed; repeat or comma-separate."),
        sev: list[str] = typer.Option([], "--sev", help="SEV-1 to SEV-4; repeatable."),
        service: list[str] = typer.Option([], "--service", help="Service; repeatable."),
        all_: bool = typer.Option(False, "--all", "-a", help="Include closed incidents."),
        limit: int = typer.Option(50, "--limit", min=1, max=100_000,
                                  help="At most this many."),
        json_output: bool = JSON,
    ) -> None:
        """List incidents, newest first (closed ones only with --all or --status closed)."""
        from im import incidents

        statuses = [incidents.parse_status(s) for v in status for s in v.split(",") if s]
        if not statuses and not all_:
            statuses = [s for s in incidents.Status if s is not incidents.Status.CLOSED]
        found = runtime.store.list_incidents(
            statuses=statuses,
            severities=[incidents.parse_severity(s) for v in sev for s in v.split(",") if s],
            services=incidents.parse_services(service), limit=limit,
        )
        if json_output:
            from im.cli.output import print_json

            print_json(found)
            return
        if not found:
            typer.echo("No incidents.")
            return
        from im import sla
        from im.cli.output import ago, table

        now = runtime.clock()
        targets, _ = sla.policy(runtime)
        typer.echo(table(
            ["ID", "Severity", "Status", "Title", "Services", "Assignee", "Declared", "SLA"],
            [[i.id, i.severity.value, i.status.value, _short(i.title, 48), ",".join(i.services),
              i.assignee or "-", ago(i.created_at, now), _sla_cell(i, targets, now)]
             for i in found],
        ))

    @app.command()
    def show(incident: str = typer.Argument(..., help="The incident, e.g. INC-12."),
             json_output: bool = JSON) -> None:
        """Show one incident: its state, services, links and times."""
        from im import incidents

        found = incidents.get(runtime, incident)
        if json_output:
            _print_incident_json(runtime, found.id)
            return
        from im.cli.output import ago, when

        now = runtime.clock()
        lines = [
            f"{found.id}: {found.title}",
            f"Severity:     {found.severity.value}",
            f"Status:       {found.status.value}",
            f"Services:     {', '.join(found.services)}",
            f"Assignee:     {found.assignee or '-'}",
            f"Declared:     {when(found.created_at)} by {found.created_by}"
            f" ({ago(found.created_at, now)})",
        ]
        for label, value in (("Mitigated", found.mitigated_at), ("Resolved", found.resolved_at),
                             ("Closed", found.closed_at), ("Reopened", found.reopened_at)):
            if value is not None:
                lines.append(f"{label + ':':<13} {when(value)} ({ago(value, now)})")
        from im import sla

        targets, _ = sla.policy(runtime)
        clocks = sla.timers(found, targets)
        if clocks:
            lines.append("SLA:          " + ", ".join(t.describe(now) for t in clocks))
        if found.fields:
            lines.append("Fields:")
            lines += [f"  {key} = {value}" for key, value in sorted(found.fields.items())]
        links = runtime.store.links(found.id)
        if links:
            lines.append("Linked:")
            for link in links:
                number = f"#{link.remote_number}" if link.remote_number else link.remote_id
                state = f" ({link.remote_status})" if link.remote_status else ""
                url = f" {link.remote_url}" if link.remote_url else ""
                lines.append(f"  {link.connector} [{link.service}] {number}{state}{url}")
        if found.description:
            lines.append("Description:")
            lines += [f"  {line}" for line in found.description.splitlines()]
        from im.humanize import printable  # text from outside must not act on the terminal

        typer.echo("\n".join(printable(line) for line in lines))

    @app.command()
    def timeline(incident: str = typer.Argument(..., help="The incident, e.g. INC-12."),
                 brief: bool = typer.Option(False, "--brief", help="One short line per event:"
                                            " time, what, and which system."),
                 json_output: bool = JSON) -> None:
        """Show an incident's unified timeline: every change, and which system it came from."""
        from im import incidents

        found = incidents.get(runtime, incident)
        events = runtime.store.timeline(found.id)
        if json_output:
            from im.cli.output import print_json

            print_json(events)
            return
        from im.cli.output import when
        from im.humanize import printable  # actors and notes from outside: no control chars

        typer.echo(printable(f"{found.id}: {found.title}"))
        if brief:
            for event in events:
                typer.echo(printable(f"{event.at.astimezone():%H:%M} - {event.text}"
                                     f" ({event.system})"))
            return
        for event in events:
            origin = event.system if event.actor == event.system else (
                f"{event.system}: {event.actor}")
            typer.echo(printable(f"{when(event.at)}  {event.text}  [{origin}]"))


def _names(runtime: Runtime, incident: "Incident") -> str:
    """The connectors an incident's queued changes are for, as a list in words."""
    return ", ".join(sorted({row.connector for row in runtime.store.outbox(
        incident_id=incident.id, statuses=("pending",))}))


def _print_incident_json(runtime: Runtime, incident_id: str, **extra: Any) -> None:
    from im.cli.output import print_json

    incident = runtime.store.get_incident(incident_id)
    data: dict[str, Any] = {"incident": incident, "links": runtime.store.links(incident_id),
                            **extra}
    print_json(data)


def _sla_cell(incident: "Incident", targets: Any, now: Any) -> str:
    """The timer that matters now: the first running one, or '-' when none runs."""
    from im import sla

    running = [t for t in sla.timers(incident, targets) if t.running]
    return running[0].describe(now) if running else "-"


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
