"""The arithmetic of reports: percentiles, SLA states and compliance."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import datetime

from im.reports.model import Stats

MET = "met"
BREACHED = "breached"
PENDING = "pending"
UNMEASURED = "unmeasured"


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The `fraction` quantile with linear interpolation between the closest ranks (the
    method of numpy's default and of spreadsheets' PERCENTILE.INC): with 10 values, p90 lies
    1/10 of the way from the 9th to the 10th."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * fraction
    low, high = math.floor(rank), math.ceil(rank)
    # Rounded to the millisecond: no float noise such as 6696.000000000002 in the JSON.
    return round(ordered[low] + (ordered[high] - ordered[low]) * (rank - low), 3)


def stats(values: Iterable[float | None]) -> Stats:
    measured = [value for value in values if value is not None]
    return Stats(count=len(measured), median_seconds=percentile(measured, 0.5),
                 p90_seconds=percentile(measured, 0.9))


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


def sla_state(elapsed: float | None, target: float, started: datetime | None,
              now: datetime) -> str:
    """met or breached once measured; before that breached when the target has passed, else
    pending; unmeasured when the start is unknown."""
    if elapsed is not None:
        return MET if elapsed <= target else BREACHED
    if started is None:
        return UNMEASURED
    return BREACHED if (now - started).total_seconds() > target else PENDING


def compliance(states: Iterable[str]) -> tuple[int, int, int, float | None]:
    """(met, breached, pending, met / (met + breached) in percent, rounded to 0.01)."""
    values = list(states)
    met, breached, pending = (values.count(MET), values.count(BREACHED), values.count(PENDING))
    percent = round(100 * met / (met + breached), 2) if met + breached else None
    return met, breached, pending, percent
