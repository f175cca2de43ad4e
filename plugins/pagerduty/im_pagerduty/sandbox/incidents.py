"""The incident lifecycle as PagerDuty runs it: create, acknowledge, resolve, reopen, reassign,
escalate, delegate, notes, and timed escalation.

Every request is checked whole before anything changes, so a rejected request leaves no trace.
Each change is written to the log entries and announced through `announce`, which the sandbox
turns into Webhooks v3 events.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import Literal

import msgspec

from im_pagerduty.sandbox import errors
from im_pagerduty.sandbox.model import (
    Acknowledgement,
    Assignment,
    ConferenceBridge,
    EscalationPolicy,
    Incident,
    IncidentStatus,
    LogEntry,
    LogEntryType,
    Note,
    Responder,
    ResponderRequestRecord,
    ResponderTarget,
    User,
)
from im_pagerduty.sandbox.oncall import assignees_at
from im_pagerduty.sandbox.requests import (
    AssignmentIn,
    ConferenceBridgeIn,
    IncidentChanges,
    NewIncident,
    RefIn,
)
from im_pagerduty.sandbox.store import Store
from im_pagerduty.sandbox.times import Clock

# The `client` of an event a user causes in PagerDuty's own web UI or app.
WEB_CLIENT = "PagerDuty"
# The client the REST request being answered stands for (its X-Sandbox-Client header, see
# edge.py): an integration a responder acts through, Slack say, which PagerDuty names as the
# `client` of the events the change causes. None (the REST API itself): `client` is null.
acting_client: ContextVar[str | None] = ContextVar("acting_client", default=None)

DUPLICATE_KEY = "Open incident with matching dedup key already exists on this service"


class IncidentChanged(msgspec.Struct, frozen=True, kw_only=True):
    event_type: str
    incident: Incident
    agent_user_id: str | None
    at: datetime


class NoteAdded(msgspec.Struct, frozen=True, kw_only=True):
    note: Note
    incident: Incident
    at: datetime


class Activity(msgspec.Struct, frozen=True, kw_only=True):
    """An event about an incident whose data is not the incident: a conference bridge, a
    responder request or a status update (`detail` carries what the event's data names)."""

    event_type: str
    incident: Incident
    agent_user_id: str | None
    at: datetime
    detail: dict[str, str] = {}
    # where it was done (the event's `client`): None through the REST API
    client: str | None = None


Announcement = IncidentChanged | NoteAdded | Activity


class Incidents:
    def __init__(
        self, store: Store, clock: Clock, announce: Callable[[Announcement], None]
    ) -> None:
        self.store = store
        self.clock = clock
        self.announce = announce

    # lookups that turn into PagerDuty's errors

    def get(self, incident_id: str) -> Incident:
        incident = self.store.incidents.get(incident_id)
        if incident is None:
            raise errors.not_found("Incident Not Found", 5001)
        return incident

    def _policy(self, ref: RefIn) -> EscalationPolicy:
        policy = self.store.escalation_policies.get(ref.id or "")
        if policy is None:
            raise errors.escalation_policy_not_found()
        return policy

    def _assignees(self, assignments: list[AssignmentIn]) -> list[str]:
        if not assignments:
            raise errors.invalid_input("assignments must name at least one assignee")
        user_ids = []
        for assignment in assignments:
            user_id = assignment.assignee.id or ""
            if user_id not in self.store.users:
                raise errors.assignee_not_found()
            user_ids.append(user_id)
        return user_ids

    def _priority_id(self, priority: RefIn | str) -> str:
        if isinstance(priority, str):
            # A name picks the highest priority of that name.
            named = [
                p for p in self.store.priorities.values() if p.name.lower() == priority.lower()
            ]
            if not named:
                raise errors.invalid_priority()
            return min(named, key=lambda p: p.order).id
        if (priority.id or "") not in self.store.priorities:
            raise errors.invalid_priority()
        return priority.id or ""

    # log and announcements

    def _log(
        self,
        incident: Incident,
        kind: LogEntryType,
        summary: str,
        agent_user_id: str | None,
        at: datetime,
        *,
        assignee_ids: tuple[str, ...] = (),
        note: str | None = None,
        entry_id: str | None = None,
    ) -> None:
        entry = LogEntry(
            id=entry_id or self.store.ids.log_entry_id(),
            type=kind,
            incident_id=incident.id,
            service_id=incident.service_id,
            created_at=at,
            agent_user_id=agent_user_id,
            summary=summary,
            assignee_ids=assignee_ids,
            note=note,
        )
        self.store.add_log_entry(entry)

    def _commit(
        self, incident: Incident, event_type: str | None, agent_user_id: str | None, at: datetime
    ) -> None:
        self.store.put_incident(incident)
        if event_type:
            self.announce(
                IncidentChanged(
                    event_type=event_type, incident=incident, agent_user_id=agent_user_id, at=at
                )
            )

    # create

    def create(self, request: NewIncident, actor: User) -> Incident:
        store = self.store
        if not request.title.strip():
            raise errors.invalid_input("Incident title cannot be empty")
        service = store.services.get(request.service.id or "")
        if service is None:
            raise errors.invalid_input("Service not found")
        if request.assignments and request.escalation_policy:
            raise errors.invalid_input(
                "Assignments cannot be specified if an escalation policy is given"
            )
        if request.body is not None and request.body.type != "incident_body":
            raise errors.invalid_input("body.type must be incident_body")
        policy = (
            self._policy(request.escalation_policy)
            if request.escalation_policy
            else store.escalation_policies.get(service.escalation_policy_id)
        )
        if policy is None:
            raise errors.escalation_policy_not_found()
        direct = self._assignees(request.assignments) if request.assignments else None
        priority_id = self._priority_id(request.priority) if request.priority else None
        key = request.incident_key or uuid.uuid4().hex
        if store.open_incident_with_key(service.id, key):
            raise errors.invalid_input(DUPLICATE_KEY)
        details = request.body.details if request.body else None
        if details is not None and not isinstance(details, str):
            details = msgspec.json.encode(details).decode()

        now = self.clock.now()
        incident_id = store.ids.incident_id()
        trigger_id = store.ids.log_entry_id()
        user_ids = direct if direct is not None else assignees_at(store, policy, 1, now)
        incident = Incident(
            id=incident_id,
            number=store.next_incident_number(),
            title=request.title,
            service_id=service.id,
            escalation_policy_id=policy.id,
            status="triggered",
            urgency=request.urgency or service.urgency,
            priority_id=priority_id,
            incident_key=key,
            details=details,
            created_at=now,
            updated_at=now,
            last_status_change_at=now,
            last_status_change_by=actor.id,
            assignments=tuple(Assignment(user_id=u, at=now) for u in user_ids),
            assigned_via="direct_assignment" if direct is not None else "escalation_policy",
            level_since=now,
            conference_bridge=_bridge(request.conference_bridge),
            incident_type=(request.incident_type.name if request.incident_type else None)
            or "incident_default",
            first_trigger_log_entry_id=trigger_id,
        )
        self._log(
            incident,
            "trigger_log_entry",
            "Triggered through the API",
            actor.id,
            now,
            entry_id=trigger_id,
        )
        self._log(
            incident,
            "assign_log_entry",
            _assigned_summary(store, user_ids),
            actor.id,
            now,
            assignee_ids=tuple(user_ids),
        )
        self._commit(incident, "incident.triggered", actor.id, now)
        # Assigning an incident to yourself creates it acknowledged.
        if direct == [actor.id]:
            incident = self._acknowledge(incident, actor, now)
        return incident

    def bulk_create(
        self,
        *,
        count: int,
        service_id: str,
        title: str,
        status: IncidentStatus,
        urgency: Literal["high", "low"],
        first_created_at: datetime,
        spacing: timedelta,
        agent_user_id: str,
        announce: bool,
    ) -> list[Incident]:
        """For load tests: many incidents at once, spread over time, optionally announced."""
        store = self.store
        service = store.services.get(service_id)
        if service is None:
            raise errors.invalid_input("Service not found")
        policy = store.escalation_policies[service.escalation_policy_id]
        # Open incidents this old have long run through their escalation policy.
        level = max(len(policy.rules), 1)
        created = []
        for index in range(count):
            at = first_created_at + index * spacing
            trigger_id = store.ids.log_entry_id()
            user_ids = assignees_at(store, policy, level, at) if status != "resolved" else []
            incident = Incident(
                id=store.ids.incident_id(),
                number=store.next_incident_number(),
                title=f"{title} {index + 1}",
                service_id=service.id,
                escalation_policy_id=policy.id,
                status="resolved" if status == "resolved" else "triggered",
                urgency=urgency,
                incident_key=uuid.uuid4().hex,
                created_at=at,
                updated_at=at,
                last_status_change_at=at,
                last_status_change_by=agent_user_id,
                resolved_at=at if status == "resolved" else None,
                assignments=tuple(Assignment(user_id=u, at=at) for u in user_ids),
                escalation_level=level,
                level_since=at,
                first_trigger_log_entry_id=trigger_id,
            )
            self._log(
                incident,
                "trigger_log_entry",
                "Triggered through the API",
                agent_user_id,
                at,
                entry_id=trigger_id,
            )
            if status == "acknowledged":
                incident = msgspec.structs.replace(
                    incident,
                    status="acknowledged",
                    acknowledgements=(Acknowledgement(user_id=agent_user_id, at=at),),
                )
                self._log(
                    incident,
                    "acknowledge_log_entry",
                    "Acknowledged through the API",
                    agent_user_id,
                    at,
                )
            elif status == "resolved":
                self._log(
                    incident, "resolve_log_entry", "Resolved through the API", agent_user_id, at
                )
            store.put_incident(incident)
            if announce:
                self.announce(
                    IncidentChanged(
                        event_type="incident.triggered",
                        incident=incident,
                        agent_user_id=agent_user_id,
                        at=at,
                    )
                )
            created.append(incident)
        return created

    # update

    def update(self, incident_id: str, changes: IncidentChanges, actor: User) -> Incident:
        store = self.store
        incident = self.get(incident_id)
        status = changes.status
        if status is not None and status not in ("triggered", "acknowledged", "resolved"):
            raise errors.invalid_status()
        if changes.resolution is not None and status != "resolved":
            raise errors.invalid_input("resolution can only be given when status is resolved")
        if changes.assignments is not None and changes.escalation_policy is not None:
            raise errors.invalid_input(
                "Assignments cannot be specified if an escalation policy is given"
            )
        reopening = incident.status == "resolved" and status in ("triggered", "acknowledged")
        if incident.status == "resolved" and not reopening:
            raise errors.incident_already_resolved()
        if status == "acknowledged" and incident.status == "acknowledged":
            raise errors.incident_already_acknowledged()

        # Resolve every reference before changing anything.
        service = None
        if changes.service is not None:
            service = store.services.get(changes.service.id or "")
            if service is None:
                raise errors.invalid_input("Service not found")
            if service.id != incident.service_id and store.open_incident_with_key(
                service.id, incident.incident_key
            ):
                raise errors.invalid_input(DUPLICATE_KEY)
        if changes.title is not None and not changes.title.strip():
            raise errors.invalid_input("Incident title cannot be empty")
        priority_id = self._priority_id(changes.priority) if changes.priority is not None else None
        policy = self._policy(changes.escalation_policy) if changes.escalation_policy else None
        direct = self._assignees(changes.assignments) if changes.assignments is not None else None
        level = changes.escalation_level
        if level is not None:
            current_policy = policy or store.escalation_policies.get(incident.escalation_policy_id)
            if current_policy is None or not 1 <= level <= len(current_policy.rules):
                raise errors.cannot_escalate(
                    "escalation_level must be between 1 and the policy's rule count"
                )
        if (
            status == "triggered"
            and incident.status == "triggered"
            and not _has_other_changes(changes)
        ):
            return incident

        now = self.clock.now()
        actor_id = actor.id

        def change(current: Incident, event_type: str | None, **fields: object) -> Incident:
            updated = msgspec.structs.replace(current, updated_at=now, **fields)
            self._commit(updated, event_type, actor_id, now)
            return updated

        if changes.title is not None and changes.title != incident.title:
            incident = change(incident, None, title=changes.title)
        if changes.conference_bridge is not None:
            bridge = _bridge(changes.conference_bridge)
            if bridge != incident.conference_bridge:
                incident = change(incident, None, conference_bridge=bridge)
                self.announce(
                    Activity(
                        event_type="incident.conference_bridge.updated",
                        incident=incident,
                        agent_user_id=actor_id,
                        at=now,
                    )
                )
        if (
            changes.incident_type is not None
            and changes.incident_type.name
            and changes.incident_type.name != incident.incident_type
        ):
            incident = change(
                incident, "incident.incident_type.changed", incident_type=changes.incident_type.name
            )
        if changes.urgency is not None and changes.urgency != incident.urgency:
            incident = change(incident, None, urgency=changes.urgency)
            self._log(
                incident,
                "urgency_change_log_entry",
                f"Urgency changed to {changes.urgency}",
                actor_id,
                now,
            )
        if priority_id is not None and priority_id != incident.priority_id:
            incident = change(incident, "incident.priority_updated", priority_id=priority_id)
        if service is not None and service.id != incident.service_id:
            incident = change(incident, "incident.service_updated", service_id=service.id)

        if reopening:
            return self._reopen(incident, status or "triggered", actor, policy, direct, now)

        if policy is not None:
            user_ids = assignees_at(store, policy, 1, now)
            incident = change(
                incident,
                "incident.delegated",
                escalation_policy_id=policy.id,
                escalation_level=1,
                level_since=now,
                assigned_via="escalation_policy",
                assignments=tuple(Assignment(user_id=u, at=now) for u in user_ids),
            )
            self._log(
                incident,
                "delegate_log_entry",
                f"Reassigned to {policy.name}",
                actor_id,
                now,
                assignee_ids=tuple(user_ids),
            )
        if direct is not None:
            incident = change(
                incident,
                "incident.reassigned",
                assigned_via="direct_assignment",
                assignments=tuple(Assignment(user_id=u, at=now) for u in direct),
            )
            self._log(
                incident,
                "assign_log_entry",
                _assigned_summary(store, direct),
                actor_id,
                now,
                assignee_ids=tuple(direct),
            )
        if level is not None:
            incident = self._escalate(incident, level, actor_id, now)

        if status == "acknowledged":
            incident = self._acknowledge(incident, actor, now)
        elif status == "resolved":
            incident = change(
                incident,
                "incident.resolved",
                status="resolved",
                resolved_at=now,
                last_status_change_at=now,
                last_status_change_by=actor_id,
                assignments=(),
                acknowledgements=(),
            )
            self._log(
                incident,
                "resolve_log_entry",
                "Resolved through the API",
                actor_id,
                now,
                note=changes.resolution,
            )
        elif status == "triggered" and incident.status == "acknowledged":
            incident = change(
                incident,
                "incident.unacknowledged",
                status="triggered",
                acknowledgements=(),
                level_since=now,
                last_status_change_at=now,
                last_status_change_by=actor_id,
            )
            self._log(
                incident, "unacknowledge_log_entry", "Unacknowledged through the API", actor_id, now
            )
        return incident

    def _acknowledge(self, incident: Incident, actor: User, now: datetime) -> Incident:
        # The acknowledger takes the incident if it was not theirs.
        assignments = incident.assignments
        if actor.id not in incident.assignee_ids:
            assignments = (Assignment(user_id=actor.id, at=now),)
        acknowledged = msgspec.structs.replace(
            incident,
            status="acknowledged",
            updated_at=now,
            last_status_change_at=now,
            last_status_change_by=actor.id,
            acknowledgements=(
                *incident.acknowledgements,
                Acknowledgement(user_id=actor.id, at=now),
            ),
            assignments=assignments,
        )
        self._log(
            acknowledged, "acknowledge_log_entry", "Acknowledged through the API", actor.id, now
        )
        self._commit(acknowledged, "incident.acknowledged", actor.id, now)
        return acknowledged

    def _escalate(
        self, incident: Incident, level: int, agent_user_id: str | None, at: datetime
    ) -> Incident:
        policy = self.store.escalation_policies[incident.escalation_policy_id]
        user_ids = assignees_at(self.store, policy, level, at)
        escalated = msgspec.structs.replace(
            incident,
            updated_at=at,
            escalation_level=level,
            level_since=at,
            assigned_via="escalation_policy",
            assignments=tuple(Assignment(user_id=u, at=at) for u in user_ids),
        )
        self._log(
            escalated,
            "escalate_log_entry",
            f"Escalated to level {level}",
            agent_user_id,
            at,
            assignee_ids=tuple(user_ids),
        )
        self._commit(escalated, "incident.escalated", agent_user_id, at)
        return escalated

    def _reopen(
        self,
        incident: Incident,
        status: str,
        actor: User,
        policy: EscalationPolicy | None,
        direct: list[str] | None,
        now: datetime,
    ) -> Incident:
        store = self.store
        policy = policy or store.escalation_policies[incident.escalation_policy_id]
        acknowledgements: tuple[Acknowledgement, ...] = ()
        if status == "acknowledged":
            # Reopening to acknowledged assigns the user who did it.
            user_ids = [actor.id]
            via = "direct_assignment"
            acknowledgements = (Acknowledgement(user_id=actor.id, at=now),)
        elif direct is not None:
            user_ids, via = direct, "direct_assignment"
        else:
            user_ids, via = assignees_at(store, policy, 1, now), "escalation_policy"
        reopened = msgspec.structs.replace(
            incident,
            status="acknowledged" if status == "acknowledged" else "triggered",
            updated_at=now,
            reopened_at=now,
            resolved_at=None,
            merged_into=None,
            last_status_change_at=now,
            last_status_change_by=actor.id,
            escalation_policy_id=policy.id,
            escalation_level=1,
            level_since=now,
            assigned_via=via,
            assignments=tuple(Assignment(user_id=u, at=now) for u in user_ids),
            acknowledgements=acknowledgements,
        )
        self._log(reopened, "trigger_log_entry", "Reopened through the API", actor.id, now)
        self._log(
            reopened,
            "assign_log_entry",
            _assigned_summary(store, user_ids),
            actor.id,
            now,
            assignee_ids=tuple(user_ids),
        )
        self._commit(reopened, "incident.reopened", actor.id, now)
        return reopened

    # merge

    def merge(self, target_id: str, source_ids: list[str], actor: User) -> Incident:
        """PUT /incidents/{id}/merge: each source incident is resolved with a merge resolve
        reason naming the target (its `incident.resolved` event carries it), the target stays
        as it is. PagerDuty moves the sources' alerts to the target; the sandbox has no alerts
        to move."""
        target = self.get(target_id)
        if not source_ids:
            raise errors.invalid_input("source_incidents must name at least one incident")
        sources = []
        for source_id in dict.fromkeys(source_ids):
            if source_id == target_id:
                raise errors.invalid_input("An incident cannot be merged into itself")
            sources.append(self.get(source_id))
        if not target.is_open:
            raise errors.invalid_input("Open incidents cannot be merged into a resolved incident")
        now = self.clock.now()
        for source in sources:
            if not source.is_open:
                continue  # already resolved: PagerDuty has nothing to resolve
            merged = msgspec.structs.replace(
                source,
                status="resolved",
                updated_at=now,
                resolved_at=now,
                last_status_change_at=now,
                last_status_change_by=actor.id,
                assignments=(),
                acknowledgements=(),
                merged_into=target.id,
            )
            self._log(
                merged,
                "resolve_log_entry",
                f"Resolved by merging into #{target.number}",
                actor.id,
                now,
            )
            self._commit(merged, "incident.resolved", actor.id, now)
        target = msgspec.structs.replace(target, updated_at=now)
        self.store.put_incident(target)
        return target

    # notes

    def add_note(self, incident_id: str, content: str, actor: User) -> Note:
        incident = self.get(incident_id)
        if not content.strip():
            raise errors.invalid_input("Note content cannot be empty")
        now = self.clock.now()
        note = Note(
            id=self.store.ids.object_id(),
            incident_id=incident.id,
            user_id=actor.id,
            content=content,
            created_at=now,
        )
        self.store.add_note(note)
        self._log(incident, "annotate_log_entry", "Note added", actor.id, now, note=content)
        self.announce(NoteAdded(note=note, incident=incident, at=now))
        return note

    # status updates and responders

    def add_status_update(self, incident_id: str, message: str, actor: User) -> dict[str, str]:
        incident = self.get(incident_id)
        if not message.strip():
            raise errors.invalid_input("Message cannot be empty")
        now = self.clock.now()
        update = {"id": self.store.ids.object_id(), "message": message}
        self._log(incident, "annotate_log_entry", "Status update published", actor.id, now)
        self.announce(
            Activity(
                event_type="incident.status_update_published",
                incident=incident,
                agent_user_id=actor.id,
                at=now,
                detail=update,
            )
        )
        return update

    def request_responders(
        self, incident_id: str, requester_id: str, message: str, targets: list[RefIn]
    ) -> ResponderRequestRecord:
        """POST /incidents/{id}/responder_requests: each target user, or whoever is on call at
        the first level of each target escalation policy, becomes a pending responder, with an
        `incident.responder.added` event each (the requester as the agent)."""
        store = self.store
        incident = self.get(incident_id)
        requester = store.users.get(requester_id)
        if requester is None:
            raise errors.requester_not_found()
        if not targets:
            raise errors.invalid_input("responder_request_targets must name at least one target")
        if not incident.is_open:
            raise errors.incident_already_resolved()
        now = self.clock.now()
        resolved: list[ResponderTarget] = []
        policies: dict[str, EscalationPolicy] = {}
        for ref in targets:
            kind = (ref.type or "").removesuffix("_reference")
            if kind in ("user", "escalation_policy") and not ref.id:
                raise errors.invalid_input("A responder request target needs an id")
            if kind == "user":
                if (ref.id or "") not in store.users:
                    raise errors.invalid_input(f"User {ref.id} not found")
                resolved.append(ResponderTarget(kind="user", id=ref.id or "",
                                                user_ids=(ref.id or "",)))
            elif kind == "escalation_policy":
                policy = self._policy(ref)
                policies[policy.id] = policy
                resolved.append(ResponderTarget(
                    kind="escalation_policy", id=policy.id,
                    user_ids=tuple(assignees_at(store, policy, 1, now))))
            else:
                raise errors.invalid_input(
                    "A responder request target must be a user or an escalation policy")
        record = ResponderRequestRecord(
            id=store.ids.object_id(), requester_id=requester.id, requested_at=now,
            message=message, targets=tuple(resolved))
        responders = {r.user_id: r for r in incident.responders}
        reached: list[tuple[str, str | None]] = []  # (user, policy), each user once
        for target in resolved:
            policy_id = target.id if target.kind == "escalation_policy" else None
            for user_id in target.user_ids:
                if any(user_id == seen for seen, _ in reached):
                    continue
                reached.append((user_id, policy_id))
                responders[user_id] = Responder(
                    user_id=user_id, message=message, requester_id=requester.id,
                    requested_at=now, updated_at=now,
                    escalation_policy_names=(policies[policy_id].name,) if policy_id else (),
                    escalation_policy_id=policy_id)
        incident = msgspec.structs.replace(
            incident, updated_at=now,
            responder_requests=(*incident.responder_requests, record),
            responders=tuple(responders.values()))
        store.put_incident(incident)
        for user_id, policy_id in reached:
            self.announce(
                Activity(
                    event_type="incident.responder.added",
                    incident=incident,
                    agent_user_id=requester.id,
                    at=now,
                    detail={"user_id": user_id, "message": message, "state": "pending",
                            "escalation_policy_id": policy_id or ""},
                )
            )
        return record

    def responder_reply(
        self, incident_id: str, user_id: str, state: Literal["joined", "declined"]
    ) -> Responder:
        """A requested responder accepts or declines in PagerDuty's app or web UI (the REST
        API has no route for it): `incident.responder.replied`, the responder as the agent
        and PagerDuty as the client."""
        incident = self.get(incident_id)
        responder = next((r for r in incident.responders if r.user_id == user_id), None)
        if responder is None:
            raise errors.invalid_input(f"User {user_id} was not requested as a responder")
        now = self.clock.now()
        answered = msgspec.structs.replace(responder, state=state, updated_at=now)
        incident = msgspec.structs.replace(
            incident, updated_at=now,
            responders=tuple(answered if r.user_id == user_id else r
                             for r in incident.responders))
        self.store.put_incident(incident)
        self.announce(
            Activity(
                event_type="incident.responder.replied",
                incident=incident,
                agent_user_id=user_id,
                at=now,
                detail={"user_id": user_id, "message": responder.message, "state": state,
                        "escalation_policy_id": responder.escalation_policy_id or ""},
                client=WEB_CLIENT,
            )
        )
        return answered

    # time

    def escalate_due(self) -> int:
        """Escalate triggered incidents whose level timed out; returns how many steps ran."""
        now = self.clock.now()
        steps = 0
        for incident in list(self.store.open_incidents.values()):
            while incident.status == "triggered" and incident.assigned_via == "escalation_policy":
                policy = self.store.escalation_policies.get(incident.escalation_policy_id)
                if policy is None or incident.escalation_level >= len(policy.rules):
                    break
                delay = timedelta(minutes=policy.rules[incident.escalation_level - 1].delay_minutes)
                due = incident.level_since + delay
                if due > now:
                    break
                incident = self._escalate(incident, incident.escalation_level + 1, None, due)
                steps += 1
        return steps


def _bridge(bridge: ConferenceBridgeIn | None) -> ConferenceBridge | None:
    if bridge is None:
        return None
    return ConferenceBridge(
        conference_number=bridge.conference_number, conference_url=bridge.conference_url
    )


def _has_other_changes(changes: IncidentChanges) -> bool:
    return any(
        value is not None
        for value in (
            changes.title,
            changes.urgency,
            changes.priority,
            changes.escalation_level,
            changes.assignments,
            changes.escalation_policy,
            changes.service,
            changes.conference_bridge,
            changes.incident_type,
        )
    )


def _assigned_summary(store: Store, user_ids: list[str]) -> str:
    names = ", ".join(store.users[u].name for u in user_ids if u in store.users)
    return f"Assigned to {names}" if names else "Assigned to nobody on call"
