"""docs/connectors/teams.md, run as written: every `$ im ...` of its session runs against the
loopback Workflows endpoint and prints what the page shows (times set aside)."""

import json
import re
import shlex
from pathlib import Path

from im.testing import run_cli

PAGE = Path(__file__).resolve().parents[3] / "docs" / "connectors" / "teams.md"
BLOCK = re.compile(r"^```console\n(.*?)^```$", re.S | re.M)
TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
REFUSAL = {"error": {"code": "InvalidRequestContent", "message": "The input body for trigger"
                     " 'manual' of type 'Request' did not match its schema definition."}}


def session() -> list[tuple[str, str]]:
    [block] = BLOCK.findall(PAGE.read_text())
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
