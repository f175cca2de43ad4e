"""The SLA breaches notified (table sla_breaches): only breaches are stored, so each is
notified once; the timers themselves are derived from the incidents' times."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from im.storage.sqlite.database import ts


class SqliteBreaches:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def add(self, *, number: int, kind: str, started_at: datetime, due_at: datetime,
            target_seconds: float, severity: str, detected_at: datetime) -> bool:
        added = self.conn.execute(
            "INSERT INTO sla_breaches (number, kind, started_at, due_at, target_seconds,"
            " severity, detected_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (number, kind, ts(started_at), ts(due_at), target_seconds, severity,
             ts(detected_at))).rowcount == 1
        # the incident keeps which timer was breached: out of the index of those to check
        # (migration 0014), in the same transaction
        column = {"ack": "ack_breached_start", "resolve": "resolve_breached_start"}[kind]
        self.conn.execute(f"UPDATE incidents SET {column} = ? WHERE number = ?",
                          (ts(started_at), number))
        return added
