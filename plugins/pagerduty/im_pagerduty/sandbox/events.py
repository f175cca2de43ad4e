"""Webhooks v3 payloads, shaped field for field like real deliveries (webhooks/captured/).

Structs keep the key order of the captured bodies. `data` of an incident event is a snapshot
taken when the change happened; a retried delivery sends the same bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

import msgspec

from im_pagerduty.sandbox.links import Links
from im_pagerduty.sandbox.model import Incident, Note

if TYPE_CHECKING:
    from im_pagerduty.sandbox.incidents import Activity
from im_pagerduty.sandbox.store import Store
from im_pagerduty.sandbox.times import format_event_time, format_utc_time

INCIDENT_EVENT_TYPES: tuple[str, ...] = (
    "incident.triggered",
    "incident.acknowledged",
    "incident.unacknowledged",
    "incident.escalated",
    "incident.reassigned",
    "incident.delegated",
    "incident.priority_updated",
    "incident.annotated",
    "incident.resolved",
    "incident.reopened",
    "incident.service_updated",
    "incident.incident_type.changed",
    "incident.conference_bridge.updated",
    "incident.responder.added",
    "incident.responder.replied",
    "incident.status_update_published",
)

# Every event type a PagerDuty v3 webhook subscription may name (PagerDuty's published list);
# a subscription naming another is refused, as PagerDuty refuses it.
SUBSCRIBABLE_EVENT_TYPES: frozenset[str] = frozenset((
    "incident.acknowledged", "incident.annotated", "incident.conference_bridge.updated",
    "incident.custom_field_values.updated", "incident.delegated", "incident.escalated",
    "incident.incident_type.changed", "incident.priority_updated", "incident.reassigned",
    "incident.reopened", "incident.resolved", "incident.responder.added",
    "incident.responder.replied", "incident.role.assigned", "incident.service_updated",
    "incident.status_update_published", "incident.task.completed", "incident.task.created",
    "incident.task.updated", "incident.triggered", "incident.unacknowledged",
    "incident.action_invocation.created", "incident.action_invocation.terminated",
    "incident.action_invocation.updated", "incident.workflow.started",
    "incident.workflow.completed", "service.created", "service.custom_field_values.updated",
    "service.deleted", "service.updated",
))


class Ref(msgspec.Struct, frozen=True, kw_only=True):
    """Webhook references carry the same fields as REST ones, in alphabetical order."""

    html_url: str
    id: str
    self_: str = msgspec.field(name="self")
    summary: str
    type: str


class PingAgent(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    type: str = "user_reference"


class IncidentTypeName(msgspec.Struct, frozen=True, kw_only=True):
    name: str


class Bridge(msgspec.Struct, frozen=True, kw_only=True):
    conference_number: str | None
    conference_url: str | None


class ResolveReason(msgspec.Struct, frozen=True, kw_only=True):
    incident: Ref
    type: str = "merge_resolve_reason"


class IncidentData(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    type: str = "incident"
    self_: str = msgspec.field(name="self")
    html_url: str
    number: int
    status: str
    incident_key: str
    created_at: str
    reopened_at: str | msgspec.UnsetType = msgspec.UNSET
    title: str
    service: Ref
    assignees: list[Ref]
    escalation_policy: Ref
    teams: list[Ref]
    priority: Ref | None
    urgency: str
    conference_bridge: Bridge | None
    resolve_reason: ResolveReason | None = None
    incident_type: IncidentTypeName


class NoteData(msgspec.Struct, frozen=True, kw_only=True):
    incident: Ref
    id: str
    content: str
    trimmed: bool
    type: str = "incident_note"


class ConferenceNumber(msgspec.Struct, frozen=True, kw_only=True):
    label: str
    number: str


class BridgeData(msgspec.Struct, frozen=True, kw_only=True):
    incident: Ref
    conference_numbers: list[ConferenceNumber]
    conference_url: str | None
    type: str = "incident_conference_bridge"


class ResponderData(msgspec.Struct, frozen=True, kw_only=True):
    incident: Ref
    user: Ref
    # the policy a request went to; a request to one user has none
    escalation_policy: Ref | None = None
    message: str
    state: str
    type: str = "incident_responder"


class StatusUpdateData(msgspec.Struct, frozen=True, kw_only=True):
    incident: Ref
    id: str
    message: str
    trimmed: bool = False
    type: str = "incident_status_update"


class PingData(msgspec.Struct, frozen=True, kw_only=True):
    message: str = "Hello from your friend Pagey!"
    type: str = "ping"


class Client(msgspec.Struct, frozen=True, kw_only=True):
    """Where the event was triggered: `{"name": "PagerDuty"}` in the documented sample (a user's
    change in PagerDuty); null in every captured delivery."""

    name: str


class Event(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    event_type: str
    resource_type: str
    occurred_at: str
    agent: Ref | PingAgent | None
    client: Client | None = None
    data: IncidentData | NoteData | BridgeData | ResponderData | StatusUpdateData | PingData


class Envelope(msgspec.Struct, frozen=True, kw_only=True):
    event: Event


# PagerDuty guarantees complete, ordered deliveries up to 55 KB and trims details beyond that.
COMPLETE_BODY_LIMIT = 56_320


class EventMaker:
    def __init__(self, store: Store, links: Links) -> None:
        self.store = store
        self.links = links

    def _ref(self, kind: str, object_id: str, summary: str) -> Ref:
        return Ref(
            html_url=self.links.web(kind, object_id),
            id=object_id,
            self_=self.links.api(kind, object_id),
            summary=summary,
            type=f"{kind}_reference",
        )

    def user_ref(self, user_id: str) -> Ref:
        user = self.store.users.get(user_id)
        return self._ref("user", user_id, user.name if user else user_id)

    def agent(self, user_id: str | None, service_id: str) -> Ref:
        if user_id:
            return self.user_ref(user_id)
        service = self.store.services.get(service_id)
        return self._ref("service", service_id, service.name if service else service_id)

    def incident_data(self, incident: Incident) -> IncidentData:
        store = self.store
        service = store.services.get(incident.service_id)
        policy = store.escalation_policies.get(incident.escalation_policy_id)
        priority = store.priorities.get(incident.priority_id) if incident.priority_id else None
        bridge = incident.conference_bridge
        return IncidentData(
            id=incident.id,
            self_=self.links.api("incident", incident.id),
            html_url=self.links.web("incident", incident.id),
            number=incident.number,
            status=incident.status,
            incident_key=incident.incident_key,
            created_at=format_utc_time(incident.created_at),
            reopened_at=format_utc_time(incident.reopened_at)
            if incident.reopened_at
            else msgspec.UNSET,
            title=incident.title,
            service=self._ref("service", incident.service_id, service.name if service else ""),
            assignees=[self.user_ref(user_id) for user_id in incident.assignee_ids],
            escalation_policy=self._ref(
                "escalation_policy", incident.escalation_policy_id, policy.name if policy else ""
            ),
            teams=[],
            priority=self._ref("priority", priority.id, priority.name) if priority else None,
            urgency=incident.urgency,
            conference_bridge=(
                Bridge(
                    conference_number=bridge.conference_number, conference_url=bridge.conference_url
                )
                if bridge
                else None
            ),
            resolve_reason=self.resolve_reason(incident),
            incident_type=IncidentTypeName(name=incident.incident_type),
        )

    def resolve_reason(self, incident: Incident) -> ResolveReason | None:
        target = self.store.incidents.get(incident.merged_into) if incident.merged_into else None
        if target is None:
            return None
        return ResolveReason(
            incident=self._ref("incident", target.id, f"[#{target.number}] {target.title}")
        )

    def incident_event(
        self,
        event_id: str,
        event_type: str,
        incident: Incident,
        agent_user_id: str | None,
        at: datetime,
        client: str | None = None,
    ) -> Event:
        return Event(
            id=event_id,
            event_type=event_type,
            resource_type="incident",
            occurred_at=format_event_time(at),
            agent=self.agent(agent_user_id, incident.service_id),
            client=Client(name=client) if client else None,
            data=self.incident_data(incident),
        )

    def note_event(
        self, event_id: str, note: Note, incident: Incident, at: datetime,
        client: str | None = None,
    ) -> Event:
        def event(content: str, trimmed: bool) -> Event:
            return Event(
                id=event_id,
                event_type="incident.annotated",
                resource_type="incident",
                occurred_at=format_event_time(at),
                agent=self.user_ref(note.user_id),
                client=Client(name=client) if client else None,
                data=NoteData(
                    incident=self._ref("incident", incident.id, incident.title),
                    id=note.id,
                    content=content,
                    trimmed=trimmed,
                ),
            )

        return _fitted(event, note.content)

    def activity_event(self, event_id: str, activity: Activity) -> Event:
        incident = activity.incident
        ref = self._ref("incident", incident.id, incident.title)
        detail = activity.detail
        data: BridgeData | ResponderData | StatusUpdateData
        if activity.event_type == "incident.conference_bridge.updated":
            bridge = incident.conference_bridge
            number = bridge.conference_number if bridge else None
            data = BridgeData(
                incident=ref,
                conference_numbers=[ConferenceNumber(label="", number=number)] if number else [],
                conference_url=bridge.conference_url if bridge else None,
            )
        elif activity.event_type == "incident.status_update_published":

            def status_update(message: str, trimmed: bool) -> Event:
                data = StatusUpdateData(
                    incident=ref, id=detail["id"], message=message, trimmed=trimmed
                )
                return self._activity(event_id, activity, data)

            # trimmed to fit a complete delivery, as a note is
            return _fitted(status_update, detail["message"])
        else:
            policy_id = detail.get("escalation_policy_id")
            policy = self.store.escalation_policies.get(policy_id) if policy_id else None
            data = ResponderData(
                incident=ref,
                user=self.user_ref(detail["user_id"]),
                escalation_policy=self._ref("escalation_policy", policy.id, policy.name)
                if policy
                else None,
                message=detail["message"],
                state=detail["state"],
            )
        return self._activity(event_id, activity, data)

    def _activity(
        self,
        event_id: str,
        activity: Activity,
        data: BridgeData | ResponderData | StatusUpdateData,
    ) -> Event:
        return Event(
            id=event_id,
            event_type=activity.event_type,
            resource_type="incident",
            occurred_at=format_event_time(activity.at),
            agent=self.agent(activity.agent_user_id, activity.incident.service_id),
            client=Client(name=activity.client) if activity.client else None,
            data=data,
        )

    def ping_event(self, event_id: str, agent_user_id: str, at: datetime) -> Event:
        return Event(
            id=event_id,
            event_type="pagey.ping",
            resource_type="pagey",
            occurred_at=format_event_time(at),
            agent=PingAgent(id=agent_user_id),
            data=PingData(),
        )


def encode(event: Event) -> bytes:
    return msgspec.json.encode(Envelope(event=event))


def _fitted(event: Callable[[str, bool], Event], text: str) -> Event:
    """The event `event(text, trimmed)` makes, whole when its body fits a complete delivery
    (55 KB); else with `text` cut until it fits, and `trimmed` true, as PagerDuty trims a
    note or a status update in its webhooks."""
    whole = event(text, False)
    overflow = len(encode(whole)) - COMPLETE_BODY_LIMIT
    if overflow <= 0:
        return whole
    # Every character dropped removes at least one byte of the body.
    return event(text[: len(text) - overflow], True)
