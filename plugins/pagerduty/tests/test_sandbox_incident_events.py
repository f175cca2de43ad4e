"""The incident events a responder produces besides status changes and notes, as the sandbox
sends them: each with the data PagerDuty's documented sample of its type has."""

import json

import pytest

from .sandbox_calls import new_incident, subscribe, update

EVENTS = [
    "incident.conference_bridge.updated", "incident.incident_type.changed",
    "incident.service_updated", "incident.responder.added", "incident.responder.replied",
    "incident.status_update_published",
]


@pytest.fixture
def samples(shared_pagerduty):
    return json.loads(
        (shared_pagerduty / "webhooks/official-docs/event-data-types.json").read_text())


def test_each_change_sends_its_event_with_the_documented_data(
        api, pd, pagerduty_webhook_receiver, samples):
    receiver = pagerduty_webhook_receiver
    subscribe(api, receiver.url, events=EVENTS)
    incident = new_incident(api)
    path = f"/incidents/{incident['id']}"
    bridge = {"conference_url": "https://meet.example.com/x", "conference_number": "+1 555"}
    assert update(api, incident["id"], conference_bridge=bridge).status_code == 200
    # the same bridge again, and the type it has already: no change, no event
    assert update(api, incident["id"], conference_bridge=bridge).status_code == 200
    assert update(api, incident["id"], incident_type={"name": "major"}).status_code == 200
    assert update(api, incident["id"], incident_type={"name": "major"}).status_code == 200
    assert update(api, incident["id"], service={"id": "PPAY001", "type": "service_reference"}
                  ).status_code == 200
    posted = api.post(f"{path}/status_updates", json={"message": "Fix rolling out"})
    assert posted.status_code == 200
    assert posted.json()["status_update"]["message"] == "Fix rolling out"
    requested = api.post(f"{path}/responder_requests", json={
        "requester_id": "PUJOHN1", "message": "Join us",
        "responder_request_targets": [{"responder_request_target": {
            "id": "PUJANE1", "type": "user_reference"}}]})
    assert requested.status_code == 200, requested.text
    pd.responder_reply(incident["id"], "PUJANE1", "declined")
    receiver.wait_for(6)
    assert pd.wait_for_webhooks(timeout=10)
    received = [w.json()["event"] for w in receiver.received]
    assert [e["event_type"] for e in received] == [
        "incident.conference_bridge.updated", "incident.incident_type.changed",
        "incident.service_updated", "incident.status_update_published",
        "incident.responder.added", "incident.responder.replied"]
    for event in received:
        data = event["data"]
        # reopened_at only once an incident was reopened, as in the captured deliveries
        assert set(data) == set(samples[data["type"]]) - {"reopened_at"}, event["event_type"]
        assert data.get("incident", data)["id"] == incident["id"]
    bridge_data, typed, moved, status, added, replied = (e["data"] for e in received)
    assert (bridge_data["conference_url"], bridge_data["conference_numbers"]) == (
        "https://meet.example.com/x", [{"label": "", "number": "+1 555"}])
    assert typed["incident_type"] == {"name": "major"}
    assert moved["service"]["id"] == "PPAY001"
    assert (status["message"], status["trimmed"]) == ("Fix rolling out", False)
    assert (added["user"]["id"], added["message"], added["state"]) == (
        "PUJANE1", "Join us", "pending")
    assert received[4]["agent"]["id"] == "PUJOHN1"
    assert (replied["state"], received[5]["agent"]["id"]) == ("declined", "PUJANE1")
