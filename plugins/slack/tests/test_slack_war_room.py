"""The workflow actions slack.war_room and slack.archive_war_room against the Slack sandbox,
run by real rules through im's command line, with on-call responders from a test connector."""

import json

import pytest

from im.testing import make_runtime, run_cli
from im_slack.connector import SlackConnector
from im_slack.war_room import room_name

from slack_kit import (  # noqa: F401  (the fixture)
    OncallPlugin,
    add_oncall,
    im_,
    oncall,
    runtime_with_slack,
)


@pytest.fixture
def runtime(tmp_path, slack, monkeypatch):
    monkeypatch.setattr(SlackConnector, "client_options", {"max_attempts": 1, "timeout": 2})
    slack.configure(rate_limits="off")
    rt = runtime_with_slack(tmp_path / "home", slack, plugins=[OncallPlugin()])
    add_oncall(rt, "prod-pagerduty")
    yield rt
    rt.store.close()


def war_room_rule(runtime, **settings):
    action = json.dumps({"connector": "prod-slack", "invite_oncall_from": "prod-pagerduty",
                         **settings})
    result = im_(runtime, "workflow", "add", "sev1-war-room", "--on", "declared", "--sev",
                 "SEV-1", "--action", f"slack.war_room={action}")
    assert result.exit_code == 0, result.output


def test_the_sev1_flow_opens_a_war_room_with_the_oncall_invited(runtime, slack, oncall):
    oncall["payments"] = "jane.smith@company.com"
    war_room_rule(runtime)
    result = im_(runtime, "declare", "--sev", "SEV-1", "--title", "Payment API Down",
                 "--service", "payments")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "Declared INC-1: SEV-1 Payment API Down (payments)",
        "  prod-slack: Slack message in #incidents",
        "  workflow sev1-war-room: War room #inc-1-payment-api-down created",
        "  workflow sev1-war-room: Invited Jane Smith (on call for payments)",
    ]
    room = slack.channel("inc-1-payment-api-down")
    assert room["topic"]["value"] == "SEV-1 · Payment API Down · payments"
    incident = runtime.store.get_incident("INC-1")
    assert room["purpose"]["value"] == (
        f"Incident INC-1: Payment API Down. (im {incident.correlation_id})")
    [summary] = room["messages"]
    assert room["pins"] == [summary["ts"]]
    assert summary["blocks"][0]["text"]["text"] == "INC-1: Payment API Down"
    assert slack.user_id("jane.smith@company.com") in room["members"]
    # a SEV-3 runs nothing
    im_(runtime, "declare", "--sev", "SEV-3", "--title", "Slow receipts", "--service",
        "payments")
    assert not [c for c in slack.channels() if c["name"].startswith("inc-2")]


def test_the_default_war_room_rule_takes_the_slack_and_oncall_connectors_there_are(
        runtime, slack, oncall):
    oncall["payments"] = "jane.smith@company.com"
    offered = {view["name"]: view for view in json.loads(
        im_(runtime, "workflow", "defaults", "--json").stdout)}
    assert offered["war-room"]["settings"] == {
        "connector": "prod-slack", "invite_oncall_from": "prod-pagerduty",
        "archive_on_close": True}
    assert offered["war-room"]["problem"] is None
    assert offered["archive-war-room"]["settings"] == {"connector": "prod-slack"}
    added = im_(runtime, "workflow", "defaults", "--add", "war-room", "--add",
                "archive-war-room")
    assert added.exit_code == 0, added.output
    result = im_(runtime, "declare", "--sev", "SEV-1", "--title", "Payment API Down",
                 "--service", "payments")
    assert result.stdout.splitlines()[2:] == [
        "  workflow war-room: War room #inc-1-payment-api-down created",
        "  workflow war-room: Invited Jane Smith (on call for payments)"]
    im_(runtime, "close", "--incident", "INC-1")
    assert slack.channel("inc-1-payment-api-down")["is_archived"]
    # with a second slack connector, which one is the user's to say
    im_(runtime, "workflow", "remove", "war-room")
    second = im_(runtime, "connector", "add", "slack", "other-slack", "--config", json.dumps(
        {"api_key": "xoxb-other", "base_url": slack.api_url,
         "custom": {"channel": "#incidents"}}))
    assert second.exit_code == 0, second.output
    offered = {view["name"]: view for view in json.loads(
        im_(runtime, "workflow", "defaults", "--json").stdout)}
    assert offered["war-room"]["problem"] == "connector is required"
    assert not offered["war-room"]["added"] and offered["archive-war-room"]["added"]


def test_markup_in_a_title_or_note_stays_text_in_slack(runtime, slack, oncall):
    """Slack reads <!channel>, <@U...> and <url|label> in a message's text, a topic and a
    purpose: what im writes there from a title or a note is escaped (found by review)."""
    war_room_rule(runtime)
    title = "<!channel> see <https://evil.example|runbook> & <@U000000002>"
    result = im_(runtime, "declare", "--sev", "SEV-1", "--title", title, "--service",
                 "payments")
    assert result.exit_code == 0, result.output
    escaped = ("&lt;!channel&gt; see &lt;https://evil.example|runbook&gt; &amp;"
               " &lt;@U000000002&gt;")
    [message] = [m for m in slack.channel("incidents")["messages"] if not m.get("thread_ts")]
    assert message["text"] == f"INC-1 [SEV-1] {escaped} (Open)"
    [room] = [c for c in slack.channels() if c["name"].startswith("inc-1-")]
    room = slack.channel(room["name"])
    assert room["topic"]["value"] == f"SEV-1 · {escaped} · payments"
    assert room["purpose"]["value"].startswith(f"Incident INC-1: {escaped}. (im ")
    assert room["messages"][0]["text"].startswith(f"INC-1 [SEV-1] {escaped}: war room.")
    im_(runtime, "note", "--incident", "INC-1", "<!here> look <http://evil|here>")
    replies = [m for m in slack.channel("incidents")["messages"]
               if m.get("thread_ts") == message["ts"] and m["ts"] != message["ts"]]
    assert replies[-1]["text"] == ":memo: Note: &lt;!here&gt; look &lt;http://evil|here&gt;"
    # a title read otherwise than it is written (a right-to-left override) loses the override
    im_(runtime, "declare", "--sev", "SEV-3", "--title", "Invoices \u202egnp.exe",
        "--service", "payments")
    assert runtime.store.get_incident("INC-2").title == "Invoices gnp.exe"


def test_a_responder_not_in_slack_is_said_on_the_timeline(runtime, slack, oncall):
    oncall["payments"] = "nobody@company.com"
    oncall["api"] = "john.doe@company.com"
    war_room_rule(runtime)
    im_(runtime, "declare", "--sev", "SEV-1", "--title", "Checkout down", "--service",
        "payments,api")
    timeline = im_(runtime, "timeline", "INC-1").stdout
    assert ("nobody@company.com (on call for payments) has no Slack account with that"
            " e-mail: not invited  [slack: sev1-war-room]") in timeline
    assert "Invited John Doe (on call for api)  [slack: sev1-war-room]" in timeline
    [run] = [line for line in im_(runtime, "workflow", "show", "sev1-war-room").stdout
             .splitlines() if line.startswith("INC-1")]
    assert " done " in run


def test_name_taken_by_another_channel_gets_a_suffix(runtime, slack, oncall):
    with slack.client() as web:  # someone's channel of that name, with a purpose of its own
        made = web.post("/conversations.create", json={"name": "inc-1-payment-api-down"})
        web.post("/conversations.setPurpose", json={"channel": made.json()["channel"]["id"],
                                                    "purpose": "Payments team chat"})
    war_room_rule(runtime)
    result = im_(runtime, "declare", "--sev", "SEV-1", "--title", "Payment API Down",
                 "--service", "payments")
    assert "War room #inc-1-payment-api-down-2 created" in result.stdout
    assert slack.channel("inc-1-payment-api-down")["messages"] == []


def test_a_retried_war_room_finds_its_own_room(runtime, slack, oncall):
    """An attempt that died after conversations.create (name_taken on the retry) and one
    that died after the purpose: either way, the retry uses the room made."""
    war_room_rule(runtime)
    im_(runtime, "declare", "--sev", "SEV-1", "--title", "Payment API Down", "--service",
        "payments")
    from im_slack.war_room import WarRoom, WarRoomSettings
    import im

    action = WarRoom(WarRoomSettings(connector="prod-slack"), runtime)
    incident = runtime.store.get_incident("INC-1")
    result = action.run(im.ActionRequest(incident=incident, trigger="declared",
                                         rule="sev1-war-room", attempt=2))
    assert result.timeline == ["War room #inc-1-payment-api-down (made by an earlier attempt)"]
    assert [c["name"] for c in slack.channels() if c["name"].startswith("inc-")] == [
        "inc-1-payment-api-down"]
    assert len(slack.channel("inc-1-payment-api-down")["messages"]) == 1  # one summary
    # a room made by the bot whose purpose was never set (the attempt died at once)
    with slack.client() as web:
        web.post("/conversations.create", json={"name": "inc-2-database-down"})
    im_(runtime, "declare", "--sev", "SEV-1", "--title", "Database down", "--service", "db")
    timeline = im_(runtime, "timeline", "INC-2").stdout
    assert "War room #inc-2-database-down (made by an earlier attempt)" in timeline


def test_archive_on_close(runtime, slack, oncall):
    war_room_rule(runtime, archive_on_close=True)
    im_(runtime, "workflow", "add", "archive-rooms", "--on", "closed", "--action",
        'slack.archive_war_room={"connector": "prod-slack"}')
    im_(runtime, "declare", "--sev", "SEV-1", "--title", "Payment API Down", "--service",
        "payments")
    im_(runtime, "resolve", "--incident", "INC-1")
    closed = im_(runtime, "close", "--incident", "INC-1")
    assert "  workflow archive-rooms: War room #inc-1-payment-api-down archived" in \
        closed.stdout
    assert slack.channel("inc-1-payment-api-down")["is_archived"] is True


def test_a_room_without_archive_on_close_is_kept(runtime, slack, oncall):
    war_room_rule(runtime)
    im_(runtime, "workflow", "add", "archive-rooms", "--on", "closed", "--action",
        'slack.archive_war_room={"connector": "prod-slack"}')
    im_(runtime, "declare", "--sev", "SEV-1", "--title", "Payment API Down", "--service",
        "payments")
    im_(runtime, "resolve", "--incident", "INC-1")
    closed = im_(runtime, "close", "--incident", "INC-1")
    assert ("War room #inc-1-payment-api-down kept: it was not made with archive_on_close"
            in closed.stdout)
    assert slack.channel("inc-1-payment-api-down")["is_archived"] is False


def test_room_names_follow_slacks_rules():
    import im
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    incident = im.Incident(id="INC-42", title="Payment API Down. Users 50% (EU)",
                           severity=im.Severity.SEV1, status=im.Status.OPEN,
                           services=["payments"], correlation_id="c", created_by="a",
                           created_at=now, updated_at=now)
    assert room_name("inc", incident) == "inc-42-payment-api-down-users-50-eu"
    long = im.Incident(**{**{f: getattr(incident, f) for f in incident.__struct_fields__},
                          "title": "x " * 100})
    assert len(room_name("inc", long, 3)) <= 80 and room_name("inc", long, 3).endswith("-3")


def test_bad_settings_are_refused_when_the_rule_is_saved(runtime):
    result = im_(runtime, "workflow", "add", "bad", "--on", "declared", "--action",
                 'slack.war_room={"connector": "prod-slack", "prefix": "Inc Rooms"}')
    assert result.exit_code == 1
    assert "'Inc Rooms' is not a channel-name prefix" in result.output
