"""Slack as a front end of im, end to end on loopback: the Slack sandbox sends signed button
clicks, modal submissions and slash commands, as Slack does, to a running `im serve`; the
change is im's (its database and timeline, the responder by e-mail, from the slack
connector), goes on to the PagerDuty sandbox, and shows on the incident message without a
reply that would echo it. Forged, stale, replayed and foreign requests change nothing."""

import json
import logging
import threading
import time
from datetime import UTC, datetime
from urllib.parse import urlencode

import httpx
import msgspec
import pytest

import im_slack
from im.testing import FakeClock, make_runtime, run_cli, serve, sql
from im_slack import people
from im_slack.connector import SlackConnector
from im_slack.sandbox.signing import signed_headers

from slack_kit import block_text, incident_messages, replies, settings

pd_testing = pytest.importorskip("im_pagerduty.testing")
import im_pagerduty  # noqa: E402  (its testing module imported: it is installed)
from im_pagerduty.connector import PagerDutyConnector  # noqa: E402

pagerduty_sandbox_server = pd_testing.pagerduty_sandbox_server
pagerduty_sandbox = pd_testing.pagerduty_sandbox

pytestmark = pytest.mark.slow

JANE = "jane.smith@company.com"
SECRET = "sandbox-signing-secret"  # what the session's sandbox signs with (im_slack.testing)
MAPPINGS = {"payments": "PPAY001", "api": "PAPI001", "default": "PGEN001"}


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
def pd(pagerduty_sandbox):
    return pagerduty_sandbox


@pytest.fixture
def slack(slack_sandbox):
    slack_sandbox.configure(rate_limits="off")
    people.forget()
    return slack_sandbox


@pytest.fixture
def clock(request):
    """im's own clock; or, for a test parametrized with "fake", a fake one set to now."""
    return FakeClock(datetime.now(UTC)) if getattr(request, "param", None) == "fake" else None


@pytest.fixture
def runtime(tmp_path, slack, pd, monkeypatch, clock):
    monkeypatch.setattr(SlackConnector, "client_options", {"max_attempts": 1, "timeout": 5})
    monkeypatch.setattr(PagerDutyConnector, "client_options",
                        {"max_attempts": 2, "sleep": lambda _s: None})
    rt = make_runtime(tmp_path / "home", plugins=[im_slack, im_pagerduty], user="alice",
                      clock=clock)
    pagerduty = {"base_url": pd.url, "api_key": pd.api_key, "sync_direction": "outbound",
                 "custom": {"service_id": "PXXXXXX", "from_email": "ops@company.com",
                            "escalation_policy_id": "PXXXXXX", "service_mappings": MAPPINGS}}
    ok(run_cli(rt, ["connector", "add", "pagerduty", "prod-pagerduty", "--config",
                    json.dumps(pagerduty)]))
    ok(run_cli(rt, ["connector", "add", "slack", "prod-slack", "--config",
                    json.dumps(settings(slack, signing_secret=SECRET))]))
    yield rt
    rt.store.close()


def settled(runtime):
    wait_for(lambda: not runtime.store.outbox(statuses=("pending", "delivering")),
             what="im's outbox delivered")


def pd_incident(pd):
    with pd.client() as api:
        [found] = api.get("/incidents", params={"date_range": "all"}).json()["incidents"]
    return found


def timeline(runtime, incident="INC-1"):
    return [(e.kind, e.text, e.actor, e.system) for e in runtime.store.timeline(incident)]


def test_acknowledge_from_the_slack_button(runtime, slack, pd):
    ok(run_cli(runtime, ["declare", "--sev", "SEV-1", "--title", "Payment API Down",
                         "--service", "payments"]))
    [message] = incident_messages(slack)
    actions = next(b for b in message["blocks"] if b["block_id"] == "actions")
    assert [(e["action_id"], e["value"]) for e in actions["elements"]] == [
        ("im.ack", "INC-1"), ("im.resolve", "INC-1"), ("im.note", "INC-1")]
    jane = slack.user_id(JANE)
    with serve(runtime) as url:
        delivery = slack.click(f"{url}/slack/prod-slack/interactions", "im.ack",
                               value="INC-1", user_id=jane, message_ts=message["ts"])
        assert (delivery["outcome"], delivery["status"], delivery["answer"]) == (
            "answered", 200, "")
        assert delivery["seconds"] < 3
        settled(runtime)
        wait_for(lambda: pd_incident(pd)["status"] == "acknowledged", what="acknowledged")
    incident = runtime.store.get_incident("INC-1")
    assert incident.status.value == "mitigated"
    assert ("acknowledged", f"Acknowledged by {JANE}", JANE, "prod-slack") in timeline(runtime)
    [message] = incident_messages(slack)
    assert message["text"] == "INC-1 [SEV-1] Payment API Down (Mitigated)"
    assert "*Status:* Mitigated" in block_text(message, "state")
    actions = next(b for b in message["blocks"] if b["block_id"] == "actions")
    assert [e["action_id"] for e in actions["elements"]] == ["im.resolve", "im.note"]
    assert replies(slack, message["ts"]) == []  # no echo of the click in the thread
    assert ("sync", "Slack message updated (Mitigated)", "prod-slack",
            "prod-slack") in timeline(runtime)
    [said] = slack.responses()
    assert said["body"] == {"response_type": "ephemeral", "replace_original": False,
                            "text": "INC-1 acknowledged"}
    assert said["user_id"] == jane


def test_resolve_from_the_slack_button(runtime, slack, pd):
    ok(run_cli(runtime, ["declare", "--sev", "SEV-2", "--title", "Checkout errors",
                         "--service", "payments"]))
    with serve(runtime) as url:
        delivery = slack.click(f"{url}/slack/prod-slack/interactions", "im.resolve",
                               value="INC-1", user_id=slack.user_id(JANE))
        assert (delivery["status"], delivery["answer"]) == (200, "")
        settled(runtime)
        wait_for(lambda: pd_incident(pd)["status"] == "resolved", what="resolved in PagerDuty")
        # a second click on the button of the message as it was: nothing to do, said so
        again = slack.click(f"{url}/slack/prod-slack/interactions", "im.resolve",
                            value="INC-1", user_id=slack.user_id(JANE))
        assert again["status"] == 200
        wait_for(lambda: len(slack.responses()) == 2, what="both answered")
    assert runtime.store.get_incident("INC-1").status.value == "resolved"
    assert [r["body"]["text"] for r in slack.responses()] == [
        "INC-1 resolved", "INC-1 is already resolved"]
    [message] = incident_messages(slack)
    assert message["text"] == "INC-1 [SEV-2] Checkout errors (Resolved)"
    actions = next(b for b in message["blocks"] if b["block_id"] == "actions")
    assert [e["action_id"] for e in actions["elements"]] == ["im.note"]
    assert replies(slack, message["ts"]) == []
    assert [e[1] for e in timeline(runtime) if e[0] == "resolved"] == [f"Resolved by {JANE}"]


def test_add_note_opens_a_modal_whose_submission_adds_the_note_once(runtime, slack, pd):
    ok(run_cli(runtime, ["declare", "--sev", "SEV-2", "--title", "Checkout errors",
                         "--service", "payments"]))
    jane = slack.user_id(JANE)
    with serve(runtime) as url:
        app = f"{url}/slack/prod-slack/interactions"
        clicked = slack.click(app, "im.note", value="INC-1", user_id=jane)
        assert (clicked["status"], clicked["answer"]) == (200, "")
        [opened] = slack.requests("views.open")
        assert opened["params"]["trigger_id"] == clicked["trigger_id"]
        [view] = slack.views()
        assert (view["user_id"], view["callback_id"], view["title"]["text"]) == (
            jane, "im.note", "Note on INC-1")
        assert json.loads(view["private_metadata"]) == {
            "incident": "INC-1", "response_url": clicked["response_url"]}
        empty = slack.submit_view(app, view["id"], {"note": {"text": "   "}})
        assert json.loads(empty["answer"]) == {"response_action": "errors",
                                               "errors": {"note": "The note is empty"}}
        submitted = slack.submit_view(app, view["id"],
                                      {"note": {"text": "Rolled back deploy 4812"}})
        assert (submitted["status"], submitted["answer"]) == (200, "")
        assert slack.views()[0]["closed"] is True
        settled(runtime)
        with pd.client() as api:
            remote = pd_incident(pd)
            notes = wait_for(lambda: api.get(f"/incidents/{remote['id']}/notes").json()[
                "notes"], what="the note in PagerDuty")
        wait_for(lambda: slack.responses(), what="the answer")
    assert [n["content"] for n in notes] == ["Rolled back deploy 4812"]
    assert [e for e in timeline(runtime) if e[0] == "note"] == [
        ("note", "Rolled back deploy 4812", JANE, "prod-slack")]
    [said] = slack.responses()
    assert (said["response_url"], said["body"]["text"]) == (
        clicked["response_url"], "Note added to INC-1")
    [message] = incident_messages(slack)
    assert replies(slack, message["ts"]) == []


def command(slack, url, text, **fields):
    """A slash command's delivery and the ephemeral answer it got."""
    delivery = slack.slash_command(f"{url}/slack/prod-slack/commands", text, command="/im",
                                   **fields)
    assert (delivery["outcome"], delivery["status"]) == ("answered", 200), delivery
    answer = json.loads(delivery["answer"])
    assert answer["response_type"] == "ephemeral"
    return answer["text"]


def test_each_slash_command_and_its_answer(runtime, slack, pd):
    jane = slack.user_id(JANE)
    with serve(runtime) as url:
        assert command(slack, url, "declare SEV-2 Payment API Down --service payments",
                       user_id=jane) == "Declared INC-1: SEV-2 Payment API Down (payments)"
        assert command(slack, url, 'declare sev1 "Login: 500s" --service=api,payments',
                       user_id=jane) == "Declared INC-2: SEV-1 Login: 500s (api, payments)"
        settled(runtime)
        assert command(slack, url, "ack INC-1 Rolling back deploy 4812",
                       user_id=jane) == "INC-1 acknowledged"
        assert command(slack, url, "ack INC-1", user_id=jane) == (
            "INC-1 is already acknowledged")
        assert command(slack, url, "note inc-1 Error rate back to normal",
                       user_id=jane) == "Note added to INC-1"
        assert command(slack, url, "status", user_id=jane) == "\n".join([
            "Open incidents, newest first:",
            "INC-2 [SEV-1] Login: 500s: Open (api, payments)",
            "INC-1 [SEV-2] Payment API Down: Mitigated (payments)"])
        assert command(slack, url, "resolve 1", user_id=jane) == "INC-1 resolved"
        assert command(slack, url, "resolve INC-1", user_id=jane) == (
            "INC-1 is already resolved")
        settled(runtime)
        incident = runtime.store.get_incident("INC-1")
        assert incident.assignee  # PagerDuty's on-call engineer, as PagerDuty assigned
        [link] = runtime.store.links("INC-1", connector="prod-pagerduty")
        assert command(slack, url, "status INC-1", user_id=jane) == "\n".join([
            "INC-1 [SEV-2] Payment API Down: Resolved (payments)",
            f"Declared by {JANE} at {incident.created_at:%Y-%m-%d %H:%M} UTC · assigned to"
            f" {incident.assignee}",
            f"Linked: <{link.remote_url}|prod-pagerduty #{link.remote_number}>"])
        assert command(slack, url, "help").splitlines()[0] == (
            "`/im declare SEV-2 Payment API Down --service payments` declare an incident"
            " (a quoted title too; services comma-separated)")
    assert [e for e in timeline(runtime) if e[0] in ("declared", "acknowledged", "note",
                                                     "resolved")] == [
        ("declared", "Incident declared: SEV-2 Payment API Down (payments)", JANE,
         "prod-slack"),
        ("acknowledged", f"Acknowledged by {JANE}: Rolling back deploy 4812", JANE,
         "prod-slack"),
        ("note", "Error rate back to normal", JANE, "prod-slack"),
        ("resolved", f"Resolved by {JANE}", JANE, "prod-slack")]
    # the declare made in Slack has its incident message (no thread replies: all made there)
    first, second = incident_messages(slack)
    assert first["text"] == "INC-1 [SEV-2] Payment API Down (Resolved)"
    assert second["text"] == "INC-2 [SEV-1] Login: 500s (Open)"
    assert replies(slack, first["ts"]) == []
    with pd.client() as api:
        remote = api.get("/incidents", params={"date_range": "all"}).json()["incidents"]
    assert sorted((r["title"], r["status"]) for r in remote) == [  # one per service
        ("Login: 500s", "triggered"), ("Login: 500s", "triggered"),
        ("Payment API Down", "resolved")]


USAGE = ("Usage: /im declare SEV-n TITLE --service a,b | ack INC-n [note] | resolve INC-n"
         " [note] | note INC-n TEXT | status [INC-n] | help")


@pytest.mark.parametrize(("text", "answer"), [
    ("frobnicate INC-1", f"Unknown command 'frobnicate'. {USAGE}"),
    ("declare SEV-9 Disk full --service db", "invalid severity 'SEV-9'; choose from SEV-1,"
                                             " SEV-2, SEV-3, SEV-4"),
    ("declare SEV-2 Disk full", f"Give the services with --service a,b. {USAGE}"),
    ("declare SEV-2 --service db", f"The title is missing. {USAGE}"),
    ('declare SEV-2 "Disk full --service db', f"A quote is not closed. {USAGE}"),
    ("declare SEV-2 Disk full --service", "--service needs the services: --service a,b"),
    ("ack", f"Which incident? {USAGE}"),
    ("ack INC-x", "invalid incident id 'INC-x': write INC-<number>, e.g. INC-1"),
    ("resolve INC-99", "No incident INC-99"),
    ("note INC-1", f"The note is empty. {USAGE}"),
    ("status INC-42", "No incident INC-42"),
])
def test_bad_input_is_one_line(runtime, slack, text, answer):
    with serve(runtime) as url:
        said = command(slack, url, text)
    assert said == answer
    assert runtime.store.list_incidents() == []


def test_a_responder_without_an_email_in_slack_acts_as_their_slack_name(runtime, slack):
    slack.configure(scopes=["chat:write", "channels:read", "channels:history", "users:read",
                            "commands"])  # no users:read.email: Slack gives no address
    ok(run_cli(runtime, ["declare", "--sev", "SEV-3", "--title", "Slow search",
                         "--service", "api"]))
    with serve(runtime) as url:
        assert command(slack, url, "note INC-1 Looking", user_id=slack.user_id(JANE)) == (
            "Note added to INC-1")
    [note] = [e for e in timeline(runtime) if e[0] == "note"]
    assert note == ("note", "Looking", "slack:jane.smith", "prod-slack")


def snapshot(runtime, pd):
    """What a request could have changed: im's rows, and what reached PagerDuty."""
    return {"incidents": [(i.id, i.status.value) for i in runtime.store.list_incidents()],
            "timeline": sql(runtime, "SELECT count(*) FROM timeline"),
            "outbox": sql(runtime, "SELECT count(*) FROM outbox"),
            "keys": sql(runtime, "SELECT count(*) FROM seen_keys"),
            "pagerduty": len(pd.requests())}


def test_forged_stale_replayed_and_foreign_requests_change_nothing(runtime, slack, pd,
                                                                   caplog):
    caplog.set_level(logging.INFO, logger="im.connector.prod-slack")
    ok(run_cli(runtime, ["declare", "--sev", "SEV-2", "--title", "Checkout errors",
                         "--service", "payments"]))
    jane = slack.user_id(JANE)
    with serve(runtime) as url:
        commands, interactions = (f"{url}/slack/prod-slack/commands",
                                  f"{url}/slack/prod-slack/interactions")
        genuine = slack.slash_command(commands, "note INC-1 Investigating", command="/im",
                                      user_id=jane)
        assert json.loads(genuine["answer"])["text"] == "Note added to INC-1"
        clicked = slack.click(interactions, "im.ack", value="INC-1", user_id=jane)
        settled(runtime)
        before = snapshot(runtime, pd)
        assert before["incidents"] == [("INC-1", "mitigated")]

        # a replay of each, within Slack's five minutes: answered, not carried out again
        replayed = httpx.post(commands, content=genuine["body"], headers=genuine["headers"])
        assert (replayed.status_code, replayed.json()) == (200, {
            "response_type": "ephemeral", "replace_original": False,
            "text": "Already done: this request reached im before, and was not carried out"
                    " twice"})
        replayed = httpx.post(interactions, content=clicked["body"], headers=clicked["headers"])
        assert (replayed.status_code, replayed.text) == (200, "")

        # the body changed under its signature; a signature made with another secret
        forged = genuine["body"].replace("Investigating", "Rolled+back")
        refused = httpx.post(commands, content=forged, headers=genuine["headers"])
        assert (refused.status_code, refused.json()) == (
            401, {"error": "the request's Slack signature is not valid"})
        now = int(time.time())
        wrong = signed_headers("another-secret", now, forged.encode(),
                               "application/x-www-form-urlencoded")
        assert httpx.post(commands, content=forged, headers=wrong).status_code == 401
        assert httpx.post(commands, content=forged).status_code == 401  # not signed at all

        # signed six minutes ago (by Slack's clock): a replay of an old request
        stale = slack.click(interactions, "im.resolve", value="INC-1", user_id=jane,
                            timestamp=now - 6 * 60)
        assert (stale["status"], json.loads(stale["answer"])) == (
            401, {"error": "the request's Slack signature is not valid"})

        # well signed, from another workspace the app is installed in
        fields = dict(x.split("=", 1) for x in genuine["body"].split("&"))
        fields["team_id"] = "T0OTHERTEAM"
        other = urlencode({k: v.replace("+", " ") for k, v in fields.items()})
        foreign = httpx.post(commands, content=other, headers=signed_headers(
            SECRET, now, other.encode(), "application/x-www-form-urlencoded"))
        assert (foreign.status_code, foreign.json()) == (403, {
            "error": "this Slack workspace is not the one of im's slack connector prod-slack"})
        time.sleep(0.3)  # anything wrongly queued would be on its way to PagerDuty by now
        settled(runtime)
        assert snapshot(runtime, pd) == before
    [note] = [e for e in timeline(runtime) if e[0] == "note"]
    assert note == ("note", "Investigating", JANE, "prod-slack")
    said = [r.getMessage() for r in caplog.records]
    assert sum("came again (the same signature)" in line for line in said) == 2
    assert any("a signature not made with the signing secret" in line for line in said)
    assert any("no X-Slack-Request-Timestamp or X-Slack-Signature header" in line
               for line in said)
    assert any("a timestamp 360 s old" in line or "a timestamp 361 s old" in line
               for line in said)
    assert any("refused a request from Slack workspace T0OTHERTEAM" in line for line in said)


@pytest.mark.parametrize("clock", ["fake"], indirect=True)
def test_the_five_minutes_are_counted_by_ims_clock(runtime, slack, clock):
    """Slack's rule is read on im's clock (runtime.clock): a fake one moved six minutes on
    takes a request signed just now for a stale one."""
    ok(run_cli(runtime, ["declare", "--sev", "SEV-3", "--title", "Slow search",
                         "--service", "api"]))
    with serve(runtime) as url:
        assert command(slack, url, "status INC-1").startswith("INC-1 [SEV-3] Slow search")
        clock.advance(minutes=6)
        late = slack.slash_command(f"{url}/slack/prod-slack/commands", "ack INC-1",
                                   command="/im")
    assert late["status"] == 401
    assert runtime.store.get_incident("INC-1").status.value == "open"


def test_only_a_slack_connector_with_a_signing_secret_takes_requests(runtime, slack):
    ok(run_cli(runtime, ["connector", "add", "slack", "quiet-slack", "--config",
                         json.dumps(settings(slack))]))
    with serve(runtime) as url:
        unknown = httpx.post(f"{url}/slack/nope/commands", content=b"text=status")
        assert (unknown.status_code, unknown.json()) == (
            404, {"error": "no slack connector named nope"})
        quiet = httpx.post(f"{url}/slack/quiet-slack/interactions", content=b"payload={}")
        assert (quiet.status_code, quiet.json()) == (404, {
            "error": "slack connector quiet-slack takes no requests from Slack: give it the"
                     " app's signing secret (custom.signing_secret)"})
        paging = httpx.post(f"{url}/slack/prod-pagerduty/commands", content=b"text=status")
        assert paging.status_code == 404
        record = runtime.store.get_connector("prod-slack")  # no command disables one yet
        runtime.store.save_connector(msgspec.structs.replace(record, enabled=False))
        disabled = httpx.post(f"{url}/slack/prod-slack/commands", content=b"text=status")
        assert (disabled.status_code, disabled.json()) == (
            404, {"error": "slack connector prod-slack is disabled"})
        runtime.store.save_connector(record)
        huge = httpx.post(f"{url}/slack/prod-slack/commands", content=b"x" * (64 * 1024 + 1))
        assert huge.status_code == 413
    assert runtime.store.list_incidents() == []


def test_a_busy_database_is_answered_at_once_and_the_outcome_said_later(runtime, slack, pd):
    """The change waits for the database past Slack's three seconds: "Working on it…" is
    answered in time, and the outcome goes to the response_url once the change is made."""
    ok(run_cli(runtime, ["declare", "--sev", "SEV-2", "--title", "Checkout errors",
                         "--service", "payments"]))
    holding, release = threading.Event(), threading.Event()

    def busy_writer():
        with runtime.store.transaction() as tx:  # another writer holds the database
            tx.meta.set("busy", "yes")
            holding.set()
            release.wait(15)
        runtime.store.close()

    writer = threading.Thread(target=busy_writer)
    writer.start()
    try:
        assert holding.wait(10)
        with serve(runtime) as url:
            delivery = slack.slash_command(f"{url}/slack/prod-slack/commands", "ack INC-1",
                                           command="/im", user_id=slack.user_id(JANE))
            assert (delivery["outcome"], delivery["status"]) == ("answered", 200)
            assert json.loads(delivery["answer"])["text"] == "Working on it…"
            assert delivery["seconds"] < 3
            assert slack.responses() == []
            release.set()
            [said] = wait_for(slack.responses, what="the outcome posted")
            settled(runtime)
            wait_for(lambda: pd_incident(pd)["status"] == "acknowledged",
                     what="acknowledged in PagerDuty")
    finally:
        release.set()
        writer.join(15)
    assert (said["response_url"], said["body"]["text"]) == (
        delivery["response_url"], "INC-1 acknowledged")
    assert runtime.store.get_incident("INC-1").status.value == "mitigated"


def test_a_change_from_slack_wakes_the_delivery_as_one_from_the_http_api(runtime, slack):
    """As the HTTP API's changes do: here in a worker of `im serve --workers N`, which tells
    the process that delivers (im serve in one process sets its delivery loop going)."""
    from litestar.testing import TestClient

    from im.server import create_app

    class Supervisor:
        def __init__(self):
            self.told = []

        def notify(self, kind):
            self.told.append(kind)

    ok(run_cli(runtime, ["declare", "--sev", "SEV-3", "--title", "Slow search",
                         "--service", "api"]))
    supervisor = Supervisor()

    def signed(text):
        body = urlencode({"team_id": "T0SANDBOX1", "user_id": slack.user_id(JANE),
                          "user_name": "jane.smith", "command": "/im", "text": text})
        return body, signed_headers(SECRET, int(time.time()), body.encode(),
                                    "application/x-www-form-urlencoded")

    with TestClient(app=create_app(runtime, supervisor=supervisor)) as client:
        body, headers = signed("status INC-1")
        assert client.post("/slack/prod-slack/commands", content=body,
                           headers=headers).status_code == 200
        assert supervisor.told == []  # nothing changed: nothing to deliver
        body, headers = signed("note INC-1 Looking into it")
        answer = client.post("/slack/prod-slack/commands", content=body, headers=headers)
    assert answer.json()["text"] == "Note added to INC-1"
    assert supervisor.told == ["outbox"]


def test_hostile_requests_found_by_review_are_refused_in_one_line(runtime, slack, pd):
    """What an attacker's review of these routes found: a timestamp of hundreds of digits,
    a payload nested past any of Slack's, a request replayed to another connector of the same
    app, a user Slack cannot say who is. Each is refused, logged, and changes nothing."""
    ok(run_cli(runtime, ["declare", "--sev", "SEV-2", "--title", "Checkout errors",
                         "--service", "payments"]))
    ok(run_cli(runtime, ["connector", "add", "slack", "second-slack", "--config",
                         json.dumps(settings(slack, signing_secret=SECRET))]))
    jane = slack.user_id(JANE)
    form = "application/x-www-form-urlencoded"
    with serve(runtime) as url:
        interactions = f"{url}/slack/prod-slack/interactions"
        huge = httpx.post(interactions, content=b"payload={}", headers={
            "X-Slack-Request-Timestamp": "1" + "0" * 320, "X-Slack-Signature": "v0=00"})
        assert (huge.status_code, huge.json()) == (
            401, {"error": "the request's Slack signature is not valid"})
        deep = "payload=" + "[" * 30_000
        nested = httpx.post(interactions, content=deep, headers=signed_headers(
            SECRET, int(time.time()), deep.encode(), form))
        assert (nested.status_code, nested.json()) == (
            400, {"error": "the body is not an interaction Slack sends"})
        settled(runtime)
        before = snapshot(runtime, pd)

        # one app (one signing secret) for two connectors: a request sent to one, replayed
        # to the other, is the same request
        sent = slack.slash_command(f"{url}/slack/prod-slack/commands", "note INC-1 Once",
                                   command="/im", user_id=jane)
        assert json.loads(sent["answer"])["text"] == "Note added to INC-1"
        again = httpx.post(f"{url}/slack/second-slack/commands", content=sent["body"],
                           headers=sent["headers"])
        assert again.json()["text"].startswith("Already done")

        # Slack down when asked who the user is: nothing is done in a name the request gives
        people.forget()
        slack.set_faults(error_rate=1.0, error_status=500, methods=["users.info"])
        try:
            unknown = slack.slash_command(f"{url}/slack/prod-slack/commands",
                                          "note INC-1 Twice", command="/im", user_id=jane)
        finally:
            slack.clear_faults()
        assert json.loads(unknown["answer"])["text"] == (
            "im could not tell who you are from Slack, so did nothing; try again")
    notes = [e for e in timeline(runtime) if e[0] == "note"]
    assert notes == [("note", "Once", JANE, "prod-slack")]
    assert snapshot(runtime, pd)["incidents"] == before["incidents"]
