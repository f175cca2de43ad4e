"""The calls connectors made to their remote systems (table calls): the figures of
`im connector status`, `health`, `im metrics` and `/metrics` are computed from them."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from im.storage.sqlite.database import parse_ts, ts


class SqliteCalls:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def add(self, *, connector: str, at: datetime, method: str, path: str,
            status: int | None, duration_ms: float, error: str | None,
            rate_limit: int | None = None, rate_remaining: int | None = None) -> None:
        self.conn.execute(
            "INSERT INTO calls (connector, at, method, path, status, duration_ms, error,"
            " rate_limit, rate_remaining) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (connector, ts(at), method, path, status, duration_ms, error, rate_limit,
             rate_remaining))

    def counts_since(self, connector: str, since: datetime) -> tuple[int, int]:
        calls, errors = self.conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE error IS NOT NULL) FROM calls"
            " WHERE connector = ? AND at >= ?", (connector, ts(since))).fetchone()
        return int(calls), int(errors)

    def latest_status(self, connector: str) -> int | None:
        row = self.conn.execute("SELECT status FROM calls WHERE connector = ? ORDER BY at DESC,"
                                " id DESC LIMIT 1", (connector,)).fetchone()  # by the index
        return row[0] if row else None

    def latest_rate_limit(self, connector: str) -> int | None:
        # newest first in the index's order (connector, at): no sort of every call
        row = self.conn.execute("SELECT rate_limit FROM calls WHERE connector = ? AND"
                                " rate_limit IS NOT NULL ORDER BY at DESC LIMIT 1",
                                (connector,)).fetchone()
        return row[0] if row else None

    def last_error(self, connector: str) -> tuple[str, datetime] | None:
        row = self.conn.execute("SELECT error, at FROM calls WHERE connector = ? AND error IS"
                                " NOT NULL ORDER BY at DESC LIMIT 1", (connector,)).fetchone()
        return (row[0], parse_ts(row[1])) if row else None  # type: ignore[return-value]

    def purge(self, *, before: datetime) -> int:
        return self.conn.execute("DELETE FROM calls WHERE at < ?", (ts(before),)).rowcount
