"""Webhooks v3 as the sandbox delivers them to a real local receiver: subscriptions, signatures,
the events each API change produces, retries, drops, disablement, secret rotation, ordering."""

import json
import hashlib
import hmac

import pytest

from .sandbox_calls import new_incident, subscribe, update


@pytest.fixture
def receiver(pagerduty_webhook_receiver):
    return pagerduty_webhook_receiver


def hmac_hex(secret: str, body: bytes) -> str:
    """Computed here, independently of the sandbox's own signing code."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signatures(webhook) -> list[str]:
    return [
        part.removeprefix("v1=") for part in webhook.headers["x-pagerduty-signature"].split(",")
    ]


def event_types(receiver) -> list[str]:
    return [w.json()["event"]["event_type"] for w in receiver.received]


def test_subscription_secret_is_shown_once_and_headers_are_redacted(api, receiver):
    created = api.post(
        "/webhook_subscriptions",
        json={
            "webhook_subscription": {
                "type": "webhook_subscription",
                "delivery_method": {
                    "type": "http_delivery_method",
                    "url": receiver.url,
                    "custom_headers": [{"name": "X-Tenant", "value": "acme"}],
                },
                "description": "im",
                "events": ["incident.triggered"],
                "filter": {"type": "account_reference"},
            }
        },
    )
    assert created.status_code == 200
    sub = created.json()["webhook_subscription"]
    assert len(sub["delivery_method"]["secret"]) == 64
    fetched = api.get(f"/webhook_subscriptions/{sub['id']}").json()["webhook_subscription"]
    assert fetched["delivery_method"]["secret"] is None
    assert fetched["delivery_method"]["custom_headers"] == [
        {"name": "X-Tenant", "value": "-- redacted --"}
    ]
    listed = api.get("/webhook_subscriptions").json()
    assert [s["id"] for s in listed["webhook_subscriptions"]] == [sub["id"]]
    assert listed["webhook_subscriptions"][0]["delivery_method"]["secret"] is None
    # ... but the header goes out unredacted.
    new_incident(api)
    (webhook,) = receiver.wait_for(1)
    assert webhook.headers["x-tenant"] == "acme"
    assert api.delete(f"/webhook_subscriptions/{sub['id']}").status_code == 204
    assert api.get(f"/webhook_subscriptions/{sub['id']}").status_code == 404


@pytest.mark.parametrize(
    "change",
    [
        {"events": []},
        {"events": ["incident.triggered", "incident.triggered"]},
        {"filter": {"type": "service_reference"}},
        {"filter": {"type": "service_reference", "id": "PNOPE00"}},
        # event types PagerDuty does not have
        {"events": ["incident.triggered", "incident.bogus"]},
        {"events": ["service.exploded"]},
        {"events": ["pagey.ping"]},  # sent by the ping route, not subscribed to
    ],
)
def test_invalid_subscriptions_are_refused(api, receiver, change):
    body = {
        "type": "webhook_subscription",
        "delivery_method": {"type": "http_delivery_method", "url": receiver.url},
        "events": ["incident.triggered"],
        "filter": {"type": "account_reference"},
        **change,
    }
    response = api.post("/webhook_subscriptions", json={"webhook_subscription": body})
    assert response.status_code == 400 and response.json()["error"]["code"] == 2001


def test_delivery_headers_and_signature(pd, api, receiver):
    sub = subscribe(api, receiver.url)
    secret = sub["delivery_method"]["secret"]
    incident = new_incident(api)
    (webhook,) = receiver.wait_for(1)
    assert webhook.method == "POST"
    assert webhook.headers["content-type"] == "application/json"
    assert webhook.headers["user-agent"] == "PagerDuty-Webhook/V3.0"
    assert webhook.headers["x-webhook-subscription"] == sub["id"]
    assert signatures(webhook) == [hmac_hex(secret, webhook.body)]
    event = webhook.json()["event"]
    assert event["event_type"] == "incident.triggered" and event["data"]["id"] == incident["id"]
    assert pd.wait_for_webhooks()
    (attempt,) = pd.deliveries()
    assert (
        attempt["webhook_id"] == webhook.headers["x-webhook-id"]
        and attempt["outcome"] == "delivered"
    )


def test_every_api_change_by_any_user_produces_its_event(pd, api, receiver):
    subscribe(api, receiver.url)
    incident = new_incident(api, "PAPI001")
    incident_id = incident["id"]
    steps = [
        ("jane.smith@company.com", {"status": "acknowledged"}),
        ("jane.smith@company.com", {"status": "triggered"}),
        ("john.doe@company.com", {"escalation_level": 2}),
        (
            "team-lead@company.com",
            {"assignments": [{"assignee": {"id": "PUJANE1", "type": "user_reference"}}]},
        ),
        (
            "ops@company.com",
            {"escalation_policy": {"id": "PXXXXXX", "type": "escalation_policy_reference"}},
        ),
        ("ops@company.com", {"priority": {"id": "PPRIO02", "type": "priority_reference"}}),
        ("john.doe@company.com", {"status": "resolved"}),
        ("jane.smith@company.com", {"status": "triggered"}),
    ]
    for from_email, change in steps:
        assert update(api, incident_id, from_email=from_email, **change).status_code == 200
        if change.get("priority"):
            api.post(
                f"/incidents/{incident_id}/notes",
                json={"note": {"content": "Root cause found"}},
                headers={"From": "john.doe@company.com"},
            )
    assert pd.wait_for_webhooks()
    events = [w.json()["event"] for w in receiver.wait_for(10)]
    assert [e["event_type"] for e in events] == [
        "incident.triggered",
        "incident.acknowledged",
        "incident.unacknowledged",
        "incident.escalated",
        "incident.reassigned",
        "incident.delegated",
        "incident.priority_updated",
        "incident.annotated",
        "incident.resolved",
        "incident.reopened",
    ]
    agents = [e["agent"]["id"] for e in events]
    assert agents == [
        "PUOPS01",
        "PUJANE1",
        "PUJANE1",
        "PUJOHN1",
        "PULEAD1",
        "PUOPS01",
        "PUOPS01",
        "PUJOHN1",
        "PUJOHN1",
        "PUJANE1",
    ]
    by_type = {e["event_type"]: e["data"] for e in events}
    assert by_type["incident.triggered"]["number"] == incident["incident_number"]
    assert [a["id"] for a in by_type["incident.triggered"]["assignees"]] == ["PUJOHN1"]
    assert by_type["incident.acknowledged"]["status"] == "acknowledged"
    assert by_type["incident.unacknowledged"]["status"] == "triggered"
    assert [a["summary"] for a in by_type["incident.escalated"]["assignees"]] == ["Team Lead"]
    assert [a["id"] for a in by_type["incident.reassigned"]["assignees"]] == ["PUJANE1"]
    assert by_type["incident.delegated"]["escalation_policy"]["id"] == "PXXXXXX"
    assert by_type["incident.priority_updated"]["priority"]["summary"] == "P2"
    assert by_type["incident.annotated"] == {
        **by_type["incident.annotated"],
        "type": "incident_note",
        "content": "Root cause found",
        "trimmed": False,
    }
    assert by_type["incident.annotated"]["incident"]["id"] == incident_id
    assert (
        by_type["incident.resolved"]["status"] == "resolved"
        and by_type["incident.resolved"]["assignees"] == []
    )
    assert "reopened_at" not in by_type["incident.resolved"]
    assert (
        by_type["incident.reopened"]["status"] == "triggered"
        and by_type["incident.reopened"]["reopened_at"]
    )
    assert len({e["id"] for e in events}) == 10


def test_timed_escalation_is_announced_with_the_service_as_agent(pd, api, receiver):
    subscribe(api, receiver.url, events=["incident.escalated"])
    new_incident(api, "PAPI001")
    pd.advance_clock(16 * 60)
    (webhook,) = receiver.wait_for(1)
    event = webhook.json()["event"]
    assert event["agent"]["type"] == "service_reference" and event["agent"]["id"] == "PAPI001"
    assert [a["id"] for a in event["data"]["assignees"]] == ["PULEAD1"]


def test_subscriptions_filtered_to_a_service_get_only_its_incidents(api, receiver):
    subscribe(api, receiver.url, type="service_reference", id="PDAT001")
    new_incident(api, "PAPI001")
    database = new_incident(api, "PDAT001")
    (webhook,) = receiver.wait_for(1)
    assert webhook.json()["event"]["data"]["id"] == database["id"]
    only_resolved = subscribe(api, receiver.url, events=["incident.resolved"])
    update(api, database["id"], status="resolved")
    received = receiver.wait_for(3)
    assert [w.headers["x-webhook-subscription"] for w in received[1:]].count(
        only_resolved["id"]
    ) == 1


def test_ping_sends_pagey_ping(api, receiver):
    sub = subscribe(api, receiver.url)
    response = api.post(f"/webhook_subscriptions/{sub['id']}/ping")
    assert response.status_code == 202
    (webhook,) = receiver.wait_for(1)
    event = webhook.json()["event"]
    assert event["event_type"] == "pagey.ping" and event["resource_type"] == "pagey"
    assert event["data"] == {"message": "Hello from your friend Pagey!", "type": "ping"}
    assert event["agent"] == {"id": "PUOPS01", "type": "user_reference"}


def test_5xx_429_and_timeouts_are_retried_with_the_same_webhook_id(pd, api, receiver):
    pd.configure(webhook_timeout_seconds=0.5)
    subscribe(api, receiver.url)
    receiver.answer(500, 429)
    receiver.answer(202, delay=1.0)  # answers too late: a timeout
    new_incident(api)
    assert pd.wait_for_webhooks()
    received = receiver.wait_for(4)
    assert len({w.headers["x-webhook-id"] for w in received}) == 1
    assert len({w.body for w in received}) == 1
    attempts = pd.deliveries()
    assert [(a["attempt"], a["outcome"], a["status_code"]) for a in attempts] == [
        (1, "retrying", 500),
        (2, "retrying", 429),
        (3, "retrying", None),
        (4, "delivered", 202),
    ]
    assert "timed out" in attempts[2]["error"]


def test_retries_run_out_and_the_webhook_is_dropped(pd, api, receiver):
    subscribe(api, receiver.url)
    receiver.answer(503, 503, 503, 503)
    new_incident(api)
    assert pd.wait_for_webhooks()
    assert len(receiver.wait_for(4)) == 4  # first try and the three test retries
    assert pd.deliveries()[-1]["outcome"] == "dropped"


def test_other_4xx_drops_without_retry(pd, api, receiver):
    subscribe(api, receiver.url)
    receiver.answer(400)
    first = new_incident(api, title="dropped")
    assert pd.wait_for_webhooks()
    second = new_incident(api, title="delivered")
    assert pd.wait_for_webhooks()
    received = receiver.wait_for(2)
    assert [w.json()["event"]["data"]["id"] for w in received] == [first["id"], second["id"]]
    outcomes = {a["resource_id"]: a["outcome"] for a in pd.deliveries()}
    assert outcomes == {first["id"]: "dropped", second["id"]: "delivered"}


def test_three_drops_in_a_row_disable_the_subscription_until_enabled(pd, api, receiver):
    sub = subscribe(api, receiver.url)
    receiver.answer(400, 410, 202, 400, 404, 400)
    # A success between drops starts the count again: two, then two drops in a row.
    for title in ("a", "b", "c", "d", "e"):
        new_incident(api, title=title)
        assert pd.wait_for_webhooks()
    dm = api.get(f"/webhook_subscriptions/{sub['id']}").json()["webhook_subscription"][
        "delivery_method"
    ]
    assert dm["temporarily_disabled"] is False
    new_incident(api, title="third drop in a row")
    assert pd.wait_for_webhooks()
    dm = api.get(f"/webhook_subscriptions/{sub['id']}").json()["webhook_subscription"][
        "delivery_method"
    ]
    assert dm["temporarily_disabled"] is True
    new_incident(api, title="while disabled")
    assert pd.wait_for_webhooks()
    assert len(receiver.received) == 6
    assert pd.events()[-1]["subscription_ids"] == []
    enabled = api.post(f"/webhook_subscriptions/{sub['id']}/enable")
    assert enabled.status_code == 200
    assert (
        enabled.json()["webhook_subscription"]["delivery_method"]["temporarily_disabled"] is False
    )
    new_incident(api, title="after enable")
    assert receiver.wait_for(7)[-1].json()["event"]["data"]["title"] == "after enable"


def test_a_rotating_secret_signs_with_both_secrets(pd, api, receiver):
    sub = subscribe(api, receiver.url)
    old = sub["delivery_method"]["secret"]
    new = pd.rotate_secret(sub["id"])
    assert new != old
    new_incident(api, title="during rotation")
    (during,) = receiver.wait_for(1)
    assert signatures(during) == [hmac_hex(new, during.body), hmac_hex(old, during.body)]
    pd.end_rotation(sub["id"])
    new_incident(api, title="after rotation")
    after = receiver.wait_for(2)[1]
    assert signatures(after) == [hmac_hex(new, after.body)]
    newest = pd.rotate_secret(sub["id"], grace_seconds=60)
    pd.advance_clock(61)
    new_incident(api, title="grace over")
    last = receiver.wait_for(3)[2]
    assert signatures(last) == [hmac_hex(newest, last.body)]


def test_order_is_kept_per_incident_while_other_incidents_flow(pd, api, receiver):
    pd.configure(webhook_retry_delays=[1.0])
    subscribe(api, receiver.url)
    receiver.answer(500)  # the first delivery of A fails once
    a = new_incident(api, title="A")
    # A's first attempt has been answered 500 before B exists: on a loaded machine B's first
    # delivery could otherwise reach the receiver first and take that 500
    receiver.wait_for(1)
    update(api, a["id"], status="acknowledged")
    update(api, a["id"], status="resolved")
    b = new_incident(api, title="B")
    assert pd.wait_for_webhooks()
    received = [
        (w.json()["event"]["data"]["title"], w.json()["event"]["event_type"])
        for w in receiver.wait_for(5)
    ]
    a_events = [t for title, t in received if title == "A"]
    assert a_events == [
        "incident.triggered",
        "incident.triggered",
        "incident.acknowledged",
        "incident.resolved",
    ]
    # B did not wait for A's retry.
    assert received.index(("B", "incident.triggered")) < received.index(
        ("A", "incident.acknowledged")
    )
    assert b["id"] != a["id"]


def test_events_are_recorded_even_without_subscribers(pd, api):
    incident = new_incident(api)
    update(api, incident["id"], status="acknowledged")
    events = pd.events()
    assert [(e["event_type"], e["subscription_ids"]) for e in events] == [
        ("incident.triggered", []),
        ("incident.acknowledged", []),
    ]
    assert events[0]["body"]["event"]["data"]["id"] == incident["id"]


def test_changes_made_through_an_integration_name_it_as_their_client(pd, receiver):
    """A request with the X-Sandbox-Client control header stands for an integration (Slack,
    PagerDuty's own app): the events of its changes, a note and a status update among them,
    name it as their `client`; through the REST API alone `client` is null."""
    with pd.client(from_email="jane.smith@company.com", via="Slack") as slack, \
            pd.client(from_email="jane.smith@company.com") as api:
        subscribe(api, receiver.url, events=[
            "incident.acknowledged", "incident.annotated", "incident.priority_updated",
            "incident.status_update_published", "incident.resolved"])
        incident = new_incident(api)
        update(slack, incident["id"], status="acknowledged")
        slack.post(f"/incidents/{incident['id']}/notes", json={"note": {"content": "On it"}})
        slack.post(f"/incidents/{incident['id']}/status_updates", json={"message": "Fixing"})
        update(slack, incident["id"], priority="P1")
        update(api, incident["id"], status="resolved")
        events = [webhook.json()["event"] for webhook in receiver.wait_for(5)]
    assert [(e["event_type"], e["client"]) for e in events] == [
        ("incident.acknowledged", {"name": "Slack"}),
        ("incident.annotated", {"name": "Slack"}),
        ("incident.status_update_published", {"name": "Slack"}),
        ("incident.priority_updated", {"name": "Slack"}),
        ("incident.resolved", None),
    ]


def test_a_note_too_big_for_a_complete_delivery_is_trimmed(pd, api, receiver):
    subscribe(api, receiver.url, events=["incident.annotated"])
    incident = new_incident(api)
    content = "log line\n" * 8000  # 72,000 characters
    api.post(f"/incidents/{incident['id']}/notes", json={"note": {"content": content}})
    (webhook,) = receiver.wait_for(1)
    data = webhook.json()["event"]["data"]
    assert len(webhook.body) <= 56_320 and data["trimmed"] is True
    assert content.startswith(data["content"]) and len(data["content"]) > 40_000
    assert api.get(f"/incidents/{incident['id']}/notes").json()["notes"][0]["content"] == content


def test_a_status_update_too_big_for_a_complete_delivery_is_trimmed(pd, api, receiver):
    """As a note: the message cut to fit 55 KB, `trimmed` true (a field of PagerDuty's
    `incident_status_update` data); a short one goes whole, `trimmed` false."""
    subscribe(api, receiver.url, events=["incident.status_update_published"])
    incident = new_incident(api)
    message = "status line\n" * 6000  # 72,000 characters
    for text in ("Fix rolling out", message):
        sent = api.post(f"/incidents/{incident['id']}/status_updates", json={"message": text})
        assert sent.json()["status_update"]["message"] == text
    short, big = (webhook.json()["event"]["data"] for webhook in receiver.wait_for(2))
    assert (short["message"], short["trimmed"]) == ("Fix rolling out", False)
    assert len(receiver.received[1].body) <= 56_320 and big["trimmed"] is True
    assert message.startswith(big["message"]) and len(big["message"]) > 40_000


def test_a_merge_sends_incident_resolved_with_the_merge_resolve_reason(api, receiver):
    target = new_incident(api, "PAPI001", title="Checkout is failing")
    source = new_incident(api, "PAPI001", title="Payments time out")
    subscribe(api, receiver.url)
    merged = api.put(
        f"/incidents/{target['id']}/merge",
        json={"source_incidents": [{"id": source["id"], "type": "incident_reference"}]},
        headers={"From": "jane.smith@company.com"},
    )
    assert merged.status_code == 200, merged.text
    (webhook,) = receiver.wait_for(1)
    event = webhook.json()["event"]
    assert event["event_type"] == "incident.resolved"
    assert event["agent"]["id"] == "PUJANE1"
    data = event["data"]
    assert data["id"] == source["id"] and data["status"] == "resolved"
    reason = data["resolve_reason"]
    assert reason["type"] == "merge_resolve_reason"
    assert reason["incident"]["id"] == target["id"]
    assert reason["incident"]["type"] == "incident_reference"
    assert reason["incident"]["summary"] == f"[#{target['incident_number']}] Checkout is failing"
    # the target is left as it was: no event about it
    assert event_types(receiver) == ["incident.resolved"]


def test_the_sandbox_knows_every_event_type_pagerduty_publishes(shared_pagerduty):
    """The event types a subscription may name are PagerDuty's published list, no more."""
    from im_pagerduty.sandbox.events import SUBSCRIBABLE_EVENT_TYPES

    published = json.loads((shared_pagerduty / "webhooks" / "official-docs" /
                            "event-types.json").read_text())["event_types"]
    assert SUBSCRIBABLE_EVENT_TYPES == {entry["event_type"] for entry in published}
