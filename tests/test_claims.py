"""A claim that runs out: a worker (a server, a command) that takes longer than its lease on a
queued change or a received event, while another worker claims it since, records nothing of
it; the other one's work is what counts, once. On either store."""

import json
from datetime import UTC, datetime

from im import incidents
from im.inbound import INBOX_LEASE_SECONDS, process_inbox
from im.sync import OUTBOX_LEASE_SECONDS, deliver_outbox
from im.testing import FakeClock, FakePlugin, FakeWebhookConnector, make_runtime, run_cli

CONFIG = {"api_key": "k-123456", "sync_direction": "bidirectional",
          "custom": {"project": "OPS"}}


def fake_runtime(tmp_path, clock, plugin):
    runtime = make_runtime(tmp_path / "home", plugins=[plugin], clock=clock, user="alice")
    config = {**CONFIG, "webhook_secret": plugin.remote.SECRET} if (
        plugin.connector is FakeWebhookConnector) else CONFIG
    result = run_cli(runtime, ["connector", "add", "fake", "prod-fake", "--config",
                               json.dumps(config)])
    assert result.exit_code == 0, result.stdout + result.stderr
    return runtime


def sync_lines(runtime, incident_id):
    return [event.text for event in runtime.store.timeline(incident_id) if event.kind == "sync"]


def test_a_delivery_slower_than_its_claim_is_recorded_once(tmp_path, clock, monkeypatch):
    plugin = FakePlugin()
    runtime = fake_runtime(tmp_path, clock, plugin)
    incident = incidents.declare(runtime, title="Payment API Down", severity="SEV-1",
                                 services=["payments"])
    original = plugin.connector.push
    taken_over = []

    def slow_push(self, request):
        if not taken_over:
            # while this worker waits on the remote, its claim runs out and another worker
            # claims the change, delivers it and records it
            taken_over.append(True)
            clock.advance(seconds=OUTBOX_LEASE_SECONDS + 1)
            assert deliver_outbox(runtime).delivered == 1
        return original(self, request)

    monkeypatch.setattr(plugin.connector, "push", slow_push)
    report = deliver_outbox(runtime)
    assert report.delivered == 0 and report.retrying == 0 and report.failed == 0
    assert sync_lines(runtime, incident.id) == ["Fake incident #1 created (payments)"]
    [row] = runtime.store.outbox()
    assert (row.status, row.attempts) == ("done", 2)
    assert [(link.remote_id, link.service) for link in runtime.store.links(incident.id)] == [
        ("F1", "payments")]


def test_a_failed_delivery_does_not_put_back_a_change_another_worker_delivered(
        tmp_path, clock, monkeypatch):
    from im.errors import ConnectorError

    plugin = FakePlugin()
    runtime = fake_runtime(tmp_path, clock, plugin)
    incident = incidents.declare(runtime, title="Payment API Down", severity="SEV-1",
                                 services=["payments"])
    original = plugin.connector.push
    calls = []

    def push(self, request):
        calls.append(request.attempt)
        if len(calls) == 1:
            clock.advance(seconds=OUTBOX_LEASE_SECONDS + 1)
            assert deliver_outbox(runtime).delivered == 1
            raise ConnectorError("timed out", retryable=True)
        return original(self, request)

    monkeypatch.setattr(plugin.connector, "push", push)
    deliver_outbox(runtime)
    [row] = runtime.store.outbox()
    assert (row.status, row.attempts, row.last_error) == ("done", 2, None)
    assert sync_lines(runtime, incident.id) == ["Fake incident #1 created (payments)"]


def test_an_event_applied_slower_than_its_claim_is_applied_once(tmp_path, monkeypatch):
    clock = FakeClock(datetime.now(UTC))  # the fake remote dates its events by the wall clock
    plugin = FakePlugin(connector=FakeWebhookConnector)
    runtime = fake_runtime(tmp_path, clock, plugin)
    incident = incidents.declare(runtime, title="Payment API Down", severity="SEV-1",
                                 services=["payments"])
    deliver_outbox(runtime)
    plugin.remote.sent.clear()
    plugin.remote.change("F1", note="Rolled back the deploy")
    [(_headers, body)] = plugin.remote.sent
    runtime.store.store_inbox(connector="prod-fake", delivery_id="D1", event_type="note",
                              body=body, at=clock())
    original = plugin.connector.webhook_changes
    taken_over = []

    def slow_changes(self, request):
        if not taken_over:
            taken_over.append(True)
            clock.advance(seconds=INBOX_LEASE_SECONDS + 1)
            assert process_inbox(runtime).processed == 1
        return original(self, request)

    monkeypatch.setattr(plugin.connector, "webhook_changes", slow_changes)
    report = process_inbox(runtime)
    assert report.processed == 0 and report.quarantined == 0
    notes = [event.text for event in runtime.store.timeline(incident.id)
             if "Rolled back the deploy" in event.text]
    assert len(notes) == 1, notes
    [row] = runtime.store.inbox()
    assert (row.status, row.attempts) == ("done", 2)
