"""The repositories a store implements, one per aggregate, and the unit of work that holds them.

These are the contract of a storage implementation: the SQLite one (`im.storage.sqlite`) is the
first; a PostgreSQL one (several `im serve` replicas on one database) would be a second package
beside it that implements the same Protocols and `im.storage.Store`, and nothing outside
`im.storage` would change. Repositories never commit: the unit of work they come from does.

Times are aware datetimes and ids are the core's (`INC-7`), whatever a store keeps; how they
are stored is the implementation's business. A queue state may be given as its enum member or
its word ("pending"): the members are the words.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol

from im.models import ConnectorRecord, Incident, Link, Severity, Status, TimelineEvent
from im.storage.records import InboxRow, InboxStatus, OutboxRow, OutboxStatus
from im.workflows import Rule, Run

# (connector, delivery id, event type, raw body, received at): an event as a webhook brings it
InboundEventRow = tuple[str, str, str, bytes, datetime]
# an incident declared in a report's period, with its timeline and links
DeclaredIncident = tuple[Incident, list[TimelineEvent], list[Link]]


class IncidentRepository(Protocol):
    """Incidents and their services."""

    def add(self, *, title: str, description: str, severity: Severity,
            services: Sequence[str], fields: dict[str, str], correlation_id: str,
            created_by: str, at: datetime) -> Incident:
        """A new open incident, numbered next."""
        ...

    def get(self, incident_id: str) -> Incident | None:
        """The incident with that id; None for an unknown or malformed id."""
        ...

    def by_correlation_id(self, correlation_id: str) -> Incident | None: ...

    def find(self, *, statuses: Sequence[Status] = (), severities: Sequence[Severity] = (),
             services: Sequence[str] = (), limit: int | None = None) -> list[Incident]:
        """Incidents matching every filter given, newest first (services: any of them, as
        stored in lower case)."""
        ...

    def set_services(self, incident_id: str, at: datetime, services: Sequence[str]) -> None:
        """Replace an incident's services (in this order) and set its updated_at."""
        ...

    def update(self, incident_id: str, at: datetime, **changes: Any) -> None:
        """Set fields of an incident (status, severity, assignee and the *_at times) and
        its updated_at."""
        ...

    def declared_page(self, start: datetime, end: datetime, *,
                      after: tuple[datetime, str] | None, limit: int) -> list[Incident]:
        """Up to `limit` incidents declared in [start, end), oldest first (by declared time,
        then number), starting after `after` (the declared time and id of the last incident
        of the page before; None for the first page). Reads an index range: what a page
        costs follows its size, not how much history there is."""
        ...

    def sla_overdue(self, *, severity: Severity, statuses: Sequence[Status], kind: str,
                    started_before: datetime) -> list[Incident]:
        """Incidents of `severity` in one of `statuses` whose timer (started when declared or
        last reopened) started before then, with no breach of `kind` recorded for that start:
        the timers of that kind overdue and not yet notified. Reads an index, not every
        open incident: what it costs follows what is due."""
        ...

    def count_by_status_and_severity(self) -> list[tuple[str, str, int]]:
        """(status, severity, how many) of every pair there is. /metrics asks on each
        scrape: a count kept as incidents change, not a count of every incident."""
        ...


class TimelineRepository(Protocol):
    def add(self, incident_id: str, *, at: datetime, kind: str, text: str, actor: str,
            system: str, data: dict[str, Any] | None = None) -> TimelineEvent: ...

    def of_incident(self, incident_id: str) -> list[TimelineEvent]:
        """An incident's events in the order they happened."""
        ...

    def of_incidents(self, incident_ids: Sequence[str]) -> dict[str, list[TimelineEvent]]:
        """The events of these incidents, each's in the order they happened, by incident id
        (incidents without events are left out)."""
        ...


class LinkRepository(Protocol):
    """Remote incidents that connectors keep in step with im incidents."""

    def upsert(self, link: Link, *, initial_status: str | None = None) -> None:
        """Insert or update a link; fields given as None keep their stored values.
        `initial_status` is the remote status of a link that does not exist yet, when
        `link.remote_status` is None (an existing link keeps its own)."""
        ...

    def replace(self, link: Link) -> None:
        """Write an existing link whole, fields given as None included: a link that now
        follows another remote incident keeps nothing of the one it followed."""
        ...

    def move(self, link: Link, service: str) -> None:
        """The link of `link`'s incident, connector and service is now for `service`."""
        ...

    def find(self, incident_id: str | None = None, *, connector: str | None = None,
             remote_id: str | None = None) -> list[Link]:
        """Links matching every filter given, by incident, connector and service."""
        ...

    def of_incidents(self, incident_ids: Sequence[str]) -> dict[str, list[Link]]:
        """The links of these incidents, by incident id (incidents without links are left
        out), each's by connector and service."""
        ...

    def open_links(self, connector: str, *, declared_since: datetime) -> list[Link]:
        """The connector's links whose remote incident im believes open (open or
        acknowledged), of im incidents declared since then, by incident and service. Reads
        those links only (an index of the open ones), never every link the connector made:
        what a poll costs follows what is open, not the years of resolved history."""
        ...

    def linked_connectors(self) -> set[str]:
        """Names of the connectors with links, removed connectors' included."""
        ...

    def incidents_linked(self, connector: str, *, updated_since: datetime | None = None
                         ) -> int:
        """How many incidents have a link of this connector (updated since then). The total
        is a count kept as links are made, moved or removed (it costs the same whatever the
        history); since a time, only the links updated since are read."""
        ...


class OutboxRepository(Protocol):
    """Local changes waiting to be pushed to connectors, one row per connector and service."""

    def add(self, *, connector: str, incident_id: str, service: str, action: str,
            payload: dict[str, Any], at: datetime, origin_system: str | None = None) -> None:
        """Queue a change, due at once; in the transaction that makes the local change.
        `origin_system`: the system the change came from ("im" or a connector's name)."""
        ...

    def move_service(self, *, connector: str, incident_id: str, service: str,
                     to: str) -> None:
        """The changes of an incident still to push to a connector for `service` are for
        `to` (the remote incident they change is now there); one being pushed is left."""
        ...

    def claim_next(self, *, now: datetime, lease_seconds: float,
                   connector: str | None = None, incident_id: str | None = None,
                   due_only: bool = True, exclude: Sequence[int] = ()) -> OutboxRow | None:
        """Claim the next deliverable row (see Store.claim_outbox), or None."""
        ...

    def finish(self, row_id: int, *, at: datetime, attempt: int | None = None) -> bool:
        """Delivered. With `attempt` (the claim's, `OutboxRow.attempts`), only if that claim
        still holds it: False if its lease ran out and another worker claimed it since (who
        then records the delivery); finish, retry and fail all say so."""
        ...

    def retry(self, row_id: int, *, error: str, next_attempt_at: datetime,
              attempt: int | None = None) -> bool: ...

    def release(self, row_id: int, *, at: datetime) -> None:
        """A claimed row back in line, due at once (a finished one is left as it is)."""
        ...

    def fail(self, row_id: int, *, error: str, at: datetime,
             attempt: int | None = None) -> bool: ...

    def requeue_failed(self, *, connector: str, at: datetime,
                       incident_id: str | None = None) -> int:
        """Failed rows back in line, attempts reset; how many."""
        ...

    def find(self, *, connector: str | None = None,
             statuses: Sequence[OutboxStatus | str] = (),
             incident_id: str | None = None) -> list[OutboxRow]:
        """Rows matching every filter given, oldest first."""
        ...

    def discard_queued(self, connector: str) -> None:
        """Forget a removed connector's rows still to deliver (delivered ones are history)."""
        ...

    def purge_done(self, *, done_before: datetime) -> int:
        """Forget rows delivered before then, but the latest of them for each connector (a
        connector idle for longer still knows when it last delivered); how many went."""
        ...

    def queued_waiting_and_failed(self, connector: str, *,
                                  waiting_since: datetime | None = None
                                  ) -> tuple[int, int, int]:
        """How many of a connector's rows are queued, queued since before `waiting_since`,
        and failed."""
        ...

    def delivery_figures_since(self, connector: str, since: datetime
                               ) -> tuple[int, int, float | None]:
        """Of the rows made since then and settled (done or failed): how many were
        delivered, the attempts of all, and the average seconds from change to delivery."""
        ...

    def last_delivered_at(self, connector: str) -> datetime | None: ...

    def last_error(self, connector: str) -> tuple[str, datetime] | None:
        """The latest delivery error of a connector and when (its retry or its failure)."""
        ...

    def count_by_connector_and_status(self) -> list[tuple[str, str, int]]:
        """(connector, status, how many) of every pair there is: a count kept as rows
        change (/metrics asks on each scrape), not a count of every row."""
        ...


class InboxRepository(Protocol):
    """Raw inbound events, kept from their receipt until they are applied (and a while after,
    so duplicates are recognised)."""

    def add_many(self, events: Sequence[InboundEventRow]) -> list[bool]:
        """Store events; for each, whether it was new (its delivery id not stored before,
        nor earlier in the batch)."""
        ...

    def claim(self, *, now: datetime, lease_seconds: float, connector: str | None = None,
              limit: int = 1, exclude: Sequence[str] = ()) -> list[InboxRow]:
        """Claim up to `limit` of the oldest pending events (or ones whose claim's lease ran
        out), oldest first; none of the connectors in `exclude`."""
        ...

    def release(self, row_ids: Sequence[int]) -> None: ...

    def finish(self, row_id: int, *, at: datetime,
               status: InboxStatus | str = InboxStatus.DONE, error: str | None = None,
               attempt: int | None = None) -> bool:
        """Done, or quarantined with why. With `attempt` (the claim's, `InboxRow.attempts`),
        only if that claim still holds it: False if its lease ran out and another worker
        claimed the event since (who then applies it)."""
        ...

    def requeue_quarantined(self, *, connector: str, ids: Sequence[int] = ()) -> int: ...

    def find(self, *, connector: str | None = None,
             statuses: Sequence[InboxStatus | str] = ()) -> list[InboxRow]: ...

    def purge_done(self, *, received_before: datetime) -> int: ...

    def quarantined_count(self, connector: str, *, received_since: datetime | None = None
                          ) -> int: ...

    def received_count(self, connector: str, *, since: datetime) -> int: ...

    def last_received_at(self, connector: str) -> datetime | None: ...

    def last_processed_at(self, connector: str) -> datetime | None: ...

    def count_by_connector_and_status(self) -> list[tuple[str, str, int]]:
        """(connector, status, how many) of every pair there is: a count kept as rows
        change (/metrics asks on each scrape), not a count of every row."""
        ...


class ConnectorRepository(Protocol):
    def save(self, record: ConnectorRecord) -> None:
        """Insert or replace (its created_at kept)."""
        ...

    def get(self, name: str) -> ConnectorRecord | None: ...

    def all(self) -> list[ConnectorRecord]:
        """By name."""
        ...

    def delete(self, name: str) -> None: ...


class CursorRepository(Protocol):
    """Where each connector's last poll stopped."""

    def get(self, connector: str) -> str | None: ...

    def set(self, connector: str, cursor: str, *, at: datetime) -> None: ...

    def delete(self, connector: str) -> None: ...

    def updated_at(self, connector: str) -> datetime | None:
        """When the connector's cursor last moved (its last poll)."""
        ...


class CallRepository(Protocol):
    """The calls connectors made to their remote systems."""

    def add(self, *, connector: str, at: datetime, method: str, path: str,
            status: int | None, duration_ms: float, error: str | None,
            rate_limit: int | None = None, rate_remaining: int | None = None) -> None: ...

    def counts_since(self, connector: str, since: datetime) -> tuple[int, int]:
        """(calls, calls that failed) since then."""
        ...

    def latest_status(self, connector: str) -> int | None:
        """The HTTP status of the connector's latest call."""
        ...

    def latest_rate_limit(self, connector: str) -> int | None:
        """The rate limit the remote last announced."""
        ...

    def last_error(self, connector: str) -> tuple[str, datetime] | None: ...

    def purge(self, *, before: datetime) -> int: ...


class LogRepository(Protocol):
    def add_many(self, entries: Sequence[dict[str, Any]]) -> None:
        """Entries with at, level, levelno, component, connector, message and data."""
        ...

    def find(self, *, since: datetime | None = None, min_level: int = 0,
             component: str | None = None, text: str | None = None, after_id: int = 0,
             limit: int = 1000) -> list[dict[str, Any]]:
        """The latest `limit` entries matching (`text` as written, in any field), oldest
        first."""
        ...

    def purge(self, *, before: datetime) -> int: ...


class BreachRepository(Protocol):
    """The SLA breaches notified: one per incident, timer kind and start."""

    def add(self, *, number: int, kind: str, started_at: datetime, due_at: datetime,
            target_seconds: float, severity: str, detected_at: datetime) -> bool:
        """Record a breach; False when it was recorded already (by another process)."""
        ...


class TokenRepository(Protocol):
    """API tokens, by name; only their hashes."""

    def add(self, *, name: str, hash: str, read_only: bool, created_at: datetime) -> bool:
        """False when a token of that name exists already."""
        ...

    def replace_hash(self, name: str, hash: str) -> bool: ...

    def delete(self, name: str) -> bool: ...

    def all(self) -> list[tuple[str, bool, datetime]]:
        """(name, read_only, created_at) of every token, by name."""
        ...

    def by_hash(self, hash: str) -> tuple[str, bool] | None:
        """(name, read_only) of the token with that hash."""
        ...


class WorkflowRepository(Protocol):
    """Workflow rules (im.workflows.Rule), by name."""

    def save(self, rule: Rule) -> None:
        """Insert or replace the rule of that name (its created_at kept)."""
        ...

    def get(self, name: str) -> Rule | None: ...

    def all(self) -> list[Rule]:
        """Every rule, by name."""
        ...

    def delete(self, name: str) -> bool: ...


class WorkflowRunRepository(Protocol):
    """Workflow actions queued to run (im.workflows.Run): pending -> running (claimed, with a
    lease) -> done | failed."""

    def add(self, *, workflow: str, step: int, action: str, settings: dict[str, Any],
            incident_id: str, trigger: str, event_id: int, at: datetime) -> int:
        """Queue a step for a triggering event; 0 (and nothing queued) if that step was
        queued for that event before, else 1."""
        ...

    def claim_next(self, *, now: datetime, lease_seconds: float,
                   incident_id: str | None = None, exclude: Sequence[int] = (),
                   deliveries_first_since: datetime | None = None) -> Run | None:
        """The next due run (pending and due, or running with its lease run out), claimed.
        With `deliveries_first_since`, a run queued since then is not due while its incident
        has changes for connected systems, queued no later than it, on their way: being
        delivered, or not tried yet (a war room links the paging incident and the chat message
        that its change makes). One whose delivery failed holds nothing (an outage)."""
        ...

    def finish(self, run_id: int, *, at: datetime, attempt: int | None = None) -> bool:
        """Done; with `attempt`, only while that claim holds it (as OutboxRepository.finish)."""
        ...

    def retry(self, run_id: int, *, error: str, next_attempt_at: datetime,
              attempt: int | None = None) -> bool: ...

    def fail(self, run_id: int, *, error: str, at: datetime,
             attempt: int | None = None) -> bool: ...

    def find(self, *, incident_id: str | None = None,
             statuses: Sequence[str] = ()) -> list[Run]:
        """Runs by id."""
        ...


class MetaRepository(Protocol):
    """Small values of the installation (its id, public URLs, a connector's failed poll)."""

    def get(self, key: str) -> str | None: ...

    def set(self, key: str, value: str) -> None: ...

    def pop(self, key: str) -> str | None:
        """Remove a value, returning it."""
        ...


class SeenKeyRepository(Protocol):
    """Keys recorded once, each until it expires (`Runtime.first_time`)."""

    def add(self, key: str, *, now: datetime, expires_at: datetime) -> bool:
        """Record `key` until `expires_at`; True when it is new: not recorded, or recorded
        with an expiry not later than `now` (kept anew). Two processes adding the same key
        at once: one of them is told it is new."""
        ...

    def purge(self, *, before: datetime) -> int:
        """Forget the keys that expired before then; how many went."""
        ...


class Repositories(Protocol):
    """Every repository of one store, all on one connection."""

    @property
    def incidents(self) -> IncidentRepository: ...

    @property
    def timeline(self) -> TimelineRepository: ...

    @property
    def links(self) -> LinkRepository: ...

    @property
    def outbox(self) -> OutboxRepository: ...

    @property
    def inbox(self) -> InboxRepository: ...

    @property
    def connectors(self) -> ConnectorRepository: ...

    @property
    def cursors(self) -> CursorRepository: ...

    @property
    def calls(self) -> CallRepository: ...

    @property
    def logs(self) -> LogRepository: ...

    @property
    def breaches(self) -> BreachRepository: ...

    @property
    def tokens(self) -> TokenRepository: ...

    @property
    def meta(self) -> MetaRepository: ...

    @property
    def workflows(self) -> WorkflowRepository: ...

    @property
    def workflow_runs(self) -> WorkflowRunRepository: ...

    @property
    def seen_keys(self) -> SeenKeyRepository: ...


class UnitOfWork(Repositories, Protocol):
    """The repositories of one transaction: what they write commits together, or not at all
    (`Store.transaction()` yields it)."""

    def savepoint(self) -> AbstractContextManager[None]:
        """Undo only this block if it raises; the transaction goes on."""
        ...

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once the transaction commits; never if it rolls back."""
        ...
