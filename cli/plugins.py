"""`im plugins`: what is installed and what each plugin adds (im.plugins describes it;
nothing here decides)."""


import typer

from im.cli.context import runtime


def register(app: typer.Typer) -> None:
    """Add `im plugins` to the root command line."""
    app.command("plugins")(plugins)


def plugins(ctx: typer.Context,
            as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List installed plugins: version, SDK, and the connector types, commands, routes and
    workflow actions each adds."""
    from im.cli.output import print_json
    from im.plugins import SDK_VERSION, describe_plugins, plugin_routes

    from im.errors import ImError

    current = runtime(ctx)
    # what each plugin adds is noted as the hooks are called; one that fails is said, and
    # the others are listed all the same
    for ask in (lambda: current.connector_types, lambda: plugin_routes(current.pm, current),
                lambda: current.workflow_actions):
        try:
            ask()
        except ImError as error:
            typer.echo(f"Warning: {error}", err=True)
    described = describe_plugins(current.pm)
    if as_json:
        print_json({"sdk": SDK_VERSION, "plugins": described})
        return
    typer.echo(f"im SDK {SDK_VERSION}")
    if not described:
        typer.echo("No plugins installed.")
    for entry in described:
        typer.echo("")
        if "refused" in entry:
            typer.echo(f"{entry['name']}: refused")
            typer.echo(f"  {entry['refused']}")
            continue
        distribution = " ".join(str(entry[k]) for k in ("distribution", "version") if k in entry)
        sdk = f"SDK {entry['sdk']}" if entry.get("sdk") else "SDK not declared"
        typer.echo(f"{entry['name']}" + (f" ({distribution})" if distribution else "")
                   + f", {sdk}")
        for kind, label in (("connector_types", "connector types"), ("commands", "commands"),
                            ("routes", "routes"), ("workflow_actions", "workflow actions"),
                            ("hooks", "hooks")):
            if kind == "workflow_actions" and not entry.get(kind):
                continue  # said only by the plugins that add actions (--json says [] too)
            items = entry.get(kind) or []
            typer.echo(f"  {label}: {', '.join(map(str, items)) if items else 'none'}")
