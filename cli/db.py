"""`im db status`, `migrate` and `copy`: which store and its size by table, its migrations, and
moving an SQLite home to PostgreSQL (`im.app.database` does each; this formats)."""

import typer

from im.cli.context import runtime as runtime_of


def register(app: typer.Typer) -> None:
    """Add the `db` group to the root command line."""
    db_app = typer.Typer(help="The database: which one, its size, its migrations, and how long"
                              " im keeps what.",
                         no_args_is_help=True, rich_markup_mode=None)
    db_app.command()(status)
    db_app.command()(migrate)
    db_app.command()(copy)
    app.add_typer(db_app, name="db")


def _rows(count: int) -> str:
    return f"{count:,} row" if count == 1 else f"{count:,} rows"


def _migrations(count: int) -> str:
    return f"{count} migration" if count == 1 else f"{count} migrations"


def _migrations_line(found) -> str:  # type: ignore[no-untyped-def]
    text = f"Migrations: {found.applied} applied"
    if found.latest:
        text += f" (latest {found.latest})"
    if found.pending:
        text += f", {len(found.pending)} pending (im db migrate applies them)"
    else:
        text += ", none pending"
    if found.unknown:
        text += (f"; {len(found.unknown)} from a later version of im"
                 f" ({', '.join(found.unknown)})")
    return text


def status(ctx: typer.Context,
           json_output: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show which database im uses (SQLite or PostgreSQL, and where), its migrations, its size,
    each table's rows and bytes, and what is kept how long (the settings file's `retention`;
    `im serve` forgets the rest hourly). Reads every table whole: seconds on a database of
    millions of rows."""
    from im.app import database
    from im.cli.output import print_json, table
    from im.humanize import size

    found = database.status(runtime_of(ctx))
    if json_output:
        import msgspec

        print_json(msgspec.to_builtins(found))
        return
    disk = found.size
    typer.echo(f"Store: {database.STORE_NAMES[found.store.kind]}, {found.store.location}")
    typer.echo(_migrations_line(found.migrations))
    # PostgreSQL's write-ahead log is the server's, shared by its databases: not this one's
    log = f" (write-ahead log: {size(disk.log_bytes)})" if found.store.kind == "sqlite" else ""
    typer.echo(f"Size: {size(disk.bytes)}{log}")
    typer.echo("")
    typer.echo(table(["Table", "Rows", "Size"],
                     [[t.name, f"{t.rows:,}", size(t.bytes) if t.bytes else "-"]
                      for t in disk.tables]))
    keep = found.retention
    typer.echo("")
    typer.echo(f"Kept: delivered changes {keep.outbox_days} days, log lines {keep.logs_days}"
               f" days, call records {keep.calls_days} days (the settings file's"
               f" `retention`); processed webhook events {found.events_days} days (the replay"
               " window and a day).")


def migrate(ctx: typer.Context) -> None:
    """Apply the database's pending migrations. im migrates on first use anyway; this does it
    now, before starting `im serve` replicas on a new version, say."""
    from im.app import database

    done = database.migrate(runtime_of(ctx))
    typer.echo(f"Store: {database.STORE_NAMES[done.store.kind]}, {done.store.location}")
    if not done.applied_now:
        typer.echo(f"Nothing to migrate: {_migrations(done.migrations.applied)} applied"
                   f" (latest {done.migrations.latest})")
        return
    for name in done.applied_now:
        typer.echo(f"Applied {name}")
    typer.echo(f"{_migrations(len(done.applied_now))} applied; now"
               f" {done.migrations.applied} (latest {done.migrations.latest})")


def copy(ctx: typer.Context,
         to: str = typer.Option(..., "--to", metavar="<url>",
                                help="The empty PostgreSQL database to copy into:"
                                     " postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE.")
         ) -> None:
    """Copy this home's SQLite database into an empty PostgreSQL database (migrated first),
    in one transaction, then compare each table's rows on both sides. Stop `im serve` first:
    what is written during the copy is not in it. Exit 1 where the target is not empty or a
    count differs (the copy is then undone)."""
    from im.app import database
    from im.cli.output import table

    def progress(name: str, rows: int) -> None:
        typer.echo(f"Copied {name}: {_rows(rows)}")

    done = database.copy_to_postgres(runtime_of(ctx), to, progress=progress)
    typer.echo("")
    typer.echo(table(["Table", "SQLite", "PostgreSQL", ""],
                     [[t.name, f"{t.source_rows:,}", f"{t.target_rows:,}",
                       "" if t.same else "DIFFERS"] for t in done.tables]))
    typer.echo("")
    if not done.committed:
        differ = ", ".join(t.name for t in done.tables if not t.same)
        typer.echo(f"Error: the copy differs from the SQLite database ({differ}): it was undone,"
                   f" {done.target} is as empty as before.", err=True)
        raise typer.Exit(1)
    typer.echo(f"Copied to {done.target}. Set IM_DATABASE_URL to the URL given to --to (or"
               ' "database_url" in settings.json) to use it.')
