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

from .connector_kit import im, runtime_with_connector, stored, wait_for

IM = str(Path(sys.executable).parent / "im")
LATENCY_MS = 6000  # each answer: within the client's own 10 s timeout, past the budget
BUDGET = 1.0


@pytest.fixture
def runtime(tmp_path, pd):
    rt = runtime_with_connector(tmp_path / "home", pd)
    yield rt
    rt.store.close()


def _calls(runtime):
    return stored(runtime.home, "SELECT method, path, status, error FROM calls"
                  " WHERE connector = 'prod-pagerduty' ORDER BY id")


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
    """PagerDuty answers, but in 2 s: with a 3.8 s budget the first check passes, the second
    call times out, and the checks left are not made: one line names them, with no fix
    (nothing is wrong with them that im knows of)."""
    from im.cli import waiting

    monkeypatch.setattr(waiting, "BUDGET", 3.8)
    pd.set_faults(latency_ms=2000)
    result = im(runtime, "connector", "test", "prod-pagerduty")
    assert result.exit_code == 1, result.output
    assert result.stdout == (
        "✓ Connected to PagerDuty API\n"
        f"✗ Service PXXXXXX: {TIMEOUT} (GET /services/PXXXXXX)\n"
        f"  Fix: check base_url ({pd.url}) and the network\n"
        "✗ Not checked, no time left (PagerDuty answered slowly): Service PAPI001, Service"
        " PDAT001, Service PGEN001, Service PPAY001, Service PWEB001, User ops@company.com,"
        " Escalation policy PXXXXXX, Priorities\n")
    # the calls made, and no more: those not made are no API errors (`im connector health`)
    assert [(path, error) for _method, path, _status, error in _calls(runtime)] == [
        ("/users", None), ("/services/PXXXXXX", f"{TIMEOUT} (GET /services/PXXXXXX)")]


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


def _interrupt_when_delivering(runtime, args, env):
    """Run `im ARGS`, press Ctrl-C once it is waiting on PagerDuty for a change (a row of the
    outbox is claimed), and return (exit code, stdout, stderr)."""
    import signal

    process = subprocess.Popen([IM, *args], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        wait_for(lambda: runtime.store.outbox(statuses=("delivering",)), timeout=20)
        time.sleep(0.5)  # on the wire by now: PagerDuty answers after seconds
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    return process.returncode, stdout, stderr


def test_ctrl_c_while_delivering_says_what_is_left_queued_and_keeps_the_change(
        runtime, pd, tmp_path):
    """Ctrl-C during `im declare`, while PagerDuty takes its time to create the incident: two
    lines say what is left queued and who delivers it, the exit code is 130, there is no
    traceback; the incident is in im and its change back in line at once (not held by a
    dead process's lease), and a sync links the incident PagerDuty made meanwhile, once."""
    from .connector_kit import remote_incidents

    env = {**os.environ, "IM_HOME": str(tmp_path / "home"), "IM_USER": "alice"}
    pd.set_faults(latency_ms=3000, paths=["/incidents"])
    code, stdout, stderr = _interrupt_when_delivering(
        runtime, ["declare", "--sev", "SEV-2", "--title", "Checkout down", "--service", "api"],
        env)
    assert (code, stdout) == (130, "Declared INC-1: SEV-2 Checkout down (api)\n"), stderr
    assert stderr == (
        "Interrupted: left queued for prod-pagerduty: INC-1 declare (api)\n"
        "  `im serve` or `im connector sync prod-pagerduty` will deliver it; INC-1 is saved"
        " in im\n")
    incident = runtime.store.get_incident("INC-1")
    assert (incident.title, incident.status.value) == ("Checkout down", "open")
    [row] = runtime.store.outbox(incident_id="INC-1")
    assert (row.action, row.status, row.attempts) == ("declare", "pending", 1)
    assert row.next_attempt_at <= runtime.clock()  # due now, not after a 120 s lease
    time.sleep(3)  # PagerDuty carries out the create it was given meanwhile
    pd.clear_faults()
    synced = im(runtime, "connector", "sync", "prod-pagerduty")
    assert synced.stdout.startswith("prod-pagerduty: 1 delivered, 0 queued for retry, 0 failed")
    created = [i for i in remote_incidents(pd.client())
               if i["incident_key"] == f"im-{incident.correlation_id}-api"]
    assert len(created) == 1
    assert [link.remote_id for link in runtime.store.links("INC-1")] == [created[0]["id"]]


def test_ctrl_c_during_a_sync_says_what_is_left_queued(runtime, pd, tmp_path, quick_retries):
    env = {**os.environ, "IM_HOME": str(tmp_path / "home"), "IM_USER": "alice"}
    pd.set_faults(error_rate=1.0, paths=["/incidents"])  # both declares stay queued
    for title in ("Checkout down", "Search slow"):
        im(runtime, "declare", "--sev", "SEV-2", "--title", title, "--service", "api,web")
    assert len(runtime.store.outbox(statuses=("pending",))) == 4
    pd.set_faults(latency_ms=3000, paths=["/incidents"])
    code, stdout, stderr = _interrupt_when_delivering(
        runtime, ["connector", "sync", "prod-pagerduty"], env)
    assert (code, stdout) == (130, ""), stderr
    assert stderr == (
        "Interrupted: left queued for prod-pagerduty: INC-1 declare (api, web), INC-2 declare"
        " (api, web)\n"
        "  `im serve` or `im connector sync prod-pagerduty` will deliver them\n")
    assert {row.status for row in runtime.store.outbox()} == {"pending"}


def test_sync_while_im_serve_delivers_names_the_held_change(runtime, pd, quick_retries):
    """`im serve` is delivering a queued declare to a PagerDuty slow to answer when the
    operator runs `im connector sync`: the sync does not deliver it a second time, nor say
    "0 queued" about it, but names it and when `im serve`'s claim on it runs out."""
    from im.cli.output import when
    from im.testing import serve

    im(runtime, "connector", "update", "prod-pagerduty", "--sync-direction", "outbound")
    pd.set_faults(error_rate=1.0, paths=["/incidents"])
    declared = im(runtime, "declare", "--sev", "SEV-2", "--title", "Checkout down",
                  "--service", "api")
    assert "1 change(s) queued" in declared.stderr
    pd.set_faults(latency_ms=4000, paths=["/incidents"])
    with serve(runtime):
        held = wait_for(lambda: runtime.store.outbox(statuses=("delivering",)), timeout=15)
        synced = im(runtime, "connector", "sync", "prod-pagerduty")
        assert (synced.exit_code, synced.stderr) == (0, "")
        assert synced.stdout == (
            "prod-pagerduty: 0 delivered, 0 queued for retry, 0 failed\n"
            "prod-pagerduty: 1 change(s) held by another process that is delivering them"
            " (`im serve` or another command), not tried here: INC-1 declare (api) until"
            f" {when(held[0].lease_until)}\n")
        wait_for(lambda: [r.status for r in runtime.store.outbox()] == ["done"], timeout=15)
    creates = [r for r in pd.requests(method="POST", path="/incidents") if r.get("status") == 201]
    assert len(creates) == 1, creates


def test_a_change_pagerduty_refuses_for_good_exits_3_and_keeps_the_local_change(runtime, pd):
    """PagerDuty answers 401 (a revoked key): `im declare` says the change is kept in im and
    how to send it again, and exits with 3 (not 0, and not Click's 2 for usage errors); the
    incident is in im, its change set aside (not retried against a key that cannot work);
    with the key fixed, `--retry-failed` delivers it."""
    runtime.update_connector_settings("prod-pagerduty", {"api_key": "revoked-key"})
    result = im(runtime, "declare", "--sev", "SEV-2", "--title", "Checkout down",
                "--service", "api")
    assert (result.exit_code, result.stdout) == (3, "Declared INC-1: SEV-2 Checkout down"
                                                    " (api)\n")
    assert result.stderr == (
        "  ! prod-pagerduty INC-1 declare: PagerDuty answered 401: Authentication failed"
        " (code 2006)\n"
        "  1 change(s) refused for good and set aside; INC-1 keeps the change in im. Fix the"
        " cause, then `im connector sync prod-pagerduty --retry-failed` sends it again\n")
    assert runtime.store.get_incident("INC-1").title == "Checkout down"
    [row] = runtime.store.outbox()
    assert (row.status, row.attempts) == ("failed", 1)
    assert [r["status"] for r in pd.requests(method="POST", path="/incidents")] == [401]
    im(runtime, "connector", "update", "prod-pagerduty", "--api-key", pd.api_key)
    retried = im(runtime, "connector", "sync", "prod-pagerduty", "--retry-failed")
    assert retried.exit_code == 0, retried.output
    assert retried.stdout.startswith("prod-pagerduty: 1 failed change(s) queued again\n"
                                     "prod-pagerduty: 1 delivered, 0 queued for retry, 0 failed")
    assert [link.service for link in runtime.store.links("INC-1")] == ["api"]
