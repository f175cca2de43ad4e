"""The database as a whole: which store, its migrations, its size by table and what is kept
how long (`im db status`); migrating it (`im db migrate`); copying an SQLite home into a
PostgreSQL database (`im db copy`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import msgspec

from im.housekeeping import Retention, retention
from im.storage.records import DatabaseSize

if TYPE_CHECKING:
    from im.runtime import Runtime
    from im.storage import Store
    from im.storage.postgres.load import TableCopy

STORE_NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


class StoreInfo(msgspec.Struct, frozen=True, kw_only=True):
    kind: str  # "sqlite" or "postgresql"
    location: str  # a file's path, or the database's URL without its password


class Migrations(msgspec.Struct, frozen=True, kw_only=True):
    applied: int
    latest: str | None
    pending: list[str]  # known to this im, not applied (opening the store applies them)
    unknown: list[str]  # applied by a later version of im


class DatabaseStatus(msgspec.Struct, frozen=True, kw_only=True):
    store: StoreInfo
    migrations: Migrations
    size: DatabaseSize
    retention: Retention
    events_days: int  # processed webhook events: the replay window and a day, not a setting


class Migrated(msgspec.Struct, frozen=True, kw_only=True):
    store: StoreInfo
    applied_now: list[str]
    migrations: Migrations


class Copied(msgspec.Struct, frozen=True, kw_only=True):
    target: str  # the URL without its password
    tables: list[TableCopy]
    committed: bool  # False where a count differed: the copy was undone


def store_info(store: Store) -> StoreInfo:
    return StoreInfo(kind=store.kind, location=store.location)


def migrations(store: Store) -> Migrations:
    applied = store.applied_migrations()
    known = store.known_migrations()
    return Migrations(applied=len(applied), latest=max(applied, default=None),
                      pending=[name for name in known if name not in applied],
                      unknown=[name for name in applied if name not in known])


def status(runtime: Runtime) -> DatabaseStatus:
    """Which store, its migrations, sizes (reading every table whole: seconds for millions of
    rows) and retention."""
    from im.inbound import REPLAY_WINDOW

    store = runtime.store
    return DatabaseStatus(store=store_info(store), migrations=migrations(store),
                          size=store.size(), retention=retention(runtime.settings),
                          events_days=REPLAY_WINDOW.days + 1)


def migrate(runtime: Runtime) -> Migrated:
    """Apply the configured store's pending migrations (its first use does as much; this says
    so, before replicas start, say)."""
    store = runtime.store
    applied_now = store.migrate()
    return Migrated(store=store_info(store), applied_now=applied_now,
                    migrations=migrations(store))


def copy_to_postgres(runtime: Runtime, url: str, *, batch_size: int = 1000,
                     progress: Callable[[str, int], None] | None = None) -> Copied:
    """Copy the SQLite database of the runtime's home into the empty PostgreSQL database at
    `url` (migrated first), in one transaction; then compare each table's rows on both sides,
    and commit only where they agree. `progress(table, rows)` after each table."""
    from im.errors import InvalidInputError
    from im.runtime import open_postgres, url_scheme
    from im.storage.sqlite import SqliteStore

    if not url.startswith(("postgresql://", "postgres://")):
        raise InvalidInputError(f"--to: a PostgreSQL database (postgresql://USER@HOST/DATABASE),"
                                f" not {url_scheme(url)}")
    source = runtime.store
    if not isinstance(source, SqliteStore):
        raise InvalidInputError(f"im db copy copies an SQLite home, and this im uses"
                                f" {STORE_NAMES.get(source.kind, source.kind)} at"
                                f" {source.location} (IM_DATABASE_URL or the settings'"
                                " database_url): unset it to copy the SQLite one")
    source.migrate()  # the same schema as this im's PostgreSQL one
    reads = source.read()
    if not (reads.incidents.find(limit=1) or reads.connectors.all() or reads.tokens.all()
            or reads.workflows.all()):
        raise InvalidInputError(f"nothing to copy: the SQLite database at {source.path} holds"
                                " no incidents, connectors, tokens or workflows (is IM_HOME"
                                " the home to move?)")
    target = open_postgres(url)
    from im.storage.postgres.load import load
    from im.storage.sqlite.export import KEPT_COUNTS, TABLES, SqliteExport

    try:
        with SqliteExport(source.path) as export:
            tables, committed = load(target, export, tables=TABLES, kept_counts=KEPT_COUNTS,
                                     batch_size=batch_size, progress=progress)
    finally:
        target.dispose()
    return Copied(target=target.location, tables=tables, committed=committed)
