"""PagerDuty's own `im connector` commands: service and escalation-policy mappings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import typer

if TYPE_CHECKING:
    from im import Runtime
    from im_pagerduty.connector import PagerDutyConnector


def _connector(runtime: Runtime, name: str) -> PagerDutyConnector:
    from im import InvalidInputError
    from im_pagerduty.connector import PagerDutyConnector

    connector = runtime.connector(name)
    if not isinstance(connector, PagerDutyConnector):
        raise InvalidInputError(f"{name} is a {connector.type} connector, not pagerduty")
    return connector


def _save_custom(connector: PagerDutyConnector, path: str, key: str, value: str) -> None:
    """Set custom.<path>[key] in the stored settings (validated like every change)."""
    current = dict(getattr(connector.settings.custom, path))
    current[key] = value
    connector.runtime.update_connector_settings(connector.name, {f"custom.{path}": current})


def _names(connector: PagerDutyConnector, path: str, key: str) -> dict[str, str]:
    """Ids to names for a PagerDuty list (one paginated listing), within the command's time."""
    from im import deadline, spinner
    from im_pagerduty.client import PagerDutyError

    try:
        with spinner(f"Asking {connector.name}"), connector.client.until(deadline()):
            return {item["id"]: item.get("name") or item.get("summary", "")
                    for item in connector.client.paginate(path, key)}
    except PagerDutyError as error:
        typer.echo(f"Warning: names unavailable: {error}", err=True)
        return {}


def _print_mappings(connector: PagerDutyConnector, mappings: dict[str, str], path: str,
                    key: str, fields: tuple[str, str, str], headers: list[str],
                    json_output: bool) -> None:
    """im services to PagerDuty ids, with PagerDuty's names (one listing), `default` last."""
    from im import print_json, table

    names = _names(connector, path, key)
    rows = [dict(zip(fields, (service, remote, names.get(remote, "")), strict=True))
            for service, remote in sorted(mappings.items(),
                                          key=lambda item: (item[0] == "default", item[0]))]
    if json_output:
        print_json(rows)
        return
    typer.echo(table(headers, [[r[fields[0]], r[fields[1]], r[fields[2]] or "?"]
                               for r in rows]))


def _verify(connector: PagerDutyConnector, path: str, what: str) -> None:
    """Refuse an id PagerDuty does not know; accept it (with a warning) when unreachable."""
    from im import deadline, spinner

    with spinner(f"Asking {connector.name}"):
        warning = connector.verify_exists(path, what, deadline=deadline())
    if warning:
        typer.echo(f"Warning: {warning}", err=True)


def add_commands(cli: Any, runtime: Runtime) -> None:
    from im import command_group

    connector_app = command_group(cli, "connector")

    @connector_app.command("map-service")
    def map_service(
        name: str = typer.Argument(..., help="The PagerDuty connector."),
        im_service: str = typer.Option(..., "--im-service", help="The im service, e.g. api."),
        pd_service: str = typer.Option(..., "--pd-service", help="PagerDuty service id."),
    ) -> None:
        """Create incidents of an im service in a PagerDuty service (`default` for the rest)."""
        from im import parse_service

        connector = _connector(runtime, name)
        service = parse_service(im_service)
        _verify(connector, f"/services/{quote(pd_service, safe='')}", f"service {pd_service}")
        _save_custom(connector, "service_mappings", service, pd_service)
        typer.echo(f"Mapped im service {service} to PagerDuty service {pd_service}")

    @connector_app.command("list-mappings")
    def list_mappings(
        name: str = typer.Argument(..., help="The PagerDuty connector."),
        json_output: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """List service mappings, with PagerDuty's service names."""
        connector = _connector(runtime, name)
        custom = connector.settings.custom
        mappings = dict(custom.service_mappings)
        mappings.setdefault("default", custom.service_id)
        _print_mappings(connector, mappings, "/services", "services",
                        ("im_service", "pagerduty_service", "service_name"),
                        ["IM Service", "PagerDuty Service", "Service Name"], json_output)

    @connector_app.command("map-escalation")
    def map_escalation(
        name: str = typer.Argument(..., help="The PagerDuty connector."),
        service: str = typer.Option(..., "--service", help="The im service, e.g. api."),
        escalation_policy: str = typer.Option(..., "--escalation-policy",
                                              help="PagerDuty escalation policy id."),
    ) -> None:
        """Use an escalation policy for one im service's incidents."""
        from im import parse_service

        connector = _connector(runtime, name)
        im_service = parse_service(service)
        _verify(connector, f"/escalation_policies/{quote(escalation_policy, safe='')}",
                f"escalation policy {escalation_policy}")
        _save_custom(connector, "escalation_mappings", im_service, escalation_policy)
        typer.echo(f"Mapped im service {im_service} to escalation policy {escalation_policy}")

    @connector_app.command("list-escalations")
    def list_escalations(
        name: str = typer.Argument(..., help="The PagerDuty connector."),
        json_output: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """List escalation-policy mappings, with PagerDuty's policy names."""
        connector = _connector(runtime, name)
        custom = connector.settings.custom
        mappings = dict(custom.escalation_mappings)
        if custom.escalation_policy_id:
            mappings.setdefault("default", custom.escalation_policy_id)
        if not mappings and not json_output:
            typer.echo("No escalation policies mapped; PagerDuty uses each service's own.")
            return
        _print_mappings(connector, mappings, "/escalation_policies", "escalation_policies",
                        ("im_service", "escalation_policy", "policy_name"),
                        ["IM Service", "Escalation Policy", "Policy Name"], json_output)

