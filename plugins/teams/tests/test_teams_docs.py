"""docs/connectors/teams.md, run as written: the command that starts the stand-in starts it, and
every `$ im ...` of its session runs against the loopback Workflows endpoint and prints what the
page shows (times set aside)."""

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import httpx

from im.testing import run_cli

PAGE = Path(__file__).resolve().parents[3] / "docs" / "connectors" / "teams.md"
BLOCK = re.compile(r"^```console\n(.*?)^```$", re.S | re.M)
TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
REFUSAL = {"error": {"code": "InvalidRequestContent", "message": "The input body for trigger"
                     " 'manual' of type 'Request' did not match its schema definition."}}


def blocks(start: str) -> list[str]:
    return [block for block in BLOCK.findall(PAGE.read_text()) if block.startswith(start)]


def session() -> list[tuple[str, str]]:
    [block] = blocks("$ im ")
    found: list[tuple[str, str]] = []
    for line in block.splitlines(keepends=True):
        if line.startswith("$ "):
            found.append((line[2:].rstrip("\n"), ""))
        else:
            found[-1] = (found[-1][0], found[-1][1] + line)
    return found


def test_the_teams_page_runs_as_written(runtime, teams):
    commands = session()
    for command, expected in commands:
        args = shlex.split(command)
        if "Checkout errors" in args:  # the page's second declaration meets a refusal
            teams.answer(400, json.dumps(REFUSAL))
        result = run_cli(runtime, args[1:])
        printed = result.stdout + result.stderr
        assert TIME.sub("<time>", printed) == TIME.sub("<time>", expected), command
    assert len(commands) == 7 and len(teams.received) == 2


def test_the_stand_in_starts_as_the_page_says():
    """Run from the clone's root, it prints the export line of a URL that
    takes a card, and stops on Enter."""
    [block] = blocks("$ python -c ")
    command, shown = block[2:].split("\nexport ", 1)
    shown = "export " + shown
    # `python` is the .venv's, on PATH as the README puts it
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    started = subprocess.Popen(["bash", "-c", command], cwd=PAGE.parents[2], text=True,
                               env={**os.environ, "PATH": path},
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        printed = started.stdout.readline() + started.stdout.readline()
        port = re.compile(r"127\.0\.0\.1:\d+")
        assert port.sub("PORT", printed) == port.sub("PORT", shown)
        url = shlex.split(printed.splitlines()[0].removeprefix("export TEAMS_URL="))[0]
        assert httpx.post(url, json={"type": "message"}).status_code == 202
        started.stdin.write("\n")
        started.stdin.flush()
        assert started.wait(timeout=10) == 0
    finally:
        started.kill()
