"""`im db status`: the database's size by table, and how long im keeps what (`im.app.database`
reads; this formats)."""

import typer

from im.cli.context import runtime as runtime_of


def register(app: typer.Typer) -> None:
    """Add the `db` group to the root command line."""
    db_app = typer.Typer(help="The database: its size, and how long im keeps what.",
                         no_args_is_help=True, rich_markup_mode=None)
    db_app.command()(status)
    app.add_typer(db_app, name="db")


def status(ctx: typer.Context,
           json_output: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show the database's size on disk, each table's rows and bytes, and what is kept how
    long (the settings file's `retention`; `im serve` forgets the rest hourly). Reads every
    table whole: seconds on a database of millions of rows."""
    from im.app import database
    from im.cli.output import print_json, table
    from im.humanize import size

    found = database.status(runtime_of(ctx))
    if json_output:
        import msgspec

        print_json(msgspec.to_builtins(found))
        return
    disk = found.size
    typer.echo(f"Database: {disk.location}, {size(disk.bytes)} (write-ahead log:"
               f" {size(disk.log_bytes)})")
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
