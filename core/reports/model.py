"""What a report holds. Every figure is computed from stored (or fetched) data by
`im.reports.build`; the formats only present it. Durations are seconds, times UTC."""

from __future__ import annotations

from datetime import date, datetime

import msgspec

from im.reports.remote import RemoteEvent


class Stats(msgspec.Struct, frozen=True, kw_only=True):
    """How many durations were measured, their median and 90th percentile (seconds)."""

    count: int = 0
    median_seconds: float | None = None
    p90_seconds: float | None = None


class TimelineEntry(msgspec.Struct, frozen=True, kw_only=True):
    at: datetime
    kind: str
    text: str
    actor: str
    system: str


class Escalation(msgspec.Struct, frozen=True, kw_only=True):
    """An escalation of an incident: who it moved from (when known) and to whom."""

    incident_id: str
    at: datetime
    system: str
    from_: list[str] = msgspec.field(default_factory=list, name="from")
    to: list[str] = []
    text: str = ""


class RemoteIncident(msgspec.Struct, frozen=True, kw_only=True):
    """A remote incident linked to an im incident, as the report presents it.

    `source` is `stored` (from im's links and timeline) or `fetched` (asked of the connector,
    completed from stored data)."""

    connector: str
    connector_type: str | None = None
    service: str
    remote_id: str
    number: str | None = None
    url: str | None = None
    status: str | None = None
    title: str | None = None
    created_at: datetime | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    resolved_at: datetime | None = None
    time_to_acknowledge_seconds: float | None = None
    time_to_resolve_seconds: float | None = None
    paged: list[str] = []
    escalations: list[Escalation] = []
    events: list[RemoteEvent] = []
    source: str = "stored"


class RemoteTimes(msgspec.Struct, frozen=True, kw_only=True):
    """One incident's response measured in one connector's system, over all its linked remote
    incidents: the first created, the first acknowledged, and the last resolved (only once all
    are resolved)."""

    connector: str
    created_at: datetime | None = None
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    time_to_acknowledge_seconds: float | None = None
    time_to_resolve_seconds: float | None = None
    ack_sla: str = "unmeasured"
    resolve_sla: str = "unmeasured"


class IncidentEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One incident declared in the period.

    `acknowledged_at` is its first response: the first acknowledgement, or the resolution or
    closure when nobody acknowledged it before. `resolved_at` is its final resolution (none
    while it is open again after a reopen). SLA states: met, breached, or pending (open and
    still within its target)."""

    id: str
    title: str
    severity: str
    status: str
    services: list[str]
    assignee: str | None = None
    declared_by: str
    declared_at: datetime
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    time_to_acknowledge_seconds: float | None = None
    time_to_resolve_seconds: float | None = None
    ack_sla: str
    resolve_sla: str
    escalations: list[Escalation] = []
    paged: list[str] = []
    remote: list[RemoteIncident] = []
    remote_times: list[RemoteTimes] = []
    timeline: list[TimelineEntry] = []


class ResponseRow(msgspec.Struct, frozen=True, kw_only=True):
    """Response times of a group of incidents (a severity, a service, or all), measured in im
    or in one connector's system."""

    group: str
    measured_in: str
    incidents: int
    acknowledge: Stats
    resolve: Stats


class SlaTarget(msgspec.Struct, frozen=True, kw_only=True):
    severity: str
    ack_seconds: float
    resolve_seconds: float
    source: str  # what set it: "default", "settings file" or a connector (im.sla.set_by)


class SlaRow(msgspec.Struct, frozen=True, kw_only=True):
    """Compliance of one severity (or `All`): met / (met + breached), in percent; pending
    incidents are not counted yet."""

    severity: str
    measured_in: str
    incidents: int
    ack_met: int = 0
    ack_breached: int = 0
    ack_pending: int = 0
    ack_compliance_percent: float | None = None
    resolve_met: int = 0
    resolve_breached: int = 0
    resolve_pending: int = 0
    resolve_compliance_percent: float | None = None


class ResponderRow(msgspec.Struct, frozen=True, kw_only=True):
    """One responder: incidents they were first to respond to and how fast, incidents they
    were paged or assigned for, and escalations away from them."""

    responder: str
    acknowledgements: int
    acknowledge: Stats
    paged: int
    escalated_away: int


class DayCount(msgspec.Struct, frozen=True, kw_only=True):
    day: date
    by_severity: dict[str, int]
    total: int


class IncludedConnector(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    type: str | None = None
    linked: int = 0
    fetched: int = 0


class Summary(msgspec.Struct, frozen=True, kw_only=True):
    incidents: int
    by_severity: dict[str, int]
    by_status: dict[str, int]
    acknowledged: int
    resolved: int
    unresolved: int
    acknowledge: Stats
    resolve: Stats
    ack_compliance_percent: float | None = None
    resolve_compliance_percent: float | None = None
    escalations: int = 0
    linked_remote_incidents: int = 0


class Report(msgspec.Struct, frozen=True, kw_only=True):
    title: str
    period_start: date
    period_end: date
    generated_at: datetime
    timezone: str = "UTC"
    generator: str
    included: list[IncludedConnector] = []
    sla_targets: list[SlaTarget] = []
    summary: Summary
    daily: list[DayCount] = []
    response_by_severity: list[ResponseRow] = []
    response_by_service: list[ResponseRow] = []
    sla: list[SlaRow] = []
    responders: list[ResponderRow] = []
    escalations: list[Escalation] = []
    incidents: list[IncidentEntry] = []
    notes: list[str] = []

    @property
    def empty(self) -> bool:
        return not self.summary.incidents

    @property
    def period(self) -> str:
        return f"{self.period_start.isoformat()} to {self.period_end.isoformat()}"
