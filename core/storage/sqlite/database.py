"""The SQLite store: connections, the writers' lock, migrations, transactions and the unit of
work. The repositories (one module each beside this one) run the queries, on the connection of
the unit of work they belong to.

Queries use prepared statements on the stdlib connection: sqlite-utils costs ~100 ms to import
and introspects tables on every insert, so it is used where it pays, for the schema migrations
(only when one is pending) and for inspection in tests.

Concurrency: WAL, a busy timeout set before WAL is switched on, writers queued on a lock file
(see _WriterLock) and `BEGIN IMMEDIATE` for every transaction that writes, so the CLI and
`im serve` write at the same time without "database is locked" errors. Outbox and inbox rows
are claimed inside a transaction with a lease, so two workers never deliver the same row and a
crashed worker's claim runs out.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from im.errors import StorageError
from im.storage.store import Store

try:
    import fcntl
except ImportError:  # not POSIX: SQLite's busy handler alone orders the processes
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from im.storage.records import DatabaseSize
    from im.storage.sqlite.breaches import SqliteBreaches
    from im.storage.sqlite.calls import SqliteCalls
    from im.storage.sqlite.connectors import SqliteConnectors
    from im.storage.sqlite.cursors import SqliteCursors
    from im.storage.sqlite.inbox import SqliteInbox
    from im.storage.sqlite.incidents import SqliteIncidents
    from im.storage.sqlite.links import SqliteLinks
    from im.storage.sqlite.logs import SqliteLogs
    from im.storage.sqlite.meta import SqliteMeta
    from im.storage.sqlite.outbox import SqliteOutbox
    from im.storage.sqlite.seen_keys import SqliteSeenKeys
    from im.storage.sqlite.timeline import SqliteTimeline
    from im.storage.sqlite.tokens import SqliteTokens
    from im.storage.sqlite.workflows import SqliteWorkflowRuns, SqliteWorkflows
    from im.storage.sqlite.workflows import SqliteWorkflowRuns, SqliteWorkflows

BUSY_TIMEOUT_MS = 30_000


# -- how values are kept: times as text, incidents by number -------------------------------


def ts(value: datetime) -> str:
    """Stored form of a time: UTC ISO 8601 with microseconds, so text order is time order."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def parse_ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def incident_id(number: int) -> str:
    return f"INC-{number}"


def lease_end(now: datetime, lease_seconds: float) -> str:
    """Stored form of when a claim made now runs out."""
    return ts(datetime.fromtimestamp(now.timestamp() + lease_seconds, UTC))


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


class SqliteUnitOfWork:
    """The repositories of one thread's connection: inside `SqliteStore.transaction()` they
    share its transaction; outside, each statement sees the latest commit. Each repository's
    module is imported the first time it is asked for, so a command loads the queries it runs
    and no others."""

    def __init__(self, store: SqliteStore, conn: sqlite3.Connection) -> None:
        self._store = store
        self.conn = conn

    def savepoint(self) -> AbstractContextManager[None]:
        return self._store.savepoint()

    def after_commit(self, callback: Callable[[], None]) -> None:
        self._store.after_commit(callback)

    @cached_property
    def incidents(self) -> SqliteIncidents:
        from im.storage.sqlite.incidents import SqliteIncidents

        return SqliteIncidents(self.conn)

    @cached_property
    def timeline(self) -> SqliteTimeline:
        from im.storage.sqlite.timeline import SqliteTimeline

        return SqliteTimeline(self.conn)

    @cached_property
    def links(self) -> SqliteLinks:
        from im.storage.sqlite.links import SqliteLinks

        return SqliteLinks(self.conn)

    @cached_property
    def outbox(self) -> SqliteOutbox:
        from im.storage.sqlite.outbox import SqliteOutbox

        return SqliteOutbox(self.conn)

    @cached_property
    def inbox(self) -> SqliteInbox:
        from im.storage.sqlite.inbox import SqliteInbox

        return SqliteInbox(self.conn)

    @cached_property
    def connectors(self) -> SqliteConnectors:
        from im.storage.sqlite.connectors import SqliteConnectors

        return SqliteConnectors(self.conn)

    @cached_property
    def cursors(self) -> SqliteCursors:
        from im.storage.sqlite.cursors import SqliteCursors

        return SqliteCursors(self.conn)

    @cached_property
    def calls(self) -> SqliteCalls:
        from im.storage.sqlite.calls import SqliteCalls

        return SqliteCalls(self.conn)

    @cached_property
    def logs(self) -> SqliteLogs:
        from im.storage.sqlite.logs import SqliteLogs

        return SqliteLogs(self.conn)

    @cached_property
    def breaches(self) -> SqliteBreaches:
        from im.storage.sqlite.breaches import SqliteBreaches

        return SqliteBreaches(self.conn)

    @cached_property
    def tokens(self) -> SqliteTokens:
        from im.storage.sqlite.tokens import SqliteTokens

        return SqliteTokens(self.conn)

    @cached_property
    def meta(self) -> SqliteMeta:
        from im.storage.sqlite.meta import SqliteMeta

        return SqliteMeta(self.conn)

    @cached_property
    def workflows(self) -> SqliteWorkflows:
        from im.storage.sqlite.workflows import SqliteWorkflows

        return SqliteWorkflows(self.conn)

    @cached_property
    def workflow_runs(self) -> SqliteWorkflowRuns:
        from im.storage.sqlite.workflows import SqliteWorkflowRuns

        return SqliteWorkflowRuns(self.conn)

    @cached_property
    def seen_keys(self) -> SqliteSeenKeys:
        from im.storage.sqlite.seen_keys import SqliteSeenKeys

        return SqliteSeenKeys(self.conn)


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


class SqliteStore(Store):
    """im's database in one SQLite file (`$IM_HOME/im.db`): one connection per thread, made
    and migrated on first use."""

    kind = "sqlite"
    _write_locks: dict[str, _WriterLock] = {}
    _write_locks_guard = threading.Lock()

    def __init__(self, path: Path) -> None:
        self.path = path
        self.location = str(path)
        self._local = threading.local()
        self._migrated = False
        self._applied_now: list[str] = []
        with SqliteStore._write_locks_guard:
            key = str(path.resolve())
            if key not in SqliteStore._write_locks:
                SqliteStore._write_locks[key] = _WriterLock(path.resolve())
            self._write_lock = SqliteStore._write_locks[key]

    # -- connection and transactions -------------------------------------------------------

    @property
    def conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            self._local.uow = None  # the repositories of a closed connection are gone with it
        return conn

    def read(self) -> SqliteUnitOfWork:
        uow: SqliteUnitOfWork | None = getattr(self._local, "uow", None)
        if uow is None:
            uow = SqliteUnitOfWork(self, self.conn)
            self._local.uow = uow
        return uow

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
            self._local.uow = None

    @contextmanager
    def transaction(self) -> Iterator[SqliteUnitOfWork]:
        """A write transaction, taken with BEGIN IMMEDIATE so it never deadlocks on upgrade.
        A nested call joins the outer transaction."""
        uow = self.read()
        conn = uow.conn
        if conn.in_transaction:
            yield uow
            return
        self._local.after_commit = []
        # Writers queue here rather than in SQLite's busy handler (see _WriterLock).
        with self._write_lock.hold():
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield uow
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

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """Inside a transaction: undo only this block if it raises."""
        conn = self.conn
        name = f"sp{id(conn)}_{getattr(self._local, 'depth', 0)}"
        self._local.depth = getattr(self._local, "depth", 0) + 1
        callbacks = getattr(self._local, "after_commit", [])
        mark = len(callbacks)
        conn.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            conn.execute(f"ROLLBACK TO {name}")
            conn.execute(f"RELEASE {name}")
            del callbacks[mark:]  # what the undone block announced is not announced
            raise
        finally:
            self._local.depth -= 1
        conn.execute(f"RELEASE {name}")

    def _migrate(self, conn: sqlite3.Connection) -> None:
        from im.storage.sqlite.migrations import MIGRATIONS

        names = [name for name, _ in MIGRATIONS]
        try:
            applied = {row[0] for row in conn.execute("SELECT name FROM migrations")}
        except sqlite3.OperationalError:
            applied = set()
        if set(names) <= applied:
            return
        import sqlite_utils

        db = sqlite_utils.Database(conn)
        done: list[str] = []
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
                done.append(name)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        self._applied_now = done

    def size(self) -> DatabaseSize:
        from im.storage.records import DatabaseSize, TableSize

        conn = self.conn
        tables = [row[0] for row in conn.execute(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            " ORDER BY name")]
        pages: dict[str, int] = {}
        try:  # dbstat: bytes per table and index, where SQLite was built with it
            owner = {row[0]: row[1] for row in conn.execute(
                "SELECT name, tbl_name FROM sqlite_schema WHERE type IN ('table', 'index')")}
            for name, used in conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"):
                table = owner.get(name, name)
                pages[table] = pages.get(table, 0) + int(used)
        except sqlite3.OperationalError:
            pass
        sizes = [TableSize(name=name, rows=conn.execute(
            f'SELECT count(*) FROM "{name}"').fetchone()[0], bytes=pages.get(name, 0))
            for name in tables]
        wal = self.path.with_name(self.path.name + "-wal")
        log_bytes = wal.stat().st_size if wal.exists() else 0
        return DatabaseSize(location=str(self.path), bytes=self.path.stat().st_size + log_bytes,
                            log_bytes=log_bytes, tables=sizes)

    def rows(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.transaction() as tx:
            return tx.conn.execute(query, tuple(params)).fetchall()

    def applied_migrations(self) -> list[str]:
        return [row[0] for row in self.conn.execute("SELECT name FROM migrations ORDER BY name")]

    def known_migrations(self) -> list[str]:
        from im.storage.sqlite.migrations import MIGRATIONS

        return [name for name, _ in MIGRATIONS]

    def migrate(self) -> list[str]:
        self.conn  # noqa: B018 - the first connection migrates
        return list(self._applied_now)

