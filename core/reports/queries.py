"""Read-only queries for reports: the incidents declared in a period with their services,
timelines and links, in four queries whatever the number of incidents.

They belong in the Store's interface; until they are there they live here, on its connection.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime
from typing import TYPE_CHECKING

import msgspec

from im.models import Incident, Link, Severity, Status, TimelineEvent
from im.storage import parse_ts, ts

if TYPE_CHECKING:
    from im.storage import Store

_IN_PERIOD = "SELECT number FROM incidents WHERE created_at >= :start AND created_at < :end"


class PeriodData(msgspec.Struct, frozen=True, kw_only=True):
    incidents: list[Incident]
    timelines: dict[str, list[TimelineEvent]]
    links: dict[str, list[Link]]


def _time(value: str | None) -> datetime:
    parsed = parse_ts(value)
    assert parsed is not None
    return parsed


def incidents_declared(store: Store, start: datetime, end: datetime) -> PeriodData:
    """Incidents declared in [start, end), oldest first, with their timelines and links.
    Stored times are UTC ISO text, so comparing text compares times."""
    conn = store.conn
    params = {"start": ts(start), "end": ts(end)}
    services: dict[int, list[str]] = defaultdict(list)
    for number, service in conn.execute(
            f"SELECT number, service FROM incident_services WHERE number IN ({_IN_PERIOD})"
            " ORDER BY number, position", params):
        services[number].append(service)
    incidents = [
        Incident(id=f"INC-{row[0]}", title=row[1], description=row[2],
                 severity=Severity(row[3]), status=Status(row[4]), assignee=row[5],
                 fields=json.loads(row[6]), correlation_id=row[7], created_by=row[8],
                 created_at=_time(row[9]), updated_at=_time(row[10]),
                 mitigated_at=parse_ts(row[11]), resolved_at=parse_ts(row[12]),
                 closed_at=parse_ts(row[13]), reopened_at=parse_ts(row[14]),
                 services=services[row[0]])
        for row in conn.execute(
            "SELECT number, title, description, severity, status, assignee, fields,"
            " correlation_id, created_by, created_at, updated_at, mitigated_at, resolved_at,"
            " closed_at, reopened_at FROM incidents"
            " WHERE created_at >= :start AND created_at < :end ORDER BY created_at, number",
            params)
    ]
    timelines: dict[str, list[TimelineEvent]] = {incident.id: [] for incident in incidents}
    for row in conn.execute(
            "SELECT id, number, at, kind, text, actor, system, data FROM timeline"
            f" WHERE number IN ({_IN_PERIOD}) ORDER BY number, at, id", params):
        incident_id = f"INC-{row[1]}"
        timelines[incident_id].append(TimelineEvent(
            id=row[0], incident_id=incident_id, at=_time(row[2]), kind=row[3], text=row[4],
            actor=row[5], system=row[6], data=json.loads(row[7])))
    links: dict[str, list[Link]] = {incident.id: [] for incident in incidents}
    for row in conn.execute(
            "SELECT number, connector, service, remote_id, remote_number, remote_url,"
            " remote_status, updated_at, remote_updated_at FROM links"
            f" WHERE number IN ({_IN_PERIOD}) ORDER BY number, connector, service", params):
        incident_id = f"INC-{row[0]}"
        links[incident_id].append(Link(
            incident_id=incident_id, connector=row[1], service=row[2], remote_id=row[3],
            remote_number=row[4], remote_url=row[5], remote_status=row[6],
            updated_at=parse_ts(row[7]), remote_updated_at=parse_ts(row[8])))
    return PeriodData(incidents=incidents, timelines=timelines, links=links)
