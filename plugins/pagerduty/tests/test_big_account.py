"""An account of 20,000 users, past the 10,000 records a PagerDuty listing can reach: users are
looked up by what is needed (by id, by e-mail), never by reading the whole directory."""

import json
from datetime import UTC, datetime

from im.inbound import process_inbox
from im_pagerduty import directory

from .connector_kit import im, runtime_with_connector

BIG = 20_000


def _acknowledged_by(link, agent_id, event_id):
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return json.dumps({"event": {
        "id": event_id, "event_type": "incident.acknowledged", "resource_type": "incident",
        "occurred_at": now, "agent": {"id": agent_id, "type": "user_reference",
                                      "summary": "Bulk User"},
        "client": None, "data": {
            "id": link.remote_id, "type": "incident", "number": 1, "status": "acknowledged",
            "title": "x", "html_url": link.remote_url, "incident_key": None,
            "service": {"id": "PAPI001", "type": "service_reference"}, "assignees": [],
            "urgency": "high", "priority": None}}}).encode()


def test_an_event_from_one_of_20000_users_is_applied_with_who_did_it(tmp_path, pd):
    pd.bulk_users(BIG)
    runtime = runtime_with_connector(tmp_path / "home", pd)
    im(runtime, "declare", "--sev", "SEV-2", "--title", "Checkout errors", "--service", "api")
    [link] = runtime.store.links("INC-1")
    directory.forget(runtime.connector("prod-pagerduty").client)
    pd.clear_requests()
    for event_id in ("01BIG1", "01BIG2"):  # the second finds the user known already
        runtime.store.store_inbox(connector="prod-pagerduty", delivery_id=event_id,
                                  event_type="incident.acknowledged",
                                  body=_acknowledged_by(link, "PB15000", event_id),
                                  at=runtime.clock())
    report = process_inbox(runtime)
    assert report.quarantined == 0 and report.outcomes == {"applied": 1, "confirmed": 1}, report
    incident = runtime.store.get_incident("INC-1")
    assert incident.status.value == "mitigated"
    [ack] = [e for e in runtime.store.timeline("INC-1") if e.kind == "acknowledged"]
    assert ack.actor == "user.15000@bulk.company.com"
    # the actor looked up by id, once; im's own user (echoes) by its e-mail, once; never a
    # listing of the directory
    assert sorted((r["path"], r["query"]) for r in pd.requests(method="GET", path="/users*")
                  ) == [("/users", "query=ops%40company.com&limit=100&offset=0"),
                        ("/users/PB15000", "")]
    runtime.store.close()


def test_assigning_to_one_of_20000_users_finds_them_by_email(tmp_path, pd):
    pd.bulk_users(BIG)
    runtime = runtime_with_connector(tmp_path / "home", pd)
    im(runtime, "declare", "--sev", "SEV-2", "--title", "Checkout errors", "--service", "api")
    [link] = runtime.store.links("INC-1")
    result = im(runtime, "assign", "--incident", "INC-1", "--to", "user.19999@bulk.company.com")
    assert result.exit_code == 0, result.output
    with pd.client() as api:
        remote = api.get(f"/incidents/{link.remote_id}").json()["incident"]
    assert [a["assignee"]["id"] for a in remote["assignments"]] == ["PB19999"]
    refused = im(runtime, "assign", "--incident", "INC-1", "--to", "nobody@company.com")
    assert refused.exit_code == 1
    assert refused.stderr.startswith("Error: nobody@company.com is not a PagerDuty user")
    runtime.store.close()
