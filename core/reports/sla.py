"""SLA targets: how soon an incident of each severity must be acknowledged and resolved.

Exactly the targets `im sla` and the timers use (`im.sla`): each comes from the first enabled
connector (by name) that configures targets (such as `custom.sla_mapping`, the way
`im connector config NAME --sla-mapping '{"SEV-1": {"ack": "15m", "resolve": "1h"}}'` sets
it), else `sla` in the settings file, else the documented defaults; the report says which set
each.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from im.reports.model import SlaTarget

if TYPE_CHECKING:
    from im.runtime import Runtime


def sla_targets(runtime: Runtime) -> tuple[list[SlaTarget], list[str]]:
    """The target of each severity, what set it, and notes on connectors' targets that are
    not used."""
    from im import sla

    sourced, notes = sla.sourced_policy(runtime)
    return [SlaTarget(severity=severity.value, ack_seconds=targets["ack"][0],
                      resolve_seconds=targets["resolve"][0], source=sla.set_by(targets))
            for severity, targets in sourced.items()], notes
