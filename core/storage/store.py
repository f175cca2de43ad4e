"""The Store: what the rest of im knows of its database.

A store implementation (SQLite, `im.storage.sqlite`; PostgreSQL later) provides transactions
and the repositories of `im.storage.interfaces`. Domain code that writes several things at once
takes a unit of work and writes through its repositories:

    with store.transaction() as tx:
        incident = tx.incidents.add(...)
        tx.timeline.add(incident.id, ...)
        tx.outbox.add(...)

The methods below are shortcuts for one repository call: a write runs in its own transaction
(or joins the one this thread has open), a read sees the latest commit (or this thread's open
transaction). They are written once, here, against the interfaces, so a second store gets
them for nothing.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from im.models import ConnectorRecord, Incident, Link, Severity, Status, TimelineEvent
    from im.storage.interfaces import (DeclaredIncident, InboundEventRow, Repositories,
                                       UnitOfWork)
    from im.storage.records import (DatabaseSize, InboxRow, InboxStatus, OutboxRow,
                                    OutboxStatus)


# the meta key of a connector's failed poll (see record_poll_failure)
_POLL_FAILURE = "poll_failure:"


class Leadership(Protocol):
    def acquire(self) -> bool:
        """Take the duty if no server holds it, without waiting; True while this one holds
        it (a server that dies loses it, and another takes it at its next try)."""
        ...

    def release(self) -> None: ...


class Listener(Protocol):
    def wait(self, timeout: float) -> set[str]:
        """What kinds of work ("inbox": events received) some server stored since the last wait,
        waiting up to `timeout` seconds for the first; empty when the time ran out."""
        ...

    def close(self) -> None: ...


class Store(abc.ABC):
    # which engine: "sqlite" or "postgresql" (for `im db status` and the test kit's sql())
    kind: str = ""
    # where: a file's path, or a server's database by its URL without the password
    location: str = ""

    # -- what an implementation provides ---------------------------------------------------

    @abc.abstractmethod
    def transaction(self) -> AbstractContextManager[UnitOfWork]:
        """A write transaction; a nested call joins the outer one (in the same thread)."""

    @abc.abstractmethod
    def read(self) -> Repositories:
        """Repositories for reading: those of this thread's open transaction, if there is one,
        else ones whose every read sees the latest commit. Write through `transaction()`."""

    def independent_write(self) -> AbstractContextManager[UnitOfWork]:
        """A write transaction for rows that no rule reads before it writes (an event
        received, a call or a log line recorded), whose uniqueness the database's keys keep:
        where the store can, it does not wait for other writers (see the PostgreSQL store);
        else a transaction()."""
        return self.transaction()

    @abc.abstractmethod
    def savepoint(self) -> AbstractContextManager[None]:
        """Inside a transaction: undo only this block if it raises."""

    @abc.abstractmethod
    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once the current transaction commits (at once outside of one);
        never if it rolls back."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close this thread's connection (another is opened when next needed)."""

    @abc.abstractmethod
    def applied_migrations(self) -> list[str]:
        """The names of the migrations the database has had, in order (opening the store
        applies the pending ones first)."""

    @abc.abstractmethod
    def known_migrations(self) -> list[str]:
        """The names of the migrations this version of im has for this store, in order."""

    @abc.abstractmethod
    def migrate(self) -> list[str]:
        """Apply the pending migrations (as the first use of the store does anyway) and
        return the names of those this store applied: none where the database was up to
        date when it was opened."""

    @abc.abstractmethod
    def rows(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """The rows of one SQL statement with `?` parameters, whichever the store, in a
        transaction of its own: for tests (`im.testing.sql`) that check what is stored. im's
        own code asks the repositories."""

    # -- several servers on one database (a store that has them says so) -------------------

    def leadership(self, duty: str) -> Leadership | None:
        """The right to run `duty` (polling, SLA checks, housekeeping) in one server of the
        cluster at a time; None where the store has one host (every server runs its
        duties)."""
        return None

    def shared_rate_limits(self) -> Any:
        """A `limits` storage that every process on this database shares (give it to a
        `limits.strategies.FixedWindowRateLimiter`), so a cluster of servers spends one
        budget per remote account; None where processes keep their own budgets (one host)."""
        return None

    def listener(self) -> Listener | None:
        """A wait for work that another server stored (an event received);
        None where the store cannot tell."""
        return None

    # -- incidents and their timeline ------------------------------------------------------

    def insert_incident(self, *, title: str, description: str, severity: Severity,
                        services: Sequence[str], fields: dict[str, str], correlation_id: str,
                        created_by: str, at: datetime) -> Incident:
        with self.transaction() as tx:
            return tx.incidents.add(title=title, description=description, severity=severity,
                                    services=services, fields=fields,
                                    correlation_id=correlation_id, created_by=created_by,
                                    at=at)

    def get_incident(self, incident_id: str) -> Incident | None:
        return self.read().incidents.get(incident_id)

    def find_incident(self, *, correlation_id: str) -> Incident | None:
        return self.read().incidents.by_correlation_id(correlation_id)

    def list_incidents(self, *, statuses: Sequence[Status] = (),
                       severities: Sequence[Severity] = (), services: Sequence[str] = (),
                       limit: int | None = None) -> list[Incident]:
        return self.read().incidents.find(statuses=statuses, severities=severities,
                                          services=services, limit=limit)

    def update_incident(self, incident_id: str, at: datetime, **changes: Any) -> None:
        with self.transaction() as tx:
            tx.incidents.update(incident_id, at, **changes)

    def add_timeline(self, incident_id: str, *, at: datetime, kind: str, text: str, actor: str,
                     system: str, data: dict[str, Any] | None = None) -> TimelineEvent:
        with self.transaction() as tx:
            return tx.timeline.add(incident_id, at=at, kind=kind, text=text, actor=actor,
                                   system=system, data=data)

    def timeline(self, incident_id: str) -> list[TimelineEvent]:
        return self.read().timeline.of_incident(incident_id)

    def declared_in_batches(self, start: datetime, end: datetime, *, size: int
                            ) -> Iterator[list[DeclaredIncident]]:
        """The incidents declared in [start, end), oldest first, `size` at a time, each with
        its timeline and links: three reads a batch, each of one page (keyset pagination on
        the declared time and number, no OFFSET; one parameter for the batch's ids), so a
        caller that lets each batch go holds one batch whatever the period."""
        if size < 1:
            raise ValueError("a batch holds at least one incident")
        reads = self.read()
        after: tuple[datetime, str] | None = None
        while True:  # ends at the first short page; each starts after the last one's key
            page = reads.incidents.declared_page(start, end, after=after, limit=size)
            if not page:
                return
            ids = [incident.id for incident in page]
            timelines = reads.timeline.of_incidents(ids)
            links = reads.links.of_incidents(ids)
            yield [(incident, timelines.get(incident.id, []), links.get(incident.id, []))
                   for incident in page]
            if len(page) < size:
                return
            after = (page[-1].created_at, page[-1].id)

    # -- connectors and links --------------------------------------------------------------

    def save_connector(self, record: ConnectorRecord) -> None:
        with self.transaction() as tx:
            tx.connectors.save(record)

    def get_connector(self, name: str) -> ConnectorRecord | None:
        return self.read().connectors.get(name)

    def list_connectors(self) -> list[ConnectorRecord]:
        return self.read().connectors.all()

    def delete_connector(self, name: str) -> None:
        """Remove a connector and what only it used; links stay for the incidents' history."""
        with self.transaction() as tx:
            tx.connectors.delete(name)
            tx.outbox.discard_queued(name)
            tx.cursors.delete(name)
            tx.meta.pop(_POLL_FAILURE + name)

    def last_sync(self, connector: str) -> datetime | None:
        """When a connector last exchanged something: a delivery, an event, or a poll."""
        reads = self.read()
        times = [reads.outbox.last_delivered_at(connector),
                 reads.inbox.last_processed_at(connector), reads.cursors.updated_at(connector)]
        return max((at for at in times if at is not None), default=None)

    def upsert_link(self, link: Link, *, initial_status: str | None = None) -> None:
        with self.transaction() as tx:
            tx.links.upsert(link, initial_status=initial_status)

    def replace_link(self, link: Link) -> None:
        with self.transaction() as tx:
            tx.links.replace(link)

    def links(self, incident_id: str | None = None, *, connector: str | None = None,
              remote_id: str | None = None) -> list[Link]:
        return self.read().links.find(incident_id, connector=connector, remote_id=remote_id)

    def open_links(self, connector: str, *, declared_since: datetime) -> list[Link]:
        """See LinkRepository.open_links."""
        return self.read().links.open_links(connector, declared_since=declared_since)

    def get_cursor(self, connector: str) -> str | None:
        return self.read().cursors.get(connector)

    def set_cursor(self, connector: str, cursor: str, *, at: datetime) -> None:
        with self.transaction() as tx:
            tx.cursors.set(connector, cursor, at=at)

    # A connector's last poll, when it failed: a small value kept beside the installation's
    # others (table meta), so no store needs a table of its own for it. A poll that succeeds
    # removes it, in the transaction that moves the cursor.

    def record_poll_failure(self, connector: str, error: str, *, at: datetime) -> None:
        value = json.dumps({"error": error, "at": at.astimezone(UTC).isoformat()})
        with self.transaction() as tx:
            tx.meta.set(_POLL_FAILURE + connector, value)

    def poll_succeeded(self, connector: str, cursor: str | None, *, at: datetime) -> None:
        """The cursor moved to `cursor` (None: the connector keeps none), and the last poll
        failed no longer."""
        if cursor is None and self.last_poll_failure(connector) is None:
            return  # nothing to write
        with self.transaction() as tx:
            if cursor is not None:
                tx.cursors.set(connector, cursor, at=at)
            tx.meta.pop(_POLL_FAILURE + connector)

    def last_poll_failure(self, connector: str) -> tuple[str, datetime] | None:
        """(error, when) of the connector's last poll, when it failed."""
        value = self.read().meta.get(_POLL_FAILURE + connector)
        if value is None:
            return None
        found = json.loads(value)
        return str(found["error"]), datetime.fromisoformat(found["at"])

    # -- outbox ----------------------------------------------------------------------------

    def claim_outbox(self, *, now: datetime, lease_seconds: float,
                     connector: str | None = None, incident_id: str | None = None,
                     due_only: bool = True, exclude: Sequence[int] = ()) -> OutboxRow | None:
        """Claim the next deliverable row, or None.

        A row is deliverable when it is pending (and due, unless `due_only` is off) or its
        claim's lease ran out, and no earlier row of the same incident and connector is still
        waiting: a connector sees each incident's changes in the order they were made.
        """
        with self.transaction() as tx:
            return tx.outbox.claim_next(now=now, lease_seconds=lease_seconds,
                                        connector=connector, incident_id=incident_id,
                                        due_only=due_only, exclude=exclude)

    def finish_outbox(self, row_id: int, *, at: datetime, attempt: int | None = None) -> bool:
        with self.transaction() as tx:
            return tx.outbox.finish(row_id, at=at, attempt=attempt)

    def retry_outbox(self, row_id: int, *, error: str, next_attempt_at: datetime,
                     attempt: int | None = None) -> bool:
        with self.transaction() as tx:
            return tx.outbox.retry(row_id, error=error, next_attempt_at=next_attempt_at,
                                   attempt=attempt)

    def release_outbox(self, row_id: int, *, at: datetime) -> None:
        """Give a claimed row back, due at once (its delivery was interrupted); a row already
        finished is left as it is. Its attempt stays counted: the next one checks what the
        interrupted one may have done remotely."""
        with self.transaction() as tx:
            tx.outbox.release(row_id, at=at)

    def fail_outbox(self, row_id: int, *, error: str, at: datetime,
                    attempt: int | None = None) -> bool:
        with self.transaction() as tx:
            return tx.outbox.fail(row_id, error=error, at=at, attempt=attempt)

    def requeue_failed_outbox(self, *, connector: str, at: datetime,
                              incident_id: str | None = None) -> int:
        """Put failed rows back in line (the operator fixed the cause)."""
        with self.transaction() as tx:
            return tx.outbox.requeue_failed(connector=connector, at=at, incident_id=incident_id)

    def outbox(self, *, connector: str | None = None,
               statuses: Sequence[OutboxStatus | str] = (),
               incident_id: str | None = None) -> list[OutboxRow]:
        return self.read().outbox.find(connector=connector, statuses=statuses,
                                       incident_id=incident_id)

    # -- inbox -----------------------------------------------------------------------------

    def store_inbox(self, *, connector: str, delivery_id: str, event_type: str, body: bytes,
                    at: datetime) -> bool:
        """Store a raw inbound event; False when this delivery id was stored before."""
        return self.store_inbox_many([(connector, delivery_id, event_type, body, at)])[0]

    def store_inbox_many(self, events: Sequence[InboundEventRow]) -> list[bool]:
        """Store (connector, delivery id, event type, body, received at) events in one
        transaction (one fsync for all); for each, whether it was new."""
        with self.independent_write() as tx:
            return tx.inbox.add_many(events)

    def claim_inbox(self, *, now: datetime, lease_seconds: float,
                    connector: str | None = None, limit: int = 1,
                    exclude: Sequence[str] = ()) -> list[InboxRow]:
        """Claim up to `limit` of the oldest pending events (or ones whose claim's lease ran
        out), oldest first; none of the connectors in `exclude`."""
        with self.transaction() as tx:
            return tx.inbox.claim(now=now, lease_seconds=lease_seconds, connector=connector,
                                  limit=limit, exclude=exclude)

    def release_inbox(self, row_ids: Sequence[int]) -> None:
        """Give claimed events back, untouched, to be processed on a later pass."""
        with self.transaction() as tx:
            tx.inbox.release(row_ids)

    def finish_inbox(self, row_id: int, *, at: datetime, status: InboxStatus | str = "done",
                     error: str | None = None, attempt: int | None = None) -> bool:
        """Mark a claimed event processed (`done`) or set aside (`quarantined`, with why);
        with `attempt`, only while that claim holds it (see InboxRepository.finish)."""
        with self.transaction() as tx:
            return tx.inbox.finish(row_id, at=at, status=status, error=error, attempt=attempt)

    def requeue_inbox(self, *, connector: str, ids: Sequence[int] = ()) -> int:
        """Put quarantined events back in line (all of a connector's, or these ids)."""
        with self.transaction() as tx:
            return tx.inbox.requeue_quarantined(connector=connector, ids=ids)

    def inbox(self, *, connector: str | None = None,
              statuses: Sequence[InboxStatus | str] = ()) -> list[InboxRow]:
        return self.read().inbox.find(connector=connector, statuses=statuses)

    # -- calls and logs --------------------------------------------------------------------

    def record_call(self, *, connector: str, at: datetime, method: str, path: str,
                    status: int | None, duration_ms: float, error: str | None,
                    rate_limit: int | None = None, rate_remaining: int | None = None) -> None:
        with self.independent_write() as tx:
            tx.calls.add(connector=connector, at=at, method=method, path=path, status=status,
                         duration_ms=duration_ms, error=error, rate_limit=rate_limit,
                         rate_remaining=rate_remaining)

    def add_logs(self, entries: Sequence[dict[str, Any]]) -> None:
        """Store log entries (at, level, levelno, component, connector, message, data)."""
        with self.independent_write() as tx:
            tx.logs.add_many(entries)

    def logs(self, *, since: datetime | None = None, min_level: int = 0,
             component: str | None = None, text: str | None = None, after_id: int = 0,
             limit: int = 1000) -> list[dict[str, Any]]:
        return self.read().logs.find(since=since, min_level=min_level, component=component,
                                     text=text, after_id=after_id, limit=limit)

    def purge(self, *, inbox_before: datetime, logs_before: datetime,
              calls_before: datetime, outbox_before: datetime,
              keys_before: datetime | None = None) -> dict[str, int]:
        """Forget what is past its keeping time: processed events (after the replay window),
        old log lines, call records and delivered changes; and the keys of `first_time`
        that expired before `keys_before`, where given."""
        with self.transaction() as tx:
            return {"inbox": tx.inbox.purge_done(received_before=inbox_before),
                    "logs": tx.logs.purge(before=logs_before),
                    "calls": tx.calls.purge(before=calls_before),
                    "outbox": tx.outbox.purge_done(done_before=outbox_before),
                    "keys": (tx.seen_keys.purge(before=keys_before)
                             if keys_before is not None else 0)}

    @abc.abstractmethod
    def size(self) -> DatabaseSize:
        """The database's size on disk and, per table, its rows and bytes (`im db status`):
        reads every table whole, so for a command, never for a loop."""

    # -- API tokens (hashes only) and small values -----------------------------------------

    def insert_api_token(self, *, name: str, hash: str, read_only: bool,
                         created_at: datetime) -> bool:
        """False when a token of that name exists already."""
        with self.transaction() as tx:
            return tx.tokens.add(name=name, hash=hash, read_only=read_only,
                                 created_at=created_at)

    def replace_api_token_hash(self, name: str, hash: str) -> bool:
        with self.transaction() as tx:
            return tx.tokens.replace_hash(name, hash)

    def delete_api_token(self, name: str) -> bool:
        with self.transaction() as tx:
            return tx.tokens.delete(name)

    def api_tokens(self) -> list[tuple[str, bool, datetime]]:
        """(name, read_only, created_at) of every token, by name."""
        return self.read().tokens.all()

    def api_token_by_hash(self, hash: str) -> tuple[str, bool] | None:
        """(name, read_only) of the token with that hash."""
        return self.read().tokens.by_hash(hash)

    def first_time(self, key: str, *, now: datetime, expires_at: datetime) -> bool:
        """Record `key` until `expires_at`; whether it is new (see Runtime.first_time). The
        key's uniqueness is the database's, so this waits for no other writer where the
        store can (independent_write)."""
        with self.independent_write() as tx:
            return tx.seen_keys.add(key, now=now, expires_at=expires_at)

    def get_meta(self, key: str) -> str | None:
        return self.read().meta.get(key)

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as tx:
            tx.meta.set(key, value)

    def pop_meta(self, key: str) -> str | None:
        """Remove a meta value, returning it."""
        with self.transaction() as tx:
            return tx.meta.pop(key)

    def probe_write(self, at: datetime) -> None:
        """A write that must reach the disk, as a readiness check: raises when the database
        is read only, full or damaged."""
        with self.transaction() as tx:
            tx.meta.set("health_probe", at.astimezone(UTC).isoformat(timespec="microseconds"))

