"""The HTTP API for incidents: list, show, declare, ack, resolve, close, reopen, note.

Every request needs `Authorization: Bearer <token>` (`im api-token create NAME` makes one); a
read-only token may only read. Tokens are looked up on every request, so a revoked one is
refused at once. Changes go through the same lifecycle as the CLI's; the background worker
delivers them to connectors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import msgspec
from litestar import Controller, Request, get, post
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.params import Body, Parameter

from im import incidents
from im.errors import InvalidInputError
from im.models import Action, Incident, Link, TimelineEvent
from im.runtime import Runtime
from im.tokens import adopt_legacy, authenticate


T = TypeVar("T")
Query = Annotated[T, Parameter()]


class DeclareBody(msgspec.Struct, kw_only=True):
    title: str
    severity: str
    services: list[str]
    description: str = ""
    fields: dict[str, str] = {}


class NoteBody(msgspec.Struct, kw_only=True):
    note: str = ""


class IncidentView(msgspec.Struct, kw_only=True):
    incident: Incident
    links: list[Link]


def make_api(runtime: Runtime, after_change: Callable[[], None]) -> type[Controller]:
    adopt_legacy(runtime.store, runtime.clock())  # an earlier im's token keeps working

    def bearer(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        token = authenticate(runtime.store, connection.headers.get("authorization"))
        if token is None:
            raise NotAuthorizedException("a valid `Authorization: Bearer TOKEN` is required"
                                         " (`im api-token create NAME` makes one)")
        if token.read_only and connection.scope.get("method") not in ("GET", "HEAD"):
            raise PermissionDeniedException(f"token {token.name} is read-only")

    def view(incident_id: str) -> IncidentView:
        incident = incidents.get(runtime, incident_id)
        return IncidentView(incident=incident, links=runtime.store.links(incident.id))

    def change(incident_id: str, action: Action, body: NoteBody | None,
               request: Request[Any, Any, Any]) -> IncidentView:
        incident = incidents.transition(runtime, incident_id, action,
                                        note=body.note if body is not None else "",
                                        origin=_origin(request))
        after_change()
        return view(incident.id)

    class IncidentsController(Controller):
        path = "/api/incidents"
        guards = [bearer]
        security = [{"BearerToken": []}]
        tags = ["incidents"]

        @get("/", sync_to_thread=True)
        def list_incidents(self, status: Query[list[str] | None] = None,
                           severity: Query[list[str] | None] = None,
                           service: Query[list[str] | None] = None,
                           limit: Query[int] = 100) -> list[Incident]:
            """Incidents, newest first; filter by status, severity and service."""
            if limit < 1:
                raise InvalidInputError(f"limit must be 1 or more, not {limit}")
            return runtime.store.list_incidents(
                statuses=[incidents.parse_status(s) for s in status or []],
                severities=[incidents.parse_severity(s) for s in severity or []],
                services=incidents.parse_services(service or []), limit=min(limit, 1000))

        @get("/{incident_id:str}", sync_to_thread=True)
        def show(self, incident_id: str) -> IncidentView:
            """One incident with its linked remote incidents."""
            return view(incident_id)

        @get("/{incident_id:str}/timeline", sync_to_thread=True)
        def timeline(self, incident_id: str) -> list[TimelineEvent]:
            return runtime.store.timeline(incidents.get(runtime, incident_id).id)

        @post("/", sync_to_thread=True, status_code=201)
        def declare(self, data: Annotated[DeclareBody, Body()], request: Request[Any, Any, Any]) -> IncidentView:
            """Declare an incident."""
            incident = incidents.declare(
                runtime, title=data.title, severity=data.severity, services=data.services,
                description=data.description, fields=data.fields, origin=_origin(request))
            after_change()
            return view(incident.id)

        @post("/{incident_id:str}/ack", sync_to_thread=True, status_code=200)
        def ack(self, incident_id: str, request: Request[Any, Any, Any],
                data: Annotated[NoteBody | None, Body()] = None) -> IncidentView:
            return change(incident_id, Action.ACK, data, request)

        @post("/{incident_id:str}/resolve", sync_to_thread=True, status_code=200)
        def resolve(self, incident_id: str, request: Request[Any, Any, Any],
                    data: Annotated[NoteBody | None, Body()] = None) -> IncidentView:
            return change(incident_id, Action.RESOLVE, data, request)

        @post("/{incident_id:str}/close", sync_to_thread=True, status_code=200)
        def close(self, incident_id: str, request: Request[Any, Any, Any],
                  data: Annotated[NoteBody | None, Body()] = None) -> IncidentView:
            return change(incident_id, Action.CLOSE, data, request)

        @post("/{incident_id:str}/reopen", sync_to_thread=True, status_code=200)
        def reopen(self, incident_id: str, request: Request[Any, Any, Any],
                   data: Annotated[NoteBody | None, Body()] = None) -> IncidentView:
            return change(incident_id, Action.REOPEN, data, request)

        @post("/{incident_id:str}/notes", sync_to_thread=True, status_code=201)
        def note(self, incident_id: str, data: Annotated[NoteBody, Body()],
                 request: Request[Any, Any, Any]) -> TimelineEvent:
            event = incidents.add_note(runtime, incident_id, data.note, origin=_origin(request))
            after_change()
            return event

    return IncidentsController


def _origin(request: Request[Any, Any, Any]) -> Any:
    from im.models import Origin

    return Origin(actor=request.headers.get("x-im-user") or "api", system="im")
