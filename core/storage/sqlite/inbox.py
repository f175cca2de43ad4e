"""Raw inbound events (table inbox): stored before a webhook is answered, applied after.

An event goes pending -> processing (claimed, with a lease) -> done | quarantined. Storing and
claiming are the webhook hot path: every read here searches an index (a test checks the plans).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec

from im.storage.records import InboxRow, InboxStatus
from im.storage.sqlite.database import lease_end, parse_ts, ts

if TYPE_CHECKING:
    from im.storage.interfaces import InboundEventRow

_COLUMNS = ("id, connector, delivery_id, event_type, body, received_at, status, attempts,"
            " error")
PENDING, PROCESSING = InboxStatus.PENDING.value, InboxStatus.PROCESSING.value
DONE, QUARANTINED = InboxStatus.DONE.value, InboxStatus.QUARANTINED.value
# a dict lookup per row read: calling the enum costs a microsecond each, on the webhook path
_STATUS = {status.value: status for status in InboxStatus}


def _row(row: Sequence[Any]) -> InboxRow:
    return InboxRow(id=row[0], connector=row[1], delivery_id=row[2], event_type=row[3],
                    body=bytes(row[4]), received_at=parse_ts(row[5]),  # type: ignore[arg-type]
                    status=_STATUS[row[6]], attempts=row[7], error=row[8])


class SqliteInbox:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def add_many(self, events: Sequence[InboundEventRow]) -> list[bool]:
        """Two statements per batch, not one per event: this is the webhook hot path."""
        keys = [(e[0], e[1]) for e in events]
        by_connector: dict[str, list[str]] = {}
        for connector, delivery_id in keys:
            by_connector.setdefault(connector, []).append(delivery_id)
        existing: set[tuple[str, str]] = set()
        # `connector = ? AND delivery_id IN (...)` searches the unique index; a row-value
        # `(connector, delivery_id) IN (VALUES ...)` would scan all of it, every batch.
        for connector, ids in by_connector.items():
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                existing.update((connector, row[0]) for row in self.conn.execute(
                    "SELECT delivery_id FROM inbox WHERE connector = ? AND delivery_id IN"
                    f" ({','.join('?' * len(chunk))})", [connector, *chunk]))
        new, fresh = [], []
        for event, key in zip(events, keys, strict=True):
            is_new = key not in existing
            if is_new:
                existing.add(key)  # a duplicate within the batch is a duplicate too
                fresh.append((event[0], event[1], event[2], event[3], ts(event[4])))
            new.append(is_new)
        self.conn.executemany(
            "INSERT INTO inbox (connector, delivery_id, event_type, body, received_at)"
            " VALUES (?, ?, ?, ?, ?)", fresh)
        return new

    def claim(self, *, now: datetime, lease_seconds: float, connector: str | None = None,
              limit: int = 1, exclude: Sequence[str] = ()) -> list[InboxRow]:
        params: dict[str, Any] = {"now": ts(now), "limit": limit,
                                  "lease": lease_end(now, lease_seconds)}
        extra = ""
        if connector is not None:
            extra = " AND connector = :connector"
            params["connector"] = connector
        if exclude:  # connectors waiting this pass out: a few names, never one per row
            names = {f"x{n}": name for n, name in enumerate(exclude)}
            extra += f" AND connector NOT IN ({', '.join(':' + key for key in names)})"
            params.update(names)
        # Two index-ordered reads of `limit` rows each, merged: one query with OR would
        # sort every pending row on each claim, which a burst of webhooks makes many.
        rows = sorted(self.conn.execute(
            f"SELECT {_COLUMNS} FROM inbox WHERE status = '{PENDING}'{extra}"
            " ORDER BY id LIMIT :limit", params).fetchall() + self.conn.execute(
            f"SELECT {_COLUMNS} FROM inbox WHERE status = '{PROCESSING}'"
            f" AND lease_until < :now{extra} ORDER BY id LIMIT :limit", params,
        ).fetchall())[:limit]
        self.conn.executemany(f"UPDATE inbox SET status = '{PROCESSING}', lease_until = :lease,"
                              " attempts = attempts + 1 WHERE id = :id",
                              [{**params, "id": row[0]} for row in rows])
        return [msgspec.structs.replace(claimed, status=InboxStatus.PROCESSING,
                                        attempts=claimed.attempts + 1)
                for claimed in map(_row, rows)]

    def release(self, row_ids: Sequence[int]) -> None:
        self.conn.executemany(f"UPDATE inbox SET status = '{PENDING}', lease_until = NULL"
                              " WHERE id = ?", [(row_id,) for row_id in row_ids])

    def finish(self, row_id: int, *, at: datetime,
               status: InboxStatus | str = InboxStatus.DONE, error: str | None = None,
               attempt: int | None = None) -> bool:
        # with an attempt, only while that claim holds the event
        return self.conn.execute(
            "UPDATE inbox SET status = ?, error = ?, processed_at = ?, lease_until = NULL"
            f" WHERE id = ? AND (? IS NULL OR (status = '{PROCESSING}' AND attempts = ?))",
            (status, error, ts(at), row_id, attempt, attempt)).rowcount == 1

    def requeue_quarantined(self, *, connector: str, ids: Sequence[int] = ()) -> int:
        extra = f" AND id IN ({','.join(str(int(i)) for i in ids)})" if ids else ""
        return self.conn.execute(f"UPDATE inbox SET status = '{PENDING}', error = NULL,"
                                 " lease_until = NULL WHERE connector = ? AND"
                                 f" status = '{QUARANTINED}'{extra}", (connector,)).rowcount

    def find(self, *, connector: str | None = None,
             statuses: Sequence[InboxStatus | str] = ()) -> list[InboxRow]:
        clauses: list[str] = []
        params: list[Any] = []
        if connector is not None:
            clauses.append("connector = ?")
            params.append(connector)
        if statuses:
            clauses.append(f"status IN ({','.join('?' * len(statuses))})")
            params += statuses
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        return [_row(row) for row in self.conn.execute(
            f"SELECT {_COLUMNS} FROM inbox {where} ORDER BY id", params)]

    def purge_done(self, *, received_before: datetime) -> int:
        return self.conn.execute(f"DELETE FROM inbox WHERE status = '{DONE}' AND"
                                 " received_at < ?", (ts(received_before),)).rowcount

    def quarantined_count(self, connector: str, *, received_since: datetime | None = None
                          ) -> int:
        if received_since is None:  # kept as rows change (migration 0012)
            row = self.conn.execute("SELECT coalesce(sum(n), 0) FROM inbox_counts WHERE"
                                    f" connector = ? AND status = '{QUARANTINED}'",
                                    (connector,)).fetchone()
        else:  # through inbox_received: the day's events only
            row = self.conn.execute(
                f"SELECT count(*) FROM inbox WHERE connector = ? AND status = '{QUARANTINED}'"
                " AND received_at >= ?", (connector, ts(received_since))).fetchone()
        return int(row[0])

    def received_count(self, connector: str, *, since: datetime) -> int:
        return int(self.conn.execute("SELECT count(*) FROM inbox WHERE connector = ? AND"
                                     " received_at >= ?", (connector, ts(since))).fetchone()[0])

    def last_received_at(self, connector: str) -> datetime | None:
        return parse_ts(self.conn.execute("SELECT max(received_at) FROM inbox WHERE"
                                          " connector = ?", (connector,)).fetchone()[0])

    def last_processed_at(self, connector: str) -> datetime | None:
        # the newest entry of inbox_processed (a partial index of this WHERE)
        return parse_ts(self.conn.execute(
            f"SELECT max(processed_at) FROM inbox WHERE connector = ? AND status = '{DONE}'",
            (connector,)).fetchone()[0])

    def count_by_connector_and_status(self) -> list[tuple[str, str, int]]:
        return self.conn.execute(
            # kept as rows change (triggers of migration 0012): no row is read
            "SELECT connector, status, n FROM inbox_counts WHERE n > 0"
        ).fetchall()
