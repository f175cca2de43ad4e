"""The time of day in UTC: the default clock of a Runtime (tests pass their own)."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
