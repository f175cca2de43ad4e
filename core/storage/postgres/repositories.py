"""The repositories of the PostgreSQL store, one class per aggregate, with the same contract
as the SQLite ones (`im.storage.interfaces`). Times are `timestamptz` (read back as aware
datetimes in UTC), JSON columns `json`, incidents numbered by an identity column.

Every statement is a prepared one with parameters; a list of values is one array parameter
(`= ANY(%s)`), never one placeholder per value.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgspec
from psycopg.types.json import Json

from im.models import (ConnectorRecord, Incident, Link, Severity, Status, TimelineEvent,
                       incident_number)
from im.storage.postgres.database import notify_sql
from im.storage.records import InboxRow, InboxStatus, OutboxRow, OutboxStatus

if TYPE_CHECKING:
    from im.storage.interfaces import InboundEventRow
    from im.storage.postgres.database import _Executor


def incident_id(number: int) -> str:
    return f"INC-{number}"


class _Repository:
    def __init__(self, conn: _Executor) -> None:
        self.conn = conn


# -- incidents and their services ----------------------------------------------------------

_INCIDENT = ("number, title, description, severity, status, assignee, fields, correlation_id,"
             " created_by, created_at, updated_at, mitigated_at, resolved_at, closed_at,"
             " reopened_at")
_UPDATABLE = frozenset(("title", "description", "severity", "status", "assignee", "fields",
                        "mitigated_at", "resolved_at", "closed_at", "reopened_at"))


def _incident(row: Sequence[Any], services: list[str]) -> Incident:
    return Incident(
        id=incident_id(row[0]), title=row[1], description=row[2],
        severity=Severity(row[3]), status=Status(row[4]), assignee=row[5], fields=row[6],
        correlation_id=row[7], created_by=row[8], created_at=row[9], updated_at=row[10],
        mitigated_at=row[11], resolved_at=row[12], closed_at=row[13], reopened_at=row[14],
        services=services)


class PostgresIncidents(_Repository):
    def add(self, *, title: str, description: str, severity: Severity,
            services: Sequence[str], fields: dict[str, str], correlation_id: str,
            created_by: str, at: datetime) -> Incident:
        number = self.conn.execute(
            "INSERT INTO incidents (title, description, severity, status, fields,"
            " correlation_id, created_by, created_at, updated_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING number",
            (title, description, severity.value, Status.OPEN.value, Json(fields),
             correlation_id, created_by, at, at)).rows[0][0]
        self.conn.executemany(
            "INSERT INTO incident_services (number, position, service) VALUES (%s, %s, %s)",
            [(number, i, service) for i, service in enumerate(services)])
        incident = self.get(incident_id(number))
        assert incident is not None
        return incident

    def _select(self, where: str = "", params: Sequence[Any] | dict[str, Any] = (),
                suffix: str = "") -> list[Incident]:
        rows = self.conn.execute(f"SELECT {_INCIDENT} FROM incidents {where} {suffix}",
                                 params).rows
        if not rows:
            return []
        numbers = [row[0] for row in rows]
        services: dict[int, list[str]] = {n: [] for n in numbers}
        for number, service in self.conn.execute(
                "SELECT number, service FROM incident_services WHERE number = ANY(%s)"
                " ORDER BY number, position", (numbers,)):
            services[number].append(service)
        return [_incident(row, services[row[0]]) for row in rows]

    def get(self, incident_id: str) -> Incident | None:
        try:
            number = incident_number(incident_id)
        except ValueError:
            return None
        if number > 2**63 - 1:
            return None
        found = self._select("WHERE number = %s", (number,))
        return found[0] if found else None

    def by_correlation_id(self, correlation_id: str) -> Incident | None:
        found = self._select("WHERE correlation_id = %s", (correlation_id,))
        return found[0] if found else None

    def find(self, *, statuses: Sequence[Status] = (), severities: Sequence[Severity] = (),
             services: Sequence[str] = (), limit: int | None = None) -> list[Incident]:
        clauses: list[str] = []
        params: list[Any] = []
        if statuses:
            clauses.append("status = ANY(%s)")
            params.append([s.value for s in statuses])
        if severities:
            clauses.append("severity = ANY(%s)")
            params.append([s.value for s in severities])
        if services:
            clauses.append("number IN (SELECT number FROM incident_services"
                           " WHERE lower(service) = ANY(%s))")
            params.append(list(services))
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        suffix = "ORDER BY number DESC" + (f" LIMIT {int(limit)}" if limit else "")
        return self._select(where, params, suffix)

    def set_services(self, incident_id: str, at: datetime, services: Sequence[str]) -> None:
        number = incident_number(incident_id)
        self.conn.execute("DELETE FROM incident_services WHERE number = %s", (number,))
        self.conn.executemany(
            "INSERT INTO incident_services (number, position, service) VALUES (%s, %s, %s)",
            [(number, i, service) for i, service in enumerate(services)])
        self.conn.execute("UPDATE incidents SET updated_at = %s WHERE number = %s",
                          (at, number))

    def update(self, incident_id: str, at: datetime, **changes: Any) -> None:
        unknown = set(changes) - _UPDATABLE
        if unknown:  # column names are written into the statement: only known ones
            raise ValueError(f"cannot update {', '.join(sorted(unknown))} of an incident")
        values = {k: Json(v) if k == "fields" else v for k, v in changes.items()}
        values["updated_at"] = at
        assignments = ", ".join(f"{column} = %s" for column in values)
        self.conn.execute(f"UPDATE incidents SET {assignments} WHERE number = %s",
                          [*values.values(), incident_number(incident_id)])

    def sla_overdue(self, *, severity: Severity, statuses: Sequence[Status], kind: str,
                    started_before: datetime) -> list[Incident]:
        # the terms of the partial indexes incidents_ack_due and incidents_resolve_due
        condition = {
            "ack": "status = 'open' AND ack_breached_start IS DISTINCT FROM"
                   " coalesce(reopened_at, created_at)",
            "resolve": "status IN ('open', 'mitigated') AND resolve_breached_start IS"
                       " DISTINCT FROM coalesce(reopened_at, created_at)",
        }[kind]
        return self._select(
            f"WHERE {condition} AND severity = %(severity)s"
            " AND coalesce(reopened_at, created_at) < %(before)s",
            {"severity": severity.value, "before": started_before})

    def declared_page(self, start: datetime, end: datetime, *,
                      after: tuple[datetime, str] | None, limit: int) -> list[Incident]:
        params: dict[str, Any] = {"start": start, "end": end, "limit": int(limit)}
        keyset = ""
        if after is not None:
            # a row value compared with the index's columns: the range starts at that key
            params["after_at"] = after[0]
            params["after_number"] = incident_number(after[1])
            keyset = " AND (created_at, number) > (%(after_at)s, %(after_number)s)"
        return self._select(
            "WHERE created_at >= %(start)s AND created_at < %(end)s" + keyset, params,
            "ORDER BY created_at, number LIMIT %(limit)s")

    def count_by_status_and_severity(self) -> list[tuple[str, str, int]]:
        return [(status, severity, int(n)) for status, severity, n in self.conn.execute(
            "SELECT status, severity, n FROM incident_counts WHERE n > 0")]


# -- the timeline -------------------------------------------------------------------------


class PostgresTimeline(_Repository):
    def add(self, incident_id: str, *, at: datetime, kind: str, text: str, actor: str,
            system: str, data: dict[str, Any] | None = None) -> TimelineEvent:
        event_id = self.conn.execute(
            "INSERT INTO timeline (number, at, kind, text, actor, system, data)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (incident_number(incident_id), at, kind, text, actor, system,
             Json(data or {}))).rows[0][0]
        return TimelineEvent(id=event_id, incident_id=incident_id, at=at, kind=kind,
                             text=text, actor=actor, system=system, data=data or {})

    def of_incident(self, incident_id: str) -> list[TimelineEvent]:
        return [TimelineEvent(id=row[0], incident_id=incident_id, at=row[1], kind=row[2],
                              text=row[3], actor=row[4], system=row[5], data=row[6])
                for row in self.conn.execute(
                    "SELECT id, at, kind, text, actor, system, data FROM timeline"
                    " WHERE number = %s ORDER BY at, id", (incident_number(incident_id),))]

    def of_incidents(self, incident_ids: Sequence[str]) -> dict[str, list[TimelineEvent]]:
        found: dict[str, list[TimelineEvent]] = {}
        for row in self.conn.execute(
                "SELECT id, number, at, kind, text, actor, system, data FROM timeline"
                " WHERE number = ANY(%s) ORDER BY number, at, id",
                ([incident_number(i) for i in incident_ids],)):
            incident = incident_id(row[1])
            found.setdefault(incident, []).append(TimelineEvent(
                id=row[0], incident_id=incident, at=row[2], kind=row[3], text=row[4],
                actor=row[5], system=row[6], data=row[7]))
        return found


# -- links ----------------------------------------------------------------------------------

OPEN_REMOTE = "remote_status IN ('open', 'acknowledged')"  # the partial index links_open's
_LINK = ("number, connector, service, remote_id, remote_number, remote_url, remote_status,"
         " updated_at, remote_updated_at")
_QUALIFIED_LINK = ", ".join(f"links.{column.strip()}" for column in _LINK.split(","))


def _link(row: Sequence[Any]) -> Link:
    return Link(incident_id=incident_id(row[0]), connector=row[1], service=row[2],
                remote_id=row[3], remote_number=row[4], remote_url=row[5],
                remote_status=row[6], updated_at=row[7], remote_updated_at=row[8])


class PostgresLinks(_Repository):
    def upsert(self, link: Link, *, initial_status: str | None = None) -> None:
        self.conn.execute(
            "INSERT INTO links (number, connector, service, remote_id, remote_number,"
            " remote_url, remote_status, updated_at, remote_updated_at)"
            " VALUES (%(number)s, %(connector)s, %(service)s, %(remote_id)s,"
            " %(remote_number)s, %(remote_url)s,"
            " coalesce(%(remote_status)s::text, %(initial_status)s::text), %(updated_at)s,"
            " %(remote_updated_at)s)"
            " ON CONFLICT (number, connector, service) DO UPDATE SET"
            " remote_id = excluded.remote_id,"
            " remote_number = coalesce(excluded.remote_number, links.remote_number),"
            " remote_url = coalesce(excluded.remote_url, links.remote_url),"
            " remote_status = coalesce(%(remote_status)s::text, links.remote_status),"
            " remote_updated_at = coalesce(excluded.remote_updated_at,"
            " links.remote_updated_at),"
            " updated_at = excluded.updated_at",
            {"number": incident_number(link.incident_id), "connector": link.connector,
             "service": link.service, "remote_id": link.remote_id,
             "remote_number": link.remote_number, "remote_url": link.remote_url,
             "remote_status": _text(link.remote_status),
             "initial_status": _text(initial_status),
             "updated_at": link.updated_at or datetime.now(UTC),
             "remote_updated_at": link.remote_updated_at})

    def replace(self, link: Link) -> None:
        self.conn.execute(
            "UPDATE links SET remote_id = %s, remote_number = %s, remote_url = %s,"
            " remote_status = %s, updated_at = %s, remote_updated_at = %s"
            " WHERE number = %s AND connector = %s AND service = %s",
            (link.remote_id, link.remote_number, link.remote_url, _text(link.remote_status),
             link.updated_at or datetime.now(UTC), link.remote_updated_at,
             incident_number(link.incident_id), link.connector, link.service))

    def move(self, link: Link, service: str) -> None:
        self.conn.execute(
            "UPDATE links SET service = %s WHERE number = %s AND connector = %s"
            " AND service = %s",
            (service, incident_number(link.incident_id), link.connector, link.service))

    def find(self, incident_id: str | None = None, *, connector: str | None = None,
             remote_id: str | None = None) -> list[Link]:
        clauses: list[str] = []
        params: list[Any] = []
        if incident_id is not None:
            clauses.append("number = %s")
            params.append(incident_number(incident_id))
        if connector is not None:
            clauses.append("connector = %s")
            params.append(connector)
        if remote_id is not None:
            clauses.append("remote_id = %s")
            params.append(remote_id)
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        return [_link(row) for row in self.conn.execute(
            f"SELECT {_LINK} FROM links {where} ORDER BY number, connector COLLATE \"C\","
            " service COLLATE \"C\"", params)]

    def of_incidents(self, incident_ids: Sequence[str]) -> dict[str, list[Link]]:
        found: dict[str, list[Link]] = {}
        for row in self.conn.execute(
                f"SELECT {_LINK} FROM links WHERE number = ANY(%s)"
                " ORDER BY number, connector COLLATE \"C\", service COLLATE \"C\"",
                ([incident_number(i) for i in incident_ids],)):
            link = _link(row)
            found.setdefault(link.incident_id, []).append(link)
        return found

    def open_links(self, connector: str, *, declared_since: datetime) -> list[Link]:
        return [_link(row) for row in self.conn.execute(
            f"SELECT {_QUALIFIED_LINK} FROM links JOIN incidents"
            " ON incidents.number = links.number"
            f" WHERE links.connector = %(connector)s AND {OPEN_REMOTE}"
            " AND incidents.created_at >= %(since)s"
            " ORDER BY links.number, links.service COLLATE \"C\"",
            {"connector": connector, "since": declared_since})]

    def linked_connectors(self) -> set[str]:
        return {row[0] for row in self.conn.execute(
            "SELECT connector FROM linked_incidents WHERE n > 0")}

    def incidents_linked(self, connector: str, *, updated_since: datetime | None = None
                         ) -> int:
        if updated_since is None:  # kept as links change (a trigger)
            row = self.conn.execute("SELECT n FROM linked_incidents WHERE connector = %s",
                                    (connector,)).fetchone()
            return int(row[0]) if row else 0
        row = self.conn.execute("SELECT count(DISTINCT number) FROM links WHERE"
                                " connector = %s AND updated_at >= %s",
                                (connector, updated_since)).fetchone()
        return int(row[0]) if row else 0


def _text(value: Any) -> str | None:
    """A StrEnum member as its plain word (what is stored)."""
    return None if value is None else str(value)


# -- the outbox -----------------------------------------------------------------------------

_OUTBOX = ("id, connector, number, service, action, payload, status, attempts,"
           " next_attempt_at, last_error, created_at, lease_until, origin_system")
_OUT_PENDING, _OUT_DELIVERING = OutboxStatus.PENDING.value, OutboxStatus.DELIVERING.value
_OUT_DONE, _OUT_FAILED = OutboxStatus.DONE.value, OutboxStatus.FAILED.value
_OUT_STATUS = {status.value: status for status in OutboxStatus}
# a claim's own update: only while that claim holds the row (its attempt), when one is given
_OUT_HELD = (f" AND (%s::integer IS NULL OR (status = '{_OUT_DELIVERING}'"
             " AND attempts = %s::integer))")


def _outbox_row(row: Sequence[Any]) -> OutboxRow:
    return OutboxRow(id=row[0], connector=row[1], incident_id=incident_id(row[2]),
                     service=row[3], action=row[4], payload=row[5],
                     status=_OUT_STATUS[row[6]], attempts=row[7], next_attempt_at=row[8],
                     last_error=row[9], created_at=row[10], lease_until=row[11],
                     origin_system=row[12])


def _words(values: Sequence[Any]) -> list[str]:
    return [str(value) for value in values]


class PostgresOutbox(_Repository):
    def add(self, *, connector: str, incident_id: str, service: str, action: str,
            payload: dict[str, Any], at: datetime, origin_system: str | None = None) -> None:
        self.conn.execute(
            "INSERT INTO outbox (connector, number, service, action, payload, next_attempt_at,"
            " created_at, origin_system) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (connector, incident_number(incident_id), service, action, Json(payload), at, at,
             origin_system))
        # no notice to the servers: the process that queued a change delivers it itself (a
        # command prints what the remote made of it), and a server's loop takes up what that
        # process could not deliver at its next tick

    def claim_next(self, *, now: datetime, lease_seconds: float,
                   connector: str | None = None, incident_id: str | None = None,
                   due_only: bool = True, exclude: Sequence[int] = ()) -> OutboxRow | None:
        clauses = [f"(o.status = '{_OUT_PENDING}' OR (o.status = '{_OUT_DELIVERING}'"
                   " AND o.lease_until < %(now)s))",
                   # through the index on status: never the delivered rows kept
                   f"o.status IN ('{_OUT_PENDING}', '{_OUT_DELIVERING}')"]
        if due_only:
            clauses.append(f"(o.status = '{_OUT_DELIVERING}' OR o.next_attempt_at <= %(now)s)")
        params: dict[str, Any] = {"now": now,
                                  "lease": now + timedelta(seconds=lease_seconds)}
        if connector is not None:
            clauses.append("o.connector = %(connector)s")
            params["connector"] = connector
        if incident_id is not None:
            clauses.append("o.number = %(number)s")
            params["number"] = incident_number(incident_id)
        if exclude:
            clauses.append("NOT (o.id = ANY(%(exclude)s))")
            params["exclude"] = [int(i) for i in exclude]
        # the first claimable change of its incident (changes go in order per incident and
        # connector); a row another replica is claiming right now is skipped, not waited for
        row = self.conn.execute(
            f"SELECT {_OUTBOX.replace('id,', 'o.id,', 1)} FROM outbox o"
            f" WHERE {' AND '.join(clauses)}"
            " AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.connector = o.connector"
            " AND e.number = o.number AND e.id < o.id"
            f" AND e.status IN ('{_OUT_PENDING}', '{_OUT_DELIVERING}'))"
            " ORDER BY o.next_attempt_at, o.id LIMIT 1 FOR UPDATE OF o SKIP LOCKED",
            params).fetchone()
        if row is None:
            return None
        self.conn.execute(
            f"UPDATE outbox SET status = '{_OUT_DELIVERING}', lease_until = %(lease)s,"
            " attempts = attempts + 1 WHERE id = %(id)s", {**params, "id": row[0]})
        claimed = _outbox_row(row)
        return msgspec.structs.replace(claimed, status=OutboxStatus.DELIVERING,
                                       attempts=claimed.attempts + 1,
                                       lease_until=params["lease"])

    def finish(self, row_id: int, *, at: datetime, attempt: int | None = None) -> bool:
        return self.conn.execute(f"UPDATE outbox SET status = '{_OUT_DONE}', done_at = %s,"
                                 " lease_until = NULL, last_error = NULL WHERE id = %s"
                                 + _OUT_HELD, (at, row_id, attempt, attempt)).rowcount == 1

    def retry(self, row_id: int, *, error: str, next_attempt_at: datetime,
              attempt: int | None = None) -> bool:
        return self.conn.execute(
            f"UPDATE outbox SET status = '{_OUT_PENDING}', lease_until = NULL,"
            " last_error = %s, next_attempt_at = %s WHERE id = %s" + _OUT_HELD,
            (error, next_attempt_at, row_id, attempt, attempt)).rowcount == 1

    def release(self, row_id: int, *, at: datetime) -> None:
        self.conn.execute(f"UPDATE outbox SET status = '{_OUT_PENDING}', lease_until = NULL,"
                          f" next_attempt_at = %s WHERE id = %s AND status = '{_OUT_DELIVERING}'",
                          (at, row_id))

    def fail(self, row_id: int, *, error: str, at: datetime,
             attempt: int | None = None) -> bool:
        return self.conn.execute(
            f"UPDATE outbox SET status = '{_OUT_FAILED}', lease_until = NULL,"
            " last_error = %s, done_at = %s WHERE id = %s" + _OUT_HELD,
            (error, at, row_id, attempt, attempt)).rowcount == 1

    def requeue_failed(self, *, connector: str, at: datetime,
                       incident_id: str | None = None) -> int:
        extra = ""
        params: list[Any] = [at, connector]
        if incident_id is not None:
            extra = " AND number = %s"
            params.append(incident_number(incident_id))
        return self.conn.execute(f"UPDATE outbox SET status = '{_OUT_PENDING}', attempts = 0,"
                                 " next_attempt_at = %s, done_at = NULL WHERE connector = %s"
                                 f" AND status = '{_OUT_FAILED}'{extra}", params).rowcount

    def find(self, *, connector: str | None = None,
             statuses: Sequence[OutboxStatus | str] = (),
             incident_id: str | None = None) -> list[OutboxRow]:
        clauses: list[str] = []
        params: list[Any] = []
        if connector is not None:
            clauses.append("connector = %s")
            params.append(connector)
        if statuses:
            clauses.append("status = ANY(%s)")
            params.append(_words(statuses))
        if incident_id is not None:
            clauses.append("number = %s")
            params.append(incident_number(incident_id))
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        return [_outbox_row(row) for row in self.conn.execute(
            f"SELECT {_OUTBOX} FROM outbox {where} ORDER BY id", params)]

    def move_service(self, *, connector: str, incident_id: str, service: str,
                     to: str) -> None:
        self.conn.execute(f"UPDATE outbox SET service = %s WHERE connector = %s AND"
                          f" number = %s AND service = %s AND status = '{_OUT_PENDING}'",
                          (to, connector, incident_number(incident_id), service))

    def discard_queued(self, connector: str) -> None:
        self.conn.execute("DELETE FROM outbox WHERE connector = %s AND status IN"
                          f" ('{_OUT_PENDING}', '{_OUT_DELIVERING}')", (connector,))

    def queued_waiting_and_failed(self, connector: str, *,
                                  waiting_since: datetime | None = None
                                  ) -> tuple[int, int, int]:
        queued, failed = self.conn.execute(
            "SELECT coalesce(sum(n) FILTER (WHERE status IN"
            f" ('{_OUT_PENDING}', '{_OUT_DELIVERING}')), 0),"
            f" coalesce(sum(n) FILTER (WHERE status = '{_OUT_FAILED}'), 0) FROM outbox_counts"
            " WHERE connector = %s", (connector,)).rows[0]
        waiting = 0
        if waiting_since is not None:
            waiting = self.conn.execute(
                "SELECT count(*) FROM outbox WHERE connector = %s AND status IN"
                f" ('{_OUT_PENDING}', '{_OUT_DELIVERING}') AND created_at < %s",
                (connector, waiting_since)).rows[0][0]
        return int(queued), int(waiting), int(failed)

    def delivery_figures_since(self, connector: str, since: datetime
                               ) -> tuple[int, int, float | None]:
        done, attempts, average = self.conn.execute(
            f"SELECT count(*) FILTER (WHERE status = '{_OUT_DONE}'), coalesce(sum(attempts), 0),"
            f" avg(extract(epoch FROM done_at - created_at)) FILTER"
            f" (WHERE status = '{_OUT_DONE}') FROM outbox WHERE connector = %s"
            f" AND created_at >= %s AND status IN ('{_OUT_DONE}', '{_OUT_FAILED}')",
            (connector, since)).rows[0]
        return int(done), int(attempts), None if average is None else float(average)

    def purge_done(self, *, done_before: datetime) -> int:
        # each connector's latest delivered row stays, so that it knows when it last
        # delivered however long it has been idle
        return self.conn.execute(
            f"DELETE FROM outbox WHERE status = '{_OUT_DONE}' AND done_at < %(before)s AND"
            f" id NOT IN (SELECT max(id) FROM outbox WHERE status = '{_OUT_DONE}' AND"
            " done_at < %(before)s GROUP BY connector)", {"before": done_before}).rowcount

    def last_delivered_at(self, connector: str) -> datetime | None:
        return self.conn.execute("SELECT max(done_at) FROM outbox WHERE connector = %s AND"
                                 f" status = '{_OUT_DONE}'", (connector,)).rows[0][0]

    def last_error(self, connector: str) -> tuple[str, datetime] | None:
        row = self.conn.execute(
            "SELECT last_error, coalesce(done_at, next_attempt_at) AS at FROM outbox"
            " WHERE connector = %s AND last_error IS NOT NULL"
            " ORDER BY coalesce(done_at, next_attempt_at) DESC LIMIT 1",
            (connector,)).fetchone()
        return (row[0], row[1]) if row else None

    def count_by_connector_and_status(self) -> list[tuple[str, str, int]]:
        return [(connector, status, int(n)) for connector, status, n in self.conn.execute(
            "SELECT connector, status, n FROM outbox_counts WHERE n > 0")]


# -- the inbox ------------------------------------------------------------------------------

_INBOX = "id, connector, delivery_id, event_type, body, received_at, status, attempts, error"
_IN_PENDING, _IN_PROCESSING = InboxStatus.PENDING.value, InboxStatus.PROCESSING.value
_IN_DONE, _IN_QUARANTINED = InboxStatus.DONE.value, InboxStatus.QUARANTINED.value
_IN_STATUS = {status.value: status for status in InboxStatus}


def _inbox_row(row: Sequence[Any]) -> InboxRow:
    return InboxRow(id=row[0], connector=row[1], delivery_id=row[2], event_type=row[3],
                    body=bytes(row[4]), received_at=row[5], status=_IN_STATUS[row[6]],
                    attempts=row[7], error=row[8])


class PostgresInbox(_Repository):
    def add_many(self, events: Sequence[InboundEventRow]) -> list[bool]:
        """One statement for the batch: the rows a unique key already holds (a duplicate
        delivery, to this replica or another) are not inserted, and are told apart by the
        keys the statement returns."""
        if not events:
            return []
        events_in_order = sorted(events, key=lambda e: (e[0], e[1]))  # rows locked in key order
        inserted = {(row[0], row[1]) for row in self.conn.execute(
            "INSERT INTO inbox (connector, delivery_id, event_type, body, received_at)"
            " SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::bytea[],"
            " %s::timestamptz[]) ON CONFLICT (connector, delivery_id) DO NOTHING"
            " RETURNING connector, delivery_id",
            ([e[0] for e in events_in_order], [e[1] for e in events_in_order],
             [e[2] for e in events_in_order], [bytes(e[3]) for e in events_in_order],
             [e[4] for e in events_in_order]))}
        if inserted:
            self.conn.execute(notify_sql("inbox"))  # every server hears of it once committed
        new: list[bool] = []
        for event in events:
            key = (event[0], event[1])
            new.append(key in inserted)
            inserted.discard(key)  # a duplicate within the batch is a duplicate too
        return new

    def claim(self, *, now: datetime, lease_seconds: float, connector: str | None = None,
              limit: int = 1, exclude: Sequence[str] = ()) -> list[InboxRow]:
        params: dict[str, Any] = {"now": now, "limit": limit,
                                  "lease": now + timedelta(seconds=lease_seconds)}
        extra = ""
        if connector is not None:
            extra = " AND connector = %(connector)s"
            params["connector"] = connector
        if exclude:
            extra += " AND NOT (connector = ANY(%(exclude)s))"
            params["exclude"] = list(exclude)
        rows = self.conn.execute(
            f"SELECT {_INBOX} FROM inbox WHERE id IN ("
            f"(SELECT id FROM inbox WHERE status = '{_IN_PENDING}'{extra}"
            " ORDER BY id LIMIT %(limit)s)"
            f" UNION ALL (SELECT id FROM inbox WHERE status = '{_IN_PROCESSING}'"
            f" AND lease_until < %(now)s{extra} ORDER BY id LIMIT %(limit)s))"
            " ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED", params).rows
        if rows:
            self.conn.execute(
                f"UPDATE inbox SET status = '{_IN_PROCESSING}', lease_until = %s,"
                " attempts = attempts + 1 WHERE id = ANY(%s)",
                (params["lease"], [row[0] for row in rows]))
        return [msgspec.structs.replace(claimed, status=InboxStatus.PROCESSING,
                                        attempts=claimed.attempts + 1)
                for claimed in map(_inbox_row, rows)]

    def release(self, row_ids: Sequence[int]) -> None:
        if row_ids:
            self.conn.execute(f"UPDATE inbox SET status = '{_IN_PENDING}', lease_until = NULL"
                              " WHERE id = ANY(%s)", (list(row_ids),))

    def finish(self, row_id: int, *, at: datetime,
               status: InboxStatus | str = InboxStatus.DONE, error: str | None = None,
               attempt: int | None = None) -> bool:
        # with an attempt, only while that claim holds the event
        return self.conn.execute(
            "UPDATE inbox SET status = %s, error = %s, processed_at = %s, lease_until = NULL"
            f" WHERE id = %s AND (%s::integer IS NULL OR (status = '{_IN_PROCESSING}'"
            " AND attempts = %s::integer))",
            (str(status), error, at, row_id, attempt, attempt)).rowcount == 1

    def requeue_quarantined(self, *, connector: str, ids: Sequence[int] = ()) -> int:
        extra = " AND id = ANY(%s)" if ids else ""
        params: list[Any] = [connector, *([[int(i) for i in ids]] if ids else [])]
        return self.conn.execute(f"UPDATE inbox SET status = '{_IN_PENDING}', error = NULL,"
                                 " lease_until = NULL WHERE connector = %s AND"
                                 f" status = '{_IN_QUARANTINED}'{extra}", params).rowcount

    def find(self, *, connector: str | None = None,
             statuses: Sequence[InboxStatus | str] = ()) -> list[InboxRow]:
        clauses: list[str] = []
        params: list[Any] = []
        if connector is not None:
            clauses.append("connector = %s")
            params.append(connector)
        if statuses:
            clauses.append("status = ANY(%s)")
            params.append(_words(statuses))
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        return [_inbox_row(row) for row in self.conn.execute(
            f"SELECT {_INBOX} FROM inbox {where} ORDER BY id", params)]

    def purge_done(self, *, received_before: datetime) -> int:
        return self.conn.execute(f"DELETE FROM inbox WHERE status = '{_IN_DONE}' AND"
                                 " received_at < %s", (received_before,)).rowcount

    def quarantined_count(self, connector: str, *, received_since: datetime | None = None
                          ) -> int:
        if received_since is None:  # kept as rows change (a trigger)
            self._add_up_counts()
            row = self.conn.execute("SELECT coalesce(sum(n), 0) FROM inbox_counts WHERE"
                                    f" connector = %s AND status = '{_IN_QUARANTINED}'",
                                    (connector,)).rows[0]
        else:
            row = self.conn.execute(
                f"SELECT count(*) FROM inbox WHERE connector = %s AND"
                f" status = '{_IN_QUARANTINED}' AND received_at >= %s",
                (connector, received_since)).rows[0]
        return int(row[0])

    def received_count(self, connector: str, *, since: datetime) -> int:
        return int(self.conn.execute("SELECT count(*) FROM inbox WHERE connector = %s AND"
                                     " received_at >= %s", (connector, since)).rows[0][0])

    def last_received_at(self, connector: str) -> datetime | None:
        return self.conn.execute("SELECT max(received_at) FROM inbox WHERE connector = %s",
                                 (connector,)).rows[0][0]

    def last_processed_at(self, connector: str) -> datetime | None:
        return self.conn.execute("SELECT max(processed_at) FROM inbox WHERE connector = %s"
                                 f" AND status = '{_IN_DONE}'", (connector,)).rows[0][0]

    def count_by_connector_and_status(self) -> list[tuple[str, str, int]]:
        self._add_up_counts()
        return [(connector, status, int(n)) for connector, status, n in self.conn.execute(
            "SELECT connector, status, sum(n) FROM inbox_counts GROUP BY connector, status"
            " HAVING sum(n) > 0")]

    def _add_up_counts(self) -> None:
        """The changes to the counts since the last time, added up into one row per key (in
        one statement, which takes only the rows it adds up: deliveries being stored go on).
        What this costs follows how much changed since, not how much history there is."""
        self.conn.execute(
            "WITH changes AS (DELETE FROM inbox_counts WHERE id <="
            " (SELECT max(id) FROM inbox_counts) RETURNING connector, status, n)"
            " INSERT INTO inbox_counts (connector, status, n)"
            " SELECT connector, status, sum(n) FROM changes GROUP BY connector, status"
            " HAVING sum(n) <> 0")


# -- connectors, cursors, calls, logs, breaches, tokens, meta -------------------------------


class PostgresConnectors(_Repository):
    _SELECT = "SELECT name, type, settings, enabled, created_at, updated_at FROM connectors"

    @staticmethod
    def _record(row: Sequence[Any]) -> ConnectorRecord:
        return ConnectorRecord(name=row[0], type=row[1], settings=row[2], enabled=row[3],
                               created_at=row[4], updated_at=row[5])

    def save(self, record: ConnectorRecord) -> None:
        self.conn.execute(
            "INSERT INTO connectors (name, type, settings, enabled, created_at, updated_at)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (name) DO UPDATE SET"
            " type = excluded.type, settings = excluded.settings,"
            " enabled = excluded.enabled, updated_at = excluded.updated_at",
            (record.name, record.type, Json(record.settings), bool(record.enabled),
             record.created_at, record.updated_at))

    def get(self, name: str) -> ConnectorRecord | None:
        row = self.conn.execute(f"{self._SELECT} WHERE name = %s", (name,)).fetchone()
        return self._record(row) if row else None

    def all(self) -> list[ConnectorRecord]:
        # by name in code-point order, as SQLite sorts, whatever the database's collation
        return [self._record(row) for row in self.conn.execute(
            f"{self._SELECT} ORDER BY name COLLATE \"C\"")]

    def delete(self, name: str) -> None:
        self.conn.execute("DELETE FROM connectors WHERE name = %s", (name,))


class PostgresCursors(_Repository):
    def get(self, connector: str) -> str | None:
        row = self.conn.execute("SELECT cursor FROM sync_cursors WHERE connector = %s",
                                (connector,)).fetchone()
        return row[0] if row else None

    def set(self, connector: str, cursor: str, *, at: datetime) -> None:
        self.conn.execute("INSERT INTO sync_cursors (connector, cursor, updated_at)"
                          " VALUES (%s, %s, %s) ON CONFLICT (connector) DO UPDATE SET"
                          " cursor = excluded.cursor, updated_at = excluded.updated_at",
                          (connector, cursor, at))

    def delete(self, connector: str) -> None:
        self.conn.execute("DELETE FROM sync_cursors WHERE connector = %s", (connector,))

    def updated_at(self, connector: str) -> datetime | None:
        row = self.conn.execute("SELECT updated_at FROM sync_cursors WHERE connector = %s",
                                (connector,)).fetchone()
        return row[0] if row else None


class PostgresCalls(_Repository):
    def add(self, *, connector: str, at: datetime, method: str, path: str,
            status: int | None, duration_ms: float, error: str | None,
            rate_limit: int | None = None, rate_remaining: int | None = None) -> None:
        self.conn.execute(
            "INSERT INTO calls (connector, at, method, path, status, duration_ms, error,"
            " rate_limit, rate_remaining) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (connector, at, method, path, status, duration_ms, error, rate_limit,
             rate_remaining))

    def counts_since(self, connector: str, since: datetime) -> tuple[int, int]:
        calls, errors = self.conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE error IS NOT NULL) FROM calls"
            " WHERE connector = %s AND at >= %s", (connector, since)).rows[0]
        return int(calls), int(errors)

    def latest_status(self, connector: str) -> int | None:
        row = self.conn.execute("SELECT status FROM calls WHERE connector = %s"
                                " ORDER BY at DESC, id DESC LIMIT 1", (connector,)).fetchone()
        return row[0] if row else None

    def latest_rate_limit(self, connector: str) -> int | None:
        row = self.conn.execute("SELECT rate_limit FROM calls WHERE connector = %s AND"
                                " rate_limit IS NOT NULL ORDER BY at DESC LIMIT 1",
                                (connector,)).fetchone()
        return row[0] if row else None

    def last_error(self, connector: str) -> tuple[str, datetime] | None:
        row = self.conn.execute("SELECT error, at FROM calls WHERE connector = %s AND error"
                                " IS NOT NULL ORDER BY at DESC LIMIT 1", (connector,)).fetchone()
        return (row[0], row[1]) if row else None

    def purge(self, *, before: datetime) -> int:
        return self.conn.execute("DELETE FROM calls WHERE at < %s", (before,)).rowcount


class PostgresLogs(_Repository):
    def add_many(self, entries: Sequence[dict[str, Any]]) -> None:
        import json

        self.conn.executemany(
            "INSERT INTO logs (at, level, levelno, component, connector, message, data)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)",
            [(e["at"], e["level"], e["levelno"], e["component"], e["connector"],
              e["message"], Json(e["data"], dumps=lambda d: json.dumps(d, default=str)))
             for e in entries])

    def find(self, *, since: datetime | None = None, min_level: int = 0,
             component: str | None = None, text: str | None = None, after_id: int = 0,
             limit: int = 1000) -> list[dict[str, Any]]:
        clauses = ["id > %(after)s", "levelno >= %(level)s"]
        params: dict[str, Any] = {"after": after_id, "level": min_level, "limit": limit}
        if since is not None:
            clauses.append("at >= %(since)s")
            params["since"] = since
        if component:
            clauses.append("component = %(component)s")
            params["component"] = component
        if text:
            # as written, in any case of ASCII letters (as SQLite's LIKE): the pattern's own
            # wildcards are escaped
            clauses.append("(component ILIKE %(text)s OR coalesce(connector, '') ILIKE %(text)s"
                           " OR message ILIKE %(text)s OR data::text ILIKE %(text)s)")
            escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            params["text"] = f"%{escaped}%"
        rows = self.conn.execute(
            "SELECT id, at, level, component, connector, message, data FROM (SELECT * FROM logs"
            f" WHERE {' AND '.join(clauses)} ORDER BY id DESC LIMIT %(limit)s) AS newest"
            " ORDER BY id", params).rows
        return [{"id": r[0], "at": r[1], "level": r[2], "component": r[3], "connector": r[4],
                 "message": r[5], "data": r[6]} for r in rows]

    def purge(self, *, before: datetime) -> int:
        return self.conn.execute("DELETE FROM logs WHERE at < %s", (before,)).rowcount


class PostgresBreaches(_Repository):
    def add(self, *, number: int, kind: str, started_at: datetime, due_at: datetime,
            target_seconds: float, severity: str, detected_at: datetime) -> bool:
        added = self.conn.execute(
            "INSERT INTO sla_breaches (number, kind, started_at, due_at, target_seconds,"
            " severity, detected_at) VALUES (%s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            (number, kind, started_at, due_at, target_seconds, severity,
             detected_at)).rowcount == 1
        column = {"ack": "ack_breached_start", "resolve": "resolve_breached_start"}[kind]
        self.conn.execute(f"UPDATE incidents SET {column} = %s WHERE number = %s",
                          (started_at, number))
        return added


class PostgresTokens(_Repository):
    def add(self, *, name: str, hash: str, read_only: bool, created_at: datetime) -> bool:
        return self.conn.execute(
            "INSERT INTO api_tokens (name, hash, read_only, created_at)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (name) DO NOTHING",
            (name, hash, bool(read_only), created_at)).rowcount == 1

    def replace_hash(self, name: str, hash: str) -> bool:
        return self.conn.execute("UPDATE api_tokens SET hash = %s WHERE name = %s",
                                 (hash, name)).rowcount == 1

    def delete(self, name: str) -> bool:
        return self.conn.execute("DELETE FROM api_tokens WHERE name = %s",
                                 (name,)).rowcount == 1

    def all(self) -> list[tuple[str, bool, datetime]]:
        return [(name, bool(read_only), created) for name, read_only, created in
                self.conn.execute("SELECT name, read_only, created_at FROM api_tokens"
                                  " ORDER BY name COLLATE \"C\"")]

    def by_hash(self, hash: str) -> tuple[str, bool] | None:
        row = self.conn.execute("SELECT name, read_only FROM api_tokens WHERE hash = %s",
                                (hash,)).fetchone()
        return (row[0], bool(row[1])) if row else None


class PostgresMeta(_Repository):
    def get(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = %s", (key,)).fetchone()
        return row[0] if row else None

    def set(self, key: str, value: str) -> None:
        self.conn.execute("INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key)"
                          " DO UPDATE SET value = excluded.value", (key, value))

    def pop(self, key: str) -> str | None:
        row = self.conn.execute("DELETE FROM meta WHERE key = %s RETURNING value",
                                (key,)).fetchone()
        return row[0] if row else None


class PostgresSeenKeys(_Repository):
    def add(self, key: str, *, now: datetime, expires_at: datetime) -> bool:
        # a key whose time ran out (not purged yet) is taken as new, and kept anew; a key
        # another server is adding waits for its commit, then is not new
        return self.conn.execute(
            "INSERT INTO seen_keys (key, expires_at) VALUES (%s, %s) ON CONFLICT (key)"
            " DO UPDATE SET expires_at = excluded.expires_at"
            " WHERE seen_keys.expires_at <= %s", (key, expires_at, now)).rowcount == 1

    def purge(self, *, before: datetime) -> int:
        return self.conn.execute("DELETE FROM seen_keys WHERE expires_at < %s",
                                 (before,)).rowcount


# -- workflows ------------------------------------------------------------------------------

_WF_RULE = ("SELECT name, trigger, conditions, steps, enabled, created_at, updated_at"
            " FROM workflows")
_WF_RUN = ("id, workflow, step, action, settings, number, trigger, event_id, status, attempts,"
           " next_attempt_at, last_error, created_at")
_WF_HELD = (" AND (%s::integer IS NULL OR (status = 'running' AND attempts = %s::integer))")


def _wf_rule(row: Sequence[Any]) -> Any:
    from im.workflows import Conditions, Rule, Step, Trigger

    return Rule(name=row[0], trigger=Trigger(row[1]),
                conditions=msgspec.convert(row[2], Conditions),
                steps=msgspec.convert(row[3], list[Step]), enabled=row[4],
                created_at=row[5], updated_at=row[6])


def _wf_run(row: Sequence[Any]) -> Any:
    from im.workflows import Run, RunStatus, Trigger

    return Run(id=row[0], workflow=row[1], step=row[2], action=row[3], settings=row[4],
               incident_id=incident_id(row[5]), trigger=Trigger(row[6]), event_id=row[7],
               status=RunStatus(row[8]), attempts=row[9], next_attempt_at=row[10],
               last_error=row[11], created_at=row[12])


class PostgresWorkflows(_Repository):
    def save(self, rule: Any) -> None:
        self.conn.execute(
            "INSERT INTO workflows (name, trigger, conditions, steps, enabled, created_at,"
            " updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (name) DO UPDATE"
            " SET trigger = excluded.trigger, conditions = excluded.conditions,"
            " steps = excluded.steps, enabled = excluded.enabled,"
            " updated_at = excluded.updated_at",
            (rule.name, str(rule.trigger), Json(msgspec.to_builtins(rule.conditions)),
             Json(msgspec.to_builtins(rule.steps)), bool(rule.enabled), rule.created_at,
             rule.updated_at or rule.created_at))

    def get(self, name: str) -> Any:
        row = self.conn.execute(f"{_WF_RULE} WHERE name = %s", (name,)).fetchone()
        return _wf_rule(row) if row else None

    def all(self) -> list[Any]:
        return [_wf_rule(row) for row in self.conn.execute(
            f"{_WF_RULE} ORDER BY name COLLATE \"C\"")]

    def delete(self, name: str) -> bool:
        return self.conn.execute("DELETE FROM workflows WHERE name = %s",
                                 (name,)).rowcount == 1


class PostgresWorkflowRuns(_Repository):
    def add(self, *, workflow: str, step: int, action: str, settings: dict[str, Any],
            incident_id: str, trigger: str, event_id: int, at: datetime) -> int:
        return self.conn.execute(
            "INSERT INTO workflow_runs (workflow, step, action, settings, number, trigger,"
            " event_id, next_attempt_at, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s,"
            " %s) ON CONFLICT (workflow, step, event_id) DO NOTHING",
            (workflow, step, action, Json(settings), incident_number(incident_id),
             str(trigger), event_id, at, at)).rowcount

    def claim_next(self, *, now: datetime, lease_seconds: float,
                   incident_id: str | None = None, exclude: Sequence[int] = (),
                   deliveries_first_since: datetime | None = None) -> Any:
        clauses = ["((status = 'pending' AND next_attempt_at <= %(now)s)"
                   " OR (status = 'running' AND lease_until < %(now)s))"]
        params: dict[str, Any] = {"now": now,
                                  "lease": now + timedelta(seconds=lease_seconds)}
        if deliveries_first_since is not None:
            clauses.append("(created_at < %(since)s OR NOT EXISTS (SELECT 1 FROM outbox o"
                           " WHERE (o.status = 'delivering' OR (o.status = 'pending' AND o.attempts = 0))"
                           " AND o.number = workflow_runs.number"
                           " AND o.created_at <= workflow_runs.created_at))")
            params["since"] = deliveries_first_since
        if incident_id is not None:
            clauses.append("number = %(number)s")
            params["number"] = incident_number(incident_id)
        if exclude:
            clauses.append("NOT (id = ANY(%(exclude)s))")
            params["exclude"] = [int(i) for i in exclude]
        row = self.conn.execute(f"SELECT {_WF_RUN} FROM workflow_runs WHERE"
                                f" {' AND '.join(clauses)} ORDER BY next_attempt_at, id"
                                " LIMIT 1 FOR UPDATE SKIP LOCKED", params).fetchone()
        if row is None:
            return None
        self.conn.execute("UPDATE workflow_runs SET status = 'running', lease_until ="
                          " %(lease)s, attempts = attempts + 1 WHERE id = %(id)s",
                          {**params, "id": row[0]})
        from im.workflows import RunStatus

        run = _wf_run(row)
        return msgspec.structs.replace(run, status=RunStatus.RUNNING,
                                       attempts=run.attempts + 1)

    def finish(self, run_id: int, *, at: datetime, attempt: int | None = None) -> bool:
        return self.conn.execute("UPDATE workflow_runs SET status = 'done', done_at = %s,"
                                 " lease_until = NULL, last_error = NULL WHERE id = %s"
                                 + _WF_HELD, (at, run_id, attempt, attempt)).rowcount == 1

    def retry(self, run_id: int, *, error: str, next_attempt_at: datetime,
              attempt: int | None = None) -> bool:
        return self.conn.execute("UPDATE workflow_runs SET status = 'pending', lease_until ="
                                 " NULL, last_error = %s, next_attempt_at = %s WHERE id = %s"
                                 + _WF_HELD, (error, next_attempt_at, run_id, attempt,
                                              attempt)).rowcount == 1

    def fail(self, run_id: int, *, error: str, at: datetime,
             attempt: int | None = None) -> bool:
        return self.conn.execute("UPDATE workflow_runs SET status = 'failed', lease_until ="
                                 " NULL, last_error = %s, done_at = %s WHERE id = %s"
                                 + _WF_HELD, (error, at, run_id, attempt, attempt)
                                 ).rowcount == 1

    def find(self, *, incident_id: str | None = None,
             statuses: Sequence[str] = ()) -> list[Any]:
        clauses: list[str] = []
        params: list[Any] = []
        if incident_id is not None:
            clauses.append("number = %s")
            params.append(incident_number(incident_id))
        if statuses:
            clauses.append("status = ANY(%s)")
            params.append(_words(statuses))
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        return [_wf_run(row) for row in self.conn.execute(
            f"SELECT {_WF_RUN} FROM workflow_runs {where} ORDER BY id", params)]
