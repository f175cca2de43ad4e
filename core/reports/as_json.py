"""The report as JSON: every figure and every incident, durations in seconds, times in ISO
8601 UTC. The other formats present the same data."""

from __future__ import annotations

import msgspec

from im.reports.model import Report


def render_json(report: Report) -> bytes:
    return msgspec.json.format(msgspec.json.encode(report), indent=2) + b"\n"
