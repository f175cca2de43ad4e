"""Local changes waiting to be pushed to connectors (table outbox).

A row goes pending -> delivering (claimed, with a lease) -> done | failed; a claim whose lease
ran out (a crashed worker's) is claimed again.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec

from im.models import incident_number
from im.storage.records import OutboxRow, OutboxStatus
from im.storage.sqlite.database import incident_id, lease_end, parse_ts, ts

_COLUMNS = ("id, connector, number, service, action, payload, status, attempts,"
            " next_attempt_at, last_error, created_at, lease_until, origin_system")
PENDING, DELIVERING = OutboxStatus.PENDING.value, OutboxStatus.DELIVERING.value
DONE, FAILED = OutboxStatus.DONE.value, OutboxStatus.FAILED.value
# a claim's own update: only while that claim holds the row (its attempt), when one is given
_HELD = f" AND (? IS NULL OR (status = '{DELIVERING}' AND attempts = ?))"
# a dict lookup per row read: calling the enum costs a microsecond each
_STATUS = {status.value: status for status in OutboxStatus}


def _row(row: Sequence[Any]) -> OutboxRow:
    return OutboxRow(id=row[0], connector=row[1], incident_id=incident_id(row[2]),
                     service=row[3], action=row[4], payload=json.loads(row[5]),
                     status=_STATUS[row[6]], attempts=row[7],
                     next_attempt_at=parse_ts(row[8]),  # type: ignore[arg-type]
                     last_error=row[9], created_at=parse_ts(row[10]),  # type: ignore[arg-type]
                     lease_until=parse_ts(row[11]), origin_system=row[12])


class SqliteOutbox:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def add(self, *, connector: str, incident_id: str, service: str, action: str,
            payload: dict[str, Any], at: datetime, origin_system: str | None = None) -> None:
        self.conn.execute(
            "INSERT INTO outbox (connector, number, service, action, payload, next_attempt_at,"
            " created_at, origin_system) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (connector, incident_number(incident_id), service, action, json.dumps(payload),
             ts(at), ts(at), origin_system),
        )

    def claim_next(self, *, now: datetime, lease_seconds: float,
                   connector: str | None = None, incident_id: str | None = None,
                   due_only: bool = True, exclude: Sequence[int] = ()) -> OutboxRow | None:
        claimable = (f"(o.status = '{PENDING}' OR (o.status = '{DELIVERING}'"
                     " AND o.lease_until < :now))")
        # the partial index outbox_claimable's own condition, word for word: it holds only
        # the rows still to deliver, so a claim never reads the delivered ones
        clauses = [claimable, f"o.status IN ('{PENDING}', '{DELIVERING}')"]
        if due_only:
            clauses.append(f"(o.status = '{DELIVERING}' OR o.next_attempt_at <= :now)")
        params: dict[str, Any] = {"now": ts(now)}
        if connector is not None:
            clauses.append("o.connector = :connector")
            params["connector"] = connector
        if incident_id is not None:
            clauses.append("o.number = :number")
            params["number"] = incident_number(incident_id)
        if exclude:
            clauses.append(f"o.id NOT IN ({','.join(str(int(i)) for i in exclude)})")
        params["lease"] = lease_end(now, lease_seconds)
        row = self.conn.execute(
            f"SELECT {_COLUMNS} FROM outbox o WHERE {' AND '.join(clauses)}"
            " AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.connector = o.connector"
            " AND e.number = o.number AND e.id < o.id"
            f" AND e.status IN ('{PENDING}', '{DELIVERING}'))"
            " ORDER BY o.next_attempt_at, o.id LIMIT 1", params,
        ).fetchone()
        if row is None:
            return None
        self.conn.execute(
            f"UPDATE outbox SET status = '{DELIVERING}', lease_until = :lease,"
            " attempts = attempts + 1 WHERE id = :id", {**params, "id": row[0]},
        )
        claimed = _row(row)
        return msgspec.structs.replace(claimed, status=OutboxStatus.DELIVERING,
                                       attempts=claimed.attempts + 1,
                                       lease_until=parse_ts(params["lease"]))

    def finish(self, row_id: int, *, at: datetime, attempt: int | None = None) -> bool:
        return self.conn.execute(f"UPDATE outbox SET status = '{DONE}', done_at = ?,"
                                 " lease_until = NULL, last_error = NULL WHERE id = ?"
                                 + _HELD, (ts(at), row_id, attempt, attempt)).rowcount == 1

    def retry(self, row_id: int, *, error: str, next_attempt_at: datetime,
              attempt: int | None = None) -> bool:
        return self.conn.execute(f"UPDATE outbox SET status = '{PENDING}', lease_until = NULL,"
                                 " last_error = ?, next_attempt_at = ? WHERE id = ?" + _HELD,
                                 (error, ts(next_attempt_at), row_id, attempt,
                                  attempt)).rowcount == 1

    def release(self, row_id: int, *, at: datetime) -> None:
        self.conn.execute(f"UPDATE outbox SET status = '{PENDING}', lease_until = NULL,"
                          f" next_attempt_at = ? WHERE id = ? AND status = '{DELIVERING}'",
                          (ts(at), row_id))

    def fail(self, row_id: int, *, error: str, at: datetime,
             attempt: int | None = None) -> bool:
        return self.conn.execute(f"UPDATE outbox SET status = '{FAILED}', lease_until = NULL,"
                                 " last_error = ?, done_at = ? WHERE id = ?" + _HELD,
                                 (error, ts(at), row_id, attempt, attempt)).rowcount == 1

    def requeue_failed(self, *, connector: str, at: datetime,
                       incident_id: str | None = None) -> int:
        extra = ""
        params: list[Any] = [ts(at), connector]
        if incident_id is not None:
            extra = " AND number = ?"
            params.append(incident_number(incident_id))
        return self.conn.execute(f"UPDATE outbox SET status = '{PENDING}', attempts = 0,"
                                 " next_attempt_at = ?, done_at = NULL WHERE connector = ?"
                                 f" AND status = '{FAILED}'{extra}", params).rowcount

    def find(self, *, connector: str | None = None,
             statuses: Sequence[OutboxStatus | str] = (),
             incident_id: str | None = None) -> list[OutboxRow]:
        clauses: list[str] = []
        params: list[Any] = []
        if connector is not None:
            clauses.append("connector = ?")
            params.append(connector)
        if statuses:
            clauses.append(f"status IN ({','.join('?' * len(statuses))})")
            params += statuses
        if incident_id is not None:
            clauses.append("number = ?")
            params.append(incident_number(incident_id))
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        return [_row(row) for row in self.conn.execute(
            f"SELECT {_COLUMNS} FROM outbox {where} ORDER BY id", params)]

    def move_service(self, *, connector: str, incident_id: str, service: str,
                     to: str) -> None:
        self.conn.execute(f"UPDATE outbox SET service = ? WHERE connector = ? AND number = ?"
                          f" AND service = ? AND status = '{PENDING}'",
                          (to, connector, incident_number(incident_id), service))

    def discard_queued(self, connector: str) -> None:
        self.conn.execute("DELETE FROM outbox WHERE connector = ? AND status IN"
                          f" ('{PENDING}', '{DELIVERING}')", (connector,))

    def queued_waiting_and_failed(self, connector: str, *,
                                  waiting_since: datetime | None = None
                                  ) -> tuple[int, int, int]:
        """How many are queued and failed from outbox_counts (kept as rows change, by the
        triggers of migration 0012); those waiting since before then through
        outbox_connector_status (connector, status, created_at): only they are read."""
        queued, failed = self.conn.execute(
            f"SELECT coalesce(sum(n) FILTER (WHERE status IN ('{PENDING}', '{DELIVERING}')), 0),"
            f" coalesce(sum(n) FILTER (WHERE status = '{FAILED}'), 0) FROM outbox_counts"
            " WHERE connector = ?", (connector,)).fetchone()
        waiting = 0
        if waiting_since is not None:
            waiting = self.conn.execute(
                "SELECT count(*) FROM outbox WHERE connector = ? AND status IN"
                f" ('{PENDING}', '{DELIVERING}') AND created_at < ?",
                (connector, ts(waiting_since))).fetchone()[0]
        return int(queued), int(waiting), int(failed)

    def delivery_figures_since(self, connector: str, since: datetime
                               ) -> tuple[int, int, float | None]:
        done, attempts, average = self.conn.execute(
            f"SELECT count(*) FILTER (WHERE status = '{DONE}'), coalesce(sum(attempts), 0),"
            f" avg(CASE WHEN status = '{DONE}' THEN (julianday(done_at) - julianday(created_at))"
            " * 86400 END) FROM outbox WHERE connector = :c AND created_at >= :since"
            f" AND status IN ('{DONE}', '{FAILED}')",
            {"c": connector, "since": ts(since)}).fetchone()
        return int(done), int(attempts), average

    def purge_done(self, *, done_before: datetime) -> int:
        # Through outbox_done (status, done_at), the hourly purge reads only the rows past
        # their time: of those, each connector's latest stays (one row at most, so that a
        # connector idle for longer still knows when it last delivered).
        return self.conn.execute(
            f"DELETE FROM outbox WHERE status = '{DONE}' AND done_at < :before AND id NOT IN"
            f" (SELECT max(id) FROM outbox WHERE status = '{DONE}' AND done_at < :before"
            " GROUP BY connector)", {"before": ts(done_before)}).rowcount

    def last_delivered_at(self, connector: str) -> datetime | None:
        # the newest entry of outbox_delivered (a partial index of this WHERE)
        row = self.conn.execute("SELECT max(done_at) FROM outbox WHERE connector = ? AND"
                                f" status = '{DONE}'", (connector,)).fetchone()
        return parse_ts(row[0])

    def last_error(self, connector: str) -> tuple[str, datetime] | None:
        row = self.conn.execute(
            "SELECT last_error, coalesce(done_at, next_attempt_at) AS at FROM outbox"
            " WHERE connector = ? AND last_error IS NOT NULL ORDER BY at DESC LIMIT 1",
            (connector,)).fetchone()
        return (row[0], parse_ts(row[1])) if row else None  # type: ignore[return-value]

    def count_by_connector_and_status(self) -> list[tuple[str, str, int]]:
        return self.conn.execute(
            # kept as rows change (triggers of migration 0012): no row is read
            "SELECT connector, status, n FROM outbox_counts WHERE n > 0"
        ).fetchall()
