"""docs/connectors/email.md, run as written: every `$ im ...` of its session runs against the
loopback SMTP server (its port and CA file put in for the page's) and prints what the page
shows (times set aside)."""

import re
import shlex
from pathlib import Path

from im.testing import run_cli

PAGE = Path(__file__).resolve().parents[3] / "docs" / "connectors" / "email.md"
BLOCK = re.compile(r"^```console\n(.*?)^```$", re.S | re.M)
TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
PAGE_PORT, PAGE_CA = "8025", "/tmp/im-mail/ca.pem"


def session() -> list[tuple[str, str]]:
    block = BLOCK.findall(PAGE.read_text())[0]  # the session; the next block is an outage
    found: list[tuple[str, str]] = []
    for line in block.splitlines(keepends=True):
        if line.startswith("$ "):
            found.append((line[2:].rstrip("\n"), ""))
        else:
            found[-1] = (found[-1][0], found[-1][1] + line)
    return found


def test_the_email_page_runs_as_written(runtime, smtp):
    commands = session()
    for command, expected in commands:
        args = [arg.replace(f'"port": {PAGE_PORT}', f'"port": {smtp.port}')
                .replace(PAGE_CA, str(smtp.ca_file)) for arg in shlex.split(command)]
        if "Database cluster failure" in args:  # the page's SEV-1: one address unknown
            smtp.handler.refuse["ceo@company.com"] = ("550 5.1.1 <ceo@company.com>: Recipient"
                                                      " address rejected: User unknown")
        result = run_cli(runtime, args[1:])
        printed = (result.stdout + result.stderr).replace(f"127.0.0.1:{smtp.port}",
                                                          f"127.0.0.1:{PAGE_PORT}")
        assert TIME.sub("<time>", printed) == TIME.sub("<time>", expected), command
    assert len(commands) == 5
    assert [mail.rcpt_tos for mail in smtp.delivered] == [
        ["cto@company.com", "vp-eng@company.com"], ["cto@company.com", "vp-eng@company.com"]]
