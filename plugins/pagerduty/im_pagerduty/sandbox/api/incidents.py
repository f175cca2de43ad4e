"""/incidents: create, list, get, update (one or many), notes and the incident's log entries."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import msgspec
from litestar import Controller, Request, Response, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath

from im_pagerduty.sandbox import errors
from im_pagerduty.sandbox.api.common import Page, Query, json_response, read_json, requester
from im_pagerduty.sandbox.api.log_entries import log_entries_body
from im_pagerduty.sandbox.core import Sandbox
from im_pagerduty.sandbox.model import Incident
from im_pagerduty.sandbox.requests import (
    CreateIncidentBody,
    CreateNoteBody,
    IncidentChanges,
    RefIn,
    ResponderRequestBody,
    StatusUpdateBody,
    UpdateIncidentBody,
)
from im_pagerduty.sandbox.times import format_time

STATUSES = frozenset({"triggered", "acknowledged", "resolved"})
DEFAULT_RANGE = timedelta(days=30)
MAX_RANGE = timedelta(days=183)
MAX_BULK_UPDATE = 250

_SORT_KEYS: dict[str, Callable[[Incident], Any]] = {
    "incident_number": lambda i: i.number,
    "created_at": lambda i: i.created_at,
    # Unresolved incidents sort after every resolved one.
    "resolved_at": lambda i: (i.resolved_at is None, i.resolved_at or i.created_at),
    "urgency": lambda i: i.urgency,
}


def _window(query: Query, now: datetime) -> tuple[datetime, datetime] | None:
    date_range = query.text("date_range")
    if date_range == "all":
        return None
    if date_range is not None:
        raise errors.invalid_input("date_range can only be 'all'")
    since, until = query.time("since"), query.time("until")
    if since is None and until is None:
        return now - DEFAULT_RANGE, now
    if since is None:
        assert until is not None
        since = until - DEFAULT_RANGE
    if until is None:
        until = max(now, since)
    if until < since:
        raise errors.invalid_since_until("until must not be before since")
    if until - since > MAX_RANGE:
        raise errors.invalid_date_range("The maximum range between since and until is 6 months")
    return since, until


def _sorted(incidents: list[Incident], sort_by: str | None) -> list[Incident]:
    if not sort_by:
        return incidents
    fields = [part.strip() for part in sort_by.split(",") if part.strip()]
    if len(fields) > 2:
        raise errors.invalid_input("sort_by takes at most two fields")
    ordered = incidents
    # Stable sorts applied last key first give a multi-key sort.
    for field in reversed(fields):
        name, _, direction = field.partition(":")
        if name not in _SORT_KEYS or direction not in ("", "asc", "desc"):
            raise errors.invalid_input(f"Invalid sort_by: {field}")
        ordered = sorted(ordered, key=_SORT_KEYS[name], reverse=direction == "desc")
    return ordered


def select_incidents(sandbox: NamedDependency[Sandbox], query: Query) -> list[Incident]:
    store = sandbox.store
    window = _window(query, sandbox.clock.now())
    statuses = frozenset(query.strings("statuses[]"))
    if statuses - STATUSES:
        raise errors.invalid_input(f"Invalid statuses: {', '.join(sorted(statuses - STATUSES))}")
    urgencies = frozenset(query.strings("urgencies[]"))
    if urgencies - {"high", "low"}:
        raise errors.invalid_input("urgencies[] must be high or low")
    service_ids = frozenset(query.strings("service_ids[]"))
    user_ids = frozenset(query.strings("user_ids[]"))
    team_ids = frozenset(query.strings("team_ids[]"))
    incident_key = query.text("incident_key")
    if team_ids:
        # No incident in the sandbox belongs to a team.
        return []
    found = []
    for incident_id in store.incident_order:
        incident = store.incidents[incident_id]
        if window and not window[0] <= incident.created_at < window[1]:
            continue
        if statuses and incident.status not in statuses:
            continue
        if service_ids and incident.service_id not in service_ids:
            continue
        if urgencies and incident.urgency not in urgencies:
            continue
        if incident_key is not None and incident.incident_key != incident_key:
            continue
        if user_ids and not (incident.is_open and user_ids.intersection(incident.assignee_ids)):
            continue
        found.append(incident)
    return _sorted(found, query.text("sort_by"))


class IncidentController(Controller):
    path = "/incidents"

    @get("/")
    async def list_incidents(
        self, request: Request[Any, Any, Any], sandbox: NamedDependency[Sandbox]
    ) -> Response[bytes]:
        query = Query(request)
        page = Page.from_query(query, sandbox.settings.offset_ceiling)
        includes = query.includes()
        renderer = sandbox.renderer()
        found = select_incidents(sandbox, query)
        return json_response(
            page.body("incidents", found, lambda i: renderer.incident(i, includes))
        )

    @post("/")
    async def create_incident(
        self, request: Request[Any, Any, Any], sandbox: NamedDependency[Sandbox]
    ) -> Response[bytes]:
        actor = requester(request, sandbox)
        body = await read_json(request, CreateIncidentBody)
        incident = sandbox.incidents.create(body.incident, actor)
        return json_response({"incident": sandbox.renderer().incident(incident)}, 201)

    @put("/")
    async def update_incidents(
        self, request: Request[Any, Any, Any], sandbox: NamedDependency[Sandbox]
    ) -> Response[bytes]:
        actor = requester(request, sandbox)
        body = await read_json(request, _BulkUpdateBody)
        if len(body.incidents) > MAX_BULK_UPDATE:
            raise errors.PagerDutyError(
                413,
                "Request Entity Too Large",
                2001,
                (f"At most {MAX_BULK_UPDATE} incidents per request",),
            )
        for change in body.incidents:
            sandbox.incidents.get(change.id)
        renderer = sandbox.renderer()
        updated = [sandbox.incidents.update(change.id, change, actor) for change in body.incidents]
        return json_response({"incidents": [renderer.incident(i) for i in updated]})

    @get("/{incident_id:str}")
    async def get_incident(
        self,
        request: Request[Any, Any, Any],
        sandbox: NamedDependency[Sandbox],
        incident_id: FromPath[str],
    ) -> Response[bytes]:
        incident = sandbox.incidents.get(incident_id)
        includes = Query(request).includes()
        return json_response(
            {"incident": sandbox.renderer().incident(incident, includes, with_body=True)}
        )

    @put("/{incident_id:str}")
    async def update_incident(
        self,
        request: Request[Any, Any, Any],
        sandbox: NamedDependency[Sandbox],
        incident_id: FromPath[str],
    ) -> Response[bytes]:
        actor = requester(request, sandbox)
        sandbox.incidents.get(incident_id)
        body = await read_json(request, UpdateIncidentBody)
        incident = sandbox.incidents.update(incident_id, body.incident, actor)
        return json_response({"incident": sandbox.renderer().incident(incident)})

    @put("/{incident_id:str}/merge")
    async def merge_incidents(
        self,
        request: Request[Any, Any, Any],
        sandbox: NamedDependency[Sandbox],
        incident_id: FromPath[str],
    ) -> Response[bytes]:
        actor = requester(request, sandbox)
        sandbox.incidents.get(incident_id)
        body = await read_json(request, _MergeBody)
        target = sandbox.incidents.merge(
            incident_id, [source.id or "" for source in body.source_incidents], actor
        )
        return json_response({"incident": sandbox.renderer().incident_ref(target)})

    @get("/{incident_id:str}/notes")
    async def list_notes(
        self, sandbox: NamedDependency[Sandbox], incident_id: FromPath[str]
    ) -> Response[bytes]:
        sandbox.incidents.get(incident_id)
        renderer = sandbox.renderer()
        notes = sandbox.store.notes.get(incident_id, [])
        return json_response({"notes": [renderer.note(n) for n in notes]})

    @post("/{incident_id:str}/notes")
    async def create_note(
        self,
        request: Request[Any, Any, Any],
        sandbox: NamedDependency[Sandbox],
        incident_id: FromPath[str],
    ) -> Response[bytes]:
        actor = requester(request, sandbox)
        sandbox.incidents.get(incident_id)
        body = await read_json(request, CreateNoteBody)
        note = sandbox.incidents.add_note(incident_id, body.note.content, actor)
        return json_response({"note": sandbox.renderer().note(note)}, 200)

    @post("/{incident_id:str}/status_updates")
    async def create_status_update(
        self,
        request: Request[Any, Any, Any],
        sandbox: NamedDependency[Sandbox],
        incident_id: FromPath[str],
    ) -> Response[bytes]:
        actor = requester(request, sandbox)
        sandbox.incidents.get(incident_id)
        body = await read_json(request, StatusUpdateBody)
        update = sandbox.incidents.add_status_update(incident_id, body.message, actor)
        sender = sandbox.event_maker().user_ref(actor.id)
        return json_response(
            {
                "status_update": {
                    **update,
                    "created_at": format_time(sandbox.clock.now()),
                    "sender": msgspec.to_builtins(sender),
                }
            },
            200,
        )

    @post("/{incident_id:str}/responder_requests")
    async def create_responder_request(
        self,
        request: Request[Any, Any, Any],
        sandbox: NamedDependency[Sandbox],
        incident_id: FromPath[str],
    ) -> Response[bytes]:
        """The requester is the body's `requester_id`; the document names no `From` header
        for this operation, so one is not required (an account key's `From` is ignored)."""
        sandbox.incidents.get(incident_id)
        body = await read_json(request, ResponderRequestBody)
        record = sandbox.incidents.request_responders(
            incident_id,
            body.requester_id,
            body.message,
            [target.ref for target in body.responder_request_targets],
        )
        incident = sandbox.incidents.get(incident_id)
        return json_response(
            {"responder_request": sandbox.renderer().responder_request(incident, record)}, 200
        )

    @get("/{incident_id:str}/log_entries")
    async def list_log_entries(
        self,
        request: Request[Any, Any, Any],
        sandbox: NamedDependency[Sandbox],
        incident_id: FromPath[str],
    ) -> Response[bytes]:
        sandbox.incidents.get(incident_id)
        return json_response(
            log_entries_body(sandbox, Query(request), sandbox.store.incident_log[incident_id])
        )


class _BulkChange(IncidentChanges, kw_only=True):
    id: str


class _MergeBody(msgspec.Struct, kw_only=True):
    source_incidents: list[RefIn]


class _BulkUpdateBody(msgspec.Struct, kw_only=True):
    incidents: list[_BulkChange]
