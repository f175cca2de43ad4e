"""Small values of the installation (table meta): its id, the public URLs given, a
connector's last poll when it failed."""

from __future__ import annotations

import sqlite3


class SqliteMeta:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def get(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set(self, key: str, value: str) -> None:
        self.conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key)"
                          " DO UPDATE SET value = excluded.value", (key, value))

    def pop(self, key: str) -> str | None:
        row = self.conn.execute("DELETE FROM meta WHERE key = ? RETURNING value",
                                (key,)).fetchone()
        return row[0] if row else None
