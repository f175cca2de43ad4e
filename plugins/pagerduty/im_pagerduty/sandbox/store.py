"""In-memory state of one sandbox account: dicts keyed by id plus the indexes lists need.

Only the event loop thread touches it, so it needs no locks.
"""

from __future__ import annotations

import bisect
from datetime import datetime

from im_pagerduty.sandbox.ids import IdMaker
from im_pagerduty.sandbox.model import (
    EscalationPolicy,
    Incident,
    LogEntry,
    Note,
    Priority,
    Schedule,
    Service,
    User,
    WebhookSubscription,
)


class Store:
    def __init__(self, id_seed: int | None = None) -> None:
        self.ids = IdMaker(id_seed)
        self.users: dict[str, User] = {}
        self._user_by_email: dict[str, str] = {}
        self.services: dict[str, Service] = {}
        self.escalation_policies: dict[str, EscalationPolicy] = {}
        self.schedules: dict[str, Schedule] = {}
        self.priorities: dict[str, Priority] = {}
        self.incidents: dict[str, Incident] = {}
        # Creation order is incident_number order: the default order of GET /incidents.
        self.incident_order: list[str] = []
        self._open_by_key: dict[tuple[str, str], str] = {}
        self.open_incidents: dict[str, Incident] = {}
        self.notes: dict[str, list[Note]] = {}
        self.log_entries: dict[str, LogEntry] = {}
        self.log_order: list[str] = []
        self.log_times: list[datetime] = []  # of log_order's entries, in the same order
        self.incident_log: dict[str, list[str]] = {}
        self.subscriptions: dict[str, WebhookSubscription] = {}
        self._last_incident_number = 0

    # directory

    def put_user(self, user: User) -> None:
        self.users[user.id] = user
        self._user_by_email[user.email.lower()] = user.id

    def user_by_email(self, email: str) -> User | None:
        user_id = self._user_by_email.get(email.strip().lower())
        return self.users.get(user_id) if user_id else None

    def put_service(self, service: Service) -> None:
        self.services[service.id] = service

    def put_escalation_policy(self, policy: EscalationPolicy) -> None:
        self.escalation_policies[policy.id] = policy

    def put_schedule(self, schedule: Schedule) -> None:
        self.schedules[schedule.id] = schedule

    def put_priority(self, priority: Priority) -> None:
        self.priorities[priority.id] = priority

    def set_priorities(self, names: tuple[str, ...]) -> None:
        by_rank = {p.order: p for p in self.priorities.values()}
        self.priorities = {}
        for order, name in enumerate(names, start=1):
            kept = by_rank.get(order)
            self.put_priority(Priority(
                id=kept.id if kept else self.ids.object_id(), name=name,
                description=kept.description if kept else name, order=order))

    # incidents

    def next_incident_number(self) -> int:
        self._last_incident_number += 1
        return self._last_incident_number

    def open_incident_with_key(self, service_id: str, incident_key: str) -> Incident | None:
        incident_id = self._open_by_key.get((service_id, incident_key))
        return self.incidents.get(incident_id) if incident_id else None

    def put_incident(self, incident: Incident) -> None:
        previous = self.incidents.get(incident.id)
        if previous is None:
            self.incident_order.append(incident.id)
        elif previous.is_open:
            self._open_by_key.pop((previous.service_id, previous.incident_key), None)
            self.open_incidents.pop(previous.id, None)
        self.incidents[incident.id] = incident
        if incident.is_open:
            self._open_by_key[(incident.service_id, incident.incident_key)] = incident.id
            self.open_incidents[incident.id] = incident

    def add_note(self, note: Note) -> None:
        self.notes.setdefault(note.incident_id, []).append(note)

    def add_log_entry(self, entry: LogEntry) -> None:
        self.log_entries[entry.id] = entry
        # the account's log in time order (entries made back-dated, by bulk_create, among
        # them), so that a listing by time reads only its range, newest first like PagerDuty
        at = bisect.bisect_right(self.log_times, entry.created_at)
        self.log_times.insert(at, entry.created_at)
        self.log_order.insert(at, entry.id)
        self.incident_log.setdefault(entry.incident_id, []).append(entry.id)

    # webhooks

    def put_subscription(self, subscription: WebhookSubscription) -> None:
        self.subscriptions[subscription.id] = subscription
