"""`im serve`: create_app(runtime) builds the Litestar app, then plugins add their routes."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from litestar import Litestar, Request, Response, asgi
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from im.errors import ImError
from im.runtime import Runtime
from im.server.health import READINESS_SECONDS, Readiness  # noqa: F401 (im.server.READINESS_SECONDS)
from im.server.ingest import MAX_WEBHOOK_BODY, WebhookIngest, answer

if TYPE_CHECKING:
    from im.server.workers import SupervisorLink

log = logging.getLogger("im.server")


def create_app(runtime: Runtime, *, background: bool = False,
               supervisor: SupervisorLink | None = None) -> Litestar:
    """The app. With `background`, it also runs outbox delivery, inbox processing and polling
    (what `im serve` does); without, webhooks are stored and processing is left to the caller,
    or, in a worker of `im serve --workers N`, to the `supervisor` process it tells of new work.

    Composition only: health and metrics are im.server.health's, the webhook route
    im.server.ingest's, the HTTP API im.server.api's; plugins add their routes last."""
    from im.server import api, health
    from im.server.metrics import ServerMetrics
    from im.server.work import BackgroundWork

    work = BackgroundWork(runtime) if background else None
    on_stored = None
    if work is not None:
        on_stored = work.inbox.wake.set
    elif supervisor is not None:
        on_stored = lambda: supervisor.notify("inbox")  # noqa: E731
    metrics = ServerMetrics(runtime)
    server_settings = runtime.settings.get("server", {})
    if not isinstance(server_settings, dict):
        raise ImError("settings server: must be an object")
    from im.server import protocol

    protocol.limit_connections(_max_connections(server_settings.get("max_connections")))
    ingest = WebhookIngest(runtime, metrics, server_settings, on_stored=on_stored)
    if work is not None:
        work.busy = ingest.writer.busy

    readiness = Readiness(runtime, work, supervisor)
    metrics_token = bool(server_settings.get("metrics_token", False))

    # Mounted (Litestar's router does not give path parameters to raw ASGI routes); `im
    # serve` sends webhooks to it before Litestar's router (see `serving`).
    webhook = asgi("/connectors", is_mount=True, copy_scope=True)(ingest)

    def after_change() -> None:
        if work is not None:
            work.outbox.wake.set()
            work.workflows.wake.set()
        elif supervisor is not None:
            supervisor.notify("outbox")

    handlers: list[Any] = [health.router(runtime, readiness, metrics,
                                         metrics_token=metrics_token),
                           webhook, api.router(runtime, after_change)]
    from im.plugins import plugin_routes

    handlers += plugin_routes(runtime.pm, runtime)

    def start() -> None:
        ingest.start()
        if work is not None:
            work.start()

    def stop() -> None:
        ingest.stop()
        if work is not None:
            work.stop()
        # uvicorn ends the process with the signal that stopped it, so atexit handlers do not
        # run: what was logged up to here (the last count of refusals) is written now.
        for handler in logging.getLogger("im").handlers:
            handler.flush()

    from im import __version__

    from litestar.di import Provide

    return Litestar(
        route_handlers=handlers, on_startup=[start], on_shutdown=[stop],
        # for plugins' routes that change incidents (see register_routes): as the API's own
        dependencies={"after_change": Provide(lambda: after_change, use_cache=True,
                                              sync_to_thread=False)},
        request_max_body_size=MAX_WEBHOOK_BODY,
        exception_handlers={ImError: _error_response, HTTPException: _http_error_response},
        openapi_config=OpenAPIConfig(
            title="im", version=__version__, path="/schema",
            components=Components(security_schemes={"BearerToken": SecurityScheme(
                type="http", scheme="bearer",
                description="An API token: `im api-token create NAME [--read-only]`")})),
        logging_config=None,  # `im serve` sets up logging; an embedding app keeps its own
        state={"runtime": runtime, "writer": ingest.writer, "work": work, "metrics": metrics,
               "webhook": ingest, "connectors": ingest.connectors})


def check_settings(runtime: Runtime) -> None:
    """Refuse now, in one line, whatever create_app refuses: the settings file's `server`
    object (the connection cap, the webhook route's networks and limits) and plugins' routes.
    For a process that serves through others: `im serve --workers N` checks so before it
    says it listens, as its workers each build their own app (and each would fail then)."""
    create_app(runtime)


def serving(app: Litestar) -> Any:
    """The ASGI app `im serve` runs: `app`, except that webhook deliveries go straight to
    their route. The route does all its checks itself (source, rate, size, signature), so
    Litestar's router and middleware would only add time on the hot path: measured in
    process, about 45 of the 150 µs of CPU the app spends on a delivery."""
    webhook = app.state["webhook"]

    async def dispatch(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/connectors/"):
            try:
                return await webhook(scope, receive, send)  # type: ignore[no-any-return]
            except Exception:
                log.exception("webhook route failed")
                return await answer(send, 500, {"error": "internal error; retry"})
        return await app(scope, receive, send)

    return dispatch


def _error_response(_: Request[Any, Any, Any], error: ImError) -> Response[dict[str, str]]:
    return Response({"error": str(error)}, status_code=error.http_status)


def _http_error_response(_: Request[Any, Any, Any],
                         error: HTTPException) -> Response[dict[str, str]]:
    """Litestar's own errors (validation, token, unknown path) in the API's one shape:
    `{"error": "one line"}`, the fields at fault named in it."""
    message = str(error.detail)
    if isinstance(error.extra, list):
        problems = [
            "a JSON body is required" if item.get("message") == "'data'"  # none was sent
            else f"{item.get('key') or item.get('source') or 'body'}: {item.get('message')}"
            for item in error.extra if isinstance(item, dict)]
        if problems:
            message += " (" + "; ".join(problems) + ")"
    return Response({"error": message}, status_code=error.status_code,
                    headers=error.headers or None)


def _max_connections(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ImError("settings server.max_connections: must be a whole number of at least"
                      f" 1 (client connections per process), not {value!r}")
    return value
