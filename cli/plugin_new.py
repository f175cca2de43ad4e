"""`im plugin new NAME`: a new plugin distribution, from the templates in im/templates/plugin
(package data of the core), ready to install and passing the conformance kit."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

NAME = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
# the templates' folder that becomes the plugin's package, im_MODULE/
PACKAGE = "package/"


def register(app: typer.Typer) -> None:
    """Add `im plugin` (and `im plugin new`) to the root command line."""
    plugin_app = typer.Typer(help="Make plugins: `im plugin new NAME` starts one.",
                             no_args_is_help=True, rich_markup_mode=None)
    plugin_app.command("new")(new)
    app.add_typer(plugin_app, name="plugin")


def new(name: str = typer.Argument(..., help="The plugin's name: lower-case letters, digits"
                                   " and hyphens (acme, acme-cloud). It is the connector"
                                   " type and the entry point; the distribution is im-NAME,"
                                   " the module im_NAME."),
        path: Path = typer.Option(Path("."), "--path", help="The folder to make im-NAME in."),
        force: bool = typer.Option(False, "--force", help="Write into im-NAME even when it"
                                   " is not empty (files of the same names are replaced).")
        ) -> None:
    """Make a new plugin: a connector for an HTTP API, a fake of that API, tests that run
    the conformance kit on it, and a README. See docs/tutorial-connector.md."""
    target = path / f"im-{name}"
    written = create(name, target, force=force)
    typer.echo(f"Created {target}, a plugin with the connector type {name}:")
    for file in written:
        typer.echo(f"  {file.relative_to(target)}")
    typer.echo("Next:")
    typer.echo(f"  cd {target}")
    typer.echo("  pip install -e '.[test]'")
    typer.echo("  pytest")


def check_name(name: str) -> None:
    from im.errors import InvalidInputError

    if name.startswith("im-"):
        raise InvalidInputError(f"name the plugin without im- ({name[3:]}): its distribution"
                                f" is then im-{name[3:]}")
    if not NAME.fullmatch(name):
        raise InvalidInputError(f"{name!r} is not a plugin name: use lower-case letters,"
                                " digits and single hyphens, starting with a letter (acme,"
                                " acme-cloud)")


def variables(name: str) -> dict[str, str]:
    """What the templates' placeholders stand for."""
    from im import __version__
    from im.plugins import SDK_VERSION

    words = name.split("-")
    return {"name": name, "module": name.replace("-", "_"),
            "Class": "".join(word.capitalize() for word in words),
            "title": " ".join(word.capitalize() for word in words),
            "sdk": SDK_VERSION,
            "im_version": ".".join(__version__.split(".")[:2])}


def render(name: str) -> dict[str, str]:
    """The plugin's files: {path inside im-NAME: text}."""
    from importlib.resources import files
    from string import Template

    check_name(name)
    values = variables(name)
    root = files("im") / "templates" / "plugin"
    found: dict[str, str] = {}

    def walk(folder: Traversable, prefix: str) -> None:
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            if entry.is_dir():
                if entry.name != "__pycache__":
                    walk(entry, f"{prefix}{entry.name}/")
            elif entry.name.endswith(".tmpl"):
                relative = prefix + entry.name.removesuffix(".tmpl")
                if relative.startswith(PACKAGE):
                    relative = f"im_{values['module']}/{relative.removeprefix(PACKAGE)}"
                found[relative] = Template(entry.read_text(encoding="utf-8")).substitute(values)

    walk(root, "")
    return found


def create(name: str, target: Path, *, force: bool = False) -> list[Path]:
    """Write the plugin `name` into `target`; the files written."""
    from im.errors import InvalidInputError

    contents = render(name)
    if target.exists() and not target.is_dir():
        raise InvalidInputError(f"{target} exists and is not a folder")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise InvalidInputError(f"{target} exists and is not empty: choose another --path,"
                                " or --force to write into it")
    written = []
    for relative, text in contents.items():
        file = target / relative
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text, encoding="utf-8")
        written.append(file)
    return written
