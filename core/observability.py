"""Figures about a connector, computed from what really happened: the calls it made, the
changes it delivered, the events it received. `im connector status`, `health`,
`im metrics connector` and `/metrics` all read them from here."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgspec

from im.connectors import Check, CheckRequest, parse_duration
from im.humanize import ago, percent
from im.models import SyncDirection
from im.storage import parse_ts, ts

if TYPE_CHECKING:
    from im.runtime import Runtime

DAY = timedelta(hours=24)
DEFAULT_RATE_LIMIT = 960  # requests per minute, when the remote has not said


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


class ConnectorMetrics(msgspec.Struct, kw_only=True):
    name: str
    total_incidents: int
    sync_success_rate: float | None
    average_sync_seconds: float | None
    api_calls_24h: int
    api_errors_24h: int
    rate_limit_usage: float
    rate_limit: int
    webhook_events_24h: int
    outbox_done_24h: int
    outbox_attempts_24h: int


def _scalar(runtime: Runtime, sql: str, **params: Any) -> Any:
    row = runtime.store.conn.execute(sql, params).fetchone()
    return row[0] if row else None


def _outbox_counts(runtime: Runtime, name: str, *, waiting_since: datetime | None = None
                   ) -> tuple[int, int, int]:
    """A connector's changes queued, queued since before `waiting_since`, and failed: one
    pass over its outbox rows."""
    row = runtime.store.conn.execute(
        "SELECT count(*) FILTER (WHERE status IN ('pending', 'delivering')),"
        " count(*) FILTER (WHERE status IN ('pending', 'delivering') AND created_at < :old),"
        " count(*) FILTER (WHERE status = 'failed') FROM outbox WHERE connector = :c",
        {"c": name, "old": ts(waiting_since) if waiting_since else ""}).fetchone()
    return int(row[0]), int(row[1]), int(row[2])


def status(runtime: Runtime, name: str) -> ConnectorStatus:
    record = runtime.store.get_connector(name)
    if record is None:
        runtime.connector(name)  # raises the usual "no connector named" error
        raise AssertionError
    since = ts(runtime.clock() - DAY)
    synced = _scalar(runtime, "SELECT count(DISTINCT number) FROM links WHERE connector = :c"
                     " AND updated_at >= :since", c=name, since=since)
    errors = _scalar(runtime, "SELECT count(*) FROM calls WHERE connector = :c AND at >= :since"
                     " AND (error IS NOT NULL)", c=name, since=since)
    quarantined = _scalar(runtime, "SELECT count(*) FROM inbox WHERE connector = :c AND"
                          " status = 'quarantined'", c=name)
    queued, _, failed = _outbox_counts(runtime, name)
    last_error = runtime.store.conn.execute(
        "SELECT error, at FROM (SELECT error, at FROM calls WHERE connector = :c AND error IS NOT"
        " NULL UNION ALL SELECT last_error, coalesce(done_at, next_attempt_at) FROM outbox"
        " WHERE connector = :c AND last_error IS NOT NULL) ORDER BY at DESC LIMIT 1",
        {"c": name}).fetchone()
    latest = _scalar(runtime, "SELECT status FROM calls WHERE connector = :c ORDER BY at DESC,"
                     " id DESC LIMIT 1", c=name)  # by the (connector, at) index
    state = "disabled" if not record.enabled else "key refused" if latest == 401 else "active"
    return ConnectorStatus(
        name=name, type=record.type, status=state,
        direction=record.sync_direction,
        last_sync=runtime.store.last_sync(name), incidents_synced_24h=synced,
        sync_errors_24h=errors + _scalar(
            runtime, "SELECT count(*) FROM inbox WHERE connector = :c AND status ="
            " 'quarantined' AND received_at >= :since", c=name, since=since),
        webhook_enabled=bool(record.settings.get("enable_webhook", True)), queued=queued,
        failed=failed, quarantined=quarantined,
        last_error=last_error[0] if last_error else None,
        last_error_at=parse_ts(last_error[1]) if last_error else None)


def metrics(runtime: Runtime, name: str) -> ConnectorMetrics:
    runtime.connector(name)  # a clear error for an unknown connector
    now = runtime.clock()
    since = ts(now - DAY)
    store = runtime.store
    total = _scalar(runtime, "SELECT count(DISTINCT number) FROM links WHERE connector = :c",
                    c=name)
    done, attempts, average = store.conn.execute(
        "SELECT count(*) FILTER (WHERE status = 'done'), coalesce(sum(attempts), 0),"
        " avg(CASE WHEN status = 'done' THEN (julianday(done_at) - julianday(created_at))"
        " * 86400 END) FROM outbox WHERE connector = :c AND created_at >= :since"
        " AND status IN ('done', 'failed')", {"c": name, "since": since}).fetchone()
    calls, call_errors = store.conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE error IS NOT NULL) FROM calls"
        " WHERE connector = :c AND at >= :since", {"c": name, "since": since}).fetchone()
    last_minute = _scalar(runtime, "SELECT count(*) FROM calls WHERE connector = :c AND"
                          " at >= :since", c=name, since=ts(now - timedelta(minutes=1)))
    limit = _scalar(runtime, "SELECT rate_limit FROM calls WHERE connector = :c AND rate_limit"
                    " IS NOT NULL ORDER BY id DESC LIMIT 1", c=name) or DEFAULT_RATE_LIMIT
    events = _scalar(runtime, "SELECT count(*) FROM inbox WHERE connector = :c AND"
                     " received_at >= :since", c=name, since=since)
    return ConnectorMetrics(
        name=name, total_incidents=total,
        sync_success_rate=(done / attempts) if attempts else None,
        average_sync_seconds=average, api_calls_24h=calls, api_errors_24h=call_errors,
        rate_limit_usage=last_minute / limit, rate_limit=limit, webhook_events_24h=events,
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
    last_event = parse_ts(_scalar(runtime, "SELECT max(received_at) FROM inbox WHERE"
                                  " connector = :c", c=name))
    if settings.enable_webhook and settings.sync_direction.pulls and not any(
            c.name == "webhook" for c in checks):
        if last_event is None:
            checks.append(Check(name="webhook", label="Webhook", ok=True,
                                detail="No events received yet"))
        else:
            checks.append(Check(name="webhook", label="Webhook", ok=True,
                                detail=f"Receiving events (last: {ago(last_event, now)})"))
    queued, stuck, failed = _outbox_counts(runtime, name,
                                           waiting_since=now - timedelta(minutes=2))
    last_sync = runtime.store.last_sync(name)
    interval = parse_duration(settings.sync_interval)
    polled = parse_ts(_scalar(runtime, "SELECT updated_at FROM sync_cursors WHERE"
                              " connector = :c", c=name))
    late_poll = settings.sync_direction.pulls and polled is not None and (
        now - polled).total_seconds() > 3 * interval
    when = f"last sync: {ago(last_sync, now)}" if last_sync else "never synced"
    if stuck or failed:
        problems = ([f"{stuck} change(s) waiting over 2 minutes"] if stuck else []) + (
            [f"{failed} change(s) failed"] if failed else [])
        checks.append(Check(
            name="sync", label="Sync Status", ok=False,
            detail=f"{', '.join(problems)} ({when})",
            fix=f"im connector sync {name}; im connector status {name} shows the last error"))
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
    critical = {"api", "auth"}
    if any(not c.ok and c.name in critical for c in checks):
        verdict = "unhealthy"
    elif all(c.ok for c in checks):
        verdict = "healthy"
    else:
        verdict = "degraded"
    return verdict, checks
