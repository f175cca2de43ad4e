"""Incidents and their services (tables incidents, incident_services)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from im.models import Incident, Severity, Status, incident_number
from im.storage.sqlite.database import incident_id, parse_ts, ts

_COLUMNS = (
    "number, title, description, severity, status, assignee, fields, correlation_id,"
    " created_by, created_at, updated_at, mitigated_at, resolved_at, closed_at, reopened_at"
)
# What update() may set: the fields of an incident that change after it is declared.
_UPDATABLE = frozenset(("title", "description", "severity", "status", "assignee", "fields",
                        "mitigated_at", "resolved_at", "closed_at", "reopened_at"))


def _incident(row: Sequence[Any], services: list[str]) -> Incident:
    return Incident(
        id=incident_id(row[0]), title=row[1], description=row[2],
        severity=Severity(row[3]), status=Status(row[4]), assignee=row[5],
        fields=json.loads(row[6]), correlation_id=row[7], created_by=row[8],
        created_at=parse_ts(row[9]), updated_at=parse_ts(row[10]),  # type: ignore[arg-type]
        mitigated_at=parse_ts(row[11]), resolved_at=parse_ts(row[12]),
        closed_at=parse_ts(row[13]), reopened_at=parse_ts(row[14]),
        services=services,
    )


class SqliteIncidents:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def add(self, *, title: str, description: str, severity: Severity,
            services: Sequence[str], fields: dict[str, str], correlation_id: str,
            created_by: str, at: datetime) -> Incident:
        cursor = self.conn.execute(
            "INSERT INTO incidents (title, description, severity, status, fields,"
            " correlation_id, created_by, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (title, description, severity.value, Status.OPEN.value, json.dumps(fields),
             correlation_id, created_by, ts(at), ts(at)),
        )
        number = cursor.lastrowid
        assert number is not None
        self.conn.executemany(
            "INSERT INTO incident_services (number, position, service) VALUES (?, ?, ?)",
            [(number, i, service) for i, service in enumerate(services)],
        )
        incident = self.get(incident_id(number))
        assert incident is not None
        return incident

    def _select(self, where: str = "", params: Sequence[Any] = (),
                suffix: str = "") -> list[Incident]:
        rows = self.conn.execute(
            f"SELECT {_COLUMNS} FROM incidents {where} {suffix}", params
        ).fetchall()
        if not rows:
            return []
        numbers = [row[0] for row in rows]
        services: dict[int, list[str]] = {n: [] for n in numbers}
        # One parameter whatever the count: SQLite builds limit a statement's parameters
        # (32,766 by default), and there may be more incidents than that.
        for number, service in self.conn.execute(
            "SELECT number, service FROM incident_services WHERE number IN"
            " (SELECT value FROM json_each(?)) ORDER BY number, position",
            (json.dumps(numbers),),
        ):
            services[number].append(service)
        return [_incident(row, services[row[0]]) for row in rows]

    def get(self, incident_id: str) -> Incident | None:
        try:
            number = incident_number(incident_id)
        except ValueError:
            return None
        found = self._select("WHERE number = ?", (number,))
        return found[0] if found else None

    def by_correlation_id(self, correlation_id: str) -> Incident | None:
        found = self._select("WHERE correlation_id = ?", (correlation_id,))
        return found[0] if found else None

    def find(self, *, statuses: Sequence[Status] = (), severities: Sequence[Severity] = (),
             services: Sequence[str] = (), limit: int | None = None) -> list[Incident]:
        clauses: list[str] = []
        params: list[Any] = []
        if statuses:
            clauses.append(f"status IN ({','.join('?' * len(statuses))})")
            params += [s.value for s in statuses]
        if severities:
            clauses.append(f"severity IN ({','.join('?' * len(severities))})")
            params += [s.value for s in severities]
        if services:
            clauses.append(
                "number IN (SELECT number FROM incident_services WHERE lower(service) IN"
                f" ({','.join('?' * len(services))}))"
            )
            params += list(services)
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        suffix = "ORDER BY number DESC" + (f" LIMIT {int(limit)}" if limit else "")
        return self._select(where, params, suffix)

    def set_services(self, incident_id: str, at: datetime, services: Sequence[str]) -> None:
        number = incident_number(incident_id)
        self.conn.execute("DELETE FROM incident_services WHERE number = ?", (number,))
        self.conn.executemany(
            "INSERT INTO incident_services (number, position, service) VALUES (?, ?, ?)",
            [(number, i, service) for i, service in enumerate(services)])
        self.conn.execute("UPDATE incidents SET updated_at = ? WHERE number = ?",
                          (ts(at), number))

    def update(self, incident_id: str, at: datetime, **changes: Any) -> None:
        """Datetimes are stored in the stored time format."""
        unknown = set(changes) - _UPDATABLE
        if unknown:  # column names are written into the statement: only known ones
            raise ValueError(f"cannot update {', '.join(sorted(unknown))} of an incident")
        values = {k: ts(v) if isinstance(v, datetime) else v for k, v in changes.items()}
        values["updated_at"] = ts(at)
        assignments = ", ".join(f"{column} = ?" for column in values)
        self.conn.execute(f"UPDATE incidents SET {assignments} WHERE number = ?",
                          [*values.values(), incident_number(incident_id)])

    def sla_overdue(self, *, severity: Severity, statuses: Sequence[Status], kind: str,
                    started_before: datetime) -> list[Incident]:
        # The terms are those of the partial indexes incidents_ack_due and
        # incidents_resolve_due (migration 0014), word for word, so that SQLite uses them:
        # they hold only the incidents whose running timer of that kind was not breached.
        # (`statuses` are the ones the kind's timer runs in, as those indexes say.)
        condition = {
            "ack": "status = 'open'"
                   " AND ack_breached_start IS NOT coalesce(reopened_at, created_at)",
            "resolve": "status IN ('open', 'mitigated')"
                       " AND resolve_breached_start IS NOT coalesce(reopened_at, created_at)",
        }[kind]
        return self._select(
            f"WHERE {condition} AND severity = :severity"
            " AND coalesce(reopened_at, created_at) < :before",
            {"severity": severity.value, "before": ts(started_before)})

    def declared_page(self, start: datetime, end: datetime, *,
                      after: tuple[datetime, str] | None, limit: int) -> list[Incident]:
        """Stored times are UTC ISO text, so comparing text compares times. The page starts
        after the key (created_at, number) of the last incident of the page before: the
        index range (incidents_created, migration 0011) starts at that incident's time, so
        each page costs the same however far into the period it is (a row value
        `(created_at, number) > (?, ?)` beside `created_at >= :start` was read from the
        period's start at every page, and no OFFSET either)."""
        params: dict[str, Any] = {"start": ts(start), "end": ts(end), "limit": int(limit)}
        keyset = ""
        if after is not None:
            params["start"] = max(params["start"], ts(after[0]))
            params["after_number"] = incident_number(after[1])
            # incidents declared at that same moment come after it by number
            keyset = " AND (created_at > :start OR number > :after_number)"
        return self._select(
            "WHERE created_at >= :start AND created_at < :end" + keyset, params,
            "ORDER BY created_at, number LIMIT :limit")

    def count_by_status_and_severity(self) -> list[tuple[str, str, int]]:
        return self.conn.execute(
            # kept as incidents change (triggers of migration 0012): no incident is read
            "SELECT status, severity, n FROM incident_counts WHERE n > 0"
        ).fetchall()
