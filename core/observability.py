"""Figures about a connector, computed from what really happened: the calls it made, the
changes it delivered, the events it received. `im connector status`, `health`,
`im metrics connector` and `/metrics` all read them from here."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import msgspec

from im.connectors import Check, CheckRequest, parse_duration
from im.errors import ImError
from im.humanize import ago, percent
from im.models import SyncDirection

if TYPE_CHECKING:
    from im.runtime import Runtime
    from im.models import ConnectorRecord

DAY = timedelta(hours=24)


class ConnectorStatus(msgspec.Struct, kw_only=True):
    name: str
    type: str
    # "active", "disabled", or "key refused": the remote's latest answer was 401 (the key
    # was revoked or mistyped), so nothing gets through until it is replaced
    status: str
    direction: SyncDirection
    last_sync: datetime | None
    incidents_synced_24h: int
    sync_errors_24h: int
    webhook_enabled: bool
    queued: int
    failed: int
    quarantined: int
    last_error: str | None
    last_error_at: datetime | None = None
    # the last poll's error and when, while the last poll failed (a poll that succeeds
    # clears them)
    last_poll_error: str | None = None
    last_poll_failed_at: datetime | None = None


class ConnectorMetrics(msgspec.Struct, kw_only=True):
    name: str
    total_incidents: int
    sync_success_rate: float | None
    average_sync_seconds: float | None
    api_calls_24h: int
    api_errors_24h: int
    # calls in the last minute over the limit; None when no limit is known (see
    # Connector.rate_limit_per_minute)
    rate_limit_usage: float | None
    rate_limit: int | None
    webhook_events_24h: int
    outbox_done_24h: int
    outbox_attempts_24h: int


def status(runtime: Runtime, name: str) -> ConnectorStatus:
    record = runtime.store.get_connector(name)
    if record is None:
        runtime.connector(name)  # raises the usual "no connector named" error
        raise AssertionError
    since = runtime.clock() - DAY
    reads = runtime.store.read()
    synced = reads.links.incidents_linked(name, updated_since=since)
    _, errors = reads.calls.counts_since(name, since)
    quarantined = reads.inbox.quarantined_count(name)
    queued, _, failed = reads.outbox.queued_waiting_and_failed(name)
    # the latest error of a call or a delivery
    last_error = max((found for found in (reads.calls.last_error(name),
                                          reads.outbox.last_error(name)) if found is not None),
                     key=lambda found: found[1], default=None)
    latest = reads.calls.latest_status(name)
    poll_failure = runtime.store.last_poll_failure(name) if record.sync_direction.pulls \
        else None
    state = "disabled" if not record.enabled else "key refused" if latest == 401 else "active"
    return ConnectorStatus(
        name=name, type=record.type, status=state,
        direction=record.sync_direction,
        last_sync=runtime.store.last_sync(name), incidents_synced_24h=synced,
        sync_errors_24h=errors + reads.inbox.quarantined_count(name, received_since=since),
        webhook_enabled=_webhooks_on(runtime, record), queued=queued,
        failed=failed, quarantined=quarantined,
        last_error=last_error[0] if last_error else None,
        last_error_at=last_error[1] if last_error else None,
        last_poll_error=poll_failure[0] if poll_failure else None,
        last_poll_failed_at=poll_failure[1] if poll_failure else None)


def _webhooks_on(runtime: Runtime, record: ConnectorRecord) -> bool:
    """`enable_webhook` as the connector reads it: its type may default it otherwise than
    the core's settings do (a stored setting is read as given when the type is missing)."""
    try:
        return bool(runtime.connector(record.name).settings.enable_webhook)
    except ImError:
        return bool(record.settings.get("enable_webhook", True))


def metrics(runtime: Runtime, name: str) -> ConnectorMetrics:
    connector = runtime.connector(name)  # a clear error for an unknown connector
    now = runtime.clock()
    since = now - DAY
    reads = runtime.store.read()
    total = reads.links.incidents_linked(name)
    done, attempts, average = reads.outbox.delivery_figures_since(name, since)
    calls, call_errors = reads.calls.counts_since(name, since)
    last_minute, _ = reads.calls.counts_since(name, now - timedelta(minutes=1))
    limit = reads.calls.latest_rate_limit(name) or type(connector).rate_limit_per_minute
    events = reads.inbox.received_count(name, since=since)
    return ConnectorMetrics(
        name=name, total_incidents=total,
        sync_success_rate=(done / attempts) if attempts else None,
        average_sync_seconds=average, api_calls_24h=calls, api_errors_24h=call_errors,
        rate_limit_usage=last_minute / limit if limit else None, rate_limit=limit or None,
        webhook_events_24h=events,
        outbox_done_24h=done, outbox_attempts_24h=attempts)


def health(runtime: Runtime, name: str, *, deadline: float | None = None
           ) -> tuple[str, list[Check]]:
    """("healthy" | "degraded" | "unhealthy", checks): the connector's own live checks
    (connectivity, authentication, access; given until `deadline`, time.monotonic()), then
    webhook, sync and error-rate checks from the records."""
    connector = runtime.connector(name)
    now = runtime.clock()
    checks = list(connector.health(CheckRequest(public_url=runtime.public_url_for(name),
                                                deadline=deadline)))
    unreachable = any(not check.ok for check in checks)  # a live check of the remote failed
    settings = connector.settings
    reads = runtime.store.read()
    last_event = reads.inbox.last_received_at(name)
    if settings.enable_webhook and settings.sync_direction.pulls and not any(
            c.name == "webhook" for c in checks):
        if last_event is None:
            checks.append(Check(name="webhook", label="Webhook", ok=True,
                                detail="No events received yet"))
        else:
            checks.append(Check(name="webhook", label="Webhook", ok=True,
                                detail=f"Receiving events (last: {ago(last_event, now)})"))
    queued, stuck, failed = reads.outbox.queued_waiting_and_failed(
        name, waiting_since=now - timedelta(minutes=2))
    last_sync = runtime.store.last_sync(name)
    interval = parse_duration(settings.sync_interval)
    polled = reads.cursors.updated_at(name)
    late_poll = settings.sync_direction.pulls and polled is not None and (
        now - polled).total_seconds() > 3 * interval
    poll_failure = runtime.store.last_poll_failure(name) if settings.sync_direction.pulls \
        else None
    when = f"last sync: {ago(last_sync, now)}" if last_sync else "never synced"
    if stuck or failed:
        problems = ([f"{stuck} change(s) waiting over 2 minutes"] if stuck else []) + (
            [f"{failed} change(s) failed"] if failed else [])
        polled_too = (f"; last poll failed: {poll_failure[0]} ({ago(poll_failure[1], now)})"
                      if poll_failure else "")
        checks.append(Check(
            name="sync", label="Sync Status", ok=False,
            detail=f"{', '.join(problems)} ({when}){polled_too}",
            fix=f"im connector sync {name}; im connector status {name} shows the last error"))
    elif poll_failure:
        # polled, and failing: the error is the reason, not a server that would not run;
        # unless no poll came since long (then the server may have stopped as well)
        error, failed_at = poll_failure
        stale = interval > 0 and (now - failed_at).total_seconds() > 3 * interval
        checks.append(Check(
            name="sync", label="Sync Status", ok=False,
            detail=f"Last poll failed: {error} ({ago(failed_at, now)}"
                   + ("; none since: is `im serve` running?)" if stale else ")"),
            fix=f"fix what the error says; `im connector sync {name}` polls again"))
    elif late_poll:
        checks.append(Check(name="sync", label="Sync Status", ok=False,
                            detail=f"Polling is late ({when}); is `im serve` running?",
                            fix="start `im serve`"))
    elif queued and unreachable:  # they cannot go anywhere yet
        checks.append(Check(
            name="sync", label="Sync Status", ok=False,
            detail=f"{queued} change(s) queued, not deliverable while the checks above fail"
                   f" ({when})",
            fix=f"fix the failing check; `im serve` (or im connector sync {name}) delivers"
                " them then"))
    elif queued:  # none waiting long yet
        checks.append(Check(name="sync", label="Sync Status", ok=True,
                            detail=f"{queued} change(s) queued ({when})"))
    else:
        checks.append(Check(name="sync", label="Sync Status", ok=True,
                            detail=f"Up to date ({when})"))
    figures = metrics(runtime, name)
    rate = figures.api_errors_24h / figures.api_calls_24h if figures.api_calls_24h else 0.0
    checks.append(Check(name="errors", label="Error Rate", ok=rate < 0.05,
                        detail=f"{percent(rate)} ({figures.api_errors_24h} errors in 24h)"))
    if any(not c.ok and c.critical for c in checks):
        verdict = "unhealthy"
    elif all(c.ok for c in checks):
        verdict = "healthy"
    else:
        verdict = "degraded"
    return verdict, checks
