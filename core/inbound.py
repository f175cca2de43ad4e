"""Inbound sync: apply what happened in an outside system to im, once, in order, without echoes.

Webhook deliveries are stored raw in the inbox first (so a crash loses nothing that was
acknowledged) and processed from there; polls feed the same `apply_change`. The rules:

- A change that only restates what im already knows (a status im pushed, a note im wrote, the
  creation of an incident im created) is recorded as confirmed, never applied twice.
- A status change older than the last one applied to the same remote incident is stale and
  does not roll the state back.
- A change older than the replay window (7 days, longer than any sender's retries) is logged
  and not applied.
- For an incident with several linked remote incidents of one connector (one per service):
  the first acknowledgement mitigates the im incident; the im incident resolves when every
  linked remote incident is resolved (until then the timeline says how many are left); a
  reopened remote incident reopens it.
- A remote incident merged into another (MERGED) never resolves the im incident: the problem
  goes on under the surviving remote incident. If no im incident follows that one yet, the
  link moves to it (same im incident, same service; its status counts as open until the
  remote system says more). If it is linked already (for another service of the same im
  incident, or to another im incident: a remote incident has one link), the merged one's link
  is kept with the status `merged`, which holds nothing open, and the timeline says who
  follows the survivor; the im incident stays as it is.
- Every applied change is on the timeline with its origin (the remote actor and the
  connector's name), and goes on to the other connectors, never back to its own.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgspec

from im import incidents
from im.humanize import duration
from im.connectors import ChangeKind, Connector, InboundChange, RemoteStatus, WebhookRequest
from im.errors import ConnectorError, ImError
from im.models import Action, Incident, Link, Origin, Status, TimelineEvent
from im.storage import InboxStatus, OutboxStatus

if TYPE_CHECKING:
    from im.runtime import Runtime

log = logging.getLogger("im.inbound")
webhook_log = logging.getLogger("im.webhook")

REPLAY_WINDOW = timedelta(days=7)
# An event dated further ahead than this is quarantined, not applied: applied, it would make
# every genuine event until that date look stale, and stay inside the replay window for long.
FUTURE_TOLERANCE = timedelta(minutes=5)
# How long a claimed batch of inbox events is held by the process applying it; a crashed
# server's events are taken up again after it. Not the outbox's lease (im.sync): applying
# events is local work, so a short lease brings a dead process's events back soon.
INBOX_LEASE_SECONDS = 20.0

# The remote status each kind of change leaves behind.
STATUS_AFTER = {ChangeKind.OPENED: RemoteStatus.OPEN,
                ChangeKind.ACKNOWLEDGED: RemoteStatus.ACKNOWLEDGED,
                ChangeKind.UNACKNOWLEDGED: RemoteStatus.OPEN,
                ChangeKind.RESOLVED: RemoteStatus.RESOLVED,
                ChangeKind.REOPENED: RemoteStatus.OPEN, ChangeKind.MISSING: RemoteStatus.MISSING}


class FutureEventError(ImError):
    """An authentic event dated ahead of im's clock beyond FUTURE_TOLERANCE: quarantined;
    `im connector replay` applies it once the clocks agree."""


def _future_dated(changes: list[InboundChange], now: datetime) -> FutureEventError | None:
    for change in changes:
        ahead = change.occurred_at - now
        if ahead > FUTURE_TOLERANCE:
            return FutureEventError(
                f"event dated {change.occurred_at.isoformat()},"
                f" {duration(ahead.total_seconds())} ahead of im's clock"
                f" (tolerance {duration(FUTURE_TOLERANCE.total_seconds())}); not applied")
    return None


class InboxReport(msgspec.Struct, kw_only=True):
    processed: int = 0
    quarantined: int = 0
    outcomes: dict[str, int] = {}


def process_inbox(runtime: Runtime, *, connector: str | None = None,
                  limit: int | None = None, batch: int = 200) -> InboxReport:
    """Apply stored events, oldest first, until none is left (or `limit` were processed).

    Events are claimed in batches; each event's changes and its `done` mark commit together
    (one transaction per batch, a savepoint per event), so a crash half way leaves events to be
    processed again from the start, never half applied, and one bad event is quarantined
    without undoing the others.
    """
    store = runtime.store
    report = InboxReport()
    instances: dict[str, Connector] = {}
    # connectors whose remote system asked to wait (a rate limit, an outage) during this call:
    # their events are left for a later pass, in order; the others' go on being applied
    waiting: set[str] = set()
    while limit is None or report.processed + report.quarantined < limit:
        size = batch if limit is None else min(batch, limit - report.processed
                                               - report.quarantined)
        rows = store.claim_inbox(now=runtime.clock(), lease_seconds=INBOX_LEASE_SECONDS,
                                 connector=connector, limit=size, exclude=sorted(waiting))
        if not rows:
            break
        # Reading the events may ask the remote system (a user's e-mail): outside any lock,
        # and done within half the lease, so that no other process takes these events over
        # while this one still waits (a rate limit's reset can be a minute)
        deadline = time.monotonic() + INBOX_LEASE_SECONDS / 2
        prepared: list[tuple[Any, Connector | None, list[InboundChange], Exception | None]] = []
        held: list[int] = []
        for row in rows:
            if row.connector in waiting:  # behind an event of its connector that waits
                held.append(row.id)
                continue
            try:
                instance = instances.get(row.connector) or runtime.connector(row.connector)
                instances[row.connector] = instance
                changes = instance.webhook_changes(WebhookRequest(headers={}, body=row.body,
                                                                  deadline=deadline))
                future = _future_dated(changes, runtime.clock())
                if future is not None:
                    prepared.append((row, None, [], future))
                    continue
                prepared.append((row, instance, changes, None))
            except ConnectorError as error:
                if not error.retryable:
                    prepared.append((row, None, [], error))
                    continue
                # The remote system is briefly unavailable: this event and the later ones of
                # its connector wait for a later pass (in order), they are not quarantined
                log.warning("event %s of %s waits: %s", row.delivery_id, row.connector, error,
                            extra={"connector": row.connector})
                waiting.add(row.connector)
                held.append(row.id)
            except Exception as error:
                prepared.append((row, None, [], error))
        if held:
            store.release_inbox(held)
        with store.transaction():
            for row, instance, changes, error in prepared:
                if error is None and instance is not None:
                    try:
                        with store.savepoint():
                            outcomes = []
                            touched: list[str] = []
                            for change in changes:
                                outcomes.append(apply_change(runtime, instance, change,
                                                             touched=touched))
                            if not store.finish_inbox(row.id, at=runtime.clock(),
                                                      attempt=row.attempts):
                                raise _TakenOver
                        for outcome in outcomes:
                            report.outcomes[outcome] = report.outcomes.get(outcome, 0) + 1
                        report.processed += 1
                        # the incident named, so that `im logs --filter INC-4` finds it
                        webhook_log.info("%s %s: %s%s", row.event_type, row.delivery_id,
                                         ", ".join(outcomes) or "nothing to apply",
                                         f" ({', '.join(dict.fromkeys(touched))})"
                                         if touched else "",
                                         extra={"connector": row.connector})
                        continue
                    except _TakenOver:
                        _taken_over(row)
                        continue
                    except Exception as failure:
                        error = failure
                # quarantine it: acknowledged events are never lost
                reason = f"{type(error).__name__}: {error}"
                if not store.finish_inbox(row.id, at=runtime.clock(),
                                          status=InboxStatus.QUARANTINED, error=reason,
                                          attempt=row.attempts):
                    _taken_over(row)
                    continue
                log.warning("event %s of %s quarantined: %s", row.delivery_id, row.connector,
                            reason, extra={"connector": row.connector})
                report.quarantined += 1
    return report


class _TakenOver(Exception):
    """This worker's claim of an event ran out and another worker claimed it since: what this
    one applied of it is undone, and the other applies it (once)."""


def _taken_over(row: Any) -> None:
    log.warning("event %s of %s was taken over by another worker after this one's claim ran"
                " out: applied there, not here", row.delivery_id, row.connector,
                extra={"connector": row.connector})


def apply_change(runtime: Runtime, connector: Connector, change: InboundChange, *,
                 touched: list[str] | None = None) -> str:
    """Apply one remote change; returns what happened: created, applied, recorded, confirmed,
    stale, expired, ignored or unlinked. The im incident it concerns is added to `touched`."""
    if not connector.settings.sync_direction.pulls:
        return "ignored"
    now = runtime.clock()
    # A replayed delivery is old news told again; what a poll read is the state now, however
    # long ago it came about (an incident open since before a long-stale cursor).
    if (change.observed_at or change.occurred_at) < now - REPLAY_WINDOW:
        log.warning("%s: change %s of %s is older than the replay window; not applied",
                    connector.name, change.event_id, change.remote_id)
        return "expired"
    store = runtime.store
    with store.transaction():
        links = store.links(connector=connector.name, remote_id=change.remote_id)
        if not links and change.action == ChangeKind.MERGED and change.merged_into and (
                store.links(connector=connector.name, remote_id=change.merged_into)):
            return "confirmed"  # the link moved to the survivor already: told again
        if not links:
            made = _made_by_im(runtime, change)
            if made is None:
                return _unlinked(runtime, connector, change, touched)
            if any(link.service == change.service
                   for link in store.links(made.id, connector=connector.name)):
                # im follows another remote incident for that service (one carrying the same
                # key, made after this one was resolved): not this one
                return "unlinked"
            links = [_first_link(runtime, connector, made, change)]
        link = links[0]
        if touched is not None:
            touched.append(link.incident_id)
        incident = store.get_incident(link.incident_id)
        assert incident is not None
        origin = Origin(actor=change.actor, system=connector.name)
        if change.action == ChangeKind.MERGED:
            # final, whoever merged: there is no later state of the merged incident to keep
            return _merged(runtime, connector, link, incident, change)
        new_status = STATUS_AFTER.get(change.action)
        if new_status is not None:
            # im's own change coming back, maybe late: the incident and the link have it from
            # the push already; applying it again could only undo what came since
            if change.echo:
                _sharpen(runtime, link, change, new_status)
                return "confirmed"
            known = link.remote_status == new_status
            if _older(change, link):
                # an older report of the state im has (a poll re-reading an open incident)
                # is no news; another is stale
                return "confirmed" if known and change.action != ChangeKind.REOPENED else "stale"
            _update_link(runtime, link, change, new_status)
            if known and change.action != ChangeKind.REOPENED:
                return "confirmed"
            if change.record_only or change.action == ChangeKind.MISSING:
                # the remote state is kept on the link; the im incident stays as it is
                _sync_line(runtime, incident.id, connector, change, change.text)
                return "recorded"
            held = _resolve_still_queued(runtime, connector, link, change, incident)
            if held:
                _sync_line(runtime, incident.id, connector, change, held)
                return "recorded"
            return _apply_status(runtime, connector, link, change, origin)
        if change.echo:
            return "confirmed"
        if change.action == ChangeKind.UPDATED and change.moved_to_service:
            return _moved(runtime, connector, link, incident, change)
        if change.action == ChangeKind.SEVERITY:
            return _severity(runtime, connector, link, incident, change, origin)
        if change.action == ChangeKind.NOTE:
            if change.text:
                incidents.add_note(runtime, incident.id, change.text, origin=origin)
            return "applied"
        if change.action in (ChangeKind.ASSIGNED, ChangeKind.ESCALATED):
            if change.text:
                data = {"remote_id": change.remote_id}
                if change.assignee:  # whom the remote system assigned, for reports
                    data["remote_assignee"] = change.assignee
                store.add_timeline(incident.id, at=now, kind=change.action, text=change.text,
                                   actor=change.actor, system=connector.name, data=data)
            if change.assignee and change.assignee != incident.assignee:
                incidents.assign(runtime, incident.id, change.assignee, origin=origin)
            return "applied"
        _sync_line(runtime, incident.id, connector, change, change.text)
        return "applied"


def _sync_line(runtime: Runtime, incident_id: str, connector: Connector,
               change: InboundChange, text: str) -> None:
    """A timeline line about a remote change that is not an im action of its own."""
    if text:
        runtime.store.add_timeline(incident_id, at=runtime.clock(), kind="sync", text=text,
                                   actor=change.actor, system=connector.name,
                                   data={"remote_id": change.remote_id,
                                         "action": change.action})


def _severity(runtime: Runtime, connector: Connector, link: Link, incident: Incident,
              change: InboundChange, origin: Origin) -> str:
    """The remote incident's severity changed: the im incident takes it, and the other
    connectors and this connector's remote incidents of the other services are told. A change
    older than the severity's latest (a late or replayed delivery, from any system) is stale:
    the later one stands. The remote change's own words (the priority it was given) are on
    the timeline either way, with when it happened there, which later changes are measured
    against."""
    severity = change.severity
    settled = _severity_settled_at(runtime.store.timeline(incident.id))
    if settled is not None and change.occurred_at < settled:
        if change.text:
            _sync_line(runtime, incident.id, connector, change,
                       f"{change.text}; {incident.id} stays {incident.severity.value},"
                       " set later")
        return "stale"
    when = {"remote_at": change.occurred_at.isoformat()}
    if change.text:
        runtime.store.add_timeline(incident.id, at=runtime.clock(), kind="sync",
                                   text=change.text, actor=change.actor, system=connector.name,
                                   data={"remote_id": change.remote_id,
                                         "action": change.action, **when})
    if severity is None or severity == incident.severity:
        return "applied" if severity is None else "confirmed"
    incidents.set_severity(runtime, incident.id, severity, origin=origin,
                           origin_service=link.service, data=when)
    return "applied"


def _severity_settled_at(events: list[TimelineEvent]) -> datetime | None:
    """When the incident's severity was last settled: an im change at its time, a remote one
    at the time it happened there (kept as `remote_at`)."""
    latest: datetime | None = None
    for event in events:
        if event.kind == incidents.KINDS[Action.SEVERITY]:
            when = _time(event.data.get("remote_at")) or event.at
        elif event.kind == "sync" and event.data.get("action") == ChangeKind.SEVERITY:
            when = _time(event.data.get("remote_at"))
        else:
            continue
        if when is not None and (latest is None or when > latest):
            latest = when
    return latest


def _time(value: object) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _moved(runtime: Runtime, connector: Connector, link: Link, incident: Incident,
           change: InboundChange) -> str:
    """A remote incident moved to another service in the remote system: its link is for that
    service from now on, and so are the changes still to push to it. The incident takes the
    new service in place of the old one, unless another link still follows the old one (then
    it gains the new one). When the incident follows another remote incident for that
    service already, the link stays where it is; the timeline says so."""
    store = runtime.store
    to = str(change.moved_to_service)
    text = change.text or f"{connector.name} incident moved to {to}"
    if to == link.service:
        _sync_line(runtime, incident.id, connector, change, text)
        return "applied"
    links = store.links(incident.id)
    if any(other.connector == connector.name and other.service == to for other in links):
        _sync_line(runtime, incident.id, connector, change,
                   f"{text}; im follows another {connector.name} incident for {to}, so this"
                   f" one stays linked for {link.service}")
        return "recorded"
    now = runtime.clock()
    shared = any(other.service == link.service for other in links if other != link)
    services = [s for s in incident.services if shared or s != link.service]
    if to not in services:
        services.append(to)
    with store.transaction() as tx:
        tx.links.move(link, to)
        tx.outbox.move_service(connector=connector.name, incident_id=incident.id,
                               service=link.service, to=to)
        if services != incident.services:
            tx.incidents.set_services(incident.id, now, services)
    _sync_line(runtime, incident.id, connector, change, text)
    return "applied"


def _merged(runtime: Runtime, connector: Connector, link: Link, incident: Incident,
            change: InboundChange) -> str:
    """A remote incident merged into another: the link follows the survivor where no link
    does yet, else it is kept as merged (see the module's rules). The im incident's status
    is left as it is either way."""
    store = runtime.store
    if link.remote_status == RemoteStatus.MERGED:
        return "confirmed"  # told again (a poll after the webhook)
    number = f"#{link.remote_number}" if link.remote_number else link.remote_id
    into = (f"#{change.merged_into_number}" if change.merged_into_number
            else change.merged_into or "another incident")
    text = change.text or f"{connector.name} incident {number} merged into {into}"
    holder = next(iter(store.links(connector=connector.name, remote_id=change.merged_into)),
                  None) if change.merged_into else None
    data = {"remote_id": change.remote_id, "action": change.action,
            "merged_into": change.merged_into}
    if change.merged_into and holder is None:
        store.replace_link(msgspec.structs.replace(
            link, remote_id=change.merged_into,
            remote_number=change.merged_into_number, remote_url=change.merged_into_url,
            # the survivor is open (nothing merges into a resolved incident); when it last
            # changed is unknown, so none of its own reports is taken for older
            remote_status=STATUS_AFTER[ChangeKind.OPENED], remote_updated_at=None,
            updated_at=change.observed_at or runtime.clock()))
        outcome = "applied"
    else:
        _update_link(runtime, link, change, RemoteStatus.MERGED)
        if holder is not None and holder.incident_id == incident.id:
            text += f" (linked for {holder.service})"
        elif holder is not None:
            text += f" (linked to {holder.incident_id}); {incident.id} stays {incident.status}"
        outcome = "recorded"
    store.add_timeline(incident.id, at=runtime.clock(), kind="sync", text=text,
                       actor=change.actor, system=connector.name, data=data)
    return outcome


def _resolve_still_queued(runtime: Runtime, connector: Connector, link: Link,
                          change: InboundChange, incident: Incident) -> str | None:
    """What to say when a missing remote incident is seen again, open as it was, while im's
    own resolve for it (made since) is still to be delivered: that resolve stands. None
    otherwise: the change applies as any other."""
    if not (link.remote_status == RemoteStatus.MISSING and change.action == ChangeKind.OPENED
            and incident.status in (Status.RESOLVED, Status.CLOSED)):
        return None
    waiting = [row for row in runtime.store.outbox(
        connector=connector.name, incident_id=incident.id,
        statuses=(OutboxStatus.PENDING, OutboxStatus.DELIVERING, OutboxStatus.FAILED))
        if row.service == link.service and row.action in ("resolve", "close")]
    if not waiting:
        return None
    number = f"#{link.remote_number}" if link.remote_number else link.remote_id
    return (f"{connector.name} incident {number} ({link.service}) found again, open; im's"
            f" {waiting[0].action} for it is queued"
            + (" (set aside: `im connector sync --retry-failed`)"
               if waiting[0].status is OutboxStatus.FAILED else ""))


def _older(change: InboundChange, link: Link) -> bool:
    """Whether `change` happened before the last change applied to the link. A poll's report
    is older when the link changed after the poll read it (a push or a webhook came in
    meanwhile). A remote that gives whole seconds (REST listings) is compared at that
    precision: its report of the same second as a webhook's (which has milliseconds) is not
    older. (So an event from earlier in the second of a change im pushed is not older
    either: taking it for older would hold back a responder's change made right after im's
    until the next poll.)"""
    if change.observed_at and link.updated_at and link.updated_at > change.observed_at:
        return True
    last = link.remote_updated_at
    if last is None:
        return False
    if change.occurred_at.microsecond == 0:
        last = last.replace(microsecond=0)
    return change.occurred_at < last


def _sharpen(runtime: Runtime, link: Link, change: InboundChange, status: str) -> None:
    """im's own change coming back by webhook carries its time to the millisecond, where the
    push's answer had whole seconds: kept, it tells an event from earlier in that second (a
    late ack timeout, say) for older, as it is."""
    last = link.remote_updated_at
    if (link.remote_status == status and last is not None and last.microsecond == 0
            and change.occurred_at.microsecond and change.occurred_at.replace(microsecond=0)
            == last):
        runtime.store.upsert_link(msgspec.structs.replace(
            link, remote_updated_at=change.occurred_at))


def _update_link(runtime: Runtime, link: Link, change: InboundChange, status: str) -> None:
    # `missing` is im's finding, at im's time: the remote's last change is still the one to
    # compare with when the incident is listed again
    runtime.store.upsert_link(msgspec.structs.replace(
        link, remote_status=status, remote_updated_at=link.remote_updated_at
        if change.action == ChangeKind.MISSING else change.occurred_at,
        remote_number=change.remote_number or link.remote_number,
        remote_url=change.remote_url or link.remote_url, updated_at=runtime.clock()))


def _made_by_im(runtime: Runtime, change: InboundChange) -> Incident | None:
    """The im incident a remote incident with no link was created for, by the key im created
    it with (the remote's event raced the create's answer, or the answer was lost)."""
    if not change.correlation_id:
        return None
    incident = runtime.store.find_incident(correlation_id=change.correlation_id)
    return incident if incident is not None and change.service in incident.services else None


def _first_link(runtime: Runtime, connector: Connector, incident: Incident,
                change: InboundChange) -> Link:
    """The link of a remote incident im created, as im created it (open): the change is
    then applied like any other, so a responder's acknowledgement that came first is not
    lost."""
    link = Link(incident_id=incident.id, connector=connector.name, service=str(change.service),
                remote_id=change.remote_id, remote_number=change.remote_number,
                remote_url=change.remote_url, remote_status=STATUS_AFTER[ChangeKind.OPENED],
                # made from this report: not newer than it
                updated_at=change.observed_at or runtime.clock())
    runtime.store.upsert_link(link)
    return link


def _unlinked(runtime: Runtime, connector: Connector, change: InboundChange,
              touched: list[str] | None) -> str:
    """A remote incident im has no link to and did not create: a new one becomes an im
    incident."""
    store = runtime.store
    if change.action not in (ChangeKind.OPENED, ChangeKind.ACKNOWLEDGED) or not change.title:
        return "unlinked"
    origin = Origin(actor=change.actor, system=connector.name)
    service = change.service or "default"
    incident = incidents.declare(runtime, title=change.title, severity=change.severity or "SEV-3",
                                 services=[service], origin=origin,
                                 description=change.text)
    store.upsert_link(Link(
        incident_id=incident.id, connector=connector.name, service=service,
        remote_id=change.remote_id, remote_number=change.remote_number,
        remote_url=change.remote_url, remote_status=STATUS_AFTER[change.action],
        remote_updated_at=change.occurred_at, updated_at=runtime.clock()))
    number = f"#{change.remote_number}" if change.remote_number else change.remote_id
    store.add_timeline(incident.id, at=runtime.clock(), kind="sync",
                       text=f"Linked to {connector.name} incident {number}"
                            + (f" {change.remote_url}" if change.remote_url else ""),
                       actor=change.actor, system=connector.name)
    if change.assignee:
        incidents.assign(runtime, incident.id, change.assignee, origin=origin)
    if change.action == ChangeKind.ACKNOWLEDGED:
        incidents.transition(runtime, incident.id, Action.ACK, origin=origin)
    if touched is not None:
        touched.append(incident.id)
    return "created"


def _apply_status(runtime: Runtime, connector: Connector, link: Link, change: InboundChange,
                  origin: Origin) -> str:
    store = runtime.store
    incident = store.get_incident(link.incident_id)
    assert incident is not None
    siblings = store.links(incident.id, connector=connector.name)
    number = f"#{link.remote_number}" if link.remote_number else link.remote_id
    if change.assignee and change.assignee != incident.assignee:
        incidents.assign(runtime, incident.id, change.assignee, origin=origin)
    if change.action == ChangeKind.ACKNOWLEDGED:
        if incident.status is Status.OPEN:
            incidents.transition(runtime, incident.id, Action.ACK, note=change.text,
                                 origin=origin)
            return "applied"
        return "confirmed"
    if change.action == ChangeKind.RESOLVED:
        if incident.status in (Status.RESOLVED, Status.CLOSED):
            return "confirmed"
        # one the remote system no longer has (missing) keeps no incident open
        # (nor one merged into another, which a link of its own follows)
        open_ = [s for s in siblings
                 if s.remote_status not in (RemoteStatus.RESOLVED, RemoteStatus.MISSING,
                                            RemoteStatus.MERGED)]
        if open_:
            store.add_timeline(
                incident.id, at=runtime.clock(), kind="sync",
                text=f"{connector.name} incident {number} ({link.service}) resolved;"
                     f" {len(open_)} of {len(siblings)} linked incidents still open",
                actor=change.actor, system=connector.name)
            return "applied"
        incidents.transition(runtime, incident.id, Action.RESOLVE, note=change.text,
                             origin=origin)
        return "applied"
    # triggered again: reopened, or unacknowledged
    if incident.status in (Status.RESOLVED, Status.CLOSED):
        incidents.transition(runtime, incident.id, Action.REOPEN,
                             note=change.text or f"{connector.name} incident {number} reopened",
                             origin=origin)
        return "applied"
    if incident.status is Status.MITIGATED and change.action == ChangeKind.UNACKNOWLEDGED and (
            not any(s.remote_status == RemoteStatus.ACKNOWLEDGED for s in siblings)):
        incidents.transition(runtime, incident.id, Action.UNACK, note=change.text,
                             origin=origin)
        return "applied"
    if link.remote_status == RemoteStatus.RESOLVED and len(siblings) > 1:  # one of several reopened
        store.add_timeline(incident.id, at=runtime.clock(), kind="sync",
                           text=f"{connector.name} incident {number} ({link.service}) reopened",
                           actor=change.actor, system=connector.name)
        return "applied"
    return "confirmed"


def replay(runtime: Runtime, connector: str, ids: list[int] | None = None) -> InboxReport:
    """Put a connector's quarantined events back in line and process them."""
    runtime.store.requeue_inbox(connector=connector, ids=ids or [])
    return process_inbox(runtime, connector=connector)


def poll(runtime: Runtime, connector_name: str, *, incident_id: str | None = None,
         deadline: float | None = None) -> dict[str, int]:
    """Ask a connector what changed since its cursor and apply it (the safety net for missed
    webhooks). Returns how many changes had each outcome. `deadline` (time.monotonic()): the
    connector waits no longer (see PullRequest)."""
    from im.connectors import PullRequest

    store = runtime.store
    connector = runtime.connector(connector_name)
    if not connector.settings.sync_direction.pulls or type(connector).pull is Connector.pull:
        return {}
    incident = store.get_incident(incident_id) if incident_id else None
    links = store.links(incident.id, connector=connector_name) if incident else []
    try:
        result = connector.pull(PullRequest(cursor=None if incident else store.get_cursor(
            connector_name), incident=incident, links=links, deadline=deadline))
        outcomes: dict[str, int] = {}
        for change in result.changes:
            outcome = apply_change(runtime, connector, change)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
    except Exception as error:
        if incident is None:
            _poll_failed(runtime, connector_name, error)
        raise
    if incident is None:
        store.poll_succeeded(connector_name, result.cursor, at=runtime.clock())
    return outcomes


def _poll_failed(runtime: Runtime, connector_name: str, error: Exception) -> None:
    """Kept for `im connector status` and `health`, whatever the connector and whether or not
    the failure came from a call it recorded: a poll that fails every time would otherwise
    show only as a cursor that no longer moves."""
    try:
        runtime.store.record_poll_failure(connector_name, str(error) or type(error).__name__,
                                          at=runtime.clock())
    except Exception:  # the database itself failing: the poll's own error is the one to raise
        log.warning("could not record the failed poll of %s", connector_name, exc_info=True)
