"""The Store: every read and write of im's SQLite database goes through here.

The interface is narrow on purpose, so that another store (PostgreSQL for several `im serve`
replicas) can implement it later. Queries use prepared statements on the stdlib connection:
sqlite-utils costs ~100 ms to import and introspects tables on every insert, so it is used where
it pays, for the schema migrations (only when one is pending) and for inspection in tests.

Concurrency: WAL, a busy timeout set before WAL is switched on, writers queued on a lock file
(see _WriterLock) and `BEGIN IMMEDIATE` for every transaction that writes, so the CLI and
`im serve` write at the same time without "database is locked" errors. Outbox and inbox rows are claimed inside a transaction with a lease, so two
workers never deliver the same row and a crashed worker's claim runs out.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from im.errors import StorageError

try:
    import fcntl
except ImportError:  # not POSIX: SQLite's busy handler alone orders the processes
    fcntl = None  # type: ignore[assignment]

from im.models import ConnectorRecord, Incident, Link, Severity, Status, TimelineEvent

BUSY_TIMEOUT_MS = 30_000


def ts(value: datetime) -> str:
    """Stored form of a time: UTC ISO 8601 with microseconds, so text order is time order."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def parse_ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class OutboxRow(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    connector: str
    incident_id: str
    service: str
    action: str
    payload: dict[str, Any]
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    # while a worker delivers the row (status `delivering`): when its claim runs out
    lease_until: datetime | None = None


class InboxRow(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    connector: str
    delivery_id: str
    event_type: str
    body: bytes
    received_at: datetime
    status: str
    attempts: int
    error: str | None


def _incident_id(number: int) -> str:
    return f"INC-{number}"


def _split_statements(script: str) -> Iterator[str]:
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            if statement.strip():
                yield statement
            statement = ""
    if statement.strip() and not all(
        part.strip().startswith("--") or not part.strip() for part in statement.splitlines()
    ):
        raise ValueError(f"incomplete SQL statement in migration: {statement!r}")


class _WriterLock:
    """Who may write to one database file: threads of this process queue on a lock, then
    processes queue on an exclusive `flock` of `<database>.lock`. Both wake the next writer
    as soon as the lock is released, where SQLite's own busy handler polls with sleeps of
    milliseconds, which under load (several `im serve` workers, the CLI) cost most of the
    time. The kernel releases the `flock` of a process that dies."""

    def __init__(self, path: Path) -> None:
        self.path = path.with_name(path.name + ".lock")
        self.thread_lock = threading.Lock()
        self._fd: int | None = None
        self._pid = 0

    def _file(self) -> int | None:
        if self._fd is None or self._pid != os.getpid():  # a forked child opens its own
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
                self._pid = os.getpid()
            except OSError:
                return None  # left to SQLite's busy handler
        return self._fd

    @contextmanager
    def hold(self) -> Iterator[None]:
        with self.thread_lock:
            fd = self._file() if fcntl is not None else None
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                if fd is not None:
                    fcntl.flock(fd, fcntl.LOCK_UN)


# PRAGMA application_id of im's databases (the bytes "im.d"): marks a file as im's.
APPLICATION_ID = 0x696D2E64


class Store:
    _write_locks: dict[str, _WriterLock] = {}
    _write_locks_guard = threading.Lock()

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._migrated = False
        with Store._write_locks_guard:
            key = str(path.resolve())
            if key not in Store._write_locks:
                Store._write_locks[key] = _WriterLock(path.resolve())
            self._write_lock = Store._write_locks[key]

    # -- connection and transactions -------------------------------------------------------

    @property
    def conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self._migrated and (not self.path.exists() or self.path.stat().st_size == 0):
            # A new file is made under the writers' lock: no other process sees it before it
            # is an im database, so an empty file found under the lock is not one being made
            # (it is refused, never taken for a new database). Readers of an existing
            # database never wait for this lock.
            with self._write_lock.hold():
                return self._open()
        try:
            return self._open()
        except StorageError:
            if self._migrated:
                raise
            # Another process may be making this file right now (it holds the writers' lock
            # until the file is a complete im database): look again once it has finished.
            with self._write_lock.hold():
                return self._open()

    def _open(self) -> sqlite3.Connection:
        fresh = not self.path.exists()
        if fresh:
            # The database holds connector credentials: readable by its owner only.
            fd = os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
        elif not self._migrated:
            self._check_existing()
        conn = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
            check_same_thread=False,
        )
        try:
            self._configure(conn, fresh)
        except BaseException:
            conn.close()
            raise
        return conn

    def _configure(self, conn: sqlite3.Connection, fresh: bool) -> None:
        # busy_timeout first: two processes switching a fresh file to WAL at once otherwise
        # fail with "database is locked".
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if not self._migrated and not fresh:
            self._check_ours(conn)  # before anything writes to the file
        conn.execute("PRAGMA journal_mode = WAL")
        # A 2xx to a webhook sender means "never resend": commits must survive power loss.
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        if self._migrated:
            return
        if conn.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
            # a new file, or one made before im marked its databases
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        self._migrate(conn)
        self._migrated = True

    def _check_ours(self, conn: sqlite3.Connection) -> None:
        try:
            if conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID:
                return
            tables = {row[0] for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as error:
            raise StorageError(f"{self.path} is not an im database ({error}); im leaves it"
                               " as it is: move it away to start afresh, or set IM_HOME to"
                               " another folder") from None
        if not {"migrations", "incidents"} <= tables:
            raise StorageError(f"{self.path} is an SQLite database of another program"
                               " (not im's); im leaves it as it is: move it away, or set"
                               " IM_HOME to another folder")

    def _check_existing(self) -> None:
        """An existing file that cannot be an im database is refused, never initialised: an
        empty one (a failed copy, a full disk) would otherwise start a new, empty history."""
        size = self.path.stat().st_size
        if size == 0:
            raise StorageError(f"{self.path} is empty (0 bytes), so not an im database; im"
                               " leaves it as it is: restore it from a backup, or remove it"
                               " to start afresh")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction, taken with BEGIN IMMEDIATE so it never deadlocks on upgrade.
        A nested call joins the outer transaction."""
        conn = self.conn
        if conn.in_transaction:
            yield conn
            return
        self._local.after_commit = []
        # Writers queue here rather than in SQLite's busy handler (see _WriterLock).
        with self._write_lock.hold():
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                self._local.after_commit = []
                raise
            conn.execute("COMMIT")
        callbacks, self._local.after_commit = self._local.after_commit, []
        for callback in callbacks:
            callback()

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once the current transaction commits (at once outside of one);
        never if it rolls back."""
        if self.conn.in_transaction:
            self._local.after_commit.append(callback)
        else:
            callback()

    def _migrate(self, conn: sqlite3.Connection) -> None:
        from im.migrations import MIGRATIONS

        names = [name for name, _ in MIGRATIONS]
        try:
            applied = {row[0] for row in conn.execute("SELECT name FROM migrations")}
        except sqlite3.OperationalError:
            applied = set()
        if set(names) <= applied:
            return
        import sqlite_utils

        db = sqlite_utils.Database(conn)
        conn.execute("BEGIN IMMEDIATE")
        try:
            db["migrations"].create(  # type: ignore[union-attr]
                {"name": str, "applied_at": str}, pk="name", if_not_exists=True
            )
            # Another process may have migrated while this one waited for the lock.
            applied = {row[0] for row in conn.execute("SELECT name FROM migrations")}
            for name, script in MIGRATIONS:
                if name in applied:
                    continue
                for statement in _split_statements(script):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO migrations (name, applied_at) VALUES (?, ?)",
                    (name, ts(datetime.now(UTC))),
                )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def applied_migrations(self) -> list[str]:
        return [row[0] for row in self.conn.execute("SELECT name FROM migrations ORDER BY name")]

    # -- incidents -------------------------------------------------------------------------

    def insert_incident(self, *, title: str, description: str, severity: Severity,
                        services: Sequence[str], fields: dict[str, str], correlation_id: str,
                        created_by: str, at: datetime) -> Incident:
        with self.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO incidents (title, description, severity, status, fields,"
                " correlation_id, created_by, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (title, description, severity.value, Status.OPEN.value, json.dumps(fields),
                 correlation_id, created_by, ts(at), ts(at)),
            )
            number = cursor.lastrowid
            assert number is not None
            conn.executemany(
                "INSERT INTO incident_services (number, position, service) VALUES (?, ?, ?)",
                [(number, i, service) for i, service in enumerate(services)],
            )
        incident = self.get_incident(_incident_id(number))
        assert incident is not None
        return incident

    _INCIDENT_COLUMNS = (
        "number, title, description, severity, status, assignee, fields, correlation_id,"
        " created_by, created_at, updated_at, mitigated_at, resolved_at, closed_at, reopened_at"
    )

    def _incidents(self, where: str = "", params: Sequence[Any] = (),
                   suffix: str = "") -> list[Incident]:
        rows = self.conn.execute(
            f"SELECT {self._INCIDENT_COLUMNS} FROM incidents {where} {suffix}", params
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
        return [
            Incident(
                id=_incident_id(row[0]), title=row[1], description=row[2],
                severity=Severity(row[3]), status=Status(row[4]), assignee=row[5],
                fields=json.loads(row[6]), correlation_id=row[7], created_by=row[8],
                created_at=parse_ts(row[9]), updated_at=parse_ts(row[10]),  # type: ignore[arg-type]
                mitigated_at=parse_ts(row[11]), resolved_at=parse_ts(row[12]),
                closed_at=parse_ts(row[13]), reopened_at=parse_ts(row[14]),
                services=services[row[0]],
            )
            for row in rows
        ]

    def get_incident(self, incident_id: str) -> Incident | None:
        try:
            number = int(incident_id.removeprefix("INC-"))
        except ValueError:
            return None
        found = self._incidents("WHERE number = ?", (number,))
        return found[0] if found else None

    def find_incident(self, *, correlation_id: str) -> Incident | None:
        found = self._incidents("WHERE correlation_id = ?", (correlation_id,))
        return found[0] if found else None

    def list_incidents(self, *, statuses: Sequence[Status] = (),
                       severities: Sequence[Severity] = (), services: Sequence[str] = (),
                       limit: int | None = None) -> list[Incident]:
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
        return self._incidents(where, params, suffix)

    def update_incident(self, incident_id: str, at: datetime, **changes: Any) -> None:
        """Set columns of an incident; datetimes are stored in the stored time format."""
        values = {k: ts(v) if isinstance(v, datetime) else v for k, v in changes.items()}
        values["updated_at"] = ts(at)
        assignments = ", ".join(f"{column} = ?" for column in values)
        with self.transaction() as conn:
            conn.execute(
                f"UPDATE incidents SET {assignments} WHERE number = ?",
                [*values.values(), int(incident_id.removeprefix("INC-"))],
            )

    # -- timeline --------------------------------------------------------------------------

    def add_timeline(self, incident_id: str, *, at: datetime, kind: str, text: str, actor: str,
                     system: str, data: dict[str, Any] | None = None) -> TimelineEvent:
        with self.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO timeline (number, at, kind, text, actor, system, data)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (int(incident_id.removeprefix("INC-")), ts(at), kind, text, actor, system,
                 json.dumps(data or {})),
            )
        assert cursor.lastrowid is not None
        return TimelineEvent(id=cursor.lastrowid, incident_id=incident_id, at=at, kind=kind,
                             text=text, actor=actor, system=system, data=data or {})

    def timeline(self, incident_id: str) -> list[TimelineEvent]:
        number = int(incident_id.removeprefix("INC-"))
        return [
            TimelineEvent(id=row[0], incident_id=incident_id, at=parse_ts(row[1]),  # type: ignore[arg-type]
                          kind=row[2], text=row[3], actor=row[4], system=row[5],
                          data=json.loads(row[6]))
            for row in self.conn.execute(
                "SELECT id, at, kind, text, actor, system, data FROM timeline"
                " WHERE number = ? ORDER BY at, id", (number,),
            )
        ]

    # -- connectors ------------------------------------------------------------------------

    def save_connector(self, record: ConnectorRecord) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO connectors (name, type, settings, enabled, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET"
                " type = excluded.type, settings = excluded.settings,"
                " enabled = excluded.enabled, updated_at = excluded.updated_at",
                (record.name, record.type, json.dumps(record.settings), int(record.enabled),
                 ts(record.created_at), ts(record.updated_at)),
            )

    def _connector(self, row: Sequence[Any]) -> ConnectorRecord:
        return ConnectorRecord(name=row[0], type=row[1], settings=json.loads(row[2]),
                               enabled=bool(row[3]), created_at=parse_ts(row[4]),  # type: ignore[arg-type]
                               updated_at=parse_ts(row[5]))  # type: ignore[arg-type]

    def get_connector(self, name: str) -> ConnectorRecord | None:
        row = self.conn.execute(
            "SELECT name, type, settings, enabled, created_at, updated_at FROM connectors"
            " WHERE name = ?", (name,),
        ).fetchone()
        return self._connector(row) if row else None

    def list_connectors(self) -> list[ConnectorRecord]:
        return [
            self._connector(row)
            for row in self.conn.execute(
                "SELECT name, type, settings, enabled, created_at, updated_at FROM connectors"
                " ORDER BY name"
            )
        ]

    def delete_connector(self, name: str) -> None:
        """Remove a connector and what only it used; links stay for the incidents' history."""
        with self.transaction() as conn:
            conn.execute("DELETE FROM connectors WHERE name = ?", (name,))
            conn.execute("DELETE FROM outbox WHERE connector = ? AND status IN"
                         " ('pending', 'delivering')", (name,))
            conn.execute("DELETE FROM sync_cursors WHERE connector = ?", (name,))

    def last_sync(self, connector: str) -> datetime | None:
        """When a connector last exchanged something: a delivery, an event, or a poll."""
        row = self.conn.execute(
            "SELECT max(at) FROM ("
            " SELECT max(done_at) AS at FROM outbox WHERE connector = :c AND status = 'done'"
            " UNION ALL SELECT max(processed_at) FROM inbox WHERE connector = :c"
            " AND status = 'done'"
            " UNION ALL SELECT updated_at FROM sync_cursors WHERE connector = :c)",
            {"c": connector},
        ).fetchone()
        return parse_ts(row[0]) if row else None

    # -- links -----------------------------------------------------------------------------

    def upsert_link(self, link: Link, *, initial_status: str | None = None) -> None:
        """Insert or update a link; fields given as None keep their stored values.
        `initial_status` is the remote status of a link that does not exist yet, when
        `link.remote_status` is None (an existing link keeps its own)."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO links (number, connector, service, remote_id, remote_number,"
                " remote_url, remote_status, updated_at, remote_updated_at)"
                " VALUES (:number, :connector, :service, :remote_id, :remote_number,"
                " :remote_url, coalesce(:remote_status, :initial_status), :updated_at,"
                " :remote_updated_at)"
                " ON CONFLICT (number, connector, service) DO UPDATE SET"
                " remote_id = excluded.remote_id,"
                " remote_number = coalesce(excluded.remote_number, remote_number),"
                " remote_url = coalesce(excluded.remote_url, remote_url),"
                " remote_status = coalesce(:remote_status, remote_status),"
                " remote_updated_at = coalesce(excluded.remote_updated_at, remote_updated_at),"
                " updated_at = excluded.updated_at",
                {"number": int(link.incident_id.removeprefix("INC-")),
                 "connector": link.connector, "service": link.service,
                 "remote_id": link.remote_id, "remote_number": link.remote_number,
                 "remote_url": link.remote_url, "remote_status": link.remote_status,
                 "initial_status": initial_status,
                 "updated_at": ts(link.updated_at or datetime.now(UTC)),
                 "remote_updated_at": ts(link.remote_updated_at)
                 if link.remote_updated_at else None},
            )

    def links(self, incident_id: str | None = None, *, connector: str | None = None,
              remote_id: str | None = None) -> list[Link]:
        clauses, params = [], []  # type: ignore[var-annotated]
        if incident_id is not None:
            clauses.append("number = ?")
            params.append(int(incident_id.removeprefix("INC-")))
        if connector is not None:
            clauses.append("connector = ?")
            params.append(connector)
        if remote_id is not None:
            clauses.append("remote_id = ?")
            params.append(remote_id)
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        return [
            Link(incident_id=_incident_id(row[0]), connector=row[1], service=row[2],
                 remote_id=row[3], remote_number=row[4], remote_url=row[5],
                 remote_status=row[6], updated_at=parse_ts(row[7]),
                 remote_updated_at=parse_ts(row[8]))
            for row in self.conn.execute(
                "SELECT number, connector, service, remote_id, remote_number, remote_url,"
                f" remote_status, updated_at, remote_updated_at FROM links {where}"
                " ORDER BY number, connector, service", params,
            )
        ]

    # -- outbox ----------------------------------------------------------------------------

    def enqueue(self, conn: sqlite3.Connection, *, connector: str, incident_id: str,
                service: str, action: str, payload: dict[str, Any], at: datetime) -> None:
        """Add an outbox row; call inside the transaction that makes the local change."""
        conn.execute(
            "INSERT INTO outbox (connector, number, service, action, payload, next_attempt_at,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (connector, int(incident_id.removeprefix("INC-")), service, action,
             json.dumps(payload), ts(at), ts(at)),
        )

    _OUTBOX_COLUMNS = ("id, connector, number, service, action, payload, status, attempts,"
                       " next_attempt_at, last_error, created_at, lease_until")

    def _outbox_row(self, row: Sequence[Any]) -> OutboxRow:
        return OutboxRow(id=row[0], connector=row[1], incident_id=_incident_id(row[2]),
                         service=row[3], action=row[4], payload=json.loads(row[5]),
                         status=row[6], attempts=row[7],
                         next_attempt_at=parse_ts(row[8]),  # type: ignore[arg-type]
                         last_error=row[9], created_at=parse_ts(row[10]),  # type: ignore[arg-type]
                         lease_until=parse_ts(row[11]))

    def claim_outbox(self, *, now: datetime, lease_seconds: float,
                     connector: str | None = None, incident_id: str | None = None,
                     due_only: bool = True, exclude: Sequence[int] = ()) -> OutboxRow | None:
        """Claim the next deliverable row, or None.

        A row is deliverable when it is pending (and due, unless `due_only` is off) or its
        claim's lease ran out, and no earlier row of the same incident and connector is still
        waiting: a connector sees each incident's changes in the order they were made.
        """
        clauses = ["(o.status = 'pending' OR (o.status = 'delivering' AND o.lease_until < :now))"]
        if due_only:
            clauses.append("(o.status = 'delivering' OR o.next_attempt_at <= :now)")
        params: dict[str, Any] = {"now": ts(now)}
        if connector is not None:
            clauses.append("o.connector = :connector")
            params["connector"] = connector
        if incident_id is not None:
            clauses.append("o.number = :number")
            params["number"] = int(incident_id.removeprefix("INC-"))
        if exclude:
            clauses.append(f"o.id NOT IN ({','.join(str(int(i)) for i in exclude)})")
        params["lease"] = ts(datetime.fromtimestamp(now.timestamp() + lease_seconds, UTC))
        with self.transaction() as conn:
            row = conn.execute(
                f"SELECT {self._OUTBOX_COLUMNS} FROM outbox o WHERE {' AND '.join(clauses)}"
                " AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.connector = o.connector"
                " AND e.number = o.number AND e.id < o.id"
                " AND e.status IN ('pending', 'delivering'))"
                " ORDER BY o.next_attempt_at, o.id LIMIT 1", params,
            ).fetchone()
            if row is None:
                return None
            conn.execute(
                "UPDATE outbox SET status = 'delivering', lease_until = :lease,"
                " attempts = attempts + 1 WHERE id = :id", {**params, "id": row[0]},
            )
        claimed = self._outbox_row(row)
        return msgspec.structs.replace(claimed, status="delivering", attempts=claimed.attempts + 1,
                                       lease_until=parse_ts(params["lease"]))

    def finish_outbox(self, row_id: int, *, at: datetime) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE outbox SET status = 'done', done_at = ?, lease_until = NULL,"
                         " last_error = NULL WHERE id = ?", (ts(at), row_id))

    def retry_outbox(self, row_id: int, *, error: str, next_attempt_at: datetime) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE outbox SET status = 'pending', lease_until = NULL,"
                         " last_error = ?, next_attempt_at = ? WHERE id = ?",
                         (error, ts(next_attempt_at), row_id))

    def release_outbox(self, row_id: int, *, at: datetime) -> None:
        """Give a claimed row back, due at once (its delivery was interrupted); a row already
        finished is left as it is. Its attempt stays counted: the next one checks what the
        interrupted one may have done remotely."""
        with self.transaction() as conn:
            conn.execute("UPDATE outbox SET status = 'pending', lease_until = NULL,"
                         " next_attempt_at = ? WHERE id = ? AND status = 'delivering'",
                         (ts(at), row_id))

    def fail_outbox(self, row_id: int, *, error: str, at: datetime) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE outbox SET status = 'failed', lease_until = NULL,"
                         " last_error = ?, done_at = ? WHERE id = ?", (error, ts(at), row_id))

    def requeue_failed_outbox(self, *, connector: str, at: datetime,
                              incident_id: str | None = None) -> int:
        """Put failed rows back in line (the operator fixed the cause)."""
        extra, params = "", [ts(at), connector]
        if incident_id is not None:
            extra = " AND number = ?"
            params.append(int(incident_id.removeprefix("INC-")))
        with self.transaction() as conn:
            return conn.execute("UPDATE outbox SET status = 'pending', attempts = 0,"
                                " next_attempt_at = ?, done_at = NULL WHERE connector = ?"
                                f" AND status = 'failed'{extra}", params).rowcount

    def outbox(self, *, connector: str | None = None, statuses: Sequence[str] = (),
               incident_id: str | None = None) -> list[OutboxRow]:
        clauses, params = [], []  # type: ignore[var-annotated]
        if connector is not None:
            clauses.append("connector = ?")
            params.append(connector)
        if statuses:
            clauses.append(f"status IN ({','.join('?' * len(statuses))})")
            params += list(statuses)
        if incident_id is not None:
            clauses.append("number = ?")
            params.append(int(incident_id.removeprefix("INC-")))
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        return [self._outbox_row(row) for row in self.conn.execute(
            f"SELECT {self._OUTBOX_COLUMNS} FROM outbox {where} ORDER BY id", params)]

    # -- inbox -----------------------------------------------------------------------------

    def store_inbox(self, *, connector: str, delivery_id: str, event_type: str, body: bytes,
                    at: datetime) -> bool:
        """Store a raw inbound event; False when this delivery id was stored before."""
        return self.store_inbox_many([(connector, delivery_id, event_type, body, at)])[0]

    def store_inbox_many(self, events: Sequence[tuple[str, str, str, bytes, datetime]]
                         ) -> list[bool]:
        """Store (connector, delivery id, event type, body, received at) events in one
        transaction (one fsync for all); for each, whether it was new. Two statements per
        batch, not one per event: this is the webhook hot path."""
        with self.transaction() as conn:
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
                    existing.update((connector, row[0]) for row in conn.execute(
                        "SELECT delivery_id FROM inbox WHERE connector = ? AND delivery_id IN"
                        f" ({','.join('?' * len(chunk))})", [connector, *chunk]))
            new, fresh = [], []
            for event, key in zip(events, keys, strict=True):
                is_new = key not in existing
                if is_new:
                    existing.add(key)  # a duplicate within the batch is a duplicate too
                    fresh.append((event[0], event[1], event[2], event[3], ts(event[4])))
                new.append(is_new)
            conn.executemany(
                "INSERT INTO inbox (connector, delivery_id, event_type, body, received_at)"
                " VALUES (?, ?, ?, ?, ?)", fresh)
        return new

    _INBOX_COLUMNS = ("id, connector, delivery_id, event_type, body, received_at, status,"
                      " attempts, error")

    def _inbox_row(self, row: Sequence[Any]) -> InboxRow:
        return InboxRow(id=row[0], connector=row[1], delivery_id=row[2], event_type=row[3],
                        body=bytes(row[4]), received_at=parse_ts(row[5]),  # type: ignore[arg-type]
                        status=row[6], attempts=row[7], error=row[8])

    def claim_inbox(self, *, now: datetime, lease_seconds: float,
                    connector: str | None = None, limit: int = 1) -> list[InboxRow]:
        """Claim up to `limit` of the oldest pending events (or ones whose claim's lease ran
        out), oldest first."""
        params: dict[str, Any] = {
            "now": ts(now), "limit": limit,
            "lease": ts(datetime.fromtimestamp(now.timestamp() + lease_seconds, UTC)),
        }
        extra = ""
        if connector is not None:
            extra = " AND connector = :connector"
            params["connector"] = connector
        with self.transaction() as conn:
            # Two index-ordered reads of `limit` rows each, merged: one query with OR would
            # sort every pending row on each claim, which a burst of webhooks makes many.
            rows = sorted(conn.execute(
                f"SELECT {self._INBOX_COLUMNS} FROM inbox WHERE status = 'pending'{extra}"
                " ORDER BY id LIMIT :limit", params).fetchall() + conn.execute(
                f"SELECT {self._INBOX_COLUMNS} FROM inbox WHERE status = 'processing'"
                f" AND lease_until < :now{extra} ORDER BY id LIMIT :limit", params,
            ).fetchall())[:limit]
            conn.executemany("UPDATE inbox SET status = 'processing', lease_until = :lease,"
                             " attempts = attempts + 1 WHERE id = :id",
                             [{**params, "id": row[0]} for row in rows])
        return [msgspec.structs.replace(claimed, status="processing",
                                        attempts=claimed.attempts + 1)
                for claimed in map(self._inbox_row, rows)]

    @contextmanager
    def savepoint(self) -> Iterator[sqlite3.Connection]:
        """Inside a transaction: undo only this block if it raises."""
        conn = self.conn
        name = f"sp{id(conn)}_{getattr(self._local, 'depth', 0)}"
        self._local.depth = getattr(self._local, "depth", 0) + 1
        conn.execute(f"SAVEPOINT {name}")
        try:
            yield conn
        except BaseException:
            conn.execute(f"ROLLBACK TO {name}")
            conn.execute(f"RELEASE {name}")
            raise
        finally:
            self._local.depth -= 1
        conn.execute(f"RELEASE {name}")

    def release_inbox(self, row_ids: Sequence[int]) -> None:
        """Give claimed events back, untouched, to be processed on a later pass."""
        with self.transaction() as conn:
            conn.executemany("UPDATE inbox SET status = 'pending', lease_until = NULL"
                             " WHERE id = ?", [(row_id,) for row_id in row_ids])

    def finish_inbox(self, row_id: int, *, at: datetime, status: str = "done",
                     error: str | None = None) -> None:
        """Mark a claimed event processed (`done`) or set aside (`quarantined`, with why)."""
        with self.transaction() as conn:
            conn.execute("UPDATE inbox SET status = ?, error = ?, processed_at = ?,"
                         " lease_until = NULL WHERE id = ?", (status, error, ts(at), row_id))

    def requeue_inbox(self, *, connector: str, ids: Sequence[int] = ()) -> int:
        """Put quarantined events back in line (all of a connector's, or these ids)."""
        extra = f" AND id IN ({','.join(str(int(i)) for i in ids)})" if ids else ""
        with self.transaction() as conn:
            cursor = conn.execute("UPDATE inbox SET status = 'pending', error = NULL,"
                                  " lease_until = NULL WHERE connector = ? AND"
                                  f" status = 'quarantined'{extra}", (connector,))
        return cursor.rowcount

    def inbox(self, *, connector: str | None = None,
              statuses: Sequence[str] = ()) -> list[InboxRow]:
        clauses, params = [], []  # type: ignore[var-annotated]
        if connector is not None:
            clauses.append("connector = ?")
            params.append(connector)
        if statuses:
            clauses.append(f"status IN ({','.join('?' * len(statuses))})")
            params += list(statuses)
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        return [self._inbox_row(row) for row in self.conn.execute(
            f"SELECT {self._INBOX_COLUMNS} FROM inbox {where} ORDER BY id", params)]

    # -- calls and logs ------------------------------------------------------------------

    def record_call(self, *, connector: str, at: datetime, method: str, path: str,
                    status: int | None, duration_ms: float, error: str | None,
                    rate_limit: int | None = None, rate_remaining: int | None = None) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO calls (connector, at, method, path, status, duration_ms, error,"
                " rate_limit, rate_remaining) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (connector, ts(at), method, path, status, duration_ms, error, rate_limit,
                 rate_remaining))

    def add_logs(self, entries: Sequence[dict[str, Any]]) -> None:
        """Store log entries (at, level, levelno, component, connector, message, data)."""
        with self.transaction() as conn:
            conn.executemany(
                "INSERT INTO logs (at, level, levelno, component, connector, message, data)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(ts(e["at"]), e["level"], e["levelno"], e["component"], e["connector"],
                  e["message"], json.dumps(e["data"], default=str)) for e in entries])

    def purge(self, *, inbox_before: datetime, logs_before: datetime,
              calls_before: datetime) -> dict[str, int]:
        """Forget what is past its keeping time: processed events (after the replay window),
        old log lines and call records."""
        with self.transaction() as conn:
            return {
                "inbox": conn.execute("DELETE FROM inbox WHERE status = 'done' AND"
                                      " received_at < ?", (ts(inbox_before),)).rowcount,
                "logs": conn.execute("DELETE FROM logs WHERE at < ?",
                                     (ts(logs_before),)).rowcount,
                "calls": conn.execute("DELETE FROM calls WHERE at < ?",
                                      (ts(calls_before),)).rowcount,
            }

    def logs(self, *, since: datetime | None = None, min_level: int = 0,
             component: str | None = None, text: str | None = None, after_id: int = 0,
             limit: int = 1000) -> list[dict[str, Any]]:
        clauses = ["id > :after", "levelno >= :level"]
        params: dict[str, Any] = {"after": after_id, "level": min_level, "limit": limit}
        if since is not None:
            clauses.append("at >= :since")
            params["since"] = ts(since)
        if component:
            clauses.append("component = :component")
            params["component"] = component
        if text:
            # the text is matched as written: LIKE's own wildcards (% and _) are escaped
            clauses.append("(component LIKE :text ESCAPE '\\' OR coalesce(connector, '')"
                           " LIKE :text ESCAPE '\\' OR message LIKE :text ESCAPE '\\'"
                           " OR data LIKE :text ESCAPE '\\')")
            escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            params["text"] = f"%{escaped}%"
        rows = self.conn.execute(
            "SELECT id, at, level, component, connector, message, data FROM (SELECT * FROM logs"
            f" WHERE {' AND '.join(clauses)} ORDER BY id DESC LIMIT :limit) ORDER BY id",
            params).fetchall()
        return [{"id": r[0], "at": parse_ts(r[1]), "level": r[2], "component": r[3],
                 "connector": r[4], "message": r[5], "data": json.loads(r[6])} for r in rows]

    # -- sync cursors and small settings ---------------------------------------------------

    def get_cursor(self, connector: str) -> str | None:
        row = self.conn.execute("SELECT cursor FROM sync_cursors WHERE connector = ?",
                                (connector,)).fetchone()
        return row[0] if row else None

    def set_cursor(self, connector: str, cursor: str, *, at: datetime) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT INTO sync_cursors (connector, cursor, updated_at)"
                         " VALUES (?, ?, ?) ON CONFLICT (connector) DO UPDATE SET"
                         " cursor = excluded.cursor, updated_at = excluded.updated_at",
                         (connector, cursor, ts(at)))

    def recorded_breaches(self, numbers: Sequence[int]) -> set[tuple[int, str, datetime]]:
        """(number, kind, started_at) of the SLA breaches recorded for these incidents."""
        return {(number, kind, parse_ts(started))  # type: ignore[misc]
                for number, kind, started in self.conn.execute(
                    "SELECT number, kind, started_at FROM sla_breaches WHERE number IN"
                    " (SELECT value FROM json_each(?))", (json.dumps(list(numbers)),))}

    # -- API tokens (hashes only) ---------------------------------------------------------

    def insert_api_token(self, *, name: str, hash: str, read_only: bool,
                         created_at: datetime) -> bool:
        """False when a token of that name exists already."""
        with self.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO api_tokens (name, hash, read_only, created_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (name) DO NOTHING", (name, hash, int(read_only), ts(created_at)))
            return cursor.rowcount == 1

    def replace_api_token_hash(self, name: str, hash: str) -> bool:
        with self.transaction() as conn:
            return conn.execute("UPDATE api_tokens SET hash = ? WHERE name = ?",
                                (hash, name)).rowcount == 1

    def delete_api_token(self, name: str) -> bool:
        with self.transaction() as conn:
            return conn.execute("DELETE FROM api_tokens WHERE name = ?", (name,)).rowcount == 1

    def api_tokens(self) -> list[tuple[str, bool, datetime]]:
        """(name, read_only, created_at) of every token, by name."""
        return [(name, bool(read_only), parse_ts(created))  # type: ignore[misc]
                for name, read_only, created in self.conn.execute(
                    "SELECT name, read_only, created_at FROM api_tokens ORDER BY name")]

    def api_token_by_hash(self, hash: str) -> tuple[str, bool] | None:
        """(name, read_only) of the token with that hash."""
        row = self.conn.execute("SELECT name, read_only FROM api_tokens WHERE hash = ?",
                                (hash,)).fetchone()
        return (row[0], bool(row[1])) if row else None

    def pop_meta(self, key: str) -> str | None:
        """Remove a meta value, returning it."""
        with self.transaction() as conn:
            row = conn.execute("DELETE FROM meta WHERE key = ? RETURNING value",
                               (key,)).fetchone()
        return row[0] if row else None

    def probe_write(self, at: datetime) -> None:
        """A write that must reach the disk, as a readiness check: raises when the database
        is read only, full or damaged."""
        with self.transaction() as conn:
            conn.execute("INSERT INTO meta (key, value) VALUES ('health_probe', ?) ON CONFLICT"
                         " (key) DO UPDATE SET value = excluded.value", (ts(at),))

    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key)"
                         " DO UPDATE SET value = excluded.value", (key, value))
