"""SLA operations: the targets in force and what set them, running timers, breach checks.

The timers themselves and where targets come from are `im.sla`'s; setting targets is a
connector's settings (`im connector config NAME --sla-mapping`) or the settings file's `sla`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import msgspec

from im import sla
from im.models import Incident, Severity
from im.sla import Timer

if TYPE_CHECKING:
    from im.runtime import Runtime

__all__ = ["Breach", "RunningTimer", "RunningTimers", "SlaPolicy", "check_breaches",
           "first_running", "policy", "running_timers", "timers"]


class SlaPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """The targets in force (seconds by severity and timer, `ack` and `resolve`), what set
    each severity's (a connector's name, "settings file", "default", or two of them joined by
    " + "), and notes on targets that are not used or do not fit together."""

    targets: dict[Severity, dict[str, float]]
    set_by: dict[Severity, str]
    notes: list[str] = []


class RunningTimer(msgspec.Struct, frozen=True, kw_only=True):
    incident: Incident
    timer: Timer


class RunningTimers(msgspec.Struct, frozen=True, kw_only=True):
    """Every running timer of an unresolved incident, soonest due first, and the policy."""

    timers: list[RunningTimer]
    policy: SlaPolicy


class Breach(msgspec.Struct, frozen=True, kw_only=True):
    """A timer found breached and recorded (its timeline event, its notes queued)."""

    incident: Incident
    timer: Timer


def policy(runtime: Runtime) -> SlaPolicy:
    sourced, notes = sla.sourced_policy(runtime)
    return SlaPolicy(
        targets={severity: {kind: seconds for kind, (seconds, _) in targets.items()}
                 for severity, targets in sourced.items()},
        set_by={severity: sla.set_by(targets) for severity, targets in sourced.items()},
        notes=notes)


def running_timers(runtime: Runtime) -> RunningTimers:
    found = [RunningTimer(incident=incident, timer=timer)
             for incident, timer in sla.running(runtime)]
    return RunningTimers(timers=found, policy=policy(runtime))


def timers(runtime: Runtime, incident: Incident) -> list[Timer]:
    """The incident's timers, running or stopped, under the targets in force."""
    targets, _ = sla.policy(runtime)
    return sla.timers(incident, targets)


def first_running(runtime: Runtime, incidents: Sequence[Incident]) -> list[Timer | None]:
    """For each incident, the timer that matters now: its first running one, or None."""
    targets, _ = sla.policy(runtime)
    return [next((t for t in sla.timers(incident, targets) if t.running), None)
            for incident in incidents]


def check_breaches(runtime: Runtime, *, each: Callable[[Breach], None] | None = None
                   ) -> list[Breach]:
    """Record and notify every breach not notified yet (what `im serve` does every 15
    seconds); returns the new ones. `each` is called after each one is recorded, before the
    next (a front end delivering the breach's notes at once keeps them in order)."""
    def recorded(incident: Incident, timer: Timer) -> None:
        if each is not None:
            each(Breach(incident=incident, timer=timer))

    return [Breach(incident=incident, timer=timer)
            for incident, timer in sla.check_breaches(runtime, each=recorded)]
