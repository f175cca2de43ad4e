"""Scopes (`missing_scope` with `needed` and `provided`), rate limits (HTTP 429 and
`Retry-After`) and injected faults."""

import time

import httpx
import pytest

from slack_calls import call, error, new_channel, ok


def test_a_missing_scope_is_named(slack, web):
    slack.configure(scopes=["channels:read", "users:read"])
    answer = call(web, "chat.postMessage", channel="incidents", text="x")
    assert answer == {"ok": False, "error": "missing_scope", "needed": "chat:write",
                      "provided": "channels:read,users:read"}
    assert slack.channel("incidents")["messages"] == []
    assert error(web, "users.lookupByEmail", email="ops@company.com") == "missing_scope"
    # a method whose scope is granted still works; auth.test needs none
    assert ok(web, "conversations.info", channel="incidents")["channel"]["name"] == "incidents"
    assert ok(web, "auth.test")["user"] == "im"


def test_private_channels_need_the_groups_scopes(slack, web):
    private = ok(web, "conversations.create", name="inc-9-private", is_private=True)["channel"]
    slack.configure(scopes=["channels:manage", "chat:write", "channels:read"])
    answer = call(web, "conversations.setTopic", channel=private["id"], topic="x")
    assert (answer["error"], answer["needed"]) == ("missing_scope", "groups:write")
    assert error(web, "conversations.create", name="inc-10", is_private=True) == "missing_scope"
    assert ok(web, "conversations.create", name="inc-10")["channel"]["is_private"] is False


def test_the_scopes_are_in_the_answer_headers(slack, web):
    response = web.get("/auth.test")
    assert response.headers["x-oauth-scopes"].split(",") == list(
        slack.configure()["scopes"])


def test_post_message_is_limited_per_channel_with_a_burst(slack, web):
    slack.configure(post_message_burst=3)
    statuses = [web.post("/chat.postMessage", json={"channel": "incidents", "text": f"{n}"})
                for n in range(4)]
    assert [r.status_code for r in statuses] == [200, 200, 200, 429]
    refused = statuses[-1]
    assert refused.json() == {"ok": False, "error": "ratelimited"}
    assert 1 <= int(refused.headers["Retry-After"]) <= 3
    assert len(slack.channel("incidents")["messages"]) == 3
    # another channel has its own allowance
    channel = new_channel(web)
    assert ok(web, "chat.postMessage", channel=channel["id"], text="elsewhere")


def test_the_strict_mode_allows_one_message_a_second(slack, web):
    slack.configure(rate_limits="strict")
    first = web.post("/chat.postMessage", json={"channel": "incidents", "text": "1"})
    second = web.post("/chat.postMessage", json={"channel": "incidents", "text": "2"})
    assert (first.status_code, second.status_code) == (200, 429)
    assert second.headers["Retry-After"] == "1"
    time.sleep(1.05)
    assert web.post("/chat.postMessage",
                    json={"channel": "incidents", "text": "3"}).status_code == 200


def test_tiers_in_the_strict_mode_and_a_fixed_retry_after(slack, web):
    slack.configure(rate_limits="strict", strict_limit=2, retry_after_seconds=7)
    answers = [web.get("/conversations.info", params={"channel": "incidents"})
               for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[-1].headers["Retry-After"] == "7"
    # the limit is per method: another one of the same tier still answers
    assert web.get("/users.lookupByEmail",
                   params={"email": "ops@company.com"}).status_code == 200


def test_slack_tier_numbers(slack, web):
    slack.configure(rate_limits="slack")
    # conversations.create is tier 2: about 20 a minute
    codes = [web.post("/conversations.create", json={"name": f"inc-{n}"}).status_code
             for n in range(21)]
    assert codes == [200] * 20 + [429]


def test_limits_can_be_switched_off(slack, web):
    slack.configure(rate_limits="off")
    codes = {web.post("/chat.postMessage", json={"channel": "incidents", "text": "x"})
             .status_code for _ in range(10)}
    assert codes == {200}


def test_injected_server_errors_and_429s(slack, web):
    slack.set_faults(burst_5xx=1, burst_status=503, methods=["chat.postMessage"])
    failed = web.post("/chat.postMessage", json={"channel": "incidents", "text": "x"})
    assert failed.status_code == 503 and "Service Unavailable" in failed.text
    assert web.get("/auth.test").status_code == 200  # other methods are spared
    slack.set_faults(storm_429=1, storm_429_retry_after=4)
    limited = web.get("/auth.test")
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "4")
    assert ok(web, "auth.test")
    assert [r["fault"] for r in slack.requests() if r["fault"]] == ["server_error 503",
                                                                    "rate_limit 429"]


def test_a_dropped_connection_and_slowness(slack):
    slack.set_faults(drop_connections=1)
    with slack.client() as client:
        with pytest.raises(httpx.TransportError):
            client.get("/auth.test")
        assert client.get("/auth.test").json()["ok"] is True
    slack.set_faults(latency_ms=300)
    with slack.client() as client:
        started = time.monotonic()
        assert client.get("/auth.test").json()["ok"] is True
        assert time.monotonic() - started >= 0.3


def test_a_late_answer_comes_after_the_call_was_carried_out(slack):
    slack.set_faults(late_answer_ms=2000, methods=["conversations.create"])
    with slack.client(timeout=0.5) as client:
        with pytest.raises(httpx.ReadTimeout):  # the client gave up: Slack did it all the same
            client.post("/conversations.create", json={"name": "inc-7-late"})
        assert slack.channel("inc-7-late")["name"] == "inc-7-late"
        [made] = slack.requests("conversations.create")
        assert made["answer"]["ok"] is True
        assert client.get("/auth.test").json()["ok"] is True  # other methods are spared
    slack.clear_faults()
    with slack.client() as client:
        again = client.post("/conversations.create", json={"name": "inc-7-late"}).json()
    assert again == {"ok": False, "error": "name_taken"}
