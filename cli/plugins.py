"""`im plugins`: what is installed, as JSON."""


import typer

from im.runtime import Runtime


def add_commands(app: typer.Typer, runtime: Runtime) -> None:
    @app.command("plugins")
    def plugins() -> None:
        """List installed plugins with their versions and hooks, as JSON."""
        from im.cli.output import print_json
        from im.plugins import describe_plugins

        print_json(describe_plugins(runtime.pm))
