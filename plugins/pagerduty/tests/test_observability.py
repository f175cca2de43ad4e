"""Status, health, metrics, logs and debug mode, with figures checked against what happened."""

import json
import logging
import re

import pytest

from im.logs import install

from .connector_kit import im, runtime_with_connector, stored


pytestmark = pytest.mark.usefixtures("quick_retries")


@pytest.fixture
def runtime(tmp_path, pd):
    rt = runtime_with_connector(tmp_path / "home", pd)
    handler = install(rt.store)
    yield rt
    logging.getLogger("im").removeHandler(handler)
    rt.store.close()


def test_status_and_metrics_count_what_happened(runtime, pd):
    im(runtime, "declare", "--sev", "SEV-1", "--title", "x", "--service", "api,db")
    im(runtime, "ack", "--incident", "INC-1")
    pd.set_faults(burst_5xx=2)
    im(runtime, "declare", "--sev", "SEV-3", "--title", "y", "--service", "web")
    pd.set_faults()
    [calls] = stored(runtime.home, "SELECT count(*), count(error) FROM calls")
    status = im(runtime, "connector", "status", "prod-pagerduty")
    lines = status.stdout.splitlines()
    assert lines[:3] == ["Connector: prod-pagerduty (pagerduty)", "Status: Active",
                         "Direction: Bidirectional"]
    assert lines[4] == "Incidents Synced: 1 (last 24h)"
    assert lines[5] == f"Sync Errors: {calls[1]}" and calls[1] == 2
    assert lines[6] == "Webhook: Disabled"
    assert lines[7] == "Queued: 1 change(s) waiting, 0 failed"
    assert lines[8].startswith("Last Error: PagerDuty answered 503")
    # when, so that an old error is not read as a current one
    assert re.search(r" \(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\)$", lines[8]), lines[8]
    figures = json.loads(im(runtime, "metrics", "connector", "prod-pagerduty", "--json").stdout)
    assert figures["api_calls_24h"] == calls[0]
    assert figures["total_incidents"] == 1
    # 4 outbox rows done (2 creates, 2 acks) in 4 attempts; the failing one is still queued
    assert (figures["outbox_done_24h"], figures["outbox_attempts_24h"]) == (4, 4)
    text = im(runtime, "metrics", "connector", "prod-pagerduty").stdout.splitlines()
    assert text[0] == "Connector: prod-pagerduty"
    assert text[1] == "Total Incidents: 1"
    assert text[2] == "Sync Success Rate: 100%"
    assert text[4] == f"API Calls (24h): {calls[0]}"
    assert text[5] == f"Rate Limit Usage: {round(calls[0] / 960 * 100, 1):g}%"
    assert text[6] == "Webhook Events (24h): 0"


def test_health_lines_and_exit_codes(runtime, pd):
    im(runtime, "declare", "--sev", "SEV-2", "--title", "x", "--service", "api")
    healthy = im(runtime, "connector", "health", "prod-pagerduty")
    lines = healthy.stdout.splitlines()
    assert healthy.exit_code == 0, healthy.stdout
    assert lines[0] == "Health: Healthy"
    assert lines[1].startswith("API Connectivity: ✓ Connected (")
    assert lines[1].endswith("ms response time)")
    assert lines[2:4] == ["Authentication: ✓ Valid API key",
                          "Service Access: ✓ PXXXXXX accessible"]
    assert lines[4].startswith("Sync Status: ✓ Up to date (last sync: ")
    assert lines[5] == "Error Rate: 0% (0 errors in 24h)"
    # PagerDuty down: a change waits; sync is not "up to date" then
    pd.set_faults(error_rate=1.0, error_status=503)
    im(runtime, "ack", "--incident", "INC-1")
    pd.clear_faults()
    waiting = im(runtime, "connector", "health", "prod-pagerduty").stdout.splitlines()
    assert waiting[4].startswith("Sync Status: ✓ 1 change(s) queued (last sync: ")
    # webhooks wanted but not set up in PagerDuty yet
    runtime.update_connector_settings("prod-pagerduty", {"enable_webhook": True})
    unset = im(runtime, "connector", "health", "prod-pagerduty").stdout.splitlines()
    assert unset[0] == "Health: Degraded"
    assert unset[4:6] == [
        "Webhook: ✗ Not set up in PagerDuty yet (polling covers meanwhile)",
        "  Fix: im connector webhook prod-pagerduty --enable --url https://YOUR-DOMAIN"]
    runtime.update_connector_settings("prod-pagerduty", {"enable_webhook": False})
    runtime.update_connector_settings("prod-pagerduty", {"api_key": "wrong"})  # revoked
    broken = im(runtime, "connector", "health", "prod-pagerduty")
    assert broken.exit_code == 2
    assert "Authentication: ✗ API key refused (401)" in broken.stdout
    assert "\nError Rate: ✗ " in broken.stdout  # a figure, marked once it is too high
    im(runtime, "connector", "sync", "prod-pagerduty")  # refused for good: set aside
    failed = im(runtime, "connector", "health", "prod-pagerduty").stdout
    assert "Sync Status: ✗ 1 change(s) failed (last sync: " in failed
    # the sync's poll was refused too: said on the same line
    assert re.search(r"\); last poll failed: PagerDuty answered 401: Authentication failed"
                     r" \(code 2006\) \(\d+s ago\)\n", failed), failed


def test_logs_and_debug_mode_redact_secrets(runtime, pd, monkeypatch):
    monkeypatch.setenv("PAGERDUTY_DEBUG", "true")
    im(runtime, "declare", "--sev", "SEV-2", "--title", "x", "--service", "api")
    out = im(runtime, "logs", "--component", "connector", "--filter", "pagerduty")
    assert "PagerDuty request POST /incidents" in out.stdout
    assert "PagerDuty response 201 POST /incidents" in out.stdout
    assert pd.api_key not in out.stdout
    rows = [json.loads(line) for line in im(runtime, "logs", "--json", "--component",
                                            "connector").stdout.splitlines()]
    request = next(r for r in rows if r["message"] == "PagerDuty request POST /incidents")
    assert request["data"]["headers"]["authorization"] == "***"
    assert '"title":"x"' in request["data"]["body"]
    assert all(pd.api_key not in json.dumps(r) for r in rows)
    # --filter finds a component's lines by its name too
    assert "PagerDuty request POST /incidents" in im(runtime, "logs", "--filter",
                                                     "connector").stdout
    bad = im(runtime, "logs", "--component", "nothing")
    assert bad.stderr.startswith("Error: unknown component 'nothing'; choose from webhook")


def test_a_subscription_pagerduty_disabled_is_reported_and_re_enabled(runtime, pd,
                                                                      pagerduty_webhook_receiver):
    """Three deliveries refused in a row: PagerDuty disables the subscription. Polling warns,
    health says so with the fix, and `webhook --enable` turns it back on."""
    from im.inbound import poll

    receiver = pagerduty_webhook_receiver
    receiver.answer(400, 400, 400)
    enabled = im(runtime, "connector", "webhook", "prod-pagerduty", "--enable", "--url",
                 receiver.url)
    assert enabled.exit_code == 0, enabled.output
    for title in ("a", "b", "c"):
        im(runtime, "declare", "--sev", "SEV-3", "--title", title, "--service", "web")
    assert pd.wait_for_webhooks(timeout=10)
    subscription_id = runtime.connector("prod-pagerduty").settings.custom.webhook_subscription_id
    state = pd.client().get(f"/webhook_subscriptions/{subscription_id}").json()
    assert state["webhook_subscription"]["delivery_method"]["temporarily_disabled"] is True
    poll(runtime, "prod-pagerduty")
    warning = im(runtime, "logs", "--level", "warning", "--component", "sync").stdout
    assert f"PagerDuty disabled the webhook subscription {subscription_id}" in warning
    health = im(runtime, "connector", "health", "prod-pagerduty")
    assert health.exit_code == 1
    assert ("Webhook: ✗ PagerDuty disabled the subscription (deliveries kept failing)\n"
            "  Fix: im connector webhook prod-pagerduty --enable") in health.stdout
    again = im(runtime, "connector", "webhook", "prod-pagerduty", "--enable")
    assert again.stdout.startswith(f"Re-enabled PagerDuty webhook subscription {subscription_id}")
    state = pd.client().get(f"/webhook_subscriptions/{subscription_id}").json()
    assert state["webhook_subscription"]["delivery_method"]["temporarily_disabled"] is False


def test_a_subscription_whose_creation_answer_was_lost_is_replaced_not_doubled(
        runtime, pd, pagerduty_webhook_receiver):
    """An earlier `webhook --enable` made a subscription but its answer, the only one that
    carries the signing secret, was lost: the next one deletes it and makes one im can
    verify, so PagerDuty does not deliver every event twice."""
    url = pagerduty_webhook_receiver.url
    hook = f"{url}/connectors/prod-pagerduty/webhook"  # the URL im subscribes
    with pd.client() as api:
        orphan = api.post("/webhook_subscriptions", json={"webhook_subscription": {
            "type": "webhook_subscription",
            "delivery_method": {"type": "http_delivery_method", "url": hook},
            "description": "im connector prod-pagerduty", "events": ["incident.triggered"],
            "filter": {"type": "account_reference"}}}).json()["webhook_subscription"]
        someone_elses = api.post("/webhook_subscriptions", json={"webhook_subscription": {
            "type": "webhook_subscription",
            "delivery_method": {"type": "http_delivery_method", "url": hook},
            "description": "the team's own audit hook", "events": ["incident.triggered"],
            "filter": {"type": "account_reference"}}}).json()["webhook_subscription"]
    enabled = im(runtime, "connector", "webhook", "prod-pagerduty", "--enable", "--url", url)
    assert enabled.exit_code == 0, enabled.output
    made = runtime.connector("prod-pagerduty").settings.custom.webhook_subscription_id
    assert enabled.stdout.splitlines()[:2] == [
        f"Deleted PagerDuty webhook subscription {orphan['id']} (im never received its"
        " signing secret)",
        f"Created PagerDuty webhook subscription {made} for 16 incident event types"]
    with pd.client() as api:
        left = api.get("/webhook_subscriptions").json()["webhook_subscriptions"]
    assert sorted(s["id"] for s in left) == sorted([made, someone_elses["id"]])


def test_status_says_the_key_is_refused_and_health_marks_a_stuck_queue(runtime, pd):
    """A revoked key is not 'Active'; a queue that cannot drain is not a tick."""
    im(runtime, "declare", "--sev", "SEV-2", "--title", "x", "--service", "api")
    pd.set_faults(error_rate=1.0, error_status=503)  # PagerDuty down, and stays down
    im(runtime, "ack", "--incident", "INC-1")
    down = im(runtime, "connector", "health", "prod-pagerduty")
    lines = down.stdout.splitlines()
    assert down.exit_code == 2, down.stdout
    assert lines[1].startswith("API Connectivity: ✗ ")
    sync = next(line for line in lines if line.startswith("Sync Status: "))
    assert sync.startswith("Sync Status: ✗ 1 change(s) queued, not deliverable while the"
                           " checks above fail (last sync: "), sync
    pd.clear_faults()
    assert im(runtime, "connector", "status", "prod-pagerduty").stdout.splitlines()[1] == (
        "Status: Active")
    runtime.update_connector_settings("prod-pagerduty", {"api_key": "revoked"})  # in PagerDuty
    im(runtime, "connector", "test", "prod-pagerduty")  # PagerDuty answers 401
    status = im(runtime, "connector", "status", "prod-pagerduty")
    assert status.stdout.splitlines()[1] == (
        "Status: Key refused (the key was refused; give a new one: im connector update"
        " prod-pagerduty --api-key -, the key on standard input)")
    assert json.loads(im(runtime, "connector", "status", "prod-pagerduty", "--json").stdout
                      )["status"] == "key refused"
    im(runtime, "connector", "update", "prod-pagerduty", "--api-key", pd.api_key)
    im(runtime, "connector", "test", "prod-pagerduty")
    assert im(runtime, "connector", "status", "prod-pagerduty").stdout.splitlines()[1] == (
        "Status: Active")


def test_status_says_an_outbound_connectors_webhooks_are_ignored(runtime):
    runtime.update_connector_settings("prod-pagerduty", {"enable_webhook": True,
                                                          "sync_direction": "outbound"})
    lines = im(runtime, "connector", "status", "prod-pagerduty").stdout.splitlines()
    assert "Webhook: Enabled (events ignored: the connector is outbound)" in lines
    runtime.update_connector_settings("prod-pagerduty", {"sync_direction": "bidirectional"})
    assert "Webhook: Enabled" in im(runtime, "connector", "status",
                                    "prod-pagerduty").stdout.splitlines()


def test_a_poll_that_keeps_failing_shows_in_status_and_health(tmp_path, pd, caplog):
    """PagerDuty failing every listing of incidents: the poll `im serve` runs fails, and
    status and health say so, with the error (not "is `im serve` running?", which it is);
    once a poll succeeds again, neither says it any longer."""
    from datetime import UTC, datetime

    from im.humanize import when
    from im.testing import FakeClock, serve

    from .connector_kit import wait_for

    clock = FakeClock(datetime.now(UTC))
    rt = runtime_with_connector(tmp_path / "home", pd, clock=clock)
    pd.set_faults(error_rate=1.0, error_status=503, paths=("/incidents",))
    with serve(rt):  # polls at once, then every sync_interval (2m)
        wait_for(lambda: any(r.getMessage().startswith("polling prod-pagerduty failed")
                             for r in caplog.records))
    assert pd.requests("GET", "/incidents")[0]["status"] == 503
    error = "PagerDuty answered 503: Service Unavailable"
    status = im(rt, "connector", "status", "prod-pagerduty").stdout.splitlines()
    assert status[-1] == f"Last poll failed: {error} ({when(clock())})", status
    health = im(rt, "connector", "health", "prod-pagerduty")
    lines = health.stdout.splitlines()
    assert (health.exit_code, lines[0]) == (1, "Health: Degraded"), health.stdout
    sync = lines.index(next(line for line in lines if line.startswith("Sync Status: ")))
    assert lines[sync:sync + 2] == [
        f"Sync Status: ✗ Last poll failed: {error} (0s ago)",
        "  Fix: fix what the error says; `im connector sync prod-pagerduty` polls again"]
    # no poll for three intervals since the failure: the server may have stopped too
    clock.advance(minutes=7)
    later = im(rt, "connector", "health", "prod-pagerduty").stdout.splitlines()
    assert later[sync] == (f"Sync Status: ✗ Last poll failed: {error} (7m ago; none since:"
                           " is `im serve` running?)")
    pd.clear_faults()
    assert im(rt, "connector", "sync", "prod-pagerduty").exit_code == 0
    status = im(rt, "connector", "status", "prod-pagerduty").stdout
    assert "Last poll failed" not in status, status
    healed = im(rt, "connector", "health", "prod-pagerduty").stdout.splitlines()
    assert healed[sync].startswith("Sync Status: ✓ Up to date (last sync: 0s ago)"), healed
    rt.store.close()
