"""SLA timers: how long an incident may stay unacknowledged and unresolved.

Timers are derived from the incident itself, so they survive restarts and follow every change
on either side: both start when the incident is declared (in im or triggered in a connected
system) and start again when it is reopened; an acknowledgement (or a resolve) stops the ack
timer; a resolve or close stops the resolve timer; a severity change re-targets running timers.
Only breaches are stored, so each one is notified once: a timeline event, a note on every linked
remote incident (through the outbox), and the `sla_breached` hook.

Each target (a severity's `ack` or `resolve`) comes from the first enabled connector (by name)
that configures targets (such as `custom.sla_mapping`), else `sla` in the settings file, else the
defaults below. `im sla` and reports say which set each.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import msgspec

from im.connectors import Connector, SlaPolicyRequest, parse_duration
from im.errors import ImError, InvalidInputError
from im.humanize import duration
from im.models import Action, Incident, Severity, Status

if TYPE_CHECKING:
    from im.runtime import Runtime

KINDS = ("ack", "resolve")
DEFAULT_POLICY: dict[str, dict[str, str]] = {
    "SEV-1": {"ack": "15m", "resolve": "1h"},
    "SEV-2": {"ack": "30m", "resolve": "4h"},
    "SEV-3": {"ack": "2h", "resolve": "24h"},
    "SEV-4": {"ack": "8h", "resolve": "72h"},
}
DEFAULT_SOURCE = "default"
SETTINGS_SOURCE = "settings file"
LONGEST_TARGET = "365d"  # longer is a typo, and would overflow the due time


class Timer(msgspec.Struct, frozen=True, kw_only=True):
    incident_id: str
    severity: str
    kind: str
    started_at: datetime
    target_seconds: float
    due_at: datetime
    stopped_at: datetime | None = None

    @property
    def running(self) -> bool:
        return self.stopped_at is None

    def breached(self, now: datetime) -> bool:
        return (self.stopped_at or now) > self.due_at

    def describe(self, now: datetime) -> str:
        """ack 4m left / ack breached 5m ago / resolve met (12m)"""
        if self.stopped_at is not None:
            taken = duration((self.stopped_at - self.started_at).total_seconds())
            return f"{self.kind} {'missed' if self.breached(now) else 'met'} ({taken})"
        left = (self.due_at - now).total_seconds()
        if left >= 0:
            return f"{self.kind} {duration(left)} left"
        return f"{self.kind} breached {duration(-left)} ago"


class TargetOrderError(InvalidInputError):
    """A severity's ack target is longer than its resolve target, the two set in two places
    (a connector and the defaults, say)."""


def parse_sla_target(text: str) -> float:
    """Seconds in an SLA target: a duration longer than 0s and at most 365d."""
    seconds = parse_duration(text)
    if seconds <= 0:
        raise ValueError(f"{text!r} is no time; an SLA target must be longer than 0s")
    if seconds > parse_duration(LONGEST_TARGET):
        raise ValueError(f"{text!r} is too long; an SLA target is at most {LONGEST_TARGET}")
    return seconds


def parse_policy(data: object, where: str, *, check_order: bool = True
                 ) -> dict[Severity, dict[str, float]]:
    """{"SEV-1": {"ack": "15m", "resolve": "1h"}} -> seconds, with a clear error; with
    `check_order`, an ack target longer than its resolve target is one too."""
    if not isinstance(data, dict):
        raise InvalidInputError(f"{where}: an SLA policy is a JSON object by severity")
    policy: dict[Severity, dict[str, float]] = {}
    for key, targets in data.items():
        try:
            severity = Severity(str(key).upper())
        except ValueError:
            raise InvalidInputError(f"{where}: unknown severity {key!r}; use SEV-1 to SEV-4"
                                    ) from None
        if not isinstance(targets, dict) or set(targets) - set(KINDS):
            raise InvalidInputError(f"{where}.{key}: give \"ack\" and/or \"resolve\" durations")
        policy[severity] = {}
        for kind, value in targets.items():
            if value is None:
                continue
            try:
                policy[severity][kind] = parse_sla_target(str(value))
            except ValueError as error:
                raise InvalidInputError(f"{where}.{key}.{kind}: {error}") from None
        ack, resolve = policy[severity].get("ack"), policy[severity].get("resolve")
        if check_order and ack is not None and resolve is not None and ack > resolve:
            raise InvalidInputError(
                f"{where}.{key}: the ack target ({targets['ack']}) is longer than the resolve"
                f" target ({targets['resolve']}); an incident is acknowledged before it is"
                " resolved")
    return policy


def sourced_policy(runtime: Runtime, *, strict: bool = False
                   ) -> tuple[dict[Severity, dict[str, tuple[float, str]]], list[str]]:
    """Each severity's targets in seconds with what set each (a connector's name, "settings
    file" or "default"), and notes on connectors' targets that are not used. An ack target
    longer than its resolve target is refused (TargetOrderError) when `strict`, as settings
    are saved; reading the targets in force only notes it, so that settings made before the
    check never stop `im list` or `im serve`."""
    result = {severity: {kind: (seconds, DEFAULT_SOURCE) for kind, seconds in targets.items()}
              for severity, targets in parse_policy(DEFAULT_POLICY, "defaults").items()}

    def apply(found: dict[Severity, dict[str, float]], source: str) -> None:
        for severity, targets in found.items():
            for kind, seconds in targets.items():
                result[severity][kind] = (seconds, source)

    if runtime.settings.get("sla"):
        apply(parse_policy(runtime.settings["sla"], "settings sla", check_order=strict),
              SETTINGS_SOURCE)
    chosen = None
    notes = []
    for record in runtime.store.list_connectors():
        if not record.enabled:
            continue
        try:
            connector = runtime.connector(record.name)
        except ImError:
            continue
        if type(connector).sla_policy is Connector.sla_policy:
            continue
        mapping = connector.sla_policy(SlaPolicyRequest())
        if not mapping:
            continue
        if chosen is None:
            apply(parse_policy(mapping, f"{record.name} sla_mapping", check_order=strict),
                  record.name)
            chosen = record.name
        else:
            notes.append(f"{record.name}: its SLA targets are not used; {chosen}'s are (the"
                         " first connector by name that sets them)")
    for severity, targets in result.items():
        (ack, ack_source), (resolve, resolve_source) = targets["ack"], targets["resolve"]
        if ack > resolve:
            problem = (f"SLA targets of {severity.value}: ack {duration(ack)} ({ack_source}) is"
                       f" longer than resolve {duration(resolve)} ({resolve_source}); an"
                       " incident is acknowledged before it is resolved")
            if strict:
                raise TargetOrderError(problem)
            notes.append(problem)
    return result, notes


def set_by(targets: dict[str, tuple[float, str]]) -> str:
    """What set a severity's targets: "prod-paging", or "default + prod-paging" when its ack
    and resolve targets come from two places."""
    return " + ".join(sorted({source for _, source in targets.values()}))


def policy(runtime: Runtime) -> tuple[dict[Severity, dict[str, float]], dict[Severity, str]]:
    """The targets in force, and what set them, by severity."""
    sourced, _ = sourced_policy(runtime)
    return ({severity: {kind: seconds for kind, (seconds, _) in targets.items()}
             for severity, targets in sourced.items()},
            {severity: set_by(targets) for severity, targets in sourced.items()})


def timers(incident: Incident, targets: dict[Severity, dict[str, float]]) -> list[Timer]:
    start = incident.reopened_at or incident.created_at
    stops = {"ack": incident.mitigated_at or incident.resolved_at or incident.closed_at,
             "resolve": incident.resolved_at or incident.closed_at}
    found = []
    for kind in KINDS:
        target = targets.get(incident.severity, {}).get(kind)
        if target is None:
            continue
        found.append(Timer(incident_id=incident.id, severity=incident.severity.value,
                           kind=kind, started_at=start, target_seconds=target,
                           due_at=start + timedelta(seconds=target), stopped_at=stops[kind]))
    return found


def running(runtime: Runtime) -> list[tuple[Incident, Timer]]:
    """Running timers of every unresolved incident, soonest due first."""
    targets, _ = policy(runtime)
    pairs = [(incident, timer)
             for incident in runtime.store.list_incidents(
                 statuses=[Status.OPEN, Status.MITIGATED])
             for timer in timers(incident, targets) if timer.running]
    return sorted(pairs, key=lambda pair: pair[1].due_at)


def check_breaches(runtime: Runtime, each: Callable[[Incident, Timer], None] | None = None
                   ) -> list[tuple[Incident, Timer]]:
    """Record and notify every breach not notified yet; returns the new ones. `each` is
    called after each one is recorded (to deliver its notes before the next is queued).

    Asks the store only for the timers overdue and not yet notified, by severity and kind,
    through indexes that hold only the incidents whose running timer was not breached: with
    nothing new due it reads nothing and writes nothing, however many incidents are open or
    were breached long ago (`im serve` runs it every 15 s)."""
    now = runtime.clock()
    targets, _ = policy(runtime)
    reads = runtime.store.read()
    due = []
    for severity, kinds in targets.items():
        for kind, seconds in kinds.items():
            statuses = [Status.OPEN] if kind == "ack" else [Status.OPEN, Status.MITIGATED]
            for incident in reads.incidents.sla_overdue(
                    severity=severity, statuses=statuses, kind=kind,
                    started_before=now - timedelta(seconds=seconds)):
                due += [(incident, timer) for timer in timers(incident, targets)
                        if timer.kind == kind and timer.running and timer.due_at < now]
    new = []
    for incident, timer in sorted(due, key=lambda pair: pair[1].due_at):
        if _record(runtime, incident, timer, now):
            new.append((incident, timer))
            if each is not None:
                each(incident, timer)
    return new


def _record(runtime: Runtime, incident: Incident, timer: Timer, now: datetime) -> bool:
    from im.incidents import enqueue_all

    verb = "acknowledged" if timer.kind == "ack" else "resolved"
    text = (f"SLA breached: not {verb} within {duration(timer.target_seconds)}"
            f" ({incident.severity.value}, due {timer.due_at.astimezone():%Y-%m-%d %H:%M})")
    with runtime.store.transaction() as tx:
        # another process may have recorded it since it was read: then it notified it
        if not tx.breaches.add(number=incident.number, kind=timer.kind,
                               started_at=timer.started_at, due_at=timer.due_at,
                               target_seconds=timer.target_seconds,
                               severity=incident.severity.value, detected_at=now):
            return False
        event = tx.timeline.add(incident.id, at=now, kind="sla_breached", text=text,
                                actor="im", system="im",
                                data={"kind": timer.kind,
                                      "target_seconds": timer.target_seconds})
        from im.workflows import enqueue

        enqueue(runtime, tx, incident, event, now)
        enqueue_all(runtime, tx, incident, Action.SLA_BREACH.value, {"note": text},
                    system="im")
        tx.after_commit(lambda: runtime.announce("sla_breached", incident=incident,
                                                 timer=timer, runtime=runtime))
    return True
