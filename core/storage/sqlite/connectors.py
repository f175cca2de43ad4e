"""Configured connectors (table connectors): their settings as entered, secrets included."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from im.models import ConnectorRecord
from im.storage.sqlite.database import parse_ts, ts

_SELECT = "SELECT name, type, settings, enabled, created_at, updated_at FROM connectors"


def _record(row: Sequence[Any]) -> ConnectorRecord:
    return ConnectorRecord(name=row[0], type=row[1], settings=json.loads(row[2]),
                           enabled=bool(row[3]), created_at=parse_ts(row[4]),  # type: ignore[arg-type]
                           updated_at=parse_ts(row[5]))  # type: ignore[arg-type]


class SqliteConnectors:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def save(self, record: ConnectorRecord) -> None:
        self.conn.execute(
            "INSERT INTO connectors (name, type, settings, enabled, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET"
            " type = excluded.type, settings = excluded.settings,"
            " enabled = excluded.enabled, updated_at = excluded.updated_at",
            (record.name, record.type, json.dumps(record.settings), int(record.enabled),
             ts(record.created_at), ts(record.updated_at)),
        )

    def get(self, name: str) -> ConnectorRecord | None:
        row = self.conn.execute(f"{_SELECT} WHERE name = ?", (name,)).fetchone()
        return _record(row) if row else None

    def all(self) -> list[ConnectorRecord]:
        return [_record(row) for row in self.conn.execute(f"{_SELECT} ORDER BY name")]

    def delete(self, name: str) -> None:
        self.conn.execute("DELETE FROM connectors WHERE name = ?", (name,))
