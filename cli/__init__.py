"""The `im` command line: make_app(runtime) builds the Typer tree, then plugins add theirs.

Start-up stays cheap: only Typer and the core's light modules are imported here; msgspec,
httpx, sqlite-utils, litestar and plugins' heavy modules load inside the commands that need
them. `main` turns only the invoked command into a Click command (see `command`): `im --help`
lists every command from what the Typer tree records, without building any.
"""


import gc
import os
import sys
import traceback
from collections.abc import Iterator, MutableMapping, Sequence
from contextlib import contextmanager
from typing import Any


@contextmanager
def _collection_paused(*, freeze: bool) -> Iterator[None]:
    """Start-up makes tens of thousands of objects that live as long as the process (modules,
    classes, the command tree). The garbage collector's passes over them while `im` starts,
    and its full passes at exit, cost 15-25 ms of a run and free next to nothing. So
    collection is paused while this module's imports load (Typer is most of them) and while
    main() builds the command line; then what exists leaves the collector's young generations
    without a pass over it: with `freeze`, for good (gc.freeze: no collection, not even
    those at exit, looks at it again), else into the
    oldest generation (gc.freeze then gc.unfreeze), for a program that imports this module
    and lives on. Collection then resumes."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.freeze()
            if not freeze:
                gc.unfreeze()
            gc.enable()


with _collection_paused(freeze=False):
    import typer
    from typer.core import TyperCommand, TyperGroup

    from im.errors import ImError
    from im.runtime import Runtime

# Exit codes of every command (docs/cli.md lists them; `im connector health` adds its own
# verdicts, 1 degraded and 2 unhealthy, and `im connector test` 1 for a failed check).
EXIT_ERROR = 1  # an error im reports in one line: bad input, an unknown incident, ...
EXIT_USAGE = 2  # Click's: an unknown command or option, a missing argument
EXIT_REFUSED = 3  # a connector refused a change for good; the local change is kept
EXIT_INTERRUPTED = 130  # Ctrl-C; what was being delivered stays queued
EXIT_CODES = {
    0: "done",
    EXIT_ERROR: "an error, said in one line (bad input, an unknown incident or connector, a"
                " connector that could not do what was asked)",
    EXIT_USAGE: "a usage error (an unknown command or option, a missing argument)",
    EXIT_REFUSED: "a connector refused a change for good (a remote 4xx such as 400 or 401): the"
                  " change is kept in im and set aside; fix the cause, then `im connector sync"
                  " NAME --retry-failed`",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C): changes being delivered stay queued for `im serve`",
}

HELP = """im: incident management you run yourself.

Declare, acknowledge and resolve incidents; connectors keep them in step with outside systems
such as paging and ticketing tools (`im plugins` lists them). Data lives in $IM_HOME (default: your data directory)."""


def _is_usage_error(error: BaseException) -> bool:
    """Whether `error` is one of Click's usage errors (an unknown command or option, a
    missing argument): the exceptions Click exits with 2 for (UsageError.exit_code), told by
    that public attribute; typer exports no UsageError to test against (it vendors Click
    since 0.26), and typer.Exit has an exit code but no message."""
    return getattr(error, "exit_code", None) == EXIT_USAGE and callable(
        getattr(error, "format_message", None))


class _OneLineUsageError(typer.BadParameter):
    """A usage error shown as one line, with where to read the usage. A BadParameter (the
    usage error typer exports) so that Click shows it and exits with its code, as any other."""

    def __init__(self, error: Any) -> None:
        super().__init__(error.format_message(), ctx=error.ctx)
        self.exit_code = error.exit_code

    def format_message(self) -> str:
        return str(self.message)  # the error's own words, without BadParameter's "Invalid value"

    def show(self, file: Any = None) -> None:
        where = f" (`{self.ctx.command_path} --help` shows the usage)" if self.ctx else ""
        from im.cli.output import echo_error

        echo_error(f"{self.format_message()}{where}")


def _one_line(error: Any) -> BaseException:
    # `im` and `im connector` alone show their help, as Click raises it (an "error" too)
    if type(error).__name__ == "NoArgsIsHelpError" or isinstance(error, _OneLineUsageError):
        return error  # type: ignore[no-any-return]
    return _OneLineUsageError(error)


class Group(TyperGroup):
    """The root group: turns the core's errors into one line and an exit code, never a
    traceback (IM_DEBUG=1 shows it), wherever the command that raised them sits; and a
    usage error (a missing option, an unknown command) into one line too, not Click's usage
    block."""

    def make_context(self, *args: Any, **kwargs: Any) -> typer.Context:  # type: ignore[override]
        try:
            return super().make_context(*args, **kwargs)
        except Exception as error:
            if not _is_usage_error(error):
                raise
            raise _one_line(error) from None

    def invoke(self, ctx: typer.Context) -> object:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except ImError as error:
            if os.environ.get("IM_DEBUG"):
                traceback.print_exc()
            from im.cli.output import echo_error

            echo_error(str(error))
            raise typer.Exit(error.exit_code) from None
        except KeyboardInterrupt:  # Click would exit with 130 without a word
            if os.environ.get("IM_DEBUG"):
                traceback.print_exc()
            from im.cli.output import echo_error

            echo_error("interrupted")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except Exception as error:
            if not _is_usage_error(error):
                raise
            raise _one_line(error) from None

    def list_commands(self, ctx: typer.Context) -> list[str]:  # type: ignore[override]
        return list(self.commands)  # the names only: building every command is not needed

    def format_commands(self, ctx: typer.Context, formatter: Any) -> None:  # type: ignore[override]
        """TyperGroup.format_commands, with each line from the command's recorded name and
        help when the commands are built lazily (the same text, see _LazyCommands.summary)."""
        commands = self.commands
        if not isinstance(commands, _LazyCommands):
            return super().format_commands(ctx, formatter)
        rows = [(name, summary) for name, summary in
                ((name, commands.summary(name)) for name in self.list_commands(ctx))
                if not summary.hidden]
        if rows:
            from gettext import gettext as _

            limit = formatter.width - 6 - max(len(name) for name, _summary in rows)
            with formatter.section(_("Commands")):
                formatter.write_dl([(name, summary.get_short_help_str(limit))
                                    for name, summary in rows])
        return None


class _LazyCommands(MutableMapping[str, Any]):
    """The root group's subcommands, each turned from its Typer record (a command or a group)
    into a Click command the first time it is looked up, by the functions typer.main itself
    uses, so the result is the Click command typer would have built. Names come in typer's
    order: the commands as registered, then the groups (a later record of a name replaces an
    earlier one in the earlier one's place, as in the dict typer builds)."""

    def __init__(self, app: typer.Typer) -> None:
        from typer.main import get_command_name, get_group_from_info, solve_typer_info_defaults

        self._options = {"pretty_exceptions_short": app.pretty_exceptions_short,
                         "rich_markup_mode": app.rich_markup_mode}
        self._suggest = app.suggest_commands
        self._entries: dict[str, Any] = {}  # name -> CommandInfo, TyperInfo or a built command
        for info in app.registered_commands:
            if info.callback is None:
                self._build(info)  # typer refuses it: let it say so, as it always did
            self._entries[info.name or get_command_name(info.callback.__name__)] = info
        for info in app.registered_groups:
            name = solve_typer_info_defaults(info).name
            if name:
                self._entries[name] = info
            else:  # a group added without a name contributes its commands: build it now
                built = get_group_from_info(info, suggest_commands=self._suggest,
                                            **self._options)
                self._entries.update(built.commands)

    def _build(self, entry: Any) -> Any:
        from typer.main import get_command_from_info, get_group_from_info
        from typer.models import CommandInfo

        if isinstance(entry, CommandInfo):
            return get_command_from_info(entry, **self._options)
        return get_group_from_info(entry, suggest_commands=self._suggest, **self._options)

    def summary(self, name: str) -> Any:
        """What the command listing reads of a command (`hidden`, `get_short_help_str`):
        for typer's own command classes a stand-in made from the record with the same name,
        help and flags but no parameters; otherwise the command itself."""
        import inspect

        from typer.main import solve_typer_info_defaults
        from typer.models import CommandInfo, TyperInfo

        entry = self._entries[name]
        if isinstance(entry, CommandInfo) and entry.cls in (None, TyperCommand):
            help_text = (inspect.getdoc(entry.callback) if entry.help is None
                         else inspect.cleandoc(entry.help))
            return TyperCommand(name, help=help_text, short_help=entry.short_help,
                                hidden=entry.hidden, deprecated=entry.deprecated)
        if isinstance(entry, TyperInfo):
            solved = solve_typer_info_defaults(entry)
            if solved.cls in (None, TyperGroup):
                return TyperGroup(name=name, help=solved.help, short_help=solved.short_help,
                                  hidden=solved.hidden, deprecated=solved.deprecated)
        return self[name]

    def __getitem__(self, name: str) -> Any:
        from typer.models import CommandInfo, TyperInfo

        entry = self._entries[name]
        if isinstance(entry, CommandInfo | TyperInfo):
            entry = self._entries[name] = self._build(entry)
        return entry

    def __setitem__(self, name: str, command: Any) -> None:
        self._entries[name] = command

    def __delitem__(self, name: str) -> None:
        del self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)


def command(app: typer.Typer) -> Any:
    """The Click command of `app`, as typer.main.get_command(app) builds it, except that the
    root group's subcommands are built when looked up (see _LazyCommands): running `im list`
    or `im --help` builds the root group and at most the one command invoked. Only for a
    root make_app built (its class is Group, it has no completion options): any other app
    is built by typer, whole."""
    import copy

    import typer.main

    if app.info.cls is not Group:
        return typer.main.get_command(app)  # not im's root: no shortcut
    root = copy.copy(app)
    root.registered_commands, root.registered_groups = [], []
    group = typer.main.get_group(root)
    group.commands = _LazyCommands(app)
    return group


def make_app(runtime: Runtime) -> typer.Typer:
    from im.cli import (
        connectors,
        db,
        incidents,
        observe,
        oncall,
        plugin_new,
        plugins,
        report,
        serve,
        sla,
        workflows,
    )

    # Every command finds the runtime as its context's `obj` (inherited from the root's).
    app = typer.Typer(help=HELP, cls=Group, no_args_is_help=True, add_completion=False,
                      rich_markup_mode=None, pretty_exceptions_enable=False,
                      context_settings={"obj": runtime})

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

    incidents.register(app)
    connectors.register(app)
    observe.register(app)
    oncall.register(app)
    sla.register(app)
    report.register(app)
    db.register(app)
    workflows.register(app)
    serve.register(app)
    plugins.register(app)
    plugin_new.register(app)
    # A broken plugin must not take the core commands down with it (`im ack` at 3 a.m.).
    from im.plugins import call_each

    for refusal in runtime.pm.refused.values():
        typer.echo(f"Warning: {refusal}", err=True)
    known = command_paths(app)

    def added(plugin: str) -> None:
        nonlocal known
        now = command_paths(app)
        new = now - known
        for path in sorted(new):  # a new group is one entry, not each of its commands
            if not any(path.startswith(f"{group} ") for group in new):
                runtime.pm.contributed(plugin, "commands", f"im {path}")
        known = now

    for plugin, error in call_each(runtime.pm, "register_commands",
                                   lambda _plugin: {"cli": app, "runtime": runtime},
                                   after=added):
        typer.echo(f"Warning: plugin {plugin} could not add its commands:"
                   f" {type(error).__name__}: {error}", err=True)
    return app


def command_paths(cli: typer.Typer, prefix: str = "") -> set[str]:
    """Every command and group of a Typer, as the words that call it ("connector add")."""
    found: set[str] = set()
    for info in cli.registered_commands:
        name = info.name or (info.callback.__name__.replace("_", "-") if info.callback else "")
        if name:
            found.add(f"{prefix}{name}")
    for group in cli.registered_groups:
        if group.name and group.typer_instance is not None:
            found.add(f"{prefix}{group.name}")
            found |= command_paths(group.typer_instance, f"{prefix}{group.name} ")
    return found


def command_group(cli: typer.Typer, name: str) -> typer.Typer:
    """The Typer of one of the CLI's groups (such as `connector`), for plugins to extend
    (`im.command_group`)."""
    for info in cli.registered_groups:
        if info.name == name and info.typer_instance is not None:
            return info.typer_instance
    raise KeyError(f"no command group {name!r}")


def run_command(runtime: Runtime, args: Sequence[str]) -> int:
    """Run `im ARGS` in this process against `runtime`, printing what the `im` executable
    prints, and return its exit code (`im.run_command`: `im demo` drives the real command
    line so). A usage error is raised, not printed."""
    try:
        code = make_app(runtime)(args=list(args), prog_name="im", standalone_mode=False)
    except SystemExit as exit_:
        code = exit_.code
    if code is None:
        return 0
    return code if isinstance(code, int) else 1


def fail(message: str, code: int = 1) -> None:
    from im.cli.output import echo_error

    echo_error(message)
    raise SystemExit(code)


class _RuntimeStore:
    """The runtime's store as the log handler sees it, made on first use (when the first log
    lines are written): a command that logs nothing, such as `im --help`, never loads the
    storage code (msgspec, sqlite3)."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def __getattr__(self, name: str) -> Any:
        return getattr(self._runtime.store, name)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `im` command: one line and a non-zero exit for every error."""
    debug = bool(os.environ.get("IM_DEBUG"))
    try:
        with _collection_paused(freeze=True):
            runtime = Runtime()
            from im.logs import install

            runtime.make_home()
            install(_RuntimeStore(runtime))  # type: ignore[arg-type]
            app = make_app(runtime)
        run(app, argv)
    except ImError as error:  # raised while building the app, before any command runs
        if debug:
            traceback.print_exc()
        fail(str(error), error.exit_code)
    except KeyboardInterrupt:
        fail("interrupted", EXIT_INTERRUPTED)
    except Exception as error:  # never show a user a traceback unless asked to
        if debug:
            traceback.print_exc()
        fail(f"unexpected {type(error).__name__}: {error} (run with IM_DEBUG=1 for details)")


def run(app: typer.Typer, argv: list[str] | None) -> Any:
    """`app(args=argv, prog_name="im")` (typer.Typer.__call__), building commands lazily."""
    from typer.main import except_hook

    if sys.excepthook != except_hook:
        sys.excepthook = except_hook
    return command(app)(args=argv, prog_name="im")


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
