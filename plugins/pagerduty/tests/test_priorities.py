"""Severity <-> PagerDuty priority through `priority_mapping`, against the sandbox: standard
priorities (P5 included), priorities an account's admins renamed, and an account without
priorities enabled."""

import time

import pytest

from .connector_kit import im, remote_incidents, runtime_with_connector
from .sandbox_calls import subscribe

pytestmark = pytest.mark.usefixtures("quick_retries")

RENAMED = {"SEV-1": "Critical", "SEV-2": "Major", "SEV-3": "Minor", "SEV-4": "Cosmetic"}


def as_john(pd):
    return pd.client(from_email="john.doe@company.com")


def priority_of(api, remote_id):
    return (api.get(f"/incidents/{remote_id}").json()["incident"]["priority"] or {}).get("summary")


def priority_ref(pd, name):
    """PagerDuty creates an incident with a priority by reference only (a name is for PUT)."""
    with as_john(pd) as john:
        listed = john.get("/priorities").json()["priorities"]
    return {"id": next(p["id"] for p in listed if p["name"] == name),
            "type": "priority_reference"}


def made_in_pagerduty(pd, title, **fields):
    with as_john(pd) as john:
        answer = john.post("/incidents", json={"incident": {
            "type": "incident", "title": title,
            "service": {"id": "PWEB001", "type": "service_reference"}, **fields}})
        answer.raise_for_status()
        return answer.json()["incident"]


def test_renamed_priorities_are_mapped_both_ways(tmp_path, pd, api, pagerduty_webhook_receiver):
    from im import WebhookRequest
    from im.inbound import poll

    pd.set_priorities(*RENAMED.values())
    runtime = runtime_with_connector(tmp_path / "home", pd, priority_mapping=RENAMED)
    # im -> PagerDuty: declared, then changed
    im(runtime, "declare", "--sev", "SEV-2", "--title", "Checkout slow", "--service", "db")
    link = runtime.store.links("INC-1")[0]
    assert priority_of(api, link.remote_id) == "Major"
    changed = im(runtime, "severity", "--incident", "INC-1", "--sev", "SEV-1")
    assert changed.exit_code == 0, changed.output
    assert priority_of(api, link.remote_id) == "Critical"
    assert any(e.text == f"PagerDuty incident #{link.remote_number} urgency set to high and"
               " priority Critical" for e in runtime.store.timeline("INC-1"))
    # PagerDuty -> im: a new incident's priority decides its severity (its urgency says SEV-2)
    made_in_pagerduty(pd, "Made in PagerDuty", urgency="high", priority=priority_ref(pd, "Minor"))
    assert poll(runtime, "prod-pagerduty")["created"] == 1
    assert runtime.store.get_incident("INC-2").severity.value == "SEV-3"
    # ... and a priority_updated webhook reads the new priority through the mapping
    subscribe(api, pagerduty_webhook_receiver.url, events=["incident.priority_updated"])
    with as_john(pd) as john:
        john.put(f"/incidents/{link.remote_id}", json={"incident": {
            "type": "incident_reference", "priority": "Cosmetic"}}).raise_for_status()
    (webhook,) = pagerduty_webhook_receiver.wait_for(1)
    [change] = runtime.connector("prod-pagerduty").webhook_changes(
        WebhookRequest(headers={}, body=webhook.body))
    assert change.severity == "SEV-4"
    assert change.text == f"PagerDuty incident #{link.remote_number} priority set to Cosmetic" \
                          " (SEV-4)"
    runtime.store.close()


def test_standard_priorities_p5_reads_as_sev4(tmp_path, pd, api):
    from im.inbound import poll

    runtime = runtime_with_connector(tmp_path / "home", pd)  # the default mapping
    im(runtime, "declare", "--sev", "SEV-4", "--title", "Typo on the status page", "--service",
       "web")
    assert priority_of(api, runtime.store.links("INC-1")[0].remote_id) == "P4"
    made_in_pagerduty(pd, "Cosmetic bug", urgency="high", priority=priority_ref(pd, "P5"))
    made_in_pagerduty(pd, "Unknown priority name", urgency="high")
    assert poll(runtime, "prod-pagerduty")["created"] == 2
    by_title = {i.title: i.severity.value for i in runtime.store.list_incidents()}
    # P5 is below every im severity: SEV-4; no priority: urgency (high) decides
    assert by_title["Cosmetic bug"] == "SEV-4"
    assert by_title["Unknown priority name"] == "SEV-2"
    runtime.store.close()


def test_an_account_without_priorities_keeps_working(tmp_path, pd, api):
    pd.set_priorities()  # not enabled: GET /priorities lists none
    runtime = runtime_with_connector(tmp_path / "home", pd)
    for command in (("declare", "--sev", "SEV-1", "--title", "API down", "--service", "api"),
                    ("severity", "--incident", "INC-1", "--sev", "SEV-3"),
                    ("ack", "--incident", "INC-1"), ("resolve", "--incident", "INC-1")):
        result = im(runtime, *command)
        assert result.exit_code == 0, result.output
    assert {r.status for r in runtime.store.outbox()} == {"done"}
    [remote] = remote_incidents(api)
    assert (remote["status"], remote["priority"], remote["urgency"]) == ("resolved", None, "low")
    # said once, by `connector test`, not on every change
    assert not any("priority" in e.text.lower() for e in runtime.store.timeline("INC-1"))
    test = im(runtime, "connector", "test", "prod-pagerduty")
    assert test.exit_code == 0, test.output
    assert ("✓ Priorities not enabled in PagerDuty: severity is sent as urgency alone"
            in test.stdout.splitlines())
    runtime.store.close()


def test_a_priority_gone_since_it_was_listed_does_not_fail_the_change(tmp_path, pd, api):
    runtime = runtime_with_connector(tmp_path / "home", pd)
    im(runtime, "declare", "--sev", "SEV-2", "--title", "Queue backlog", "--service", "db")
    link = runtime.store.links("INC-1")[0]
    assert priority_of(api, link.remote_id) == "P2"
    pd.set_priorities()  # the admins turn priorities off; im's listing is minutes old
    result = im(runtime, "severity", "--incident", "INC-1", "--sev", "SEV-3")
    assert result.exit_code == 0, result.output
    assert {r.status for r in runtime.store.outbox()} == {"done"}
    assert api.get(f"/incidents/{link.remote_id}").json()["incident"]["urgency"] == "low"
    assert [e.text for e in runtime.store.timeline("INC-1")][-2:] == [
        f"PagerDuty incident #{link.remote_number} urgency set to low",
        "PagerDuty priority not set: PagerDuty refused it (Invalid Priority)"]
    runtime.store.close()


def test_connector_test_checks_the_mapping(tmp_path, pd):
    pd.set_priorities("Critical", "High", "Low")
    runtime = runtime_with_connector(tmp_path / "home", pd)
    bad = im(runtime, "connector", "test", "prod-pagerduty")
    assert bad.exit_code == 1
    assert bad.stdout.splitlines()[4:6] == [
        "✗ Priority mapping: no priority named P1, P2, P3, P4 in PagerDuty (has: Critical,"
        " High, Low)",
        "  Fix: im connector config prod-pagerduty --priority-mapping '{\"SEV-1\": \"NAME\","
        " ...}' (PagerDuty's names)"]
    fixed = im(runtime, "connector", "config", "prod-pagerduty", "--priority-mapping",
               '{"SEV-1": "Critical", "SEV-2": "High", "SEV-3": "Low", "SEV-4": "Low"}')
    assert (fixed.exit_code, fixed.stderr) == (
        1, "Error: invalid settings: priority 'Low' is mapped to both SEV-3 and SEV-4; a"
           " priority reads back as one severity - at `custom.priority_mapping`\n")
    fixed = im(runtime, "connector", "config", "prod-pagerduty", "--priority-mapping",
               '{"SEV-1": "Critical", "SEV-2": "High", "SEV-3": "Low"}')
    assert fixed.exit_code == 0, fixed.output
    good = im(runtime, "connector", "test", "prod-pagerduty")
    assert good.exit_code == 0, good.output
    assert "✓ Priorities Critical, High, Low found" in good.stdout.splitlines()
    runtime.store.close()



def test_a_priority_listing_pagerduty_cannot_answer_queues_the_change(tmp_path, pd, api):
    """Down or slow for GET /priorities is down for the change: it waits in the outbox and
    reaches PagerDuty with its priority, not without it."""
    runtime = runtime_with_connector(tmp_path / "home", pd)
    pd.set_faults(burst_5xx=2, paths=["/priorities"])  # as many as the client tries
    result = im(runtime, "declare", "--sev", "SEV-1", "--title", "API down", "--service", "api")
    assert result.exit_code == 0, result.output
    assert "1 change(s) queued" in result.stderr
    assert remote_incidents(api) == []
    synced = im(runtime, "connector", "sync", "prod-pagerduty")
    assert synced.stdout.startswith("prod-pagerduty: 1 delivered, 0 queued for retry, 0 failed")
    [remote] = remote_incidents(api)
    assert remote["priority"]["summary"] == "P1"
    runtime.store.close()


def _apply_webhooks(runtime, receiver, count, *, total=None):
    """Apply deliveries `total - count` to `total` (of all the receiver got) as im serve would:
    through the connector, in order."""
    from im import WebhookRequest
    from im.inbound import apply_change

    connector = runtime.connector("prod-pagerduty")
    outcomes = []
    total = total or count
    for webhook in receiver.wait_for(total)[total - count:total]:
        for change in connector.webhook_changes(WebhookRequest(headers={}, body=webhook.body)):
            outcomes.append(apply_change(runtime, connector, change))
    return outcomes


def _set_priority(pd, remote_id, name):
    with as_john(pd) as john:
        john.put(f"/incidents/{remote_id}", json={"incident": {
            "type": "incident_reference", "priority": name}}).raise_for_status()


def test_a_priority_changed_in_pagerduty_changes_the_im_severity(
        tmp_path, pd, api, pagerduty_webhook_receiver):
    runtime = runtime_with_connector(tmp_path / "home", pd)
    im(runtime, "declare", "--sev", "SEV-3", "--title", "Checkout slow", "--service", "db")
    link = runtime.store.links("INC-1")[0]
    subscribe(api, pagerduty_webhook_receiver.url, events=["incident.priority_updated"])
    _set_priority(pd, link.remote_id, "P1")
    assert _apply_webhooks(runtime, pagerduty_webhook_receiver, 1) == ["applied"]
    incident = runtime.store.get_incident("INC-1")
    assert incident.severity.value == "SEV-1"
    last = runtime.store.timeline("INC-1")[-2:]
    assert [(e.text, e.actor, e.system) for e in last] == [
        (f"PagerDuty incident #{link.remote_number} priority set to P1 (SEV-1)",
         "john.doe@company.com", "prod-pagerduty"),
        ("Severity changed from SEV-3 to SEV-1", "john.doe@company.com", "prod-pagerduty")]
    # not sent back to PagerDuty, which has it
    assert [r.action for r in runtime.store.outbox()].count("severity") == 0
    # a priority the mapping does not know changes nothing but the timeline
    pd.set_priorities("P1", "P2", "P3", "P4", "P5", "Unmapped")
    _set_priority(pd, link.remote_id, "Unmapped")
    assert _apply_webhooks(runtime, pagerduty_webhook_receiver, 1, total=2) == ["applied"]
    assert runtime.store.get_incident("INC-1").severity.value == "SEV-1"
    assert runtime.store.timeline("INC-1")[-1].text == (
        f"PagerDuty incident #{link.remote_number} priority set to Unmapped")
    runtime.store.close()


def test_a_late_priority_change_does_not_undo_a_later_severity_change_in_im(
        tmp_path, pd, api, pagerduty_webhook_receiver):
    runtime = runtime_with_connector(tmp_path / "home", pd)
    im(runtime, "declare", "--sev", "SEV-3", "--title", "Checkout slow", "--service", "db")
    link = runtime.store.links("INC-1")[0]
    subscribe(api, pagerduty_webhook_receiver.url, events=["incident.priority_updated"])
    _set_priority(pd, link.remote_id, "P1")
    pagerduty_webhook_receiver.wait_for(1)
    time.sleep(0.01)  # im's change comes after the responder's, by both clocks
    changed = im(runtime, "severity", "--incident", "INC-1", "--sev", "SEV-2")
    assert changed.exit_code == 0, changed.output
    # the responder's P1 arrives late, then im's own P2 comes back
    assert _apply_webhooks(runtime, pagerduty_webhook_receiver, 2) == ["stale", "confirmed"]
    assert runtime.store.get_incident("INC-1").severity.value == "SEV-2"
    assert priority_of(api, link.remote_id) == "P2"
    assert (f"PagerDuty incident #{link.remote_number} priority set to P1 (SEV-1); INC-1 stays"
            " SEV-2, set later") in [e.text for e in runtime.store.timeline("INC-1")]
    runtime.store.close()


def test_a_queued_severity_change_sends_the_severity_the_incident_has_when_delivered(
        tmp_path, pd, api, pagerduty_webhook_receiver):
    from im import incidents
    from im.sync import deliver_outbox

    runtime = runtime_with_connector(tmp_path / "home", pd)
    im(runtime, "declare", "--sev", "SEV-3", "--title", "Checkout slow", "--service", "db")
    link = runtime.store.links("INC-1")[0]
    subscribe(api, pagerduty_webhook_receiver.url, events=["incident.priority_updated"])
    incidents.set_severity(runtime, "INC-1", "SEV-2")  # queued, not delivered yet
    time.sleep(0.01)
    _set_priority(pd, link.remote_id, "P1")  # then a responder raises it in PagerDuty
    assert _apply_webhooks(runtime, pagerduty_webhook_receiver, 1) == ["applied"]
    assert runtime.store.get_incident("INC-1").severity.value == "SEV-1"
    deliver_outbox(runtime)
    # the queued change did not take PagerDuty back to P2: both sides say SEV-1 / P1
    assert priority_of(api, link.remote_id) == "P1"
    assert {r.status for r in runtime.store.outbox()} == {"done"}
    runtime.store.close()


def test_priority_changes_delivered_out_of_order_leave_the_latest(
        tmp_path, pd, api, pagerduty_webhook_receiver):
    runtime = runtime_with_connector(tmp_path / "home", pd)
    im(runtime, "declare", "--sev", "SEV-2", "--title", "Checkout slow", "--service", "db")
    link = runtime.store.links("INC-1")[0]
    subscribe(api, pagerduty_webhook_receiver.url, events=["incident.priority_updated"])
    _set_priority(pd, link.remote_id, "P1")
    pagerduty_webhook_receiver.wait_for(1)
    time.sleep(0.01)
    _set_priority(pd, link.remote_id, "P3")
    p1, p3 = pagerduty_webhook_receiver.wait_for(2)[:2]
    from im import WebhookRequest
    from im.inbound import apply_change

    connector = runtime.connector("prod-pagerduty")
    outcomes = [apply_change(runtime, connector, change) for webhook in (p3, p1)
                for change in connector.webhook_changes(WebhookRequest(headers={},
                                                                       body=webhook.body))]
    # the later P3 came first; the P1 from before it is old news, as PagerDuty says P3
    assert outcomes == ["applied", "stale"]
    assert runtime.store.get_incident("INC-1").severity.value == "SEV-3"
    assert priority_of(api, link.remote_id) == "P3"
    runtime.store.close()


def test_a_priority_changed_on_one_of_several_pagerduty_incidents_reaches_the_others(
        tmp_path, pd, api, pagerduty_webhook_receiver):
    from im.sync import deliver_outbox

    runtime = runtime_with_connector(tmp_path / "home", pd)
    im(runtime, "declare", "--sev", "SEV-3", "--title", "Region down", "--service", "api,db")
    links = {link.service: link for link in runtime.store.links("INC-1")}
    subscribe(api, pagerduty_webhook_receiver.url, events=["incident.priority_updated"])
    _set_priority(pd, links["api"].remote_id, "P1")
    assert _apply_webhooks(runtime, pagerduty_webhook_receiver, 1) == ["applied"]
    queued = [(r.service, r.action) for r in runtime.store.outbox() if r.status == "pending"]
    assert queued == [("db", "severity")]  # not back to the one it came from
    deliver_outbox(runtime)
    assert priority_of(api, links["db"].remote_id) == "P1"
    # im's own change comes back from the other incident as an echo: nothing more to do
    assert _apply_webhooks(runtime, pagerduty_webhook_receiver, 1, total=2) == ["confirmed"]
    assert runtime.store.get_incident("INC-1").severity.value == "SEV-1"
    runtime.store.close()
