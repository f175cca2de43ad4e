"""Another store's rows written into an empty PostgreSQL database, for `im db copy`: every
table in one transaction (a failure leaves the database as empty as it was), with COPY, the
numbers kept (INC-7 stays INC-7) and the identity sequences set past them.

Values arrive as the SQLite store keeps them and are written in PostgreSQL's types: times (ISO
text, UTC) and JSON (text) are parsed by the server on the way in, 0/1 become booleans, and
bodies bytes. The kept counts follow from the triggers, as for any insert.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from im.errors import StorageError

if TYPE_CHECKING:
    import psycopg

    from im.storage.postgres.database import PostgresStore


class Source(Protocol):
    """What the copy reads: im.storage.sqlite.export.SqliteExport."""

    def columns(self, table: str) -> list[str]: ...
    def count(self, table: str) -> int: ...
    def rows(self, table: str, columns: list[str], batch_size: int = ...
             ) -> Iterator[list[tuple[Any, ...]]]: ...
    def kept_counts(self, table: str) -> set[tuple[Any, ...]]: ...
    def last_ids(self) -> dict[str, int]: ...


class TableCopy(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    source_rows: int
    target_rows: int  # counted in the target after the copy, before the commit
    # the same rows: as many, or for a count kept by triggers, the same counts that are not 0
    same: bool


def im_rows(conn: psycopg.Connection, tables: list[str]) -> dict[str, int]:
    """The tables of `tables` that hold rows, and how many."""
    found = {}
    for table in tables:
        row = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()
        if row and row[0]:
            found[table] = int(row[0])
    return found


class _Mismatch(Exception):
    """Rolls the copy back where the counts differ."""


def load(store: PostgresStore, source: Source, *, tables: list[str], kept_counts: list[str],
         batch_size: int = 1000, progress: Callable[[str, int], None] | None = None
         ) -> tuple[list[TableCopy], bool]:
    """Copy `tables` from `source` into the store's database, which must hold none of im's
    rows; then compare each table's rows on both sides (and the `kept_counts` tables' counts)
    and commit only where all agree. Returns the comparison and whether it was committed."""
    import psycopg

    from im.storage.postgres.database import WRITERS

    store.migrate()
    compared: list[TableCopy] = []
    try:
        with store.pool.connection() as conn:
            try:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITERS,))
                    _check_empty(store, conn, tables)
                    types = _column_types(conn)
                    for table in tables:
                        rows = _copy_table(conn, source, table, types.get(table, {}),
                                           batch_size)
                        if progress is not None:
                            progress(table, rows)
                    _move_sequences(conn, source)
                    compared = _compare(conn, source, tables, kept_counts)
                    if not all(t.same for t in compared):
                        raise _Mismatch
            except _Mismatch:
                return compared, False
    except psycopg.Error as error:
        raise StorageError(f"the copy to {store.location} failed and was undone (the database"
                           f" is as empty as before): {_first_line(error)}") from None
    return compared, True


def _check_empty(store: PostgresStore, conn: psycopg.Connection, tables: list[str]) -> None:
    held = im_rows(conn, tables)
    if held:
        what = ", ".join(f"{rows:,} in {table}" for table, rows in held.items())
        raise StorageError(f"the database at {store.location} already holds im data ({what});"
                           " im copies only into an empty database: make a new one"
                           " (CREATE DATABASE im)")


def _column_types(conn: psycopg.Connection) -> dict[str, dict[str, str]]:
    types: dict[str, dict[str, str]] = {}
    for table, column, data_type in conn.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"):
        types.setdefault(table, {})[column] = data_type
    return types


def _copy_table(conn: psycopg.Connection, source: Source, table: str, types: dict[str, str],
                batch_size: int) -> int:
    columns = source.columns(table)
    if set(columns) != set(types):
        raise StorageError(f"table {table} has other columns in the two databases (source:"
                           f" {', '.join(columns)}; target: {', '.join(types)}): update im"
                           " and migrate both first")
    convert = [_converter(types[name]) for name in columns]
    names = ", ".join(f'"{name}"' for name in columns)
    count = 0
    with conn.cursor().copy(f'COPY "{table}" ({names}) FROM STDIN') as copy:
        for batch in source.rows(table, columns, batch_size):
            for row in batch:
                copy.write_row(_converted(convert, row))
            count += len(batch)
    return count


def _converted(convert: list[Callable[[Any], Any]], row: tuple[Any, ...]) -> list[Any]:
    return [value if value is None else to(value) for to, value in zip(convert, row, strict=True)]


def _converter(data_type: str) -> Callable[[Any], Any]:
    if data_type == "boolean":
        return bool
    if data_type == "bytea":
        return lambda value: value.encode() if isinstance(value, str) else bytes(value)
    # timestamptz and json from their text (the server parses them: a value that is not
    # one fails the copy), numbers and text as they are
    return lambda value: value


def _move_sequences(conn: psycopg.Connection, source: Source) -> None:
    """Set each identity past the numbers copied, and past those SQLite gave to rows gone
    since (a number is never given twice)."""
    last = source.last_ids()
    for table, column in conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE"
            " table_schema = current_schema() AND is_identity = 'YES'").fetchall():
        row = conn.execute(f'SELECT max("{column}") FROM "{table}"').fetchone()
        value = max(int(row[0]) if row and row[0] is not None else 0, last.get(table, 0))
        if value:
            conn.execute("SELECT setval(pg_get_serial_sequence(%s, %s), %s)",
                         (table, column, value))


def _compare(conn: psycopg.Connection, source: Source, tables: list[str],
             kept_counts: list[str]) -> list[TableCopy]:
    compared = []
    for table in tables:
        theirs = source.count(table)
        ours = int(conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])  # type: ignore[index]
        compared.append(TableCopy(name=table, source_rows=theirs, target_rows=ours,
                                  same=ours == theirs))
    for table in kept_counts:
        # a count's key and its total (the inbox's counts are kept as changes to add up)
        key = ", ".join(f'"{name}"' for (name,) in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema ="
            " current_schema() AND table_name = %s AND column_name NOT IN ('id', 'n')"
            " ORDER BY ordinal_position", (table,)))
        kept = set(conn.execute(f'SELECT {key}, sum(n) FROM "{table}" GROUP BY {key}'
                                " HAVING sum(n) <> 0"))
        counted = source.kept_counts(table)
        compared.append(TableCopy(name=table, source_rows=len(counted), target_rows=len(kept),
                                  same=kept == counted))
    return compared


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
