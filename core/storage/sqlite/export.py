"""An SQLite database read out table by table, for `im db copy`: one read-only connection in
one read transaction, so every table is read as it was at one moment while `im serve` or the
CLI go on writing, and rows come in batches, so memory stays bounded whatever the size."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# im's data, each table after those it references. Not among them: the migrations (each store
# has its own) and the kept counts (KEPT_COUNTS), which a store keeps from the rows it holds.
TABLES = ["incidents", "incident_services", "timeline", "connectors", "links", "outbox",
          "inbox", "sync_cursors", "calls", "logs", "sla_breaches", "api_tokens", "meta",
          "workflows", "workflow_runs"]

# The counts kept by triggers: a count that went back to 0 keeps its row (SQLite and
# PostgreSQL alike), so two databases holding the same rows agree on the counts that are not 0.
KEPT_COUNTS = ["incident_counts", "linked_incidents", "outbox_counts", "inbox_counts"]


class SqliteExport:
    """`with SqliteExport(path) as source:` the tables of the im database at `path`, read
    only."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None

    def __enter__(self) -> SqliteExport:
        conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True,
                               isolation_level=None)
        conn.execute("BEGIN")  # one snapshot for every table (WAL: writers go on)
        conn.execute("SELECT count(*) FROM migrations")  # the snapshot starts at the first read
        self._conn = conn
        return self

    def __exit__(self, *exc: object) -> None:
        if self._conn is not None:
            self._conn.execute("ROLLBACK")
            self._conn.close()
            self._conn = None

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("SqliteExport used outside its `with` block")
        return self._conn

    def columns(self, table: str) -> list[str]:
        return [row[1] for row in self.conn.execute(f'PRAGMA table_info("{table}")')]

    def count(self, table: str) -> int:
        return int(self.conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])

    def rows(self, table: str, columns: list[str], batch_size: int = 1000
             ) -> Iterator[list[tuple[Any, ...]]]:
        """The table's rows, `columns` of each, `batch_size` rows at a time."""
        names = ", ".join(f'"{name}"' for name in columns)
        cursor = self.conn.execute(f'SELECT {names} FROM "{table}"')
        while batch := cursor.fetchmany(batch_size):
            yield batch

    def kept_counts(self, table: str) -> set[tuple[Any, ...]]:
        """The counts of a KEPT_COUNTS table that are not 0."""
        return set(self.conn.execute(f'SELECT * FROM "{table}" WHERE n <> 0'))

    def last_ids(self) -> dict[str, int]:
        """The last number each AUTOINCREMENT table gave (never given again, even where that
        row is gone, such as a purged delivery)."""
        return {name: int(seq) for name, seq in
                self.conn.execute("SELECT name, seq FROM sqlite_sequence")}
