"""Linked remote incidents: what a connector tells about them, and what im's own links and
timeline already know.

`RemoteIncidentRequest`, `RemoteEvent` and `RemoteIncidentReport` are the structs of the
Connector method `describe_remote(request) -> RemoteIncidentReport`: a connector that can read
a remote incident and its log implements it; the report asks it only for what the stored data
is missing, and works from stored data alone for every other connector.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import msgspec

from im.models import Link, TimelineEvent

if TYPE_CHECKING:
    from im.reports.model import Escalation, RemoteIncident

# The connector protocol of reports lives in im.connectors, with the rest of it.
from im.connectors import (  # noqa: E402, F401
    ChangeKind,
    RemoteEvent,
    RemoteIncidentReport,
    RemoteIncidentRequest,
    RemoteStatus,
)

# Events that change who holds the incident (notifications go to whoever holds it).
_HOLDERS = (ChangeKind.OPENED, ChangeKind.ASSIGNED, ChangeKind.ESCALATED)
# An escalation recorded by inbound sync is followed by the assignment it made, at once.
_SAME_MOMENT = timedelta(seconds=2)


# -- from events to the report's view ------------------------------------------------------


def summarize(link: Link, described: RemoteIncidentReport, *, connector_type: str | None,
              source: str) -> RemoteIncident:
    """A RemoteIncident from a remote incident's log: first response (acknowledgement, or
    resolution without one), final resolution, who was paged, and each escalation with who
    it moved from and to."""
    from im.reports.model import Escalation, RemoteIncident

    events = sorted(described.events, key=lambda e: e.at)
    created = described.created_at or next(
        (e.at for e in events if e.kind == ChangeKind.OPENED), None)
    # The first response: an acknowledgement, or a resolution nobody acknowledged before.
    first_ack = next((e for e in events
                      if e.kind in (ChangeKind.ACKNOWLEDGED, ChangeKind.RESOLVED)), None)
    resolved_at: datetime | None = None
    for event in events:
        if event.kind == ChangeKind.RESOLVED:
            resolved_at = resolved_at or event.at
        elif event.kind in (ChangeKind.OPENED, ChangeKind.REOPENED) and resolved_at is not None:
            resolved_at = None  # reopened: only the final resolution counts
    status = described.status or known_state(link.remote_status)
    if status is not None and status != RemoteStatus.RESOLVED:
        resolved_at = None
    paged: list[str] = []
    holders: list[str] = []
    escalations: list[Escalation] = []
    for event in events:
        if event.kind in (*_HOLDERS, ChangeKind.NOTIFIED):
            paged += [t for t in event.targets if t not in paged]
        if event.kind == ChangeKind.ESCALATED:
            escalations.append(Escalation(
                incident_id=link.incident_id, at=event.at, system=link.connector,
                from_=[h for h in holders if h not in event.targets], to=list(event.targets),
                text=event.text))
        if event.kind in _HOLDERS and event.targets:
            holders = list(event.targets)
    tta = (first_ack.at - created).total_seconds() if first_ack and created else None
    ttr = (resolved_at - created).total_seconds() if resolved_at and created else None
    return RemoteIncident(
        connector=link.connector, connector_type=connector_type, service=link.service,
        remote_id=link.remote_id, number=described.number or link.remote_number,
        url=described.url or link.remote_url, status=status, title=described.title,
        created_at=created, acknowledged_at=first_ack.at if first_ack else None,
        acknowledged_by=first_ack.actor if first_ack else None, resolved_at=resolved_at,
        time_to_acknowledge_seconds=tta, time_to_resolve_seconds=ttr, paged=paged,
        escalations=escalations, events=events, source=source)


def is_complete(remote: RemoteIncident) -> bool:
    """Whether stored data tells all the report shows: number, link, creation, who was paged,
    and the times of the acknowledgement and resolution its status says happened. Who was
    paged is known when the connector told im (an assignment or escalation it sent): who the
    remote system assigned when im pushed a change (events without an actor) says nothing
    of what happened after."""
    told = any(e.targets and e.actor is not None for e in remote.events)
    if not (remote.number and remote.url and remote.created_at and told):
        return False
    if remote.status in (RemoteStatus.ACKNOWLEDGED, RemoteStatus.RESOLVED) and (
            remote.acknowledged_at is None):
        return False
    return not (remote.status == RemoteStatus.RESOLVED and remote.resolved_at is None)


# -- what im's links and timeline know -----------------------------------------------------


def stored_events(link: Link, timeline: Sequence[TimelineEvent]) -> list[RemoteEvent]:
    """The remote incident's history as im recorded it: what im pushed (sync lines, with the
    action and service), and what came in from the connector (state changes, assignments,
    escalations, notes). Times are when im delivered or received each change."""
    owners = _assignment_owners(timeline)
    mine = [e for e in timeline if e.system == link.connector and _concerns(e, link, owners)]
    events: list[RemoteEvent] = []
    used: set[int] = set()
    for index, event in enumerate(mine):
        if event.id in used:
            continue
        action = event.data.get("action")
        if event.kind == "sync":
            kind = {"declare": ChangeKind.OPENED, "ack": ChangeKind.ACKNOWLEDGED,
                    "reopen": ChangeKind.REOPENED, "resolve": ChangeKind.RESOLVED,
                    "close": ChangeKind.RESOLVED}.get(str(action), ChangeKind.UPDATED)
            if kind == ChangeKind.RESOLVED and link.remote_status != RemoteStatus.RESOLVED:
                # the connector kept it open (or we cannot tell it resolved)
                kind = ChangeKind.UPDATED
            assigned = event.data.get("remote_assignee")
            if assigned:  # the remote system assigned someone when im pushed the change
                events.append(RemoteEvent(at=event.at, kind=ChangeKind.ASSIGNED, text=event.text,
                                          targets=[str(assigned)]))
                continue
            events.append(RemoteEvent(at=event.at, kind=kind, text=event.text))
        elif event.kind == "declared":  # created from the remote incident: it came first
            events.append(RemoteEvent(at=event.at, kind=ChangeKind.OPENED, text=event.text,
                                      actor=event.actor))
        elif event.kind in (ChangeKind.ACKNOWLEDGED, ChangeKind.UNACKNOWLEDGED,
                            ChangeKind.RESOLVED, ChangeKind.REOPENED, ChangeKind.NOTE):
            events.append(RemoteEvent(at=event.at, kind=event.kind, text=event.text,
                                      actor=event.actor))
        elif event.kind in (ChangeKind.ESCALATED, ChangeKind.ASSIGNED) and not event.data.get(
                "assignee"):
            # received from the connector; im's assignment it made, if any, follows at once
            targets: list[str] = []
            for later in mine[index + 1:]:
                if later.at - event.at > _SAME_MOMENT:
                    break
                if later.kind == ChangeKind.ASSIGNED and later.data.get("assignee"):
                    targets = [str(later.data["assignee"])]
                    used.add(later.id)
                    break
            assigned = event.data.get("remote_assignee")
            if not targets and assigned:  # im's assignee was that person already
                targets = [str(assigned)]
            if targets or event.kind == ChangeKind.ESCALATED:
                events.append(RemoteEvent(at=event.at, kind=event.kind, text=event.text,
                                          actor=event.actor, targets=targets))
        elif event.kind == ChangeKind.ASSIGNED:
            events.append(RemoteEvent(at=event.at, kind=ChangeKind.ASSIGNED, text=event.text,
                                      actor=event.actor,
                                      targets=[str(event.data["assignee"])]))
    return events


def _assignment_owners(timeline: Sequence[TimelineEvent]) -> dict[int, str]:
    """The remote incident of each assignment a connector's change made in im: it names no
    remote incident, but comes right after the change (an escalation or a reassignment) that
    does."""
    owners: dict[int, str] = {}
    for before, event in itertools.pairwise(timeline):
        remote_id = before.data.get("remote_id")
        if (event.kind == ChangeKind.ASSIGNED and event.system == before.system and remote_id
                and "remote_id" not in event.data and "service" not in event.data
                and event.at - before.at <= _SAME_MOMENT):
            owners[event.id] = str(remote_id)
    return owners


def _concerns(event: TimelineEvent, link: Link, owners: dict[int, str]) -> bool:
    """Whether a connector's timeline event is about this link's remote incident: events
    name their service or remote id where they can (or follow the change that does, see
    `_assignment_owners`); those that name neither concern every remote incident of the
    connector."""
    service = event.data.get("service")
    remote_id = event.data.get("remote_id") or owners.get(event.id)
    return (service is None or service == link.service) and (
        remote_id is None or remote_id == link.remote_id)


def known_state(value: str | None) -> RemoteStatus | None:
    """A stored link's state; one an earlier connector kept in its own word is unknown, not an
    error (the core never read those words)."""
    return RemoteStatus(value) if value in set(RemoteStatus) else None


def from_stored(link: Link, timeline: Sequence[TimelineEvent],
                connector_type: str | None) -> RemoteIncident:
    described = RemoteIncidentReport(remote_id=link.remote_id, number=link.remote_number,
                                     url=link.remote_url, status=known_state(link.remote_status),
                                     events=stored_events(link, timeline))
    return summarize(link, described, connector_type=connector_type, source="stored")


def merge(link: Link, fetched: RemoteIncidentReport, stored: RemoteIncident,
          connector_type: str | None) -> RemoteIncident:
    """The fetched description, completed with what only im stored (the number and link of
    a remote incident the connector did not report them for)."""
    complete = msgspec.structs.replace(
        fetched, number=fetched.number or stored.number, url=fetched.url or stored.url,
        status=fetched.status or stored.status,
        events=fetched.events or stored.events)
    return summarize(link, complete, connector_type=connector_type, source="fetched")
