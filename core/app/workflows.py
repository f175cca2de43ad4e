"""Workflow rules as users manage them (`im workflow add/list/show/remove/test`): every rule
checked here, the CLI only calls and formats."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from im.errors import InvalidInputError
from im.incidents import get as get_incident
from im.incidents import parse_severity
from im.workflows import (Conditions, Preview, Rule, Run, Step, Trigger, check_settings,
                          get_rule, parse_trigger, preview)

if TYPE_CHECKING:
    from im.runtime import Runtime

NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


class RuleView(msgspec.Struct, frozen=True, kw_only=True):
    rule: Rule
    missing: list[str]  # the actions of its steps that no installed plugin provides
    runs: list[Run] = []  # the latest runs it queued (show only)


def parse_step(text: str) -> Step:
    """`ACTION` or `ACTION=JSON` (the action's settings, a JSON object)."""
    action, _, settings = text.partition("=")
    action = action.strip()
    if not action:
        raise InvalidInputError(f"--action {text!r}: name an action, as in chat.war_room or"
                                " 'mail.notify={\"to\": [\"cto@company.com\"]}'")
    value: Any = {}
    if settings.strip():
        try:
            value = msgspec.json.decode(settings)
        except msgspec.DecodeError as error:
            raise InvalidInputError(f"--action {action}: its settings are not JSON ({error})"
                                    ) from None
        if not isinstance(value, dict):
            raise InvalidInputError(f"--action {action}: its settings must be a JSON object")
    return Step(action=action, settings=value)


def add(runtime: Runtime, name: str, *, trigger: str | Trigger, steps: Sequence[Step],
        severities: Sequence[str] = (), services: Sequence[str] = (),
        systems: Sequence[str] = (), replace: bool = False, enabled: bool = True) -> Rule:
    """Save a rule; each step's settings are checked against its action's now, so a mistake
    is said when the rule is written, not when an incident needs it."""
    if not NAME.fullmatch(name):
        raise InvalidInputError(f"workflow name {name!r}: lower-case letters, digits, - and _,"
                                " up to 63, starting with a letter or digit")
    if not steps:
        raise InvalidInputError("a workflow needs at least one --action")
    for step in steps:
        check_settings(runtime, step)
    existing = runtime.store.read().workflows.get(name)
    if existing is not None and not replace:
        raise InvalidInputError(f"workflow {name} exists: `im workflow remove {name}` first,"
                                " or add it again with --replace")
    now = runtime.clock()
    rule = Rule(name=name, trigger=trigger if isinstance(trigger, Trigger)
                else parse_trigger(trigger),
                conditions=Conditions(
                    severities=list(dict.fromkeys(parse_severity(s) for s in severities)),
                    services=list(dict.fromkeys(s.strip().lower() for s in services
                                                if s.strip())),
                    systems=list(dict.fromkeys(s.strip() for s in systems if s.strip()))),
                steps=list(steps), enabled=enabled,
                created_at=existing.created_at if existing else now, updated_at=now)
    with runtime.store.transaction() as tx:
        tx.workflows.save(rule)
    return rule


def _view(runtime: Runtime, rule: Rule, runs: list[Run] | None = None) -> RuleView:
    """The rule as it may be shown: literal secrets in its settings (and its runs') hidden."""
    from im.workflows import shown_settings

    installed = runtime.workflow_actions
    shown = msgspec.structs.replace(rule, steps=[
        Step(action=step.action, settings=shown_settings(runtime, step)) for step in rule.steps])
    missing = [step.action for step in rule.steps if step.action not in installed]
    return RuleView(rule=shown, missing=missing,
                    runs=[msgspec.structs.replace(run, settings=shown_settings(
                        runtime, Step(action=run.action, settings=run.settings)))
                          for run in runs or []])


def list_rules(runtime: Runtime) -> list[RuleView]:
    return [_view(runtime, rule) for rule in runtime.store.read().workflows.all()]


def show(runtime: Runtime, name: str, *, runs: int = 20) -> RuleView:
    rule = get_rule(runtime, name)
    queued = [run for run in runtime.store.read().workflow_runs.find() if run.workflow == name]
    return _view(runtime, rule, queued[-runs:])


def remove(runtime: Runtime, name: str) -> None:
    """Remove a rule. Runs it already queued still run (they were promised by a change)."""
    get_rule(runtime, name)
    with runtime.store.transaction() as tx:
        tx.workflows.delete(name)


def test(runtime: Runtime, name: str, incident_id: str, *, system: str = "im") -> Preview:
    """What the rule would run for that incident, without running anything."""
    return preview(runtime, get_rule(runtime, name), get_incident(runtime, incident_id),
                   system=system)
