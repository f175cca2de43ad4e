"""Time as PagerDuty writes it, and the sandbox clock that tests can move forward."""

from __future__ import annotations

import contextvars
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# The time zone REST answers are rendered in: the request's `time_zone`, else the account's
# (PagerDuty: "Time zone in which results will be rendered. This will default to the account
# time zone."). Set per request by the sandbox's edge.
rendering_zone: contextvars.ContextVar[tzinfo] = contextvars.ContextVar("rendering_zone",
                                                                        default=UTC)


def zone(name: str) -> tzinfo:
    """An IANA time zone by name (ValueError for an unknown one)."""
    if name in ("UTC", "Etc/UTC"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder, a long name
        raise ValueError(f"unknown time zone {name!r}") from None


def format_utc_time(moment: datetime) -> str:
    """Webhook payloads' REST-style times: always UTC, whatever zone a request renders in."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_time(moment: datetime) -> str:
    """REST timestamps: whole seconds, `2015-10-06T21:30:42Z` in UTC, or with the offset of
    the zone the answer is rendered in, `2015-10-06T15:30:42-06:00`."""
    where = rendering_zone.get()
    if where is UTC:
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return moment.astimezone(where).replace(microsecond=0).isoformat()


def format_event_time(moment: datetime) -> str:
    """Webhook `occurred_at`: milliseconds in UTC, `2025-04-07T03:47:13.414Z`."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_time(text: str) -> datetime:
    """ISO 8601 as clients send it; a time without an offset is taken as UTC.

    Raises ValueError for anything else, which callers turn into PagerDuty's error.
    """
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


class Clock:
    """Wall-clock UTC plus an offset, so tests can reach a 15-minute escalation in no time."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> datetime:
        self.offset += timedelta(seconds=seconds)
        return self.now()
