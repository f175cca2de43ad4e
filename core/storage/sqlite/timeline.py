"""What happened to each incident (table timeline)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from im.models import TimelineEvent, incident_number
from im.storage.sqlite.database import incident_id, parse_ts, ts


class SqliteTimeline:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def add(self, incident_id: str, *, at: datetime, kind: str, text: str, actor: str,
            system: str, data: dict[str, Any] | None = None) -> TimelineEvent:
        cursor = self.conn.execute(
            "INSERT INTO timeline (number, at, kind, text, actor, system, data)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (incident_number(incident_id), ts(at), kind, text, actor, system,
             json.dumps(data or {})),
        )
        assert cursor.lastrowid is not None
        return TimelineEvent(id=cursor.lastrowid, incident_id=incident_id, at=at, kind=kind,
                             text=text, actor=actor, system=system, data=data or {})

    def of_incident(self, incident_id: str) -> list[TimelineEvent]:
        return [
            TimelineEvent(id=row[0], incident_id=incident_id, at=parse_ts(row[1]),  # type: ignore[arg-type]
                          kind=row[2], text=row[3], actor=row[4], system=row[5],
                          data=json.loads(row[6]))
            for row in self.conn.execute(
                "SELECT id, at, kind, text, actor, system, data FROM timeline"
                " WHERE number = ? ORDER BY at, id", (incident_number(incident_id),),
            )
        ]

    def of_incidents(self, incident_ids: Sequence[str]) -> dict[str, list[TimelineEvent]]:
        # One parameter whatever the count (SQLite limits a statement's parameters).
        found: dict[str, list[TimelineEvent]] = {}
        for row in self.conn.execute(
                "SELECT id, number, at, kind, text, actor, system, data FROM timeline"
                " WHERE number IN (SELECT value FROM json_each(?)) ORDER BY number, at, id",
                (json.dumps([incident_number(i) for i in incident_ids]),)):
            incident = incident_id(row[1])
            found.setdefault(incident, []).append(TimelineEvent(
                id=row[0], incident_id=incident, at=parse_ts(row[2]),  # type: ignore[arg-type]
                kind=row[3], text=row[4], actor=row[5], system=row[6],
                data=json.loads(row[7])))
        return found
