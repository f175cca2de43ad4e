"""The data of the core: incidents, their timeline, and what connectors exchange with it."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import msgspec

from im.clock import utcnow  # noqa: F401 (im.models.utcnow, as before)


class Severity(enum.StrEnum):
    """How bad an incident is, SEV-1 the worst (`--sev` also takes `1`, `sev1`, `SEV1`)."""

    # critical system impact
    SEV1 = "SEV-1"
    # major functionality impact
    SEV2 = "SEV-2"
    # minor functionality impact
    SEV3 = "SEV-3"
    # informational only
    SEV4 = "SEV-4"


class Status(enum.StrEnum):
    """Where an incident is in its lifecycle (TRANSITIONS says which Action leads where)."""

    # declared, reopened or unacknowledged: nobody has acknowledged it
    OPEN = "open"
    # acknowledged
    MITIGATED = "mitigated"
    # the problem is over (it can be reopened)
    RESOLVED = "resolved"
    # finished with (it can be reopened); closing one never resolved sets its resolve time
    CLOSED = "closed"


class Action(enum.StrEnum):
    """What can happen to an incident; outbox rows and timeline kinds use these names."""

    # the incident was declared: create the remote incident (payload: {})
    DECLARE = "declare"
    # acknowledged (open to mitigated) (payload: {"note": ...}, the note may be "")
    ACK = "ack"
    # back to open from mitigated (payload: {"note": ...})
    UNACK = "unack"
    # resolved (payload: {"note": ...})
    RESOLVE = "resolve"
    # closed (payload: {"note": ...})
    CLOSE = "close"
    # reopened, from resolved or closed (payload: {"note": ...})
    REOPEN = "reopen"
    # a note was added (payload: {"note": ...})
    NOTE = "note"
    # someone was assigned (payload: {"assignee": ...}, an email or a name)
    ASSIGN = "assign"
    # the severity changed (payload: {"severity": "SEV-1"})
    SEVERITY = "severity"
    # an SLA target was missed (payload: {"note": ...}, what was missed): an outbox row only,
    # not a transition (the timeline's kind is sla_breached)
    SLA_BREACH = "sla_breach"


# The lifecycle: for each status, the actions allowed and the status each leads to.
# Notes and assignments are allowed in every status and change none.
TRANSITIONS: dict[Status, dict[Action, Status]] = {
    Status.OPEN: {Action.ACK: Status.MITIGATED, Action.RESOLVE: Status.RESOLVED,
                  Action.CLOSE: Status.CLOSED},
    Status.MITIGATED: {Action.UNACK: Status.OPEN, Action.RESOLVE: Status.RESOLVED,
                       Action.CLOSE: Status.CLOSED},
    Status.RESOLVED: {Action.CLOSE: Status.CLOSED, Action.REOPEN: Status.OPEN},
    Status.CLOSED: {Action.REOPEN: Status.OPEN},
}


class Origin(msgspec.Struct, frozen=True, kw_only=True):
    """Who made a change, and in which system: "im" or a connector's name."""

    actor: str
    system: str = "im"


class TimelineEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One line of an incident's timeline: what happened, when, who did it and where."""

    # its number, in the order events were recorded (across incidents)
    id: int
    # the incident it belongs to ("INC-42")
    incident_id: str
    # when it happened (UTC)
    at: datetime
    # what happened: "declared", "acknowledged", "note", "sync", "sla_breached", "workflow",
    # and the other kinds Action's changes record (im.incidents.KINDS)
    kind: str
    # the line as the timeline prints it
    text: str
    # who did it: a user, a remote system's user, or a workflow's name
    actor: str
    # where it was done: "im", or the name of the connector it came from
    system: str
    # details a program reads (the remote id a sync line is about, a workflow's action, ...)
    data: dict[str, Any] = {}


class Link(msgspec.Struct, frozen=True, kw_only=True):
    """An incident in an outside system that a connector keeps in step with an im incident."""

    # the im incident ("INC-42")
    incident_id: str
    # the connector's name ("prod-pager")
    connector: str
    # the im service the remote incident is for (with one remote incident per im incident, the
    # service it was made for)
    service: str
    # the remote incident's id, unique per connector (one remote incident, one link)
    remote_id: str
    # the number people know it by ("4512"), where the remote system has one
    remote_number: str | None = None
    # where people open it
    remote_url: str | None = None
    # its state as last known, an im.RemoteStatus value
    remote_status: str | None = None
    # when im last changed the link
    updated_at: datetime | None = None
    # when the remote system made the change the link knows of, by its clock: an event from
    # before it is older and is not applied
    remote_updated_at: datetime | None = None


class Incident(msgspec.Struct, frozen=True, kw_only=True):
    """An im incident as it is now (a push gets it at delivery, not as it was at the change)."""

    # "INC-42" (`number` is 42)
    id: str
    # one line: what is wrong
    title: str
    # more of it, as the declaring user wrote it ("" if none)
    description: str = ""
    # how bad it is (see Severity)
    severity: Severity
    # where it is in its lifecycle (see Status)
    status: Status
    # the services it affects, in the order given (a connector with one remote incident per im
    # incident makes it for the first)
    services: list[str]
    # who is on it (an email or a name), None before anyone is assigned
    assignee: str | None = None
    # the user's own fields (`im declare --field key=value`)
    fields: dict[str, str] = {}
    # 32 hex digits, the same for the incident's whole life: idempotency keys are made of it
    correlation_id: str
    # who declared it
    created_by: str
    # when it was declared (UTC, as every time here)
    created_at: datetime
    # when anything of it last changed
    updated_at: datetime
    # when it was acknowledged (a reopen clears it, and the next two)
    mitigated_at: datetime | None = None
    # when it was resolved (or closed without being resolved)
    resolved_at: datetime | None = None
    # when it was closed
    closed_at: datetime | None = None
    # when it was last reopened
    reopened_at: datetime | None = None

    @property
    def number(self) -> int:
        return incident_number(self.id)


def incident_number(incident_id: str) -> int:
    return int(incident_id.removeprefix("INC-"))


class SyncDirection(enum.StrEnum):
    """Which way a connector keeps incidents in step: it pushes im's changes out, pulls the
    remote system's in, or both."""

    # pushes im's changes and pulls the remote system's
    BIDIRECTIONAL = "bidirectional"
    # pushes only: the remote system's changes (webhooks, polls) are ignored
    OUTBOUND = "outbound"
    # pulls only: im's changes are not sent
    INBOUND = "inbound"

    @property
    def pushes(self) -> bool:
        return self is not SyncDirection.INBOUND

    @property
    def pulls(self) -> bool:
        return self is not SyncDirection.OUTBOUND


# A connector whose settings do not say (the default of ConnectorSettings.sync_direction).
DEFAULT_SYNC_DIRECTION = SyncDirection.OUTBOUND


class ConnectorRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A configured connector instance as stored: its settings are still raw JSON-able data."""

    name: str
    type: str
    settings: dict[str, Any]
    enabled: bool = True
    created_at: datetime
    updated_at: datetime

    @property
    def sync_direction(self) -> SyncDirection:
        """The stored direction, read without decoding the settings (so without the
        connector's plugin): what routing changes and listing connectors need."""
        return SyncDirection(self.settings.get("sync_direction", DEFAULT_SYNC_DIRECTION))
