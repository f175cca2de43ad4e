"""Who is on call: rendered from schedule layers and overrides at the moment of asking.

A layer hands over every `turn_length_seconds`, counted from `rotation_virtual_start`, and is
active between its `start` and `end`. The final schedule takes, at each moment, the newest
override covering it, else the highest layer with someone on call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import pairwise
from datetime import datetime, timedelta

import msgspec

from im_pagerduty.sandbox.model import EscalationPolicy, Layer, Schedule
from im_pagerduty.sandbox.store import Store

# PagerDuty renders on-call shifts at most 90 days ahead.
MAX_REACH = timedelta(days=90)


class Shift(msgspec.Struct, frozen=True, kw_only=True):
    user_id: str
    start: datetime
    end: datetime


class OnCall(msgspec.Struct, frozen=True, kw_only=True):
    escalation_policy_id: str
    escalation_level: int
    user_id: str
    schedule_id: str | None
    # None for users targeted directly by a rule: they are on call permanently.
    start: datetime | None
    end: datetime | None


def layer_user_at(layer: Layer, moment: datetime) -> str | None:
    if not layer.user_ids or moment < layer.start or (layer.end and moment >= layer.end):
        return None
    turn = (moment - layer.rotation_virtual_start) // timedelta(seconds=layer.turn_length_seconds)
    return layer.user_ids[turn % len(layer.user_ids)]


def schedule_user_at(schedule: Schedule, moment: datetime) -> str | None:
    for override in reversed(schedule.overrides):
        if override.start <= moment < override.end:
            return override.user_id
    for layer in reversed(schedule.layers):
        user_id = layer_user_at(layer, moment)
        if user_id:
            return user_id
    return None


def _layer_handoffs(layer: Layer, start: datetime, end: datetime) -> Iterable[datetime]:
    for edge in (layer.start, layer.end):
        if edge is not None and start < edge < end:
            yield edge
    length = timedelta(seconds=layer.turn_length_seconds)
    first = max(start, layer.start)
    turn = -((layer.rotation_virtual_start - first) // length)  # ceiling division
    moment = layer.rotation_virtual_start + turn * length
    last = min(end, layer.end) if layer.end else end
    while moment < last:
        if moment > start:
            yield moment
        moment += length


def _render(
    user_at: Callable[[datetime], str | None], edges: set[datetime], start: datetime, end: datetime
) -> list[Shift]:
    points = sorted(edge for edge in edges | {start, end} if start <= edge <= end)
    shifts: list[Shift] = []
    for left, right in pairwise(points):
        user_id = user_at(left)
        if user_id is None:
            continue
        if shifts and shifts[-1].user_id == user_id and shifts[-1].end == left:
            shifts[-1] = Shift(user_id=user_id, start=shifts[-1].start, end=right)
        else:
            shifts.append(Shift(user_id=user_id, start=left, end=right))
    return shifts


def render_layer(layer: Layer, start: datetime, end: datetime) -> list[Shift]:
    return _render(
        lambda moment: layer_user_at(layer, moment),
        set(_layer_handoffs(layer, start, end)),
        start,
        end,
    )


def render_overrides(schedule: Schedule, start: datetime, end: datetime) -> list[Shift]:
    return [
        Shift(user_id=o.user_id, start=max(o.start, start), end=min(o.end, end))
        for o in schedule.overrides
        if o.end > start and o.start < end
    ]


def render_schedule(schedule: Schedule, start: datetime, end: datetime) -> list[Shift]:
    """The final schedule between `start` and `end`, consecutive turns of one user merged."""
    edges: set[datetime] = set()
    for layer in schedule.layers:
        edges.update(_layer_handoffs(layer, start, end))
    for override in schedule.overrides:
        edges.update((override.start, override.end))
    return _render(lambda moment: schedule_user_at(schedule, moment), edges, start, end)


def _reach(schedule: Schedule) -> timedelta:
    longest = max((layer.turn_length_seconds for layer in schedule.layers), default=0)
    return min(max(timedelta(seconds=longest), timedelta(days=1)), MAX_REACH)


def shifts_overlapping(schedule: Schedule, since: datetime, until: datetime) -> list[Shift]:
    """Whole shifts (not cut at the window) that overlap `since`..`until`, or contain `since`
    when the window is a single moment."""
    reach = _reach(schedule)
    shifts = render_schedule(schedule, since - reach, until + reach)
    return [s for s in shifts if s.end > since and (s.start < until or s.start <= since)]


def assignees_at(store: Store, policy: EscalationPolicy, level: int, moment: datetime) -> list[str]:
    """Users a rule of the policy notifies at `moment` (every target: assign_to_everyone)."""
    if not 1 <= level <= len(policy.rules):
        return []
    users: list[str] = []
    for target in policy.rules[level - 1].targets:
        if target.kind == "user":
            user_id: str | None = target.id
        else:
            schedule = store.schedules.get(target.id)
            user_id = schedule_user_at(schedule, moment) if schedule else None
        if user_id and user_id not in users:
            users.append(user_id)
    return users


def oncalls(
    store: Store,
    since: datetime,
    until: datetime,
    *,
    escalation_policy_ids: frozenset[str] = frozenset(),
    schedule_ids: frozenset[str] = frozenset(),
    user_ids: frozenset[str] = frozenset(),
    earliest: bool = False,
) -> list[OnCall]:
    found: list[OnCall] = []
    for policy in sorted(store.escalation_policies.values(), key=lambda p: p.id):
        if escalation_policy_ids and policy.id not in escalation_policy_ids:
            continue
        for level, rule in enumerate(policy.rules, start=1):
            for target in rule.targets:
                if target.kind == "user":
                    if not schedule_ids:
                        found.append(
                            OnCall(
                                escalation_policy_id=policy.id,
                                escalation_level=level,
                                user_id=target.id,
                                schedule_id=None,
                                start=None,
                                end=None,
                            )
                        )
                    continue
                schedule = store.schedules.get(target.id)
                if schedule is None or (schedule_ids and schedule.id not in schedule_ids):
                    continue
                found.extend(
                    OnCall(
                        escalation_policy_id=policy.id,
                        escalation_level=level,
                        user_id=shift.user_id,
                        schedule_id=schedule.id,
                        start=shift.start,
                        end=shift.end,
                    )
                    for shift in shifts_overlapping(schedule, since, until)
                )
    if user_ids:
        found = [entry for entry in found if entry.user_id in user_ids]
    found.sort(key=lambda e: (e.escalation_policy_id, e.escalation_level, e.start or since))
    if earliest:
        seen: set[tuple[str, int, str]] = set()
        first: list[OnCall] = []
        for entry in found:
            key = (entry.escalation_policy_id, entry.escalation_level, entry.user_id)
            if key not in seen:
                seen.add(key)
                first.append(entry)
        found = first
    return found
