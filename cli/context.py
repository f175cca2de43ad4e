"""What a command gets from the command line's context: the Runtime and who is acting.

make_app puts the Runtime on the root context (`obj`); every command below it finds it
there, so commands are plain module-level functions, not closures over a runtime.
"""

from typing import TYPE_CHECKING

import typer

from im.runtime import Runtime

if TYPE_CHECKING:
    from im.models import Origin


def runtime(ctx: typer.Context) -> Runtime:
    """The Runtime of the `im` command line that `ctx` belongs to."""
    found = ctx.find_object(Runtime)
    if found is None:  # a command called outside make_app's tree: a bug, not a user error
        raise RuntimeError(f"no Runtime on the context of `{ctx.command_path}`")
    return found


def actor(ctx: typer.Context) -> "Origin":
    """Who acts: the runtime's user (IM_USER, the settings file's `user`, the login name)."""
    from im.models import Origin

    return Origin(actor=runtime(ctx).user)
