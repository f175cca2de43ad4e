"""docs/tutorial-connector.md, run as written: every `$ command` of its console blocks in a
shell (the real `im` and pytest, in a folder of the test's), every edit it asks for (a
`# FILE, before` block and the `# FILE, after` block that follows it) made to the plugin, in
the page's order; each command must print what the page shows.

Set aside: test times (`in 7.40s`), and the lines a page's `...` (a line of its own) leaves
out. `pip install` is made offline into a folder of the test's, the plugin's sources ahead of
it on PYTHONPATH as an editable install puts them (see test_plugin_new.install).
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_plugin_new import install

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "tutorial-connector.md"
BIN = str(Path(sys.executable).parent)
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.S | re.M)
EDIT = re.compile(r"# (\S+), (before|after)\n")
TIME = re.compile(r" in \d+\.\d\ds\b")


def steps(markdown: str) -> list[tuple]:
    """The page's steps, in order: ("run", command, output) and ("edit", file, old, new)."""
    found: list[tuple] = []
    before = None
    for language, body in BLOCK.findall(markdown):
        if language == "console":
            for line in body.splitlines(keepends=True):
                if line.startswith("$ "):
                    found.append(("run", line[2:].rstrip("\n"), ""))
                else:
                    found[-1] = (*found[-1][:2], found[-1][2] + line)
        elif language == "python" and (edit := EDIT.match(body)):
            text = body[edit.end():]
            if edit.group(2) == "before":
                before = (edit.group(1), text)
            else:
                assert before and before[0] == edit.group(1), f"{edit.group(1)}: no before"
                found.append(("edit", before[0], before[1], text))
                before = None
    return found


def matches(expected: str, printed: str) -> bool:
    """Whether `printed` is what the page shows: line by line, `...` alone standing for any
    number of lines, times set aside."""
    pattern = "".join(r"(?:.*\n)*?" if line == "...\n" else re.escape(TIME.sub(" in <t>", line))
                      for line in expected.splitlines(keepends=True))
    pattern = pattern.replace(re.escape(" in <t>"), r" in \d+\.\d\ds")
    return re.fullmatch(pattern, printed) is not None


def test_the_page_shows_the_templates_tables():
    """The tables the page quotes are the template's."""
    from im.cli.plugin_new import render

    connector = render("acme")["im_acme/connector.py"]
    [quoted] = [body for language, body in BLOCK.findall(PAGE.read_text())
                if language == "python" and "REMOTE_STATUS = {" in body]
    assert quoted in connector


@pytest.mark.slow  # makes, installs and tests a plugin: pytest sessions of their own
def test_the_tutorial_runs_as_written(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    cwd = work
    env = {**os.environ, "IM_HOME": str(tmp_path / "home"), "COLUMNS": "80",
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    # As at a terminal: pytest does not shorten its summary lines where CI or BUILD_NUMBER is
    # set, and the page shows them as a user at a terminal reads them.
    for name in ("IM_LOAD_PLUGINS", "PYTHONPATH", "PYTEST_ADDOPTS", "CI", "BUILD_NUMBER"):
        env.pop(name, None)
    # on SQLite, as the page's reader: the plugin's own suite, a session of its own, would
    # have its tests share one PostgreSQL database, not a home each
    env.pop("IM_DATABASE_URL", None)
    done = []
    for step in steps(PAGE.read_text()):
        if step[0] == "edit":
            _, file, old, new = step
            path = cwd / file
            text = path.read_text()
            assert text.count(old) == 1, f"the page's before of {file} is not in it once:\n{old}"
            path.write_text(text.replace(old, new))
            done.append(f"edit {file}")
            continue
        _, command, expected = step
        if command.startswith("cd "):
            cwd = cwd / command[3:]
            assert expected == ""
        elif command.startswith("pip install "):
            assert command == "pip install --quiet -e '.[test]'"
            installed = install(cwd, tmp_path / "site")
            env["PYTHONPATH"] = f"{cwd}{os.pathsep}{installed['PYTHONPATH']}"  # as editable
            assert expected == ""
        else:
            result = subprocess.run(["bash", "-c", command], cwd=cwd, env=env,
                                    capture_output=True, text=True, timeout=300)
            printed = result.stdout + result.stderr
            assert matches(expected, printed), (
                f"`{command}` printed what the page does not show:\n{printed}")
        done.append(command)
    assert done == [
        "im plugin new acme", "cd im-acme", "pip install --quiet -e '.[test]'",
        "IM_LOAD_PLUGINS=acme im plugins", "pytest -q", "edit im_acme/fake.py",
        "pytest -q --tb=line --show-capture=no tests/test_conformance.py",
        "edit im_acme/connector.py",
        "pytest -q --tb=line --show-capture=no tests/test_conformance.py",
        "edit im_acme/connector.py", "pytest -q"]
