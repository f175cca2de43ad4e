"""docs/workflows.md, run as written: every `$ im ...` of its console blocks runs, in the page's
order, printing what the page shows. The blocks of the in-repo plugins' rules (those naming a
`slack.` action) run in a home of their own with the installed plugins, as in a clone; the
others with the page's example plugin (the `# im_runbooks.py` block) as the only one. Times (of
the clock of the run) are set aside."""

import re
import shlex
import types
from pathlib import Path

from im.testing import make_runtime, run_cli

PAGE = Path(__file__).resolve().parents[1] / "docs" / "workflows.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.S | re.M)
TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
IN_REPO = re.compile(r"\bslack\.(war_room|archive_war_room)\b")


def plugin() -> types.ModuleType:
    [code] = [body for language, body in BLOCK.findall(PAGE.read_text())
              if language == "python" and body.startswith("# im_runbooks.py\n")]
    module = types.ModuleType("im_runbooks")
    exec(compile(code, "im_runbooks.py", "exec"), module.__dict__)  # noqa: S102 - the page's
    return module


def commands(*, in_repo: bool) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for language, body in BLOCK.findall(PAGE.read_text()):
        if language != "console" or bool(IN_REPO.search(body)) != in_repo:
            continue
        for line in body.splitlines(keepends=True):
            if line.startswith("$ "):
                found.append((line[2:].rstrip("\n"), ""))
            else:
                found[-1] = (found[-1][0], found[-1][1] + line)
    return found


def run_as_written(runtime, session: list[tuple[str, str]]) -> list[list[str]]:
    ran = []
    for command, expected in session:
        args = shlex.split(command)
        assert args[0] == "im"
        result = run_cli(runtime, args[1:])
        printed = result.stdout + result.stderr
        assert TIME.sub("<time>", printed) == TIME.sub("<time>", expected), command
        assert (result.exit_code == 0) == (not printed.startswith("Error:")), command
        ran.append(args[1:3])
    return ran


def test_the_workflows_page_runs_as_written(tmp_path):
    runtime = make_runtime(tmp_path / "home", plugins=[plugin()], user="alice")
    ran = run_as_written(runtime, commands(in_repo=False))
    assert ran == [["workflow", "add"], ["workflow", "add"], ["workflow", "list"],
                   ["workflow", "show"], ["declare", "--sev"], ["declare", "--sev"],
                   ["timeline", "INC-1"], ["workflow", "test"], ["workflow", "test"],
                   ["workflow", "show"], ["workflow", "remove"], ["workflow", "defaults"],
                   ["workflow", "defaults"], ["workflow", "defaults"]]
    runtime.store.close()


def test_the_in_repo_plugins_default_rules_as_the_page_shows(tmp_path):
    runtime = make_runtime(tmp_path / "home", load_entrypoints=True, user="alice")
    ran = run_as_written(runtime, commands(in_repo=True))
    assert ran == [["workflow", "defaults"], ["workflow", "defaults"],
                   ["connector", "add"], ["workflow", "defaults"], ["workflow", "defaults"],
                   ["workflow", "show"]]
    runtime.store.close()
