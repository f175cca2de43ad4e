"""Keys seen once, until they expire (table seen_keys): what `Runtime.first_time` records."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from im.storage.sqlite.database import ts


class SqliteSeenKeys:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def add(self, key: str, *, now: datetime, expires_at: datetime) -> bool:
        # a key whose time ran out (not purged yet) is taken as new, and kept anew
        return self.conn.execute(
            "INSERT INTO seen_keys (key, expires_at) VALUES (?, ?) ON CONFLICT (key)"
            " DO UPDATE SET expires_at = excluded.expires_at WHERE seen_keys.expires_at <= ?",
            (key, ts(expires_at), ts(now))).rowcount == 1

    def purge(self, *, before: datetime) -> int:
        return self.conn.execute("DELETE FROM seen_keys WHERE expires_at < ?",
                                 (ts(before),)).rowcount
