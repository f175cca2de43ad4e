"""Times, durations and ratios the way people read them (CLI output and reports)."""

from __future__ import annotations

from datetime import datetime


def when(value: datetime | None) -> str:
    """A time in the local time zone, to the second."""
    if value is None:
        return "-"
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def ago(value: datetime | None, now: datetime) -> str:
    """How long ago: 30s ago, 2m ago, 3h ago, 4d ago."""
    if value is None:
        return "never"
    seconds = int((now - value).total_seconds())
    if seconds < 0:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def duration(seconds: float) -> str:
    """45s, 12m, 2h05m, 3d4h."""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        hours, minutes = divmod(seconds // 60, 60)
        return f"{hours}h{minutes:02d}m" if minutes else f"{hours}h"
    days, hours = divmod(seconds // 3600, 24)
    return f"{days}d{hours}h" if hours else f"{days}d"


def percent(value: float) -> str:
    """0.994 -> 99.4%, 0.23 -> 23%, 0 -> 0%."""
    text = f"{value * 100:.1f}".rstrip("0").rstrip(".")
    return f"{text}%"
