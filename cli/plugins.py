"""`im plugins`: what is installed, as JSON (im.plugins describes it; nothing here decides)."""


import typer

from im.cli.context import runtime


def register(app: typer.Typer) -> None:
    """Add `im plugins` to the root command line."""
    app.command("plugins")(plugins)


def plugins(ctx: typer.Context) -> None:
    """List installed plugins with their versions and hooks, as JSON."""
    from im.cli.output import print_json
    from im.plugins import describe_plugins

    print_json(describe_plugins(runtime(ctx).pm))
