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
MISSING = re.compile(r"Object missing required field `([^`]+)`")


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


# -- the rules actions offer ---------------------------------------------------------------


class DefaultView(msgspec.Struct, frozen=True, kw_only=True):
    """A rule an installed action offers (`WorkflowAction.defaults`), as it would be added:
    `settings` from what is configured and what the user gave; `problem` what is still
    wrong with them (a setting to give), None when it can be added; `added` when a rule of
    its name exists."""

    name: str
    action: str
    trigger: Trigger
    severities: list[str]
    description: str
    settings: dict[str, Any]
    problem: str | None
    added: bool


def defaults(runtime: Runtime, given: dict[str, dict[str, Any]] | None = None
             ) -> list[DefaultView]:
    """The rules the installed actions offer, by name; `given`: settings by rule name, laid
    over what the action fills in itself."""
    from im.workflows import shown_settings

    given = given or {}
    stored = {rule.name for rule in runtime.store.read().workflows.all()}
    views: list[DefaultView] = []
    for action_name, action in sorted(runtime.workflow_actions.items()):
        for offer in action.defaults:
            settings = {**action.default_settings(runtime), **given.get(offer.name, {})}
            step = Step(action=action_name, settings=settings)
            problem: str | None = None
            try:
                check_settings(runtime, step)
            except InvalidInputError as error:
                problem = MISSING.sub(r"\1 is required",
                                      str(error).removeprefix(f"action {action_name}: "))
            views.append(DefaultView(
                name=offer.name, action=action_name, trigger=offer.trigger,
                severities=[s.value for s in offer.severities], description=offer.description,
                settings=shown_settings(runtime, step), problem=problem,
                added=offer.name in stored))
    views.sort(key=lambda view: view.name)
    return views


def add_defaults(runtime: Runtime, names: Sequence[str],
                 given: dict[str, dict[str, Any]] | None = None) -> list[Rule]:
    """Add the offered rules named (`all`: every one not added yet), with the settings the
    action fills in and the user's (`given`) over them. Nothing is added unless every rule
    named can be."""
    given = given or {}
    offered = {view.name: view for view in defaults(runtime)}
    if not offered:
        raise InvalidInputError("no installed action offers a default rule (see im plugins)")
    unknown = sorted(set(given) - set(offered))
    if unknown:
        raise InvalidInputError(f"no default rule named {', '.join(unknown)}"
                                f" (offered: {', '.join(offered)})")
    wanted = [view.name for view in offered.values() if not view.added] \
        if list(names) == ["all"] else list(dict.fromkeys(names))
    if not wanted:
        raise InvalidInputError("every default rule is added already (im workflow list)")
    for name in wanted:
        if name not in offered:
            raise InvalidInputError(f"no default rule named {name}"
                                    f" (offered: {', '.join(offered)})")
        if offered[name].added:
            raise InvalidInputError(f"workflow {name} exists: `im workflow remove {name}`"
                                    " first to add it again")
    steps: dict[str, Step] = {}
    for name in wanted:
        action = runtime.workflow_actions[offered[name].action]
        settings = {**action.default_settings(runtime), **given.get(name, {})}
        step = Step(action=offered[name].action, settings=settings)
        try:
            check_settings(runtime, step)
        except InvalidInputError as error:
            raise InvalidInputError(
                f"default rule {name}: {str(error).removeprefix('action ')}; give its"
                f" settings with --settings '{name}={{...}}'") from None
        steps[name] = step
    return [add(runtime, name, trigger=offered[name].trigger, steps=[steps[name]],
                severities=offered[name].severities) for name in wanted]


def parse_settings(texts: Sequence[str]) -> dict[str, dict[str, Any]]:
    """`NAME=JSON` options: the settings of default rules, by rule name."""
    usage = " give NAME={JSON}, as in 'management-notice={\"to\": [\"cto@company.com\"]}'"
    settings: dict[str, dict[str, Any]] = {}
    for text in texts:
        name, _, value = text.partition("=")
        if not name.strip() or not value.strip():
            raise InvalidInputError(f"--settings {text!r}:{usage}")
        try:
            decoded = msgspec.json.decode(value)
        except msgspec.DecodeError as error:
            raise InvalidInputError(f"--settings {name.strip()}: not JSON ({error});{usage}"
                                    ) from None
        if not isinstance(decoded, dict):
            raise InvalidInputError(f"--settings {name.strip()}: a JSON object is needed;{usage}")
        settings.setdefault(name.strip(), {}).update(decoded)
    return settings
