"""Build a Report: gather the period's incidents, their linked remote incidents, and compute
every figure from them."""

from __future__ import annotations

import logging
from array import array
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from im.connectors import ChangeKind, Connector
from im.errors import ConnectorError, ImError, InvalidInputError, NotFoundError
from im.models import Incident, Link, Severity, Status, TimelineEvent
from im.reports.figures import (
    BREACHED,
    MET,
    PENDING,
    UNMEASURED,
    seconds_between,
    sla_state,
    stats,
)
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
PAGING_KINDS = (ChangeKind.OPENED, ChangeKind.NOTIFIED, ChangeKind.ASSIGNED,
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


def _compliance(states: Counter[str]) -> tuple[int, int, int, float | None]:
    """compliance() of states counted as they came."""
    met, breached, pending = states[MET], states[BREACHED], states[PENDING]
    percent = round(100 * met / (met + breached), 2) if met + breached else None
    return met, breached, pending, percent


def _sla_row(severity: str, measured_in: str, count: int, ack: Counter[str],
             resolve: Counter[str]) -> SlaRow:
    ack_met, ack_breached, ack_pending, ack_percent = _compliance(ack)
    res_met, res_breached, res_pending, res_percent = _compliance(resolve)
    return SlaRow(severity=severity, measured_in=measured_in, incidents=count,
                  ack_met=ack_met, ack_breached=ack_breached, ack_pending=ack_pending,
                  ack_compliance_percent=ack_percent, resolve_met=res_met,
                  resolve_breached=res_breached, resolve_pending=res_pending,
                  resolve_compliance_percent=res_percent)


def _durations() -> array[float]:
    return array("d")


class _Measured:
    """The response times and SLA states of a group's incidents measured in one system, as
    they come: durations packed as doubles (8 bytes each, for the percentiles), states
    counted."""

    def __init__(self) -> None:
        self.count = 0
        self.acknowledge, self.resolve = _durations(), _durations()
        self.slas = 0  # how many had their SLA measured (a remote one may not)
        self.ack_states: Counter[str] = Counter()
        self.resolve_states: Counter[str] = Counter()

    def add(self, tta: float | None, ttr: float | None, ack_sla: str, resolve_sla: str,
            sla: bool = True) -> None:
        self.count += 1
        if tta is not None:
            self.acknowledge.append(tta)
        if ttr is not None:
            self.resolve.append(ttr)
        if sla:
            self.slas += 1
            self.ack_states[ack_sla] += 1
            self.resolve_states[resolve_sla] += 1

    def response_row(self, group: str, measured_in: str) -> ResponseRow:
        return ResponseRow(group=group, measured_in=measured_in, incidents=self.count,
                           acknowledge=stats(self.acknowledge), resolve=stats(self.resolve))

    def sla_row(self, group: str, measured_in: str) -> SlaRow:
        return _sla_row(group, measured_in, self.slas, self.ack_states, self.resolve_states)


class _Group:
    """A group of incidents (a severity, a service, or all): measured in im, and in each
    included connector's system."""

    def __init__(self, included: Sequence[str]) -> None:
        self.im = _Measured()
        self.remote = {name: _Measured() for name in included}

    def add(self, entry: IncidentEntry) -> None:
        self.im.add(entry.time_to_acknowledge_seconds, entry.time_to_resolve_seconds,
                    entry.ack_sla, entry.resolve_sla)
        for times in entry.remote_times:
            measured = self.remote.get(times.connector)
            if measured is not None:
                measured.add(times.time_to_acknowledge_seconds, times.time_to_resolve_seconds,
                             times.ack_sla, times.resolve_sla, times.ack_sla != UNMEASURED)

    def response_rows(self, group: str) -> list[ResponseRow]:
        return [self.im.response_row(group, "im")] + [
            measured.response_row(group, name) for name, measured in self.remote.items()
            if measured.count]

    def sla_rows(self, group: str) -> list[SlaRow]:
        return [self.im.sla_row(group, "im")] + [
            measured.sla_row(group, name) for name, measured in self.remote.items()
            if measured.slas]


class Figures:
    """Every figure of a report, accumulated one incident entry at a time: what it holds
    follows the number of groups, responders, days and escalations, never keeps an entry."""

    def __init__(self, period: Period, included: Sequence[str]) -> None:
        self.period = period
        self.included = list(included)
        self.by_severity = {s.value: _Group(included) for s in Severity}
        self.all = _Group(included)
        self.by_service: dict[str, _Group] = {}
        self.statuses = {s.value: 0 for s in Status}
        self.days: Counter[tuple[date, str]] = Counter()
        self.escalations: list[Escalation] = []
        self.linked: Counter[str] = Counter()
        self.fetched: Counter[str] = Counter()
        self.acks: dict[str, array[float]] = defaultdict(_durations)
        self.acknowledgements: Counter[str] = Counter()
        self.paged: Counter[str] = Counter()
        self.escalated_away: Counter[str] = Counter()

    def add(self, entry: IncidentEntry) -> None:
        self.by_severity[entry.severity].add(entry)
        self.all.add(entry)
        for service in entry.services:
            if service not in self.by_service:
                self.by_service[service] = _Group(self.included)
            self.by_service[service].add(entry)
        self.statuses[entry.status] += 1
        self.days[(entry.declared_at.date(), entry.severity)] += 1
        self.escalations += entry.escalations
        for remote in entry.remote:
            self.linked[remote.connector] += 1
            if remote.source == "fetched":
                self.fetched[remote.connector] += 1
        if entry.acknowledged_by and entry.time_to_acknowledge_seconds is not None:
            self.acknowledgements[entry.acknowledged_by] += 1
            self.acks[entry.acknowledged_by].append(entry.time_to_acknowledge_seconds)
        for person in entry.paged:
            self.paged[person] += 1
        for escalation in entry.escalations:
            for person in escalation.from_:
                self.escalated_away[person] += 1

    def _responders(self) -> list[ResponderRow]:
        people = set(self.acknowledgements) | set(self.paged) | set(self.escalated_away)
        rows = [ResponderRow(responder=person, acknowledgements=self.acknowledgements[person],
                             acknowledge=stats(self.acks.get(person, ())),
                             paged=self.paged[person],
                             escalated_away=self.escalated_away[person]) for person in people]
        return sorted(rows, key=lambda r: (-r.acknowledgements, -r.paged, r.responder))

    def _daily(self) -> list[DayCount]:
        daily = []
        for day in self.period.days():
            counts = {s.value: self.days.get((day, s.value), 0) for s in Severity}
            daily.append(DayCount(day=day, by_severity=counts, total=sum(counts.values())))
        return daily

    def report(self, *, title: str, generated_at: datetime, generator: str,
               connector_types: dict[str, str | None], targets: list[SlaTarget],
               notes: list[str], incidents: list[IncidentEntry]) -> Report:
        """The report of the entries added; `incidents` is what its list of incidents holds
        (none when they are written as they come, see im.reports.stream)."""
        with_all = {**self.by_severity, ALL: self.all}
        sla_rows = [row for group, g in with_all.items() for row in g.sla_rows(group)]
        overall = next(r for r in sla_rows if r.severity == ALL and r.measured_in == "im")
        escalations = sorted(self.escalations, key=lambda e: (e.at, e.incident_id))
        everything = self.all.im
        summary = Summary(
            incidents=everything.count,
            by_severity={k: g.im.count for k, g in self.by_severity.items()},
            by_status=dict(self.statuses), acknowledged=len(everything.acknowledge),
            resolved=len(everything.resolve),
            unresolved=everything.count - len(everything.resolve),
            acknowledge=stats(everything.acknowledge), resolve=stats(everything.resolve),
            ack_compliance_percent=overall.ack_compliance_percent,
            resolve_compliance_percent=overall.resolve_compliance_percent,
            escalations=len(escalations), linked_remote_incidents=sum(self.linked.values()))
        return Report(
            title=title, period_start=self.period.start, period_end=self.period.end,
            generated_at=generated_at, generator=generator,
            included=[IncludedConnector(name=name, type=connector_types[name],
                                        linked=self.linked[name], fetched=self.fetched[name])
                      for name in self.included],
            sla_targets=targets, summary=summary, daily=self._daily(),
            response_by_severity=[row for group, g in with_all.items()
                                  for row in g.response_rows(group)],
            response_by_service=[row for group, g in sorted(self.by_service.items())
                                 for row in g.response_rows(group)],
            sla=sla_rows, responders=self._responders(), escalations=escalations,
            incidents=incidents, notes=notes)


# How many incidents a report reads from the store at a time (with their timelines and
# links): what it holds at once, whatever the period.
BATCH = 500


class ReportRun:
    """One report being made: `entries()` yields the period's incidents, oldest first, read
    from the store a batch at a time, and adds each to the figures; once they are all
    through, `report()` is the report (with its notes on connectors that could not be
    asked). A writer that lets each entry go holds one batch, whatever the period."""

    def __init__(self, runtime: Runtime, period: Period, *, connectors: Sequence[str] = (),
                 fetch: bool = True, title: str = "Incident report") -> None:
        self.runtime = runtime
        self.period = period
        self.title = title
        self.now = runtime.clock()
        self.targets, self.notes = sla_targets(runtime)
        self.target_of = {t.severity: t for t in self.targets}
        records = {r.name: r for r in runtime.store.list_connectors()}
        self.included = list(connectors)
        self.connector_types = {name: records[name].type if name in records else None
                                for name in self.included}
        self.fetcher = _Fetcher(runtime) if fetch and self.included else None
        self.figures = Figures(period, self.included)
        self._done = False

    def entries(self) -> Iterator[IncidentEntry]:
        if self._done:
            raise RuntimeError("a report's entries are read once")
        store = self.runtime.store
        for batch in store.declared_in_batches(self.period.start_at, self.period.end_at,
                                               size=BATCH):
            for incident, timeline, links in batch:
                remote = _remote_incidents(incident, links, timeline, self.connector_types,
                                           self.fetcher) if self.included else []
                entry = _incident_entry(incident, timeline, remote,
                                        self.target_of[incident.severity.value], self.now,
                                        self.included)
                self.figures.add(entry)
                yield entry
        if self.fetcher is not None:
            self.notes += self.fetcher.notes()
        self._done = True

    def report(self, incidents: list[IncidentEntry] | None = None) -> Report:
        """The report, once every entry has been read; `incidents` is what its list of
        incidents holds."""
        from im import __version__

        if not self._done:
            raise RuntimeError("the report's entries have not all been read")
        return self.figures.report(
            title=self.title, generated_at=self.now, generator=f"im {__version__}",
            connector_types=self.connector_types, targets=self.targets, notes=self.notes,
            incidents=incidents or [])


def build_report(runtime: Runtime, period: Period, *, connectors: Sequence[str] = (),
                 fetch: bool = True, title: str = "Incident report") -> Report:
    """The report of the incidents declared in `period`, with the linked remote incidents of
    the `connectors` named (completed by asking them when `fetch`), every incident in it:
    in memory. `im.reports.stream` writes one without holding its incidents."""
    run = ReportRun(runtime, period, connectors=connectors, fetch=fetch, title=title)
    entries = list(run.entries())
    return run.report(entries)
