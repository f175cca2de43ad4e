"""Build a Report: gather the period's incidents, their linked remote incidents, and compute
every figure from them."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from im.connectors import ChangeKind, Connector
from im.errors import ConnectorError, ImError, InvalidInputError, NotFoundError
from im.models import Incident, Link, Severity, Status, TimelineEvent
from im.reports.figures import UNMEASURED, compliance, seconds_between, sla_state, stats
from im.reports.model import (
    DayCount,
    Escalation,
    IncidentEntry,
    IncludedConnector,
    RemoteIncident,
    RemoteTimes,
    Report,
    ResponderRow,
    ResponseRow,
    SlaRow,
    SlaTarget,
    Summary,
    TimelineEntry,
)
from im.reports.period import Period
from im.reports.queries import incidents_declared
from im.reports.remote import (
    RemoteIncidentReport,
    RemoteIncidentRequest,
    from_stored,
    is_complete,
    merge,
)
from im.reports.sla import sla_targets

if TYPE_CHECKING:
    from im.runtime import Runtime

log = logging.getLogger("im.reports")

ALL = "All"
FIRST_RESPONSES = ("acknowledged", "resolved", "closed")
PAGING_KINDS = (ChangeKind.TRIGGERED, ChangeKind.NOTIFIED, ChangeKind.ASSIGNED,
                ChangeKind.ESCALATED)
_SAME_MOMENT = timedelta(seconds=2)


# -- which connectors to include -----------------------------------------------------------


def resolve_includes(runtime: Runtime, names_or_types: Sequence[str], *,
                     every: bool = False) -> list[str]:
    """The connector names whose linked remote incidents a report includes: each value is a
    configured connector's name or a connector type (all configured connectors of it);
    `every` takes every connector that is configured or still has links."""
    store = runtime.store
    records = store.list_connectors()
    chosen: list[str] = []
    if every:
        linked = store.read().links.linked_connectors()
        chosen = sorted({r.name for r in records} | linked)
    for value in names_or_types:
        wanted = value.strip()
        by_name = [r.name for r in records if r.name == wanted]
        if by_name:
            chosen += by_name
            continue
        if wanted in runtime.connector_types:
            of_type = [r.name for r in records if r.type == wanted]
            if not of_type:
                raise InvalidInputError(
                    f"no {wanted} connector is configured; `im connector add {wanted} NAME`"
                    " adds one")
            chosen += of_type
            continue
        types = ", ".join(sorted(runtime.connector_types)) or "none installed"
        names = ", ".join(r.name for r in records) or "none configured"
        raise InvalidInputError(f"{wanted!r} is neither a connector type ({types}) nor a"
                                f" configured connector ({names})")
    return list(dict.fromkeys(chosen))


# -- remote incidents ----------------------------------------------------------------------


def can_describe(connector: Connector) -> bool:
    """Whether a connector implements `describe_remote` (rather than inheriting the default,
    which says it cannot)."""
    method = getattr(type(connector), "describe_remote", None)
    return callable(method) and method is not getattr(Connector, "describe_remote", None)


class _Fetcher:
    """Asks connectors to describe remote incidents, once per connector learning whether it
    can; a connector that cannot be reached is not asked again in the same report."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.instances: dict[str, Connector | None] = {}
        self.failures: dict[str, list[str]] = defaultdict(list)
        self.unreachable: dict[str, str] = {}

    def connector(self, name: str) -> Connector | None:
        if name not in self.instances:
            try:
                instance = self.runtime.connector(name)
            except NotFoundError:
                self.unreachable[name] = "it is no longer configured"
                instance = None
            except ImError as error:
                self.unreachable[name] = str(error)
                instance = None
            if instance is not None and not can_describe(instance):
                instance = None
            self.instances[name] = instance
        return self.instances[name]

    def describe(self, link: Link, incident: Incident) -> RemoteIncidentReport | None:
        if link.connector in self.unreachable:
            return None
        connector = self.connector(link.connector)
        if connector is None:
            return None
        number = f"#{link.remote_number}" if link.remote_number else link.remote_id
        try:
            described = connector.describe_remote(  # type: ignore[attr-defined]
                RemoteIncidentRequest(link=link, incident=incident))
        except ConnectorError as error:
            if error.retryable:
                self.unreachable[link.connector] = str(error)
            else:
                self.failures[link.connector].append(f"{number}: {error}")
            return None
        except Exception as error:  # a connector's bug must not cost the whole report
            log.exception("%s failed to describe %s", link.connector, link.remote_id)
            self.failures[link.connector].append(f"{number}: {type(error).__name__}: {error}")
            return None
        if not isinstance(described, RemoteIncidentReport):
            self.failures[link.connector].append(f"{number}: not a RemoteIncidentReport")
            return None
        return described

    def notes(self) -> list[str]:
        notes = [f"{name}: could not fetch remote incidents ({reason}); they are reported"
                 " from stored data" for name, reason in sorted(self.unreachable.items())]
        for name, failures in sorted(self.failures.items()):
            shown = "; ".join(failures[:3]) + (f"; and {len(failures) - 3} more"
                                               if len(failures) > 3 else "")
            notes.append(f"{name}: {len(failures)} remote incident(s) could not be fetched"
                         f" ({shown}); they are reported from stored data")
        return notes


def _remote_incidents(incident: Incident, links: Sequence[Link],
                      timeline: Sequence[TimelineEvent], connector_types: dict[str, str | None],
                      fetcher: _Fetcher | None) -> list[RemoteIncident]:
    remote = []
    for link in links:
        if link.connector not in connector_types:
            continue
        kind = connector_types[link.connector]
        stored = from_stored(link, timeline, kind)
        if fetcher is not None and not is_complete(stored):
            described = fetcher.describe(link, incident)
            if described is not None:
                stored = merge(link, described, stored, kind)
        remote.append(stored)
    return remote


def _remote_times(connector: str, remote: Sequence[RemoteIncident], target: SlaTarget,
                  now: datetime) -> RemoteTimes:
    created = min((r.created_at for r in remote if r.created_at), default=None)
    acked = min((r.acknowledged_at for r in remote if r.acknowledged_at), default=None)
    resolved = None
    if all(r.resolved_at for r in remote):
        resolved = max(r.resolved_at for r in remote if r.resolved_at)
    # A remote incident resolved without an acknowledgement was responded to by resolving.
    first_response = acked or resolved
    tta, ttr = seconds_between(created, first_response), seconds_between(created, resolved)
    return RemoteTimes(
        connector=connector, created_at=created, acknowledged_at=first_response,
        resolved_at=resolved, time_to_acknowledge_seconds=tta, time_to_resolve_seconds=ttr,
        ack_sla=sla_state(tta, target.ack_seconds, created, now),
        resolve_sla=sla_state(ttr, target.resolve_seconds, created, now))


# -- incidents -----------------------------------------------------------------------------


def _escalations(incident: Incident, timeline: Sequence[TimelineEvent],
                 remote: Sequence[RemoteIncident]) -> list[Escalation]:
    """Escalations from fetched remote incidents' logs, and from im's timeline for the rest
    (an escalation received from a connector is followed by the assignment it made): who
    held the remote incident and who it went to as its stored log tells, else as im's
    assignment does."""
    fetched = [r for r in remote if r.source == "fetched"]
    found = [e for r in fetched for e in r.escalations]
    stored = {(e.system, e.at): e for r in remote if r.source != "fetched"
              for e in r.escalations}
    for index, event in enumerate(timeline):
        if event.kind != "escalated":
            continue
        remote_id = event.data.get("remote_id")
        if any(r.connector == event.system and (remote_id is None or remote_id == r.remote_id)
               for r in fetched):
            continue  # the fetched log has it
        to: list[str] = []
        previous: list[str] = []
        for later in timeline[index + 1:]:
            if later.at - event.at > _SAME_MOMENT:
                break
            if later.kind == "assigned" and later.system == event.system:
                to = [str(later.data["assignee"])] if later.data.get("assignee") else []
                previous = [str(later.data["previous"])] if later.data.get("previous") else []
                break
        known = stored.get((event.system, event.at))
        if known is not None:
            to, previous = known.to or to, known.from_ or previous
        found.append(Escalation(incident_id=incident.id, at=event.at, system=event.system,
                                from_=previous, to=to, text=event.text))
    return sorted(found, key=lambda e: e.at)


def _incident_entry(incident: Incident, timeline: Sequence[TimelineEvent],
                    remote: list[RemoteIncident], target: SlaTarget, now: datetime,
                    included: Sequence[str]) -> IncidentEntry:
    first = next((e for e in timeline if e.kind in FIRST_RESPONSES), None)
    acknowledged_at = first.at if first else (incident.mitigated_at or incident.resolved_at)
    resolved_at = incident.resolved_at if incident.status in (Status.RESOLVED,
                                                                 Status.CLOSED) else None
    tta = seconds_between(incident.created_at, acknowledged_at)
    ttr = seconds_between(incident.created_at, resolved_at)
    # Who was paged or assigned, in the order it happened, in either system.
    moments = [(e.at, t) for r in remote for e in r.events if e.kind in PAGING_KINDS
               for t in e.targets]
    moments += [(e.at, str(e.data["assignee"])) for e in timeline
                if e.kind == "assigned" and e.data.get("assignee")]
    paged: list[str] = []
    for _, person in sorted(moments, key=lambda moment: moment[0]):
        if person not in paged:
            paged.append(person)
    remote_times = []
    for name in included:
        mine = [r for r in remote if r.connector == name]
        if mine:
            remote_times.append(_remote_times(name, mine, target, now))
    return IncidentEntry(
        id=incident.id, title=incident.title, severity=incident.severity.value,
        status=incident.status.value, services=list(incident.services),
        assignee=incident.assignee, declared_by=incident.created_by,
        declared_at=incident.created_at, acknowledged_at=acknowledged_at,
        acknowledged_by=first.actor if first else None, resolved_at=resolved_at,
        closed_at=incident.closed_at, time_to_acknowledge_seconds=tta,
        time_to_resolve_seconds=ttr,
        ack_sla=sla_state(tta, target.ack_seconds, incident.created_at, now),
        resolve_sla=sla_state(ttr, target.resolve_seconds, incident.created_at, now),
        escalations=_escalations(incident, timeline, remote), paged=paged, remote=remote,
        remote_times=remote_times,
        timeline=[TimelineEntry(at=e.at, kind=e.kind, text=e.text, actor=e.actor,
                                system=e.system) for e in timeline])


# -- aggregates ----------------------------------------------------------------------------


def _response_rows(groups: dict[str, list[IncidentEntry]], included: Sequence[str]
                   ) -> list[ResponseRow]:
    rows = []
    for group, entries in groups.items():
        rows.append(ResponseRow(
            group=group, measured_in="im", incidents=len(entries),
            acknowledge=stats(e.time_to_acknowledge_seconds for e in entries),
            resolve=stats(e.time_to_resolve_seconds for e in entries)))
        for name in included:
            times = [t for e in entries for t in e.remote_times if t.connector == name]
            if times:
                rows.append(ResponseRow(
                    group=group, measured_in=name, incidents=len(times),
                    acknowledge=stats(t.time_to_acknowledge_seconds for t in times),
                    resolve=stats(t.time_to_resolve_seconds for t in times)))
    return rows


def _sla_row(severity: str, measured_in: str, ack: list[str], resolve: list[str]) -> SlaRow:
    ack_met, ack_breached, ack_pending, ack_percent = compliance(ack)
    res_met, res_breached, res_pending, res_percent = compliance(resolve)
    return SlaRow(severity=severity, measured_in=measured_in, incidents=len(ack),
                  ack_met=ack_met, ack_breached=ack_breached, ack_pending=ack_pending,
                  ack_compliance_percent=ack_percent, resolve_met=res_met,
                  resolve_breached=res_breached, resolve_pending=res_pending,
                  resolve_compliance_percent=res_percent)


def _sla_rows(groups: dict[str, list[IncidentEntry]], included: Sequence[str]
              ) -> list[SlaRow]:
    rows = []
    for group, entries in groups.items():
        rows.append(_sla_row(group, "im", [e.ack_sla for e in entries],
                             [e.resolve_sla for e in entries]))
        for name in included:
            times = [t for e in entries for t in e.remote_times
                     if t.connector == name and t.ack_sla != UNMEASURED]
            if times:
                rows.append(_sla_row(group, name, [t.ack_sla for t in times],
                                     [t.resolve_sla for t in times]))
    return rows


def _responders(entries: Sequence[IncidentEntry]) -> list[ResponderRow]:
    acks: dict[str, list[float]] = defaultdict(list)
    paged: dict[str, int] = defaultdict(int)
    escalated_away: dict[str, int] = defaultdict(int)
    for entry in entries:
        if entry.acknowledged_by and entry.time_to_acknowledge_seconds is not None:
            acks[entry.acknowledged_by].append(entry.time_to_acknowledge_seconds)
        for person in entry.paged:
            paged[person] += 1
        for escalation in entry.escalations:
            for person in escalation.from_:
                escalated_away[person] += 1
    people = set(acks) | set(paged) | set(escalated_away)
    rows = [ResponderRow(responder=person, acknowledgements=len(acks.get(person, [])),
                         acknowledge=stats(acks.get(person, [])), paged=paged.get(person, 0),
                         escalated_away=escalated_away.get(person, 0)) for person in people]
    return sorted(rows, key=lambda r: (-r.acknowledgements, -r.paged, r.responder))


def build_report(runtime: Runtime, period: Period, *, connectors: Sequence[str] = (),
                 fetch: bool = True, title: str = "Incident report") -> Report:
    """The report of the incidents declared in `period`, with the linked remote incidents of
    the `connectors` named (completed by asking them when `fetch`)."""
    from im import __version__

    store = runtime.store
    now = runtime.clock()
    data = incidents_declared(store, period.start_at, period.end_at)
    targets, notes = sla_targets(runtime)
    target_of = {t.severity: t for t in targets}
    records = {r.name: r for r in store.list_connectors()}
    included = list(connectors)
    connector_types = {name: records[name].type if name in records else None
                       for name in included}
    fetcher = _Fetcher(runtime) if fetch and included else None

    entries = []
    for incident in data.incidents:
        timeline = data.timelines[incident.id]
        remote = _remote_incidents(incident, data.links[incident.id], timeline,
                                   connector_types, fetcher) if included else []
        entries.append(_incident_entry(incident, timeline, remote,
                                       target_of[incident.severity.value], now, included))
    if fetcher is not None:
        notes += fetcher.notes()

    by_severity: dict[str, list[IncidentEntry]] = {s.value: [] for s in Severity}
    by_service: dict[str, list[IncidentEntry]] = defaultdict(list)
    for entry in entries:
        by_severity[entry.severity].append(entry)
        for service in entry.services:
            by_service[service].append(entry)
    with_all = {**by_severity, ALL: entries}

    daily = []
    for day in period.days():
        counts = {s.value: 0 for s in Severity}
        for entry in entries:
            if entry.declared_at.date() == day:
                counts[entry.severity] += 1
        daily.append(DayCount(day=day, by_severity=counts, total=sum(counts.values())))

    sla_rows = _sla_rows(with_all, included)
    overall = next(r for r in sla_rows if r.severity == ALL and r.measured_in == "im")
    escalations = sorted((e for entry in entries for e in entry.escalations),
                         key=lambda e: (e.at, e.incident_id))
    statuses = {s.value: 0 for s in Status}
    for entry in entries:
        statuses[entry.status] += 1
    resolved = sum(1 for e in entries if e.time_to_resolve_seconds is not None)
    summary = Summary(
        incidents=len(entries), by_severity={k: len(v) for k, v in by_severity.items()},
        by_status=statuses,
        acknowledged=sum(1 for e in entries if e.time_to_acknowledge_seconds is not None),
        resolved=resolved, unresolved=len(entries) - resolved,
        acknowledge=stats(e.time_to_acknowledge_seconds for e in entries),
        resolve=stats(e.time_to_resolve_seconds for e in entries),
        ack_compliance_percent=overall.ack_compliance_percent,
        resolve_compliance_percent=overall.resolve_compliance_percent,
        escalations=len(escalations),
        linked_remote_incidents=sum(len(e.remote) for e in entries))
    return Report(
        title=title, period_start=period.start, period_end=period.end, generated_at=now,
        generator=f"im {__version__}",
        included=[IncludedConnector(
            name=name, type=connector_types[name],
            linked=sum(1 for e in entries for r in e.remote if r.connector == name),
            fetched=sum(1 for e in entries for r in e.remote
                        if r.connector == name and r.source == "fetched"))
            for name in included],
        sla_targets=targets, summary=summary, daily=daily,
        response_by_severity=_response_rows(with_all, included),
        response_by_service=_response_rows(dict(sorted(by_service.items())), included),
        sla=sla_rows, responders=_responders(entries), escalations=escalations,
        incidents=entries, notes=notes)
