"""Outbox delivery: push each queued local change to its connector, in order, exactly once.

Rows are claimed in a transaction with a lease, so two workers never deliver the same row and a
crashed worker's row is delivered again after its lease runs out. A retry after a crash repeats
the remote call; connectors make that harmless with the idempotency key (derived from the
incident's correlation id and the service), so a retry links to the remote incident that already
exists instead of creating a second one.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import msgspec

from im.connectors import Connector, PushRequest, PushResult, RemoteStatus, idempotency_key
from im.errors import ConnectorError, ImError
from im.models import Incident, Link
from im.storage import OutboxRow

if TYPE_CHECKING:
    from im.runtime import Runtime

log = logging.getLogger("im.sync")

# How long a claimed outbox row is held by the process delivering it: longer than any one
# remote call takes, so a slow push is never delivered twice at once; after it, the row of a
# process that died is delivered again.
OUTBOX_LEASE_SECONDS = 120.0
MAX_ATTEMPTS = 50
BACKOFF_BASE = 2.0
BACKOFF_CAP = 600.0


def backoff(attempt: int, hint: float | None = None) -> float:
    """Seconds before the next try: capped exponential with full jitter, or the remote's hint."""
    if hint is not None and hint > 0:
        return min(hint, BACKOFF_CAP) + random.uniform(0, 1)
    return random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2 ** min(attempt, 20)))


class DeliveryReport(msgspec.Struct, kw_only=True):
    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    errors: list[str] = []
    tried: list[int] = []  # the outbox rows tried, in order


def deliver_outbox(runtime: Runtime, *, connector: str | None = None,
                   incident_id: str | None = None, due_only: bool = True,
                   limit: int | None = None, budget: float | None = None,
                   progress: Callable[[OutboxRow], None] | None = None) -> DeliveryReport:
    """Deliver queued rows until none is deliverable (or `limit` were tried, or `budget`
    seconds passed: what is left stays queued, and connectors are told the deadline).

    `due_only=False` also tries rows waiting for their backoff (a manual sync); each row is
    tried at most once per call either way.
    """
    store = runtime.store
    report = DeliveryReport()
    instances: dict[str, Connector | ImError] = {}
    tried = report.tried
    deadline = time.monotonic() + budget if budget is not None else None
    while limit is None or len(tried) < limit:
        if deadline is not None and time.monotonic() >= deadline:
            break
        row = store.claim_outbox(now=runtime.clock(), lease_seconds=OUTBOX_LEASE_SECONDS,
                                 connector=connector, incident_id=incident_id,
                                 due_only=due_only, exclude=tried)
        if row is None:
            break
        tried.append(row.id)
        try:
            if row.connector not in instances:
                try:
                    instances[row.connector] = runtime.connector(row.connector)
                except ImError as error:
                    instances[row.connector] = error
                except Exception as error:  # a plugin that fails to load: said, kept queued
                    instances[row.connector] = ImError(
                        f"connector {row.connector} cannot be used: a plugin failed to load"
                        f" ({type(error).__name__}: {error})")
            instance = instances[row.connector]
            if isinstance(instance, ImError):
                _retry(runtime, row, ConnectorError(str(instance), retryable=True), report)
            else:
                _deliver(runtime, instance, row, report, deadline)
        except KeyboardInterrupt:
            # Ctrl-C: the row goes back in line at once rather than when its lease runs out,
            # for `im serve` or the next command to deliver (a crash leaves it to the lease)
            store.release_outbox(row.id, at=runtime.clock())
            raise
        if progress is not None:
            progress(row)
    return report


def _deliver(runtime: Runtime, connector: Connector, row: OutboxRow,
             report: DeliveryReport, deadline: float | None = None) -> None:
    store = runtime.store
    incident = store.get_incident(row.incident_id)
    if incident is None:  # cannot happen through the core; never loop on it
        store.fail_outbox(row.id, error="the incident no longer exists", at=runtime.clock())
        report.failed += 1
        return
    links = store.links(incident.id, connector=connector.name)
    link = next((candidate for candidate in links if candidate.service == row.service), None)
    request = PushRequest(action=row.action, incident=incident, service=row.service, link=link,
                          payload=row.payload,
                          idempotency_key=idempotency_key(incident.correlation_id, row.service),
                          attempt=row.attempts, deadline=deadline, queued_at=row.created_at,
                          origin_system=row.origin_system)
    try:
        result = connector.push(request)
    except ConnectorError as error:
        _retry(runtime, row, error, report)
        return
    except Exception as error:  # a bug in a connector must not lose the row
        log.exception("connector %s failed to push outbox row %s", connector.name, row.id)
        _retry(runtime, row, ConnectorError(f"{type(error).__name__}: {error}",
                                            retryable=True), report)
        return
    now = runtime.clock()
    try:
        _record_delivery(runtime, connector, row, incident, result, now)
    except _LinkedElsewhere as conflict:
        # a remote incident follows one im incident and service: a connector that gives the
        # id of one linked elsewhere has a bug the operator must see (the change is set
        # aside, not retried for ever, and nothing is linked twice)
        assert result.link is not None
        _retry(runtime, row, ConnectorError(
            f"connector {connector.name} gave remote incident {result.link.remote_id} for"
            f" {incident.id} ({row.service}), but it is linked to {conflict.holder.incident_id}"
            f" ({conflict.holder.service}) already: a connector's remote ids must be unique"),
            report)
        return
    except _TakenOver:
        _taken_over(row)
        return
    report.delivered += 1


class _LinkedElsewhere(Exception):
    def __init__(self, holder: Link) -> None:
        self.holder = holder


def _record_delivery(runtime: Runtime, connector: Connector, row: OutboxRow,
                     incident: Incident, result: PushResult, now: datetime) -> None:
    """The link, the timeline lines and the row's `done`, in one transaction (checked there:
    the remote incident linked to no other incident and service)."""
    store = runtime.store
    with store.transaction():
        if result.link is not None:
            holder = next((other for other in store.links(connector=connector.name,
                                                          remote_id=result.link.remote_id)
                           if (other.incident_id, other.service)
                           != (incident.id, row.service)), None)
            if holder is not None:
                raise _LinkedElsewhere(holder)
            # a remote incident a create made (or found) is open until the remote says more
            store.upsert_link(Link(incident_id=incident.id, connector=connector.name,
                                   service=row.service, updated_at=now,
                                   **msgspec.structs.asdict(result.link)),
                              initial_status=RemoteStatus.OPEN if row.action == "declare"
                              else None)
        # the line that names whom the remote system assigned (else the last) carries it as
        # data, for reports: who was paged must not depend on a connector's wording
        naming = next((i for i, line in enumerate(result.timeline)
                       if result.assignee in line), len(result.timeline) - 1
                      ) if result.assignee else -1
        for index, line in enumerate(result.timeline):
            data = {"action": row.action, "service": row.service}
            if index == naming:
                data["remote_assignee"] = result.assignee
            store.add_timeline(incident.id, at=now, kind="sync", text=line,
                               actor=connector.name, system=connector.name, data=data)
        if result.assignee and result.assignee != incident.assignee:
            store.update_incident(incident.id, now, assignee=result.assignee)
        if not store.finish_outbox(row.id, at=now, attempt=row.attempts):
            raise _TakenOver  # undoes this transaction: the other worker records it


class _TakenOver(Exception):
    """This worker's claim of a change ran out (a delivery slower than the lease) and another
    worker claimed it since: that one records the delivery; this one records nothing."""


def _taken_over(row: OutboxRow) -> None:
    log.warning("%s of %s was taken over by another worker after this one's claim ran out:"
                " recorded there, not here", row.action, row.incident_id,
                extra={"connector": row.connector})


def _retry(runtime: Runtime, row: OutboxRow, error: ConnectorError,
           report: DeliveryReport) -> None:
    now = runtime.clock()
    message = str(error)
    report.errors.append(f"{row.connector} {row.incident_id} {row.action}: {message}")
    if error.retryable and row.attempts < MAX_ATTEMPTS:
        delay = backoff(row.attempts, error.retry_after)
        if not runtime.store.retry_outbox(row.id, error=message, attempt=row.attempts,
                                          next_attempt_at=now + timedelta(seconds=delay)):
            _taken_over(row)
            return
        report.retrying += 1
        log.warning("%s of %s not delivered (attempt %d): %s; tried again in %.0f s",
                    row.action, row.incident_id, row.attempts, message, delay,
                    extra={"connector": row.connector})
    else:
        if not runtime.store.fail_outbox(row.id, error=message, at=now,
                                         attempt=row.attempts):
            _taken_over(row)
            return
        report.failed += 1
        log.error("%s of %s set aside after %d attempt(s): %s; `im connector sync %s"
                  " --retry-failed` tries it again", row.action, row.incident_id, row.attempts,
                  message, row.connector, extra={"connector": row.connector})
