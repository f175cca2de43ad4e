"""SLA targets: how soon an incident of each severity must be acknowledged and resolved.

A connector's settings may carry an `sla_mapping` (as `custom.sla_mapping`, the way
`im connector config NAME --sla-mapping '{"SEV-1": {"ack": "15m", "resolve": "1h"}}'` sets
it); the first connector (by name) that sets a target wins, and the documented defaults fill
whatever none sets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from im.connectors import parse_duration
from im.models import Severity
from im.reports.model import SlaTarget

if TYPE_CHECKING:
    from im.storage import Store

# The documented defaults (docs/reports.md), in seconds: acknowledge, resolve.
DEFAULT_TARGETS: dict[Severity, tuple[float, float]] = {
    Severity.SEV1: (15 * 60, 60 * 60),
    Severity.SEV2: (30 * 60, 4 * 3600),
    Severity.SEV3: (2 * 3600, 24 * 3600),
    Severity.SEV4: (8 * 3600, 72 * 3600),
}


def _mapping(settings: dict[str, Any]) -> Any:
    custom = settings.get("custom")
    if isinstance(custom, dict) and "sla_mapping" in custom:
        return custom["sla_mapping"]
    return settings.get("sla_mapping")


def sla_targets(store: Store) -> tuple[list[SlaTarget], list[str]]:
    """The target of each severity, where it came from, and notes on mappings that could not
    be used or that disagree."""
    chosen: dict[tuple[Severity, str], tuple[float, str]] = {}
    notes: list[str] = []
    for record in store.list_connectors():
        mapping = _mapping(record.settings)
        if not mapping:
            continue
        if not isinstance(mapping, dict):
            notes.append(f"{record.name}: sla_mapping is not an object; ignored")
            continue
        for severity_name, targets in sorted(mapping.items()):
            try:
                severity = Severity(str(severity_name).upper())
            except ValueError:
                notes.append(f"{record.name}: sla_mapping names unknown severity"
                             f" {severity_name!r}; ignored")
                continue
            if not isinstance(targets, dict):
                continue
            for which in ("ack", "resolve"):
                if targets.get(which) is None:
                    continue
                try:
                    seconds = parse_duration(str(targets[which]))
                except ValueError as error:
                    notes.append(f"{record.name}: sla_mapping {severity.value} {which}: {error}")
                    continue
                key = (severity, which)
                if key not in chosen:
                    chosen[key] = (seconds, record.name)
                elif chosen[key][0] != seconds:
                    notes.append(
                        f"{record.name}: sla_mapping {severity.value} {which} ({targets[which]})"
                        f" differs from {chosen[key][1]}'s; {chosen[key][1]}'s is used")
    result = []
    for severity in Severity:
        ack_default, resolve_default = DEFAULT_TARGETS[severity]
        ack, ack_source = chosen.get((severity, "ack"), (ack_default, "default"))
        resolve, resolve_source = chosen.get((severity, "resolve"), (resolve_default, "default"))
        sources = sorted({ack_source, resolve_source})
        result.append(SlaTarget(severity=severity.value, ack_seconds=ack,
                                resolve_seconds=resolve, source=" + ".join(sources)))
    return result, notes
