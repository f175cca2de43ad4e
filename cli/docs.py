"""docs/cli.md, generated from the command tree itself: `python -m im.cli.docs > docs/cli.md`.
A test regenerates it and compares, so the reference cannot go stale."""

from __future__ import annotations

import sys
from typing import Any

HEADER = """# Command reference

Every `im` command with its help, generated from the code (`python -m im.cli.docs >
docs/cli.md`; a test fails when this file is out of date). Commands marked *(plugin)* come
from installed plugins; this page was made with the in-repo plugins installed.
"""


def render() -> str:
    import typer.main

    from im.cli import make_app
    from im.runtime import Runtime

    core_only = _names(typer.main.get_command(make_app(Runtime(pm=_core_pm()))))
    runtime = Runtime()
    root = typer.main.get_command(make_app(runtime))
    parts = [HEADER, _exit_codes()]
    _walk(root, ["im"], parts, None, core_only, runtime)
    return "\n".join(parts).rstrip() + "\n"


def _exit_codes() -> str:
    from im.cli import EXIT_CODES

    rows = "\n".join(f"| {code} | {meaning} |" for code, meaning in EXIT_CODES.items())
    return ("## Exit codes\n\nEvery command exits with one of these (`im connector health`"
            " says 1 for degraded and 2 for unhealthy, `im connector test` 1 when a check"
            " fails):\n\n| code | meaning |\n|---|---|\n" + rows + "\n")


def _core_pm() -> Any:
    from im.plugins import get_plugin_manager

    return get_plugin_manager(load_entrypoints=False)


def _names(command: Any, prefix: str = "im") -> set[str]:
    found = {prefix}
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        found |= _names(sub, f"{prefix} {name}")
    return found


def _walk(command: Any, path: list[str], parts: list[str], parent: Any,
          core_only: set[str], runtime: Any = None) -> None:
    """The help of `command` and of every command under it. The root's context holds the
    runtime (`obj`), as `im`'s does, for help that depends on it (the options connector
    types take); the others inherit it."""
    name = " ".join(path)
    context = command.context_class(command, info_name=path[-1], parent=parent, obj=runtime,
                                    terminal_width=96, max_content_width=96)
    plugin = "" if name in core_only else " *(plugin)*"
    parts.append(f"## `{name}`{plugin}\n")
    parts.append("```\n" + command.get_help(context).rstrip() + "\n```\n")
    for sub_name, sub in sorted(getattr(command, "commands", {}).items()):
        _walk(sub, [*path, sub_name], parts, context, core_only)


if __name__ == "__main__":
    sys.stdout.write(render())
