"""Describe a PagerDuty incident for im's reports: the incident and its log entries, in im's
words (who was paged, escalations, acknowledgements, resolution), two listings per incident.

Wired into the connector as `PagerDutyConnector.describe_remote(request)`.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from im import ChangeKind, RemoteEvent, RemoteIncidentReport, RemoteIncidentRequest

if TYPE_CHECKING:
    from im_pagerduty.connector import PagerDutyConnector

# PagerDuty log entry types and what each is in im's words; others are "updated".
KINDS = {
    "trigger_log_entry": ChangeKind.OPENED,
    "notify_log_entry": ChangeKind.NOTIFIED,
    "assign_log_entry": ChangeKind.ASSIGNED,
    "delegate_log_entry": ChangeKind.ASSIGNED,
    "escalate_log_entry": ChangeKind.ESCALATED,
    "acknowledge_log_entry": ChangeKind.ACKNOWLEDGED,
    "unacknowledge_log_entry": ChangeKind.UNACKNOWLEDGED,
    "resolve_log_entry": ChangeKind.RESOLVED,
    "annotate_log_entry": ChangeKind.NOTE,
}
_ORDER = {ChangeKind.OPENED: 0, ChangeKind.RESOLVED: 2}


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None  # 3.11 reads the Z itself


def _person(connector: PagerDutyConnector, reference: dict[str, Any] | None) -> str | None:
    """A user's email (their summary if the directory does not know them); for anything
    else (a service, an integration, a timeout) its summary."""
    if not reference:
        return None
    if str(reference.get("type", "")).startswith("user"):
        return (connector.email_of(reference.get("id", "")) or reference.get("email")
                or reference.get("summary") or reference.get("id"))
    return reference.get("summary") or None


def _event(connector: PagerDutyConnector, entry: dict[str, Any]) -> RemoteEvent | None:
    at = _time(entry.get("created_at"))
    if at is None:
        return None
    entry_type = str(entry.get("type", "")).removesuffix("_reference")
    kind = KINDS.get(entry_type, ChangeKind.UPDATED)
    targets: list[str] = []
    if kind == ChangeKind.NOTIFIED:
        targets = [p for p in [_person(connector, entry.get("user"))] if p]
    elif kind in (ChangeKind.ASSIGNED, ChangeKind.ESCALATED):
        targets = [p for p in (_person(connector, a) for a in entry.get("assignees") or []) if p]
    text = entry.get("summary") or entry_type.replace("_log_entry", "").replace("_", " ")
    channel = entry.get("channel") or {}
    if kind == ChangeKind.NOTIFIED and channel.get("type"):
        text = f"{text} ({channel['type']})"
    if kind == ChangeKind.NOTE and channel.get("summary"):
        text = f"{text}: {channel['summary']}"
    return RemoteEvent(at=at, kind=kind, text=text, actor=_person(connector, entry.get("agent")),
                       targets=targets)


def describe_remote(connector: PagerDutyConnector,
                    request: RemoteIncidentRequest) -> RemoteIncidentReport:
    """GET /incidents/{id} and every page of /incidents/{id}/log_entries. PagerDutyError (a
    ConnectorError, retryable or not) reaches the caller, who reports from stored data."""
    from im_pagerduty.webhooks import state

    remote_id = request.link.remote_id
    client = connector.client
    incident = client.get(f"/incidents/{remote_id}").get("incident") or {}
    entries = list(client.paginate(f"/incidents/{remote_id}/log_entries", "log_entries"))
    events = [event for event in (_event(connector, entry) for entry in entries)
              if event is not None]
    if len(events) > 1 and events[0].at > events[-1].at:
        events.reverse()  # PagerDuty lists the newest first
    # Entries of the same second keep the log's order, except that the trigger comes first
    # and the resolution last.
    events.sort(key=lambda e: (e.at, _ORDER.get(e.kind, 1)))
    number = incident.get("incident_number")
    return RemoteIncidentReport(
        remote_id=incident.get("id") or remote_id,
        number=str(number) if number is not None else None, url=incident.get("html_url"),
        status=state(incident.get("status")), title=incident.get("title"),
        created_at=_time(incident.get("created_at")),
        events=events)
