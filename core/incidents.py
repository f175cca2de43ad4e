"""The incident lifecycle: declare, acknowledge, resolve, close, reopen, note, assign.

Each change is one transaction that writes the incident, its timeline event and one outbox row
per outbound connector and service; `incident_changed` is announced after the commit. Delivering
the outbox is the caller's choice (the CLI delivers at once, `im serve` in the background), so a
remote outage never fails or loses a local change.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from im.errors import InvalidInputError, NotFoundError, TransitionError
from im.models import TRANSITIONS, Action, Incident, Origin, Severity, Status, TimelineEvent

if TYPE_CHECKING:
    from im.runtime import Runtime
    from im.storage import UnitOfWork

log = logging.getLogger("im.incidents")

SERVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
FIELD_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
MAX_TITLE = 500

# The timeline kind each action records.
KINDS = {
    Action.DECLARE: "declared", Action.ACK: "acknowledged", Action.UNACK: "unacknowledged",
    Action.RESOLVE: "resolved", Action.CLOSE: "closed", Action.REOPEN: "reopened",
    Action.NOTE: "note", Action.ASSIGN: "assigned", Action.SEVERITY: "severity_changed",
}
# The timestamp column each status sets.
STATUS_TIME = {Status.MITIGATED: "mitigated_at", Status.RESOLVED: "resolved_at",
               Status.CLOSED: "closed_at"}


def parse_severity(value: str) -> Severity:
    normalized = value.strip().upper()
    if re.fullmatch(r"[1-4]", normalized):
        normalized = f"SEV-{normalized}"
    elif re.fullmatch(r"SEV[1-4]", normalized):
        normalized = f"SEV-{normalized[3]}"
    try:
        return Severity(normalized)
    except ValueError:
        choices = ", ".join(s.value for s in Severity)
        raise InvalidInputError(f"invalid severity {value!r}; choose from {choices}") from None


def parse_status(value: str) -> Status:
    try:
        return Status(value.strip().lower())
    except ValueError:
        choices = ", ".join(s.value for s in Status)
        raise InvalidInputError(f"invalid status {value!r}; choose from {choices}") from None


def parse_service(value: str) -> str:
    """Exactly one service name."""
    services = parse_services([value])
    if len(services) != 1:
        raise InvalidInputError(f"give one service, not {value!r}")
    return services[0]


def parse_services(values: Sequence[str]) -> list[str]:
    """Services from repeated and comma-separated values, in order, without duplicates, in
    lower case: `API` and `api` are one service (every service name enters im here)."""
    services: list[str] = []
    for value in values:
        for part in value.split(","):
            name = part.strip().lower()
            if not name:
                continue
            if not SERVICE_NAME.match(name):
                raise InvalidInputError(
                    f"invalid service name {name!r}: use ASCII letters, digits, '.', '_' or '-'"
                )
            if name not in services:
                services.append(name)
    return services


def parse_fields(values: Sequence[str]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for value in values:
        key, sep, text = value.partition("=")
        key = key.strip()
        if not sep or not FIELD_KEY.match(key):
            raise InvalidInputError(f"invalid field {value!r}: write key=value")
        fields[key] = text
    return fields


def parse_incident_id(value: str) -> str:
    text = value.strip().upper()
    if re.fullmatch(r"\d+", text):
        text = f"INC-{text}"
    if not re.fullmatch(r"INC-\d{1,18}", text):
        raise InvalidInputError(f"invalid incident id {value!r}: write INC-<number>, e.g. INC-1")
    return f"INC-{int(text[4:])}"


def get(runtime: Runtime, incident_id: str) -> Incident:
    incident = runtime.store.get_incident(parse_incident_id(incident_id))
    if incident is None:
        raise NotFoundError(f"no incident {incident_id}; `im list` shows the incidents")
    return incident


def _enqueue(runtime: Runtime, tx: UnitOfWork, incident: Incident, action: Action,
             payload: dict[str, Any], origin: Origin, origin_service: str | None = None) -> int:
    return enqueue_all(runtime, tx, incident, action.value, payload, system=origin.system,
                       origin_service=origin_service)


def enqueue_all(runtime: Runtime, tx: UnitOfWork, incident: Incident, action: str,
                payload: dict[str, Any], *, system: str,
                origin_service: str | None = None) -> int:
    """One outbox row per outbound connector and service (one per connector for a connector
    with one remote incident per im incident: for the service its link has, else the first),
    in the caller's transaction. A change never goes back to the connector (`system`) it came
    from, unless that connector's class asks for its own changes (`receives_own_changes`: it
    shows im's state, and tells its own changes by the row's `origin_system`, the `system`
    of every row queued here), and a connector follows the incidents declared since it was
    added: one declared before never reached it, so its later changes have nothing there to
    change. With
    `origin_service`, the change came from that service's remote incident of connector
    `system`: the connector's remote incidents of the incident's other services get it too
    (a severity changed on one of them is every one's)."""
    queued = 0
    for record in tx.connectors.all():
        if not record.enabled:
            continue
        # a connector that asks for its own changes gets them (it tells them by the row's
        # origin_system and does not echo them)
        back = record.name == system and _connector_class_says(
            runtime, record.type, "receives_own_changes")
        if record.name == system and origin_service is None and not back:
            continue
        if action != Action.DECLARE.value and record.created_at > incident.created_at:
            continue
        if not record.sync_direction.pushes:
            continue
        services = incident.services
        if _one_per_incident(runtime, record.type):
            linked = tx.links.find(incident.id, connector=record.name)
            services = [linked[0].service] if linked else incident.services[:1]
        if record.name == system and not back:  # never back to the remote incident of origin
            services = [service for service in services if service != origin_service]
        for service in services:
            tx.outbox.add(connector=record.name, incident_id=incident.id, service=service,
                          action=action, payload=payload, at=runtime.clock(),
                          origin_system=system or None)
            queued += 1
    return queued


def _one_per_incident(runtime: Runtime, type_name: str) -> bool:
    """Whether the connector type keeps one remote incident per im incident. A plugin that
    cannot register its types never stops a change from being saved: its connectors are
    taken as one per service, and their delivery says what is wrong."""
    try:
        connector_class = runtime.connector_types.get(type_name)
    except Exception as error:
        log.warning("connector types could not be read (%s: %s); changes are queued for"
                    " each service", type(error).__name__, error)
        return False
    return connector_class is not None and connector_class.remote_incident_per == "incident"


def _connector_class_says(runtime: Runtime, type_name: str, attribute: str) -> bool:
    """A yes/no class attribute of a connector type; no where its plugin cannot say (a
    plugin that cannot register its types is said by _one_per_incident and the delivery)."""
    try:
        connector_class = runtime.connector_types.get(type_name)
    except Exception:  # noqa: BLE001 - said elsewhere; a change is saved all the same
        return False
    return connector_class is not None and getattr(connector_class, attribute, False) is True


def _record(runtime: Runtime, incident_id: str, action: Action, text: str, origin: Origin,
            data: dict[str, Any], changes: dict[str, Any], payload: dict[str, Any],
            push: bool, origin_service: str | None = None) -> tuple[Incident, TimelineEvent]:
    now = runtime.clock()
    with runtime.store.transaction() as tx:
        if changes:
            tx.incidents.update(incident_id, now, **changes)
        event = tx.timeline.add(incident_id, at=now, kind=KINDS[action], text=text,
                                actor=origin.actor, system=origin.system, data=data)
        incident = tx.incidents.get(incident_id)
        assert incident is not None
        if push:
            _enqueue(runtime, tx, incident, action, payload, origin, origin_service)
        _announce(runtime, tx, incident, event)
    return incident, event


def _announce(runtime: Runtime, tx: UnitOfWork, incident: Incident,
              event: TimelineEvent) -> None:
    """The workflow runs the change triggers, queued with it; `incident_changed`, once the
    change (and any transaction around it) is committed."""
    from im.workflows import enqueue

    enqueue(runtime, tx, incident, event, runtime.clock())
    tx.after_commit(lambda: runtime.announce(
        "incident_changed", incident=incident, event=event, runtime=runtime))


# control characters but tab and newline; and the bidirectional overrides and isolates, which
# make text read otherwise than it is (the marks U+200E/U+200F stay)
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e\u2066-\u2069]")


def clean_text(text: str, *, one_line: bool = False) -> str:
    """Text as people read it in a terminal, a report or a grep: control characters out (a
    NUL in a title makes `grep` call the output binary); a title on one line."""
    if one_line:
        text = " ".join(CONTROL.sub(" ", text).split())
    return CONTROL.sub("", text).strip()


def declare(runtime: Runtime, *, title: str, severity: Severity | str, services: Sequence[str],
            description: str = "", fields: dict[str, str] | None = None,
            origin: Origin | None = None, push: bool = True) -> Incident:
    title = clean_text(title, one_line=True)
    description = clean_text(description)
    if not title:
        raise InvalidInputError("a title is required")
    if len(title) > MAX_TITLE:
        raise InvalidInputError(f"the title is longer than {MAX_TITLE} characters")
    severity = severity if isinstance(severity, Severity) else parse_severity(severity)
    services = parse_services(services)
    if not services:
        raise InvalidInputError("at least one service is required")
    origin = origin or Origin(actor=runtime.user)
    now = runtime.clock()
    with runtime.store.transaction() as tx:
        incident = tx.incidents.add(
            title=title, description=description, severity=severity, services=services,
            fields=fields or {}, correlation_id=uuid.uuid4().hex, created_by=origin.actor,
            at=now,
        )
        text = f"Incident declared: {severity.value} {title} ({', '.join(services)})"
        event = tx.timeline.add(incident.id, at=now, kind=KINDS[Action.DECLARE], text=text,
                                actor=origin.actor, system=origin.system,
                                data={"severity": severity.value, "services": services})
        if push:
            _enqueue(runtime, tx, incident, Action.DECLARE, {}, origin)
        _announce(runtime, tx, incident, event)
    return incident


def transition(runtime: Runtime, incident_id: str, action: Action, *, note: str = "",
               origin: Origin | None = None, push: bool = True) -> Incident:
    """Move an incident through its lifecycle: ack, unack, resolve, close or reopen."""
    incident = get(runtime, incident_id)
    allowed = TRANSITIONS[incident.status]
    if action not in allowed:
        # unack is what a paging system does (nobody took it after all); no command does it
        choices = ", ".join(a.value for a in allowed if a is not Action.UNACK) or "nothing"
        raise TransitionError(
            f"cannot {action.value} {incident.id}: it is {incident.status.value};"
            f" from {incident.status.value} you can {choices}"
        )
    target = allowed[action]
    now = runtime.clock()
    changes: dict[str, Any] = {"status": target.value}
    if target in STATUS_TIME:
        changes[STATUS_TIME[target]] = now
    if action is Action.REOPEN:
        changes.update(reopened_at=now, resolved_at=None, closed_at=None, mitigated_at=None)
    elif action is Action.UNACK:
        changes["mitigated_at"] = None
    elif action is Action.CLOSE and incident.resolved_at is None:
        changes["resolved_at"] = now
    origin = origin or Origin(actor=runtime.user)
    word = KINDS[action].capitalize()
    text = f"{word} by {origin.actor}" + (f": {note}" if note else "")
    incident, _ = _record(runtime, incident.id, action, text, origin,
                          {"from": incident.status.value, "to": target.value, "note": note},
                          changes, {"note": note}, push)
    return incident


def add_note(runtime: Runtime, incident_id: str, text: str, *, origin: Origin | None = None,
             push: bool = True) -> TimelineEvent:
    text = clean_text(text)
    if not text:
        raise InvalidInputError("the note is empty")
    incident = get(runtime, incident_id)
    origin = origin or Origin(actor=runtime.user)
    _, event = _record(runtime, incident.id, Action.NOTE, text, origin, {}, {},
                       {"note": text}, push)
    return event


def assign(runtime: Runtime, incident_id: str, assignee: str, *, origin: Origin | None = None,
           push: bool = True) -> Incident:
    assignee = assignee.strip()
    if not assignee:
        raise InvalidInputError("an assignee is required")
    incident = get(runtime, incident_id)
    origin = origin or Origin(actor=runtime.user)
    incident, _ = _record(runtime, incident.id, Action.ASSIGN, f"Assigned to {assignee}",
                          origin, {"assignee": assignee, "previous": incident.assignee},
                          {"assignee": assignee}, {"assignee": assignee}, push)
    return incident


def set_severity(runtime: Runtime, incident_id: str, severity: Severity | str, *,
                 origin: Origin | None = None, push: bool = True,
                 origin_service: str | None = None,
                 data: dict[str, Any] | None = None) -> Incident:
    """Change the severity; running SLA timers take the new severity's targets. A change
    from a remote incident (`origin_service` of the connector `origin.system`) goes to that
    connector's remote incidents of the other services too; `data` is kept on the timeline
    line."""
    severity = severity if isinstance(severity, Severity) else parse_severity(severity)
    incident = get(runtime, incident_id)
    if severity is incident.severity:
        raise InvalidInputError(f"{incident.id} is {severity.value} already")
    origin = origin or Origin(actor=runtime.user)
    incident, _ = _record(
        runtime, incident.id, Action.SEVERITY,
        f"Severity changed from {incident.severity.value} to {severity.value}", origin,
        {"from": incident.severity.value, "to": severity.value, **(data or {})},
        {"severity": severity.value}, {"severity": severity.value}, push,
        origin_service=origin_service)
    return incident
