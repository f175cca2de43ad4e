"""Workflows: rules, kept as data, that run plugins' actions when something happens to an
incident ("a SEV-1 is declared: open a war room and tell management").

A rule has a trigger (what happened: `Trigger`), conditions (the incident's severity and
services, and the system the change came from) and steps, each an action that a plugin
provides (`WorkflowAction`, registered by the `register_workflow_actions` hook) with its
settings, checked against the action's `Settings` struct when the rule is saved.

Actions run as durably as connectors' pushes: when a change matches a rule, one run per step
is queued in the transaction of the change (nothing is lost if the process dies), and runs are
claimed with a lease, tried, retried with backoff and recorded on the incident's timeline. A
run is queued once per step and triggering timeline event, so an action never runs twice for
the same trigger.
"""

from __future__ import annotations

import enum
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec

from im.errors import ConnectorError, ImError, InvalidInputError, NotFoundError
from im.models import Incident, Severity, TimelineEvent

if TYPE_CHECKING:
    from im.runtime import Runtime
    from im.storage import UnitOfWork

log = logging.getLogger("im.workflows")

RUN_LEASE_SECONDS = 120.0  # a run claimed and not finished by then is tried again
# how long `im serve` holds a run for the deliveries of its change (run_queued)
DELIVERIES_FIRST_SECONDS = 30.0
# How long after it was queued an action that fails for a reason that passes (an outage, a
# rate limit) is still tried again; then it is set aside. A time, not a count of attempts:
# chat and mail services' outages have lasted hours, and a rate limit asking for a second more
# at each try would use up any count in moments.
RETRY_FOR = timedelta(days=1)


class Trigger(enum.StrEnum):
    """What happened to an incident, as a rule waits for it."""

    DECLARED = "declared"
    SEVERITY_CHANGED = "severity_changed"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    CLOSED = "closed"
    SLA_BREACHED = "sla_breached"
    NOTE_ADDED = "note_added"


# the kind of timeline event each trigger is
_TRIGGER_OF_KIND = {"declared": Trigger.DECLARED, "severity_changed": Trigger.SEVERITY_CHANGED,
                    "acknowledged": Trigger.ACKNOWLEDGED, "resolved": Trigger.RESOLVED,
                    "closed": Trigger.CLOSED, "sla_breached": Trigger.SLA_BREACHED,
                    "note": Trigger.NOTE_ADDED}


class Conditions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Every condition given must hold (an empty list: any)."""

    severities: list[Severity] = []
    services: list[str] = []  # any of them among the incident's
    systems: list[str] = []  # where the change came from: "im", or a connector's name


class Step(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    action: str  # the action's name, such as "chat.war_room"
    settings: dict[str, Any] = {}


class Rule(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    trigger: Trigger
    conditions: Conditions = Conditions()
    steps: list[Step] = []
    enabled: bool = True
    created_at: datetime | None = None
    updated_at: datetime | None = None


class RunStatus(enum.StrEnum):
    """A queued action: pending -> running (claimed, with a lease) -> done | failed."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class Run(msgspec.Struct, frozen=True, kw_only=True):
    """One step of a rule, queued for one triggering event."""

    id: int
    workflow: str
    step: int
    action: str
    settings: dict[str, Any]
    incident_id: str
    trigger: Trigger
    event_id: int
    status: RunStatus
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime


# -- what a plugin provides ----------------------------------------------------------------


class ActionRequest(msgspec.Struct, frozen=True, kw_only=True):
    """What an action is asked to do: for `incident` (as it is now), because of `event` (the
    timeline event that triggered the rule, None for a `workflow test`), by `rule`."""

    incident: Incident
    trigger: Trigger
    rule: str
    event: TimelineEvent | None = None
    attempt: int = 1
    # time.monotonic() by which to give up (a retryable ConnectorError), None: no limit
    deadline: float | None = None


class ActionResult(msgspec.Struct, frozen=True, kw_only=True):
    """What was done, each a line of the incident's timeline ("War room #inc-42 created")."""

    timeline: list[str] = []


class DefaultRule(msgspec.Struct, frozen=True, kw_only=True):
    """A rule an action offers for the common case (`im workflow defaults` lists and adds
    them): run the action when `trigger` happens to an incident of one of `severities` (an
    empty list: any)."""

    name: str  # the rule's name once added ("war-room")
    trigger: Trigger
    severities: list[Severity] = []
    description: str = ""  # why: "every SEV-1 gets a war room"


class WorkflowAction:
    """Base class of workflow actions. Subclass it, set `name` (a dotted name that starts with
    the plugin's, `chat.war_room`), `Settings` (a msgspec Struct; a rule's settings for the
    action are decoded into it when the rule is saved, so a mistake is said then) and
    `description`, and implement `run`. `defaults` are the rules it offers for the common case
    (`im workflow defaults`); `default_settings` fills what it can of their settings from what
    is configured (the one chat connector there is), the user gives the rest.

    `run` raises `im.ConnectorError` when it could not do it: `retryable=True` (an outage, a
    rate limit; `retry_after` seconds if the remote said) tries it again later with backoff,
    else it is set aside as failed, said on the timeline. It must be safe to run again after a
    crash between doing and recording it (use the run's `request.event`'s id, or the
    incident's, to find what an earlier attempt made). `describe` says in one line what it
    would do, for `im workflow test`, without doing it.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    Settings: ClassVar[type[msgspec.Struct]]
    defaults: ClassVar[Sequence[DefaultRule]] = ()

    def __init__(self, settings: msgspec.Struct, runtime: Runtime) -> None:
        self.settings = settings
        self.runtime = runtime

    def run(self, request: ActionRequest) -> ActionResult:
        raise NotImplementedError

    def describe(self, request: ActionRequest) -> str:
        return f"{self.name} for {request.incident.id}"

    @classmethod
    def default_settings(cls, runtime: Runtime) -> dict[str, Any]:
        """Settings for the rules of `defaults`, as far as what is configured tells them (the
        user's own settings are laid over them); none by default."""
        return {}


# -- rules ---------------------------------------------------------------------------------


def action_types(runtime: Runtime) -> dict[str, type[WorkflowAction]]:
    return runtime.workflow_actions


def check_settings(runtime: Runtime, step: Step) -> msgspec.Struct:
    """The step's settings decoded into its action's Settings; a clear error if the action is
    not installed or a setting is wrong. Secrets (fields marked `im.secret()`) may be literal
    or `env:VAR`; they are not read here."""
    actions = action_types(runtime)
    action = actions.get(step.action)
    if action is None:
        known = ", ".join(sorted(actions)) or "none installed"
        raise InvalidInputError(f"unknown action {step.action!r} (available: {known})")
    return _decode(action, step.action, step.settings)


def _decode(action: type[WorkflowAction], name: str, settings: dict[str, Any], *,
            resolve_env: bool = False) -> msgspec.Struct:
    if resolve_env:
        from im.connector_config import get_path, secret_paths, set_path

        for path in secret_paths(action.Settings):
            value = get_path(settings, path)
            if isinstance(value, str) and value.startswith("env:"):
                variable = value.removeprefix("env:")
                if variable not in os.environ:  # a process that has it runs it
                    raise ConnectorError(f"setting {path} of {name} refers to env:{variable},"
                                         " which is not set here", retryable=True)
                settings = set_path(settings, path, os.environ[variable])
    try:
        return msgspec.convert(settings, action.Settings, strict=False)
    except msgspec.ValidationError as error:
        raise InvalidInputError(f"action {name}: {error}") from None


def shown_settings(runtime: Runtime, step: Step) -> dict[str, Any]:
    """A step's settings safe to print: literal secrets hidden, `env:VAR` kept; every value
    hidden where the action (which says which are secret) is not installed."""
    action = action_types(runtime).get(step.action)
    if action is None:
        from im.connector_config import REDACTED

        return dict.fromkeys(step.settings, REDACTED)
    from im.connector_config import redact

    return redact(action.Settings, step.settings)


def matches(rule: Rule, trigger: Trigger, incident: Incident, system: str) -> bool:
    conditions = rule.conditions
    return (rule.enabled and rule.trigger == trigger
            and (not conditions.severities or incident.severity in conditions.severities)
            and (not conditions.services
                 or any(service in incident.services for service in conditions.services))
            and (not conditions.systems or system in conditions.systems))


def trigger_of(event: TimelineEvent) -> Trigger | None:
    return _TRIGGER_OF_KIND.get(event.kind)


def enqueue(runtime: Runtime, tx: UnitOfWork, incident: Incident, event: TimelineEvent,
            now: datetime) -> int:
    """Queue the steps of every rule that `event` triggers, in the transaction of the change
    (`tx`); how many. Read from the rules stored: a handful, read in one statement. A step
    whose action no installed plugin provides is not queued (`im workflow list` says so)."""
    trigger = trigger_of(event)
    if trigger is None:
        return 0
    queued = 0
    rules = [rule for rule in tx.workflows.all()
             if matches(rule, trigger, incident, event.system)]
    installed = action_types(runtime) if rules else {}
    for rule in rules:
        for index, step in enumerate(rule.steps):
            if step.action not in installed:
                continue
            queued += tx.workflow_runs.add(
                workflow=rule.name, step=index, action=step.action, settings=step.settings,
                incident_id=incident.id, trigger=trigger, event_id=event.id, at=now)
    return queued


# -- running them --------------------------------------------------------------------------


@dataclass
class RunReport:
    done: int = 0
    retrying: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def backoff(attempts: int, retry_after: float | None = None) -> float:
    """Seconds to wait before attempt `attempts + 1`: what the remote asked, else 5 s doubling
    up to 10 minutes."""
    if retry_after is not None:
        return max(1.0, min(retry_after, 3600.0))
    return min(5.0 * 2 ** (attempts - 1), 600.0)


def run_queued(runtime: Runtime, *, budget: float | None = None,
               incident_id: str | None = None, limit: int | None = None,
               deliveries_first: float = 0.0) -> RunReport:
    """Run the queued actions that are due (of one incident, if given), each at most once per
    call, for at most `budget` seconds: what is left stays queued for `im serve`.

    `deliveries_first`: seconds a run waits, after it was queued, for the changes of its
    incident queued with or before it to be tried on connected systems (`im serve`, whose
    loops run at once: a war room names the paging incident and links the chat message that
    the change makes); a delivery that failed holds it no longer (an outage is no reason to
    wait). A command runs the actions after delivering what it could itself."""
    store = runtime.store
    report = RunReport()
    deadline = time.monotonic() + budget if budget is not None else None
    tried: list[int] = []
    instances: dict[tuple[str, int], WorkflowAction | ImError] = {}
    while limit is None or len(tried) < limit:
        if deadline is not None and time.monotonic() >= deadline:
            break
        now = runtime.clock()
        since = now - timedelta(seconds=deliveries_first) if deliveries_first else None
        with store.transaction() as tx:
            run = tx.workflow_runs.claim_next(now=now, lease_seconds=RUN_LEASE_SECONDS,
                                              incident_id=incident_id, exclude=tried,
                                              deliveries_first_since=since)
        if run is None:
            break
        tried.append(run.id)
        _run_one(runtime, run, report, deadline)
    return report


def _run_one(runtime: Runtime, run: Run, report: RunReport, deadline: float | None) -> None:
    store = runtime.store
    incident = store.get_incident(run.incident_id)
    if incident is None:
        _set_aside(runtime, run, "the incident no longer exists", report)
        return
    actions = action_types(runtime)
    action_class = actions.get(run.action)
    if action_class is None:  # uninstalled since: waits for it to come back
        _retry(runtime, run, ConnectorError(f"action {run.action} is not installed",
                                            retryable=True), report)
        return
    try:
        settings = _decode(action_class, run.action, run.settings, resolve_env=True)
    except ConnectorError as error:
        _retry(runtime, run, error, report)
        return
    except InvalidInputError as error:
        _set_aside(runtime, run, f"its settings are wrong: {error}", report)
        return
    event = next((e for e in store.timeline(incident.id) if e.id == run.event_id), None)
    request = ActionRequest(incident=incident, trigger=run.trigger, rule=run.workflow,
                            event=event, attempt=run.attempts, deadline=deadline)
    try:
        result = action_class(settings, runtime).run(request)
    except ConnectorError as error:
        _retry(runtime, run, error, report)
        return
    except Exception as error:  # a bug in a plugin must not lose the run
        log.exception("action %s of workflow %s failed", run.action, run.workflow)
        _retry(runtime, run, ConnectorError(f"{type(error).__name__}: {error}",
                                            retryable=True), report)
        return
    now = runtime.clock()
    with store.transaction() as tx:
        if not tx.workflow_runs.finish(run.id, at=now, attempt=run.attempts):
            log.warning("action %s of workflow %s for %s was taken over by another worker"
                        " after this one's claim ran out", run.action, run.workflow,
                        run.incident_id)
            return
        for line in result.timeline:
            tx.timeline.add(incident.id, at=now, kind="workflow", text=line,
                            actor=run.workflow, system=run.action.split(".")[0],
                            data={"workflow": run.workflow, "action": run.action})
    report.done += 1


def _retry(runtime: Runtime, run: Run, error: ConnectorError, report: RunReport) -> None:
    if not error.retryable:
        _set_aside(runtime, run, str(error), report)
        return
    if runtime.clock() - run.created_at >= RETRY_FOR:
        _set_aside(runtime, run, f"{error} (still failing a day after it was queued)", report)
        return
    delay = backoff(run.attempts, error.retry_after)
    with runtime.store.transaction() as tx:
        tx.workflow_runs.retry(run.id, error=str(error), attempt=run.attempts,
                               next_attempt_at=runtime.clock() + timedelta(seconds=delay))
    report.retrying += 1
    report.errors.append(f"{run.workflow} {run.action} {run.incident_id}: {error}")
    log.warning("action %s of workflow %s for %s not done (attempt %d): %s; tried again in"
                " %.0f s", run.action, run.workflow, run.incident_id, run.attempts, error,
                delay)


def _set_aside(runtime: Runtime, run: Run, why: str, report: RunReport) -> None:
    now = runtime.clock()
    with runtime.store.transaction() as tx:
        if not tx.workflow_runs.fail(run.id, error=why, at=now, attempt=run.attempts):
            return
        if runtime.store.get_incident(run.incident_id) is not None:
            tx.timeline.add(run.incident_id, at=now, kind="workflow",
                            text=f"Workflow {run.workflow}: {run.action} failed: {why}",
                            actor=run.workflow, system="im",
                            data={"workflow": run.workflow, "action": run.action,
                                  "failed": True})
    report.failed += 1
    report.errors.append(f"{run.workflow} {run.action} {run.incident_id}: {why}")
    log.error("action %s of workflow %s for %s set aside after %d attempt(s): %s", run.action,
              run.workflow, run.incident_id, run.attempts, why)


# -- what `im workflow test` shows ---------------------------------------------------------


class Preview(msgspec.Struct, frozen=True, kw_only=True):
    rule: str
    incident_id: str
    matches: bool
    why_not: list[str]
    steps: list[str]  # what each step would do


def preview(runtime: Runtime, rule: Rule, incident: Incident, *,
            system: str = "im") -> Preview:
    """What `rule` would run for `incident` if its trigger happened now (from `system`),
    without running anything."""
    conditions = rule.conditions
    why_not = []
    if not rule.enabled:
        why_not.append("the rule is disabled")
    if conditions.severities and incident.severity not in conditions.severities:
        why_not.append(f"{incident.id} is {incident.severity.value}, not"
                       f" {' or '.join(s.value for s in conditions.severities)}")
    if conditions.services and not any(s in incident.services for s in conditions.services):
        why_not.append(f"{incident.id}'s services ({', '.join(incident.services)}) are not"
                       f" {' or '.join(conditions.services)}")
    if conditions.systems and system not in conditions.systems:
        why_not.append(f"a change from {system}, not {' or '.join(conditions.systems)}")
    steps = []
    for step in rule.steps:
        action_class = action_types(runtime).get(step.action)
        if action_class is None:
            steps.append(f"{step.action}: not installed")
            continue
        settings = check_settings(runtime, step)
        request = ActionRequest(incident=incident, trigger=rule.trigger, rule=rule.name)
        steps.append(f"{step.action}: {action_class(settings, runtime).describe(request)}")
    return Preview(rule=rule.name, incident_id=incident.id, matches=not why_not,
                   why_not=why_not, steps=steps)


def parse_trigger(value: str) -> Trigger:
    try:
        return Trigger(value.strip().lower().replace("-", "_"))
    except ValueError:
        raise InvalidInputError(f"unknown trigger {value!r} (one of:"
                                f" {', '.join(t.value for t in Trigger)})") from None


def get_rule(runtime: Runtime, name: str) -> Rule:
    rule = runtime.store.read().workflows.get(name)
    if rule is None:
        names = ", ".join(r.name for r in runtime.store.read().workflows.all()) or "none"
        raise NotFoundError(f"no workflow named {name!r} (defined: {names})")
    return rule


def runs_of(runtime: Runtime, *, incident_id: str | None = None,
            statuses: Sequence[str] = ()) -> list[Run]:
    return runtime.store.read().workflow_runs.find(incident_id=incident_id, statuses=statuses)
