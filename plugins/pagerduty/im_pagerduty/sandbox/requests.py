"""Request bodies the REST API accepts, decoded strictly where PagerDuty is strict.

Unknown fields are ignored, as PagerDuty ignores unknown and read-only fields.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec


class RefIn(msgspec.Struct, kw_only=True):
    id: str | None = None
    type: str | None = None


class AssignmentIn(msgspec.Struct, kw_only=True):
    assignee: RefIn


class BodyIn(msgspec.Struct, kw_only=True):
    type: str | None = None
    # Strings per the docs; the OpenAPI document says object, so take either.
    details: Any = None


class ConferenceBridgeIn(msgspec.Struct, kw_only=True):
    conference_number: str | None = None
    conference_url: str | None = None


class IncidentTypeIn(msgspec.Struct, kw_only=True):
    name: str | None = None


class NewIncident(msgspec.Struct, kw_only=True):
    type: Literal["incident"]
    title: str
    service: RefIn
    urgency: Literal["high", "low"] | None = None
    priority: RefIn | None = None
    incident_key: str | None = None
    body: BodyIn | None = None
    assignments: list[AssignmentIn] | None = None
    escalation_policy: RefIn | None = None
    conference_bridge: ConferenceBridgeIn | None = None
    incident_type: IncidentTypeIn | None = None


class CreateIncidentBody(msgspec.Struct, kw_only=True):
    incident: NewIncident


class IncidentChanges(msgspec.Struct, kw_only=True):
    type: Literal["incident", "incident_reference"]
    status: str | None = None
    resolution: str | None = None
    title: str | None = None
    urgency: Literal["high", "low"] | None = None
    priority: RefIn | str | None = None
    escalation_level: int | None = None
    assignments: list[AssignmentIn] | None = None
    escalation_policy: RefIn | None = None
    service: RefIn | None = None
    conference_bridge: ConferenceBridgeIn | None = None
    incident_type: IncidentTypeIn | None = None


class UpdateIncidentBody(msgspec.Struct, kw_only=True):
    incident: IncidentChanges


class NoteIn(msgspec.Struct, kw_only=True):
    content: str


class CreateNoteBody(msgspec.Struct, kw_only=True):
    note: NoteIn


class StatusUpdateBody(msgspec.Struct, kw_only=True):
    message: str
    subject: str | None = None
    html_message: str | None = None


class ResponderTargetIn(msgspec.Struct, kw_only=True):
    """One of `responder_request_targets`: wrapped (`{"responder_request_target": {id, type}}`,
    as the document's example and PagerDuty's clients send it) or bare (`{id, type}`, as the
    document's schema reads)."""

    responder_request_target: RefIn | None = None
    id: str | None = None
    type: str | None = None

    @property
    def ref(self) -> RefIn:
        return self.responder_request_target or RefIn(id=self.id, type=self.type)


class ResponderRequestBody(msgspec.Struct, kw_only=True):
    requester_id: str
    message: str
    responder_request_targets: list[ResponderTargetIn]


class CustomHeaderIn(msgspec.Struct, kw_only=True):
    name: str
    value: str


class DeliveryMethodIn(msgspec.Struct, kw_only=True):
    type: Literal["http_delivery_method"]
    url: str
    custom_headers: list[CustomHeaderIn] = []


class FilterIn(msgspec.Struct, kw_only=True):
    type: Literal["account_reference", "service_reference", "team_reference"]
    id: str | None = None


class NewSubscription(msgspec.Struct, kw_only=True):
    type: Literal["webhook_subscription"]
    delivery_method: DeliveryMethodIn
    events: list[str]
    filter: FilterIn
    description: str = ""
    active: bool = True


class CreateSubscriptionBody(msgspec.Struct, kw_only=True):
    webhook_subscription: NewSubscription


class SubscriptionChanges(msgspec.Struct, kw_only=True):
    description: str | None = None
    events: list[str] | None = None
    filter: FilterIn | None = None
    active: bool | None = None


class UpdateSubscriptionBody(msgspec.Struct, kw_only=True):
    webhook_subscription: SubscriptionChanges


class OverrideIn(msgspec.Struct, kw_only=True):
    start: str
    end: str
    user: RefIn
    time_zone: str | None = None


class CreateOverridesBody(msgspec.Struct, kw_only=True):
    overrides: list[OverrideIn]
