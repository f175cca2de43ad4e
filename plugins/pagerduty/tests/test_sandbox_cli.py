"""`im pagerduty sandbox`: one line once it accepts connections, a clean exit on Ctrl-C and
SIGTERM, and nothing heavy imported just to build the command line."""

import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

# The group under a bare Typer root, as the im CLI's register_commands hook adds it.
ROOT = (
    "import typer\n"
    "from im_pagerduty.commands import add_commands\n"
    "app = typer.Typer()\n"
    "add_commands(app)\n"
    "app()\n"
)
LINE = re.compile(r"^PagerDuty sandbox listening on (http://127\.0\.0\.1:\d+)$")


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", ROOT, "pagerduty", "sandbox", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_serves_after_one_line_and_stops_cleanly(stop_signal):
    process = start("--port", "0", "--api-key", "cli-key", "--seed", "none", "--rate-limit", "5")
    try:
        first_line = process.stdout.readline().rstrip("\n")
        match = LINE.match(first_line)
        assert match, first_line + process.stderr.read()
        response = httpx.get(
            f"{match.group(1)}/users", headers={"Authorization": "Token token=cli-key"}
        )
        assert response.status_code == 200
        assert [u["email"] for u in response.json()["users"]] == ["ops@company.com"]
        assert response.headers["ratelimit-limit"] == "5"
        process.send_signal(stop_signal)
        out, err = process.communicate(timeout=10)
    finally:
        process.kill()
    assert process.returncode == 0
    assert out == "" and err == ""  # exactly the one line, then nothing


def test_a_busy_port_is_reported():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = start("--port", str(port), "--api-key", "k")
        out, err = process.communicate(timeout=20)
    assert process.returncode == 1
    assert (out, err) == ("", f"Error: cannot listen on 127.0.0.1:{port}: Address already in use\n")


def test_a_port_out_of_range_is_refused():
    process = start("--port", "99999", "--api-key", "k")
    out, err = process.communicate(timeout=20)
    assert process.returncode == 2
    assert out == "" and "99999 is not in the range 0<=x<=65535" in err
    assert "Traceback" not in err


def test_building_the_command_line_imports_nothing_heavy():
    probe = (
        "import sys, typer, im\n"
        "before = set(sys.modules)\n"
        "from im_pagerduty.commands import add_commands\n"
        "add_commands(typer.Typer())\n"
        "heavy = ('litestar', 'uvicorn', 'httpx', 'limits', 'im_pagerduty.sandbox')\n"
        "print(sorted(m for m in set(sys.modules) - before if m.split('.')[0] in heavy or m.startswith(heavy)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_the_im_cli_offers_the_group():
    im = Path(sys.executable).parent / "im"
    if not im.exists():
        pytest.skip("the im console script is not installed next to this Python")
    result = subprocess.run(
        [str(im), "pagerduty", "--help"], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "PagerDuty connector tools" in result.stdout and "sandbox" in result.stdout


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_stops_without_a_traceback_with_a_request_in_flight(stop_signal):
    """A stop while a request is held by injected latency answers it, then ends the process
    quietly (exit 0)."""
    import threading
    import time

    process = start("--port", "0", "--api-key", "cli-key", "--seed", "none")
    try:
        url = LINE.match(process.stdout.readline().rstrip("\n")).group(1)
        auth = {"Authorization": "Token token=cli-key"}
        assert httpx.patch(f"{url}/_sandbox/faults", json={"latency_ms": 5000},
                           headers=auth).status_code == 200
        answers = []

        def slow_request():
            try:
                answers.append(httpx.get(f"{url}/users", headers=auth, timeout=20).status_code)
            except httpx.HTTPError as error:
                answers.append(type(error).__name__)

        held = threading.Thread(target=slow_request, daemon=True)
        held.start()
        time.sleep(0.5)  # the request is held by the injected latency now
        process.send_signal(stop_signal)
        out, err = process.communicate(timeout=15)
        held.join(timeout=5)
    finally:
        process.kill()
    assert (out, err, process.returncode) == ("", "", 0)
    assert answers == [200]  # answered before the sandbox stopped, not cut off
