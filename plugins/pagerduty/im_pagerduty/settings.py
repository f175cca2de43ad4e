"""The settings of a `pagerduty` connector, exactly as the spec's JSON configuration writes them."""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

import msgspec

from im import ConnectorSettings, Severity, is_loopback, prompt, secret

DEFAULT_BASE_URL = "https://api.pagerduty.com"
Urgency = Literal["high", "low"]
DEFAULT_URGENCY: dict[Severity, Urgency] = {
    Severity.SEV1: "high", Severity.SEV2: "high", Severity.SEV3: "low", Severity.SEV4: "low",
}

# PagerDuty's standard priorities, most severe first: P1..P4 are SEV-1..SEV-4, and P5 (below
# any im severity) is read as SEV-4. A list's first name is the one im sets; all are read back.
PriorityNames = str | list[str]
DEFAULT_PRIORITY: dict[Severity, PriorityNames] = {
    Severity.SEV1: "P1", Severity.SEV2: "P2", Severity.SEV3: "P3", Severity.SEV4: ["P4", "P5"],
}

EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")  # its shape; `connector test` asks PagerDuty


class SlaTarget(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How long until an incident of a severity must be acknowledged and resolved."""

    ack: str | None = None
    resolve: str | None = None

    def __post_init__(self) -> None:
        from im import parse_sla_target  # im's rule: longer than 0s, at most 365d

        for name in ("ack", "resolve"):
            value = getattr(self, name)
            if value is not None:
                try:
                    parse_sla_target(value)
                except ValueError as error:
                    raise ValueError(f"{error} - at `{name}`") from None
        if self.ack is not None and self.resolve is not None and (
                parse_sla_target(self.ack) > parse_sla_target(self.resolve)):
            raise ValueError(f"the ack target ({self.ack}) is longer than the resolve target"
                             f" ({self.resolve}); an incident is acknowledged before it is"
                             " resolved - at `ack`")


class PagerDutyCustom(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    service_id: Annotated[str, prompt(3, "Default Service ID")]
    from_email: Annotated[str, prompt(4, "From Email")]
    escalation_policy_id: Annotated[str | None, prompt(5, "Escalation Policy ID")] = None
    urgency_mapping: dict[Severity, Urgency] = msgspec.field(
        default_factory=lambda: dict(DEFAULT_URGENCY))
    # Severity <-> PagerDuty priority name; {} sends and reads no priority (urgency only).
    priority_mapping: dict[Severity, PriorityNames] = msgspec.field(
        default_factory=lambda: dict(DEFAULT_PRIORITY))
    service_mappings: dict[str, str] = {}
    escalation_mappings: dict[str, str] = {}
    auto_resolve: bool = True
    sync_notes: bool = True
    custom_field_mappings: dict[str, str] = {}
    sla_mapping: dict[Severity, SlaTarget] = {}
    # Set by `im connector webhook NAME --enable`; several secrets while one rotates.
    webhook_subscription_id: str | None = None
    webhook_secrets: Annotated[list[str], secret("Webhook signing secrets")] = []

    def __post_init__(self) -> None:
        if not EMAIL.fullmatch(self.from_email):
            raise ValueError(f"{self.from_email!r} is not an email address - at `from_email`")
        _check_priorities(self.priority_mapping)
        # im service names are lower case (`API` and `api` are one service): so are the keys
        for name in ("service_mappings", "escalation_mappings"):
            mapping: dict[str, str] = getattr(self, name)
            lowered = {key.lower(): value for key, value in mapping.items()}
            if len(lowered) < len(mapping):
                twins = sorted(key for key in mapping if key != key.lower()
                               and key.lower() in mapping)
                twin = twins[0] if twins else next(iter(mapping))
                raise ValueError(f"{twin!r} and {twin.lower()!r} are one im service; map it"
                                 f" once - at `{name}`")
            if lowered != mapping:
                msgspec.structs.force_setattr(self, name, lowered)


def _check_priorities(mapping: dict[Severity, PriorityNames]) -> None:
    seen: dict[str, Severity] = {}
    for severity, names in mapping.items():
        for name in [names] if isinstance(names, str) else names or [""]:
            if not name.strip():
                raise ValueError(f"{severity.value} maps to no priority name; give one (or"
                                 " leave the severity out) - at `priority_mapping`")
            # PagerDuty matches a priority name whatever its case: so does im
            other = seen.setdefault(name.strip().lower(), severity)
            if other != severity:
                raise ValueError(f"priority {name!r} is mapped to both {other.value} and"
                                 f" {severity.value}; a priority reads back as one severity"
                                 " - at `priority_mapping`")


def priority_names(mapping: dict[Severity, PriorityNames], severity: Severity) -> list[str]:
    """The names mapped to a severity, the one im sets first (none: im sets no priority)."""
    names = mapping.get(severity) or []
    return [names.strip()] if isinstance(names, str) else [name.strip() for name in names]


class PagerDutySettings(ConnectorSettings, frozen=True, kw_only=True):
    api_key: Annotated[str, prompt(1, "API Key", secret=True)]
    base_url: Annotated[str, prompt(2, "API Base URL")] = DEFAULT_BASE_URL
    custom: PagerDutyCustom

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.api_key.strip():
            raise ValueError("the API key is empty; give the key from PagerDuty (Account"
                             " Settings → API Access Keys) - at `api_key`")
        parts = urlsplit(self.base_url)
        # PagerDuty refuses plain HTTP; only a local sandbox may use it.
        if not parts.hostname or parts.scheme not in {"http", "https"} or (
                parts.scheme == "http" and not is_loopback(parts.hostname)):
            raise ValueError(f"{self.base_url!r} is not an https:// URL (http:// only on"
                             " loopback) - at `base_url`")
