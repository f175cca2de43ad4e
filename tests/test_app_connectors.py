"""im.app.connectors without a command line: each operation keeps its rules for any front end
(what a chat button or the HTTP API would call), and says what it did in its result."""

import pytest

from im import incidents
from im.app import connectors
from im.errors import ConnectorError, InvalidInputError, NotFoundError
from im.models import Origin, SyncDirection

SETTINGS = {"api_key": "k-123456", "sync_direction": "bidirectional",
            "custom": {"project": "OPS"}}


def declare(runtime, services=("db",)):
    return incidents.declare(runtime, title="Checkout down", severity="SEV-2",
                             services=list(services), origin=Origin(actor="alice"))


def test_add_stores_the_settings_and_refuses_what_the_cli_refuses(runtime):
    added = connectors.add(runtime, "fake", "prod-fake", SETTINGS)
    assert (added.name, added.type, added.direction) == (
        "prod-fake", "fake", SyncDirection.BIDIRECTIONAL)
    assert runtime.store.get_connector("prod-fake").settings == SETTINGS
    with pytest.raises(InvalidInputError, match="connector prod-fake exists already"):
        connectors.add(runtime, "fake", "prod-fake", SETTINGS)
    with pytest.raises(InvalidInputError, match="invalid connector name 'Prod Fake'"):
        connectors.add(runtime, "fake", "Prod Fake", SETTINGS)
    with pytest.raises(NotFoundError, match="unknown connector type 'nope'"):
        connectors.add(runtime, "nope", "other", SETTINGS)
    with pytest.raises(InvalidInputError, match="missing required field `api_key`"):
        connectors.add(runtime, "fake", "other", {"custom": {"project": "x"}})
    assert [r.name for r in runtime.store.list_connectors()] == ["prod-fake"]
    # the fake connector takes no webhooks: nothing to set up, nothing asked of it
    assert connectors.set_up_webhooks(runtime, "prod-fake").outcome == "not wanted"


def test_update_sets_values_in_order_redacts_secrets_and_refuses_nothing(runtime):
    connectors.add(runtime, "fake", "prod-fake", SETTINGS)
    updated = connectors.update(runtime, "prod-fake", merge={"sync_interval": "2m"},
                                values=[("custom.project", "PAY"), ("api_key", "new-key")])
    assert [(c.path, c.value) for c in updated.changed] == [
        ("sync_interval", "2m"), ("custom.project", "PAY"), ("api_key", "********")]
    assert (updated.warnings, updated.webhooks) == ([], None)
    stored = runtime.store.get_connector("prod-fake").settings
    assert (stored["sync_interval"], stored["custom"]["project"], stored["api_key"]) == (
        "2m", "PAY", "new-key")
    with pytest.raises(connectors.NothingToChangeError):
        connectors.update(runtime, "prod-fake", merge={})
    with pytest.raises(InvalidInputError, match="invalid settings"):
        connectors.update(runtime, "prod-fake", values=[("sync_direction", "sideways")])
    assert runtime.store.get_connector("prod-fake").settings == stored


def test_list_show_and_remove(runtime):
    connectors.add(runtime, "fake", "prod-fake", SETTINGS)
    [summary] = connectors.list_connectors(runtime)
    assert (summary.name, summary.status, summary.direction, summary.last_sync) == (
        "prod-fake", "active", SyncDirection.BIDIRECTIONAL, None)
    assert connectors.show(runtime, "prod-fake").settings["api_key"] == "********"
    declare(runtime)  # the lifecycle queues the change; nothing here delivers it
    assert [row.action for row in connectors.queued_changes(runtime, "prod-fake")] == [
        "declare"]
    removed = connectors.remove(runtime, "prod-fake")
    assert (removed.lines, removed.unsubscribe_error) == ([], None)
    assert runtime.store.list_connectors() == []
    with pytest.raises(NotFoundError, match=r"no connector named 'prod-fake' \(configured:"
                                            r" none\)"):
        connectors.show(runtime, "prod-fake")


def test_sync_delivers_reconciles_and_says_what_is_left(runtime, fake):
    connectors.add(runtime, "fake", "prod-fake", SETTINGS)
    incident = declare(runtime, services=("db", "web"))
    fake.remote.failures.append(ConnectorError("refused", retryable=False))
    result = connectors.sync(runtime, "prod-fake")
    assert (result.scope.connector, result.scope.incident_id, result.requeued) == (
        "prod-fake", None, None)
    assert (result.delivery.delivered, result.delivery.failed) == (1, 1)
    assert result.backlog.not_done == 0 and result.backlog.set_aside == []
    assert result.reconciled.outcomes == {}  # the fake connector does not pull
    # the change refused for good is set aside until it is asked for again
    again = connectors.sync(runtime, "prod-fake", incident=incident.id, retry_failed=True)
    assert (again.requeued, again.delivery.delivered, again.scope.incident_id) == (
        1, 1, incident.id)
    assert {row.status for row in runtime.store.outbox()} == {"done"}
    with pytest.raises(NotFoundError):
        connectors.sync(runtime, "prod-fake", incident="INC-9")


def test_webhook_operations_need_a_public_url_and_a_connector_that_takes_them(runtime):
    connectors.add(runtime, "fake", "prod-fake", SETTINGS)
    with pytest.raises(connectors.PublicUrlUnknownError):
        connectors.enable_webhooks(runtime, "prod-fake")
    with pytest.raises(connectors.PublicUrlUnknownError):
        connectors.check_webhooks(runtime, "prod-fake")
    with pytest.raises(InvalidInputError, match="must use https://"):
        connectors.enable_webhooks(runtime, "prod-fake", url="http://im.example.com")
    with pytest.raises(ConnectorError, match="does not support webhook subscriptions"):
        connectors.enable_webhooks(runtime, "prod-fake", url="https://im.example.com")
    assert connectors.tear_down_webhooks(runtime, "prod-fake").outcome == "not supported"
    assert connectors.webhook_url("https://im.example.com/", "prod-fake") == (
        "https://im.example.com/connectors/prod-fake/webhook")


def test_check_and_replay(runtime, fake):
    connectors.add(runtime, "fake", "prod-fake", SETTINGS)
    checked = connectors.check(runtime, "prod-fake")
    assert (checked.connector, checked.ok, [c.detail for c in checked.checks]) == (
        "prod-fake", True, ["Connected to the fake API"])
    fake.remote.reachable = False
    assert connectors.check(runtime, "prod-fake").ok is False
    replayed = connectors.replay(runtime, "prod-fake")
    assert (replayed.waiting, replayed.processed, replayed.remaining) == (0, 0, [])
