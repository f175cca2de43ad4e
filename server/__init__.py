"""`im serve`: create_app(runtime) builds the Litestar app, then plugins add their routes."""

from __future__ import annotations

import hashlib
import re
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

import msgspec

from litestar import Litestar, Request, Response, asgi, get
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from im.connectors import Connector, WebhookRequest
from im.errors import ImError
from im.runtime import Runtime
from im.server import guard
from im.server.ingest import InboundEvent, InboxWriter, StorageUnavailable

if TYPE_CHECKING:
    from im.server.workers import SupervisorLink

log = logging.getLogger("im.server")
webhook_log = logging.getLogger("im.webhook")  # `im logs --component webhook`

# Well above the largest webhook senders deliver (256 KB): no real one is refused for size.
MAX_WEBHOOK_BODY = 1024 * 1024
CONNECTOR_CACHE_SECONDS = 2.0
WEBHOOK_PATH = re.compile(r"^(?:/connectors)?/([^/]+)/webhook/?$")


class ConnectorCache:
    """Built connectors for the webhook route, rebuilt every few seconds so that settings
    changed by the CLI (a rotated secret) take effect without a restart. Only configured
    connectors are looked up and kept: the names are read once every few seconds, so a name
    from the URL that is not one costs a set lookup and leaves nothing behind."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._cache: dict[str, tuple[float, Connector | None]] = {}
        self._names: frozenset[str] = frozenset()
        self._names_at = float("-inf")

    def get(self, name: str) -> Connector | None:
        now = time.monotonic()
        if now - self._names_at > CONNECTOR_CACHE_SECONDS:
            self._read_names(now)
        if name not in self._names:
            return None
        cached = self._cache.get(name)
        if cached is None or now - cached[0] > CONNECTOR_CACHE_SECONDS:
            try:
                instance: Connector | None = self.runtime.connector(name)
            except ImError:
                instance = None
            cached = self._cache[name] = (now, instance)
        return cached[1]

    def _read_names(self, now: float) -> None:
        try:
            names = frozenset(record.name for record in self.runtime.store.list_connectors())
        except Exception as error:  # the database is briefly unavailable: keep what we know
            log.warning("cannot read the configured connectors: %s", error)
            self._names_at = now  # tried again in a while, not on every request meanwhile
            return
        self._names, self._names_at = names, now
        for gone in set(self._cache) - names:
            del self._cache[gone]

    def __len__(self) -> int:
        return len(self._cache)


READINESS_SECONDS = 2.0  # a readiness answer is reused this long: probes cost one write at most


class Readiness:
    """Why `im serve` cannot take work now, if it cannot: the database refuses a write (read
    only, full, damaged) or background work stopped. The write is tried at most every
    READINESS_SECONDS, so that a flood of /health requests costs no flood of writes."""

    def __init__(self, runtime: Runtime, work: Any, supervisor: Any) -> None:
        self.runtime, self.work, self.supervisor = runtime, work, supervisor
        self._lock = threading.Lock()
        self._written_at = float("-inf")
        self._database: list[str] = []

    def reasons(self) -> list[str]:
        with self._lock:
            now = time.monotonic()
            if now - self._written_at >= READINESS_SECONDS:
                self._database, self._written_at = self._try_write(), now
            reasons = list(self._database)
        if self.work is not None:
            reasons += [f"{loop.name} worker stopped" for loop in self.work.loops
                        if not loop.alive]
        elif self.supervisor is not None:
            reasons += self.supervisor.health_reasons()
        return reasons

    def _try_write(self) -> list[str]:
        try:
            self.runtime.store.probe_write(self.runtime.clock())
        except Exception as error:  # the reason goes to token holders and the log only
            log.warning("readiness: the database refused a write: %s", error)
            return [f"database: {error}"]
        return []


def _token_holder(runtime: Runtime, authorization: str | None) -> bool:
    from im.tokens import authenticate

    try:
        return authenticate(runtime.store, authorization) is not None
    except Exception:  # the database may be what is wrong: no details then
        return False


def create_app(runtime: Runtime, *, background: bool = False,
               supervisor: SupervisorLink | None = None) -> Litestar:
    """The app. With `background`, it also runs outbox delivery, inbox processing and polling
    (what `im serve` does); without, webhooks are stored and processing is left to the caller,
    or, in a worker of `im serve --workers N`, to the `supervisor` process it tells of new work."""
    from im.server.work import BackgroundWork

    from im.server import api
    from im.server.metrics import ServerMetrics

    work = BackgroundWork(runtime) if background else None
    on_stored = None
    if work is not None:
        on_stored = work.inbox.wake.set
    elif supervisor is not None:
        on_stored = lambda: supervisor.notify("inbox")  # noqa: E731
    writer = InboxWriter(lambda: runtime.store, on_stored=on_stored)
    if work is not None:
        work.busy = writer.busy
    connectors = ConnectorCache(runtime)
    metrics = ServerMetrics(runtime)
    server_settings = runtime.settings.get("server", {})
    if not isinstance(server_settings, dict):
        raise ImError("settings server: must be an object")
    allow = guard.networks(server_settings.get("webhook_allow"), "webhook_allow")
    allowed = guard.AddressSet(allow) if allow else None
    client_address = guard.ClientAddress(server_settings)
    behind_proxy = bool(client_address.proxies)
    # Signed deliveries and refused requests are limited apart: a flood of refused requests
    # never takes a sender's deliveries' places (see docs/server.md).
    within_rate = guard.per_second(server_settings, "webhook_rate_limit", 1000)
    refused_within = guard.per_second(server_settings, "webhook_refused_limit", 10)
    refused_within_total = guard.per_second(server_settings, "webhook_refused_limit_total",
                                            100)
    refusals = guard.RefusalLog()

    # `server.metrics_token: true`: /metrics answers API token holders only (a read-only
    # token suits Prometheus's `authorization` setting); off by default, as Prometheus is
    # usually on the same private network
    metrics_token = bool(server_settings.get("metrics_token", False))

    @get("/metrics", sync_to_thread=True, media_type="text/plain; version=0.0.4")
    def prometheus(request: Request[Any, Any, Any]) -> Response[bytes]:
        """Prometheus metrics."""
        if metrics_token and not _token_holder(runtime, request.headers.get("authorization")):
            return Response(b'{"error":"a valid `Authorization: Bearer TOKEN` is required"}',
                            status_code=401, media_type="application/json")
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    readiness = Readiness(runtime, work, supervisor)

    @get("/health/live")
    async def live() -> dict[str, str]:
        """Liveness: the process answers (nothing else is checked)."""
        return {"status": "ok"}

    def ready(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
        reasons = readiness.reasons()
        body: dict[str, Any] = {"status": "ok" if not reasons else "unavailable"}
        if reasons and _token_holder(runtime, request.headers.get("authorization")):
            body["reasons"] = reasons
        return Response(body, status_code=200 if not reasons else 503)

    @get("/health", sync_to_thread=True)
    def health(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
        """Readiness (as /health/ready), for load balancers and monitors that ask /health."""
        return ready(request)

    @get("/health/ready", sync_to_thread=True)
    def health_ready(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
        """Readiness: the database takes a write and the background work runs. Terse for
        anyone; the reasons for an API token's holder only."""
        return ready(request)

    def refuse(client: str | None, reason: str, connector: str | None, status: int,
               error: str) -> tuple[int, dict[str, str]]:
        """A refused request: counted by reason (and by connector for a configured one),
        logged in aggregate, answered 429 when refusals from that source, or from all, are
        over their limit. Never touches the limit of signed deliveries."""
        throttled = ((refused_within is not None and not refused_within(client or "unknown"))
                     or (refused_within_total is not None and not refused_within_total("")))
        metrics.refused(reason, throttled)
        if connector is not None:
            metrics.webhook(connector, _OUTCOMES[reason])
        refusals.record(client, reason, connector, throttled)
        if throttled:
            return 429, {"error": "too many refused requests; retry after a second"}
        return status, {"error": error}

    async def ingest(name: str, headers: dict[str, str], body: bytes,
                      client: str | None) -> tuple[int, dict[str, str]]:
        """A signed event: verify, store durably, answer 202, process later."""
        connector = connectors.get(name)  # None unless a configured connector
        label = name if connector is not None else None
        if allowed is not None and client not in allowed:
            return refuse(client, "forbidden", label, 403, "source address not allowed")
        if connector is None or not connector.settings.enable_webhook:
            return refuse(client, "not_found", label, 404, "no webhook for this connector")
        webhook_request = WebhookRequest(headers=headers, body=body, client=client)
        try:
            authentic = connector.verify_webhook(webhook_request)
        except Exception:  # a connector that cannot verify accepts nothing
            authentic = False
        if not authentic:
            return refuse(client, "bad_signature", name, 401, "invalid or missing signature")
        # Only signed deliveries count against their sender's limit.
        if within_rate is not None and not within_rate(client or "unknown"):
            metrics.webhook(name, "rate_limited")
            return 429, {"error": "too many requests; retry after a second"}
        try:
            envelope = connector.parse_webhook(webhook_request)
            delivery_id, event_type = envelope.delivery_id, envelope.event_type
        except Exception as error:
            # Authentic but unreadable: keep it (quarantined on processing), never 4xx, or
            # the sender drops it and soon disables the subscription.
            webhook_log.warning("unreadable webhook for %s stored for replay: %s", name, error,
                                extra={"connector": name})
            delivery_id = "sha256:" + hashlib.sha256(body).hexdigest()
            event_type = "unreadable"
        event = InboundEvent(connector=name, delivery_id=delivery_id, event_type=event_type,
                             body=body, received_at=runtime.clock())
        try:
            new = await writer.store(event)
        except StorageUnavailable:
            metrics.webhook(name, "unavailable")
            return 503, {"error": "storage unavailable; retry"}
        metrics.webhook(name, "accepted" if new else "duplicate")
        return 202, {"status": "accepted" if new else "duplicate"}

    # A raw ASGI route: the hot path of `im serve` skips request models and response
    # building (about half the time per request); what it does is the function above.
    # Mounted (Litestar's router does not give path parameters to raw ASGI routes).
    async def webhook_route(scope: Any, receive: Any, send: Any) -> None:
        peer = scope.get("client")
        client = peer[0] if peer else None
        if behind_proxy:  # from a trusted proxy: the address it forwards
            client = client_address(client, scope["headers"])
        match = WEBHOOK_PATH.search(scope["path"])
        if match is None:
            status, payload = refuse(client, "not_found", None, 404, "not found")
            return await _answer(send, status, payload, _retry(status))
        if scope["method"] != "POST":
            return await _answer(send, 405, {"error": "use POST"})
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope["headers"]}
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_WEBHOOK_BODY:
            status, payload = refuse(client, "too_large", None, 413, "body too large")
            return await _answer(send, status, payload, _retry(status))
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_WEBHOOK_BODY:
                status, payload = refuse(client, "too_large", None, 413, "body too large")
                return await _answer(send, status, payload, _retry(status))
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        status, payload = await ingest(match.group(1), headers, b"".join(chunks), client)
        return await _answer(send, status, payload, _RETRY if status == 429 else None)

    webhook = asgi("/connectors", is_mount=True, copy_scope=True)(webhook_route)

    def after_change() -> None:
        if work is not None:
            work.outbox.wake.set()
        elif supervisor is not None:
            supervisor.notify("outbox")

    handlers: list[Any] = [live, health, health_ready, webhook, prometheus,
                           api.router(runtime, after_change)]
    runtime.pm.hook.register_routes(register=handlers.append)

    def start() -> None:
        writer.start()
        refusals.start()
        if work is not None:
            work.start()

    def stop() -> None:
        writer.stop()
        refusals.stop()
        if work is not None:
            work.stop()
        # uvicorn ends the process with the signal that stopped it, so atexit handlers do not
        # run: what was logged up to here (the last count of refusals) is written now.
        for handler in logging.getLogger("im").handlers:
            handler.flush()

    from im import __version__

    return Litestar(
        route_handlers=handlers, on_startup=[start], on_shutdown=[stop],
        request_max_body_size=MAX_WEBHOOK_BODY,
        exception_handlers={ImError: _error_response, HTTPException: _http_error_response},
        openapi_config=OpenAPIConfig(
            title="im", version=__version__, path="/schema",
            components=Components(security_schemes={"BearerToken": SecurityScheme(
                type="http", scheme="bearer",
                description="An API token: `im api-token create NAME [--read-only]`")})),
        logging_config=None,  # `im serve` sets up logging; an embedding app keeps its own
        state={"runtime": runtime, "writer": writer, "work": work, "metrics": metrics,
               "webhook": webhook_route, "connectors": connectors})


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
                return await _answer(send, 500, {"error": "internal error; retry"})
        return await app(scope, receive, send)

    return dispatch


async def _answer(send: Any, status: int, payload: dict[str, str],
                  headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = msgspec.json.encode(payload)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


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


_OUTCOMES = {"forbidden": "forbidden", "not_found": "not_found", "too_large": "too_large",
             "bad_signature": "unauthorized"}  # the outcome label of im_webhook_requests


_RETRY = [(b"retry-after", b"1")]


def _retry(status: int) -> list[tuple[bytes, bytes]]:
    return _RETRY if status == 429 else []
