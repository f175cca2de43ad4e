"""Incident operations: declare, ack, resolve, close, reopen, note, assign, severity; list, show,
timeline; and delivering what a change queued.

Each change goes through the lifecycle in `im.incidents` (one transaction: the incident, its
timeline event, the outbox rows; `incident_changed` after the commit) and returns what it
changed. Delivering the queued changes is the front end's choice: the CLI waits for it
(`deliver`), the HTTP API leaves it to `im serve`'s background work.

Only what every change needs is imported here: the connector API and the sync code load when
an assignment or a delivery needs them, so `im declare` and `im list` never load them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import msgspec

from im import incidents as lifecycle
from im.errors import InvalidInputError
from im.incidents import (
    FIELD_KEY,
    parse_fields,
    parse_incident_id,
    parse_services,
    parse_severity,
    parse_status,
)
from im.models import Action, Incident, Link, Origin, Severity, Status, TimelineEvent

if TYPE_CHECKING:
    from im.runtime import Runtime
    from im.storage import OutboxRow

__all__ = [
    "Delivery", "IncidentView", "MissingAssigneeError", "Noted", "SyncLine", "Timeline", "ack",
    "assign", "change_severity", "close", "declare", "deliver", "list_incidents", "note",
    "parse_fields", "parse_incident_id", "parse_services", "parse_severity", "parse_status",
    "pending_connectors", "queued_changes", "reopen", "resolve", "show", "timeline",
]

# The outbox states of a change still on its way (`delivering`: a process holds it now).
WAITING = ("pending", "delivering")


class IncidentView(msgspec.Struct, frozen=True, kw_only=True):
    """An incident with the remote incidents linked to it."""

    incident: Incident
    links: list[Link]


class Noted(msgspec.Struct, frozen=True, kw_only=True):
    """A note added: the incident it is on, and the timeline event it became."""

    incident: Incident
    event: TimelineEvent


class Timeline(msgspec.Struct, frozen=True, kw_only=True):
    incident: Incident
    events: list[TimelineEvent]


class MissingAssigneeError(InvalidInputError):
    """No assignee was given (a front end may say how to give one: the CLI names --to)."""


# -- changes -------------------------------------------------------------------------------


def declare(runtime: Runtime, *, title: str, severity: Severity | str, services: Sequence[str],
            description: str = "", fields: Mapping[str, str] | None = None,
            actor: Origin) -> Incident:
    """Declare an incident; one outbox row per outbound connector and service."""
    severity = parse_severity(severity) if isinstance(severity, str) else severity
    checked = _check_fields(fields or {})
    return lifecycle.declare(runtime, title=title, severity=severity, services=services,
                             description=description, fields=checked, origin=actor)


def ack(runtime: Runtime, incident_id: str, *, note: str = "", actor: Origin) -> Incident:
    """Someone is on it: open -> mitigated."""
    return lifecycle.transition(runtime, incident_id, Action.ACK, note=note, origin=actor)


def resolve(runtime: Runtime, incident_id: str, *, note: str = "", actor: Origin) -> Incident:
    return lifecycle.transition(runtime, incident_id, Action.RESOLVE, note=note, origin=actor)


def close(runtime: Runtime, incident_id: str, *, note: str = "", actor: Origin) -> Incident:
    """Close for good, resolving it first where it is still open."""
    return lifecycle.transition(runtime, incident_id, Action.CLOSE, note=note, origin=actor)


def reopen(runtime: Runtime, incident_id: str, *, note: str = "", actor: Origin) -> Incident:
    return lifecycle.transition(runtime, incident_id, Action.REOPEN, note=note, origin=actor)


def note(runtime: Runtime, incident_id: str, text: str, *, actor: Origin) -> Noted:
    """A note on the incident's timeline (and on its linked remote incidents)."""
    event = lifecycle.add_note(runtime, incident_id, text, origin=actor)
    return Noted(incident=lifecycle.get(runtime, event.incident_id), event=event)


def assign(runtime: Runtime, incident_id: str, assignee: str, *, actor: Origin) -> Incident:
    """Assign the incident, first asking every linked system that im pushes to whether it
    knows the assignee: one that does not refuses the assignment before anything changes (a
    system that cannot tell, being unreachable, lets it through)."""
    incident = lifecycle.get(runtime, incident_id)
    assignee = assignee.strip()
    if not assignee:
        raise MissingAssigneeError("an assignee is required")
    linked = sorted({link.connector for link in runtime.store.links(incident.id)})
    if linked:
        from im.connectors import AssigneeRequest

        for name in linked:
            record = runtime.store.get_connector(name)
            if record is not None and record.enabled and record.sync_direction.pushes:
                runtime.connector(name).check_assignee(AssigneeRequest(assignee=assignee))
    return lifecycle.assign(runtime, incident.id, assignee, origin=actor)


def change_severity(runtime: Runtime, incident_id: str, severity: Severity | str, *,
                    actor: Origin) -> Incident:
    """A new severity; running SLA timers take its targets, connectors are told."""
    return lifecycle.set_severity(runtime, incident_id, severity, origin=actor)


def _check_fields(fields: Mapping[str, str]) -> dict[str, str]:
    """Custom fields as every front end takes them: the CLI's `--field key=value` is parsed
    by parse_fields, which checks the key the same way."""
    for key, value in fields.items():
        if not isinstance(key, str) or not FIELD_KEY.match(key):
            raise InvalidInputError(f"invalid field name {key!r}: up to 64 ASCII letters,"
                                    " digits, '_', '.' or '-', starting with a letter or '_'")
        if not isinstance(value, str):
            raise InvalidInputError(f"field {key}: the value must be text")
    return dict(fields)


# -- reads ---------------------------------------------------------------------------------


def list_incidents(runtime: Runtime, *, statuses: Sequence[str] = (),
                   severities: Sequence[str] = (), services: Sequence[str] = (),
                   include_closed: bool = True, limit: int) -> list[Incident]:
    """Incidents, newest first. Each filter value may be comma-separated; without statuses,
    closed incidents are left out unless `include_closed`."""
    if limit < 1:
        raise InvalidInputError(f"limit must be 1 or more, not {limit}")
    wanted = [parse_status(s) for value in statuses for s in value.split(",") if s]
    if not wanted and not include_closed:
        wanted = [s for s in Status if s is not Status.CLOSED]
    return runtime.store.list_incidents(
        statuses=wanted,
        severities=[parse_severity(s) for value in severities for s in value.split(",") if s],
        services=parse_services(services), limit=limit)


def show(runtime: Runtime, incident_id: str) -> IncidentView:
    incident = lifecycle.get(runtime, incident_id)
    return IncidentView(incident=incident, links=runtime.store.links(incident.id))


def timeline(runtime: Runtime, incident_id: str) -> Timeline:
    """Every change of the incident, oldest first, with the system it came from."""
    incident = lifecycle.get(runtime, incident_id)
    return Timeline(incident=incident, events=runtime.store.timeline(incident.id))


# -- delivering a change now ---------------------------------------------------------------


class SyncLine(msgspec.Struct, frozen=True, kw_only=True):
    """A line a connector added to the timeline while delivering (`Fake incident #3 created`)."""

    connector: str
    text: str


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    """What delivering an incident's queued changes did: the lines connectors added to its
    timeline (`synced`), the errors met, how many changes still wait (`queued`, for the
    connectors in `waiting_for`), and how many were refused for good and set aside
    (`failed`; every connector holding a refused change of the incident in `refused_by`)."""

    synced: list[SyncLine] = []
    errors: list[str] = []
    queued: int = 0
    failed: int = 0
    waiting_for: list[str] = []
    refused_by: list[str] = []
    # workflow actions the change triggered and left for `im serve` (run after the changes)
    actions_queued: int = 0


def pending_work(runtime: Runtime, incident_id: str) -> list[str]:
    """What the incident's change left to do now: the connectors its queued changes are for,
    and "workflows" if it triggered actions."""
    names = pending_connectors(runtime, incident_id)
    if runtime.store.read().workflow_runs.find(incident_id=incident_id,
                                               statuses=("pending",)):
        names.append("workflows")
    return names


def pending_connectors(runtime: Runtime, incident_id: str) -> list[str]:
    """The connectors the incident's queued changes are for, by name (none: nothing to do)."""
    return sorted({row.connector for row in runtime.store.outbox(
        incident_id=incident_id, statuses=("pending",))})


def queued_changes(runtime: Runtime, incident_id: str) -> list[OutboxRow]:
    """The incident's changes still on their way, in queue order."""
    return runtime.store.outbox(incident_id=incident_id, statuses=WAITING)


def deliver(runtime: Runtime, incident_id: str, *, budget: float | None) -> Delivery:
    """Push the incident's queued changes now, for at most `budget` seconds: what is left
    waits for `im serve` or `im connector sync`, so a slow remote system delays a change but
    never fails it. Changes wait in order: behind one waiting for its retry, later ones are
    not tried. Then the workflow actions the change triggered run, in what is left of the
    time (a war room after the paging incident it names)."""
    if not pending_work(runtime, incident_id):
        return Delivery()
    import time

    from im.sync import deliver_outbox
    from im.workflows import run_queued

    started = time.monotonic()
    before = {event.id for event in runtime.store.timeline(incident_id)}
    report = deliver_outbox(runtime, incident_id=incident_id, budget=budget)
    left = None if budget is None else max(0.0, budget - (time.monotonic() - started))
    actions = run_queued(runtime, incident_id=incident_id, budget=left)
    synced = [SyncLine(connector=event.system if event.kind == "sync"
                       else f"workflow {event.actor}", text=event.text)
              for event in runtime.store.timeline(incident_id)
              if event.id not in before and event.kind in ("sync", "workflow")
              and not event.data.get("failed")]  # a failed action is said among the errors
    waiting = queued_changes(runtime, incident_id)
    refused_by = sorted({row.connector for row in runtime.store.outbox(
        incident_id=incident_id, statuses=("failed",))}) if report.failed else []
    actions_queued = len(runtime.store.read().workflow_runs.find(
        incident_id=incident_id, statuses=("pending", "running")))
    return Delivery(synced=synced, errors=[*report.errors, *actions.errors],
                    queued=len(waiting), failed=report.failed,
                    waiting_for=sorted({row.connector for row in waiting}),
                    refused_by=refused_by, actions_queued=actions_queued)
