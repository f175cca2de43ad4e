"""Polling PagerDuty: the safety net for missed webhooks.

PagerDuty lists incidents by creation time, and logs what happens to them by the time it
happens, so a poll asks, with list calls (never one call per incident listed):

1. every incident created since the cursor (new ones become im incidents, in windows that
   never page past PagerDuty's offset ceiling);
2. every incident whose state changed since the cursor: the account's log of state changes
   (`/log_entries?is_overview=true`) with each entry's incident as it is now.

So a poll costs ceil(new / 100) + ceil(entries / 100) list calls (plus one per 10,000 records),
where entries are the log's state changes of the window (a new incident's trigger, an
escalation, an acknowledge, a resolve...), whatever the number of incidents in PagerDuty or
links in im. The log is read from LOG_OVERLAP before the cursor: PagerDuty's clock may lag
im's. Once an hour (SWEEP; and instead of the log when the cursor is older than that) a poll
sweeps: it lists the incidents created up to PagerDuty's 6-month range before the cursor that
are open now, and reads by itself each linked incident im believes open that no listing shows
(at most CONFIRM_MAX; usually none): what no log shows (an incident PagerDuty no longer
knows, a change logged with a clock far behind) is found there. A sweep costs in step with the
open incidents; it is recorded as made only once its poll has read everything.

Each remote incident seen becomes a state change (triggered, acknowledged, resolved), which the
core applies only where it differs from what im knows.
"""

from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from im import ChangeKind, InboundChange, PullRequest, PullResult, parse_idempotency_key
from im_pagerduty.client import parse_time

if TYPE_CHECKING:
    from im_pagerduty.connector import PagerDutyConnector

log = logging.getLogger("im.sync")

OVERLAP = timedelta(seconds=30)  # re-read the cursor's edge: applying twice is harmless
FIRST_POLL = timedelta(hours=24)
LOOKBACK = timedelta(days=180)  # PagerDuty lists at most 6 months at a time
SWEEP = timedelta(hours=1)  # how often a poll lists every open incident too
LOG_OVERLAP = timedelta(minutes=10)  # the log is read from this long before the cursor
STATUS_KIND = {"triggered": ChangeKind.OPENED, "acknowledged": ChangeKind.ACKNOWLEDGED,
               "resolved": ChangeKind.RESOLVED}


def _change(connector: PagerDutyConnector, incident: dict[str, Any], now: datetime
            ) -> InboundChange | None:
    from im_pagerduty.webhooks import (
        im_service,
        merged_into,
        merged_label,
        resolved_label,
        severity,
        state,
    )

    kind = STATUS_KIND.get(incident.get("status", ""))
    if kind is None:
        return None
    # a resolve by merge, told by the listing itself (resolve_reason): no call per incident
    merge = merged_into(incident) if kind == ChangeKind.RESOLVED else None
    keyed = parse_idempotency_key(incident.get("incident_key"))
    assignee = connector.assignee_of(
        [a.get("assignee") or {} for a in incident.get("assignments") or []])
    by = incident.get("last_status_change_by") or {}
    changed = parse_time(incident.get("last_status_change_at")) or parse_time(
        incident.get("created_at")) or now
    # with auto_resolve off a resolve is kept on the link only, as webhooks do
    held = kind == ChangeKind.RESOLVED and not connector.settings.custom.auto_resolve
    number = incident.get("incident_number")
    if merge is not None:
        return InboundChange(
            remote_id=incident["id"], event_id=f"poll:{incident['id']}:merged",
            action=ChangeKind.MERGED, occurred_at=changed,
            actor=connector.email_of(by.get("id", "")) or by.get("summary")
            or "PagerDuty", text=merged_label(number, merge),
            remote_number=str(number or "") or None, remote_url=incident.get("html_url"),
            remote_status=state(incident.get("status")), observed_at=now, **merge)
    return InboundChange(
        remote_id=incident["id"], event_id=f"poll:{incident['id']}:{incident.get('status')}",
        action=kind, occurred_at=changed,
        # people by e-mail, as webhooks name them; a service or the system by its summary
        actor=connector.email_of(by.get("id", "")) or by.get("summary") or "PagerDuty",
        remote_number=str(incident.get("incident_number") or "") or None,
        remote_url=incident.get("html_url"), remote_status=state(incident.get("status")),
        title=incident.get("title"),
        service=keyed[1] if keyed else im_service(connector, incident.get("service") or {}),
        severity=severity(connector, incident), assignee=assignee,
        correlation_id=keyed[0] if keyed else None, record_only=held, observed_at=now,
        text=f"{resolved_label(incident.get('incident_number'))} (auto_resolve is off)"
        if held else "",
    )


def pull(connector: PagerDutyConnector, request: PullRequest) -> PullResult:
    now = connector.runtime.clock()
    client = connector.client
    seen: dict[str, dict[str, Any]] = {}
    sweep = False
    if request.incident is not None:
        # One incident: its linked PagerDuty incidents, found by the keys im made them with.
        for link in request.links:
            found = client.get(f"/incidents/{link.remote_id}").get("incident")
            if found:
                seen[found["id"]] = found
    else:
        since = (parse_time(request.cursor) or now - FIRST_POLL) - OVERLAP
        for incident in client.incidents_between(since, now):
            seen[incident["id"]] = incident
        store = connector.runtime.store
        swept = parse_time(store.get_meta(_swept_key(connector)))
        # a cursor older than a sweep's interval (im stopped, a first poll): the sweep reads
        # what the log would, in step with the open incidents rather than months of changes
        sweep = since < now - SWEEP or swept is None or swept <= now - SWEEP
        if not sweep:
            # from further back than the cursor: PagerDuty's clock may lag im's, and an entry
            # be logged a little late; re-read entries are known already (confirmed)
            for incident in client.changed_between(since - LOG_OVERLAP, now):
                seen[incident["id"]] = incident
        else:
            # by time windows too: an account can have more than 10,000 incidents open
            for incident in client.incidents_between(since - LOOKBACK, since, {
                    "statuses[]": ["triggered", "acknowledged"]}):
                seen[incident["id"]] = incident
    changes = [c for c in (_change(connector, i, now) for i in seen.values()) if c]
    if request.incident is None:
        if sweep:
            changes += _resolved_meanwhile(connector, seen, now, since - LOOKBACK)
            # only once it is done: a sweep cut short (an outage, the deadline) is made by
            # the next poll (two servers sweeping at once cost a listing more, no harm)
            store.set_meta(_swept_key(connector), now.isoformat())
        _check_subscription(connector)
    # merges first: the incident one was merged into then finds the link moved to it, rather
    # than become an im incident of its own
    changes.sort(key=lambda change: change.action != ChangeKind.MERGED)
    return PullResult(changes=changes, cursor=now.isoformat())


def _swept_key(connector: PagerDutyConnector) -> str:
    return f"pagerduty:{connector.name}:swept_at"


def _check_subscription(connector: PagerDutyConnector) -> None:
    """PagerDuty disables a subscription after three failed deliveries in a row, silently:
    say so loudly on every poll until it is enabled again."""
    from im_pagerduty.client import PagerDutyError

    subscription_id = connector.settings.custom.webhook_subscription_id
    if not connector.settings.enable_webhook or not subscription_id:
        return
    try:
        subscription = connector.client.get(f"/webhook_subscriptions/{subscription_id}")
    except PagerDutyError as error:
        if error.status == 404:
            log.warning("the PagerDuty webhook subscription %s no longer exists; run: im"
                        " connector webhook %s --enable", subscription_id, connector.name,
                        extra={"connector": connector.name})
        return
    from im_pagerduty.subscriptions import disabled

    if disabled(subscription.get("webhook_subscription") or {}):
        log.warning("PagerDuty disabled the webhook subscription %s (deliveries kept"
                    " failing); polling covers meanwhile; run: im connector webhook %s"
                    " --enable", subscription_id, connector.name,
                    extra={"connector": connector.name})


CONFIRM_MAX = 100  # missing incidents asked about one by one per sweep; the rest wait


def _resolved_meanwhile(connector: PagerDutyConnector, seen: dict[str, dict[str, Any]],
                        now: datetime, horizon: datetime) -> list[InboundChange]:
    """At a sweep: linked incidents im thinks are open but no listing of the poll shows open
    (only those the sweep's listing could have shown: declared after `horizon`).

    Missing from a listing is not proof of a resolve: the connector may point at another
    account or a PagerDuty that lost the incident. Each one is read directly (a rare call:
    a resolve is in PagerDuty's log, which the polls between sweeps read; at most CONFIRM_MAX
    a sweep) and its real state applied. One PagerDuty does not know becomes a `missing`
    change, with a warning: the core marks its link, which is not asked about again (a
    listing that shows it again restores it), and leaves the im incident as it is. A failure
    to read one ends the reading for this sweep, never the poll: what the listings gave is
    applied."""
    from im_pagerduty.client import PagerDutyError

    store = connector.runtime.store
    changes = []
    # only the links im believes open, of incidents the listings could have shown: never
    # every link the connector made (nearly all resolved long ago)
    missing = [link for link in store.open_links(connector.name, declared_since=horizon)
               if link.remote_id not in seen]
    if len(missing) > CONFIRM_MAX:  # others get their turn in later sweeps
        missing = random.sample(missing, CONFIRM_MAX)
    for link in missing:
        try:
            found = connector.client.get(f"/incidents/{link.remote_id}").get("incident")
        except PagerDutyError as error:
            if error.status != 404:
                log.warning("could not read PagerDuty incident %s (linked to %s): %s; tried"
                            " again at the next sweep", link.remote_id, link.incident_id, error,
                            extra={"connector": connector.name})
                break
            found = None
        if not found:
            log.warning("PagerDuty has no incident %s (linked to %s); %s left as it is: is"
                        " the connector pointed at another PagerDuty account?", link.remote_id,
                        link.incident_id, link.incident_id, extra={"connector": connector.name})
            number = f"#{link.remote_number}" if link.remote_number else link.remote_id
            changes.append(InboundChange(
                remote_id=link.remote_id, event_id=f"poll:{link.remote_id}:missing",
                action=ChangeKind.MISSING, occurred_at=now, observed_at=now, actor="PagerDuty",
                text=f"PagerDuty incident {number} ({link.service}) not found in PagerDuty;"
                     " im incident left as it is"))
            continue
        change = _change(connector, found, now)
        if change is not None:
            changes.append(change)
    return changes
