"""How a sandbox is started; the fields marked runtime can be changed under /_sandbox/config."""

from __future__ import annotations

from typing import Annotated

import msgspec

from im_pagerduty.sandbox.seed import SeedName

PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
Seconds = Annotated[float, msgspec.Meta(ge=0)]


class OperationLimit(msgspec.Struct, frozen=True, kw_only=True):
    limit: PositiveInt
    window_seconds: PositiveInt


# Limits of single operations beside the key's, by "METHOD /path". PagerDuty publishes 500 a
# minute for PUT /incidents; POST /incidents is "heavily rate limited ... human speed" with no
# number, so it is off unless a test sets one.
DEFAULT_OPERATION_LIMITS = {"PUT /incidents": OperationLimit(limit=500, window_seconds=60)}


class SandboxConfig(msgspec.Struct, frozen=True, kw_only=True):
    api_keys: tuple[str, ...]
    seed: SeedName = "demo"
    # runtime: requests per key per window (PagerDuty: 960 per minute)
    rate_limit: PositiveInt = 960
    rate_limit_window_seconds: PositiveInt = 60
    # runtime: waits between delivery attempts. PagerDuty retries for 48 hours; the sandbox
    # keeps the same behaviour on a short, configurable schedule.
    webhook_retry_delays: tuple[Seconds, ...] = (1.0, 2.0, 4.0, 8.0, 16.0)
    # runtime: PagerDuty expects a 2xx within 5 seconds
    webhook_timeout_seconds: Annotated[float, msgspec.Meta(gt=0)] = 5.0
    escalation_check_seconds: Annotated[float, msgspec.Meta(gt=0)] = 1.0
    web_url: str = "https://sandbox.pagerduty.invalid"
    # runtime: the account's time zone, which REST answers are rendered in unless a request
    # gives `time_zone` (webhook times are always UTC)
    time_zone: str = "UTC"
    # runtime: limits of single operations, checked after the key's
    operation_limits: dict[str, OperationLimit] = msgspec.field(
        default_factory=lambda: dict(DEFAULT_OPERATION_LIMITS))
    request_log_size: PositiveInt = 100_000
    # runtime: how far classic pagination reaches (offset + limit). PagerDuty's is 10,000; a
    # test may lower it to show listings that pass it without creating 10,000 records.
    offset_ceiling: Annotated[int, msgspec.Meta(ge=100)] = 10_000


class RuntimeSettings(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A PATCH of /_sandbox/config: only the fields given change."""

    rate_limit: PositiveInt | None = None
    rate_limit_window_seconds: PositiveInt | None = None
    webhook_retry_delays: tuple[Seconds, ...] | None = None
    webhook_timeout_seconds: Annotated[float, msgspec.Meta(gt=0)] | None = None
    time_zone: str | None = None
    operation_limits: dict[str, OperationLimit] | None = None
    offset_ceiling: Annotated[int, msgspec.Meta(ge=100)] | None = None


def apply_settings(config: SandboxConfig, changes: RuntimeSettings) -> SandboxConfig:
    from im_pagerduty.sandbox.times import zone

    given = {k: v for k, v in msgspec.structs.asdict(changes).items() if v is not None}
    if "time_zone" in given:
        zone(given["time_zone"])  # ValueError for an unknown zone
    return msgspec.structs.replace(config, **given)
