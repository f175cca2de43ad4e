"""Who is on call for an im service, from PagerDuty's escalation policy and on-call list.

Everything is computed from what PagerDuty answers: the policy's rules (user and schedule
targets, several levels), and `/oncalls`, which PagerDuty computes from schedule layers and
overrides. Three calls: the policy, and the on-call entries of the coming week.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from im import ConnectorError, OncallResult
from im_pagerduty.client import parse_time

if TYPE_CHECKING:
    from im_pagerduty.connector import PagerDutyConnector

HORIZON = timedelta(days=7)


def _email(connector: PagerDutyConnector, user: dict[str, Any]) -> str:
    return user.get("email") or connector.email_of(user.get("id", "")) or "" or user.get(
        "summary", user.get("id", "?"))


def _policy_id(connector: PagerDutyConnector, service: str) -> str:
    policy = connector.escalation_policy(service)
    if policy:
        return policy
    pd_service = connector.client.get(f"/services/{connector.pd_service(service)}")["service"]
    policy = (pd_service.get("escalation_policy") or {}).get("id")
    if not policy:
        raise ConnectorError(f"PagerDuty service {pd_service['id']} has no escalation policy")
    return str(policy)


def lookup(connector: PagerDutyConnector, service: str, at: datetime) -> OncallResult:
    policy_id = _policy_id(connector, service)
    policy = connector.client.get(f"/escalation_policies/{policy_id}")["escalation_policy"]
    entries = list(connector.client.paginate("/oncalls", "oncalls", {
        "escalation_policy_ids[]": [policy_id], "since": at.isoformat(),
        "until": (at + HORIZON).isoformat(), "include[]": ["users"],
    }))

    def covering(level: int, moment: datetime) -> list[dict[str, Any]]:
        return [e for e in entries if e.get("escalation_level") == level
                and (parse_time(e.get("start")) or moment) <= moment
                and (parse_time(e.get("end")) is None or parse_time(e.get("end")) > moment)]  # type: ignore[operator]

    current = covering(1, at)
    result: dict[str, Any] = {"service": service}
    if current:
        # The one whose shift ends last is who will still be on call; direct user targets
        # (no end) outrank shifts.
        first = max(current, key=lambda e: parse_time(e.get("end")) or at + HORIZON * 2)
        result["current"] = _email(connector, first["user"])
        until = parse_time(first.get("end"))
        result["current_until"] = until
        if until is not None:
            later = sorted((e for e in entries if e.get("escalation_level") == 1
                            and (parse_time(e.get("start")) or at) >= until
                            and e["user"].get("id") != first["user"].get("id")),
                           key=lambda e: parse_time(e.get("start")))  # type: ignore[arg-type,return-value]
            if later:
                result["next"] = _email(connector, later[0]["user"])
                result["next_from"] = parse_time(later[0].get("start"))

    escalations = []
    rules = policy.get("escalation_rules") or []
    for level in range(2, len(rules) + 1):
        delay = rules[level - 2].get("escalation_delay_in_minutes")
        people = sorted({_email(connector, e["user"]) for e in covering(level, at)})
        if people:
            escalations.append(f"After {delay} minutes → {', '.join(people)}")
    result["escalations"] = escalations
    result["routed"] = _routed(connector, service)
    return OncallResult(**result)


def _routed(connector: PagerDutyConnector, service: str) -> str | None:
    custom = connector.settings.custom
    if service in custom.service_mappings or service in custom.escalation_mappings:
        return None
    where = ("the `default` mapping" if "default" in custom.service_mappings
             else "the connector's service_id")
    return (f"{service} has no service mapping; its incidents go to PagerDuty service"
            f" {connector.pd_service(service)} ({where})")
