"""The CLI as a user sees it: exact output, exit codes, one-line errors."""

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from im import hookimpl
from im.testing import run_cli, sql

# the `im` executable of this Python (the conftest module's name is shared by every
# test folder's, so tests name it themselves)
IM = str(Path(sys.executable).parent / "im")


def im(runtime, *args, input=None):
    return run_cli(runtime, list(args), input=input)


def test_declare_list_show_timeline(runtime, clock):
    start = clock.now
    result = im(runtime, "declare", "--sev", "SEV-2", "--title", "Database performance issue",
                "--service", "db")
    assert result.exit_code == 0
    assert result.stdout == "Declared INC-1: SEV-2 Database performance issue (db)\n"
    clock.advance(minutes=2)
    im(runtime, "declare", "--sev", "SEV-1", "--title", "Database cluster failure",
       "--service", "database,api,payments", "--field", "env=prod", "--description", "Primary down")
    listing = im(runtime, "list")
    assert listing.stdout.splitlines() == [
        "ID     Severity  Status  Title                       Services               Assignee  Declared  SLA",
        "INC-2  SEV-1     open    Database cluster failure    database,api,payments  -         0s ago    ack 15m left",
        "INC-1  SEV-2     open    Database performance issue  db                     -         2m ago    ack 28m left",
    ]
    clock.advance(seconds=30)
    assert im(runtime, "ack", "--incident", "INC-2", "--note",
              "Investigating database locks").stdout == "Acknowledged INC-2 (mitigated)\n"
    show = im(runtime, "show", "INC-2")
    assert show.stdout.splitlines() == [
        "INC-2: Database cluster failure",
        "Severity:     SEV-1",
        "Status:       mitigated",
        "Services:     database, api, payments",
        "Assignee:     -",
        f"Declared:     {start + timedelta(minutes=2):%Y-%m-%d %H:%M:%S} by alice (30s ago)",
        f"Mitigated:    {start + timedelta(minutes=2, seconds=30):%Y-%m-%d %H:%M:%S} (0s ago)",
        "SLA:          ack met (30s), resolve 59m left",
        "Fields:",
        "  env = prod",
        "Description:",
        "  Primary down",
    ]
    timeline = im(runtime, "timeline", "INC-2")
    assert timeline.stdout.splitlines() == [
        "INC-2: Database cluster failure",
        f"{start + timedelta(minutes=2):%Y-%m-%d %H:%M:%S}  Incident declared: SEV-1 Database"
        " cluster failure (database, api, payments)  [im: alice]",
        f"{start + timedelta(minutes=2, seconds=30):%Y-%m-%d %H:%M:%S}  Acknowledged by alice:"
        " Investigating database locks  [im: alice]",
    ]


def test_read_commands_take_json(runtime):
    im(runtime, "declare", "--sev", "SEV-3", "--title", "Slow pages", "--service", "web")
    listed = json.loads(im(runtime, "list", "--json").stdout)
    assert [(i["id"], i["severity"], i["status"], i["services"]) for i in listed] == [
        ("INC-1", "SEV-3", "open", ["web"])]
    shown = json.loads(im(runtime, "show", "INC-1", "--json").stdout)
    assert shown["incident"]["title"] == "Slow pages" and shown["links"] == []
    events = json.loads(im(runtime, "timeline", "INC-1", "--json").stdout)
    assert [e["kind"] for e in events] == ["declared"]
    assert events[0]["system"] == "im" and events[0]["actor"] == "alice"


def test_list_filters_and_closed_hidden_by_default(runtime):
    im(runtime, "declare", "--sev", "SEV-1", "--title", "a", "--service", "api")
    im(runtime, "declare", "--sev", "SEV-3", "--title", "b", "--service", "db")
    im(runtime, "close", "--incident", "INC-1")
    ids = lambda *a: [i["id"] for i in json.loads(im(runtime, "list", "--json", *a).stdout)]
    assert ids() == ["INC-2"]
    assert ids("--all") == ["INC-2", "INC-1"]
    assert ids("--status", "closed") == ["INC-1"]
    assert ids("--sev", "SEV-3") == ["INC-2"]
    assert ids("--service", "api", "--all") == ["INC-1"]
    assert im(runtime, "list", "--service", "nothing").stdout == "No incidents.\n"


def test_note_assign_reopen(runtime):
    im(runtime, "declare", "--sev", "SEV-3", "--title", "b", "--service", "db")
    assert im(runtime, "note", "--incident", "INC-1", "Status update").stdout == "Noted on INC-1\n"
    assert im(runtime, "assign", "--incident", "INC-1", "--to",
              "jane.smith@company.com").stdout == "Assigned INC-1 to jane.smith@company.com\n"
    assert im(runtime, "resolve", "-i", "INC-1", "--note", "Index rebuilt").exit_code == 0
    assert im(runtime, "reopen", "-i", "INC-1").stdout == "Reopened INC-1 (open)\n"
    kinds = [e.kind for e in runtime.store.timeline("INC-1")]
    assert kinds == ["declared", "note", "assigned", "resolved", "reopened"]


def test_bad_input_is_one_line_and_non_zero(runtime):
    im(runtime, "declare", "--sev", "SEV-2", "--title", "x", "--service", "db")
    im(runtime, "close", "--incident", "INC-1")
    cases = {
        ("resolve", "--incident", "INC-1"):
            "Error: cannot resolve INC-1: it is closed; from closed you can reopen\n",
        ("show", "INC-42"): "Error: no incident INC-42; `im list` shows the incidents\n",
        ("declare", "--sev", "SEV-7", "--title", "x", "--service", "db"):
            "Error: invalid severity 'SEV-7'; choose from SEV-1, SEV-2, SEV-3, SEV-4\n",
        ("declare", "--sev", "SEV-1", "--title", "x", "--service", "db", "--field", "oops"):
            "Error: invalid field 'oops': write key=value\n",
        ("list", "--status", "sleeping"):
            "Error: invalid status 'sleeping'; choose from open, mitigated, resolved, closed\n",
        ("ack", "--incident", "nope"):
            "Error: invalid incident id 'nope': write INC-<number>, e.g. INC-1\n",
    }
    for args, message in cases.items():
        result = im(runtime, *args)
        assert (result.exit_code, result.stderr, result.stdout) == (1, message, ""), args
    assert len(runtime.store.list_incidents(statuses=[])) == 1


def test_the_real_executable_never_shows_a_traceback(im_env):
    run = lambda *a: subprocess.run([IM, *a], env=im_env, capture_output=True, text=True)
    declared = run("declare", "--sev", "SEV-2", "--title", "Database performance issue",
                   "--service", "db")
    assert declared.returncode == 0, declared.stderr
    assert declared.stdout.startswith("Declared INC-1: SEV-2 Database performance issue (db)")
    for args in (["resolve", "--incident", "INC-9"], ["declare", "--sev", "x"],
                 ["connector", "add", "nosuchtype", "n"], ["connector", "test", "missing"]):
        result = run(*args)
        assert result.returncode != 0
        assert "Traceback" not in result.stderr
        assert result.stderr.strip().splitlines()[-1].startswith("Error:")
    assert run("--version").stdout == "im 0.1.0\n"


class _Extras:
    """A plugin whose commands exercise what the root group lists: a hidden command, a
    deprecated one, explicit help and short help, a group, a group added without a name and
    a command that takes over a core command's name."""

    @hookimpl
    def register_commands(self, cli, runtime):
        import typer

        @cli.command(hidden=True)
        def secret() -> None:
            """Not listed."""

        @cli.command(deprecated=True)
        def old() -> None:
            """Still here, for a while."""

        @cli.command("explicit", help="Help given   to the decorator,\n\n  indented.",
                     short_help="Short.")
        def explicit_command() -> None:
            pass

        tools = typer.Typer(help="Tools\n\nof the extras plugin.", rich_markup_mode=None)

        @tools.command()
        def run(n: int = typer.Option(1, "--n", help="How often.")) -> None:
            """Run the tool."""
            typer.echo(f"ran {n}")

        cli.add_typer(tools, name="tools")
        merged = typer.Typer(rich_markup_mode=None)

        @merged.command()
        def merged_in() -> None:
            """A command of a group added without a name."""
            typer.echo("merged")

        cli.add_typer(merged)

        @cli.command("plugins")
        def plugins_again() -> None:
            """The last command of a name wins, in the first one's place."""
            typer.echo("replaced")


def _helps(command, ctx, path=""):
    """The help of a command and of everything under it, by command path."""
    found = {path: command.get_help(ctx)}
    for name in command.list_commands(ctx) if hasattr(command, "list_commands") else []:
        sub = command.get_command(ctx, name)
        found.update(_helps(sub, sub.make_context(name, ["--help"], parent=ctx,
                                                  resilient_parsing=True), f"{path} {name}"))
    return found


def test_the_lazily_built_command_line_is_the_one_typer_builds(tmp_path, capsys):
    """`im` (im.cli.main) builds only the command it runs (im.cli.command); every help text it
    shows, the root's command listing included, is what typer.main.get_command would give."""
    import typer.main
    from typer.models import CommandInfo

    from im.cli import command, make_app
    from im.testing import make_runtime

    runtime = make_runtime(tmp_path / "home", plugins=[_Extras()])
    app = make_app(runtime)
    eager, lazy = typer.main.get_command(app), command(app)
    assert list(lazy.commands) == list(eager.commands)
    assert "secret" in lazy.commands and "merged-in" in lazy.commands
    assert isinstance(lazy.commands._entries["list"], CommandInfo)  # listed, not built
    contexts = [c.make_context("im", ["--help"], resilient_parsing=True) for c in (eager, lazy)]
    assert _helps(lazy, contexts[1]) == _helps(eager, contexts[0])
    listing = lazy.get_help(contexts[1]).splitlines()
    assert not any(line.startswith("  secret") for line in listing)
    assert "  old        Still here, for a while. (DEPRECATED)" in listing
    assert "  explicit   Short." in listing
    assert "  plugins    The last command of a name wins, in the first one's place." in listing
    for args, said in ((["tools", "run", "--n", "3"], "ran 3\n"), (["merged-in"], "merged\n"),
                       (["plugins"], "replaced\n")):
        command(app).main(args=args, prog_name="im", standalone_mode=False)
        assert capsys.readouterr().out == said


def test_the_real_executable_runs_the_lazily_built_commands(im_env):
    """The same through `im` itself: its help is the help of the whole tree built by typer
    (`app(...)`, as `im` ran before it built commands lazily); a group's command runs; a typo
    gets its suggestion."""
    import sys

    eager_help = ("from im.cli import make_app; from im.runtime import Runtime;"
                  " make_app(Runtime())(args=['--help'], prog_name='im')")
    eager = subprocess.run([sys.executable, "-c", eager_help], env=im_env, capture_output=True,
                           text=True)
    run = lambda *a: subprocess.run([IM, *a], env=im_env, capture_output=True, text=True)
    assert "  pagerduty  " in eager.stdout and "  connector  " in eager.stdout
    assert run("--help").stdout == eager.stdout
    bare = run()  # no arguments: the help too, as a usage error
    assert (bare.returncode, bare.stdout, bare.stderr) == (2, "", eager.stdout)
    assert run("sla", "--json").stdout == "[]\n"
    typo = run("lst")
    assert typo.returncode == 2 and "No such command 'lst'. Did you mean 'list'?" in typo.stderr


def test_serve_on_a_taken_port_says_so_in_one_line_before_doing_anything(im_env):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([IM, "serve", "--port", str(port)], env=im_env,
                                capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == f"Error: cannot listen on 127.0.0.1:{port}: Address already in use\n"


def test_an_unusable_data_folder_is_one_line(im_env, tmp_path):
    (tmp_path / "a-file").write_text("")
    for home, message in ((tmp_path / "a-file", f"im's data folder (IM_HOME) {tmp_path}/a-file"
                                                " exists and is not a folder"),
                          (tmp_path / "a-file" / "below", f"cannot use {tmp_path}/a-file/below"
                                                          " as im's data folder (IM_HOME): Not a"
                                                          " directory")):
        result = subprocess.run([IM, "list"], env={**im_env, "IM_HOME": str(home)},
                                capture_output=True, text=True, timeout=60)
        assert (result.returncode, result.stdout, result.stderr) == (1, "", f"Error: {message}\n")


def test_usage_errors_are_one_line_too(im_env):
    run = lambda *a: subprocess.run([IM, *a], env=im_env, capture_output=True, text=True)
    for args, message in (
            (("report", "--start", "2000-01-01"),
             "Error: Missing option '--end'. (`im report --help` shows the usage)\n"),
            (("logs", "--limit", "0"),
             "Error: Invalid value for '--limit': 0 is not in the range 1<=x<=100000."
             " (`im logs --help` shows the usage)\n"),
            (("connector", "nothing"),
             "Error: No such command 'nothing'. (`im connector --help` shows the usage)\n")):
        result = run(*args)
        assert (result.returncode, result.stdout, result.stderr) == (2, "", message), args


def test_tables_stay_aligned_with_wide_characters(runtime):
    """CJK and emoji take two terminal columns each: padding counts columns, not characters."""
    im(runtime, "declare", "--sev", "SEV-2", "--title", "数据库故障 🔥", "--service", "db")
    im(runtime, "declare", "--sev", "SEV-3", "--title", "Slow pages", "--service", "web")
    assert im(runtime, "list").stdout.splitlines() == [
        "ID     Severity  Status  Title          Services  Assignee  Declared  SLA",
        "INC-2  SEV-3     open    Slow pages     web       -         0s ago    ack 2h left",
        "INC-1  SEV-2     open    数据库故障 🔥  db        -         0s ago    ack 30m left",
    ]


def _run_on_terminal(env, *args):
    """`im ARGS` with stdout and stderr on a pseudo-terminal, as a person at a shell sees it."""
    import os
    import pty

    leader, follower = pty.openpty()
    try:
        done = subprocess.run([IM, *args], env=env, stdin=subprocess.DEVNULL, stdout=follower,
                              stderr=follower, timeout=60)
        os.close(follower)
        follower = None
        output = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal has no writer left
                break
            if not chunk:
                break
            output += chunk
    finally:
        if follower is not None:
            os.close(follower)
        os.close(leader)
    return done.returncode, output.decode()


def test_colour_on_a_terminal_only_and_never_with_no_color(im_env):
    im_env.pop("NO_COLOR", None)
    im_env["TERM"] = "xterm-256color"
    message = "no incident INC-9; `im list` shows the incidents"
    code, seen = _run_on_terminal(im_env, "show", "INC-9")
    assert (code, seen) == (1, f"\x1b[31m\x1b[1mError:\x1b[0m {message}\r\n")
    code, seen = _run_on_terminal({**im_env, "NO_COLOR": "1"}, "show", "INC-9")
    assert (code, seen) == (1, f"Error: {message}\r\n")
    piped = subprocess.run([IM, "show", "INC-9"], env=im_env, capture_output=True, text=True)
    assert (piped.returncode, piped.stderr) == (1, f"Error: {message}\n")


def test_incidents_stored_with_a_capitalised_service_are_found_by_it(runtime):
    """Service names are lower-cased where they enter im; incidents saved before that, with
    `API`, are still found by `--service api` (and by `API`)."""
    im(runtime, "declare", "--sev", "SEV-2", "--title", "Old one", "--service", "api")
    # as an earlier version stored it
    sql(runtime, "UPDATE incident_services SET service = 'API' WHERE number = 1")
    im(runtime, "declare", "--sev", "SEV-3", "--title", "Other", "--service", "web")
    for given in ("api", "API"):
        listed = json.loads(im(runtime, "list", "--service", given, "--json").stdout)
        assert [i["id"] for i in listed] == ["INC-1"], given


def test_note_takes_its_text_as_an_argument_or_with_note_as_ack_does(runtime):
    im(runtime, "declare", "--sev", "SEV-3", "--title", "x", "--service", "web")
    assert im(runtime, "note", "--incident", "INC-1", "first").stdout == "Noted on INC-1\n"
    assert im(runtime, "note", "--incident", "INC-1", "--note", "second").stdout == (
        "Noted on INC-1\n")
    for args in ([], ["both", "--note", "twice"]):
        refused = im(runtime, "note", "--incident", "INC-1", *args)
        assert (refused.exit_code, refused.stderr) == (1, (
            'Error: give the note once: im note --incident INC-1 "text" (or --note "text")\n'))
    assert [e.text for e in runtime.store.timeline("INC-1") if e.kind == "note"] == [
        "first", "second"]
