"""`im oncall`: who is on call for a service, asked of the connectors that know."""


import typer

from im.runtime import Runtime


def add_commands(app: typer.Typer, runtime: Runtime) -> None:
    @app.command()
    def oncall(
        service: str = typer.Option(..., "--service", help="The im service, e.g. api."),
        connector: str = typer.Option(None, "--connector", help="Ask only this connector."),
        json_output: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """Show who is on call for a service now, who is next, and the escalation."""
        from im.cli import waiting
        from im.cli.output import print_json, when
        from im.connectors import Connector, OncallRequest
        from im.errors import ConnectorError, NotFoundError
        from im.incidents import parse_service

        name = parse_service(service)
        names = [connector] if connector else [r.name for r in runtime.store.list_connectors()
                                               if r.enabled]
        errors = []
        until = waiting.deadline()  # one for the command, whichever connectors it asks
        for candidate in names:
            instance = runtime.connector(candidate)
            if type(instance).oncall is Connector.oncall:
                continue  # this connector type has no on-call schedules
            try:
                with waiting.spinner(f"Asking {candidate}"):
                    result = instance.oncall(OncallRequest(service=name, at=runtime.clock(),
                                                           deadline=until))
            except ConnectorError as error:
                errors.append(f"{candidate}: {error}")
                continue
            if json_output:
                print_json({"connector": candidate, **_asdict(result)})
                return
            lines = [f"Service: {result.service}"]
            if result.current:
                until = f" (until {when(result.current_until)[:16]})" if result.current_until \
                    else ""
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
            return
        if errors:
            raise ConnectorError("; ".join(errors))
        raise NotFoundError("no connector with on-call schedules is configured"
                            " (`im connector list`)")


def _asdict(result: object) -> dict[str, object]:
    import msgspec

    return msgspec.structs.asdict(result)  # type: ignore[arg-type]
