"""The PostgreSQL store: a connection pool, migrations, transactions and the unit of work, for
teams that run several `im serve` replicas on one database. The repositories (repositories.py)
run the queries on the connection of the unit of work they belong to.

Connections come from a psycopg pool, opened on first use in each process (a forked worker
opens its own). Outside a transaction each statement borrows a connection for itself and sees
the latest commit; a transaction keeps one connection until it ends.

Concurrency. Every write transaction first takes one advisory lock of the database
(`pg_advisory_xact_lock`), so writes are applied one at a time across the cluster, as the
SQLite store applies them one at a time across processes: the lifecycle and sync rules (read
an incident's state, then change it) were written for that, and a write transaction holds it
for milliseconds. Queued work is claimed with `FOR UPDATE SKIP LOCKED` and a lease, so a
replica that dies mid-delivery has its claims taken over when the lease runs out. Readers
never wait.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from im.errors import StorageError
from im.storage.store import Store

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

    from im.storage.postgres import repositories as repos
    from im.storage.postgres.ratelimits import PostgresRateStorage
    from im.storage.records import DatabaseSize

# Advisory lock keys of im (a namespace of its own: the bytes "im.d" and a number).
WRITERS = 0x696D2E64_00000001  # every write transaction
MIGRATIONS_LOCK = 0x696D2E64_00000002  # whoever migrates the schema
# keys of the work that runs once in the cluster: `leader_key(name)`
_LEADER_BASE = 0x696D2E64_00010000
# the channel of work stored for the servers to do (an event received)
CHANNEL = "im_work"


def leader_key(name: str) -> int:
    """The advisory lock key of a duty that one replica runs at a time (`poll:pd`)."""
    import zlib

    return _LEADER_BASE + zlib.crc32(name.encode())


# a leader's connection whose peer vanished is found dead within about 20 s
_KEEPALIVE = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 5,
              "keepalives_count": 3}


def redacted_url(url: str) -> str:
    """The URL without its password (given before the host, or as `?password=`), for output
    and logs; a URL that cannot be read is not shown at all."""
    import re

    # as a parameter first, then before the host: everything from the user name's colon to
    # the last @ (a password may hold /, ? or #, which a URL parser takes for the path)
    url = re.sub(r"(?i)([?&]password=)[^&#]*", r"\1***", url)
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://[^:/?#@]*):.*@(?=[^@]*$)", r"\1:***@", url)


class _Result:
    """A statement's rows, read whole, and how many rows it changed: what the repositories
    ask of a cursor, whether the statement ran in a transaction or on a borrowed
    connection."""

    __slots__ = ("rows", "rowcount")

    def __init__(self, rows: list[tuple[Any, ...]], rowcount: int) -> None:
        self.rows = rows
        self.rowcount = rowcount

    def fetchone(self) -> tuple[Any, ...] | None:
        return self.rows[0] if self.rows else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self.rows

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self.rows)


class _Executor:
    """Runs statements on this thread's transaction's connection, or on one borrowed from the
    pool for the statement."""

    def __init__(self, store: PostgresStore) -> None:
        self._store = store

    def execute(self, query: str, params: Sequence[Any] | dict[str, Any] | None = None
                ) -> _Result:
        conn = self._store._tx_conn()
        if conn is not None:
            return _run(conn, query, params)
        with self._store.pool.connection() as borrowed:
            return _run(borrowed, query, params)

    def executemany(self, query: str, params: Sequence[Sequence[Any] | dict[str, Any]]
                    ) -> None:
        if not params:
            return
        conn = self._store._tx_conn()
        if conn is not None:
            conn.cursor().executemany(query, params)
            return
        with self._store.pool.connection() as borrowed, borrowed.transaction():
            borrowed.cursor().executemany(query, params)


def _run(conn: psycopg.Connection, query: str,
         params: Sequence[Any] | dict[str, Any] | None) -> _Result:
    cursor = conn.execute(query, params)
    rows = cursor.fetchall() if cursor.description is not None else []
    return _Result(rows, cursor.rowcount)


class PostgresUnitOfWork:
    """The repositories of this thread: inside `PostgresStore.transaction()` they share its
    transaction; outside, each statement sees the latest commit."""

    def __init__(self, store: PostgresStore) -> None:
        self._store = store
        self.conn = _Executor(store)

    def savepoint(self):  # type: ignore[no-untyped-def]
        return self._store.savepoint()

    def after_commit(self, callback: Callable[[], None]) -> None:
        self._store.after_commit(callback)

    @cached_property
    def _repos(self):  # type: ignore[no-untyped-def]
        from im.storage.postgres import repositories

        return repositories

    @cached_property
    def incidents(self) -> repos.PostgresIncidents:
        return self._repos.PostgresIncidents(self.conn)

    @cached_property
    def timeline(self) -> repos.PostgresTimeline:
        return self._repos.PostgresTimeline(self.conn)

    @cached_property
    def links(self) -> repos.PostgresLinks:
        return self._repos.PostgresLinks(self.conn)

    @cached_property
    def outbox(self) -> repos.PostgresOutbox:
        return self._repos.PostgresOutbox(self.conn)

    @cached_property
    def inbox(self) -> repos.PostgresInbox:
        return self._repos.PostgresInbox(self.conn)

    @cached_property
    def connectors(self) -> repos.PostgresConnectors:
        return self._repos.PostgresConnectors(self.conn)

    @cached_property
    def cursors(self) -> repos.PostgresCursors:
        return self._repos.PostgresCursors(self.conn)

    @cached_property
    def calls(self) -> repos.PostgresCalls:
        return self._repos.PostgresCalls(self.conn)

    @cached_property
    def logs(self) -> repos.PostgresLogs:
        return self._repos.PostgresLogs(self.conn)

    @cached_property
    def breaches(self) -> repos.PostgresBreaches:
        return self._repos.PostgresBreaches(self.conn)

    @cached_property
    def tokens(self) -> repos.PostgresTokens:
        return self._repos.PostgresTokens(self.conn)

    @cached_property
    def meta(self) -> repos.PostgresMeta:
        return self._repos.PostgresMeta(self.conn)

    @cached_property
    def workflows(self) -> repos.PostgresWorkflows:
        return self._repos.PostgresWorkflows(self.conn)

    @cached_property
    def workflow_runs(self) -> repos.PostgresWorkflowRuns:
        return self._repos.PostgresWorkflowRuns(self.conn)

    @cached_property
    def seen_keys(self) -> repos.PostgresSeenKeys:
        return self._repos.PostgresSeenKeys(self.conn)


# A transaction left open between statements longer than this is ended by the database: a
# server frozen (SIGSTOP, a paused VM) while it holds the writers' lock would otherwise hold
# every other server's writes for as long as it stays frozen. im's transactions never wait on
# anything outside the database between two statements.
IDLE_IN_TRANSACTION = "30s"
# The database's side of a connection whose peer vanished (a host lost: no FIN, no RST) is
# found dead after about 10 + 3 x 5 s of silence, rather than the OS's two hours.
_SERVER_KEEPALIVE = ("SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5;"
                     " SET tcp_keepalives_count = 3")


def _configure(conn: psycopg.Connection) -> None:
    conn.execute("SET TIME ZONE 'UTC'")
    conn.execute(f"SET idle_in_transaction_session_timeout = '{IDLE_IN_TRANSACTION}'")
    conn.execute(_SERVER_KEEPALIVE)


_OPEN: weakref.WeakSet[PostgresStore] = weakref.WeakSet()


def close_all() -> None:
    """Close the pools of every store of this process (the test suite, between tests)."""
    for store in list(_OPEN):
        store.dispose()


PROBE_TIMEOUT = 3.0  # seconds a readiness check waits for a connection


class PostgresStore(Store):
    """im's database on a PostgreSQL server (`IM_DATABASE_URL=postgresql://...`)."""

    kind = "postgresql"

    def __init__(self, url: str, *, max_connections: int = 20) -> None:
        self.url = url
        self.location = redacted_url(url)
        self.max_connections = max_connections
        self._local = threading.local()
        self._pool: ConnectionPool | None = None
        self._pool_pid = 0
        self._pool_guard = threading.Lock()
        self._migrated = False
        self._applied_now: list[str] = []
        self._uow = PostgresUnitOfWork(self)
        self._rate_limits: PostgresRateStorage | None = None
        _OPEN.add(self)

    # -- connections -----------------------------------------------------------------------

    @property
    def pool(self) -> ConnectionPool:
        pool = self._pool
        if pool is not None and self._pool_pid == os.getpid():
            return pool
        with self._pool_guard:
            if self._pool is None or self._pool_pid != os.getpid():
                self._pool = self._open_pool()
                self._pool_pid = os.getpid()
            return self._pool

    def _open_pool(self) -> ConnectionPool:
        import psycopg
        from psycopg_pool import ConnectionPool, PoolTimeout

        try:
            # one connection first: a refused or misspelt database is said at once, where the
            # pool would retry in the background until its timeout
            psycopg.connect(self.url, connect_timeout=10).close()
        except psycopg.Error as error:
            raise StorageError(f"cannot connect to the database at {self.location}:"
                               f" {_reason(error)}") from None
        pool = ConnectionPool(self.url, min_size=1, max_size=self.max_connections,
                              kwargs={"autocommit": True, "application_name": _name()},
                              configure=_configure, open=False,
                              timeout=30, name="im")
        try:
            pool.open(wait=True, timeout=15)
        except (PoolTimeout, psycopg.Error) as error:
            pool.close()
            raise StorageError(f"cannot connect to the database at {self.location}:"
                               f" {_reason(error)}") from None
        if not self._migrated:
            try:
                self._migrate(pool)
            except BaseException:
                pool.close()
                raise
            self._migrated = True
        return pool

    def _tx_conn(self) -> psycopg.Connection | None:
        return getattr(self._local, "conn", None)

    def close(self) -> None:
        """Nothing to do: no connection belongs to a thread here (each statement or
        transaction borrows one from the pool and gives it back), and the pool serves the
        process's other threads. `dispose()` closes the pool."""

    def dispose(self) -> None:
        """Close the pool and its connections (another is opened when next needed)."""
        with self._pool_guard:
            pool, self._pool = self._pool, None
        if pool is not None and self._pool_pid == os.getpid():
            pool.close()

    # -- transactions ----------------------------------------------------------------------

    def read(self) -> PostgresUnitOfWork:
        return self._uow

    def transaction(self) -> AbstractContextManager[PostgresUnitOfWork]:
        """A write transaction, in turn with every other writer of the database (the
        writers' advisory lock). A nested call joins the outer transaction."""
        return self._transaction(in_turn=True)

    def independent_write(self) -> AbstractContextManager[PostgresUnitOfWork]:
        """A transaction that does not wait for the writers' lock: for rows no rule reads
        before writing them, kept unique by the database's keys (webhook deliveries, call
        records, log lines). A server answering senders never waits for another applying a
        batch of events."""
        return self._transaction(in_turn=False)

    @contextmanager
    def _transaction(self, *, in_turn: bool) -> Iterator[PostgresUnitOfWork]:
        if self._tx_conn() is not None:
            yield self._uow
            return
        self._local.after_commit = []
        with self.pool.connection() as conn:
            self._local.conn = conn
            try:
                with conn.transaction():
                    if in_turn:
                        conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITERS,))
                    yield self._uow
            except BaseException:
                self._local.after_commit = []
                raise
            finally:
                self._local.conn = None
        callbacks, self._local.after_commit = self._local.after_commit, []
        for callback in callbacks:
            callback()

    def after_commit(self, callback: Callable[[], None]) -> None:
        if self._tx_conn() is not None:
            self._local.after_commit.append(callback)
        else:
            callback()

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        conn = self._tx_conn()
        if conn is None:
            raise RuntimeError("savepoint() outside a transaction")
        callbacks = self._local.after_commit
        mark = len(callbacks)
        try:
            with conn.transaction():
                yield
        except BaseException:
            del callbacks[mark:]  # what the undone block announced is not announced
            raise

    # -- several servers on one database -----------------------------------------------------

    def listener(self) -> PostgresListener:
        """A connection of its own that hears of work any server stores (the repositories
        NOTIFY in the transaction that stores it, so it is heard once committed)."""
        return PostgresListener(self.url)

    def shared_rate_limits(self) -> PostgresRateStorage:
        if self._rate_limits is None:
            from im.storage.postgres.ratelimits import PostgresRateStorage

            self._rate_limits = PostgresRateStorage(self)
        return self._rate_limits

    def leadership(self, duty: str) -> Leadership:
        return Leadership(self.url, leader_key(duty))

    # -- schema ----------------------------------------------------------------------------

    def _migrate(self, pool: ConnectionPool) -> None:
        from im.storage.postgres.migrations import MIGRATIONS

        with pool.connection() as conn:
            applied = self._applied(conn)
            if {name for name, _ in MIGRATIONS} <= set(applied):
                return
            with conn.transaction():
                # replicas starting at once: one migrates, the others wait, then find it done
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATIONS_LOCK,))
                applied = self._applied(conn)
                done: list[str] = []
                if not applied:
                    self._check_empty(conn)
                    conn.execute("CREATE TABLE IF NOT EXISTS migrations ("
                                 " name text PRIMARY KEY, applied_at timestamptz NOT NULL)")
                for name, script in MIGRATIONS:
                    if name in applied:
                        continue
                    conn.execute(script)  # type: ignore[arg-type]
                    conn.execute("INSERT INTO migrations (name, applied_at) VALUES (%s, %s)",
                                 (name, datetime.now(UTC)))
                    done.append(name)
            self._applied_now = done

    def _applied(self, conn: psycopg.Connection) -> list[str]:
        exists = conn.execute("SELECT to_regclass('migrations') IS NOT NULL").fetchone()
        if not exists or not exists[0]:
            return []
        return [row[0] for row in conn.execute("SELECT name FROM migrations ORDER BY name")]

    def _check_empty(self, conn: psycopg.Connection) -> None:
        """A database that holds another program's tables is refused, never mixed with
        im's."""
        row = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema ="
            " current_schema() AND table_name <> 'migrations'").fetchone()
        if row and row[0]:
            raise StorageError(f"the database at {self.location} holds tables of another"
                               " program (not im's); im leaves it as it is: give im a"
                               " database of its own (CREATE DATABASE im)")

    def probe_write(self, at: datetime) -> None:
        """A write, as a readiness check: answered within seconds when the database cannot
        be reached (a load balancer asks often; the pool would wait its 30 s for a
        connection)."""
        with self.pool.connection(timeout=PROBE_TIMEOUT) as conn:
            conn.execute("SET statement_timeout = '3s'")
            conn.execute("INSERT INTO meta (key, value) VALUES ('health_probe', %s)"
                         " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                         (at.astimezone(UTC).isoformat(timespec="microseconds"),))
            conn.execute("SET statement_timeout = 0")

    def rows(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.transaction() as tx:
            return tx.conn.execute(query.replace("%", "%%").replace("?", "%s"),
                                   tuple(params)).rows

    def applied_migrations(self) -> list[str]:
        with self.pool.connection() as conn:
            return self._applied(conn)

    def known_migrations(self) -> list[str]:
        from im.storage.postgres.migrations import MIGRATIONS

        return [name for name, _ in MIGRATIONS]

    def migrate(self) -> list[str]:
        self.pool  # noqa: B018 - opening the pool migrates
        return list(self._applied_now)

    def size(self) -> DatabaseSize:
        from im.storage.records import DatabaseSize, TableSize

        execute = self.read().conn.execute
        tables = [(name, int(size)) for name, size in execute(
            "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c JOIN"
            " pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND"
            " n.nspname = current_schema() ORDER BY c.relname")]
        sizes = [TableSize(name=name, rows=int(execute(
            f'SELECT count(*) FROM "{name}"').rows[0][0]), bytes=size)
            for name, size in tables]
        total = execute("SELECT pg_database_size(current_database())").rows[0][0]
        return DatabaseSize(location=self.location, bytes=int(total), log_bytes=0,
                            tables=sizes)


def _name() -> str:
    """How this process's connections are named to the database (pg_stat_activity's
    application_name): which host and process of the cluster holds what."""
    import socket

    return f"im {socket.gethostname()[:40]} {os.getpid()}"


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


class PostgresListener:
    """A connection that LISTENs on im's channel (see `notify_sql`)."""

    def __init__(self, url: str) -> None:
        import psycopg

        # keepalives: a link lost in silence is found out, and the connection made again
        self._conn = psycopg.connect(url, autocommit=True, connect_timeout=10, **_KEEPALIVE)
        self._conn.execute(f"LISTEN {CHANNEL}")

    def wait(self, timeout: float) -> set[str]:
        kinds: set[str] = set()
        for notice in self._conn.notifies(timeout=timeout, stop_after=1):
            kinds.add(notice.payload)
        return kinds

    def close(self) -> None:
        self._conn.close()


def notify_sql(kind: str) -> str:
    """The statement that tells every listening server of work of this kind ("inbox",
    "outbox"), when the transaction that runs it commits (PostgreSQL sends one notice per
    kind and transaction however many rows it stored)."""
    return f"SELECT pg_notify('{CHANNEL}', '{kind}')"


# how long the holder of a duty may say nothing before the database ends its session (and
# the duty goes to another server); holders beat every few seconds
HEARTBEAT_TIMEOUT = 10


class Leadership:
    """One duty's advisory lock, held on a connection of its own: `acquire()` takes it if no
    server holds it (without waiting), or checks that this one's connection still holds it
    (the holder's heartbeat: call it every few seconds while the duty runs). A server that
    dies loses it with its connection, and another server takes it at its next try: at once
    when its process ends, within HEARTBEAT_TIMEOUT when its host or its link is lost or it
    is frozen (the database ends a session whose holder said nothing for that long)."""

    def __init__(self, url: str, key: int) -> None:
        self.url = url
        self.key = key
        self._conn: psycopg.Connection | None = None
        self._held = False

    def acquire(self) -> bool:
        import psycopg

        try:
            if self._conn is not None and not self._conn.closed and self._held:
                # still connected: still ours (a session's advisory lock ends with it)
                self._conn.execute("SELECT 1")
                return True
            if self._conn is None or self._conn.closed:
                self._conn = psycopg.connect(self.url, autocommit=True, connect_timeout=10,
                                             application_name=_name(), **_KEEPALIVE)
                self._conn.execute(_SERVER_KEEPALIVE)
                try:  # PostgreSQL 14 and newer; older ones rely on the keepalives alone
                    self._conn.execute(
                        f"SET idle_session_timeout = '{HEARTBEAT_TIMEOUT}s'")
                except psycopg.errors.UndefinedObject:
                    pass
            row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
        except psycopg.Error:
            self.release()
            return False
        self._held = bool(row and row[0])
        return self._held

    def release(self) -> None:
        self._held = False
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - a broken connection is released all the same
                pass
