"""The `pagerduty` connector: im incidents in step with PagerDuty incidents.

Mapping (the spec's): open = triggered, mitigated = acknowledged, resolved and closed =
resolved; SEV-1/2 = high urgency, SEV-3/4 = low (configurable); one PagerDuty incident per im
service, in the mapped PagerDuty service, created with an `incident_key` derived from the im
incident's correlation id and the service, so a retry never makes a second one.
"""

from __future__ import annotations

import html
import logging
import time
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec

from im import (
    AssigneeRequest,
    ChangeKind,
    Check,
    CheckRequest,
    Connector,
    ConnectorError,
    InboundChange,
    InvalidInputError,
    MapOutboundRequest,
    OncallRequest,
    OncallResult,
    PullRequest,
    PullResult,
    PushRequest,
    PushResult,
    RemoteAccount,
    RemoteIncidentReport,
    RemoteIncidentRequest,
    RemoteRef,
    RemoteStatus,
    SettingsCheckRequest,
    SettingsCheckResult,
    SlaPolicyRequest,
    WebhookEvent,
    WebhookRequest,
    WebhookSetupRequest,
    WebhookSetupResult,
    WebhookTestEvent,
    WebhookTestRequest,
)
from im_pagerduty.settings import DEFAULT_URGENCY, PagerDutySettings

if TYPE_CHECKING:
    from collections.abc import Callable

    from im import Severity
    from im_pagerduty.client import CallInfo, PagerDutyClient
    from im_pagerduty.priorities import Choice

CHECK_SECONDS = 5.0  # how long `im assign` waits to learn whether the user exists
# how far PagerDuty's clock may be behind im's, telling this change's note from older ones
NOTE_CLOCK_SKEW = timedelta(minutes=5)
VERIFY_SECONDS = 10.0  # how long a settings change or a mapping waits to check an id
# PagerDuty's codes for "already in that state": success for an idempotent push.
ALREADY_RESOLVED = 1001
ALREADY_ACKNOWLEDGED = 1002
INVALID_PRIORITY = 1020  # a priority PagerDuty does not have (any more)


def _ref(kind: str, remote_id: str) -> dict[str, str]:
    return {"id": remote_id, "type": f"{kind}_reference"}


class PagerDutyConnector(Connector):
    type = "pagerduty"
    Settings = PagerDutySettings
    description = "PagerDuty: incidents, notes, assignments, on-call and webhooks"
    rate_limit_per_minute = 960  # REST API v2, per key, until an answer says its own
    options = {
        "api-key": "api_key",
        "base-url": "base_url",
        "service-id": "custom.service_id",
        "from-email": "custom.from_email",
        "escalation-policy": "custom.escalation_policy_id",
        "urgency-mapping": "custom.urgency_mapping",
        "priority-mapping": "custom.priority_mapping",
        "service-mappings": "custom.service_mappings",
        "auto-resolve": "custom.auto_resolve",
        "sync-notes": "custom.sync_notes",
        "custom-field-mappings": "custom.custom_field_mappings",
        "sla-mapping": "custom.sla_mapping",
        "sync-direction": "sync_direction",
        "sync-interval": "sync_interval",
        "enable-webhook": "enable_webhook",
    }
    settings: PagerDutySettings
    # Extra PagerDutyClient arguments (tests shorten retries with them).
    client_options: ClassVar[dict[str, Any]] = {}

    @cached_property
    def client(self) -> PagerDutyClient:
        from im_pagerduty.client import PagerDutyClient

        settings = self.settings
        tracing = settings.debug or settings.log_requests or settings.log_responses
        options: dict[str, Any] = {
            "on_call": self._record_call,
            # one budget per API key for every im process on the database (several servers)
            "shared_rate_limits": self.runtime.shared_rate_limits(),
            "trace": self._trace if tracing else None,
            "trace_bodies": (settings.debug or settings.log_requests,
                             settings.debug or settings.log_responses),
            **self.client_options,
        }
        return PagerDutyClient(settings.base_url, settings.api_key,
                               from_email=settings.custom.from_email, **options)

    def _record_call(self, call: CallInfo) -> None:
        self.runtime.record_call(self.name, method=call.method, path=call.path,
                                 status=call.status, duration=call.duration, error=call.error,
                                 rate_limit=call.rate_limit,
                                 rate_remaining=call.rate_remaining)

    def _trace(self, message: str, details: dict[str, Any]) -> None:
        logging.getLogger(f"im.connector.{self.name}").info(message, extra=details)

    # -- mapping ---------------------------------------------------------------------------

    def pd_service(self, service: str) -> str:
        """The PagerDuty service of an im service: its mapping, the `default` mapping, then
        the connector's default service."""
        mappings = self.settings.custom.service_mappings
        return mappings.get(service) or mappings.get("default") or self.settings.custom.service_id

    def routed(self, service: str, service_id: str | None = None) -> str | None:
        """For an im service with no mapping of its own, where its incident went, in words
        (None for a mapped one)."""
        mappings = self.settings.custom.service_mappings
        if service in mappings:
            return None
        where = ("the `default` mapping" if mappings.get("default")
                 else "the connector's default service, service_id")
        return (f"{service} has no service mapping; its incident went to PagerDuty service"
                f" {service_id or self.pd_service(service)} ({where})")

    def escalation_policy(self, service: str) -> str | None:
        custom = self.settings.custom
        return custom.escalation_mappings.get(service) or custom.escalation_policy_id

    def body_html(self, request: MapOutboundRequest) -> str:
        """The incident body PagerDuty shows: the description and custom fields, as HTML."""
        incident = request.incident
        parts = [f"<p>{html.escape(line)}</p>" for line in incident.description.splitlines()
                 if line.strip()]
        mappings = self.settings.custom.custom_field_mappings
        fields = [(mappings.get(key, key) if mappings else key, value)
                  for key, value in sorted(incident.fields.items())
                  if not mappings or key in mappings]
        if fields:
            items = "".join(
                f"<li><b>{html.escape(name.removeprefix('custom_details.'))}</b>:"
                f" {html.escape(value)}</li>" for name, value in fields)
            parts.append(f"<ul>{items}</ul>")
        parts.append(f"<p>im incident {incident.id} ({incident.severity.value}, service"
                     f" {html.escape(request.service)}); correlation id"
                     f" {incident.correlation_id}</p>")
        return "".join(parts)

    def map_outbound(self, request: MapOutboundRequest) -> dict[str, Any]:
        incident = request.incident
        urgency = self.settings.custom.urgency_mapping.get(
            incident.severity, DEFAULT_URGENCY[incident.severity])
        body: dict[str, Any] = {
            "type": "incident",
            "title": incident.title,
            "service": _ref("service", self.pd_service(request.service)),
            "urgency": urgency,
            "body": {"type": "incident_body", "details": self.body_html(request)},
        }
        policy = self.escalation_policy(request.service)
        if policy:
            body["escalation_policy"] = _ref("escalation_policy", policy)
        return body

    # -- outbound --------------------------------------------------------------------------

    def push(self, request: PushRequest) -> PushResult:
        with self.client.until(request.deadline):
            return self._push(request)

    def _push(self, request: PushRequest) -> PushResult:
        if request.action == "declare":
            return self._create(request)
        if request.link is None:
            raise ConnectorError(f"no PagerDuty incident is linked to {request.incident.id}"
                                 f" for service {request.service}")
        if request.link.remote_status == RemoteStatus.MERGED:
            # merged into an incident another link follows: that link carries im's changes
            return PushResult()
        handler = {
            "ack": self._acknowledge, "resolve": self._resolve, "close": self._close,
            "reopen": self._reopen, "note": self._note, "assign": self._assign,
            "severity": self._severity, "sla_breach": self._sla_note,
        }.get(request.action)
        if handler is None:
            return PushResult()  # e.g. unack: PagerDuty has no API for it
        return handler(request)

    def _ref_of(self, incident: dict[str, Any]) -> RemoteRef:
        from im_pagerduty.client import parse_time
        from im_pagerduty.webhooks import state

        return RemoteRef(remote_id=incident["id"],
                         remote_number=str(incident.get("incident_number", "")) or None,
                         remote_url=incident.get("html_url"),
                         remote_status=state(incident.get("status")),
                         remote_updated_at=parse_time(incident.get("last_status_change_at")))

    def _assignee(self, incident: dict[str, Any]) -> str | None:
        return self.assignee_of(
            [assignment.get("assignee") or {} for assignment in incident.get("assignments") or []])

    def assignee_of(self, users: list[dict[str, Any]]) -> str | None:
        """The e-mail of the first of a PagerDuty incident's assigned users that is a person:
        im's own user (the From address), which PagerDuty assigns when im acknowledges, never
        becomes an im incident's assignee."""
        own = self.settings.custom.from_email.lower()
        for user in users:
            if not user.get("id"):
                continue
            # never the display name: an assignee is pushed to other systems by e-mail
            email = user.get("email") or self.email_of(user["id"])
            if email and email.lower() != own:
                return str(email)
        return None

    def email_of(self, user_id: str) -> str | None:
        """A PagerDuty user's e-mail (im names people by e-mail), looked up by id and kept
        for a few minutes per account."""
        from im_pagerduty.directory import email_of

        return email_of(self.client, user_id)

    @property
    def own_user_id(self) -> str | None:
        """The user im acts as (the From address): events it caused are im's own echoes."""
        from im_pagerduty.directory import id_of

        return id_of(self.client, self.settings.custom.from_email)

    def user_id(self, email: str) -> str:
        from im_pagerduty.directory import forget, id_of

        found = id_of(self.client, email)
        if found is None:
            forget(self.client)  # a user added since the last look-up
            found = id_of(self.client, email)
        if found is None:
            raise ConnectorError(f"{email} is not a PagerDuty user")
        return found

    def check_assignee(self, request: AssigneeRequest) -> None:
        from im_pagerduty.client import PagerDutyError

        try:
            # a quick look: the local change must not wait on a slow PagerDuty
            with self.client.until(time.monotonic() + CHECK_SECONDS):
                self.user_id(request.assignee)
        except PagerDutyError:
            return  # unreachable: the push will tell
        except ConnectorError:
            raise InvalidInputError(f"{request.assignee} is not a PagerDuty user"
                                    f" ({self.name}); `im oncall --service NAME` shows who"
                                    " is") from None

    def verify_exists(self, path: str, what: str, *, lenient: bool = False,
                      deadline: float | None = None) -> str | None:
        """Refuse an id PagerDuty does not know (InvalidInputError); a warning (returned) when
        PagerDuty cannot tell: unreachable, or, when `lenient`, any other error (a key being
        changed in another step, say). `deadline` (time.monotonic()) bounds the wait; by
        default VERIFY_SECONDS from now."""
        from im_pagerduty.client import PagerDutyError

        try:
            with self.client.until(deadline or time.monotonic() + VERIFY_SECONDS):
                self.client.get(path)
        except PagerDutyError as error:
            if error.status == 404:
                raise InvalidInputError(f"PagerDuty has no {what}") from None
            if error.retryable or lenient:
                return f"could not check the {what} with PagerDuty: {error}"
            raise
        return None

    def check_settings(self, request: SettingsCheckRequest) -> SettingsCheckResult:
        """A changed API key (or base URL) must be one PagerDuty accepts; a changed default
        service or escalation policy must exist in PagerDuty, as `map-service` and
        `map-escalation` check theirs."""
        from urllib.parse import quote

        from im_pagerduty.client import PagerDutyError

        if {"api_key", "base_url"} & set(request.changed):
            try:
                with self.client.until(time.monotonic() + VERIFY_SECONDS):
                    self.client.get("/users", limit=1)
            except PagerDutyError as error:
                if error.status == 401:
                    raise InvalidInputError("PagerDuty refused the API key (401 Unauthorized);"
                                            " nothing changed") from None
                if not error.retryable:
                    raise
                return SettingsCheckResult(warnings=[
                    f"could not check the API key with PagerDuty: {error}"])
        custom = self.settings.custom
        wanted = [("custom.service_id", f"/services/{quote(custom.service_id, safe='')}",
                   f"service {custom.service_id}")]
        if custom.escalation_policy_id:
            policy = quote(custom.escalation_policy_id, safe="")
            wanted.append(("custom.escalation_policy_id", f"/escalation_policies/{policy}",
                           f"escalation policy {custom.escalation_policy_id}"))
        warnings = []
        for setting, path, what in wanted:
            if setting not in request.changed:
                continue
            try:
                warning = self.verify_exists(path, what, lenient=True)
            except InvalidInputError as error:
                raise InvalidInputError(f"{error} ({setting}); nothing changed") from None
            if warning:
                warnings.append(warning)
        return SettingsCheckResult(warnings=warnings)

    def _find_by_key(self, key: str) -> dict[str, Any] | None:
        found = self.client.get("/incidents", incident_key=key, date_range="all")
        incidents = found.get("incidents") or []
        return incidents[0] if incidents else None

    def _create(self, request: PushRequest) -> PushResult:
        from im_pagerduty.client import PagerDutyError

        key = request.idempotency_key
        unset: list[str] = []  # why no priority was set, when one was meant to be
        # A retry may follow a create whose answer was lost: look for it before creating.
        existing = self._find_by_key(key) if request.attempt > 1 else None
        if existing is None:
            body = self.map_outbound(MapOutboundRequest(incident=request.incident,
                                                        service=request.service))
            body["incident_key"] = key
            choice = self._priority(request.incident.severity, unset)
            if choice.ref:
                body["priority"] = choice.ref
            try:
                # repeatable: PagerDuty refuses a second open incident with the same key
                incident = self._post_incident(body, unset)
                verb = "created"
            except PagerDutyError as error:
                # 400: an open incident has this key already (made by an earlier attempt).
                if error.status != 400 or (existing := self._find_by_key(key)) is None:
                    raise
                incident, verb = existing, "linked"
        else:
            incident, verb = existing, "linked"
        # one an earlier attempt made: what happened to it since (a responder's ack, say)
        # comes in as news, or has already (a webhook may have linked it meanwhile); the link
        # claims nothing about its state (a new one starts open)
        ref = self._ref_of(incident) if verb == "created" else self._ref_only(incident)
        service_id = incident.get("service", {}).get("id", self.pd_service(request.service))
        lines = [f"PagerDuty incident #{ref.remote_number} {verb} ({incident.get('urgency')}"
                 f" urgency, service {service_id}) {ref.remote_url or ''}".rstrip()]
        lines += unset
        routed = self.routed(request.service, service_id)
        if routed:
            lines.append(routed)
        assignee = self._assignee(incident)
        if assignee:
            lines.append(f"PagerDuty assigned {assignee}")
        return PushResult(link=ref, timeline=lines, assignee=assignee)

    def _priority(self, severity: Severity, unset: list[str]) -> Choice:
        """The priority for a severity; when there is none to set, why (in `unset`) unless
        the account has no priorities: `connector test` says that once, not every change."""
        from im_pagerduty.priorities import NOT_ENABLED, choose

        choice = choose(self, severity)
        if choice.why and choice.why != NOT_ENABLED:
            unset.append(f"PagerDuty priority not set: {choice.why}")
        return choice

    def _post_incident(self, body: dict[str, Any], unset: list[str]) -> dict[str, Any]:
        incident: dict[str, Any] = self._without_bad_priority(
            body, unset, lambda sent: self.client.post(
                "/incidents", {"incident": sent}, repeatable=True)["incident"])
        return incident

    def _without_bad_priority(self, body: dict[str, Any], unset: list[str],
                              send: Callable[[dict[str, Any]], Any]) -> Any:
        """Send; if PagerDuty refuses the priority (1020: deleted or disabled since it was
        listed), send again without it: a change never fails for want of a priority."""
        from im_pagerduty.client import PagerDutyError
        from im_pagerduty.priorities import forget

        try:
            return send(body)
        except PagerDutyError as error:
            if error.code != INVALID_PRIORITY or "priority" not in body:
                raise
            forget(self.client)
            unset.append("PagerDuty priority not set: PagerDuty refused it (Invalid Priority)")
            return send({k: v for k, v in body.items() if k != "priority"})

    def _update(self, request: PushRequest, changes: dict[str, Any],
                already: int | None = None) -> dict[str, Any] | None:
        """PUT the changes; None when PagerDuty says it is already in that state."""
        from im_pagerduty.client import PagerDutyError

        assert request.link is not None
        try:
            return self.client.put(f"/incidents/{request.link.remote_id}",
                                   {"incident": {"type": "incident_reference", **changes}}
                                   )["incident"]
        except PagerDutyError as error:
            if already is not None and error.code == already:
                return None
            raise

    def _number(self, request: PushRequest) -> str:
        assert request.link is not None
        return f"#{request.link.remote_number or request.link.remote_id}"

    def _add_note(self, request: PushRequest, lines: list[str]) -> None:
        note = request.payload.get("note")
        if note and self.settings.custom.sync_notes:
            assert request.link is not None
            self._post_note_once(request, note)
            lines.append(f"Note added to PagerDuty incident {self._number(request)}")

    def _post_note_once(self, request: PushRequest, note: str) -> None:
        """PagerDuty notes have no idempotency key. A retry (after a crash, or a failure later
        in the same push) counts the notes with this text on the PagerDuty incident against
        the ones im has delivered there: one more means the earlier attempt got through."""
        assert request.link is not None
        path = f"/incidents/{request.link.remote_id}/notes"
        if request.attempt > 1:
            from im_pagerduty.client import parse_time

            own = self.own_user_id  # a responder's note with the same words is not im's
            # Only what is recent enough to be this change's doing, or a delivered change's
            # still on record: changes delivered long ago are forgotten (retention), and their
            # notes would stand for this one, which would then never be posted.
            since = (request.queued_at - NOTE_CLOCK_SKEW) if request.queued_at else None
            posted = sum(1 for existing in self.client.get(path).get("notes", [])
                         if existing.get("content") == note
                         and (own is None or (existing.get("user") or {}).get("id") == own)
                         and (since is None or (parse_time(existing.get("created_at"))
                                                or since) >= since))
            delivered = sum(1 for row in self.runtime.store.outbox(
                connector=self.name, incident_id=request.incident.id, statuses=("done",))
                if row.service == request.service and row.payload.get("note") == note
                and (since is None or row.created_at >= since))
            if posted > delivered:
                return
        self.client.post(path, {"note": {"content": note}})

    def _state(self, request: PushRequest, incident: dict[str, Any] | None, status: str,
               verb: str) -> tuple[RemoteRef, list[str]]:
        """The link after im set `status`. PagerDuty's answer "already in that state" says
        nothing of when: the incident is read, so that an event from before that change which
        arrives late is seen as older (a retry after a lost answer meets this)."""
        from im_pagerduty.client import PagerDutyError
        from im_pagerduty.webhooks import state

        number = self._number(request)
        if incident is None:
            assert request.link is not None
            try:
                incident = self.client.get(f"/incidents/{request.link.remote_id}").get(
                    "incident")
            except PagerDutyError:
                incident = None
            line = f"PagerDuty incident {number} was already {status}"
            if not incident or incident.get("status") != status:
                return RemoteRef(remote_id=request.link.remote_id,
                                 remote_status=state(status)), [line]
            return self._ref_of(incident), [line]
        return self._ref_of(incident), [f"PagerDuty incident {number} {verb}"]

    def _ref_only(self, incident: dict[str, Any]) -> RemoteRef:
        """The link's number and URL from an answer to a change that was not a status change:
        the status in it may be a responder's that im has not received yet, which the link
        must not claim to know (the event would then be taken for known news)."""
        return msgspec.structs.replace(self._ref_of(incident), remote_status=None,
                                       remote_updated_at=None)

    def _acknowledge(self, request: PushRequest) -> PushResult:
        from im_pagerduty.client import PagerDutyError

        try:
            incident = self._update(request, {"status": "acknowledged"}, ALREADY_ACKNOWLEDGED)
        except PagerDutyError as error:
            if error.code != ALREADY_RESOLVED:
                raise
            # the resolve comes in by webhook or poll and resolves the im incident
            return PushResult(timeline=[f"PagerDuty incident {self._number(request)} is"
                                        " resolved already; not acknowledged"])
        ref, lines = self._state(request, incident, "acknowledged", "acknowledged")
        self._add_note(request, lines)
        # PagerDuty assigns whoever acknowledged: im's own user here, never an im assignee
        return PushResult(link=ref, timeline=lines)

    def _resolve(self, request: PushRequest) -> PushResult:
        lines: list[str] = []
        self._add_note(request, lines)
        if not self.settings.custom.auto_resolve:
            lines.append(f"PagerDuty incident {self._number(request)} left open"
                         " (auto_resolve is off)")
            return PushResult(timeline=lines)
        changes: dict[str, Any] = {"status": "resolved"}
        if request.payload.get("note"):
            changes["resolution"] = request.payload["note"]
        incident = self._update(request, changes, ALREADY_RESOLVED)
        ref, state_lines = self._state(request, incident, "resolved", "resolved")
        return PushResult(link=ref, timeline=state_lines + lines)

    def _close(self, request: PushRequest) -> PushResult:
        # Closing is final in im; PagerDuty only knows resolved (the spec's mapping).
        if request.link is not None and request.link.remote_status == RemoteStatus.RESOLVED:
            return PushResult()
        incident = self._update(request, {"status": "resolved"}, ALREADY_RESOLVED)
        ref, lines = self._state(request, incident, "resolved", "resolved (im incident closed)")
        return PushResult(link=ref, timeline=lines)

    def _reopen(self, request: PushRequest) -> PushResult:
        # `status: triggered` reopens a resolved incident, but unacknowledges an acknowledged
        # one, and PagerDuty pages its responders again: only a resolved one is reopened. (A
        # PagerDuty incident still open is im's reopen done already, e.g. with auto_resolve
        # off.) Its status is read, not taken from the link, which may be behind; if it
        # cannot be read, the change waits in the outbox rather than trigger blind.
        if request.link is not None:
            current = self.client.get(f"/incidents/{request.link.remote_id}").get(
                "incident") or {}
            status = current.get("status")
            if status in ("triggered", "acknowledged"):
                lines = [f"PagerDuty incident {self._number(request)} is still {status};"
                         " not triggered again"]
                self._add_note(request, lines)
                return PushResult(link=self._ref_of(current), timeline=lines)
        incident = self._update(request, {"status": "triggered"})
        ref, lines = self._state(request, incident, "triggered", "reopened (triggered)")
        self._add_note(request, lines)
        assignee = self._assignee(incident) if incident else None
        if assignee and assignee != request.incident.assignee:
            lines.append(f"PagerDuty assigned {assignee}")
        return PushResult(link=ref, timeline=lines, assignee=assignee)

    def _note(self, request: PushRequest) -> PushResult:
        lines: list[str] = []
        self._add_note(request, lines)
        return PushResult(timeline=lines)

    def _severity(self, request: PushRequest) -> PushResult:
        # the severity the incident has now: a later change (made in PagerDuty while this
        # one was queued, say) is not undone by an older one delivered after it
        severity = request.incident.severity
        urgency = self.settings.custom.urgency_mapping.get(severity, DEFAULT_URGENCY[severity])
        unset: list[str] = []
        changes: dict[str, Any] = {"urgency": urgency}
        choice = self._priority(severity, unset)
        if choice.ref:
            changes["priority"] = choice.ref
        incident = self._without_bad_priority(
            changes, unset, lambda sent: self._update(request, sent))
        sent = (f" and priority {choice.name}" if choice.ref and not unset else "")
        return PushResult(link=self._ref_only(incident) if incident else None, timeline=[
            f"PagerDuty incident {self._number(request)} urgency set to {urgency}{sent}",
            *unset])

    def _sla_note(self, request: PushRequest) -> PushResult:
        """SLA breaches are noted in PagerDuty whatever `sync_notes` says."""
        self._post_note_once(request, request.payload["note"])
        return PushResult(timeline=[f"SLA breach noted on PagerDuty incident"
                                    f" {self._number(request)}"])

    def describe_remote(self, request: RemoteIncidentRequest) -> RemoteIncidentReport:
        from im_pagerduty.report import describe_remote

        return describe_remote(self, request)

    def sla_policy(self, request: SlaPolicyRequest) -> dict[str, dict[str, str]] | None:
        mapping = self.settings.custom.sla_mapping
        if not mapping:
            return None
        return {severity.value: {k: v for k, v in (("ack", t.ack), ("resolve", t.resolve))
                                 if v is not None} for severity, t in mapping.items()}

    def _assign(self, request: PushRequest) -> PushResult:
        email = request.payload["assignee"]
        incident = self._update(request, {"assignments": [
            {"assignee": _ref("user", self.user_id(email))}]})
        return PushResult(link=self._ref_only(incident) if incident else None, timeline=[
            f"PagerDuty incident {self._number(request)} reassigned to {email}"])

    # -- webhooks and polling --------------------------------------------------------------

    def verify_webhook(self, request: WebhookRequest) -> bool:
        from im_pagerduty.webhooks import SIGNATURE_HEADER, verify

        return verify(self.settings.custom.webhook_secrets,
                      request.headers.get(SIGNATURE_HEADER), request.body)

    def parse_webhook(self, request: WebhookRequest) -> WebhookEvent:
        from im_pagerduty.webhooks import envelope

        return envelope(request.headers, request.body)

    def webhook_changes(self, request: WebhookRequest) -> list[InboundChange]:
        from im_pagerduty.webhooks import changes

        if request.deadline is None:
            return changes(self, request.body)
        # who an actor is may be asked of PagerDuty: no longer than the caller can wait
        with self.client.until(request.deadline):
            return changes(self, request.body)

    def webhook_subscribe(self, request: WebhookSetupRequest) -> WebhookSetupResult:
        from im_pagerduty.subscriptions import subscribe

        return subscribe(self, request.url)

    def webhook_unsubscribe(self, request: WebhookSetupRequest) -> WebhookSetupResult:
        from im_pagerduty.subscriptions import unsubscribe

        return unsubscribe(self, request.url)

    def webhook_test_event(self, request: WebhookTestRequest) -> WebhookTestEvent:
        from im_pagerduty.subscriptions import test_event

        return test_event(self)

    def webhook_ping(self, request: WebhookTestRequest) -> str:
        from im_pagerduty.subscriptions import ping

        return ping(self)

    def pull(self, request: PullRequest) -> PullResult:
        from im_pagerduty.polling import pull

        with self.client.until(request.deadline):
            return pull(self, request)

    # -- configuration ---------------------------------------------------------------------

    def remote_account(self) -> RemoteAccount:
        """A PagerDuty account is what an API key reaches (at its base URL): a hash of both
        (an `env:` key is read when it is set here, so the key itself matches it)."""
        import hashlib
        import os

        key = self.settings.api_key
        if key.startswith("env:"):
            key = os.environ.get(key.removeprefix("env:"), key)
        base = self.settings.base_url.rstrip("/").lower()
        digest = hashlib.sha256(f"{base}\n{key}".encode()).hexdigest()
        return RemoteAccount(key=f"pagerduty:{digest}",
                             label="this PagerDuty account (same API key)")

    # -- checks ----------------------------------------------------------------------------

    def test(self, request: CheckRequest) -> list[Check]:
        from im_pagerduty.checks import connection_checks

        with self.client.until(request.deadline):
            return connection_checks(self, request)

    def health(self, request: CheckRequest) -> list[Check]:
        from im_pagerduty.checks import health_checks

        with self.client.until(request.deadline):
            return health_checks(self, request)

    # -- on-call ---------------------------------------------------------------------------

    def oncall(self, request: OncallRequest) -> OncallResult:
        from im_pagerduty.oncall import lookup

        with self.client.until(request.deadline):
            return lookup(self, request.service, request.at or self.runtime.clock())

    def webhook_url(self, public_url: str | None) -> str | None:
        return f"{public_url}/connectors/{self.name}/webhook" if public_url else None

