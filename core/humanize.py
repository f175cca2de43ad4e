"""Times, durations, ratios and text the way people read them (CLI output and reports)."""

from __future__ import annotations

import re
from datetime import datetime

# C0 and C1 control characters and DEL: in text from outside (a webhook's actor, a remote
# URL, a custom field) they could move the cursor, write the clipboard (OSC 52), hide a link
# (OSC 8) or overwrite a line (CR) on the terminal of whoever reads it.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROLS_BUT_LINES = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str, *, lines: bool = False) -> str:
    """`text` without control characters, fit to print on a terminal or in a report: each is
    dropped (a tab or line break becomes a space), or with `lines` line breaks and tabs stay."""
    if text.isprintable():
        return text
    if lines:
        return _CONTROLS_BUT_LINES.sub("", text)
    return _CONTROLS.sub(lambda m: " " if m.group() in "\t\n" else "", text)


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


def size(count: int) -> str:
    """Bytes as people read them: 512 B, 40 KiB, 3.2 MiB, 1.1 GiB."""
    if count < 1024:
        return f"{count} B"
    if count < 1024 ** 2:
        return f"{count / 1024:.0f} KiB"
    if count < 1024 ** 3:
        return f"{count / 1024 ** 2:.1f} MiB"
    return f"{count / 1024 ** 3:.1f} GiB"
