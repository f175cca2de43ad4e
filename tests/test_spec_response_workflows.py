"""The product spec's "Automated Response Workflows" (spec/pagerduty-integration.txt), end to end:

    ./im declare --sev SEV-1 --title "Payment API Down" --service payments
    # Automatically triggers:
    # 1. PagerDuty incident creation in payments service
    # 2. On-call engineer notification via PagerDuty
    # 3. Slack/Teams notification via ChatOps
    # 4. War room creation for SEV-1
    # 5. Management notification for critical incident

and its "Cross-Platform Coordination" timeline after it (acknowledged in PagerDuty, a note
synchronised, resolved on both platforms).

Everything is real and on loopback: the PagerDuty sandbox, the Slack sandbox, a Workflows
webhook standing in for Teams, an SMTP server with STARTTLS and a login; an im runtime loads
the installed plugins by their entry points and is configured only through its command line,
as a user would; the acknowledgement comes back from PagerDuty as its signed webhook to a
running `im serve`. Each outcome is checked where a user would see it: in PagerDuty, in
Slack, in Teams, in the mailbox, on im's output and timeline.
"""

import json
import re
import time

import pytest

from im.testing import make_runtime, run_cli, serve
from im_email import testing as smtp_server
from im_pagerduty.testing import (  # noqa: F401  (fixtures)
    pagerduty_sandbox,
    pagerduty_sandbox_server,
)
from im_slack.testing import slack_sandbox, slack_sandbox_server  # noqa: F401  (fixtures)
from im_teams import testing as teams_endpoint

pytestmark = pytest.mark.slow

# the demo account of the PagerDuty sandbox: the payments service, and who its escalation
# policy's first level (the Primary On-Call schedule) has on call from seeding to 09:00 UTC
# the next day
PAYMENTS = "PPAY001"
ONCALL_EMAIL, ONCALL_NAME = "john.doe@company.com", "John Doe"
MAPPINGS = {"api": "PAPI001", "db": "PDAT001", "payments": PAYMENTS, "default": "PGEN001"}
MANAGEMENT = ["cto@company.com", "vp-eng@company.com"]
ROOM = "inc-1-payment-api-down"
TIMESTAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)  (.*)$")


def im(runtime, *args):
    return run_cli(runtime, list(args))


def ok(result):
    assert result.exit_code == 0, result.output
    return result


def wait_for(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what}: not met in {timeout} s")


@pytest.fixture
def pd(pagerduty_sandbox):  # noqa: F811
    return pagerduty_sandbox


@pytest.fixture
def slack(slack_sandbox):  # noqa: F811
    # Slack's one message a second per channel is the sandbox's own limit; off, as in the
    # Slack plugin's war-room tests, to keep this test short
    slack_sandbox.configure(rate_limits="off")
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
def fast_failures(monkeypatch):
    """Connectors' clients give up fast in this process (a failure shows in seconds, not in
    the clients' real backoff)."""
    from im_pagerduty.connector import PagerDutyConnector
    from im_slack.connector import SlackConnector

    monkeypatch.setattr(PagerDutyConnector, "client_options",
                        {"max_attempts": 2, "sleep": lambda _s: None})
    monkeypatch.setattr(SlackConnector, "client_options", {"max_attempts": 1, "timeout": 5})


@pytest.fixture
def configured(tmp_path, pd, slack, teams, smtp, fast_failures):
    """im, set up as the spec's user sets it up: two connectors and three rules, all through
    `im` commands, the plugins loaded by their entry points."""
    # the Slack workspace has the PagerDuty on-call engineer, by the same e-mail
    if not any(u["profile"].get("email") == ONCALL_EMAIL for u in slack.users()):
        slack.add_user("john.doe", ONCALL_NAME, ONCALL_EMAIL)
    runtime = make_runtime(tmp_path / "home", load_entrypoints=True, user="alice")
    pagerduty = {"base_url": pd.url, "api_key": pd.api_key, "sync_direction": "bidirectional",
                 "sync_interval": "2m", "enable_webhook": False,
                 "custom": {"service_id": "PXXXXXX", "from_email": "ops@company.com",
                            "escalation_policy_id": "PXXXXXX", "service_mappings": MAPPINGS}}
    ok(im(runtime, "connector", "add", "pagerduty", "prod-pagerduty", "--config",
          json.dumps(pagerduty)))
    ok(im(runtime, "connector", "add", "slack", "prod-slack", "--config", json.dumps(
        {"api_key": slack.token, "base_url": slack.api_url,
         "custom": {"channel": "#incidents"}})))
    war_room = {"connector": "prod-slack", "invite_oncall_from": "prod-pagerduty"}
    chatops = {"webhook_url": "env:TEAMS_URL", "channel": "#incidents"}
    notice = {"host": "127.0.0.1", "port": smtp.port, "username": smtp_server.USER,
              "password": "env:SMTP_PASSWORD", "ca_file": str(smtp.ca_file),
              "from": "im@company.com", "to": MANAGEMENT}
    added = [
        ok(im(runtime, "workflow", "add", "sev1-war-room", "--on", "declared", "--sev", "SEV-1",
              "--action", f"slack.war_room={json.dumps(war_room)}")),
        ok(im(runtime, "workflow", "add", "chatops", "--on", "declared", "--sev", "SEV-1",
              "--sev", "SEV-2", "--action", f"teams.notify={json.dumps(chatops)}")),
        ok(im(runtime, "workflow", "add", "management-notice", "--on", "declared", "--sev",
              "SEV-1", "--sev", "SEV-2", "--action", f"email.notify={json.dumps(notice)}")),
    ]
    assert [r.stdout for r in added] == [
        "Added workflow sev1-war-room: when declared, if severity SEV-1: run slack.war_room\n",
        "Added workflow chatops: when declared, if severity SEV-1 or SEV-2: run"
        " teams.notify\n",
        "Added workflow management-notice: when declared, if severity SEV-1 or SEV-2: run"
        " email.notify\n",
    ]
    yield runtime
    runtime.store.close()


def pagerduty_incidents(pd):
    with pd.client() as api:
        return api.get("/incidents", params={"date_range": "all", "limit": 100}).json()[
            "incidents"]


def top_level(slack, channel="incidents"):
    messages = slack.channel(channel)["messages"]
    if isinstance(messages, dict):
        messages = list(messages.values())
    return [m for m in messages if not m.get("thread_ts") or m.get("thread_ts") == m["ts"]]


def thread(slack, ts, channel="incidents"):
    messages = slack.channel(channel)["messages"]
    if isinstance(messages, dict):
        messages = list(messages.values())
    return [m for m in messages if m.get("thread_ts") == ts and m["ts"] != ts]


def timeline_lines(runtime, incident="INC-1"):
    """`im timeline`'s lines after its title, as (time, rest); the times never go back."""
    out = ok(im(runtime, "timeline", incident)).stdout.splitlines()
    rows = []
    for line in out[1:]:
        match = TIMESTAMP.match(line)
        assert match, f"not a timeline line: {line!r}"
        rows.append(match.groups())
    assert [t for t, _ in rows] == sorted(t for t, _ in rows), out
    return out[0], [text for _, text in rows]


def settled(pd, runtime, timeout=15.0):
    """Every webhook PagerDuty sent delivered, every delivery im stored processed, every
    change im queued for a connected system sent."""
    assert pd.wait_for_webhooks(timeout=timeout)
    wait_for(lambda: not runtime.store.inbox(statuses=("pending", "processing")), timeout,
             "im's inbox processed")
    wait_for(lambda: not runtime.store.outbox(statuses=("pending", "delivering")), timeout,
             "im's outbox delivered")


def test_a_sev1_declared_in_im_runs_the_specs_five_responses_and_stays_in_step(
        configured, pd, slack, teams, smtp):
    runtime = configured
    declared = ok(im(runtime, "declare", "--sev", "SEV-1", "--title", "Payment API Down",
                     "--service", "payments"))
    [remote] = pagerduty_incidents(pd)
    pd_url = f"https://sandbox.pagerduty.invalid/incidents/{remote['id']}"
    assert declared.stdout.splitlines() == [
        "Declared INC-1: SEV-1 Payment API Down (payments)",
        f"  prod-pagerduty: PagerDuty incident #1 created (high urgency, service {PAYMENTS})"
        f" {pd_url}",
        f"  prod-pagerduty: PagerDuty assigned {ONCALL_EMAIL}",
        "  prod-slack: Slack message in #incidents",
        "  workflow chatops: Teams notified: #incidents",
        "  workflow management-notice: Management notified: cto@company.com,"
        " vp-eng@company.com",
        f"  workflow sev1-war-room: War room #{ROOM} created",
        f"  workflow sev1-war-room: Invited {ONCALL_NAME} (on call for payments)",
    ]
    incident = runtime.store.get_incident("INC-1")

    # (1) one PagerDuty incident, in the payments service's PagerDuty service, im's own
    assert (remote["title"], remote["status"], remote["urgency"]) == (
        "Payment API Down", "triggered", "high")
    assert remote["service"]["id"] == PAYMENTS
    assert remote["incident_key"] == f"im-{incident.correlation_id}-payments"

    # (2) PagerDuty pages the on-call engineer: its escalation policy assigns the incident to
    # who is on call for payments, and its log says so; im learns the assignee
    assert remote["assigned_via"] == "escalation_policy"
    assert [a["assignee"]["summary"] for a in remote["assignments"]] == [ONCALL_NAME]
    with pd.client() as api:
        log = api.get(f"/incidents/{remote['id']}/log_entries").json()["log_entries"]
        oncall_now = api.get("/oncalls", params={
            "escalation_policy_ids[]": remote["escalation_policy"]["id"],
            "earliest": "true"}).json()["oncalls"]
    assert ONCALL_NAME in [o["user"]["summary"] for o in oncall_now
                           if o["escalation_level"] == 1]
    [assigned] = [e for e in log if e["type"] == "assign_log_entry"]
    assert [a["summary"] for a in assigned["assignees"]] == [ONCALL_NAME]
    assert incident.assignee == ONCALL_EMAIL

    # (3) ChatOps: the incident message in Slack's #incidents, linking the PagerDuty incident
    [message] = top_level(slack)
    assert message["text"] == "INC-1 [SEV-1] Payment API Down (Open)"
    blocks = {b["block_id"]: b for b in message["blocks"]}
    assert blocks[f"im-{incident.correlation_id}-payments"]["text"]["text"] == (
        "INC-1: Payment API Down")
    assert [f["text"] for f in blocks["state"]["fields"]] == [
        "*Severity:* SEV-1", "*Status:* Open", "*Services:* payments",
        f"*Assignee:* {ONCALL_EMAIL}"]
    assert blocks["links"]["text"]["text"] == (
        f"*Linked:* <{pd_url}|prod-pagerduty #1> (payments)")
    # ... and the Adaptive Card in the Teams channel
    [post] = teams.received
    [attachment] = post.json()["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard"
    assert card["body"][0]["text"] == "SEV-1 INC-1: Payment API Down"
    facts = {f["title"]: f["value"] for b in card["body"] if b["type"] == "FactSet"
             for f in b["facts"]}
    assert (facts["Severity"], facts["Services"]) == ("SEV-1", "payments")
    assert {"type": "Action.OpenUrl", "title": "prod-pagerduty #1 (payments)",
            "url": pd_url} in card["actions"]

    # (4) the war room: topic, purpose, the summary pinned, the on-call engineer invited
    room = slack.channel(ROOM)
    assert room["topic"]["value"] == "SEV-1 · Payment API Down · payments"
    assert room["purpose"]["value"] == (
        f"Incident INC-1: Payment API Down. (im {incident.correlation_id})")
    [summary] = room["messages"]
    assert summary["blocks"][0]["text"]["text"] == "INC-1: Payment API Down"
    # ... naming the paging incident, and linking the incident message, which came first
    summary_blocks = {b["block_id"]: b for b in summary["blocks"]}
    assert summary_blocks["links"]["text"]["text"] == (
        f"*Linked:* <{pd_url}|prod-pagerduty #1> (payments)")
    assert "the incident's message" in summary_blocks["thread"]["elements"][0]["text"]
    assert room["pins"] == [summary["ts"]]
    assert slack.user_id(ONCALL_EMAIL) in room["members"]

    # (5) management notified by mail, over STARTTLS with the login, to the recipients set
    [mail] = smtp.delivered
    assert mail.tls and mail.auth == smtp_server.USER
    assert (mail.mail_from, mail.rcpt_tos) == ("im@company.com", MANAGEMENT)
    assert mail.message["Subject"] == "[SEV-1] INC-1 Payment API Down"
    assert mail.message["To"] == ", ".join(MANAGEMENT)

    # the unified timeline, in order
    title, lines = timeline_lines(runtime)
    assert title == "INC-1: Payment API Down"
    assert lines == [
        "Incident declared: SEV-1 Payment API Down (payments)  [im: alice]",
        f"PagerDuty incident #1 created (high urgency, service {PAYMENTS}) {pd_url}"
        "  [prod-pagerduty]",
        f"PagerDuty assigned {ONCALL_EMAIL}  [prod-pagerduty]",
        "Slack message in #incidents  [prod-slack]",
        "Teams notified: #incidents  [teams: chatops]",
        "Management notified: cto@company.com, vp-eng@company.com  [email: management-notice]",
        f"War room #{ROOM} created  [slack: sev1-war-room]",
        f"Invited {ONCALL_NAME} (on call for payments)  [slack: sev1-war-room]",
    ]

    # the spec's timeline goes on: John acknowledges in PagerDuty; its signed webhook
    # reaches a running `im serve`
    with serve(runtime) as url:
        ok(im(runtime, "connector", "webhook", "prod-pagerduty", "--enable", "--url", url))
        with pd.client(from_email=ONCALL_EMAIL) as john:
            john.put(f"/incidents/{remote['id']}", json={"incident": {
                "type": "incident_reference", "status": "acknowledged"}}).raise_for_status()
        settled(pd, runtime)
        wait_for(lambda: runtime.store.get_incident("INC-1").status.value == "mitigated",
                 what="INC-1 mitigated")
        settled(pd, runtime)
        # ... mitigated in im, by John, from PagerDuty
        incident = runtime.store.get_incident("INC-1")
        assert (incident.status.value, incident.assignee) == ("mitigated", ONCALL_EMAIL)
        # ... the Slack incident message updated, the ack in its thread
        [message] = top_level(slack)
        assert message["text"] == "INC-1 [SEV-1] Payment API Down (Mitigated)"
        assert [r["text"] for r in thread(slack, message["ts"])] == [
            ":large_orange_circle: Acknowledged: the incident is mitigated"]
        # ... and nothing echoed back to PagerDuty: im queued it nothing after the create,
        # and PagerDuty's log has John's acknowledgement alone
        assert [r.action for r in runtime.store.outbox(connector="prod-pagerduty")] == [
            "declare"]
        with pd.client() as api:
            log = api.get(f"/incidents/{remote['id']}/log_entries").json()["log_entries"]
        assert [e["agent"]["summary"] for e in log if e["type"] == "acknowledge_log_entry"
                ] == [ONCALL_NAME]

        # a status update in im reaches PagerDuty and the Slack thread
        noted = ok(im(runtime, "note", "--incident", "INC-1", "Rolled back deploy 4812"))
        assert noted.stdout.splitlines() == [
            "Noted on INC-1",
            "  prod-pagerduty: Note added to PagerDuty incident #1",
            "  prod-slack: Slack message updated (Mitigated); note posted in its thread",
        ]
        settled(pd, runtime)
        with pd.client() as api:
            notes = api.get(f"/incidents/{remote['id']}/notes").json()["notes"]
        assert [n["content"] for n in notes] == ["Rolled back deploy 4812"]
        assert thread(slack, message["ts"])[-1]["text"] == ":memo: Note: Rolled back deploy 4812"

        # resolved in im: resolved in PagerDuty, and in Slack
        resolved = ok(im(runtime, "resolve", "--incident", "INC-1"))
        assert resolved.stdout.splitlines() == [
            "Resolved INC-1 (resolved)",
            "  prod-pagerduty: PagerDuty incident #1 resolved",
            "  prod-slack: Slack message updated (Resolved); resolve posted in its thread",
        ]
        settled(pd, runtime)
        with pd.client() as api:
            after = api.get(f"/incidents/{remote['id']}").json()["incident"]
        assert after["status"] == "resolved"
        [message] = top_level(slack)
        assert message["text"] == "INC-1 [SEV-1] Payment API Down (Resolved)"
        assert thread(slack, message["ts"])[-1]["text"] == ":large_green_circle: Resolved"
        # PagerDuty's webhooks of im's own note and resolve came back, and were taken as
        # echoes: im stored and processed them, and its timeline has each change once
        received = runtime.store.inbox(connector="prod-pagerduty")
        assert {"incident.acknowledged", "incident.annotated", "incident.resolved"} <= {
            r.event_type for r in received}
        assert {r.status.value for r in received} == {"done"}, received

    # the unified timeline, the spec's "Cross-Platform Coordination", in order
    assert timeline_lines(runtime)[1] == lines + [
        f"Acknowledged by {ONCALL_EMAIL}  [prod-pagerduty: {ONCALL_EMAIL}]",
        "Slack message updated (Mitigated); ack posted in its thread  [prod-slack]",
        "Rolled back deploy 4812  [im: alice]",
        "Note added to PagerDuty incident #1  [prod-pagerduty]",
        "Slack message updated (Mitigated); note posted in its thread  [prod-slack]",
        "Resolved by alice  [im: alice]",
        "PagerDuty incident #1 resolved  [prod-pagerduty]",
        "Slack message updated (Resolved); resolve posted in its thread  [prod-slack]",
    ]
    # each workflow action ran once, for the declare alone
    assert [(r.workflow, r.incident_id, r.action, r.status.value) for r in
            sorted(runtime.store.read().workflow_runs.find(), key=lambda r: r.workflow)] == [
        ("chatops", "INC-1", "teams.notify", "done"),
        ("management-notice", "INC-1", "email.notify", "done"),
        ("sev1-war-room", "INC-1", "slack.war_room", "done"),
    ]
    assert (len(teams.received), len(smtp.delivered)) == (1, 1)
    assert [c["name"] for c in slack.channels() if c["name"].startswith("inc-")] == [ROOM]


def test_a_sev3_in_the_same_set_up_runs_none_of_the_workflows(configured, pd, slack, teams,
                                                               smtp):
    runtime = configured
    declared = ok(im(runtime, "declare", "--sev", "SEV-3", "--title", "Slow receipts",
                     "--service", "payments"))
    # the connectors still carry it (PagerDuty, the Slack incident message): no rule applies
    assert [line for line in declared.stdout.splitlines() if "workflow" in line] == []
    assert declared.stdout.splitlines()[0] == "Declared INC-1: SEV-3 Slow receipts (payments)"
    assert len(pagerduty_incidents(pd)) == 1
    assert [m["text"] for m in top_level(slack)] == ["INC-1 [SEV-3] Slow receipts (Open)"]
    assert teams.received == []
    assert smtp.delivered == []
    assert [c["name"] for c in slack.channels() if c["name"].startswith("inc-")] == []
    assert runtime.store.read().workflow_runs.find() == []
    assert not [line for line in timeline_lines(runtime)[1]
                if "[teams:" in line or "[email:" in line or "[slack:" in line]
