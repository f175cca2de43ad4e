"""PagerDuty's limits met for real: the client waits them out as PagerDuty says (these tests
sleep for real, briefly; elsewhere retries are made quick)."""

import json
from datetime import UTC, datetime

import pytest

from .connector_kit import im, runtime_with_connector


def test_a_burst_of_creates_stays_within_the_incident_creation_limit(tmp_path, pd):
    """PagerDuty limits incident creation per account far below its general limit ("human
    speed"). An incident on six services is six creates at once; at 3 creates per 2 s those
    over the limit wait PagerDuty's reset out, within the command's time, and every one is
    created exactly once: none fails, none is queued, none doubles."""
    pd.configure(operation_limits={"POST /incidents": {"limit": 3, "window_seconds": 2}})
    runtime = runtime_with_connector(tmp_path / "home", pd)
    result = im(runtime, "declare", "--sev", "SEV-2", "--title", "Region down",
                "--service", "api,db,web,search,auth,billing")
    assert result.exit_code == 0, result.output
    assert "queued" not in result.output
    assert {r.status for r in runtime.store.outbox()} == {"done"}
    creates = pd.requests(method="POST", path="/incidents")
    assert [r["status"] for r in creates] == [201] * 6  # waited before, never refused
    assert len({link.remote_id for link in runtime.store.links("INC-1")}) == 6
    runtime.store.close()


@pytest.mark.usefixtures("quick_retries")
def test_applying_events_never_waits_a_rate_limit_out_past_its_hold_on_them(tmp_path, pd):
    """Stored events are held for INBOX_LEASE_SECONDS by the process applying them; a user
    look-up that meets a minute-long rate limit must not outlast that hold (another process
    would take the same events over). The events are left for a later pass, not quarantined,
    and applied once PagerDuty answers."""
    from im.inbound import process_inbox
    from im_pagerduty import directory

    runtime = runtime_with_connector(tmp_path / "home", pd)
    im(runtime, "declare", "--sev", "SEV-2", "--title", "Checkout errors", "--service", "api")
    [link] = runtime.store.links("INC-1")
    jane = next(u for u in pd.client().get("/users").json()["users"]
                if u["email"] == "jane.smith@company.com")
    directory.forget(runtime.connector("prod-pagerduty").client)
    runtime.store.store_inbox(connector="prod-pagerduty", delivery_id="01LATE",
                              event_type="incident.acknowledged",
                              body=_acknowledged_by(link, jane["id"]), at=runtime.clock())
    pd.set_faults(storm_429=1, storm_429_reset_seconds=60, paths=[f"/users/{jane['id']}"])
    pd.clear_requests()
    report = process_inbox(runtime)
    assert (report.processed, report.quarantined) == (0, 0), report
    # asked once, and not again within the pass: the minute was not waited out
    assert len(pd.requests(method="GET", path=f"/users/{jane['id']}")) == 1
    [row] = runtime.store.inbox(connector="prod-pagerduty")
    assert row.status == "pending"
    pd.clear_faults()
    assert process_inbox(runtime).outcomes == {"applied": 1}
    ack = [e for e in runtime.store.timeline("INC-1") if e.kind == "acknowledged"]
    assert [e.actor for e in ack] == ["jane.smith@company.com"]
    runtime.store.close()


def _acknowledged_by(link, agent_id):
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return json.dumps({"event": {
        "id": "01LATE", "event_type": "incident.acknowledged", "resource_type": "incident",
        "occurred_at": now, "agent": {"id": agent_id, "type": "user_reference"},
        "client": None, "data": {
            "id": link.remote_id, "type": "incident", "number": 1, "status": "acknowledged",
            "title": "Checkout errors", "html_url": link.remote_url, "incident_key": None,
            "service": {"id": "PAPI001", "type": "service_reference"}, "assignees": [],
            "urgency": "high", "priority": None}}}).encode()


def test_a_poll_waits_a_reset_of_45_seconds_out_whole_once(tmp_path, pd, monkeypatch):
    """A poll has no command's deadline: a 429 whose `ratelimit-reset` is 45 s (PagerDuty's
    go up to a minute) is waited out in one wait of 45 s, then the listing is asked again and
    answered; never cut short into another 429. The wait is recorded, not slept."""
    from im.inbound import poll
    from im_pagerduty.connector import PagerDutyConnector

    slept: list[float] = []
    monkeypatch.setattr(PagerDutyConnector, "client_options", {"sleep": slept.append})
    runtime = runtime_with_connector(tmp_path / "home", pd)
    pd.set_faults(storm_429=1, storm_429_reset_seconds=45, paths=["/incidents"])
    pd.clear_requests()
    assert poll(runtime, "prod-pagerduty") == {}
    listings = pd.requests(method="GET", path="/incidents")
    assert [r["status"] for r in listings] == [429, 200, 200]  # new, then open ones
    assert len(slept) == 1 and 45 <= slept[0] <= 45.25, slept  # the reset, and some jitter
    assert runtime.store.get_cursor("prod-pagerduty") is not None
    runtime.store.close()
