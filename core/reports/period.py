"""The period a report covers: whole days in UTC, both ends included."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import msgspec

from im.errors import InvalidInputError

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class Period(msgspec.Struct, frozen=True, kw_only=True):
    start: date
    end: date  # the last day, included

    @property
    def start_at(self) -> datetime:
        return datetime(self.start.year, self.start.month, self.start.day, tzinfo=UTC)

    @property
    def end_at(self) -> datetime:
        """The first moment after the period (midnight UTC after its last day)."""
        return datetime(self.end.year, self.end.month, self.end.day, tzinfo=UTC) + timedelta(
            days=1)

    def days(self) -> Iterator[date]:
        day = self.start
        while day <= self.end:
            yield day
            day += timedelta(days=1)

    def __str__(self) -> str:
        return f"{self.start.isoformat()} to {self.end.isoformat()}"


MAX_DAYS = 732  # two years, leap day included


def parse_day(value: str, option: str) -> date:
    text = value.strip()
    # date.fromisoformat alone also takes 20250801 and week dates: one spelling is clearer.
    if _DATE.match(text):
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
    raise InvalidInputError(f"invalid {option} date {value!r}: write YYYY-MM-DD,"
                            " e.g. 2025-08-01")


def parse_period(start: str, end: str) -> Period:
    """The period from --start to --end, both days included; InvalidInputError when either is
    not a date or the end comes before the start."""
    first, last = parse_day(start, "--start"), parse_day(end, "--end")
    if last < first:
        raise InvalidInputError(f"the period ends ({last.isoformat()}) before it starts"
                                f" ({first.isoformat()}): --end must be on or after --start")
    if last >= date.max:  # the period's end is the next midnight, which must exist
        raise InvalidInputError(f"invalid --end date {end!r}: the last day must be before"
                                f" {date.max.isoformat()}")
    if (last - first).days + 1 > MAX_DAYS:
        # A report has a row (and a chart bar) per day: a mistyped year would run for minutes.
        raise InvalidInputError(f"the period {first.isoformat()} to {last.isoformat()} is"
                                f" longer than {MAX_DAYS} days; report on a shorter one")
    return Period(start=first, end=last)
