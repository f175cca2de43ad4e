"""The data of the core: incidents, their timeline, and what connectors exchange with it."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import msgspec

from im.clock import utcnow  # noqa: F401 (im.models.utcnow, as before)


class Severity(enum.StrEnum):
    SEV1 = "SEV-1"
    SEV2 = "SEV-2"
    SEV3 = "SEV-3"
    SEV4 = "SEV-4"


class Status(enum.StrEnum):
    OPEN = "open"
    MITIGATED = "mitigated"
    RESOLVED = "resolved"
    CLOSED = "closed"


class Action(enum.StrEnum):
    """What can happen to an incident; outbox rows and timeline kinds use these names."""

    DECLARE = "declare"
    ACK = "ack"
    UNACK = "unack"
    RESOLVE = "resolve"
    CLOSE = "close"
    REOPEN = "reopen"
    NOTE = "note"
    ASSIGN = "assign"
    SEVERITY = "severity"


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
    id: int
    incident_id: str
    at: datetime
    kind: str
    text: str
    actor: str
    system: str
    data: dict[str, Any] = {}


class Link(msgspec.Struct, frozen=True, kw_only=True):
    """An incident in an outside system that a connector keeps in step with an im incident."""

    incident_id: str
    connector: str
    service: str
    remote_id: str
    remote_number: str | None = None
    remote_url: str | None = None
    remote_status: str | None = None  # an im.RemoteStatus value
    updated_at: datetime | None = None
    remote_updated_at: datetime | None = None


class Incident(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    title: str
    description: str = ""
    severity: Severity
    status: Status
    services: list[str]
    assignee: str | None = None
    fields: dict[str, str] = {}
    correlation_id: str
    created_by: str
    created_at: datetime
    updated_at: datetime
    mitigated_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    reopened_at: datetime | None = None

    @property
    def number(self) -> int:
        return incident_number(self.id)


def incident_number(incident_id: str) -> int:
    return int(incident_id.removeprefix("INC-"))


class SyncDirection(enum.StrEnum):
    """Which way a connector keeps incidents in step: it pushes im's changes out, pulls the
    remote system's in, or both."""

    BIDIRECTIONAL = "bidirectional"
    OUTBOUND = "outbound"
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
