"""The `im` command line: make_app(runtime) builds the Typer tree, then plugins add theirs.

Start-up stays cheap: only Typer and the core's light modules are imported here; httpx,
sqlite-utils, litestar and plugins' heavy modules load inside the commands that need them.
"""


import os
import sys
import traceback

import typer
from typer.core import TyperGroup

from im.errors import ImError
from im.runtime import Runtime

HELP = """im: incident management you run yourself.

Declare, acknowledge and resolve incidents; connectors keep them in step with outside systems
such as paging and ticketing tools (`im plugins` lists them). Data lives in $IM_HOME (default: your data directory)."""


class Group(TyperGroup):
    """The root group: turns the core's errors into one line and an exit code, never a
    traceback (IM_DEBUG=1 shows it), wherever the command that raised them sits."""

    def invoke(self, ctx: typer.Context) -> object:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except ImError as error:
            if os.environ.get("IM_DEBUG"):
                traceback.print_exc()
            typer.echo(f"Error: {error}", err=True)
            raise typer.Exit(error.exit_code) from None


def make_app(runtime: Runtime) -> typer.Typer:
    from im.cli import connectors, incidents, observe, oncall, plugins, report, serve, sla

    app = typer.Typer(help=HELP, cls=Group, no_args_is_help=True, add_completion=False,
                      rich_markup_mode=None, pretty_exceptions_enable=False)

    @app.callback(invoke_without_command=True)
    def root(ctx: typer.Context,
             version: bool = typer.Option(False, "--version", help="Show the version and exit.",
                                          is_eager=True)) -> None:
        if version:
            from im import __version__

            typer.echo(f"im {__version__}")
            raise typer.Exit()
        if ctx.invoked_subcommand is None:
            typer.echo(ctx.get_help())
            raise typer.Exit()

    incidents.add_commands(app, runtime)
    connector_app = connectors.make_app(runtime)
    observe.add_connector_commands(connector_app, runtime)
    app.add_typer(connector_app, name="connector")
    observe.add_commands(app, runtime)
    oncall.add_commands(app, runtime)
    sla.add_commands(app, runtime)
    report.add_commands(app, runtime)
    serve.add_commands(app, runtime)
    plugins.add_commands(app, runtime)
    # A broken plugin must not take the core commands down with it (`im ack` at 3 a.m.).
    from im.plugins import call_each

    for plugin, error in call_each(runtime.pm, "register_commands", lambda _plugin: {"cli": app, "runtime": runtime}):
        typer.echo(f"Warning: plugin {plugin} could not add its commands:"
                   f" {type(error).__name__}: {error}", err=True)
    return app


def group(cli: typer.Typer, name: str) -> typer.Typer:
    """The Typer of one of the CLI's groups (such as `connector`), for plugins to extend."""
    for info in cli.registered_groups:
        if info.name == name and info.typer_instance is not None:
            return info.typer_instance
    raise KeyError(f"no command group {name!r}")


def fail(message: str, code: int = 1) -> None:
    typer.echo(f"Error: {message}", err=True)
    raise SystemExit(code)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `im` command: one line and a non-zero exit for every error."""
    debug = bool(os.environ.get("IM_DEBUG"))
    try:
        runtime = Runtime()
        from im.logs import install

        install(runtime.store)
        app = make_app(runtime)
        app(args=argv, prog_name="im")
    except ImError as error:  # raised while building the app, before any command runs
        if debug:
            traceback.print_exc()
        fail(str(error), error.exit_code)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except Exception as error:  # never show a user a traceback unless asked to
        if debug:
            traceback.print_exc()
        fail(f"unexpected {type(error).__name__}: {error} (run with IM_DEBUG=1 for details)")


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
