"""Inbound sync end to end: the sandbox delivers real signed webhooks to a running `im serve`,
and im reflects what responders do in PagerDuty, once, without echoing it back."""

import json
from datetime import datetime

import httpx
import pytest

from im.testing import serve
from im_pagerduty.webhooks import sign

from .connector_kit import (delivered, im, pd_time, remote_incidents, runtime_with_connector,
                           wait_for)


pytestmark = pytest.mark.usefixtures("quick_retries")


@pytest.fixture
def live(tmp_path, pd):
    """im serve on loopback with its webhook subscribed in the sandbox."""
    runtime = runtime_with_connector(tmp_path / "home", pd)
    with serve(runtime) as url:
        result = im(runtime, "connector", "webhook", "prod-pagerduty", "--enable", "--url", url)
        assert result.exit_code == 0, result.output
        assert result.stdout.endswith(
            f"Webhook URL will be: {url}/connectors/prod-pagerduty/webhook\n")
        yield runtime, url
    runtime.store.close()


def as_john(pd):
    return pd.client(from_email="john.doe@company.com")


def kinds(runtime, incident="INC-1"):
    return [(e.kind, e.system) for e in runtime.store.timeline(incident) if e.kind != "sync"]


def status_event(link, event_id, event_type, status, at):
    """A signed-webhook body: a status change of `link`'s PagerDuty incident at `at`."""
    return json.dumps({"event": {
        "id": event_id, "event_type": event_type, "resource_type": "incident",
        "occurred_at": at.isoformat().replace("+00:00", "Z"), "agent": None,
        "client": None, "data": {
            "id": link.remote_id, "type": "incident", "number": 1, "status": status,
            "title": "x", "html_url": link.remote_url, "incident_key": None,
            "service": {"id": "PAPI001", "type": "service_reference"},
            "assignees": [], "urgency": "high", "priority": None}}}).encode()


def settled(pd, runtime):
    """Every delivery made and every stored event processed."""
    assert pd.wait_for_webhooks(timeout=10)
    wait_for(lambda: not runtime.store.inbox(statuses=("pending", "processing")))


def test_a_responders_work_in_pagerduty_comes_back_once(live, pd):
    runtime, _ = live
    im(runtime, "declare", "--sev", "SEV-2", "--title", "Database performance issue",
       "--service", "api")
    delivered(runtime)
    [remote] = remote_incidents(pd.client())
    settled(pd, runtime)
    # our own create came back as incident.triggered: confirmed, not a second incident
    assert len(runtime.store.list_incidents()) == 1
    with as_john(pd) as john:
        john.put(f"/incidents/{remote['id']}", json={"incident": {
            "type": "incident_reference", "status": "acknowledged"}}).raise_for_status()
        settled(pd, runtime)
        incident = runtime.store.get_incident("INC-1")
        assert incident.status.value == "mitigated"
        assert incident.assignee == "john.doe@company.com"
        john.post(f"/incidents/{remote['id']}/notes",
                  json={"note": {"content": "Replica lag is the cause"}}).raise_for_status()
        settled(pd, runtime)
        john.put(f"/incidents/{remote['id']}", json={"incident": {
            "type": "incident_reference", "status": "resolved"}}).raise_for_status()
        settled(pd, runtime)
        assert runtime.store.get_incident("INC-1").status.value == "resolved"
        john.put(f"/incidents/{remote['id']}", json={"incident": {
            "type": "incident_reference", "status": "triggered"}}).raise_for_status()
        settled(pd, runtime)
    assert runtime.store.get_incident("INC-1").status.value == "open"
    timeline = runtime.store.timeline("INC-1")
    note = next(e for e in timeline if e.kind == "note")
    assert (note.text, note.actor, note.system) == (
        "Replica lag is the cause", "john.doe@company.com", "prod-pagerduty")
    assert [k for k in kinds(runtime) if k[1] == "prod-pagerduty"] == [
        ("acknowledged", "prod-pagerduty"), ("note", "prod-pagerduty"),
        ("resolved", "prod-pagerduty"), ("reopened", "prod-pagerduty")]
    # nothing went back to PagerDuty: only the create was ever queued for it
    assert [r.action for r in runtime.store.outbox(connector="prod-pagerduty")] == ["declare"]
    notes = pd.client().get(f"/incidents/{remote['id']}/notes").json()["notes"]
    assert [n["content"] for n in notes] == ["Replica lag is the cause"]


def test_an_incident_triggered_in_pagerduty_becomes_an_im_incident(live, pd):
    runtime, _ = live
    with pd.client(from_email="jane.smith@company.com") as jane:
        jane.post("/incidents", json={"incident": {
            "type": "incident", "title": "Checkout errors", "urgency": "high",
            "service": {"id": "PPAY001", "type": "service_reference"}}}).raise_for_status()
    settled(pd, runtime)
    [incident] = runtime.store.list_incidents()
    assert (incident.title, incident.severity.value, incident.services) == (
        "Checkout errors", "SEV-2", ["payments"])
    assert incident.created_by == "jane.smith@company.com"
    [link] = runtime.store.links(incident.id)
    assert (link.connector, link.service, link.remote_status) == (
        "prod-pagerduty", "payments", "open")
    # an incident that came from PagerDuty is not created there again
    assert runtime.store.outbox(connector="prod-pagerduty") == []


def test_bad_signatures_write_nothing(live, pd, caplog):
    runtime, url = live
    endpoint = f"{url}/connectors/prod-pagerduty/webhook"
    body = json.dumps({"event": {"id": "01X", "event_type": "pagey.ping",
                                 "occurred_at": pd_time(), "data": {}}}).encode()
    for headers in ({}, {"X-PagerDuty-Signature": "v1=" + "0" * 64},
                    {"X-PagerDuty-Signature": sign("not-the-secret", body)}):
        assert httpx.post(endpoint, content=body, headers=headers).status_code == 401
    assert runtime.store.inbox() == []
    # logged where the docs say to look for them: `im logs --component webhook`; the first
    # at once, the ones after it counted and logged together (see test_server_security.py)
    refused = [(r.name, r.connector, r.getMessage()) for r in caplog.records
               if "refused" in r.getMessage()]
    assert refused == [("im.webhook", "prod-pagerduty",
                        "webhook for prod-pagerduty from 127.0.0.1 refused: bad or missing"
                        " signature")]
    metrics = httpx.get(f"{url}/metrics").text
    assert 'im_webhook_requests_total{connector="prod-pagerduty",outcome="unauthorized"} 3.0' \
        in metrics
    assert httpx.post(f"{url}/connectors/nope/webhook", content=body).status_code == 404


def test_duplicates_unknown_types_and_oversized_bodies(live, pd):
    runtime, url = live
    endpoint = f"{url}/connectors/prod-pagerduty/webhook"
    secret = runtime.connector("prod-pagerduty").settings.custom.webhook_secrets[0]
    event = {"event": {"id": "01UNKNOWN", "event_type": "service.updated",
                       "resource_type": "service", "occurred_at": pd_time(),
                       "agent": None, "client": None, "data": {"id": "PAPI001", "type": "service"}}}
    body = json.dumps(event).encode()
    signed = {"X-PagerDuty-Signature": sign(secret, body), "Content-Type": "application/json"}
    first = httpx.post(endpoint, content=body, headers=signed)
    again = httpx.post(endpoint, content=body, headers=signed)
    assert (first.status_code, first.json()) == (202, {"status": "accepted"})
    assert (again.status_code, again.json()) == (202, {"status": "duplicate"})
    wait_for(lambda: runtime.store.inbox(statuses=("quarantined",)))
    [row] = runtime.store.inbox()
    assert row.error == "UnhandledEventError: PagerDuty event type service.updated is not handled"
    garbage = b"not json at all"
    answer = httpx.post(endpoint, content=garbage, headers={
        "X-PagerDuty-Signature": sign(secret, garbage)})
    assert answer.status_code == 202
    big = b"x" * (2 * 1024 * 1024)
    assert httpx.post(endpoint, content=big, headers={
        "X-PagerDuty-Signature": sign(secret, big)}).status_code == 413
    wait_for(lambda: len(runtime.store.inbox(statuses=("quarantined",))) == 2)
    replayed = im(runtime, "connector", "replay", "prod-pagerduty")
    assert replayed.stdout.startswith("prod-pagerduty: 0 processed, 2 still quarantined\n")
    first_id, second_id = sorted(r.id for r in runtime.store.inbox(statuses=("quarantined",)))
    one = im(runtime, "connector", "replay", "prod-pagerduty", "--id", str(second_id))
    assert one.stdout.splitlines()[0] == "prod-pagerduty: 0 processed, 1 still quarantined"
    assert [line.split()[0] for line in one.stdout.splitlines()[1:]] == [f"#{second_id}"]
    unknown = im(runtime, "connector", "replay", "prod-pagerduty", "--id", "9999")
    assert (unknown.exit_code, unknown.stderr) == (1, (
        f"Error: no quarantined event #9999 for prod-pagerduty; quarantined: #{first_id},"
        f" #{second_id}\n"))


def test_webhook_test_command(live, pd):
    runtime, url = live
    result = im(runtime, "connector", "webhook", "prod-pagerduty", "--test", "--url", url)
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"✓ Signed test event accepted by {url}/connectors/prod-pagerduty/webhook (202)"
        " and stored\n✓ pagerduty ping received (pagey.ping)\n")


def test_polling_repairs_missed_webhooks(tmp_path, pd):
    """Webhooks paused: a poll finds what responders did."""
    from im.inbound import poll

    runtime = runtime_with_connector(tmp_path / "home", pd)
    im(runtime, "declare", "--sev", "SEV-2", "--title", "x", "--service", "db")
    link = runtime.store.links("INC-1")[0]
    with as_john(pd) as john:
        john.put(f"/incidents/{link.remote_id}", json={"incident": {
            "type": "incident_reference", "status": "acknowledged"}}).raise_for_status()
        john.post("/incidents", json={"incident": {
            "type": "incident", "title": "Made in PagerDuty",
            "service": {"id": "PWEB001", "type": "service_reference"}}}).raise_for_status()
    outcomes = poll(runtime, "prod-pagerduty")
    assert outcomes == {"applied": 1, "created": 1}
    assert runtime.store.get_incident("INC-1").status.value == "mitigated"
    assert runtime.store.get_incident("INC-2").title == "Made in PagerDuty"
    assert poll(runtime, "prod-pagerduty") == {"confirmed": 2}
    with as_john(pd) as john:
        john.put(f"/incidents/{link.remote_id}", json={"incident": {
            "type": "incident_reference", "status": "resolved"}}).raise_for_status()
    assert poll(runtime, "prod-pagerduty")["applied"] == 1
    assert runtime.store.get_incident("INC-1").status.value == "resolved"
    # list calls only: no call about a single incident
    assert pd.requests("GET", "/incidents/*") == []


def test_an_incident_missing_from_pagerdutys_listings_is_read_before_anything_is_applied(
        tmp_path, pd, caplog):
    """Missing from the open listing is no proof of a resolve (the connector may point at
    another PagerDuty): each such incident is read by itself; one PagerDuty does not know
    leaves the im incident as it is, with a warning."""
    from datetime import UTC, datetime

    import msgspec

    from im.inbound import poll
    from im.testing import FakeClock

    clock = FakeClock(datetime.now(UTC))
    runtime = runtime_with_connector(tmp_path / "home", pd, clock=clock)
    for title in ("still open elsewhere", "resolved in PagerDuty"):
        im(runtime, "declare", "--sev", "SEV-1", "--title", title, "--service", "db")
    im(runtime, "ack", "--incident", "INC-1", "--note", "on it")
    # INC-1 linked to an incident this PagerDuty does not have (its own, resolved, is not
    # listed as open either)
    gone = runtime.store.links("INC-1")[0]
    runtime.store.upsert_link(msgspec.structs.replace(gone, remote_id="QNOSUCHINCIDENT"))
    resolved = runtime.store.links("INC-2")[0]
    with as_john(pd) as john:
        for link in (gone, resolved):
            john.put(f"/incidents/{link.remote_id}", json={"incident": {
                "type": "incident_reference", "status": "resolved"}}).raise_for_status()
    # an hour later, both created before the cursor: neither listing shows them
    runtime.store.set_cursor("prod-pagerduty", clock.advance(hours=1).isoformat(), at=clock())
    pd.clear_requests()
    assert poll(runtime, "prod-pagerduty") == {"applied": 1, "recorded": 1}
    assert runtime.store.get_incident("INC-1").status.value == "mitigated"
    assert [e.text for e in runtime.store.timeline("INC-1") if e.kind == "sync"][-1] == (
        f"PagerDuty incident #{gone.remote_number} (db) not found in PagerDuty;"
        " im incident left as it is")
    second = runtime.store.get_incident("INC-2")
    assert second.status.value == "resolved"
    resolved_line = [e for e in runtime.store.timeline("INC-2") if e.kind == "resolved"]
    assert [(e.actor, e.system) for e in resolved_line] == [
        ("john.doe@company.com", "prod-pagerduty")]
    assert "PagerDuty has no incident QNOSUCHINCIDENT (linked to INC-1)" in caplog.text
    gets = [r["path"] for r in pd.requests("GET", "/incidents/*")]
    assert sorted(gets) == sorted(["/incidents/QNOSUCHINCIDENT",
                                   f"/incidents/{resolved.remote_id}"])
    # the unknown one is marked, and not asked about again
    [marked] = runtime.store.links(connector="prod-pagerduty", remote_id="QNOSUCHINCIDENT")
    assert marked.remote_status == "missing"
    pd.clear_requests()
    poll(runtime, "prod-pagerduty")
    assert pd.requests("GET", "/incidents/*") == []


def test_acknowledging_from_im_keeps_the_assignee_and_a_late_echo_changes_nothing(tmp_path, pd):
    """PagerDuty assigns whoever acknowledges (im's own user when im does): that is not an
    im assignee. im's own events coming back late never undo what came since."""
    from datetime import timedelta

    from im.inbound import process_inbox

    runtime = runtime_with_connector(tmp_path / "home", pd)
    im(runtime, "declare", "--sev", "SEV-2", "--title", "x", "--service", "db")
    assert runtime.store.get_incident("INC-1").assignee == "john.doe@company.com"
    result = im(runtime, "ack", "--incident", "INC-1", "--note", "Investigating")
    assert result.exit_code == 0, result.output
    [remote] = remote_incidents(pd.client())
    assert remote["assignments"][0]["assignee"]["summary"] != "John Doe"  # PD reassigned
    assert runtime.store.get_incident("INC-1").assignee == "john.doe@company.com"
    # im's own incident.triggered delivered late, after Jane took the incident over
    link = runtime.store.links("INC-1")[0]
    im(runtime, "assign", "--incident", "INC-1", "--to", "jane.smith@company.com")
    users = {u["email"]: u for u in pd.client().get("/users").json()["users"]}
    own, john = users["ops@company.com"], users["john.doe@company.com"]
    late = json.dumps({"event": {
        "id": "ELATE", "event_type": "incident.triggered", "resource_type": "incident",
        "occurred_at": (runtime.clock() + timedelta(seconds=5)).isoformat().replace(
            "+00:00", "Z"),
        "agent": {"id": own["id"], "type": "user_reference", "summary": own["name"]},
        "client": None, "data": {
            "id": link.remote_id, "type": "incident", "number": 1, "status": "triggered",
            "title": "x", "html_url": link.remote_url, "incident_key": None,
            "service": {"id": "PDAT001", "type": "service_reference"},
            "assignees": [{"id": john["id"], "type": "user_reference"}],
            "urgency": "high", "priority": None}}}).encode()
    runtime.store.store_inbox(connector="prod-pagerduty", delivery_id="ELATE",
                              event_type="incident.triggered", body=late, at=runtime.clock())
    assert process_inbox(runtime).outcomes == {"confirmed": 1}
    incident = runtime.store.get_incident("INC-1")
    assert (incident.status.value, incident.assignee) == ("mitigated", "jane.smith@company.com")


def test_a_poll_read_before_im_resolved_does_not_reopen_the_incident(tmp_path, pd):
    """`im serve` polls while it delivers: a listing read when the PagerDuty incident was
    still triggered is applied after im's resolve reached PagerDuty. It is stale, not a
    reopen."""
    import msgspec

    from im import PullRequest
    from im.inbound import apply_change

    runtime = runtime_with_connector(tmp_path / "home", pd)
    im(runtime, "declare", "--sev", "SEV-2", "--title", "x", "--service", "db")
    connector = runtime.connector("prod-pagerduty")
    read_before = connector.pull(PullRequest(cursor=runtime.store.get_cursor("prod-pagerduty")))
    assert [c.action for c in read_before.changes] == ["opened"]
    for step in ("ack", "resolve"):
        assert im(runtime, step, "--incident", "INC-1").exit_code == 0
    [link] = runtime.store.links("INC-1")
    assert link.remote_status == "resolved"
    # as if PagerDuty had stamped both in the same second: only when im read it tells
    same_second = [msgspec.structs.replace(c, occurred_at=link.remote_updated_at)
                   for c in read_before.changes]
    assert [apply_change(runtime, connector, c) for c in same_second] == ["stale"]
    assert runtime.store.get_incident("INC-1").status.value == "resolved"
    assert runtime.store.links("INC-1")[0].remote_status == "resolved"
    assert not [e for e in runtime.store.timeline("INC-1") if e.kind == "reopened"]


def _incident_event(event_id, event_type, at, link, status, agent=None):
    """A PagerDuty v3 event about the linked incident, as the sandbox would send it."""
    return json.dumps({"event": {
        "id": event_id, "event_type": event_type, "resource_type": "incident",
        "occurred_at": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "agent": agent, "client": None, "data": {
            "id": link.remote_id, "type": "incident", "number": 1, "status": status,
            "title": "x", "html_url": link.remote_url, "incident_key": None,
            "service": {"id": "PDAT001", "type": "service_reference"}, "assignees": [],
            "urgency": "high", "priority": None}}}).encode()


def _deliver_event(runtime, event_id, event_type, body):
    from im.inbound import process_inbox

    runtime.store.store_inbox(connector="prod-pagerduty", delivery_id=event_id,
                              event_type=event_type, body=body, at=runtime.clock())
    return process_inbox(runtime).outcomes


def _declared_acked_resolved(tmp_path, pd):
    runtime = runtime_with_connector(tmp_path / "home", pd)
    im(runtime, "declare", "--sev", "SEV-2", "--title", "x", "--service", "db")
    im(runtime, "ack", "--incident", "INC-1")
    im(runtime, "resolve", "--incident", "INC-1")
    [link] = runtime.store.links("INC-1")
    [remote] = remote_incidents(pd.client())
    assert link.remote_updated_at == datetime.fromisoformat(
        remote["last_status_change_at"].replace("Z", "+00:00"))  # whole seconds
    return runtime, link


def test_an_event_from_before_ims_resolve_arriving_after_it_changes_nothing(tmp_path, pd):
    """PagerDuty's ack timeout fired (incident.unacknowledged) just before im resolved the
    incident; its delivery comes after. im's push recorded when PagerDuty resolved it, by
    PagerDuty's clock, so the event is older: not a reopen."""
    from datetime import timedelta

    runtime, link = _declared_acked_resolved(tmp_path, pd)
    fired = link.remote_updated_at - timedelta(seconds=1)
    late = _incident_event("EUNACK", "incident.unacknowledged", fired, link, "triggered")
    assert _deliver_event(runtime, "EUNACK", "incident.unacknowledged", late) == {"stale": 1}
    assert runtime.store.get_incident("INC-1").status.value == "resolved"
    assert runtime.store.links("INC-1")[0].remote_status == "resolved"


def test_ims_own_echo_sharpens_the_time_to_tell_an_event_of_the_same_second(tmp_path, pd):
    """The push's answer says the second im's resolve happened in; its echo, the millisecond.
    An ack timeout 300 ms before it, delivered late, is then older, not a reopen."""
    from datetime import timedelta

    runtime, link = _declared_acked_resolved(tmp_path, pd)
    users = {u["email"]: u for u in pd.client().get("/users").json()["users"]}
    own = users["ops@company.com"]
    resolved_at = link.remote_updated_at + timedelta(milliseconds=600)
    echo = _incident_event("EECHO", "incident.resolved", resolved_at, link, "resolved",
                           agent={"id": own["id"], "type": "user_reference",
                                  "summary": own["name"]})
    assert _deliver_event(runtime, "EECHO", "incident.resolved", echo) == {"confirmed": 1}
    assert runtime.store.links("INC-1")[0].remote_updated_at == resolved_at
    fired = resolved_at - timedelta(milliseconds=300)
    late = _incident_event("EUNACK", "incident.unacknowledged", fired, link, "triggered")
    assert _deliver_event(runtime, "EUNACK", "incident.unacknowledged", late) == {"stale": 1}
    assert runtime.store.get_incident("INC-1").status.value == "resolved"


def test_with_auto_resolve_off_a_poll_does_not_resolve_either(tmp_path, pd):
    """As for webhooks: a resolve in PagerDuty leaves the im incident open; its link says
    resolved, so it is not read again."""
    from im.inbound import poll

    runtime = runtime_with_connector(tmp_path / "home", pd, auto_resolve=False)
    im(runtime, "declare", "--sev", "SEV-2", "--title", "x", "--service", "db")
    link = runtime.store.links("INC-1")[0]
    with as_john(pd) as john:
        john.put(f"/incidents/{link.remote_id}", json={"incident": {
            "type": "incident_reference", "status": "resolved"}}).raise_for_status()
    assert poll(runtime, "prod-pagerduty") == {"recorded": 1}
    assert runtime.store.get_incident("INC-1").status.value == "open"
    assert runtime.store.links("INC-1")[0].remote_status == "resolved"
    said = [e.text for e in runtime.store.timeline("INC-1") if e.kind == "sync"]
    assert said[-1] == (f"PagerDuty incident #{link.remote_number} resolved in PagerDuty"
                        " (auto_resolve is off)")
    pd.clear_requests()
    assert poll(runtime, "prod-pagerduty") == {"confirmed": 1}
    assert pd.requests("GET", "/incidents/*") == []
    assert runtime.store.get_incident("INC-1").status.value == "open"
    assert [e.text for e in runtime.store.timeline("INC-1") if e.kind == "sync"] == said


def test_with_auto_resolve_off_a_webhook_resolve_is_recorded_once(tmp_path, pd):
    """The resolve's webhook keeps the im incident open and says why on its timeline; the
    poll after it finds the link in step and adds nothing."""
    from im.inbound import poll, process_inbox

    runtime = runtime_with_connector(tmp_path / "home", pd, auto_resolve=False)
    with serve(runtime) as url:
        assert im(runtime, "connector", "webhook", "prod-pagerduty", "--enable", "--url",
                  url).exit_code == 0
        im(runtime, "declare", "--sev", "SEV-2", "--title", "x", "--service", "db")
        delivered(runtime)
        link = runtime.store.links("INC-1")[0]
        with as_john(pd) as john:
            john.put(f"/incidents/{link.remote_id}", json={"incident": {
                "type": "incident_reference", "status": "resolved"}}).raise_for_status()
        assert pd.wait_for_webhooks()
        wait_for(lambda: runtime.store.links("INC-1")[0].remote_status == "resolved")
    process_inbox(runtime)
    assert runtime.store.get_incident("INC-1").status.value == "open"
    said = [e.text for e in runtime.store.timeline("INC-1") if e.kind == "sync"]
    assert said[-1] == (f"PagerDuty incident #{link.remote_number} resolved in PagerDuty"
                        " (auto_resolve is off)")
    assert poll(runtime, "prod-pagerduty") == {"confirmed": 1}
    assert [e.text for e in runtime.store.timeline("INC-1") if e.kind == "sync"] == said


def test_out_of_order_and_duplicate_deliveries_apply_once_in_order(tmp_path, pd, caplog):
    """Events of one incident stored in the wrong order: the older one does not roll the
    state back; a replayed delivery is not applied twice."""
    import logging

    caplog.set_level(logging.INFO, logger="im.webhook")
    from datetime import timedelta

    from im.inbound import process_inbox

    runtime = runtime_with_connector(tmp_path / "home", pd)
    im(runtime, "declare", "--sev", "SEV-2", "--title", "x", "--service", "api")
    link = runtime.store.links("INC-1")[0]
    now = runtime.clock()

    def event(event_id, event_type, status, at):
        return status_event(link, event_id, event_type, status, at)

    resolved = event("E2", "incident.resolved", "resolved", now + timedelta(seconds=20))
    acknowledged = event("E1", "incident.acknowledged", "acknowledged",
                         now + timedelta(seconds=10))
    for delivery_id, body in (("E2", resolved), ("E1", acknowledged), ("E2", resolved)):
        runtime.store.store_inbox(connector="prod-pagerduty", delivery_id=delivery_id,
                                  event_type="x", body=body, at=now)
    report = process_inbox(runtime)
    assert report.processed == 2 and report.outcomes == {"applied": 1, "stale": 1}
    # each event's log line names the im incident (`im logs --filter INC-1`)
    assert sorted(r.getMessage() for r in caplog.records if r.name == "im.webhook") == [
        "x E1: stale (INC-1)", "x E2: applied (INC-1)"]
    assert runtime.store.get_incident("INC-1").status.value == "resolved"
    assert [e.kind for e in runtime.store.timeline("INC-1") if e.system == "prod-pagerduty"
            and e.kind != "sync"] == ["resolved"]
    # an older report of the state im has (as a poll gives it, in whole seconds) is no news
    runtime.store.store_inbox(connector="prod-pagerduty", delivery_id="E3", event_type="x",
                              body=event("E3", "incident.resolved", "resolved",
                                         now + timedelta(seconds=19)), at=now)
    assert process_inbox(runtime).outcomes == {"confirmed": 1}


def test_one_of_several_linked_incidents_resolved_then_reopened_is_on_the_timeline(
        tmp_path, pd):
    from im.inbound import poll

    runtime = runtime_with_connector(tmp_path / "home", pd)
    im(runtime, "declare", "--sev", "SEV-1", "--title", "x", "--service", "api,db")
    api = next(link for link in runtime.store.links("INC-1") if link.service == "api")
    with as_john(pd) as john:
        for status in ("resolved", "triggered"):
            john.put(f"/incidents/{api.remote_id}", json={"incident": {
                "type": "incident_reference", "status": status}}).raise_for_status()
            assert poll(runtime, "prod-pagerduty")["applied"] == 1
    lines = [e.text for e in runtime.store.timeline("INC-1") if e.kind == "sync"
             and e.system == "prod-pagerduty" and "(api)" in e.text]
    assert [line.split(") ", 1)[1] for line in lines] == [
        "resolved; 1 of 2 linked incidents still open", "reopened"]
    assert runtime.store.get_incident("INC-1").status.value == "open"


def test_a_state_reported_in_whole_seconds_is_not_older_than_a_webhook_of_that_second(
        tmp_path, pd):
    """An acknowledgement by webhook at hh:mm:ss.600, a resolve at .800 that only a poll
    finds (PagerDuty's REST times are whole seconds): the resolve is applied, not stale."""
    from datetime import timedelta

    from im.inbound import process_inbox

    runtime = runtime_with_connector(tmp_path / "home", pd)
    im(runtime, "declare", "--sev", "SEV-2", "--title", "x", "--service", "api")
    link = runtime.store.links("INC-1")[0]
    second = runtime.clock().replace(microsecond=0) + timedelta(seconds=10)

    def event(event_id, event_type, status, at):
        return status_event(link, event_id, event_type, status, at)

    for delivery_id, body in (
            ("A", event("A", "incident.acknowledged", "acknowledged",
                        second + timedelta(milliseconds=600))),
            ("R", event("R", "incident.resolved", "resolved", second))):
        runtime.store.store_inbox(connector="prod-pagerduty", delivery_id=delivery_id,
                                  event_type="x", body=body, at=runtime.clock())
        process_inbox(runtime)
    assert runtime.store.get_incident("INC-1").status.value == "resolved"


def test_a_source_over_the_rate_limit_is_told_to_retry_and_nothing_of_it_is_stored(tmp_path, pd):
    import time

    home = tmp_path / "home"
    runtime = runtime_with_connector(home, pd)
    runtime.update_connector_settings("prod-pagerduty", {
        "enable_webhook": True, "custom.webhook_secrets": ["rate-secret"]})
    home.mkdir(exist_ok=True)  # the database may be elsewhere (PostgreSQL): no file made it
    (home / "settings.json").write_text(json.dumps({"server": {"webhook_rate_limit": 3}}))

    def event(n):
        body = json.dumps({"event": {
            "id": f"01RATE{n:04d}", "event_type": "pagey.ping", "resource_type": "pagey",
            "occurred_at": pd_time(), "agent": None, "client": None,
            "data": {}}}).encode()
        return body, {"X-PagerDuty-Signature": sign("rate-secret", body)}

    with serve(runtime, background=False) as url, httpx.Client(base_url=url) as client:
        answers = [client.post("/connectors/prod-pagerduty/webhook", content=body,
                               headers=headers) for body, headers in map(event, range(20))]
        statuses = [a.status_code for a in answers]
        assert set(statuses) == {202, 429}, statuses
        refused = [a for a in answers if a.status_code == 429]
        assert all(a.headers["retry-after"] == "1" for a in refused)
        assert refused[0].json() == {"error": "too many requests; retry after a second"}
        accepted = {n for n, status in enumerate(statuses) if status == 202}
        assert {int(r.delivery_id[6:]) for r in runtime.store.inbox()} == accepted
        # the sender's retry a second later goes through
        time.sleep(1.1)
        body, headers = event(statuses.index(429))
        assert client.post("/connectors/prod-pagerduty/webhook", content=body,
                           headers=headers).status_code == 202
        text = client.get("/metrics").text
        assert (f'im_webhook_requests_total{{connector="prod-pagerduty",'
                f'outcome="rate_limited"}} {float(len(refused))}') in text


def test_a_change_made_through_an_integration_names_it_on_the_timeline(live, pd):
    """A responder acting through an integration (Slack): the sandbox's events name it as
    their `client`, and the timeline lines they write say which; one made in PagerDuty itself
    reads as before. Signed deliveries from the sandbox, through im serve."""
    runtime, _ = live
    im(runtime, "declare", "--sev", "SEV-2", "--title", "x", "--service", "db")
    delivered(runtime)
    settled(pd, runtime)
    [link] = runtime.store.links("INC-1")
    jane = "jane.smith@company.com"
    with pd.client(from_email=jane, via="Slack") as slack, \
            pd.client(from_email=jane, via="PagerDuty") as web:
        for client, change in ((slack, {"priority": "P1"}), (slack, {"status": "acknowledged"}),
                               (web, {"priority": "P2"})):
            client.put(f"/incidents/{link.remote_id}", json={"incident": {
                "type": "incident_reference", **change}}).raise_for_status()
            settled(pd, runtime)  # one at a time, as a responder makes them
    assert [e["body"]["event"]["client"] for e in pd.events()
            if e["event_type"] in ("incident.priority_updated", "incident.acknowledged")] == [
        {"name": "Slack"}, {"name": "Slack"}, {"name": "PagerDuty"}]
    assert runtime.store.inbox(statuses=("quarantined",)) == []
    lines = [(e.actor, e.text) for e in runtime.store.timeline("INC-1")
             if e.system == "prod-pagerduty" and e.actor == jane]
    assert lines == [
        (jane, "PagerDuty incident #1 priority set to P1 (SEV-1) (via Slack)"),
        (jane, "Severity changed from SEV-2 to SEV-1"),
        (jane, "Assigned to jane.smith@company.com"),  # PagerDuty's ack assigns her
        (jane, "Acknowledged by jane.smith@company.com: via Slack"),
        (jane, "PagerDuty incident #1 priority set to P2 (SEV-2)"),
        (jane, "Severity changed from SEV-1 to SEV-2"),
    ]
