"""The Web API methods of the Slack sandbox, each with its success and its refusals, in
Slack's shapes: HTTP 200 and `{"ok": true, ...}` or `{"ok": false, "error": ...}`."""

import pytest

from slack_calls import call, error, new_channel, ok

JANE = "jane.smith@company.com"
JOHN = "john.doe@company.com"


def test_auth_test_names_the_bot_and_workspace(web):
    answer = ok(web, "auth.test")
    assert answer["team"] == "Sandbox Workspace"
    assert answer["user"] == "im"
    assert answer["user_id"].startswith("U") and answer["bot_id"].startswith("B")
    assert answer["url"] == "https://sandbox.slack.invalid/"


def test_no_token_is_not_authed_and_a_wrong_one_invalid_auth(slack, web, openapi):
    with slack.client(token="xoxb-wrong") as wrong:
        assert wrong.get("/auth.test").json() == {"ok": False, "error": "invalid_auth"}
    with slack.client() as bare:
        bare.headers.pop("Authorization")
        answer = bare.post("/chat.postMessage", json={"channel": "incidents", "text": "x"})
        assert (answer.status_code, answer.json()) == (200, {"ok": False, "error": "not_authed"})
    # nothing was posted
    assert slack.channel("incidents")["messages"] == []


def test_a_form_body_with_the_token_as_an_argument(slack, web):
    with slack.client() as form:
        form.headers.pop("Authorization")
        answer = form.post("/chat.postMessage",
                           data={"token": slack.token, "channel": "#incidents",
                                 "text": "From a form"}).json()
    assert answer["ok"] is True
    assert [m["text"] for m in slack.channel("incidents")["messages"]] == ["From a form"]


def test_an_unknown_method(web, openapi):
    with openapi.invalid_requests():
        answer = web.post("/chat.frobnicate", json={})
    assert answer.status_code == 404
    assert answer.json()["error"] == "unknown_method"


def test_post_message_and_a_thread_reply(slack, web):
    posted = ok(web, "chat.postMessage", channel="incidents", text="INC-1 declared")
    channel_id = slack.channel("incidents")["id"]
    assert posted["channel"] == channel_id
    assert posted["message"]["text"] == "INC-1 declared"
    assert posted["message"]["ts"] == posted["ts"]
    reply = ok(web, "chat.postMessage", channel=channel_id, text="Investigating",
               thread_ts=posted["ts"])
    assert reply["message"]["thread_ts"] == posted["ts"]
    messages = slack.channel(channel_id)["messages"]
    assert [m["text"] for m in messages] == ["INC-1 declared", "Investigating"]
    assert messages[0]["reply_count"] == 1 and messages[0]["latest_reply"] == reply["ts"]
    # the history holds the channel's own messages, newest first; replies stay in the thread
    history = call(web, "conversations.history", channel=channel_id)
    assert [m["ts"] for m in history["messages"]] == [posted["ts"]]


def test_post_message_with_blocks_in_a_form_body(slack, web):
    blocks = '[{"type": "section", "text": {"type": "mrkdwn", "text": "*INC-2*"}}]'
    answer = web.post("/chat.postMessage",
                      data={"channel": "incidents", "text": "INC-2", "blocks": blocks}).json()
    assert answer["message"]["blocks"][0]["text"]["text"] == "*INC-2*"


@pytest.mark.parametrize(("arguments", "expected"), [
    ({"channel": "C999999999", "text": "x"}, "channel_not_found"),
    ({"channel": "general", "text": "x"}, "not_in_channel"),
    ({"channel": "incidents"}, "no_text"),
    ({"channel": "incidents", "text": "x" * 40_001}, "msg_too_long"),
    ({"channel": "incidents", "text": "x", "thread_ts": "1700000000.000001"},
     "thread_not_found"),
])
def test_post_message_refusals(web, arguments, expected):
    assert error(web, "chat.postMessage", **arguments) == expected


def test_post_message_to_an_archived_channel(web):
    channel = new_channel(web)
    ok(web, "conversations.archive", channel=channel["id"])
    assert error(web, "chat.postMessage", channel=channel["id"], text="x") == "is_archived"


def test_update_a_message(slack, web):
    posted = ok(web, "chat.postMessage", channel="incidents", text="SEV-2")
    updated = ok(web, "chat.update", channel=posted["channel"], ts=posted["ts"], text="SEV-1")
    assert (updated["ts"], updated["text"]) == (posted["ts"], "SEV-1")
    assert [m["text"] for m in slack.channel("incidents")["messages"]] == ["SEV-1"]
    assert error(web, "chat.update", channel=posted["channel"], ts="1700000000.000001",
                 text="x") == "message_not_found"
    assert error(web, "chat.update", channel=posted["channel"], ts=posted["ts"]) == "no_text"


def test_create_a_channel_and_its_name_rules(slack, web):
    channel = new_channel(web, "inc-42-database")
    assert channel["name"] == "inc-42-database" and channel["is_member"] is True
    assert channel["id"] in {c["id"] for c in slack.channels()}
    assert error(web, "conversations.create", name="inc-42-database") == "name_taken"
    assert error(web, "conversations.create", name="Inc-43") == "invalid_name_specials"
    assert error(web, "conversations.create", name="inc 43") == "invalid_name_specials"
    assert error(web, "conversations.create", name="inc.43") == "invalid_name_specials"
    assert error(web, "conversations.create", name="x" * 81) == "invalid_name_maxlength"
    assert error(web, "conversations.create", name="---") == "invalid_name_punctuation"
    assert error(web, "conversations.create", name="") == "invalid_name_required"
    assert ok(web, "conversations.create", name="x" * 80)["channel"]["name"] == "x" * 80


def test_a_private_channel(web):
    channel = ok(web, "conversations.create", name="inc-44-secret", is_private=True)["channel"]
    assert channel["is_private"] is True and channel["id"].startswith("G")
    assert error(web, "conversations.join", channel=channel["id"]) == (
        "method_not_supported_for_channel_type")


def test_topic_and_purpose(web):
    channel = new_channel(web)
    topic = ok(web, "conversations.setTopic", channel=channel["id"], topic="SEV-1: DB down")
    assert topic["channel"]["topic"]["value"] == "SEV-1: DB down"
    purpose = ok(web, "conversations.setPurpose", channel=channel["id"], purpose="INC-42")
    assert purpose["channel"]["purpose"]["value"] == "INC-42"
    info = ok(web, "conversations.info", channel=channel["id"])["channel"]
    assert (info["topic"]["value"], info["purpose"]["value"]) == ("SEV-1: DB down", "INC-42")
    assert error(web, "conversations.setTopic", channel=channel["id"],
                 topic="x" * 251) == "too_long"
    assert error(web, "conversations.setTopic", channel="general", topic="x") == (
        "not_in_channel")


def test_invite(slack, web):
    channel = new_channel(web)
    jane, john = slack.user_id(JANE), slack.user_id(JOHN)
    invited = ok(web, "conversations.invite", channel=channel["id"], users=f"{jane},{john}")
    assert invited["channel"]["id"] == channel["id"]
    assert set(slack.channel(channel["id"])["members"]) >= {jane, john}
    assert error(web, "conversations.invite", channel=channel["id"], users=jane) == (
        "already_in_channel")
    assert error(web, "conversations.invite", channel=channel["id"], users="U0NOBODY00") == (
        "user_not_found")
    bot = ok(web, "auth.test")["user_id"]
    assert error(web, "conversations.invite", channel=channel["id"], users=bot) == (
        "cant_invite_self")
    assert error(web, "conversations.invite", channel="general", users=jane) == (
        "not_in_channel")


def test_join(slack, web):
    general = slack.channel("general")
    joined = ok(web, "conversations.join", channel=general["id"])
    assert joined["channel"]["is_member"] is True and "warning" not in joined
    again = ok(web, "conversations.join", channel=general["id"])
    assert again["warning"] == "already_in_channel"
    assert error(web, "conversations.join", channel="C999999999") == "channel_not_found"


def test_archive(web):
    channel = new_channel(web)
    assert ok(web, "conversations.archive", channel=channel["id"]) == {"ok": True}
    assert ok(web, "conversations.info", channel=channel["id"])["channel"]["is_archived"]
    assert error(web, "conversations.archive", channel=channel["id"]) == "already_archived"
    assert error(web, "conversations.join", channel=channel["id"]) == "is_archived"


def test_info_and_history(slack, web, openapi):
    channel_id = slack.channel("incidents")["id"]
    info = ok(web, "conversations.info", channel=channel_id, include_num_members="true")
    assert info["channel"]["name"] == "incidents" and info["channel"]["num_members"] == 4
    assert error(web, "conversations.info", channel="C999999999") == "channel_not_found"
    stamps = [ok(web, "chat.postMessage", channel=channel_id, text=f"update {n}")["ts"]
              for n in range(3)]
    first = ok(web, "conversations.history", channel=channel_id, limit=2)
    assert [m["ts"] for m in first["messages"]] == stamps[:0:-1] and first["has_more"]
    rest = ok(web, "conversations.history", channel=channel_id, limit=2,
              cursor=first["response_metadata"]["next_cursor"])
    assert [m["ts"] for m in rest["messages"]] == stamps[:1] and not rest["has_more"]
    between = ok(web, "conversations.history", channel=channel_id, oldest=stamps[0],
                 latest=stamps[2])
    assert [m["ts"] for m in between["messages"]] == [stamps[1]]
    with openapi.invalid_requests():
        assert error(web, "conversations.history", channel=channel_id, oldest="yesterday") == (
            "invalid_ts_oldest")
    assert error(web, "conversations.history", channel=slack.channel("general")["id"]) == (
        "not_in_channel")


def test_pins(slack, web):
    posted = ok(web, "chat.postMessage", channel="incidents", text="Runbook: ...")
    assert ok(web, "pins.add", channel=posted["channel"], timestamp=posted["ts"]) == {"ok": True}
    assert slack.channel("incidents")["pins"] == [posted["ts"]]
    assert error(web, "pins.add", channel=posted["channel"], timestamp=posted["ts"]) == (
        "already_pinned")
    assert error(web, "pins.add", channel=posted["channel"],
                 timestamp="1700000000.000001") == "message_not_found"
    assert error(web, "pins.add", channel="C999999999", timestamp=posted["ts"]) == (
        "channel_not_found")


def test_lookup_by_email(slack, web):
    user = ok(web, "users.lookupByEmail", email=JANE)["user"]
    assert (user["name"], user["real_name"], user["profile"]["email"]) == (
        "jane.smith", "Jane Smith", JANE)
    assert error(web, "users.lookupByEmail", email="nobody@company.com") == "users_not_found"
    slack.add_user("new.hire", "New Hire", "new.hire@company.com")
    assert ok(web, "users.lookupByEmail", email="New.Hire@company.com")["user"]["name"] == (
        "new.hire")


def test_users_info_gives_the_email_only_with_its_scope(slack, web):
    jane = slack.user_id(JANE)
    user = ok(web, "users.info", user=jane)["user"]
    assert (user["id"], user["name"], user["profile"]["email"]) == (jane, "jane.smith", JANE)
    assert error(web, "users.info", user="U0NOBODY00") == "user_not_found"
    slack.configure(scopes=["users:read", "chat:write"])
    assert "email" not in ok(web, "users.info", user=jane)["user"]["profile"]
    slack.configure(scopes=["chat:write"])
    assert error(web, "users.info", user=jane) == "missing_scope"


MODAL = {"type": "modal", "callback_id": "note", "private_metadata": "INC-7",
         "title": {"type": "plain_text", "text": "Add a note"},
         "submit": {"type": "plain_text", "text": "Add"},
         "blocks": [{"type": "input", "block_id": "note",
                     "label": {"type": "plain_text", "text": "Note"},
                     "element": {"type": "plain_text_input", "action_id": "text"}}]}


def test_views_open_takes_a_trigger_once_within_three_seconds(slack, web, monkeypatch):
    from im_slack.sandbox import workspace

    trigger = slack.slash_command("http://127.0.0.1:9/x", "note")["trigger_id"]
    view = ok(web, "views.open", trigger_id=trigger, view=MODAL)["view"]
    assert view["id"].startswith("V") and view["private_metadata"] == "INC-7"
    assert view["state"] == {"values": {}} and view["blocks"] == MODAL["blocks"]
    assert error(web, "views.open", trigger_id=trigger, view=MODAL) == "exchanged_trigger_id"
    assert error(web, "views.open", trigger_id="1.2.3", view=MODAL) == "invalid_trigger_id"
    no_submit = {k: v for k, v in MODAL.items() if k != "submit"}
    fresh = slack.slash_command("http://127.0.0.1:9/x", "note")["trigger_id"]
    assert error(web, "views.open", trigger_id=fresh, view=no_submit) == "invalid_arguments"
    monkeypatch.setattr(workspace, "TRIGGER_SECONDS", -1.0)  # the sandbox runs in this process
    late = slack.slash_command("http://127.0.0.1:9/x", "note")["trigger_id"]
    assert error(web, "views.open", trigger_id=late, view=MODAL) == "expired_trigger_id"
    [opened] = slack.views()
    assert (opened["id"], opened["closed"]) == (view["id"], False)


def test_post_ephemeral(slack, web):
    jane = slack.user_id(JANE)
    answer = ok(web, "chat.postEphemeral", channel="incidents", user=jane, text="Only you")
    assert answer["message_ts"]
    assert [(e["user"], e["text"]) for e in slack.ephemerals()] == [(jane, "Only you")]
    assert slack.channel("incidents")["messages"] == []  # nobody else sees it
    channel = new_channel(web)
    assert error(web, "chat.postEphemeral", channel=channel["id"], user=jane, text="x") == (
        "user_not_in_channel")


def test_a_reset_empties_the_workspace(slack, web):
    new_channel(web)
    ok(web, "chat.postMessage", channel="incidents", text="x")
    slack.reset()
    assert sorted(c["name"] for c in slack.channels()) == ["general", "incidents"]
    assert slack.channel("incidents")["messages"] == [] and slack.requests() == []


def test_the_request_log_keeps_arguments_and_answers(slack, web):
    ok(web, "chat.postMessage", channel="incidents", text="logged")
    [record] = slack.requests("chat.postMessage")
    assert record["params"] == {"channel": "incidents", "text": "logged"}
    assert record["authorization"] == "bearer" and record["answer"]["ok"] is True
