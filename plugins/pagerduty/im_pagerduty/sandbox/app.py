"""The sandbox as an ASGI application: Litestar routes behind the edge (edge.py)."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Litestar, Request, Response
from litestar.di import Provide
from litestar.exceptions import HTTPException, ValidationException

from im_pagerduty.sandbox.api.control import ControlController
from im_pagerduty.sandbox.api.directory import (
    EscalationPolicyController,
    PriorityController,
    ScheduleController,
    ServiceController,
    UserController,
)
from im_pagerduty.sandbox.api.incidents import IncidentController
from im_pagerduty.sandbox.api.log_entries import LogEntryController
from im_pagerduty.sandbox.api.oncalls import OnCallController
from im_pagerduty.sandbox.api.webhooks import WebhookSubscriptionController
from im_pagerduty.sandbox.core import Sandbox
from im_pagerduty.sandbox.edge import CONTROL_PREFIX, Edge
from im_pagerduty.sandbox.errors import PagerDutyError

log = logging.getLogger("im_pagerduty.sandbox")

_JSON = "application/json; charset=utf-8"


def _is_control(request: Request[Any, Any, Any]) -> bool:
    return request.url.path.startswith(CONTROL_PREFIX)


def _pagerduty_error(_: Request[Any, Any, Any], exc: PagerDutyError) -> Response[bytes]:
    return Response(
        content=msgspec.json.encode(exc.body()),
        status_code=exc.status,
        media_type=_JSON,
        headers=exc.headers,
    )


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    if _is_control(request):
        return Response(
            content=msgspec.json.encode({"detail": exc.detail}),
            status_code=exc.status_code,
            media_type="application/json",
        )
    if isinstance(exc, ValidationException):
        error = PagerDutyError(400, "Invalid Input Provided", 2001, (str(exc.detail),))
    elif exc.status_code == 404:
        error = PagerDutyError(404, "Not Found", 2100)
    else:
        error = PagerDutyError(exc.status_code, str(exc.detail), 2100)
    return _pagerduty_error(request, error)


def _internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.exception("sandbox error on %s %s", request.method, request.url.path, exc_info=exc)
    return _pagerduty_error(request, PagerDutyError(500, "Internal Server Error", 2000))


def create_app(sandbox: Sandbox) -> Edge:
    app = Litestar(
        route_handlers=[
            IncidentController,
            LogEntryController,
            ServiceController,
            UserController,
            EscalationPolicyController,
            ScheduleController,
            PriorityController,
            OnCallController,
            WebhookSubscriptionController,
            ControlController,
        ],
        dependencies={"sandbox": Provide(lambda: sandbox, use_cache=True, sync_to_thread=False)},
        exception_handlers={
            PagerDutyError: _pagerduty_error,
            HTTPException: _http_error,
            Exception: _internal_error,
        },
        lifespan=[lambda _app: sandbox.running()],
        openapi_config=None,
        logging_config=None,
    )
    return Edge(app, sandbox)
