"""REST API v2 representations of the stored records, `include[]` honoured.

Built per request from the records: nothing here is stored, so a list is always current.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from im_pagerduty.sandbox.links import Links
from im_pagerduty.sandbox.model import (
    EscalationPolicy,
    Incident,
    LogEntry,
    Note,
    Priority,
    Responder,
    ResponderRequestRecord,
    Schedule,
    Service,
    User,
    WebhookSubscription,
)
from im_pagerduty.sandbox.oncall import (
    OnCall,
    Shift,
    render_layer,
    render_overrides,
    render_schedule,
)
from im_pagerduty.sandbox.store import Store
from im_pagerduty.sandbox.times import format_time

REDACTED = "-- redacted --"


def _time(moment: datetime | None) -> str | None:
    return format_time(moment) if moment else None


class Renderer:
    def __init__(self, store: Store, links: Links) -> None:
        self.store = store
        self.links = links
        self._service_status: dict[str, str] | None = None

    # references

    def user_ref(self, user_id: str) -> dict[str, Any]:
        user = self.store.users.get(user_id)
        return self.links.ref("user", user_id, user.name if user else user_id)

    def service_ref(self, service_id: str) -> dict[str, Any]:
        service = self.store.services.get(service_id)
        return self.links.ref("service", service_id, service.name if service else service_id)

    def escalation_policy_ref(self, policy_id: str) -> dict[str, Any]:
        policy = self.store.escalation_policies.get(policy_id)
        return self.links.ref("escalation_policy", policy_id, policy.name if policy else policy_id)

    def schedule_ref(self, schedule_id: str) -> dict[str, Any]:
        schedule = self.store.schedules.get(schedule_id)
        return self.links.ref("schedule", schedule_id, schedule.name if schedule else schedule_id)

    def priority_ref(self, priority_id: str) -> dict[str, Any]:
        priority = self.store.priorities.get(priority_id)
        return self.links.ref("priority", priority_id, priority.name if priority else priority_id)

    def incident_ref(self, incident: Incident) -> dict[str, Any]:
        return self.links.ref("incident", incident.id, f"[#{incident.number}] {incident.title}")

    def agent_ref(self, user_id: str | None, service_id: str) -> dict[str, Any]:
        """Who acted: a user, or the service when PagerDuty itself did (timed escalation)."""
        return self.user_ref(user_id) if user_id else self.service_ref(service_id)

    # directory

    def user(self, user: User) -> dict[str, Any]:
        return {
            **self.links.ref("user", user.id, user.name),
            "type": "user",
            "name": user.name,
            "email": user.email,
            "time_zone": user.time_zone,
            "color": user.color,
            "role": user.role,
            "avatar_url": f"{self.links.web_base}/avatars/{user.id}.png",
            "description": None,
            "invitation_sent": False,
            "job_title": user.job_title,
            "teams": [],
            "contact_methods": [],
            "notification_rules": [],
        }

    def _service_statuses(self) -> dict[str, str]:
        # PagerDuty derives a service's status from its open incidents.
        if self._service_status is None:
            status: dict[str, str] = {}
            for incident in self.store.open_incidents.values():
                if incident.status == "triggered":
                    status[incident.service_id] = "critical"
                else:
                    status.setdefault(incident.service_id, "warning")
            self._service_status = status
        return self._service_status

    def service(self, service: Service, include: Collection[str] = ()) -> dict[str, Any]:
        policy = self.store.escalation_policies.get(service.escalation_policy_id)
        return {
            **self.links.ref("service", service.id, service.name),
            "type": "service",
            "name": service.name,
            "description": service.description,
            "auto_resolve_timeout": service.auto_resolve_timeout,
            "acknowledgement_timeout": service.acknowledgement_timeout,
            "created_at": format_time(service.created_at),
            "status": self._service_statuses().get(service.id, "active"),
            "escalation_policy": (
                self.escalation_policy(policy)
                if policy and "escalation_policies" in include
                else self.escalation_policy_ref(service.escalation_policy_id)
            ),
            "teams": [],
            "integrations": [],
            "incident_urgency_rule": {"type": "constant", "urgency": service.urgency},
            "alert_creation": "create_alerts_and_incidents",
        }

    def escalation_policy(
        self, policy: EscalationPolicy, include: Collection[str] = ()
    ) -> dict[str, Any]:
        full_targets = "targets" in include
        rules = []
        for rule in policy.rules:
            targets = []
            for target in rule.targets:
                if target.kind == "user":
                    user = self.store.users.get(target.id)
                    targets.append(
                        self.user(user) if user and full_targets else self.user_ref(target.id)
                    )
                else:
                    schedule = self.store.schedules.get(target.id)
                    targets.append(
                        self.schedule(schedule)
                        if schedule and full_targets
                        else self.schedule_ref(target.id)
                    )
            rules.append(
                {
                    "id": rule.id,
                    "escalation_delay_in_minutes": rule.delay_minutes,
                    "targets": targets,
                    "escalation_rule_assignment_strategy": "assign_to_everyone",
                }
            )
        services = [s for s in self.store.services.values() if s.escalation_policy_id == policy.id]
        return {
            **self.links.ref("escalation_policy", policy.id, policy.name),
            "type": "escalation_policy",
            "name": policy.name,
            "description": policy.description,
            "num_loops": policy.num_loops,
            "on_call_handoff_notifications": "if_has_services",
            "escalation_rules": rules,
            "services": [
                self.service(s) if "services" in include else self.service_ref(s.id)
                for s in services
            ],
            "teams": [],
        }

    def _entries(self, shifts: list[Shift]) -> list[dict[str, Any]]:
        return [
            {
                "user": self.user_ref(s.user_id),
                "start": format_time(s.start),
                "end": format_time(s.end),
            }
            for s in shifts
        ]

    @staticmethod
    def _coverage(shifts: list[Shift], since: datetime, until: datetime) -> float:
        span = (until - since).total_seconds()
        covered = sum((s.end - s.start).total_seconds() for s in shifts)
        return round(100.0 * covered / span, 2) if span > 0 else 0.0

    def schedule(
        self,
        schedule: Schedule,
        window: tuple[datetime, datetime] | None = None,
    ) -> dict[str, Any]:
        """With a window, layers, overrides and the final schedule are rendered for it."""
        layers = []
        for layer in schedule.layers:
            entry: dict[str, Any] = {
                "id": layer.id,
                "name": layer.name,
                "start": format_time(layer.start),
                "end": _time(layer.end),
                "rotation_virtual_start": format_time(layer.rotation_virtual_start),
                "rotation_turn_length_seconds": layer.turn_length_seconds,
                "users": [{"user": self.user_ref(user_id)} for user_id in layer.user_ids],
                "restrictions": [],
            }
            if window:
                shifts = render_layer(layer, *window)
                entry["rendered_schedule_entries"] = self._entries(shifts)
                entry["rendered_coverage_percentage"] = self._coverage(shifts, *window)
            layers.append(entry)
        user_ids: list[str] = []
        for layer in schedule.layers:
            user_ids.extend(u for u in layer.user_ids if u not in user_ids)
        policies = [
            p
            for p in self.store.escalation_policies.values()
            if any(t.kind == "schedule" and t.id == schedule.id for r in p.rules for t in r.targets)
        ]
        body: dict[str, Any] = {
            **self.links.ref("schedule", schedule.id, schedule.name),
            "type": "schedule",
            "name": schedule.name,
            "description": schedule.description,
            "time_zone": schedule.time_zone,
            "schedule_layers": layers,
            "escalation_policies": [self.escalation_policy_ref(p.id) for p in policies],
            "users": [self.user_ref(u) for u in user_ids],
            "teams": [],
        }
        if window:
            final = render_schedule(schedule, *window)
            overrides = render_overrides(schedule, *window)
            body["final_schedule"] = {
                "name": "Final Schedule",
                "rendered_schedule_entries": self._entries(final),
                "rendered_coverage_percentage": self._coverage(final, *window),
            }
            body["overrides_subschedule"] = {
                "name": "Overrides",
                "rendered_schedule_entries": self._entries(overrides),
                "rendered_coverage_percentage": self._coverage(overrides, *window),
            }
        return body

    def priority(self, priority: Priority) -> dict[str, Any]:
        return {
            **self.links.ref("priority", priority.id, priority.name),
            "type": "priority",
            "name": priority.name,
            "description": priority.description,
        }

    # incidents

    def incident(
        self, incident: Incident, include: Collection[str] = (), *, with_body: bool = False
    ) -> dict[str, Any]:
        store = self.store

        def user(user_id: str, kind: str) -> dict[str, Any]:
            found = store.users.get(user_id)
            return self.user(found) if found and kind in include else self.user_ref(user_id)

        service = store.services.get(incident.service_id)
        policy = store.escalation_policies.get(incident.escalation_policy_id)
        priority = store.priorities.get(incident.priority_id) if incident.priority_id else None
        first_entry = store.log_entries.get(incident.first_trigger_log_entry_id)
        if incident.last_status_change_by and "agents" in include:
            changed_by = user(incident.last_status_change_by, "agents")
        else:
            changed_by = self.agent_ref(incident.last_status_change_by, incident.service_id)
        body: dict[str, Any] = {
            **self.incident_ref(incident),
            "type": "incident",
            "incident_number": incident.number,
            "title": incident.title,
            "description": incident.title,
            "created_at": format_time(incident.created_at),
            "updated_at": format_time(incident.updated_at),
            "status": incident.status,
            "incident_key": incident.incident_key,
            "service": (
                self.service(service)
                if service and "services" in include
                else self.service_ref(incident.service_id)
            ),
            "assignments": [
                {"at": format_time(a.at), "assignee": user(a.user_id, "assignees")}
                for a in incident.assignments
            ],
            "assigned_via": incident.assigned_via,
            "last_status_change_at": format_time(incident.last_status_change_at),
            "last_status_change_by": changed_by,
            "resolved_at": _time(incident.resolved_at),
            "first_trigger_log_entry": (
                self.log_entry(first_entry)
                if first_entry and "first_trigger_log_entries" in include
                else self.log_entry_ref(incident.first_trigger_log_entry_id, incident.id)
            ),
            "alert_counts": {"all": 0, "triggered": 0, "resolved": 0},
            "is_mergeable": True,
            "incident_type": {"name": incident.incident_type},
            "escalation_policy": (
                self.escalation_policy(policy)
                if policy and "escalation_policies" in include
                else self.escalation_policy_ref(incident.escalation_policy_id)
            ),
            "teams": [],
            "pending_actions": self.pending_actions(incident),
            "acknowledgements": [
                {"at": format_time(a.at), "acknowledger": user(a.user_id, "acknowledgers")}
                for a in incident.acknowledgements
            ],
            "alert_grouping": None,
            "priority": (
                (
                    self.priority(priority)
                    if "priorities" in include
                    else self.priority_ref(priority.id)
                )
                if priority
                else None
            ),
            "resolve_reason": self.resolve_reason(incident),
            "incidents_responders": [self.responder(incident, r) for r in incident.responders],
            "responder_requests": [
                self.responder_request(incident, r) for r in incident.responder_requests
            ],
            "urgency": incident.urgency,
        }
        bridge = incident.conference_bridge
        # only asked for, and only where there is one: the document has no null for it
        if "conference_bridge" in include and bridge:
            body["conference_bridge"] = {
                "conference_number": bridge.conference_number,
                "conference_url": bridge.conference_url,
            }
        if with_body:
            body["body"] = {"type": "incident_body", "details": incident.details or ""}
        return body

    def responder(self, incident: Incident, responder: Responder) -> dict[str, Any]:
        body: dict[str, Any] = {
            "state": responder.state,
            "user": self.user_ref(responder.user_id),
            "incident": self.incident_ref(incident),
            "updated_at": format_time(responder.updated_at),
            "message": responder.message,
            "requester": self.user_ref(responder.requester_id),
            "requested_at": format_time(responder.requested_at),
        }
        if responder.escalation_policy_names:
            body["escalation_policy_requests"] = list(responder.escalation_policy_names)
        return body

    def responder_request(
        self, incident: Incident, record: ResponderRequestRecord
    ) -> dict[str, Any]:
        """As PagerDuty's example answer shows it: each target wrapped, with the responders it
        reached (their state as it is now)."""
        current = {r.user_id: r for r in incident.responders}
        targets = []
        for target in record.targets:
            if target.kind == "user":
                user = self.store.users.get(target.id)
                summary = user.name if user else target.id
            else:
                policy = self.store.escalation_policies.get(target.id)
                summary = policy.name if policy else target.id
            targets.append({"responder_request_target": {
                "type": target.kind,
                "id": target.id,
                "summary": summary,
                "incidents_responders": [
                    self.responder(incident, current[u]) for u in target.user_ids if u in current
                ],
            }})
        return {
            "id": record.id,
            "incident": self.incident_ref(incident),
            "requester": self.user_ref(record.requester_id),
            "requested_at": format_time(record.requested_at),
            "message": record.message,
            "responder_request_targets": targets,
        }

    def resolve_reason(self, incident: Incident) -> dict[str, Any] | None:
        """Set by PagerDuty only on an incident resolved by a merge: the incident it went into."""
        target = self.store.incidents.get(incident.merged_into) if incident.merged_into else None
        if target is None:
            return None
        return {"type": "merge_resolve_reason", "incident": self.incident_ref(target)}

    def pending_actions(self, incident: Incident) -> list[dict[str, Any]]:
        if incident.status != "triggered" or incident.assigned_via != "escalation_policy":
            return []
        policy = self.store.escalation_policies.get(incident.escalation_policy_id)
        if not policy or incident.escalation_level >= len(policy.rules):
            return []
        delay = policy.rules[incident.escalation_level - 1].delay_minutes
        at = incident.level_since + timedelta(minutes=delay)
        return [{"type": "escalate", "at": format_time(at)}]

    def log_entry_ref(self, entry_id: str, incident_id: str) -> dict[str, Any]:
        entry = self.store.log_entries.get(entry_id)
        kind = entry.type if entry else "trigger_log_entry"
        return {
            "id": entry_id,
            "type": f"{kind}_reference",
            "summary": entry.summary if entry else "",
            "self": self.links.log_entry_self(entry_id, incident_id),
            "html_url": self.links.log_entry_web(entry_id, incident_id),
        }

    def log_entry(self, entry: LogEntry, include: Collection[str] = ()) -> dict[str, Any]:
        incident = self.store.incidents[entry.incident_id]
        channel: dict[str, Any] = {"type": "api" if entry.agent_user_id else "timeout"}
        if entry.type == "annotate_log_entry":
            channel = {"type": "note", "summary": entry.note or ""}
        body: dict[str, Any] = {
            "id": entry.id,
            "type": entry.type,
            "summary": entry.summary,
            "self": self.links.log_entry_self(entry.id, entry.incident_id),
            "html_url": self.links.log_entry_web(entry.id, entry.incident_id),
            "created_at": format_time(entry.created_at),
            # PagerDuty's log entries include incidents, services, channels and teams, never
            # users: an include it does not list is ignored, as unknown parameters are
            "agent": self.agent_ref(entry.agent_user_id, entry.service_id),
            "channel": channel,
            "service": (
                self.service(self.store.services[entry.service_id])
                if "services" in include and entry.service_id in self.store.services
                else self.service_ref(entry.service_id)
            ),
            "incident": (
                self.incident(incident) if "incidents" in include else self.incident_ref(incident)
            ),
            "teams": [],
            "contexts": [],
            "event_details": {"description": entry.summary},
        }
        if entry.type in ("assign_log_entry", "escalate_log_entry", "delegate_log_entry"):
            body["assignees"] = [self.user_ref(user_id) for user_id in entry.assignee_ids]
        if entry.type == "acknowledge_log_entry":
            service = self.store.services.get(entry.service_id)
            if service and service.acknowledgement_timeout:
                body["acknowledgement_timeout"] = service.acknowledgement_timeout
        if entry.note is not None and entry.type != "annotate_log_entry":
            body["note"] = entry.note
        return body

    def note(self, note: Note) -> dict[str, Any]:
        return {
            "id": note.id,
            "user": self.user_ref(note.user_id),
            "channel": {"summary": "The PagerDuty website or APIs"},
            "content": note.content,
            "created_at": format_time(note.created_at),
            "updated_at": format_time(note.created_at),
        }

    def oncall(self, entry: OnCall, include: Collection[str] = ()) -> dict[str, Any]:
        store = self.store
        policy = store.escalation_policies.get(entry.escalation_policy_id)
        user = store.users.get(entry.user_id)
        schedule = store.schedules.get(entry.schedule_id) if entry.schedule_id else None
        return {
            "escalation_policy": (
                self.escalation_policy(policy)
                if policy and "escalation_policies" in include
                else self.escalation_policy_ref(entry.escalation_policy_id)
            ),
            "escalation_level": entry.escalation_level,
            "schedule": (
                (
                    self.schedule(schedule)
                    if "schedules" in include
                    else self.schedule_ref(schedule.id)
                )
                if schedule
                else None
            ),
            "user": self.user(user)
            if user and "users" in include
            else self.user_ref(entry.user_id),
            "start": _time(entry.start),
            "end": _time(entry.end),
        }

    # webhooks

    def subscription(self, sub: WebhookSubscription, *, reveal: bool = False) -> dict[str, Any]:
        """`reveal` is for the create response only: the one time PagerDuty shows the secret."""
        filter_: dict[str, Any] = {"type": sub.filter_type}
        if sub.filter_id is not None:
            filter_["id"] = sub.filter_id
        return {
            "id": sub.id,
            "type": "webhook_subscription",
            "active": sub.active,
            "delivery_method": {
                "id": sub.delivery_method_id,
                "secret": sub.secret if reveal else None,
                "temporarily_disabled": sub.temporarily_disabled,
                "type": "http_delivery_method",
                "url": sub.url,
                "custom_headers": [
                    {"name": h.name, "value": h.value if reveal else REDACTED}
                    for h in sub.custom_headers
                ],
            },
            "description": sub.description,
            "events": list(sub.events),
            "filter": filter_,
        }
