"""The account the sandbox holds: what PagerDuty stores, not how its API spells it.

Records are frozen; a change replaces the record in the store, so a snapshot taken for a
webhook payload can never change under a delivery that is still being retried.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

IncidentStatus = Literal["triggered", "acknowledged", "resolved"]
OPEN_STATUSES: frozenset[str] = frozenset({"triggered", "acknowledged"})


class User(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    email: str
    role: str = "user"
    time_zone: str = "UTC"
    color: str = "green"
    job_title: str = ""


class Service(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    description: str = ""
    escalation_policy_id: str
    created_at: datetime
    urgency: Literal["high", "low"] = "high"
    acknowledgement_timeout: int | None = None
    auto_resolve_timeout: int | None = None
    team_ids: tuple[str, ...] = ()


class Target(msgspec.Struct, frozen=True, kw_only=True):
    kind: Literal["user", "schedule"]
    id: str


class EscalationRule(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    delay_minutes: int
    targets: tuple[Target, ...]


class EscalationPolicy(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    description: str = ""
    num_loops: int = 0
    rules: tuple[EscalationRule, ...]
    team_ids: tuple[str, ...] = ()


class Layer(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    start: datetime
    end: datetime | None = None
    rotation_virtual_start: datetime
    turn_length_seconds: int
    user_ids: tuple[str, ...]


class Override(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    start: datetime
    end: datetime
    user_id: str


class Schedule(msgspec.Struct, frozen=True, kw_only=True):
    """Layers are listed bottom first: a later layer wins where it has someone on call."""

    id: str
    name: str
    description: str = ""
    time_zone: str = "UTC"
    layers: tuple[Layer, ...]
    overrides: tuple[Override, ...] = ()


class Priority(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    description: str = ""
    order: int


class Assignment(msgspec.Struct, frozen=True, kw_only=True):
    user_id: str
    at: datetime


class Acknowledgement(msgspec.Struct, frozen=True, kw_only=True):
    user_id: str
    at: datetime


class ConferenceBridge(msgspec.Struct, frozen=True, kw_only=True):
    conference_number: str | None = None
    conference_url: str | None = None


class Responder(msgspec.Struct, frozen=True, kw_only=True):
    """A user asked to help on an incident (POST /incidents/{id}/responder_requests) and
    where their answer stands: pending, joined or declined."""

    user_id: str
    state: Literal["pending", "joined", "declined"] = "pending"
    message: str
    requester_id: str
    requested_at: datetime
    updated_at: datetime
    # names of the escalation policies the user was requested through, if any
    escalation_policy_names: tuple[str, ...] = ()
    escalation_policy_id: str | None = None


class ResponderTarget(msgspec.Struct, frozen=True, kw_only=True):
    kind: Literal["user", "escalation_policy"]
    id: str
    user_ids: tuple[str, ...]  # the users the target reached


class ResponderRequestRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    requester_id: str
    requested_at: datetime
    message: str
    targets: tuple[ResponderTarget, ...]


class Incident(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    number: int
    title: str
    service_id: str
    escalation_policy_id: str
    status: IncidentStatus
    urgency: Literal["high", "low"]
    priority_id: str | None = None
    incident_key: str
    details: str | None = None
    created_at: datetime
    updated_at: datetime
    last_status_change_at: datetime
    last_status_change_by: str | None = None  # user id; None when the system acted
    resolved_at: datetime | None = None
    reopened_at: datetime | None = None
    assignments: tuple[Assignment, ...] = ()
    acknowledgements: tuple[Acknowledgement, ...] = ()
    assigned_via: Literal["escalation_policy", "direct_assignment"] = "escalation_policy"
    escalation_level: int = 1
    level_since: datetime  # when the current escalation level started, for timed escalation
    conference_bridge: ConferenceBridge | None = None
    incident_type: str = "incident_default"
    first_trigger_log_entry_id: str
    # the incident this one was merged into (PUT /incidents/{id}/merge): its resolve reason
    merged_into: str | None = None
    # responder requests made on the incident, and the responders they reached
    responder_requests: tuple[ResponderRequestRecord, ...] = ()
    responders: tuple[Responder, ...] = ()

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def assignee_ids(self) -> tuple[str, ...]:
        return tuple(assignment.user_id for assignment in self.assignments)


class Note(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    incident_id: str
    user_id: str
    content: str
    created_at: datetime


LogEntryType = Literal[
    "trigger_log_entry",
    "acknowledge_log_entry",
    "unacknowledge_log_entry",
    "resolve_log_entry",
    "assign_log_entry",
    "escalate_log_entry",
    "delegate_log_entry",
    "annotate_log_entry",
    "urgency_change_log_entry",
]


class LogEntry(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    type: LogEntryType
    incident_id: str
    service_id: str
    created_at: datetime
    agent_user_id: str | None
    summary: str
    assignee_ids: tuple[str, ...] = ()
    note: str | None = None


class CustomHeader(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    value: str


class WebhookSubscription(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    delivery_method_id: str
    url: str
    custom_headers: tuple[CustomHeader, ...] = ()
    description: str = ""
    events: tuple[str, ...]
    filter_type: Literal["account_reference", "service_reference", "team_reference"]
    filter_id: str | None = None
    active: bool = True
    secret: str
    # While a secret rotates, deliveries carry a signature for each secret.
    previous_secret: str | None = None
    previous_secret_until: datetime | None = None
    temporarily_disabled: bool = False
    consecutive_drops: int = 0
