"""Responder requests as PagerDuty takes them: POST /incidents/{id}/responder_requests records
the responders on the incident and sends `incident.responder.added` for each user it reached;
a responder's answer (given in PagerDuty's app, which the REST API has no route for) sends
`incident.responder.replied` with PagerDuty as the event's client."""

import httpx
import pytest

from .sandbox_calls import new_incident, subscribe

EVENTS = ["incident.responder.added", "incident.responder.replied"]


def target(kind, object_id):
    return {"responder_request_target": {"id": object_id, "type": f"{kind}_reference"}}


def ask(client, incident_id, *targets, requester_id="PUOPS01", message="Join the bridge"):
    return client.post(f"/incidents/{incident_id}/responder_requests", json={
        "requester_id": requester_id, "message": message,
        "responder_request_targets": list(targets)})


@pytest.fixture
def incident(api, pagerduty_webhook_receiver):
    subscribe(api, pagerduty_webhook_receiver.url, events=EVENTS)
    return new_incident(api, "PAPI001", title="Checkout latency")


def test_a_request_lists_the_responders_on_the_incident_and_announces_each(
        pd, api, incident, pagerduty_webhook_receiver):
    # Jane by name; the API policy's first level is the primary schedule, John's this week
    asked = ask(api, incident["id"], target("user", "PUJANE1"),
                target("escalation_policy", "PAPI_ESCALATION"))
    assert asked.status_code == 200, asked.text
    request = asked.json()["responder_request"]
    assert (request["requester"]["id"], request["message"]) == ("PUOPS01", "Join the bridge")
    assert [(t["responder_request_target"]["type"], t["responder_request_target"]["id"],
             [(r["user"]["id"], r["state"])
              for r in t["responder_request_target"]["incidents_responders"]])
            for t in request["responder_request_targets"]] == [
        ("user", "PUJANE1", [("PUJANE1", "pending")]),
        ("escalation_policy", "PAPI_ESCALATION", [("PUJOHN1", "pending")])]

    shown = api.get(f"/incidents/{incident['id']}").json()["incident"]
    assert [(r["user"]["id"], r["state"], r["requester"]["id"], r["message"],
             r.get("escalation_policy_requests"))
            for r in shown["incidents_responders"]] == [
        ("PUJANE1", "pending", "PUOPS01", "Join the bridge", None),
        ("PUJOHN1", "pending", "PUOPS01", "Join the bridge", ["API Escalation"])]
    assert [r["id"] for r in shown["responder_requests"]] == [request["id"]]

    received = [w.json()["event"] for w in pagerduty_webhook_receiver.wait_for(2)]
    assert [(e["event_type"], e["agent"]["id"], e["client"], e["data"]["user"]["id"],
             (e["data"]["escalation_policy"] or {}).get("id"), e["data"]["state"],
             e["data"]["message"], e["data"]["incident"]["id"]) for e in received] == [
        ("incident.responder.added", "PUOPS01", None, "PUJANE1", None, "pending",
         "Join the bridge", incident["id"]),
        ("incident.responder.added", "PUOPS01", None, "PUJOHN1", "PAPI_ESCALATION", "pending",
         "Join the bridge", incident["id"])]


def test_an_answer_in_pagerdutys_app_comes_with_pagerduty_as_the_client(
        pd, api, incident, pagerduty_webhook_receiver):
    assert ask(api, incident["id"], target("user", "PUJANE1")).status_code == 200
    pd.responder_reply(incident["id"], "PUJANE1", "joined")
    added, replied = (w.json()["event"] for w in pagerduty_webhook_receiver.wait_for(2))
    assert added["client"] is None  # made through the REST API
    assert (replied["event_type"], replied["agent"]["id"], replied["client"],
            replied["data"]["state"]) == (
        "incident.responder.replied", "PUJANE1", {"name": "PagerDuty"}, "joined")
    shown = api.get(f"/incidents/{incident['id']}").json()["incident"]
    assert [(r["user"]["id"], r["state"]) for r in shown["incidents_responders"]] == [
        ("PUJANE1", "joined")]


@pytest.mark.parametrize(("body", "status", "error"), [
    ({"message": "x", "responder_request_targets": [target("user", "PUJANE1")]}, 400,
     {"message": "Invalid Input Provided", "code": 2001,
      "errors": ["Object missing required field `requester_id`"]}),
    ({"requester_id": "PNOBODY", "message": "x",
      "responder_request_targets": [target("user", "PUJANE1")]}, 400,
     {"message": "Requester User Not Found", "code": 1008}),
    ({"requester_id": "PUOPS01", "message": "x", "responder_request_targets": []}, 400,
     {"message": "Invalid Input Provided", "code": 2001,
      "errors": ["responder_request_targets must name at least one target"]}),
    ({"requester_id": "PUOPS01", "message": "x",
      "responder_request_targets": [target("user", "PNOBODY")]}, 400,
     {"message": "Invalid Input Provided", "code": 2001, "errors": ["User PNOBODY not found"]}),
    ({"requester_id": "PUOPS01", "message": "x",
      "responder_request_targets": [{"responder_request_target": {"type": "user_reference"}}]},
     400, {"message": "Invalid Input Provided", "code": 2001,
           "errors": ["A responder request target needs an id"]}),
    ({"requester_id": "PUOPS01", "message": "x",
      "responder_request_targets": [target("escalation_policy", "PNOPE00")]}, 400,
     {"message": "Escalation Policy Not Found", "code": 1014}),
    ({"requester_id": "PUOPS01", "message": "x",
      "responder_request_targets": [target("schedule", "PSPRIM1")]}, 400,
     {"message": "Invalid Input Provided", "code": 2001, "errors": [
         "A responder request target must be a user or an escalation policy"]}),
])
def test_bad_requests_get_pagerdutys_errors_and_change_nothing(
        pd, api, incident, pagerduty_webhook_receiver, body, status, error):
    answer = api.post(f"/incidents/{incident['id']}/responder_requests", json=body)
    assert (answer.status_code, answer.json()) == (status, {"error": error})
    shown = api.get(f"/incidents/{incident['id']}").json()["incident"]
    assert (shown["incidents_responders"], shown["responder_requests"]) == ([], [])
    assert pd.wait_for_webhooks() and pd.events("incident.responder.added") == []


def test_an_unknown_or_resolved_incident_is_refused(pd, api, incident):
    assert ask(api, "QNOTTHERE", target("user", "PUJANE1")).json() == {
        "error": {"message": "Incident Not Found", "code": 5001}}
    api.put(f"/incidents/{incident['id']}", json={"incident": {
        "type": "incident_reference", "status": "resolved"}}).raise_for_status()
    refused = ask(api, incident["id"], target("user", "PUJANE1"))
    assert (refused.status_code, refused.json()["error"]["code"]) == (400, 1001)


def test_a_reply_from_someone_never_asked_is_refused(pd, incident):
    refused = httpx.post(f"{pd.url}/_sandbox/incidents/{incident['id']}/responders",
                         json={"user_id": "PUJANE1", "state": "joined"}, trust_env=False)
    assert (refused.status_code, refused.json()["detail"]) == (
        400, "User PUJANE1 was not requested as a responder")


def test_the_requester_is_the_body_s_requester_id_without_a_from_header(pd, incident):
    # PagerDuty's document names no From header for this operation
    with pd.client(from_email=None) as anonymous:
        asked = ask(anonymous, incident["id"], target("user", "PUJANE1"),
                    requester_id="PUJOHN1")
    assert (asked.status_code, asked.json()["responder_request"]["requester"]["id"]) == (
        200, "PUJOHN1")
