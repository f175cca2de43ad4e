"""The slack connector against the Slack sandbox, driven through im's real command line: the
incident message and its thread, idempotency after a crash, outages, rate limits, Slack's
refusals, and `im connector test`."""

import json
import time

import pytest

from im.testing import run_cli
from im_slack.connector import SlackConnector

from slack_kit import block_text, im_, incident_messages, replies, runtime_with_slack


@pytest.fixture
def one_try(monkeypatch):
    # one attempt per call: the outbox retries, and tests do not wait out a backoff
    monkeypatch.setattr(SlackConnector, "client_options", {"max_attempts": 1, "timeout": 2})


@pytest.fixture
def runtime(tmp_path, slack, one_try):
    slack.configure(rate_limits="off")
    rt = runtime_with_slack(tmp_path / "home", slack)
    yield rt
    rt.store.close()


def test_an_incident_is_one_message_kept_up_to_date_with_its_changes_in_the_thread(
        runtime, slack):
    declared = im_(runtime, "declare", "--sev", "SEV-1", "--title", "Payment API Down",
                   "--service", "payments,api")
    assert declared.exit_code == 0, declared.output
    assert "  prod-slack: Slack message in #incidents" in declared.stdout
    [message] = incident_messages(slack)
    assert message["text"] == "INC-1 [SEV-1] Payment API Down (Open)"
    assert block_text(message, "state") == ("*Severity:* SEV-1 *Status:* Open *Services:*"
                                            " payments, api")
    [link] = runtime.store.links("INC-1", connector="prod-slack")
    assert link.remote_id == f"{slack.channel('incidents')['id']}/{message['ts']}"
    assert link.remote_status == "open"

    im_(runtime, "ack", "--incident", "INC-1", "--note", "Rolling back deploy 4812")
    im_(runtime, "note", "Error rate back to normal", "--incident", "INC-1")
    resolved = im_(runtime, "resolve", "--incident", "INC-1", "--note", "Deploy rolled back")
    assert ("  prod-slack: Slack message updated (Resolved); resolve posted in its thread"
            in resolved.stdout)

    [message] = incident_messages(slack)
    assert message["text"] == "INC-1 [SEV-1] Payment API Down (Resolved)"
    assert "*Status:* Resolved" in block_text(message, "state")
    assert [r["text"] for r in replies(slack, message["ts"])] == [
        ":large_orange_circle: Acknowledged: the incident is mitigated: Rolling back deploy"
        " 4812",
        ":memo: Note: Error rate back to normal",
        ":large_green_circle: Resolved: Deploy rolled back",
    ]
    assert [block_text(r, "note") for r in replies(slack, message["ts"])] == [
        "Rolling back deploy 4812", "Error rate back to normal", "Deploy rolled back"]
    updates = slack.requests("chat.update")
    assert len(updates) == 3
    [link] = runtime.store.links("INC-1", connector="prod-slack")
    assert link.remote_status == "resolved"
    timeline = im_(runtime, "timeline", "INC-1").stdout
    assert "Slack message updated (Mitigated); ack posted in its thread  [prod-slack]" in timeline


def test_severity_and_assignee_show_on_the_message(runtime, slack):
    im_(runtime, "declare", "--sev", "SEV-3", "--title", "Slow search", "--service", "search")
    im_(runtime, "severity", "--incident", "INC-1", "--sev", "SEV-2")
    [message] = incident_messages(slack)
    assert block_text(message, "state").startswith("*Severity:* SEV-2")
    assert [r["text"] for r in replies(slack, message["ts"])] == [
        ":rotating_light: Severity is now SEV-2"]


def test_a_declare_retried_after_a_crash_posts_no_second_message(tmp_path, slack, one_try):
    from im.testing import FakeClock
    from im.testing.conformance import MovingClock

    slack.configure(rate_limits="off")
    clock = MovingClock()
    runtime = runtime_with_slack(tmp_path / "home", slack, clock=clock)
    store = runtime.store

    class Crash(Exception):
        pass

    def crash(*args, **kwargs):
        raise Crash("the power went out")

    store.finish_outbox = crash
    with pytest.raises(Crash):
        im_(runtime, "declare", "--sev", "SEV-2", "--title", "Checkout errors", "--service",
            "api")
    del store.finish_outbox
    assert len(incident_messages(slack)) == 1  # posted, never recorded
    assert runtime.store.links("INC-1") == []

    clock.advance(seconds=200)  # past the dead process's lease on the row
    synced = run_cli(runtime, ["connector", "sync", "prod-slack"])
    assert synced.exit_code == 0, synced.output
    [message] = incident_messages(slack)
    assert len(slack.requests("chat.postMessage")) == 1
    [link] = runtime.store.links("INC-1", connector="prod-slack")
    assert link.remote_id.endswith(f"/{message['ts']}")
    timeline = im_(runtime, "timeline", "INC-1").stdout
    assert "Slack message in #incidents, posted by an earlier attempt" in timeline
    assert isinstance(clock, FakeClock)


def test_an_outage_keeps_changes_queued_and_delivers_them_once_later(runtime, slack):
    slack.set_faults(error_rate=1.0, error_status=503)
    declared = im_(runtime, "declare", "--sev", "SEV-2", "--title", "Checkout errors",
                   "--service", "api")
    assert declared.exit_code == 0, declared.output
    assert "1 change(s) queued" in declared.stderr
    im_(runtime, "note", "Written during the outage", "--incident", "INC-1")
    rows = runtime.store.outbox(connector="prod-slack")
    assert [r.status for r in rows] == ["pending", "pending"]
    assert "503" in rows[0].last_error
    assert incident_messages(slack) == []

    slack.clear_faults()
    synced = run_cli(runtime, ["connector", "sync", "prod-slack"])
    assert "prod-slack: 2 delivered, 0 queued for retry, 0 failed" in synced.stdout
    [message] = incident_messages(slack)
    assert [r["text"] for r in replies(slack, message["ts"])] == [
        ":memo: Note: Written during the outage"]


def test_a_429_is_waited_out_as_slack_asks(tmp_path, slack, monkeypatch):
    waits = []

    def sleep(seconds):
        waits.append(seconds)
        time.sleep(seconds)

    monkeypatch.setattr(SlackConnector, "client_options", {"sleep": sleep, "timeout": 2})
    slack.configure(rate_limits="off", retry_after_seconds=1)
    runtime = runtime_with_slack(tmp_path / "home", slack)
    slack.set_faults(storm_429=1, storm_429_retry_after=1, methods=["chat.postMessage"])
    declared = im_(runtime, "declare", "--sev", "SEV-2", "--title", "Checkout errors",
                   "--service", "api")
    assert declared.exit_code == 0, declared.output
    assert "  prod-slack: Slack message in #incidents" in declared.stdout
    posts = slack.requests("chat.postMessage")
    assert [p["status"] for p in posts] == [429, 200]
    assert waits == [1.0]
    assert len(incident_messages(slack)) == 1
    runtime.store.close()


def test_a_long_rate_limit_leaves_the_change_queued_until_slack_allows(tmp_path, slack,
                                                                       one_try):
    slack.configure(rate_limits="off")
    runtime = runtime_with_slack(tmp_path / "home", slack)
    slack.set_faults(storm_429=5, storm_429_retry_after=120, methods=["chat.postMessage"])
    im_(runtime, "declare", "--sev", "SEV-2", "--title", "Checkout errors", "--service", "api")
    [row] = runtime.store.outbox(connector="prod-slack")
    assert row.status == "pending"
    assert "rate limiting" in row.last_error
    wait = (row.next_attempt_at - runtime.clock()).total_seconds()
    assert 100 < wait <= 121, wait
    runtime.store.close()


def test_a_missing_scope_fails_the_change_and_names_the_scope(runtime, slack):
    slack.configure(scopes=["channels:read", "channels:history"])
    result = im_(runtime, "declare", "--sev", "SEV-2", "--title", "Checkout errors",
                 "--service", "api")
    assert result.exit_code == 3, result.output
    [row] = runtime.store.outbox(connector="prod-slack")
    assert row.status == "failed"
    assert row.last_error == (
        "Slack refused chat.postMessage: the bot token lacks the `chat:write` scope. Add it in"
        " your Slack app (OAuth & Permissions → Bot Token Scopes), reinstall the app to the"
        " workspace, and give im the new bot token if it changed")


def test_a_refused_token_is_explained(tmp_path, slack, one_try):
    slack.configure(rate_limits="off")
    runtime = runtime_with_slack(tmp_path / "home", slack)
    im_(runtime, "connector", "update", "prod-slack", "--config",
        json.dumps({"api_key": "xoxb-wrong"}))
    result = im_(runtime, "connector", "test", "prod-slack")
    assert result.exit_code == 1
    assert "Slack refused the bot token (invalid_auth) on auth.test" in result.stdout
    runtime.store.close()


def test_a_channel_the_bot_is_not_in_is_joined_or_explained(tmp_path, slack, one_try,
                                                            new_database):
    slack.configure(rate_limits="off")
    runtime = runtime_with_slack(tmp_path / "home", slack, channel="#general")
    tested = im_(runtime, "connector", "test", "prod-slack")
    assert "the bot is not a member yet and will join it with its first message" in \
        tested.stdout
    im_(runtime, "declare", "--sev", "SEV-2", "--title", "Checkout errors", "--service", "api")
    assert len(incident_messages(slack, "general")) == 1

    new_database()  # another installation: its own database, as its own home on SQLite
    other = runtime_with_slack(tmp_path / "other", slack, channel="#nowhere")
    result = im_(other, "connector", "test", "prod-slack")
    assert result.exit_code == 1
    assert "Slack has no channel #nowhere that the bot can see" in result.stdout
    runtime.store.close()
    other.store.close()


def test_connector_test_checks_token_scopes_and_channel(runtime, slack):
    result = im_(runtime, "connector", "test", "prod-slack")
    assert result.exit_code == 0, result.output
    channel = slack.channel("incidents")["id"]
    assert result.stdout.splitlines() == [
        "✓ Bot token works: im in Sandbox Workspace (T0SANDBOX1)",
        "✓ Scopes for incident messages: chat:write, channels:read, channels:history",
        f"✓ #incidents ({channel}): the bot is a member",
    ]
    slack.configure(scopes=["chat:write", "channels:read"])
    result = im_(runtime, "connector", "test", "prod-slack")
    assert result.exit_code == 1
    assert "✗ The token lacks channels:history, needed for incident messages" in result.stdout


def test_the_token_is_a_secret(tmp_path, slack, monkeypatch, one_try):
    monkeypatch.setenv("SLACK_BOT_TOKEN", slack.token)
    runtime = runtime_with_slack(tmp_path / "home", slack)
    shown = im_(runtime, "connector", "show", "prod-slack").stdout
    assert slack.token not in shown and "********" in shown
    im_(runtime, "connector", "update", "prod-slack", "--config",
        json.dumps({"api_key": "env:SLACK_BOT_TOKEN"}))
    assert im_(runtime, "connector", "test", "prod-slack").exit_code == 0
    runtime.store.close()


def test_the_signing_secret_is_hidden_and_brings_the_buttons(tmp_path, slack, one_try,
                                                             monkeypatch):
    slack.configure(rate_limits="off")
    runtime = runtime_with_slack(tmp_path / "home", slack)
    im_(runtime, "declare", "--sev", "SEV-2", "--title", "No buttons", "--service", "api")
    [plain] = incident_messages(slack)
    assert "actions" not in [b["block_id"] for b in plain["blocks"]]

    monkeypatch.setenv("SLACK_SIGNING_SECRET", "s3cret")
    im_(runtime, "connector", "update", "prod-slack", "--signing-secret",
        "env:SLACK_SIGNING_SECRET")
    shown = json.loads(im_(runtime, "connector", "show", "prod-slack", "--json").stdout)
    assert shown["settings"]["custom"]["signing_secret"] == "env:SLACK_SIGNING_SECRET"
    updated = im_(runtime, "connector", "update", "prod-slack", "--signing-secret",
                  "literal-secret")
    assert updated.stdout == 'Updated prod-slack: custom.signing_secret = "********"\n'
    shown = json.loads(im_(runtime, "connector", "show", "prod-slack", "--json").stdout)
    assert shown["settings"]["custom"]["signing_secret"] == "********"
    empty = im_(runtime, "connector", "update", "prod-slack", "--signing-secret", " ")
    assert empty.exit_code != 0 and "the signing secret is empty" in empty.stderr
    tested = im_(runtime, "connector", "test", "prod-slack")
    assert tested.stdout.splitlines()[1:] == [
        "✓ Scopes for incident messages and requests from Slack (buttons, slash command):"
        " chat:write, channels:read, channels:history, commands, users:read,"
        " users:read.email",
        f"✓ #incidents ({slack.channel('incidents')['id']}): the bot is a member",
        "✓ Buttons and the slash command: Interactivity Request URL"
        " /slack/prod-slack/interactions, slash command Request URL /slack/prod-slack/commands"
        " (on im serve's public address: IM_PUBLIC_URL)"]
    im_(runtime, "declare", "--sev", "SEV-1", "--title", "Buttons", "--service", "api")
    message = incident_messages(slack)[-1]
    [actions] = [b for b in message["blocks"] if b["block_id"] == "actions"]
    assert [(e["text"]["text"], e["action_id"], e["value"]) for e in actions["elements"]] == [
        ("Acknowledge", "im.ack", "INC-2"), ("Resolve", "im.resolve", "INC-2"),
        ("Add note", "im.note", "INC-2")]
    runtime.store.close()
