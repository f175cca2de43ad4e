"""Bearer tokens of the HTTP API (table api_tokens): names and hashes, never the tokens."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from im.storage.sqlite.database import parse_ts, ts


class SqliteTokens:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def add(self, *, name: str, hash: str, read_only: bool, created_at: datetime) -> bool:
        return self.conn.execute(
            "INSERT INTO api_tokens (name, hash, read_only, created_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (name) DO NOTHING",
            (name, hash, int(read_only), ts(created_at))).rowcount == 1

    def replace_hash(self, name: str, hash: str) -> bool:
        return self.conn.execute("UPDATE api_tokens SET hash = ? WHERE name = ?",
                                 (hash, name)).rowcount == 1

    def delete(self, name: str) -> bool:
        return self.conn.execute("DELETE FROM api_tokens WHERE name = ?",
                                 (name,)).rowcount == 1

    def all(self) -> list[tuple[str, bool, datetime]]:
        return [(name, bool(read_only), parse_ts(created))  # type: ignore[misc]
                for name, read_only, created in self.conn.execute(
                    "SELECT name, read_only, created_at FROM api_tokens ORDER BY name")]

    def by_hash(self, hash: str) -> tuple[str, bool] | None:
        row = self.conn.execute("SELECT name, read_only FROM api_tokens WHERE hash = ?",
                                (hash,)).fetchone()
        return (row[0], bool(row[1])) if row else None
