"""Every incident event a responder produces in PagerDuty reaches im's timeline: conference
bridges, incident types, service moves, responder requests and their answers, status updates,
and notes PagerDuty trimmed to fit the webhook (read whole before they reach the timeline)."""

import pytest

from im.testing import serve

from .connector_kit import delivered, im, remote_incidents, runtime_with_connector, wait_for

pytestmark = pytest.mark.usefixtures("quick_retries")


@pytest.fixture
def live(tmp_path, pd):
    """im serve with its webhook subscribed, and one incident declared in im (INC-1) and
    created in PagerDuty; returns the runtime and the PagerDuty incident."""
    runtime = runtime_with_connector(tmp_path / "home", pd)
    with serve(runtime) as url:
        result = im(runtime, "connector", "webhook", "prod-pagerduty", "--enable", "--url", url)
        assert result.exit_code == 0, result.output
        im(runtime, "declare", "--sev", "SEV-2", "--title", "Checkout latency",
           "--service", "api")
        delivered(runtime)
        [remote] = remote_incidents(pd.client())
        settled(pd, runtime)
        yield runtime, remote
    runtime.store.close()


def settled(pd, runtime):
    assert pd.wait_for_webhooks(timeout=10)
    wait_for(lambda: not runtime.store.inbox(statuses=("pending", "processing")))


def synced(runtime):
    """The lines PagerDuty's events wrote on INC-1 (not those of im's own create)."""
    return [(e.kind, e.actor, e.text) for e in runtime.store.timeline("INC-1")
            if e.system == "prod-pagerduty" and e.actor != "prod-pagerduty"
            and e.kind in ("sync", "note")]


def as_john(pd):
    return pd.client(from_email="john.doe@company.com")


def test_the_subscription_asks_for_every_incident_event_a_responder_produces(live, pd):
    [subscription] = pd.client().get("/webhook_subscriptions").json()["webhook_subscriptions"]
    assert {"incident.conference_bridge.updated", "incident.incident_type.changed",
            "incident.service_updated", "incident.responder.added",
            "incident.responder.replied", "incident.status_update_published",
            } <= set(subscription["events"])


def test_bridge_type_service_responders_and_status_updates_reach_the_timeline(live, pd):
    runtime, remote = live
    with as_john(pd) as john:
        path = f"/incidents/{remote['id']}"
        john.put(path, json={"incident": {"type": "incident_reference", "conference_bridge": {
            "conference_url": "https://meet.example.com/checkout",
            "conference_number": "+1 415-555-1212,,1234#"}}}).raise_for_status()
        john.put(path, json={"incident": {"type": "incident_reference",
                                          "incident_type": {"name": "major"}}}
                 ).raise_for_status()
        john.put(path, json={"incident": {"type": "incident_reference", "service": {
            "id": "PPAY001", "type": "service_reference"}}}).raise_for_status()
        john.post(f"{path}/status_updates",
                  json={"message": "Payments degraded; fix rolling out"}).raise_for_status()
    with pd.client() as api:
        api.post(f"/incidents/{remote['id']}/responder_requests", json={
            "requester_id": "PUJOHN1", "message": "Join the bridge",
            "responder_request_targets": [{"responder_request_target": {
                "id": "PUJANE1", "type": "user_reference"}}]}).raise_for_status()
    pd.responder_reply(remote["id"], "PUJANE1", "joined")
    settled(pd, runtime)
    assert runtime.store.inbox(statuses=("quarantined",)) == []
    john, jane = "john.doe@company.com", "jane.smith@company.com"
    number = remote["incident_number"]
    assert synced(runtime) == [
        ("sync", john, "PagerDuty conference bridge set: https://meet.example.com/checkout,"
                       " +1 415-555-1212,,1234#"),
        ("sync", john, f"PagerDuty incident #{number} incident type changed to major"),
        ("sync", john, f"PagerDuty incident #{number} moved to PagerDuty service"
                       " Payments Service (payments)"),
        ("note", john, "Status update in PagerDuty: Payments degraded; fix rolling out"),
        ("sync", john, f"PagerDuty responder requested: {jane}: Join the bridge"),
        ("sync", jane, f"PagerDuty responder {jane} joined"),
    ]
    # the move took the link to the im service Payments Service maps back to
    [link] = runtime.store.links("INC-1")
    assert (link.service, link.remote_id) == ("payments", remote["id"])
    assert runtime.store.get_incident("INC-1").services == ["payments"]
    # each told once, and nothing of it went back to PagerDuty
    assert [r.action for r in runtime.store.outbox(connector="prod-pagerduty")] == ["declare"]


def test_a_note_pagerduty_trimmed_in_its_webhook_reaches_the_timeline_whole(live, pd):
    runtime, remote = live
    content = "".join(f"line {n}: replica lag measured again\n" for n in range(2000)).strip()
    with as_john(pd) as john:
        john.post(f"/incidents/{remote['id']}/notes",
                  json={"note": {"content": content}}).raise_for_status()
    pd.clear_requests()
    settled(pd, runtime)
    [event] = pd.events("incident.annotated")
    delivered = event["body"]["event"]["data"]
    assert delivered["trimmed"] is True and content.startswith(delivered["content"])
    assert len(delivered["content"]) < len(content)
    [note] = [e for e in runtime.store.timeline("INC-1") if e.kind == "note"]
    assert note.text == content
    # the one call it needs
    assert [(r["method"], r["path"]) for r in pd.requests(path="/incidents/*")] == [
        ("GET", f"/incidents/{remote['id']}/notes")]


def test_a_status_update_pagerduty_trimmed_in_its_webhook_says_it_was_cut(live, pd):
    """No route of PagerDuty's API reads a status update back (only its creation answers
    one), so the timeline keeps what the webhook gave and says that it was cut, and where the
    whole of it is; no call is made for it."""
    runtime, remote = live
    message = "".join(f"step {n}: payments failover in progress\n" for n in range(2000))
    with as_john(pd) as john:
        john.post(f"/incidents/{remote['id']}/status_updates",
                  json={"message": message}).raise_for_status()
    pd.clear_requests()
    settled(pd, runtime)
    [event] = pd.events("incident.status_update_published")
    delivered = event["body"]["event"]["data"]
    assert delivered["trimmed"] is True and len(delivered["message"]) < len(message)
    [update] = [e for e in runtime.store.timeline("INC-1") if e.kind == "note"]
    assert update.text == (
        f"Status update in PagerDuty: {delivered['message']} [cut by PagerDuty to fit its"
        f" webhook; the whole update is on the incident in PagerDuty: {remote['html_url']}]")
    assert pd.requests(path="/incidents/*") == []


def test_a_short_note_is_taken_as_delivered(live, pd):
    runtime, remote = live
    with as_john(pd) as john:
        john.post(f"/incidents/{remote['id']}/notes",
                  json={"note": {"content": "Replica lag is the cause"}}).raise_for_status()
    pd.clear_requests()
    settled(pd, runtime)
    [note] = [e for e in runtime.store.timeline("INC-1") if e.kind == "note"]
    assert note.text == "Replica lag is the cause"
    assert pd.requests(path="/incidents/*") == []
