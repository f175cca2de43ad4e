"""Incident commands: declare, ack, resolve, close, reopen, note, assign, list, show, timeline.

Each command calls one operation of `im.app.incidents` and formats what it returns; the rules
live there, so the HTTP API keeps them too. The runtime is the context's `obj` (make_app puts
it on the root context; every command's context inherits it).
"""


from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from im.app.incidents import Delivery
    from im.models import Incident, Origin
    from im.runtime import Runtime

# im.app (msgspec, the models, the store) is imported inside the commands: building the
# command line, for `im --help` or another command, does not load it.

INCIDENT = typer.Option(..., "--incident", "-i", help="The incident, e.g. INC-12.")
JSON = typer.Option(False, "--json", help="Print JSON instead of text.")


def register(app: typer.Typer) -> None:
    """Add the incident commands to the root command line, in the order `im --help` lists
    them."""
    for command in (declare, ack, resolve, close, reopen, note, assign, severity):
        app.command()(command)
    app.command("list")(list_)
    app.command()(show)
    app.command()(timeline)


def _actor(ctx: typer.Context) -> "Origin":
    """Who acts: the runtime's user (IM_USER, the settings file's `user`, the login name)."""
    from im.models import Origin

    return Origin(actor=ctx.obj.user)


# -- delivering what a change queued -------------------------------------------------------


def delivery(runtime: "Runtime", incident: "Incident") -> "Delivery":
    """Push what this change queued, within the command's time (what is left waits for `im
    serve` or `im connector sync`, so a slow remote system never holds the on-call engineer
    up), with a spinner on a terminal. Ctrl-C says what is left queued (exit 130)."""
    from im.app import incidents

    names = incidents.pending_work(runtime, incident.id)
    if not names:
        return incidents.Delivery()
    from im.cli import waiting

    try:
        with waiting.spinner(f"Delivering {incident.id} to {', '.join(names)}"):
            return incidents.deliver(runtime, incident.id, budget=waiting.BUDGET)
    except KeyboardInterrupt:
        waiting.interrupted(incidents.queued_changes(runtime, incident.id), saved=incident.id)


def deliver(runtime: "Runtime", incident: "Incident", *, refusal_exits: bool = True) -> int:
    """Push what this change queued, and say what happened. A change a connector refused for
    good is said to be kept in im, and the command exits with EXIT_REFUSED (unless
    `refusal_exits` is off: then the caller does, once it is done). Returns how many changes
    were refused."""
    from im.humanize import printable

    outcome = delivery(runtime, incident)
    for line in outcome.synced:  # a remote system's words: no control characters
        typer.echo(printable(f"  {line.connector}: {line.text}"))
    for error in outcome.errors:
        typer.echo(printable(f"  ! {error}"), err=True)
    if outcome.queued:
        syncs = " or ".join(f"`im connector sync {name}`" for name in outcome.waiting_for)
        typer.echo(f"  {outcome.queued} change(s) queued; `im serve` or {syncs} will deliver"
                   " them", err=True)
    if outcome.actions_queued:
        typer.echo(f"  {outcome.actions_queued} workflow action(s) queued; `im serve` will run"
                   " them", err=True)
    if outcome.failed:
        _say_refused(incident.id, outcome)
        if refusal_exits:
            from im.cli import EXIT_REFUSED

            raise typer.Exit(EXIT_REFUSED)
    return outcome.failed


def _say_refused(incident_id: str, outcome: "Delivery") -> None:
    count = outcome.failed
    syncs = " or ".join(f"`im connector sync {name} --retry-failed`"
                        for name in outcome.refused_by)
    typer.echo(f"  {count} change(s) refused for good and set aside; {incident_id} keeps the"
               f" change in im. Fix the cause, then {syncs} sends {'it' if count == 1 else 'them'}"
               " again", err=True)


def _report(runtime: "Runtime", incident: "Incident", text: str, json_output: bool,
            **extra: Any) -> None:
    """What every command that changes an incident prints: `text` and what delivering the
    change did, or with --json the change's JSON: the incident, its links, anything the
    command adds (`note`: the timeline event), and `sync`, what each connector did."""
    if not json_output:
        typer.echo(text)
        deliver(runtime, incident)
        return
    from im.app import incidents
    from im.cli.output import print_json

    outcome = delivery(runtime, incident)
    view = incidents.show(runtime, incident.id)  # links the delivery made included
    print_json({"incident": view.incident, "links": view.links, **extra,
                "sync": {"synced": outcome.synced, "errors": outcome.errors,
                         "queued": outcome.queued, "failed": outcome.failed}})
    if outcome.failed:  # said on stderr, after the JSON; exits as the text output does
        from im.cli import EXIT_REFUSED

        _say_refused(incident.id, outcome)
        raise typer.Exit(EXIT_REFUSED)


# -- changes -------------------------------------------------------------------------------


def declare(
    ctx: typer.Context,
    sev: str = typer.Option(..., "--sev", "-s", help="Severity: SEV-1 (critical) to SEV-4."),
    title: str = typer.Option(..., "--title", "-t", help="What is broken, in one line."),
    service: list[str] = typer.Option(
        ..., "--service", help="Affected service; repeat or comma-separate for several."),
    description: str = typer.Option("", "--description", "-d", help="Details."),
    field: list[str] = typer.Option([], "--field", "-f", help="Custom field key=value."),
    json_output: bool = JSON,
) -> None:
    """Declare an incident; connectors create it in their systems."""
    runtime: Runtime = ctx.obj
    from im.app import incidents

    incident = incidents.declare(
        runtime, title=title, severity=incidents.parse_severity(sev), services=service,
        description=description, fields=incidents.parse_fields(field), actor=_actor(ctx))
    _report(runtime, incident, f"Declared {incident.id}: {incident.severity.value}"
            f" {incident.title} ({', '.join(incident.services)})", json_output)


def ack(ctx: typer.Context, incident: str = INCIDENT,
        note: str = typer.Option("", "--note", "-n", help="What you are doing."),
        json_output: bool = JSON) -> None:
    """Acknowledge an incident: someone is on it (status mitigated)."""
    runtime: Runtime = ctx.obj
    from im.app import incidents

    changed = incidents.ack(runtime, incident, note=note, actor=_actor(ctx))
    _report(runtime, changed, f"Acknowledged {changed.id} ({changed.status.value})",
            json_output)


def resolve(ctx: typer.Context, incident: str = INCIDENT,
            note: str = typer.Option("", "--note", "-n", help="How it was fixed."),
            json_output: bool = JSON) -> None:
    """Resolve an incident: the issue is fixed."""
    runtime: Runtime = ctx.obj
    from im.app import incidents

    changed = incidents.resolve(runtime, incident, note=note, actor=_actor(ctx))
    _report(runtime, changed, f"Resolved {changed.id} ({changed.status.value})",
            json_output)


def close(ctx: typer.Context, incident: str = INCIDENT,
          note: str = typer.Option("", "--note", "-n", help="Closing remarks."),
          json_output: bool = JSON) -> None:
    """Close an incident for good (resolving it where it is still open)."""
    runtime: Runtime = ctx.obj
    from im.app import incidents

    changed = incidents.close(runtime, incident, note=note, actor=_actor(ctx))
    _report(runtime, changed, f"Closed {changed.id} ({changed.status.value})",
            json_output)


def reopen(ctx: typer.Context, incident: str = INCIDENT,
           note: str = typer.Option("", "--note", "-n", help="Why it is back."),
           json_output: bool = JSON) -> None:
    """Reopen a resolved or closed incident."""
    runtime: Runtime = ctx.obj
    from im.app import incidents

    changed = incidents.reopen(runtime, incident, note=note, actor=_actor(ctx))
    _report(runtime, changed, f"Reopened {changed.id} ({changed.status.value})",
            json_output)


def note(ctx: typer.Context,
         text: str = typer.Argument(None, help="The note."),
         incident: str = INCIDENT,
         note_option: str = typer.Option(None, "--note", "-n",
                                         help="The note (instead of the argument), as"
                                              " ack and resolve take it."),
         json_output: bool = JSON) -> None:
    """Add a note to an incident's timeline (and to linked remote incidents)."""
    runtime: Runtime = ctx.obj
    from im.app import incidents
    from im.errors import InvalidInputError

    if (text is None) == (note_option is None):  # the command line's two ways to give it
        raise InvalidInputError("give the note once: im note --incident INC-1 \"text\""
                                " (or --note \"text\")")
    noted = incidents.note(runtime, incident, text if text is not None else note_option,
                           actor=_actor(ctx))
    _report(runtime, noted.incident, f"Noted on {noted.incident.id}", json_output,
            note=noted.event)


def assign(ctx: typer.Context, incident: str = INCIDENT,
           to: str = typer.Option(..., "--to", help="Who takes it (e.g. an email)."),
           json_output: bool = JSON) -> None:
    """Assign an incident to someone (in linked systems too)."""
    runtime: Runtime = ctx.obj
    from im.app import incidents
    from im.errors import InvalidInputError

    try:
        changed = incidents.assign(runtime, incident, to, actor=_actor(ctx))
    except incidents.MissingAssigneeError:
        raise InvalidInputError("an assignee is required (--to, e.g. an email)") from None
    _report(runtime, changed, f"Assigned {changed.id} to {changed.assignee}", json_output)


def severity(ctx: typer.Context, incident: str = INCIDENT,
             sev: str = typer.Option(..., "--sev", "-s", help="The new severity."),
             json_output: bool = JSON) -> None:
    """Change an incident's severity (SLA targets follow; connectors are told)."""
    runtime: Runtime = ctx.obj
    from im.app import incidents

    changed = incidents.change_severity(runtime, incident, sev, actor=_actor(ctx))
    _report(runtime, changed, f"{changed.id} is now {changed.severity.value}",
            json_output)


# -- reads ---------------------------------------------------------------------------------


def list_(
    ctx: typer.Context,
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
    runtime: Runtime = ctx.obj
    from im.app import incidents

    found = incidents.list_incidents(runtime, statuses=status, severities=sev,
                                     services=service, include_closed=all_, limit=limit)
    if json_output:
        from im.cli.output import print_json

        print_json(found)
        return
    if not found:
        typer.echo("No incidents.")
        return
    from im.app import sla
    from im.cli.output import ago, table

    now = runtime.clock()
    timers = sla.first_running(runtime, found)
    typer.echo(table(
        ["ID", "Severity", "Status", "Title", "Services", "Assignee", "Declared", "SLA"],
        [[i.id, i.severity.value, i.status.value, _short(i.title, 48), ",".join(i.services),
          i.assignee or "-", ago(i.created_at, now), t.describe(now) if t else "-"]
         for i, t in zip(found, timers, strict=True)],
    ))


def show(ctx: typer.Context,
         incident: str = typer.Argument(..., help="The incident, e.g. INC-12."),
         json_output: bool = JSON) -> None:
    """Show one incident: its state, services, links and times."""
    runtime: Runtime = ctx.obj
    from im.app import incidents

    view = incidents.show(runtime, incident)
    if json_output:
        from im.cli.output import print_json

        print_json({"incident": view.incident, "links": view.links})
        return
    from im.cli.output import ago, when

    found = view.incident
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
    from im.app import sla

    clocks = sla.timers(runtime, found)
    if clocks:
        lines.append("SLA:          " + ", ".join(t.describe(now) for t in clocks))
    if found.fields:
        lines.append("Fields:")
        lines += [f"  {key} = {value}" for key, value in sorted(found.fields.items())]
    if view.links:
        lines.append("Linked:")
        for link in view.links:
            number = f"#{link.remote_number}" if link.remote_number else link.remote_id
            state = f" ({link.remote_status})" if link.remote_status else ""
            url = f" {link.remote_url}" if link.remote_url else ""
            lines.append(f"  {link.connector} [{link.service}] {number}{state}{url}")
    if found.description:
        lines.append("Description:")
        lines += [f"  {line}" for line in found.description.splitlines()]
    from im.humanize import printable  # text from outside must not act on the terminal

    typer.echo("\n".join(printable(line) for line in lines))


def timeline(ctx: typer.Context,
             incident: str = typer.Argument(..., help="The incident, e.g. INC-12."),
             brief: bool = typer.Option(False, "--brief", help="One short line per event:"
                                        " time, what, and which system."),
             json_output: bool = JSON) -> None:
    """Show an incident's unified timeline: every change, and which system it came from."""
    runtime: Runtime = ctx.obj
    from im.app import incidents

    found = incidents.timeline(runtime, incident)
    if json_output:
        from im.cli.output import print_json

        print_json(found.events)
        return
    from im.cli.output import when
    from im.humanize import printable  # actors and notes from outside: no control chars

    typer.echo(printable(f"{found.incident.id}: {found.incident.title}"))
    if brief:
        for event in found.events:
            typer.echo(printable(f"{event.at.astimezone():%H:%M} - {event.text}"
                                 f" ({event.system})"))
        return
    for event in found.events:
        origin = event.system if event.actor == event.system else (
            f"{event.system}: {event.actor}")
        typer.echo(printable(f"{when(event.at)}  {event.text}  [{origin}]"))


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
