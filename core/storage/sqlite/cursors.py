"""Where each connector's last poll stopped (table sync_cursors)."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from im.storage.sqlite.database import parse_ts, ts


class SqliteCursors:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def get(self, connector: str) -> str | None:
        row = self.conn.execute("SELECT cursor FROM sync_cursors WHERE connector = ?",
                                (connector,)).fetchone()
        return row[0] if row else None

    def set(self, connector: str, cursor: str, *, at: datetime) -> None:
        self.conn.execute("INSERT INTO sync_cursors (connector, cursor, updated_at)"
                          " VALUES (?, ?, ?) ON CONFLICT (connector) DO UPDATE SET"
                          " cursor = excluded.cursor, updated_at = excluded.updated_at",
                          (connector, cursor, ts(at)))

    def delete(self, connector: str) -> None:
        self.conn.execute("DELETE FROM sync_cursors WHERE connector = ?", (connector,))

    def updated_at(self, connector: str) -> datetime | None:
        row = self.conn.execute("SELECT updated_at FROM sync_cursors WHERE connector = ?",
                                (connector,)).fetchone()
        return parse_ts(row[0]) if row else None
