"""Crash and fault tests of the automated response workflows (issue #18), as PagerDuty's
delivery has them (plugins/pagerduty/tests/test_reliability_crash.py):

* `im serve` (the real executable) killed with SIGKILL while an action's request is at its
  remote system, taken there and not yet answered: a new `im serve` on the same home runs
  each action once where a retry can find what the killed attempt made (the Slack war room:
  one room, one summary pinned, the responder invited once), and at most once more, as
  docs/connectors/teams.md and email.md say, where the remote gives no way to (a Teams card, a
  mail, whose copy carries the same Message-ID); the timeline says each outcome once.
* A Slack outage (503s, 429s with Retry-After, connections dropped, nothing listening): a
  SEV-1 is declared all the same, its Teams card and mail go out, and the Slack message and the
  war room wait, queued, and are delivered once when Slack is back.

The remote systems are real and on loopback: the PagerDuty sandbox (who is on call), the Slack
sandbox, a Workflows webhook standing in for Teams, an SMTP server (aiosmtpd). Each holds its
answer to the request the test kills on (the Slack sandbox's `late_answer_ms`, the webhook's
answer `delay`, the SMTP server's `hold`), so the kill falls after the remote took the request.

A killed server's claim on a run holds for the run's lease (`RUN_LEASE_SECONDS`, two minutes):
rather than wait, the new server runs with its clock past the lease (IM_TEST_CLOCK_SECONDS,
tests/clock), as it would two minutes later.
"""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from im import incidents
from im.testing import RUN_LEASE_SECONDS, FakeClock, make_runtime, run_cli, run_workflows
from im_email import testing as smtp_server
from im_pagerduty.testing import (  # noqa: F401  (fixtures)
    pagerduty_sandbox,
    pagerduty_sandbox_server,
)
from im_slack.testing import (  # noqa: F401  (fixtures)
    run_sandbox,
    slack_sandbox,
    slack_sandbox_server,
)
from im_teams import testing as teams_endpoint

REPO = Path(__file__).resolve().parents[1]
IM = str(Path(sys.executable).parent / "im")

pytestmark = pytest.mark.slow


# the PagerDuty sandbox's demo account: who is on call for payments (seeded in Slack too)
MAPPINGS = {"api": "PAPI001", "db": "PDAT001", "payments": "PPAY001", "default": "PGEN001"}
ONCALL_EMAIL, ONCALL_NAME = "john.doe@company.com", "John Doe"
MANAGEMENT = ["cto@company.com", "vp-eng@company.com"]
ROOM = "inc-1-payment-api-down"
HOLD = 30.0  # seconds a remote holds the answer the test kills on (the kill comes first)
TEAMS_LINE = "Teams notified: #incidents"
MAIL_LINE = f"Management notified: {', '.join(MANAGEMENT)}"
INVITED_LINE = f"Invited {ONCALL_NAME} (on call for payments)"
MADE_LINE = f"War room #{ROOM} created"
FOUND_LINE = f"War room #{ROOM} (made by an earlier attempt)"


def wait_for(predicate, what, timeout=30.0, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what}: not so after {timeout} s")


def im(runtime, *args):
    return run_cli(runtime, list(args))


def ok(result):
    assert result.exit_code == 0, result.output
    return result


# -- im serve, started and killed ----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


STARTED: list[subprocess.Popen] = []  # every `im serve` a test started: none outlives it


@pytest.fixture(autouse=True)
def no_server_left_behind():
    yield
    while STARTED:
        process = STARTED.pop()
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait(timeout=10)


def start_server(home: Path, *, ahead: float = 0.0) -> subprocess.Popen:
    """`im serve` on `home`, in a process group of its own; `ahead`: its wall clock that many
    seconds ahead of this process's."""
    env = {**os.environ, "IM_HOME": str(home)}
    if ahead:
        env["IM_TEST_CLOCK_SECONDS"] = str(ahead)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(REPO / "tests" / "clock"), *filter(None, [env.get("PYTHONPATH")])])
    port = free_port()
    log = open(home.parent / f"serve-{port}-{time.monotonic_ns()}.log", "wb")  # noqa: SIM115
    process = subprocess.Popen([IM, "serve", "--port", str(port), "--log-level", "warning"],
                               env=env, stdout=subprocess.DEVNULL, stderr=log,
                               start_new_session=True)
    STARTED.append(process)
    process.log_path = log.name

    def healthy():
        if process.poll() is not None:
            raise AssertionError(f"im serve exited: {Path(log.name).read_text()[-2000:]}")
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(healthy, "im serve answering /health", timeout=60, interval=0.1)
    return process


def kill(server: subprocess.Popen) -> None:
    """SIGKILL to `im serve` and anything it started, at once, as a power cut would."""
    os.killpg(server.pid, signal.SIGKILL)
    server.wait(timeout=10)
    assert server.returncode == -signal.SIGKILL


def stop(server: subprocess.Popen) -> None:
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=30)
    log = Path(server.log_path).read_text()
    assert server.returncode in (0, -signal.SIGTERM) and "Traceback" not in log, log[-3000:]


# -- the set-up: the spec's rules, through `im` commands -------------------------------------


@pytest.fixture
def pd(pagerduty_sandbox):  # noqa: F811
    return pagerduty_sandbox


@pytest.fixture
def slack(slack_sandbox):  # noqa: F811
    slack_sandbox.configure(rate_limits="off")  # Slack's own pace, not what is tested here
    return slack_sandbox


@pytest.fixture
def teams(monkeypatch):
    with teams_endpoint.WorkflowsEndpoint() as endpoint:
        monkeypatch.setenv("TEAMS_URL", endpoint.url)
        yield endpoint


@pytest.fixture
def smtp(tmp_path, monkeypatch):
    monkeypatch.setenv("SMTP_PASSWORD", smtp_server.PASSWORD)
    with smtp_server.SmtpServer(tmp_path) as server:
        yield server


@pytest.fixture
def quick_slack(monkeypatch):
    """The Slack client of this process tries each call once (a failure shows at once, not
    after the client's own retries); an `im serve` a test starts keeps its real settings."""
    from im_slack.connector import SlackConnector

    monkeypatch.setattr(SlackConnector, "client_options", {"max_attempts": 1, "timeout": 5})


def configure(home: Path, *, slack_url: str, slack_token: str, smtp, pd=None, clock=None):
    """im as the spec's user sets it up: connectors and three rules, all through `im`
    commands, the plugins loaded by their entry points. With `pd`, the war room invites who
    PagerDuty has on call."""
    runtime = make_runtime(home, load_entrypoints=True, user="alice", clock=clock)
    if pd is not None:
        ok(im(runtime, "connector", "add", "pagerduty", "prod-pagerduty", "--config",
              json.dumps({"base_url": pd.url, "api_key": pd.api_key,
                          "sync_direction": "bidirectional", "sync_interval": "2m",
                          "enable_webhook": False,
                          "custom": {"service_id": "PXXXXXX", "from_email": "ops@company.com",
                                     "escalation_policy_id": "PXXXXXX",
                                     "service_mappings": MAPPINGS}})))
    ok(im(runtime, "connector", "add", "slack", "prod-slack", "--config", json.dumps(
        {"api_key": slack_token, "base_url": slack_url,
         "custom": {"channel": "#incidents"}})))
    war_room = {"connector": "prod-slack"}
    if pd is not None:
        war_room["invite_oncall_from"] = "prod-pagerduty"
    notice = {"host": "127.0.0.1", "port": smtp.port, "username": smtp_server.USER,
              "password": "env:SMTP_PASSWORD", "ca_file": str(smtp.ca_file),
              "from": "im@company.com", "to": MANAGEMENT}
    ok(im(runtime, "workflow", "add", "sev1-war-room", "--on", "declared", "--sev", "SEV-1",
          "--action", f"slack.war_room={json.dumps(war_room)}"))
    ok(im(runtime, "workflow", "add", "chatops", "--on", "declared", "--sev", "SEV-1",
          "--action", 'teams.notify={"webhook_url": "env:TEAMS_URL", "channel": "#incidents"}'))
    ok(im(runtime, "workflow", "add", "management-notice", "--on", "declared", "--sev",
          "SEV-1", "--action", f"email.notify={json.dumps(notice)}"))
    return runtime


# -- what the remotes and im hold ------------------------------------------------------------


def runs(runtime) -> dict[str, tuple[str, int]]:
    """Each rule's run for INC-1: (status, attempts)."""
    return {r.workflow: (r.status.value, r.attempts)
            for r in runtime.store.read().workflow_runs.find(incident_id="INC-1")}


def settled(runtime) -> bool:
    return (all(status == "done" for status, _ in runs(runtime).values())
            and not runtime.store.outbox(statuses=("pending", "delivering")))


def workflow_lines(runtime) -> list[str]:
    return [e.text for e in runtime.store.timeline("INC-1") if e.kind == "workflow"]


def top_level(slack, channel="incidents"):
    return [m for m in slack.channel(channel)["messages"]
            if not m.get("thread_ts") or m.get("thread_ts") == m["ts"]]


def war_rooms(slack) -> list[str]:
    return [c["name"] for c in slack.channels() if c["name"].startswith("inc-")]


def answered(slack, method: str) -> list[dict]:
    """The calls of `method` Slack carried out (answered ok, whenever the answer left)."""
    return [r for r in slack.requests(method) if (r["answer"] or {}).get("ok")]


def check_one_war_room(runtime, slack, *, invited: bool) -> None:
    """One room, as the first attempt meant it: its purpose naming the incident, one summary,
    pinned once, and the responder in it, invited once."""
    assert war_rooms(slack) == [ROOM]
    room = slack.channel(ROOM)
    incident = runtime.store.get_incident("INC-1")
    assert room["purpose"]["value"] == (
        f"Incident INC-1: Payment API Down. (im {incident.correlation_id})")
    assert room["topic"]["value"] == "SEV-1 · Payment API Down · payments"
    [summary] = room["messages"]
    assert summary["blocks"][0]["text"]["text"] == "INC-1: Payment API Down"
    assert room["pins"] == [summary["ts"]]
    assert len(answered(slack, "conversations.create")) == 1
    if invited:
        assert slack.user_id(ONCALL_EMAIL) in room["members"]
        assert len(answered(slack, "conversations.invite")) == 1


# -- SIGKILL while an action is at its remote ----------------------------------------------

# where the kill falls: the request an action made that its remote took and holds the answer
# to; what a restarted server then does again, by rule
KILL_POINTS = {
    # the room made, its purpose not set: the retry finds the bot's room without a purpose
    "slack.war_room conversations.create": "sev1-war-room",
    # everything done, the last call unanswered: the retry finds the room by its purpose
    "slack.war_room conversations.invite": "sev1-war-room",
    # the card taken: Teams has no idempotency, a second card is documented
    "teams.notify": "chatops",
    # the mail taken: SMTP has none either, the copy has the same Message-ID
    "email.notify": "management-notice",
}


@pytest.mark.parametrize("kill_at", list(KILL_POINTS))
def test_sigkill_while_an_action_is_at_its_remote_then_a_restart_runs_each_action_once(
        tmp_path, pd, slack, teams, smtp, kill_at):
    home = tmp_path / "home"
    runtime = configure(home, slack_url=slack.api_url, slack_token=slack.token, smtp=smtp,
                        pd=pd)
    method = kill_at.split()[-1]
    if kill_at.startswith("slack."):
        slack.set_faults(late_answer_ms=HOLD * 1000, methods=[method])
    elif kill_at == "teams.notify":
        teams.answer(202, delay=HOLD)
    else:
        smtp.handler.hold = HOLD

    def taken():
        if kill_at.startswith("slack."):
            return answered(slack, method)
        return teams.received if kill_at == "teams.notify" else smtp.delivered

    # queued as a command queues it, the command gone before it ran anything: `im serve` runs
    # the actions (in their rules' order: chatops, management-notice, sev1-war-room)
    incidents.declare(runtime, title="Payment API Down", severity="SEV-1",
                      services=["payments"])
    server = start_server(home)
    wait_for(taken, f"the remote took {kill_at}'s request")
    kill(server)
    slack.clear_faults()
    smtp.handler.hold = 0.0
    killed = KILL_POINTS[kill_at]
    assert runs(runtime)[killed] == ("running", 1)  # claimed, its outcome unrecorded

    restarted = start_server(home, ahead=RUN_LEASE_SECONDS + 5)
    try:
        wait_for(lambda: settled(runtime), "every run done, every change delivered",
                 timeout=90)
    finally:
        stop(restarted)

    # each rule's run done; the killed one by a second attempt, as `im workflow show` says
    assert runs(runtime) == {name: ("done", 2 if name == killed else 1)
                             for name in KILL_POINTS.values()}
    [shown] = [line for line in ok(im(runtime, "workflow", "show", killed)).stdout.splitlines()
               if line.startswith("INC-1")]
    assert shown.split()[2:4] == ["done", "2"], shown
    # the war room once; the incident message once; the PagerDuty incident once
    check_one_war_room(runtime, slack, invited=True)
    assert [m["text"] for m in top_level(slack)] == ["INC-1 [SEV-1] Payment API Down (Open)"]
    with pd.client() as api:
        assert len(api.get("/incidents", params={"date_range": "all"}).json()["incidents"]) == 1
    # a card and a mail, and the one the killed attempt sent once more (the incident's card
    # again, as it is when sent: the assignee or the PagerDuty link may have come meanwhile;
    # the same Message-ID, so mail systems can drop the copy)
    cards = [post.json()["attachments"][0]["content"] for post in teams.received]
    assert len(cards) == (2 if killed == "chatops" else 1)
    assert {card["body"][0]["text"] for card in cards} == {"SEV-1 INC-1: Payment API Down"}
    message_ids = [mail.message["Message-ID"] for mail in smtp.delivered]
    assert len(message_ids) == (2 if killed == "management-notice" else 1)
    assert len(set(message_ids)) == 1
    # the timeline says each outcome once, nothing failed
    war_room = FOUND_LINE if killed == "sev1-war-room" else MADE_LINE
    lines = workflow_lines(runtime)
    assert Counter(lines) == Counter([TEAMS_LINE, MAIL_LINE, war_room, INVITED_LINE]), lines


# -- a Slack outage ---------------------------------------------------------------------------

RETRY_AFTER = 8  # seconds a 429 asks for: longer than the workflows' first backoff (5 s)

OUTAGES = {
    "503": {"error_rate": 1.0, "error_status": 503},
    "429 with Retry-After": {"storm_429": 100_000, "storm_429_retry_after": RETRY_AFTER},
    "connections dropped": {"drop_rate": 1.0},
    "nothing listening": None,  # the sandbox not started yet: connection refused
}


def declare_sev1(runtime):
    return im(runtime, "declare", "--sev", "SEV-1", "--title", "Payment API Down",
              "--service", "payments")


@pytest.mark.parametrize("outage", list(OUTAGES))
def test_a_slack_outage_queues_the_war_room_and_the_message_and_both_come_later_once(
        tmp_path, slack, teams, smtp, quick_slack, outage):
    home = tmp_path / "home"
    faults = OUTAGES[outage]
    port = free_port()
    url = slack.api_url if faults is not None else f"http://127.0.0.1:{port}/api"
    runtime = configure(home, slack_url=url, slack_token=slack.token, smtp=smtp)
    if faults is not None:
        slack.set_faults(**faults)

    started = datetime.now(UTC)
    declared = declare_sev1(runtime)
    finished = datetime.now(UTC)
    # declared in im all the same; Teams and management told; Slack's part queued, and said
    assert declared.exit_code == 0, declared.output
    assert declared.stdout.splitlines() == [
        "Declared INC-1: SEV-1 Payment API Down (payments)",
        f"  workflow chatops: {TEAMS_LINE}",
        f"  workflow management-notice: {MAIL_LINE}",
    ]
    errors = declared.stderr.splitlines()
    assert [line for line in errors if not line.startswith("  ! ")] == [
        "  1 change(s) queued; `im serve` or `im connector sync prod-slack` will deliver them",
        "  1 workflow action(s) queued; `im serve` will run them",
    ], declared.stderr
    [said] = [line for line in errors if line.startswith("  ! sev1-war-room slack.war_room"
                                                         " INC-1: ")]
    [run] = runtime.store.read().workflow_runs.find(incident_id="INC-1",
                                                     statuses=("pending",))
    assert (run.workflow, run.attempts) == ("sev1-war-room", 1)
    assert said.endswith(run.last_error), (said, run.last_error)
    [shown] = [line for line in ok(im(runtime, "workflow", "show", "sev1-war-room")
                                   ).stdout.splitlines() if line.startswith("INC-1")]
    assert shown.split()[1:4] == ["slack.war_room", "pending", "1"], shown
    if outage == "429 with Retry-After":  # tried again when Slack said, not sooner
        assert started + timedelta(seconds=RETRY_AFTER) <= run.next_attempt_at <= (
            finished + timedelta(seconds=RETRY_AFTER))
    assert (len(teams.received), len(smtp.delivered)) == (1, 1)
    if faults is not None:  # nothing of it reached Slack
        assert war_rooms(slack) == [] and top_level(slack) == []

    server = start_server(home)  # through the outage, and after it
    try:
        if outage != "429 with Retry-After":
            wait_for(lambda: runs(runtime)["sev1-war-room"] == ("pending", 2),
                     "im serve tried the war room again, and kept it queued", timeout=30)
        # Slack is back: `im serve` delivers what waited, once
        with run_sandbox(port=port, token=slack.token, rate_limits="off") if faults is None \
                else contextlib.nullcontext(slack) as back:
            slack.clear_faults()
            wait_for(lambda: settled(runtime), "the war room and the message delivered",
                     timeout=60)
            check_one_war_room(runtime, back, invited=False)
            if outage == "429 with Retry-After":
                made = answered(back, "conversations.create")[0]["at"]
                assert made >= run.next_attempt_at.timestamp()
            assert [m["text"] for m in top_level(back)] == [
                "INC-1 [SEV-1] Payment API Down (Open)"]
    finally:
        stop(server)
    tries = 2 if outage == "429 with Retry-After" else 3
    assert runs(runtime)["sev1-war-room"] == ("done", tries)
    assert (len(teams.received), len(smtp.delivered)) == (1, 1)
    assert Counter(workflow_lines(runtime)) == Counter([TEAMS_LINE, MAIL_LINE, MADE_LINE])
    assert [e.text for e in runtime.store.timeline("INC-1") if e.kind == "sync"] == [
        "Slack message in #incidents"]


# -- an outage longer than the first retries -------------------------------------------------

LONG_OUTAGES = {
    # Slack's longest outages have lasted hours
    "an hour of 503s": ({"error_rate": 1.0, "error_status": 503}, timedelta(hours=1)),
    # a rate limit that lasts: each 429 asks for a second more
    "two minutes of 429s (Retry-After: 1)": (
        {"storm_429": 100_000, "storm_429_retry_after": 1}, timedelta(minutes=2)),
}


def war_room_run(runtime):
    [run] = [r for r in runtime.store.read().workflow_runs.find(incident_id="INC-1")
             if r.workflow == "sev1-war-room"]
    return run


def run_when_due(runtime, clock) -> None:
    """What `im serve` does when the war room's run is next due."""
    clock.now = max(clock.now, war_room_run(runtime).next_attempt_at)
    run_workflows(runtime)


@pytest.mark.parametrize("outage", list(LONG_OUTAGES))
def test_a_long_slack_outage_still_ends_with_the_war_room_made_once(
        tmp_path, slack, teams, smtp, quick_slack, outage):
    faults, lasting = LONG_OUTAGES[outage]
    clock = FakeClock(datetime.now(UTC))
    runtime = configure(tmp_path / "home", slack_url=slack.api_url, slack_token=slack.token,
                        smtp=smtp, clock=clock)
    slack.set_faults(**faults)
    assert declare_sev1(runtime).exit_code == 0
    back = clock() + lasting
    for _ in range(1000):
        if clock() >= back:
            break
        run_when_due(runtime, clock)
        assert war_room_run(runtime).status == "pending", war_room_run(runtime)
    else:
        raise AssertionError(f"the outage ({outage}) took more than 1000 tries")
    slack.clear_faults()
    run_when_due(runtime, clock)
    assert war_room_run(runtime).status == "done"
    check_one_war_room(runtime, slack, invited=False)
    assert [line for line in workflow_lines(runtime) if "War room" in line] == [MADE_LINE]
