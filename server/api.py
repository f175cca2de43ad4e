"""The HTTP API for incidents: list, show, timeline, declare, ack, resolve, close, reopen, note,
assign, severity.

Every request needs `Authorization: Bearer <token>` (`im api-token create NAME` makes one); a
read-only token may only read. Tokens are looked up on every request, so a revoked one is
refused at once. Each route calls one operation of `im.app.incidents`, the CLI's too, so both
keep the same rules; the background worker delivers the changes to connectors.

The routes get what they need by dependency injection (see `router`): `runtime`, `actor` (who
acts: `X-Im-User`, else "api") and `after_change` (wakes the delivery of queued changes).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import msgspec
from litestar import Controller, Request, Router, get, post
from litestar.connection import ASGIConnection
from litestar.di import Provide
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.params import Body, Parameter

from im.app import incidents
from im.app.incidents import IncidentView
from im.models import Incident, Origin, TimelineEvent
from im.runtime import Runtime
from im.tokens import adopt_legacy, authenticate

T = TypeVar("T")
Query = Annotated[T, Parameter()]

try:
    from litestar.di import NamedDependency
except ImportError:  # Litestar before 2.23 (our lower bound is 2.14) marks dependencies so
    from litestar.params import Dependency

    NamedDependency = Annotated[T, Dependency(skip_validation=True)]  # type: ignore[misc]

AfterChange = Callable[[], None]
MAX_LIMIT = 1000  # a larger `limit` is taken as this (docs/server.md)


class DeclareBody(msgspec.Struct, kw_only=True):
    title: str
    severity: str
    services: list[str]
    description: str = ""
    fields: dict[str, str] = {}


class NoteBody(msgspec.Struct, kw_only=True):
    note: str = ""


class AssignBody(msgspec.Struct, kw_only=True):
    assignee: str


class SeverityBody(msgspec.Struct, kw_only=True):
    severity: str


def api_token_guard(runtime: Runtime) -> Callable[
        [ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], None]:
    """The guard of every API route, for plugin routes too (`im.api_token_guard`, given to
    Litestar's `guards=`): a valid API token (`Authorization: Bearer TOKEN`, 401 without
    one), and a read-only token for GET and HEAD only (403). Tokens are looked up on every
    request, so a revoked one stops working at once. (Guards take no dependencies, and a
    router's `opt` is deep-copied: hence a closure over the runtime.)"""

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        token = authenticate(runtime.store, connection.headers.get("authorization"))
        if token is None:
            raise NotAuthorizedException("a valid `Authorization: Bearer TOKEN` is required"
                                         " (`im api-token create NAME` makes one)")
        if token.read_only and connection.scope.get("method") not in ("GET", "HEAD"):
            raise PermissionDeniedException(f"token {token.name} is read-only")

    return guard


def request_actor(request: Request[Any, Any, Any]) -> Origin:
    """Who acts on the timeline: the `X-Im-User` header, else "api"."""
    return Origin(actor=request.headers.get("x-im-user") or "api", system="im")


class IncidentsController(Controller):
    path = "/api/incidents"
    security = [{"BearerToken": []}]
    tags = ["incidents"]

    @get("/", sync_to_thread=True)
    def list_incidents(self, runtime: NamedDependency[Runtime],
                       status: Query[list[str] | None] = None,
                       severity: Query[list[str] | None] = None,
                       service: Query[list[str] | None] = None,
                       limit: Query[int] = 100) -> list[Incident]:
        """Incidents, newest first; filter by status, severity and service."""
        return incidents.list_incidents(runtime, statuses=status or [],
                                        severities=severity or [], services=service or [],
                                        limit=min(limit, MAX_LIMIT))

    @get("/{incident_id:str}", sync_to_thread=True)
    def show(self, runtime: NamedDependency[Runtime], incident_id: str) -> IncidentView:
        """One incident with its linked remote incidents."""
        return incidents.show(runtime, incident_id)

    @get("/{incident_id:str}/timeline", sync_to_thread=True)
    def timeline(self, runtime: NamedDependency[Runtime],
                 incident_id: str) -> list[TimelineEvent]:
        return incidents.timeline(runtime, incident_id).events

    @post("/", sync_to_thread=True, status_code=201)
    def declare(self, runtime: NamedDependency[Runtime], actor: NamedDependency[Origin],
                after_change: NamedDependency[AfterChange],
                data: Annotated[DeclareBody, Body()]) -> IncidentView:
        """Declare an incident."""
        incident = incidents.declare(
            runtime, title=data.title, severity=data.severity, services=data.services,
            description=data.description, fields=data.fields, actor=actor)
        after_change()
        return incidents.show(runtime, incident.id)

    @post("/{incident_id:str}/ack", sync_to_thread=True, status_code=200)
    def ack(self, runtime: NamedDependency[Runtime], actor: NamedDependency[Origin],
            after_change: NamedDependency[AfterChange], incident_id: str,
            data: Annotated[NoteBody | None, Body()] = None) -> IncidentView:
        incident = incidents.ack(runtime, incident_id, note=_note(data), actor=actor)
        after_change()
        return incidents.show(runtime, incident.id)

    @post("/{incident_id:str}/resolve", sync_to_thread=True, status_code=200)
    def resolve(self, runtime: NamedDependency[Runtime], actor: NamedDependency[Origin],
                after_change: NamedDependency[AfterChange], incident_id: str,
                data: Annotated[NoteBody | None, Body()] = None) -> IncidentView:
        incident = incidents.resolve(runtime, incident_id, note=_note(data), actor=actor)
        after_change()
        return incidents.show(runtime, incident.id)

    @post("/{incident_id:str}/close", sync_to_thread=True, status_code=200)
    def close(self, runtime: NamedDependency[Runtime], actor: NamedDependency[Origin],
              after_change: NamedDependency[AfterChange], incident_id: str,
              data: Annotated[NoteBody | None, Body()] = None) -> IncidentView:
        incident = incidents.close(runtime, incident_id, note=_note(data), actor=actor)
        after_change()
        return incidents.show(runtime, incident.id)

    @post("/{incident_id:str}/reopen", sync_to_thread=True, status_code=200)
    def reopen(self, runtime: NamedDependency[Runtime], actor: NamedDependency[Origin],
               after_change: NamedDependency[AfterChange], incident_id: str,
               data: Annotated[NoteBody | None, Body()] = None) -> IncidentView:
        incident = incidents.reopen(runtime, incident_id, note=_note(data), actor=actor)
        after_change()
        return incidents.show(runtime, incident.id)

    @post("/{incident_id:str}/notes", sync_to_thread=True, status_code=201)
    def note(self, runtime: NamedDependency[Runtime], actor: NamedDependency[Origin],
             after_change: NamedDependency[AfterChange], incident_id: str,
             data: Annotated[NoteBody, Body()]) -> TimelineEvent:
        noted = incidents.note(runtime, incident_id, data.note, actor=actor)
        after_change()
        return noted.event

    @post("/{incident_id:str}/assign", sync_to_thread=True, status_code=200)
    def assign(self, runtime: NamedDependency[Runtime], actor: NamedDependency[Origin],
               after_change: NamedDependency[AfterChange], incident_id: str,
               data: Annotated[AssignBody, Body()]) -> IncidentView:
        """Assign the incident; refused when a linked system does not know the assignee."""
        incident = incidents.assign(runtime, incident_id, data.assignee, actor=actor)
        after_change()
        return incidents.show(runtime, incident.id)

    @post("/{incident_id:str}/severity", sync_to_thread=True, status_code=200)
    def severity(self, runtime: NamedDependency[Runtime], actor: NamedDependency[Origin],
                 after_change: NamedDependency[AfterChange], incident_id: str,
                 data: Annotated[SeverityBody, Body()]) -> IncidentView:
        """Change the severity (running SLA timers take its targets)."""
        incident = incidents.change_severity(runtime, incident_id, data.severity, actor=actor)
        after_change()
        return incidents.show(runtime, incident.id)


def _note(body: NoteBody | None) -> str:
    return body.note if body is not None else ""


def router(runtime: Runtime, after_change: AfterChange) -> Router:
    """The API's routes with their guard and dependencies. `after_change` is called after
    every change (im serve wakes its delivery of queued changes)."""
    adopt_legacy(runtime.store, runtime.clock())  # an earlier im's token keeps working
    return Router(path="/", route_handlers=[IncidentsController], guards=[api_token_guard(runtime)],
                  dependencies={
                      "runtime": Provide(lambda: runtime, use_cache=True,
                                         sync_to_thread=False),
                      "actor": Provide(request_actor, sync_to_thread=False),
                      "after_change": Provide(lambda: after_change, use_cache=True,
                                              sync_to_thread=False)})
