"""What a poll reads of im's own records: the links it can learn something about (those
im believes open, and those the listings name), never every link the connector ever made."""

from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from im.inbound import poll
from im.models import Link, Severity
from im.testing import FakeClock

from .connector_kit import im, runtime_with_connector, stored

RESOLVED_LONG_AGO = 300


def _links_module(runtime):
    """The module of the store's links repository, whose `_link` makes a Link of each row
    read."""
    if runtime.store.kind == "postgresql":
        import im.storage.postgres.repositories as module
    else:
        import im.storage.sqlite.links as module
    return module


def test_a_poll_over_years_of_resolved_links_reads_only_the_open_ones(tmp_path, pd,
                                                                       monkeypatch):
    """A home whose connector linked hundreds of incidents, all resolved but two: a poll
    reads those two (one of which PagerDuty resolved meanwhile, read by itself and applied),
    and none of the resolved links."""
    clock = FakeClock(datetime.now(UTC))
    runtime = runtime_with_connector(tmp_path / "home", pd, clock=clock)
    stored_links = _links_module(runtime)
    for title in ("still open", "resolved in PagerDuty"):
        im(runtime, "declare", "--sev", "SEV-1", "--title", title, "--service", "db")
    open_link = runtime.store.links("INC-1")[0]
    resolved = runtime.store.links("INC-2")[0]
    with pd.client(from_email="john.doe@company.com") as john:
        john.put(f"/incidents/{resolved.remote_id}", json={"incident": {
            "type": "incident_reference", "status": "resolved"}}).raise_for_status()
    # the history: incidents of the last months, their PagerDuty incidents resolved
    store = runtime.store
    for n in range(RESOLVED_LONG_AGO):
        old = store.insert_incident(title=f"old {n}", description="", severity=Severity.SEV3,
                                    services=["db"], fields={}, correlation_id=f"old-{n}",
                                    created_by="alice", at=clock())
        store.upsert_link(Link(incident_id=old.id, connector="prod-pagerduty", service="db",
                               remote_id=f"QOLD{n:05}", remote_number=str(1000 + n),
                               remote_status="resolved", updated_at=clock()))
    # an hour later, both created before the cursor: only the open listing shows INC-1
    store.set_cursor("prod-pagerduty", clock.advance(hours=1).isoformat(), at=clock())
    read: list[str] = []
    link_of_row = stored_links._link

    def counted(row):
        link = link_of_row(row)
        read.append(link.remote_id)
        return link

    monkeypatch.setattr(stored_links, "_link", counted)
    pd.clear_requests()
    assert poll(runtime, "prod-pagerduty") == {"applied": 1, "confirmed": 1}
    assert store.get_incident("INC-2").status.value == "resolved"
    assert store.get_incident("INC-1").status.value == "open"
    assert [r["path"] for r in pd.requests("GET", "/incidents/*")] == [
        f"/incidents/{resolved.remote_id}"]
    # what the store gave: the two open links (each maybe more than once), nothing else
    assert set(read) == {open_link.remote_id, resolved.remote_id}, sorted(set(read))[:5]
    runtime.store.close()


def test_the_links_a_poll_reads_do_not_grow_with_resolved_history(tmp_path, pd, monkeypatch,
                                                                    new_database):
    """The same poll over 10 and over 300 resolved links reads the same number of links."""
    counts = []
    for size in (10, RESOLVED_LONG_AGO):
        clock = FakeClock(datetime.now(UTC))
        new_database()  # each home a database of its own (on PostgreSQL too)
        runtime = runtime_with_connector(tmp_path / f"home{size}", pd, clock=clock)
        stored_links = _links_module(runtime)
        im(runtime, "declare", "--sev", "SEV-1", "--title", "open", "--service", "db")
        store = runtime.store
        for n in range(size):
            old = store.insert_incident(title=f"old {n}", description="",
                                        severity=Severity.SEV3, services=["db"], fields={},
                                        correlation_id=f"old-{size}-{n}", created_by="alice",
                                        at=clock())
            store.upsert_link(Link(incident_id=old.id, connector="prod-pagerduty",
                                   service="db", remote_id=f"Q{size}X{n:05}",
                                   remote_status="resolved", updated_at=clock()))
        store.set_cursor("prod-pagerduty", clock.advance(hours=1).isoformat(), at=clock())
        read = []
        link_of_row = stored_links._link
        monkeypatch.setattr(stored_links, "_link",
                            lambda row, of=link_of_row, into=read: into.append(1) or of(row))
        poll(runtime, "prod-pagerduty")
        monkeypatch.setattr(stored_links, "_link", link_of_row)
        counts.append(len(read))
        # its own PagerDuty incident resolved for the next home's listing to stay the same
        [link] = store.links("INC-1")
        with pd.client(from_email="john.doe@company.com") as john:
            john.put(f"/incidents/{link.remote_id}", json={"incident": {
                "type": "incident_reference", "status": "resolved"}}).raise_for_status()
        store.close()
    assert counts[0] == counts[1] and counts[0] > 0, counts


def test_an_open_link_of_an_incident_older_than_the_listing_range_is_not_read_by_itself(
        tmp_path, pd):
    """The horizon still holds: an open link of an incident declared before PagerDuty's
    listing range (6 months) is not asked about one by one."""
    from datetime import timedelta

    clock = FakeClock(datetime.now(UTC))
    runtime = runtime_with_connector(tmp_path / "home", pd, clock=clock)
    im(runtime, "declare", "--sev", "SEV-1", "--title", "x", "--service", "db")
    [link] = runtime.store.links("INC-1")
    runtime.store.upsert_link(msgspec.structs.replace(link, remote_id="QNOTLISTED"))
    runtime.store.set_cursor("prod-pagerduty",
                             clock.advance(days=200).isoformat(), at=clock())
    pd.clear_requests()
    poll(runtime, "prod-pagerduty")
    assert pd.requests("GET", "/incidents/*") == []
    assert clock() - runtime.store.get_incident("INC-1").created_at > timedelta(days=180)
    runtime.store.close()


def test_incidents_linked_stays_a_real_count_through_merges_polls_and_removal(tmp_path, pd):
    """The count of incidents linked that /metrics and `im metrics connector` read is kept
    as links change: it equals a real count of the links after incidents are declared for
    two services, a link follows the incident its own was merged into, another is kept as
    merged, a poll makes a new incident, and the connector is removed (links stay)."""
    from im import observability
    from im.app.connectors import remove

    from .test_merges import made_in_pagerduty, merge

    runtime = runtime_with_connector(tmp_path / "home", pd)

    def kept_and_real():
        kept = runtime.store.read().links.incidents_linked("prod-pagerduty")
        [(real,)] = stored(tmp_path / "home", "SELECT count(DISTINCT number) FROM links"
                                              " WHERE connector = 'prod-pagerduty'")
        return kept, real

    im(runtime, "declare", "--sev", "SEV-1", "--title", "two", "--service", "api,db")
    im(runtime, "declare", "--sev", "SEV-2", "--title", "one", "--service", "api")
    assert kept_and_real() == (2, 2)
    assert observability.metrics(runtime, "prod-pagerduty").total_incidents == 2
    both = {link.service: link for link in runtime.store.links("INC-1")}
    [single] = runtime.store.links("INC-2")
    survivor = made_in_pagerduty(pd)
    merge(pd, survivor["id"], single.remote_id)  # INC-2 follows the survivor
    merge(pd, both["db"].remote_id, both["api"].remote_id)  # INC-1's api link kept as merged
    made_in_pagerduty(pd, title="Search is slow", service="PAPI001")  # becomes INC-3
    poll(runtime, "prod-pagerduty")
    [moved] = runtime.store.links("INC-2")
    assert moved.remote_id == survivor["id"]
    assert {link.remote_status for link in runtime.store.links("INC-1")} == {
        "merged", "open"}
    assert kept_and_real() == (3, 3)
    assert observability.metrics(runtime, "prod-pagerduty").total_incidents == 3
    remove(runtime, "prod-pagerduty")
    assert kept_and_real() == (3, 3)
    runtime.store.close()



@pytest.mark.parametrize(("ceiling", "open_count"), [(500, 550), (10_000, 10_050)],
                         ids=["ceiling-lowered", "pagerduty-size"])
def test_a_poll_over_more_open_incidents_than_one_listing_reaches_succeeds(
        tmp_path, pd, monkeypatch, ceiling, open_count):
    """More incidents open in PagerDuty than one listing reaches (offset + limit at most
    10,000), created over the last 90 days: the open ones are listed by time windows, never
    past the cap, and the poll moves the cursor (listed by offset alone every poll failed,
    the cursor stuck). Once at PagerDuty's own size, once with the cap lowered in the sandbox
    and the connector alike, which shows the same in a fraction of the time."""
    from urllib.parse import parse_qs

    from im_pagerduty import client

    if ceiling != client.OFFSET_CEILING:
        pd.configure(offset_ceiling=ceiling)
        monkeypatch.setattr(client, "OFFSET_CEILING", ceiling)
    pd.bulk_incidents(open_count, status="triggered", service_id="PAPI001",
                      span_seconds=90 * 86400)
    runtime = runtime_with_connector(tmp_path / "home", pd)
    # the cursor at now: every one of them is older, so only the open listing shows them
    before = runtime.clock().isoformat()
    runtime.store.set_cursor("prod-pagerduty", before, at=runtime.clock())
    pd.clear_requests()
    outcomes = poll(runtime, "prod-pagerduty")
    assert outcomes == {"created": open_count}, outcomes
    assert runtime.store.get_cursor("prod-pagerduty") > before
    listings = pd.requests("GET", "/incidents")
    assert listings and all(r["status"] == 200 for r in listings)
    reach = [int(q["offset"][0]) + int(q["limit"][0])
             for q in (parse_qs(r["query"]) for r in listings)]
    assert max(reach) <= ceiling, max(reach)
    runtime.store.close()


def _swept(pd) -> bool:
    """Whether the sandbox answered a listing of open incidents (the hourly sweep)."""
    return any("statuses" in r["query"] for r in pd.requests("GET", "/incidents"))


def test_between_sweeps_a_poll_finds_changes_in_pagerdutys_log_whatever_is_open(tmp_path,
                                                                                 pd):
    """Two hundred incidents open in PagerDuty, all older than the cursor, and a responder
    acknowledges one: the poll finds it in PagerDuty's log of changes, with one listing of
    the log and none of the open incidents, as it would with two or two hundred thousand.
    The open incidents are listed again once an hour (the sweep), and then only."""
    pd.bulk_incidents(200, status="triggered", service_id="PAPI001", span_seconds=30 * 86400)
    clock = FakeClock(datetime.now(UTC))
    runtime = runtime_with_connector(tmp_path / "home", pd, clock=clock)
    runtime.store.set_cursor("prod-pagerduty", clock().isoformat(), at=clock())
    pd.clear_requests()
    assert poll(runtime, "prod-pagerduty") == {"created": 200}  # the first poll sweeps
    assert _swept(pd)
    [link] = runtime.store.links("INC-7")
    with pd.client(from_email="john.doe@company.com") as john:
        john.put(f"/incidents/{link.remote_id}", json={"incident": {
            "type": "incident_reference", "status": "acknowledged"}}).raise_for_status()
    clock.now = datetime.now(UTC) + timedelta(seconds=1)  # PagerDuty's clock is im's
    pd.clear_requests()
    assert poll(runtime, "prod-pagerduty") == {"applied": 1}
    assert runtime.store.links("INC-7")[0].remote_status == "acknowledged"
    assert not _swept(pd)
    assert len(pd.requests("GET", "/log_entries")) == 1
    assert pd.requests("GET", "/incidents/*") == []  # no call per incident
    clock.advance(minutes=59)
    pd.clear_requests()
    # the ack again at most (the poll re-reads the 30 s before its cursor), known already
    assert poll(runtime, "prod-pagerduty") in ({}, {"confirmed": 1})
    assert not _swept(pd)
    clock.advance(minutes=2)
    poll(runtime, "prod-pagerduty")
    assert _swept(pd)
    runtime.store.close()


def test_a_poll_reads_more_changes_than_one_listing_of_the_log_reaches(tmp_path, pd,
                                                                       monkeypatch):
    """More changes since the last poll than one listing of the log reaches (offset + limit
    at most 10,000; lowered here in the sandbox and the connector alike): the log is listed
    again up to the oldest entry seen, never past the cap, and every change is applied."""
    from urllib.parse import parse_qs

    from im_pagerduty import client

    pd.configure(offset_ceiling=200)
    monkeypatch.setattr(client, "OFFSET_CEILING", 200)
    clock = FakeClock(datetime.now(UTC))
    runtime = runtime_with_connector(tmp_path / "home", pd, clock=clock)
    pd.bulk_incidents(120, status="triggered", service_id="PAPI001", span_seconds=86400)
    assert poll(runtime, "prod-pagerduty") == {"created": 120}
    # a responder resolves every one of them: 120 changes, logged in time order
    remote = [link.remote_id for n in range(1, 121)
              for link in runtime.store.links(f"INC-{n}")]
    with pd.client(from_email="john.doe@company.com") as john:
        for remote_id in remote:  # over two minutes of PagerDuty's clock
            john.put(f"/incidents/{remote_id}", json={"incident": {
                "type": "incident_reference", "status": "acknowledged"}}).raise_for_status()
            john.put(f"/incidents/{remote_id}", json={"incident": {
                "type": "incident_reference", "status": "resolved"}}).raise_for_status()
            ahead = pd.advance_clock(1)["offset_seconds"]
    clock.now = datetime.now(UTC) + timedelta(seconds=ahead + 1)  # PagerDuty's clock is im's
    pd.clear_requests()
    assert poll(runtime, "prod-pagerduty") == {"applied": 120}
    assert {i.status.value for i in runtime.store.list_incidents()} == {"resolved"}
    logs = pd.requests("GET", "/log_entries")
    assert len(logs) > 2 and all(r["status"] == 200 for r in logs)
    reach = [int(q["offset"][0]) + int(q["limit"][0])
             for q in (parse_qs(r["query"]) for r in logs)]
    assert max(reach) <= 200, max(reach)
    runtime.store.close()


def test_a_change_is_found_when_pagerdutys_clock_lags_ims(tmp_path, pd):
    """im's clock two minutes ahead of PagerDuty's: a responder's acknowledge, logged by
    PagerDuty's clock before the cursor im last set by its own, is still read from the log
    (it is read from ten minutes before the cursor), not left for the hourly sweep."""
    clock = FakeClock(datetime.now(UTC) + timedelta(minutes=2))
    runtime = runtime_with_connector(tmp_path / "home", pd, clock=clock)
    im(runtime, "declare", "--sev", "SEV-2", "--title", "Checkout errors", "--service", "db")
    assert poll(runtime, "prod-pagerduty") == {"confirmed": 1}  # the first poll sweeps
    [link] = runtime.store.links("INC-1")
    with pd.client(from_email="john.doe@company.com") as john:
        john.put(f"/incidents/{link.remote_id}", json={"incident": {
            "type": "incident_reference", "status": "acknowledged"}}).raise_for_status()
    clock.advance(minutes=5)
    pd.clear_requests()
    assert poll(runtime, "prod-pagerduty") == {"applied": 1}
    assert not _swept(pd)
    assert runtime.store.links("INC-1")[0].remote_status == "acknowledged"
    runtime.store.close()


def test_a_sweep_cut_short_is_made_by_the_next_poll(tmp_path, pd, monkeypatch):
    """A poll whose sweep fails half-way (PagerDuty down, the command's deadline) does not
    count as a sweep: the next poll sweeps, not one an hour later."""
    from im import ConnectorError
    from im_pagerduty import polling

    clock = FakeClock(datetime.now(UTC))
    runtime = runtime_with_connector(tmp_path / "home", pd, clock=clock)
    im(runtime, "declare", "--sev", "SEV-2", "--title", "Checkout errors", "--service", "db")
    read_one_by_one = polling._resolved_meanwhile

    def cut_short(*args, **kwargs):
        raise ConnectorError("PagerDuty did not answer in time", retryable=True)

    monkeypatch.setattr(polling, "_resolved_meanwhile", cut_short)
    pd.clear_requests()
    with pytest.raises(ConnectorError):
        poll(runtime, "prod-pagerduty")
    assert _swept(pd)
    monkeypatch.setattr(polling, "_resolved_meanwhile", read_one_by_one)
    clock.advance(minutes=1)
    pd.clear_requests()
    poll(runtime, "prod-pagerduty")
    assert _swept(pd)
    clock.advance(minutes=1)
    pd.clear_requests()
    poll(runtime, "prod-pagerduty")
    assert not _swept(pd)
    runtime.store.close()
