"""Proof of fidelity: every Web API method of the sandbox, its successes and refusals, in JSON
and form bodies, checked against Slack's own Web API description (OpenAPI 2.0).

Every other test's `web` exchanges go through the same check (see conftest.py); this one makes
sure that each method is covered, and that the check itself can fail."""

import json

import httpx
import pytest

from im_slack.sandbox.methods import METHODS as SANDBOX_METHODS

from slack_openapi_check import (
    ARTEFACTS,
    EXTRA_ERRORS,
    NEWER_FIELDS,
    OpenApiCheck,
    replies_message_shapes,
)
from slack_calls import READS

# Every method the sandbox answers, read from its own table: one added there is checked here
# or this test fails.
METHODS = set(SANDBOX_METHODS)


@pytest.fixture(scope="module")
def document(shared_slack):
    return json.loads((shared_slack / "web-api.openapiv2.json").read_text())


@pytest.fixture
def check(document):
    return OpenApiCheck(document)


def test_every_method_matches_slacks_description(slack, check):
    jane = slack.user_id("jane.smith@company.com")
    with slack.client(event_hooks={"response": [check.hook]}) as c:

        def call(method, form=False, **arguments):
            if method in READS:
                return c.get(f"/{method}", params=arguments).json()
            if form:
                return c.post(f"/{method}", data=arguments).json()
            return c.post(f"/{method}", json=arguments).json()

        call("auth.test")
        channel = call("conversations.create", name="inc-1-checkout")["channel"]["id"]
        call("conversations.create", name="inc-1-checkout")  # name_taken
        call("conversations.create", form=True, name="Bad Name")  # invalid_name_specials
        call("conversations.create", form=True, name="inc-2-private", is_private="true")
        call("conversations.setTopic", channel=channel, topic="SEV-1 checkout")
        call("conversations.setTopic", channel=channel, topic="x" * 300)  # too_long
        call("conversations.setPurpose", form=True, channel=channel, purpose="INC-1")
        call("conversations.invite", channel=channel, users=jane)
        call("conversations.invite", channel=channel, users=jane)  # already_in_channel
        call("conversations.invite", channel=channel, users="U0NOBODY00")  # user_not_found
        posted = call("chat.postMessage", channel=channel, text="INC-1 declared",
                      blocks=[{"type": "section",
                               "text": {"type": "mrkdwn", "text": "*INC-1*"}}])
        call("chat.postMessage", form=True, channel=channel, text="Investigating",
             thread_ts=posted["ts"], unfurl_links="false")
        call("chat.postMessage", channel="C999999999", text="x")  # channel_not_found
        call("chat.postMessage", channel=channel)  # no_text
        call("chat.update", channel=channel, ts=posted["ts"], text="INC-1 mitigated")
        call("chat.update", channel=channel, ts="1700000000.000001", text="x")
        call("chat.postEphemeral", channel=channel, user=jane, text="Only you")
        call("chat.postEphemeral", channel="general", user="U0NOBODY00", text="x")
        call("pins.add", channel=channel, timestamp=posted["ts"])
        call("pins.add", channel=channel, timestamp=posted["ts"])  # already_pinned
        call("conversations.info", channel=channel, include_num_members="true")
        call("conversations.info", channel="C999999999")
        call("conversations.history", channel=channel, limit="1")
        call("conversations.history", channel="general")  # not_in_channel
        # a thread of three: the parent and two replies, read two at a time
        call("chat.postMessage", channel=channel, text="Rolled back", thread_ts=posted["ts"])
        thread = call("conversations.replies", channel=channel, ts=posted["ts"], limit="2")
        assert thread["messages"][0]["ts"] == posted["ts"]
        assert thread["has_more"] is True
        rest = call("conversations.replies", channel=channel, ts=posted["ts"], limit="2",
                    cursor=thread["response_metadata"]["next_cursor"])
        assert len(rest["messages"]) == 1 and rest["has_more"] is False
        call("conversations.replies", channel=channel, ts="1700000000.000001")  # not found
        # the channels, one page at a time (#general, #incidents, and the two made above)
        cursor, listed = None, []
        while cursor != "":
            page = call("conversations.list", types="public_channel,private_channel",
                        exclude_archived="true", limit="1", cursor=cursor)
            listed += [c["name"] for c in page["channels"]]
            cursor = page["response_metadata"]["next_cursor"]
        assert sorted(listed) == ["general", "inc-1-checkout", "inc-2-private", "incidents"]
        call("conversations.list", cursor="not-a-cursor")  # invalid_cursor
        call("users.lookupByEmail", email="jane.smith@company.com")
        call("users.lookupByEmail", email="nobody@company.com")
        call("users.info", user=jane)
        call("users.info", user="U0NOBODY00")  # user_not_found
        # a trigger_id comes with a click or a command (sent here to nowhere)
        trigger = slack.slash_command("http://127.0.0.1:9/slack/commands", "note",
                                      user_id=jane)["trigger_id"]
        modal = {"type": "modal", "callback_id": "im.note", "private_metadata": "INC-1",
                 "title": {"type": "plain_text", "text": "Add a note"},
                 "submit": {"type": "plain_text", "text": "Add"},
                 "blocks": [{"type": "input", "block_id": "note",
                             "label": {"type": "plain_text", "text": "Note"},
                             "element": {"type": "plain_text_input", "action_id": "text",
                                         "multiline": True}}]}
        call("views.open", trigger_id=trigger, view=modal)
        call("views.open", trigger_id=trigger, view=modal)  # exchanged_trigger_id
        call("views.open", form=True, trigger_id="1.2.nope", view=json.dumps(modal))
        general = slack.channel("general")["id"]
        call("conversations.join", channel=general)
        call("conversations.join", channel=general)  # the already_in_channel warning
        call("conversations.archive", channel=channel)
        call("conversations.archive", channel=channel)  # already_archived
        call("conversations.join", channel=channel)  # is_archived
        slack.configure(scopes=["channels:read"])
        call("chat.postMessage", channel=general, text="x")  # missing_scope
        slack.configure(scopes=["chat:write"], rate_limits="strict")
        call("chat.postMessage", channel=general, text="1")
        limited = c.post("/chat.postMessage", json={"channel": general, "text": "2"})
        assert limited.status_code == 429
        with check.invalid_requests():
            c.post("/chat.postMessage", json={"text": "no channel"})
            c.post("/chat.postMessage", json={"channel": general, "text": "x", "colour": "red"})
            c.post("/chat.frobnicate", json={})

    assert check.problems == [], "\n".join(check.problems)
    assert check.methods == METHODS
    errors = {method for method, _error in check.errors_seen}
    assert errors == METHODS - {"auth.test", "conversations.setPurpose"}
    assert len(check.refused_requests) == 3, check.refused_requests


def test_the_check_finds_what_does_not_conform(document):
    check = OpenApiCheck(document)

    def exchange(method, arguments, answer, status=200, headers=None):
        request = httpx.Request("POST", f"http://sandbox/api/{method}", json=arguments,
                                headers={"Authorization": "Bearer xoxb-1"})
        check.hook(httpx.Response(status, json=answer, request=request, headers=headers))

    exchange("chat.postMessage", {"channel": "C000000001", "text": "x"},
             {"ok": True, "channel": "C000000001", "ts": "12.5",
              "message": {"type": "message", "text": "x", "ts": "1700000000.000001"}})
    exchange("conversations.create", {"name": "x", "is_private": "maybe"},
             {"ok": False, "error": "no_such_error"})
    exchange("pins.add", {"channel": "C000000001", "timestamp": "1700000000.000001"},
             {"ok": False, "error": "ratelimited"}, 429)
    assert check.problems == [
        "POST chat.postMessage -> 200: answer: .ts: '12.5' does not match ^\\d{10}\\.\\d{6}$",
        "POST conversations.create -> 200: request: argument is_private: 'maybe' is not"
        " boolean",
        "POST conversations.create -> 200: answer: error 'no_such_error' is not listed for"
        " conversations.create",
        "POST pins.add -> 429: answer: 429 without a Retry-After in seconds",
    ]


def test_each_artefact_still_corrects_something_the_document_says(document):
    paths = document["paths"]
    operations = [op for item in paths.values() for op in item.values()]
    # token-in-header: a `token` parameter, never an Authorization header
    for method in METHODS:
        names = {p["name"] for op in paths[f"/{method}"].values() for p in op["parameters"]}
        assert "token" in names and "Authorization" not in names, method
    # views-open-post
    assert set(paths["/views.open"]) == {"get"}
    # update-blocks-object
    update = paths["/chat.update"]["post"]["responses"]["200"]["schema"]
    assert update["properties"]["message"]["properties"]["blocks"] == {"type": "object"}
    # json-structured-arguments
    blocks = next(p for p in paths["/chat.postMessage"]["post"]["parameters"]
                  if p["name"] == "blocks")
    assert blocks["type"] == "string"
    # undeclared-errors: each extra error is really missing from the method's list
    for method, extras in EXTRA_ERRORS.items():
        operation = next(iter(paths[f"/{method}"].values()))
        schema = operation["responses"]["default"]["schema"]
        listed = set(schema["properties"].get("error", {}).get("enum", []))
        assert extras - listed == extras, (method, extras & listed)
    # rate-limit-answers
    assert not any("429" in op["responses"] for op in operations)
    # error-extra-fields
    error_schema = paths["/chat.postMessage"]["post"]["responses"]["default"]["schema"]
    assert error_schema["additionalProperties"] is False
    assert "needed" not in error_schema["properties"]
    # fields-newer-than-document
    assert document["definitions"]["objs_message"]["additionalProperties"] is False
    assert not {"app_id", "edited"} & set(document["definitions"]["objs_message"]["properties"])
    for method in ("conversations.history", "conversations.replies"):
        answer = paths[f"/{method}"]["get"]["responses"]["200"]["schema"]
        assert answer["additionalProperties"] is False
        assert "response_metadata" not in answer["properties"], method
        assert "cursor" in {p["name"] for p in paths[f"/{method}"]["get"]["parameters"]}
    assert len(NEWER_FIELDS) == 3
    # replies-message-fields
    shapes = replies_message_shapes(document)
    assert len(shapes) == 2
    for shape in shapes:
        assert shape["additionalProperties"] is False
        assert not {"bot_id", "blocks"} & set(shape["properties"])
    assert {"bot_id", "blocks"} <= set(document["definitions"]["objs_message"]["properties"])
    assert set(ARTEFACTS) == {"token-in-header", "json-structured-arguments",
                              "update-blocks-object", "views-open-post",
                              "undeclared-errors", "rate-limit-answers", "error-extra-fields",
                              "fields-newer-than-document", "replies-message-fields"}
