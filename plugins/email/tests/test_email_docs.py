"""docs/connectors/email.md, run as written: the command that starts the SMTP server starts it
(in a folder and on a port of the test's), and every `$ im ...` of its session runs against the
loopback SMTP server (its port and CA file put in for the page's) and prints what the page
shows (times set aside)."""

import os
import re
import shlex
import smtplib
import ssl
import subprocess
import sys
from pathlib import Path

from im.testing import run_cli
from im_email.testing import free_port

PAGE = Path(__file__).resolve().parents[3] / "docs" / "connectors" / "email.md"
BLOCK = re.compile(r"^```console\n(.*?)^```$", re.S | re.M)
TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
PAGE_PORT, PAGE_CA = "8025", "/tmp/im-mail/ca.pem"


def blocks(start: str) -> list[str]:
    return [block for block in BLOCK.findall(PAGE.read_text()) if block.startswith(start)]


def session() -> list[tuple[str, str]]:
    block = blocks("$ im workflow add ")[0]  # the session; the next `$ im` block is an outage
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


def test_the_smtp_server_starts_as_the_page_says(tmp_path):
    """Run from the clone's root, in the test's folder and on a free port: it prints what the
    page shows, takes a STARTTLS login with the password it prints, and stops on Enter."""
    [block] = blocks("$ mkdir -p /tmp/im-mail")
    command, shown = block[2:].split("\nSMTP on ", 1)
    shown = "SMTP on " + shown
    port = free_port()
    command = command.replace(PAGE_CA.removesuffix("/ca.pem"), str(tmp_path)).replace(
        f"port={PAGE_PORT}", f"port={port}")
    # `python` is the .venv's, on PATH as the README puts it
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    started = subprocess.Popen(["bash", "-c", command], cwd=PAGE.parents[2], text=True,
                               env={**os.environ, "PATH": path},
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        printed = "".join(started.stdout.readline() for _ in range(3))
        assert printed == shown.replace(PAGE_CA, str(tmp_path / "ca.pem")).replace(
            f"127.0.0.1:{PAGE_PORT}", f"127.0.0.1:{port}")
        password = shlex.split(printed.splitlines()[1].removeprefix("export SMTP_PASSWORD="))[0]
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.starttls(context=ssl.create_default_context(cafile=tmp_path / "ca.pem"))
            client.login("im-notices", password)
        started.stdin.write("\n")
        started.stdin.flush()
        assert started.wait(timeout=10) == 0
    finally:
        started.kill()
