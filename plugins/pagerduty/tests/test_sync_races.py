"""What a link claims to know, against what happened in PagerDuty meanwhile: a push's answer,
an "already in that state" answer, an incident PagerDuty lost and found again, a create whose
answer was lost. In each case a responder's change must still reach the im incident."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec

from im import ChangeKind, InboundChange, incidents
from im.models import Action
from im.inbound import apply_change, poll
from im.sync import deliver_outbox
from im.testing import FakeClock

from .connector_kit import im, runtime_with_connector

CONNECTOR = "prod-pagerduty"


def _as_john(pd):
    return pd.client(from_email="john.doe@company.com")


def _set_status(pd, remote_id: str, status: str) -> None:
    with _as_john(pd) as john:
        john.put(f"/incidents/{remote_id}", json={"incident": {
            "type": "incident_reference", "status": status}}).raise_for_status()


def _remote(pd, remote_id: str) -> dict:
    with pd.client() as api:
        return api.get(f"/incidents/{remote_id}").json()["incident"]


def _pd_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _mark_missing(runtime, link) -> None:
    connector = runtime.connector(CONNECTOR)
    change = InboundChange(remote_id=link.remote_id, event_id="poll:missing",
                           action=ChangeKind.MISSING, occurred_at=runtime.clock(), actor="PagerDuty",
                           text="not found in PagerDuty")
    assert apply_change(runtime, connector, change) == "recorded"


def test_a_severity_change_does_not_hide_a_responders_acknowledgement(tmp_path, pd):
    runtime = runtime_with_connector(tmp_path / "home", pd)
    im(runtime, "declare", "--sev", "SEV-2", "--title", "x", "--service", "db")
    [link] = runtime.store.links("INC-1")
    _set_status(pd, link.remote_id, "acknowledged")  # its webhook has not come in yet
    assert im(runtime, "severity", "--incident", "INC-1", "--sev", "SEV-1").exit_code == 0
    assert runtime.store.links("INC-1")[0].remote_status == "open"
    assert poll(runtime, CONNECTOR) == {"applied": 1}
    assert runtime.store.get_incident("INC-1").status.value == "mitigated"


def test_an_already_in_that_state_answer_records_when_pagerduty_changed_it(tmp_path, pd):
    runtime = runtime_with_connector(tmp_path / "home", pd)
    im(runtime, "declare", "--sev", "SEV-2", "--title", "x", "--service", "db")
    [link] = runtime.store.links("INC-1")
    pd.advance_clock(60)  # John acknowledges a minute after im created it
    _set_status(pd, link.remote_id, "acknowledged")
    acked = im(runtime, "ack", "--incident", "INC-1")
    assert "was already acknowledged" in acked.stdout
    [after] = runtime.store.links("INC-1")
    remote = _remote(pd, link.remote_id)
    assert (after.remote_status, after.remote_updated_at) == (
        "acknowledged", _pd_time(remote["last_status_change_at"]))


def _declared_then_missing(home, pd):
    """INC-1 linked to a PagerDuty incident that a poll ten minutes later did not find (the
    key pointed at another account for a while)."""
    clock = FakeClock(datetime.now(UTC))
    runtime = runtime_with_connector(home, pd, clock=clock)
    im(runtime, "declare", "--sev", "SEV-2", "--title", "x", "--service", "db")
    [link] = runtime.store.links("INC-1")
    clock.advance(minutes=10)
    _mark_missing(runtime, link)
    return runtime, clock, link


def test_an_incident_marked_missing_is_restored_when_a_listing_shows_it(tmp_path, pd):
    runtime, _, _ = _declared_then_missing(tmp_path / "home", pd)
    assert poll(runtime, CONNECTOR) == {"confirmed": 1}
    assert runtime.store.links("INC-1")[0].remote_status == "open"


def test_a_missing_linked_incident_does_not_keep_the_im_incident_open(tmp_path, pd):
    """Of a two-service incident's PagerDuty incidents, one is gone (PagerDuty does not know
    it): the other's resolve resolves the im incident."""
    clock = FakeClock(datetime.now(UTC))
    runtime = runtime_with_connector(tmp_path / "home", pd, clock=clock)
    im(runtime, "declare", "--sev", "SEV-2", "--title", "x", "--service", "db,api")
    gone, kept = runtime.store.links("INC-1")
    runtime.store.upsert_link(msgspec.structs.replace(gone, remote_id="QNOSUCHINCIDENT"))
    _set_status(pd, gone.remote_id, "resolved")  # the one it stood for: listed nowhere
    # an hour later: both created before the cursor, so only the open listing shows them
    runtime.store.set_cursor(CONNECTOR, clock.advance(hours=1).isoformat(), at=clock())
    pd.advance_clock(3600)  # PagerDuty's clock is im's
    assert poll(runtime, CONNECTOR) == {"confirmed": 1, "recorded": 1}
    assert runtime.store.get_incident("INC-1").status.value == "open"
    _set_status(pd, kept.remote_id, "resolved")  # found in PagerDuty's log of changes
    clock.advance(minutes=5)
    pd.advance_clock(300)
    assert poll(runtime, CONNECTOR) == {"applied": 1}
    assert runtime.store.get_incident("INC-1").status.value == "resolved"


def test_a_responders_note_with_the_same_words_does_not_stand_for_ims(tmp_path, pd,
                                                                       quick_retries):
    runtime = runtime_with_connector(tmp_path / "home", pd)
    im(runtime, "declare", "--sev", "SEV-2", "--title", "x", "--service", "db")
    [link] = runtime.store.links("INC-1")
    incidents.add_note(runtime, "INC-1", "Restarted the primary")
    pd.set_faults(burst_5xx=1)  # not posted: PagerDuty failed before doing anything
    assert deliver_outbox(runtime).retrying == 1
    pd.clear_faults()
    with _as_john(pd) as john:
        john.post(f"/incidents/{link.remote_id}/notes", json={"note": {
            "content": "Restarted the primary"}}).raise_for_status()
    assert deliver_outbox(runtime, due_only=False).delivered == 1
    with pd.client() as api:
        notes = api.get(f"/incidents/{link.remote_id}/notes").json()["notes"]
    assert sorted((n["content"], n["user"]["summary"]) for n in notes) == [
        ("Restarted the primary", "John Doe"), ("Restarted the primary", "Operations")]


def test_a_responders_ack_of_an_incident_im_made_before_its_link_is_applied(tmp_path, pd):
    """im's create reached PagerDuty but its answer was lost; John acknowledged the incident
    before im tried again. The poll finds it by im's key: the ack is applied, and the retried
    create links it without claiming it is still triggered."""
    runtime = runtime_with_connector(tmp_path / "home", pd)
    incident = incidents.declare(runtime, title="x", severity="SEV-2", services=["db"])
    with _as_john(pd) as john:
        made = john.post("/incidents", json={"incident": {
            "type": "incident", "title": "x", "incident_key": f"im-{incident.correlation_id}-db",
            "service": {"id": "PDAT001", "type": "service_reference"}}}).json()["incident"]
    _set_status(pd, made["id"], "acknowledged")
    assert poll(runtime, CONNECTOR) == {"applied": 1}
    assert runtime.store.get_incident(incident.id).status.value == "mitigated"
    assert deliver_outbox(runtime, due_only=False).delivered == 1
    [link] = runtime.store.links(incident.id)
    assert (link.remote_id, link.remote_status) == (made["id"], "acknowledged")


def test_a_second_pagerduty_incident_with_ims_key_is_not_followed(tmp_path, pd):
    """PagerDuty refuses a second incident with im's key only while the first is open: one
    made later (by hand, say) does not take the first one's link over."""
    runtime = runtime_with_connector(tmp_path / "home", pd)
    im(runtime, "declare", "--sev", "SEV-2", "--title", "x", "--service", "db")
    [link] = runtime.store.links("INC-1")
    incident = runtime.store.get_incident("INC-1")
    _set_status(pd, link.remote_id, "resolved")
    assert poll(runtime, CONNECTOR) == {"applied": 1}
    with _as_john(pd) as john:
        other = john.post("/incidents", json={"incident": {
            "type": "incident", "title": "again", "incident_key": f"im-{incident.correlation_id}-db",
            "service": {"id": "PDAT001", "type": "service_reference"}}}).json()["incident"]
    assert poll(runtime, CONNECTOR)["unlinked"] == 1
    assert [(l.remote_id, l.remote_status) for l in runtime.store.links("INC-1")] == [
        (link.remote_id, "resolved")]
    assert runtime.store.get_incident("INC-1").status.value == "resolved"
    assert other["id"] != link.remote_id


def test_an_incident_seen_again_does_not_reopen_what_im_resolved_meanwhile(tmp_path, pd):
    runtime, clock, link = _declared_then_missing(tmp_path / "home", pd)
    clock.advance(minutes=10)
    incidents.transition(runtime, "INC-1", Action.RESOLVE)  # its push waits
    assert poll(runtime, CONNECTOR) == {"recorded": 1}
    assert runtime.store.get_incident("INC-1").status.value == "resolved"
    assert runtime.store.timeline("INC-1")[-1].text == (
        f"{CONNECTOR} incident #{link.remote_number} (db) found again, open; im's resolve for"
        " it is queued")
    assert runtime.store.links("INC-1")[0].remote_status == "open"
    assert deliver_outbox(runtime, due_only=False).delivered == 1
    assert _remote(pd, link.remote_id)["status"] == "resolved"


def test_an_incident_seen_again_open_reopens_one_resolved_without_it(tmp_path, pd):
    """db resolved in PagerDuty while api's incident was missing: the im incident resolved.
    When api's is seen again, still open, im did not resolve it: the im incident reopens, as
    PagerDuty says, rather than stay resolved with PagerDuty open and nothing queued."""
    clock = FakeClock(datetime.now(UTC))
    runtime = runtime_with_connector(tmp_path / "home", pd, clock=clock)
    im(runtime, "declare", "--sev", "SEV-2", "--title", "x", "--service", "db,api")
    links = {link.service: link for link in runtime.store.links("INC-1")}
    clock.advance(minutes=10)
    _mark_missing(runtime, links["api"])
    _set_status(pd, links["db"].remote_id, "resolved")
    resolved = InboundChange(remote_id=links["db"].remote_id, event_id="EDBRESOLVED",
                             action="resolved", occurred_at=clock(), actor="John Doe")
    assert apply_change(runtime, runtime.connector(CONNECTOR), resolved) == "applied"
    assert runtime.store.get_incident("INC-1").status.value == "resolved"
    clock.advance(minutes=5)
    assert poll(runtime, CONNECTOR)["applied"] == 1  # api, listed again, still open
    assert runtime.store.get_incident("INC-1").status.value == "open"
    links = {link.service: link for link in runtime.store.links("INC-1")}
    assert links["api"].remote_status == "open"


def test_a_poll_with_a_cursor_a_year_old_splits_its_range_and_never_stalls(tmp_path, pd):
    """PagerDuty refuses a listing over more than 6 months (400, code 2005). A connector whose
    last poll was a year ago (im serve stopped for a year, a restored backup) asks in windows
    PagerDuty accepts: the poll succeeds, sees what was created meanwhile, and moves the
    cursor, instead of failing the same way on every poll for good."""
    runtime = runtime_with_connector(tmp_path / "home", pd)
    created = pd.bulk_incidents(3, status="triggered", span_seconds=330 * 86400)  # 330, 220,
    # and 110 days ago
    year_ago = datetime.now(UTC).replace(microsecond=0) - timedelta(days=365)
    runtime.store.set_cursor(CONNECTOR, year_ago.isoformat(), at=year_ago)
    pd.clear_requests()
    assert poll(runtime, CONNECTOR) == {"created": 3}
    assert sorted(i.title for i in runtime.store.list_incidents()) == [
        f"Load test incident {n}" for n in (1, 2, 3)]
    assert created["created"] == 3
    listings = pd.requests("GET", "/incidents")
    assert listings and all(r["status"] == 200 for r in listings), listings
    assert datetime.fromisoformat(runtime.store.get_cursor(CONNECTOR)) > year_ago + timedelta(
        days=364)


def test_an_account_in_another_time_zone_is_read_right(tmp_path, pd):
    """PagerDuty renders REST times in the account's time zone, with its offset (here
    -05:00): im reads each as the instant it is, so a responder's resolve read by a poll is
    newer than im's own ack, whose time came back from PagerDuty with that offset, and is
    applied, not taken for stale."""
    pd.configure(time_zone="America/Lima")
    try:
        runtime = runtime_with_connector(tmp_path / "home", pd)
        im(runtime, "declare", "--sev", "SEV-2", "--title", "x", "--service", "db")
        im(runtime, "ack", "--incident", "INC-1")
        [link] = runtime.store.links("INC-1")
        assert link.remote_status == "acknowledged"
        with _as_john(pd) as john:
            remote = john.get(f"/incidents/{link.remote_id}").json()["incident"]
            assert remote["created_at"].endswith("-05:00")
            john.put(f"/incidents/{link.remote_id}", json={"incident": {
                "type": "incident_reference", "status": "resolved"}}).raise_for_status()
        assert poll(runtime, CONNECTOR) == {"applied": 1}
        assert runtime.store.get_incident("INC-1").status.value == "resolved"
        resolved_at = runtime.store.links("INC-1")[0].remote_updated_at
        assert resolved_at is not None and resolved_at.utcoffset() is not None
        assert abs((datetime.now(UTC) - resolved_at).total_seconds()) < 60
    finally:
        pd.configure(time_zone="UTC")


def test_a_note_said_again_a_month_later_is_posted_though_the_first_was_forgotten(
        tmp_path, pd, quick_retries):
    """Delivered changes are forgotten after `retention.outbox_days`; the same words noted
    again a month later, whose first attempt failed, must still be posted on the retry: the
    month-old note on the PagerDuty incident is not this change's (it was taken for it, and
    the new note never reached PagerDuty)."""
    from datetime import timedelta

    from im import housekeeping

    clock = FakeClock(datetime.now(UTC))
    runtime = runtime_with_connector(tmp_path / "home", pd, clock=clock)
    im(runtime, "declare", "--sev", "SEV-2", "--title", "x", "--service", "db")
    [link] = runtime.store.links("INC-1")
    incidents.add_note(runtime, "INC-1", "Still investigating")
    incidents.add_note(runtime, "INC-1", "Replica lag checked")  # the latest, which stays
    assert deliver_outbox(runtime).delivered == 2
    clock.advance(days=31)
    pd.advance_clock(31 * 86400)
    assert housekeeping.purge(runtime)["outbox"] >= 1
    assert not [r for r in runtime.store.outbox()
                if r.payload.get("note") == "Still investigating"]
    incidents.add_note(runtime, "INC-1", "Still investigating")
    pd.set_faults(burst_5xx=2)  # the first attempt fails (and its quick retry)
    assert deliver_outbox(runtime).retrying == 1
    pd.clear_faults()
    assert deliver_outbox(runtime, due_only=False).delivered == 1
    with pd.client() as api:
        notes = api.get(f"/incidents/{link.remote_id}/notes").json()["notes"]
    assert [n["content"] for n in notes].count("Still investigating") == 2
