"""PagerDuty Webhooks v3: signatures, envelopes, and what each event means for im."""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec

from im import (
    ChangeKind,
    InboundChange,
    RemoteStatus,
    UnhandledEventError,
    WebhookEvent,
    parse_idempotency_key,
)

if TYPE_CHECKING:
    from im_pagerduty.connector import PagerDutyConnector

SIGNATURE_HEADER = "x-pagerduty-signature"
WEBHOOK_ID_HEADER = "x-webhook-id"  # unsigned: never a delivery id (a replay can change it)

# The events a subscription made by `im connector webhook --enable` asks for.
EVENT_TYPES = [
    "incident.triggered", "incident.acknowledged", "incident.unacknowledged",
    "incident.escalated", "incident.reassigned", "incident.delegated", "incident.resolved",
    "incident.reopened", "incident.annotated", "incident.priority_updated",
    "incident.conference_bridge.updated", "incident.incident_type.changed",
    "incident.service_updated", "incident.responder.added", "incident.responder.replied",
    "incident.status_update_published",
]
KIND = {
    "incident.triggered": ChangeKind.OPENED, "incident.acknowledged": ChangeKind.ACKNOWLEDGED,
    "incident.unacknowledged": ChangeKind.UNACKNOWLEDGED, "incident.resolved": ChangeKind.RESOLVED,
    "incident.reopened": ChangeKind.REOPENED, "incident.escalated": ChangeKind.ESCALATED,
    "incident.reassigned": ChangeKind.ASSIGNED, "incident.delegated": ChangeKind.ASSIGNED,
    "incident.priority_updated": ChangeKind.SEVERITY, "incident.annotated": ChangeKind.NOTE,
    # a timeline line each; a status update is what responders told stakeholders: a note
    "incident.conference_bridge.updated": ChangeKind.UPDATED,
    "incident.incident_type.changed": ChangeKind.UPDATED,
    "incident.service_updated": ChangeKind.UPDATED,
    "incident.responder.added": ChangeKind.UPDATED,
    "incident.responder.replied": ChangeKind.UPDATED,
    "incident.status_update_published": ChangeKind.NOTE,
}
# Events whose data is not the incident but names it (`data.incident`, a reference): notes,
# bridges, responder requests and status updates.
ABOUT_INCIDENT = {
    "incident.annotated", "incident.conference_bridge.updated", "incident.responder.added",
    "incident.responder.replied", "incident.status_update_published",
}
IGNORED = {"pagey.ping"}


def sign(secret: str, body: bytes) -> str:
    """The `v1=` signature PagerDuty puts on a body: HMAC-SHA256 with the secret's bytes."""
    return "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secrets: list[str], header: str | None, body: bytes) -> bool:
    """True when any `v1=` entry of the header matches any secret (rotation keeps two
    secrets valid). Compared in constant time, over the raw body."""
    if not header or not secrets:
        return False
    offered = [part.strip()[3:] for part in header.split(",") if part.strip().startswith("v1=")]
    expected = [sign(secret, body)[3:] for secret in secrets]
    matched = False
    for candidate in offered:
        for signature in expected:
            # no early exit: the time taken does not depend on which entry matched
            matched |= hmac.compare_digest(candidate.encode(), signature.encode())
    return matched


class Reference(msgspec.Struct):
    id: str = ""
    type: str = ""
    summary: str | None = None
    html_url: str | None = None


class Event(msgspec.Struct):
    id: str
    event_type: str
    occurred_at: datetime
    resource_type: str = ""
    agent: Reference | None = None
    # where the event was triggered: {"name": "PagerDuty"} or null in PagerDuty's samples;
    # read loosely (see client_name), an unexpected shape never costs the event
    client: Any = None
    data: dict[str, Any] = {}


class Envelope(msgspec.Struct):
    event: Event


class EventHead(msgspec.Struct):
    id: str
    event_type: str
    occurred_at: datetime


class EnvelopeHead(msgspec.Struct):
    event: EventHead


_decoder = msgspec.json.Decoder(Envelope)
_head_decoder = msgspec.json.Decoder(EnvelopeHead)  # the hot path reads only the head


def decode(body: bytes) -> Event:
    try:
        return _decoder.decode(body).event
    except msgspec.DecodeError as error:
        raise ValueError(f"not a PagerDuty v3 webhook: {error}") from None


def envelope(headers: dict[str, str], body: bytes) -> WebhookEvent:
    try:
        event = _head_decoder.decode(body).event
    except msgspec.DecodeError as error:
        raise ValueError(f"not a PagerDuty v3 webhook: {error}") from None
    # Without an id (not seen from PagerDuty) the signed body itself identifies the delivery:
    # never the unsigned X-Webhook-Id, which a replay of the same body can change at will.
    delivery_id = event.id or "sha256:" + hashlib.sha256(body).hexdigest()
    return WebhookEvent(delivery_id=delivery_id, event_type=event.event_type,
                        occurred_at=event.occurred_at)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:63] or "default"


# PagerDuty's incident states in im's words (im.RemoteStatus): what im keeps on a link
STATES = {"triggered": RemoteStatus.OPEN, "acknowledged": RemoteStatus.ACKNOWLEDGED,
          "resolved": RemoteStatus.RESOLVED}


def state(status: object) -> RemoteStatus | None:
    """A PagerDuty incident status as im's remote state; None for none (or a word PagerDuty
    may add one day, which im does not guess at)."""
    return STATES.get(str(status)) if status else None


def im_service(connector: PagerDutyConnector, service: dict[str, Any]) -> str:
    """The im service of a PagerDuty service: the mapping back, else a name made from it."""
    service_id = service.get("id", "")
    for name, mapped in sorted(connector.settings.custom.service_mappings.items()):
        if mapped == service_id and name != "default":
            return name
    return _slug(service.get("summary") or service_id)


def severity(connector: PagerDutyConnector, incident: dict[str, Any]) -> str:
    """The priority through `priority_mapping`; else high urgency is SEV-2, low is SEV-3."""
    from im_pagerduty.priorities import severity_of

    return severity_of(connector, incident)


def resolved_label(number: object) -> str:
    """The timeline's words for a resolve in PagerDuty that im does not follow."""
    return f"PagerDuty incident #{number} resolved in PagerDuty" if number else (
        "PagerDuty incident resolved in PagerDuty")


MERGE_REASON = "merge_resolve_reason"
_REF_NUMBER = re.compile(r"^\[#(\d+)\]")


def merged_into(incident: dict[str, Any]) -> dict[str, str | None] | None:
    """The incident a resolved one was merged into, from its `resolve_reason` (webhook data and
    REST alike; PagerDuty sets it only for merges): its id, number and URL, as the core's
    InboundChange names them. None for any other resolve."""
    reason = incident.get("resolve_reason") or {}
    target = reason.get("incident") or {}
    if reason.get("type") != MERGE_REASON or not target.get("id"):
        return None
    # an incident reference's summary is "[#15] title": the number people know it by
    match = _REF_NUMBER.match(str(target.get("summary") or ""))
    return {"merged_into": target["id"], "merged_into_number": match.group(1) if match else None,
            "merged_into_url": target.get("html_url")}


def merged_label(number: object, target: dict[str, str | None]) -> str:
    """The timeline's words for a merge: "PagerDuty #12 merged into #15"."""
    into = target["merged_into_number"]
    return (f"PagerDuty #{number}" if number else "PagerDuty incident") + (
        f" merged into #{into}" if into else f" merged into {target['merged_into']}")


# The `client` of a change made in PagerDuty's own web UI or app: nothing to add for a reader.
OWN_CLIENT = "PagerDuty"


def client_name(event: Event) -> str | None:
    """The name of the client the event was triggered through, other than PagerDuty's own app:
    an integration a responder acted through (None for PagerDuty itself, or no client)."""
    client = event.client
    name = client.get("name") if isinstance(client, dict) else None
    if not isinstance(name, str) or not name.strip():
        return None
    name = " ".join(name.split())[:80]
    return None if name.casefold() == OWN_CLIENT.casefold() else name


def changes(connector: PagerDutyConnector, body: bytes) -> list[InboundChange]:
    event = decode(body)
    if event.event_type in IGNORED:
        return []
    kind = KIND.get(event.event_type)
    if kind is None:
        raise UnhandledEventError(f"PagerDuty event type {event.event_type} is not handled")
    data = event.data
    whole = event.event_type not in ABOUT_INCIDENT  # data is the incident itself
    incident = data if whole else data.get("incident")
    if not isinstance(incident, dict) or not incident.get("id"):
        raise ValueError(f"{event.event_type} event {event.id} names no incident")
    actor = _actor(connector, event.agent)
    echo = bool(event.agent and event.agent.id and event.agent.id == connector.own_user_id)
    keyed = parse_idempotency_key(incident.get("incident_key"))
    assignee = _assignee(connector, data) if whole else None
    number = incident.get("number")
    text = ""
    known: str | None = None
    label = f"PagerDuty incident #{number}" if number else "PagerDuty incident"
    merge = merged_into(data) if kind == ChangeKind.RESOLVED else None
    if merge is not None:
        # not a resolve for im: the problem goes on under the incident it was merged into
        # (followed whatever auto_resolve says)
        kind = ChangeKind.MERGED
        text = merged_label(number, merge)
    elif kind == ChangeKind.NOTE:
        if not connector.settings.custom.sync_notes:
            return []
        if event.event_type == "incident.status_update_published":
            text = _status_update_text(incident, data)
        else:
            text = _note_text(connector, incident["id"], data)
    elif event.event_type in ACTIVITY:
        text = ACTIVITY[event.event_type](connector, label, data)
    elif kind == ChangeKind.RESOLVED and not connector.settings.custom.auto_resolve:
        text = f"{resolved_label(number)} (auto_resolve is off)"
    elif kind == ChangeKind.ESCALATED:
        text = f"{label} escalated" + (f"; assigned to {assignee}" if assignee else "")
    elif kind == ChangeKind.ASSIGNED:
        verb = "delegated" if event.event_type == "incident.delegated" else "reassigned"
        text = f"{label} {verb}" + (f" to {assignee}" if assignee else "")
    elif kind == ChangeKind.SEVERITY:
        from im_pagerduty.priorities import mapped_severity

        priority = (data.get("priority") or {}).get("summary")
        # with the severity it reads as, when the mapping knows it: the im incident takes
        # that severity; a priority the mapping does not know (or none) changes nothing
        known = mapped_severity(connector, priority or "")
        text = f"{label} priority set to {priority or 'none'}" + (f" ({known})" if known else "")
    elif kind == ChangeKind.OPENED:
        text = f"Triggered in PagerDuty: {incident.get('title', '')}"
    via = client_name(event)
    if via and kind != ChangeKind.NOTE:  # a note's words stay as written
        text = f"{text} (via {via})" if text else f"via {via}"
    return [InboundChange(
        remote_id=incident["id"], event_id=event.id, action=kind,
        occurred_at=event.occurred_at, actor=actor, text=text,
        remote_number=str(number) if number else None, remote_url=incident.get("html_url"),
        remote_status=state(data.get("status")) if whole else None,
        title=incident.get("title") if whole else None,
        service=keyed[1] if keyed else im_service(connector, data.get("service") or {}),
        severity=(known if kind == ChangeKind.SEVERITY else severity(connector, data))
        if whole else None,
        assignee=assignee, correlation_id=keyed[0] if keyed else None, echo=echo,
        record_only=kind == ChangeKind.RESOLVED and not connector.settings.custom.auto_resolve,
        # a move in PagerDuty: the link follows the service mapping to the im service
        moved_to_service=im_service(connector, data.get("service") or {})
        if event.event_type == "incident.service_updated" else None,
        **(merge or {}),
    )]


def _note_text(connector: PagerDutyConnector, incident_id: str, data: dict[str, Any]) -> str:
    """A note's content; one PagerDuty trimmed to fit the webhook (`trimmed`) is read whole
    from the incident's notes (one call), so the timeline never keeps a cut note."""
    content = str(data.get("content") or "")
    if not data.get("trimmed"):
        return content
    notes = connector.client.get(f"/incidents/{incident_id}/notes").get("notes") or []
    note = next((n for n in notes if n.get("id") == data.get("id")), None)
    return str(note.get("content") or content) if note else content


def _status_update_text(incident: dict[str, Any], data: dict[str, Any]) -> str:
    """A status update as delivered. One PagerDuty trimmed to fit the webhook cannot be read
    whole (no route of its API gives a status update back), so the line says it was cut and
    where the whole of it is."""
    text = f"Status update in PagerDuty: {data.get('message') or ''}"
    if not data.get("trimmed"):
        return text
    where = f": {incident['html_url']}" if incident.get("html_url") else ""
    return (f"{text} [cut by PagerDuty to fit its webhook; the whole update is on the"
            f" incident in PagerDuty{where}]")


def _bridge_text(connector: PagerDutyConnector, label: str, data: dict[str, Any]) -> str:
    numbers = [str(n.get("number")) for n in data.get("conference_numbers") or []
               if n.get("number")]
    where = ", ".join([*([data["conference_url"]] if data.get("conference_url") else []),
                       *numbers])
    return "PagerDuty conference bridge " + (f"set: {where}" if where else "removed")


def _type_text(connector: PagerDutyConnector, label: str, data: dict[str, Any]) -> str:
    name = (data.get("incident_type") or {}).get("name") or "none"
    return f"{label} incident type changed to {name}"


def _service_text(connector: PagerDutyConnector, label: str, data: dict[str, Any]) -> str:
    service = data.get("service") or {}
    name = service.get("summary") or service.get("id") or "another service"
    return f"{label} moved to PagerDuty service {name} ({im_service(connector, service)})"


def _responder_text(connector: PagerDutyConnector, label: str, data: dict[str, Any]) -> str:
    user = data.get("user") or {}
    who = (connector.email_of(user["id"]) if user.get("id") else None) or user.get(
        "summary") or "someone"
    message = f": {data['message']}" if data.get("message") else ""
    state = data.get("state") or "pending"
    if state == "pending":
        return f"PagerDuty responder requested: {who}{message}"
    return f"PagerDuty responder {who} {state}"


ACTIVITY = {
    "incident.conference_bridge.updated": _bridge_text,
    "incident.incident_type.changed": _type_text,
    "incident.service_updated": _service_text,
    "incident.responder.added": _responder_text,
    "incident.responder.replied": _responder_text,
}


def _actor(connector: PagerDutyConnector, agent: Reference | None) -> str:
    if agent is None or not agent.id:
        return "PagerDuty"
    return connector.email_of(agent.id) or agent.summary or agent.id


def _assignee(connector: PagerDutyConnector, data: dict[str, Any]) -> str | None:
    return connector.assignee_of(data.get("assignees") or [])
