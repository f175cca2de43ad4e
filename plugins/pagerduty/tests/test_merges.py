"""Merges: a responder merges PagerDuty incident A into B. PagerDuty resolves A with a merge
resolve reason; the problem goes on under B, so im's incident stays open and follows B, by
webhook and by polling alike."""

from datetime import UTC, datetime, timedelta

import pytest

from im.inbound import poll, process_inbox
from im.testing import serve

from .connector_kit import delivered, im, remote_incidents, runtime_with_connector, wait_for
from .sandbox_calls import subscribe

pytestmark = pytest.mark.usefixtures("quick_retries")

JANE = "jane.smith@company.com"


def ref(incident_id):
    return {"id": incident_id, "type": "incident_reference"}


def merge(pd, target_id, *source_ids, by=JANE):
    with pd.client(from_email=by) as client:
        client.put(f"/incidents/{target_id}/merge", json={
            "source_incidents": [ref(i) for i in source_ids]}).raise_for_status()


def set_status(pd, incident_id, status, by="john.doe@company.com"):
    with pd.client(from_email=by) as client:
        client.put(f"/incidents/{incident_id}", json={"incident": {
            "type": "incident_reference", "status": status}}).raise_for_status()


def made_in_pagerduty(pd, title="Payments time out", service="PPAY001"):
    with pd.client(from_email=JANE) as client:
        return client.post("/incidents", json={"incident": {
            "type": "incident", "title": title,
            "service": {"id": service, "type": "service_reference"}}}).json()["incident"]


def sync_lines(runtime, incident="INC-1"):
    return [e.text for e in runtime.store.timeline(incident)
            if e.kind == "sync" and e.system == "prod-pagerduty"]


def status(runtime, incident="INC-1"):
    return runtime.store.get_incident(incident).status.value


class Deliveries:
    """The sandbox's real signed deliveries, caught by a receiver and handed to im's inbox
    one by one (as `im serve` stores them), so a test chooses which im gets."""

    def __init__(self, pd, receiver, runtime):
        self.pd, self.receiver, self.runtime = pd, receiver, runtime
        subscribe(pd.client(), receiver.url)

    def latest(self, event_type, incident_id):
        def found():
            for webhook in reversed(self.receiver.received):
                event = webhook.json()["event"]
                if event["event_type"] == event_type and event["data"]["id"] == incident_id:
                    return event["id"], webhook.body
            return None

        # the change is made before its event is queued: wait for the delivery itself
        return wait_for(found)

    def deliver(self, event_type, incident_id):
        event_id, body = self.latest(event_type, incident_id)
        self.runtime.store.store_inbox(connector="prod-pagerduty", delivery_id=event_id,
                                       event_type=event_type, body=body,
                                       at=self.runtime.clock())
        return process_inbox(self.runtime).outcomes


@pytest.fixture
def runtime(tmp_path, pd):
    runtime = runtime_with_connector(tmp_path / "home", pd)
    yield runtime
    runtime.store.close()


def test_a_merge_by_webhook_moves_the_link_to_the_surviving_incident(
        runtime, pd, pagerduty_webhook_receiver):
    deliveries = Deliveries(pd, pagerduty_webhook_receiver, runtime)
    im(runtime, "declare", "--sev", "SEV-2", "--title", "Checkout errors", "--service", "api")
    [link] = runtime.store.links("INC-1")
    survivor = made_in_pagerduty(pd)  # im never heard of it
    merge(pd, survivor["id"], link.remote_id)

    assert deliveries.deliver("incident.resolved", link.remote_id) == {"applied": 1}
    assert status(runtime) == "open"
    [moved] = runtime.store.links("INC-1")
    assert (moved.service, moved.remote_id, moved.remote_number, moved.remote_url,
            moved.remote_status) == ("api", survivor["id"], str(survivor["incident_number"]),
                                     survivor["html_url"], "open")
    line = (f"PagerDuty #{link.remote_number} merged into #{survivor['incident_number']}")
    assert sync_lines(runtime)[-1] == line
    [entry] = [e for e in runtime.store.timeline("INC-1") if e.text == line]
    assert entry.actor == JANE
    assert len(runtime.store.list_incidents()) == 1

    # what responders do on the survivor now reaches INC-1
    set_status(pd, survivor["id"], "acknowledged")
    assert deliveries.deliver("incident.acknowledged", survivor["id"]) == {"applied": 1}
    assert status(runtime) == "mitigated"
    set_status(pd, survivor["id"], "resolved")
    assert deliveries.deliver("incident.resolved", survivor["id"]) == {"applied": 1}
    assert status(runtime) == "resolved"
    # and a poll reading the merged incident afterwards changes nothing
    assert "applied" not in poll(runtime, "prod-pagerduty")
    assert status(runtime) == "resolved" and len(runtime.store.list_incidents()) == 1


def test_a_merge_found_by_polling_moves_the_link_without_a_call_per_incident(runtime, pd):
    im(runtime, "declare", "--sev", "SEV-2", "--title", "Checkout errors", "--service", "api")
    [link] = runtime.store.links("INC-1")
    survivor = made_in_pagerduty(pd)
    merge(pd, survivor["id"], link.remote_id)
    pd.clear_requests()

    outcomes = poll(runtime, "prod-pagerduty")
    # the merge first (the link moves), then the survivor's own report, known by then: it
    # does not become an im incident of its own
    assert outcomes == {"applied": 1, "confirmed": 1}
    assert len(runtime.store.list_incidents()) == 1 and status(runtime) == "open"
    [moved] = runtime.store.links("INC-1")
    assert (moved.remote_id, moved.remote_status) == (survivor["id"], "open")
    assert sync_lines(runtime)[-1] == (
        f"PagerDuty #{link.remote_number} merged into #{survivor['incident_number']}")
    # the listings told the resolve reason: no call about a single incident
    assert pd.requests("GET", "/incidents/*") == []
    # the merged one is listed again: told again, nothing to apply
    assert poll(runtime, "prod-pagerduty") == {"confirmed": 2}

    set_status(pd, survivor["id"], "acknowledged")
    assert poll(runtime, "prod-pagerduty")["applied"] == 1
    assert status(runtime) == "mitigated"
    set_status(pd, survivor["id"], "resolved")
    assert poll(runtime, "prod-pagerduty")["applied"] == 1
    assert status(runtime) == "resolved"


def test_a_merged_incident_read_on_its_own_by_a_poll_is_a_merge(tmp_path, pd):
    """A linked incident that neither of the poll's listings shows (created before the
    cursor, no longer open) is read alone, the one call a poll makes about a single incident:
    its resolve reason says merge there too."""
    # im's clock a minute ahead of PagerDuty's: the cursor (im's now) is past both incidents'
    # creation, so only the open listing runs over them, and it shows the survivor alone
    runtime = runtime_with_connector(tmp_path / "home", pd,
                                     clock=lambda: datetime.now(UTC) + timedelta(minutes=1))
    im(runtime, "declare", "--sev", "SEV-2", "--title", "Checkout errors", "--service", "api")
    [link] = runtime.store.links("INC-1")
    survivor = made_in_pagerduty(pd)
    merge(pd, survivor["id"], link.remote_id)
    runtime.store.set_cursor("prod-pagerduty", runtime.clock().isoformat(), at=runtime.clock())
    pd.clear_requests()

    assert poll(runtime, "prod-pagerduty") == {"applied": 1, "confirmed": 1}
    assert [r["path"] for r in pd.requests("GET", "/incidents/*")] == [
        f"/incidents/{link.remote_id}"]
    [moved] = runtime.store.links("INC-1")
    assert moved.remote_id == survivor["id"] and status(runtime) == "open"
    runtime.store.close()


def test_merged_into_an_incident_of_another_service_of_the_same_im_incident(tmp_path, pd):
    """im made one PagerDuty incident per service; a responder merges one into the other (by
    im serve's webhook): the merged one's link is kept as merged, which holds nothing open,
    and the im incident follows the survivor to the end."""
    runtime = runtime_with_connector(tmp_path / "home", pd)
    with serve(runtime) as url:
        result = im(runtime, "connector", "webhook", "prod-pagerduty", "--enable", "--url", url)
        assert result.exit_code == 0, result.output

        def settled():
            assert pd.wait_for_webhooks(timeout=10)
            wait_for(lambda: not runtime.store.inbox(statuses=("pending", "processing")))

        im(runtime, "declare", "--sev", "SEV-1", "--title", "Checkout errors",
           "--service", "api,db")
        delivered(runtime)
        links = {link.service: link for link in runtime.store.links("INC-1")}
        settled()
        merge(pd, links["db"].remote_id, links["api"].remote_id)
        settled()
        assert status(runtime) == "open"
        now = {link.service: link for link in runtime.store.links("INC-1")}
        assert (now["api"].remote_id, now["api"].remote_status) == (
            links["api"].remote_id, "merged")
        assert sync_lines(runtime)[-1] == (
            f"PagerDuty #{links['api'].remote_number} merged into"
            f" #{links['db'].remote_number} (linked for db)")
        set_status(pd, links["db"].remote_id, "acknowledged")
        settled()
        assert status(runtime) == "mitigated"
        set_status(pd, links["db"].remote_id, "resolved")
        settled()
        assert status(runtime) == "resolved"
        # nothing was pushed to the merged incident: the create, and no more
        assert [r.action for r in runtime.store.outbox(connector="prod-pagerduty")] == [
            "declare", "declare"]
    runtime.store.close()


def test_merged_into_an_incident_another_im_incident_follows(runtime, pd,
                                                               pagerduty_webhook_receiver):
    deliveries = Deliveries(pd, pagerduty_webhook_receiver, runtime)
    im(runtime, "declare", "--sev", "SEV-2", "--title", "Checkout errors", "--service", "api")
    [link] = runtime.store.links("INC-1")
    survivor = made_in_pagerduty(pd)
    assert deliveries.deliver("incident.triggered", survivor["id"]) == {"created": 1}
    merge(pd, survivor["id"], link.remote_id)
    assert deliveries.deliver("incident.resolved", link.remote_id) == {"recorded": 1}
    assert status(runtime) == "open"
    assert runtime.store.links("INC-1")[0].remote_status == "merged"
    assert sync_lines(runtime)[-1] == (
        f"PagerDuty #{link.remote_number} merged into #{survivor['incident_number']}"
        " (linked to INC-2); INC-1 stays open")
    # told again (a poll after the webhook): nothing more
    assert poll(runtime, "prod-pagerduty").get("applied") is None
    assert sync_lines(runtime).count(sync_lines(runtime)[-1]) == 1
    assert [r.action for r in runtime.store.outbox(connector="prod-pagerduty")] == ["declare"]


def test_with_auto_resolve_off_a_merge_is_followed_all_the_same(tmp_path, pd):
    """auto_resolve is about resolves; a merge is not one: the link follows the survivor."""
    runtime = runtime_with_connector(tmp_path / "home", pd, auto_resolve=False)
    im(runtime, "declare", "--sev", "SEV-2", "--title", "Checkout errors", "--service", "api")
    [link] = runtime.store.links("INC-1")
    survivor = made_in_pagerduty(pd)
    merge(pd, survivor["id"], link.remote_id)
    assert poll(runtime, "prod-pagerduty") == {"applied": 1, "confirmed": 1}
    assert runtime.store.links("INC-1")[0].remote_id == survivor["id"]
    assert status(runtime) == "open"
    assert not any("auto_resolve" in line for line in sync_lines(runtime))
    runtime.store.close()


def test_nothing_is_pushed_to_an_incident_merged_into_another_that_im_follows(runtime, pd):
    im(runtime, "declare", "--sev", "SEV-1", "--title", "Checkout errors",
       "--service", "api,db")
    links = {link.service: link for link in runtime.store.links("INC-1")}
    merge(pd, links["db"].remote_id, links["api"].remote_id)
    assert poll(runtime, "prod-pagerduty")["recorded"] == 1
    pd.clear_requests()
    result = im(runtime, "ack", "--incident", "INC-1", "--note", "Rolling back")
    assert result.exit_code == 0, result.output
    # the survivor is acknowledged, with the note; the merged one is asked nothing
    paths = {r["path"] for r in pd.requests()}
    assert f"/incidents/{links['api'].remote_id}" not in paths
    assert f"/incidents/{links['api'].remote_id}/notes" not in paths
    with pd.client() as client:
        survivor = client.get(f"/incidents/{links['db'].remote_id}").json()["incident"]
        notes = client.get(f"/incidents/{links['db'].remote_id}/notes").json()["notes"]
    assert survivor["status"] == "acknowledged"
    assert [n["content"] for n in notes] == ["Rolling back"]
    assert not runtime.store.outbox(connector="prod-pagerduty",
                                    statuses=("pending", "failed"))
