"""`im oncall`: who is on call for a service, asked of the connectors that know.

The command calls `im.app.oncall`, which chooses the connectors to ask and gives them one
deadline, and prints the answer.
"""


import typer

from im.cli.context import runtime


def register(app: typer.Typer) -> None:
    """Add `im oncall` to the root command line."""
    app.command()(oncall)


def oncall(
    ctx: typer.Context,
    service: str = typer.Option(..., "--service", help="The im service, e.g. api."),
    connector: str = typer.Option(None, "--connector", help="Ask only this connector."),
    json_output: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show who is on call for a service now, who is next, and the escalation."""
    import msgspec

    from im.app import oncall as on_call
    from im.cli import waiting
    from im.cli.output import print_json, when

    found = on_call.lookup(runtime(ctx), service, connector=connector,
                           deadline=waiting.deadline(), busy=waiting.spinner)
    result = found.result
    if json_output:
        print_json({"connector": found.connector, **msgspec.structs.asdict(result)})
        return
    lines = [f"Service: {result.service}"]
    if result.current:
        until = f" (until {when(result.current_until)[:16]})" if result.current_until else ""
        lines.append(f"Current On-Call: {result.current}{until}")
    else:
        lines.append("Current On-Call: nobody")
    if result.next:
        lines.append(f"Next On-Call: {result.next} ({when(result.next_from)[:16]})")
    lines += [f"Escalation: {step}" for step in result.escalations]
    if result.routed:
        lines.append(f"Note: {result.routed}")
    from im.humanize import printable  # names from the remote system

    typer.echo("\n".join(printable(line) for line in lines))
