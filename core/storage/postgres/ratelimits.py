"""Rate-limit windows kept in the PostgreSQL database (table rate_windows): a `limits` storage,
so that every server of a cluster (and every command) spends one budget per remote account,
not one each. Counts change in one statement each, outside the writers' lock; times are the
database server's, so the servers' clocks need not agree."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import psycopg
from limits.storage import Storage

if TYPE_CHECKING:
    from im.storage.postgres.database import PostgresStore

_NOW = "extract(epoch FROM clock_timestamp())"


class PostgresRateStorage(Storage):
    """Fixed windows (`limits.strategies.FixedWindowRateLimiter`): a count per key that
    starts afresh when its window has run out."""

    STORAGE_SCHEME = None  # made by the store, never from a URL

    def __init__(self, store: PostgresStore) -> None:
        super().__init__()
        self._store = store

    @property
    def base_exceptions(self) -> type[Exception]:
        return psycopg.Error

    def _execute(self, query: str, params: dict[str, object]) -> list[tuple]:
        with self._store.pool.connection() as conn:
            return conn.execute(query, params).fetchall()

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        return int(self._execute(
            f"INSERT INTO rate_windows (key, n, expires_at) VALUES (%(key)s, %(amount)s,"
            f" {_NOW} + %(expiry)s) ON CONFLICT (key) DO UPDATE SET"
            f" n = CASE WHEN rate_windows.expires_at <= {_NOW} THEN %(amount)s"
            " ELSE rate_windows.n + %(amount)s END,"
            f" expires_at = CASE WHEN rate_windows.expires_at <= {_NOW}"
            f" THEN {_NOW} + %(expiry)s ELSE rate_windows.expires_at END RETURNING n",
            {"key": key, "amount": amount, "expiry": expiry})[0][0])

    def get(self, key: str) -> int:
        rows = self._execute(f"SELECT n FROM rate_windows WHERE key = %(key)s AND"
                             f" expires_at > {_NOW}", {"key": key})
        return int(rows[0][0]) if rows else 0

    def get_expiry(self, key: str) -> float:
        """When the key's window runs out, by this host's clock (`time.time()`), which limits
        compares it with: the seconds left by the database's clock, from now here. A host
        whose clock is off by minutes waits the right time all the same."""
        rows = self._execute(f"SELECT greatest(expires_at - {_NOW}, 0) FROM rate_windows"
                             " WHERE key = %(key)s", {"key": key})
        return time.time() + (float(rows[0][0]) if rows else 0.0)

    def check(self) -> bool:
        try:
            self._execute("SELECT 1", {})
        except psycopg.Error:
            return False
        return True

    def reset(self) -> int | None:
        return len(self._execute("DELETE FROM rate_windows RETURNING key", {}))

    def clear(self, key: str) -> None:
        self._execute("DELETE FROM rate_windows WHERE key = %(key)s RETURNING key",
                      {"key": key})
