"""Time as PagerDuty writes it, and the sandbox clock that tests can move forward."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def format_time(moment: datetime) -> str:
    """REST timestamps: whole seconds in UTC, `2015-10-06T21:30:42Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
