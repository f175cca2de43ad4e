"""A slow PagerDuty from the command line: every command that waits on it, reading or writing,
gives up at the command's deadline (im.cli.waiting.BUDGET) and says what it could not do; a
terminal sees a spinner meanwhile, a pipe the plain output only."""

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .connector_kit import im, runtime_with_connector

IM = str(Path(sys.executable).parent / "im")
LATENCY_MS = 6000  # each answer: within the client's own 10 s timeout, past the budget
BUDGET = 1.0


@pytest.fixture
def runtime(tmp_path, pd):
    rt = runtime_with_connector(tmp_path / "home", pd)
    yield rt
    rt.store.close()


def _calls(runtime):
    return runtime.store.conn.execute(
        "SELECT method, path, status, error FROM calls WHERE connector = 'prod-pagerduty'"
        " ORDER BY id").fetchall()


TIMEOUT = "PagerDuty did not answer in time"


@pytest.mark.parametrize(("args", "code", "stdout", "stderr", "path"), [
    (["connector", "test", "prod-pagerduty"], 1,
     f"✗ Cannot use the PagerDuty API: {TIMEOUT} (GET /users)\n"
     "  Fix: check base_url ({url}) and the network\n", "", "/users"),
    (["connector", "health", "prod-pagerduty"], 2,
     f"Health: Unhealthy\nAPI Connectivity: ✗ {TIMEOUT} (GET /users)\n"
     "  Fix: check base_url ({url}) and the network\n", "", "/users"),
    (["oncall", "--service", "api"], 1, "",
     f"Error: prod-pagerduty: {TIMEOUT} (GET /escalation_policies/PXXXXXX)\n",
     "/escalation_policies/PXXXXXX"),
    (["connector", "list-mappings", "prod-pagerduty"], 0,
     "IM Service  PagerDuty Service  Service Name\napi         PAPI001            ?\n",
     f"Warning: names unavailable: {TIMEOUT} (GET /services)\n", "/services"),
    (["connector", "sync", "prod-pagerduty"], 1,
     "prod-pagerduty: 0 delivered, 0 queued for retry, 0 failed\n",
     f"  ! reconciling failed: {TIMEOUT} (GET /incidents)\n", "/incidents"),
], ids=["test", "health", "oncall", "list-mappings", "sync"])
def test_a_reading_command_stops_waiting_at_the_commands_deadline(
        runtime, pd, monkeypatch, args, code, stdout, stderr, path):
    """PagerDuty answers every request after 6 s (within the client's own timeout, so without
    a deadline each call would simply be waited for, and each command would take 6 s or many
    times that): with a 1 s budget the command makes one call, gives up on it at the deadline,
    retries nothing, and says what it could not do."""
    from im.cli import waiting

    monkeypatch.setattr(waiting, "BUDGET", BUDGET)
    pd.set_faults(latency_ms=LATENCY_MS)
    started = time.monotonic()
    result = im(runtime, *args)
    took = time.monotonic() - started
    assert took < 4, f"took {took:.1f} s"
    assert result.exit_code == code, result.output
    lines = result.stdout.splitlines(keepends=True)
    expected = stdout.format(url=pd.url)
    if args[1] in ("health", "list-mappings"):  # then figures from records / other rows
        assert "".join(lines[:expected.count("\n")]) == expected
    else:
        assert result.stdout == expected
    assert result.stderr == stderr
    # the one call, given up at the deadline, is what `im connector status` reads from
    assert _calls(runtime) == [("GET", path, None, f"{TIMEOUT} (GET {path})")]


def test_the_checks_the_time_ran_out_for_say_so_in_one_line(runtime, pd, monkeypatch):
    """PagerDuty answers, but in 2 s: with a 3 s budget the first check passes, the second
    call times out, and the checks left are not made: one line names them, with no fix
    (nothing is wrong with them that im knows of)."""
    from im.cli import waiting

    monkeypatch.setattr(waiting, "BUDGET", 3.0)
    pd.set_faults(latency_ms=2000)
    result = im(runtime, "connector", "test", "prod-pagerduty")
    assert result.exit_code == 1, result.output
    assert result.stdout == (
        "✓ Connected to PagerDuty API\n"
        f"✗ Service PXXXXXX: {TIMEOUT} (GET /services/PXXXXXX)\n"
        f"  Fix: check base_url ({pd.url}) and the network\n"
        "✗ Not checked, no time left (PagerDuty answered slowly): Service PAPI001, Service"
        " PDAT001, Service PGEN001, Service PPAY001, Service PWEB001, User ops@company.com,"
        " Escalation policy PXXXXXX\n")
    sent = [path for _method, path, _status, error in _calls(runtime)
            if not (error or "").startswith("no time left")]
    assert sent == ["/users", "/services/PXXXXXX"]


def _run_on_terminal(args, env, timeout=30.0):
    """Run `im ARGS` with stderr on a pseudo-terminal and stdout on a pipe: (exit code,
    stdout, what the terminal showed)."""
    master, slave = pty.openpty()
    process = subprocess.Popen([IM, *args], env=env, stdout=subprocess.PIPE, stderr=slave,
                               stdin=subprocess.DEVNULL)
    os.close(slave)
    shown = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the terminal's other end closed: the process is done
                break
            if not chunk:
                break
            shown += chunk
        elif process.poll() is not None:
            break
    os.close(master)
    stdout = process.communicate(timeout=timeout)[0].decode()
    return process.returncode, stdout, shown.decode(errors="replace")


def test_a_terminal_sees_a_spinner_while_the_command_waits_and_a_pipe_does_not(
        runtime, pd, tmp_path):
    env = {**os.environ, "IM_HOME": str(tmp_path / "home"), "TERM": "xterm",
           "PYTHONIOENCODING": "utf-8", "COLUMNS": "100"}
    env.pop("NO_COLOR", None)
    pd.set_faults(latency_ms=1500, paths=["/services"])
    table = ("IM Service  PagerDuty Service  Service Name\napi         PAPI001            API"
             " Service\n")
    code, stdout, shown = _run_on_terminal(["connector", "list-mappings", "prod-pagerduty"],
                                           env)
    assert code == 0, shown
    assert stdout.startswith(table)
    assert "Asking prod-pagerduty" in shown
    assert any(frame in shown for frame in "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏")  # rich's spinner
    piped = subprocess.run([IM, "connector", "list-mappings", "prod-pagerduty"], env=env,
                           capture_output=True, text=True, timeout=30)
    assert (piped.returncode, piped.stderr) == (0, "")
    assert piped.stdout.startswith(table)
