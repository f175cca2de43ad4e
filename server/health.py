"""Health and metrics routes of `im serve`: liveness, readiness (/health, /health/ready) and
Prometheus metrics (/metrics), as one controller whose dependencies `router` provides."""

from __future__ import annotations

import logging
import threading
import time
from typing import Annotated, Any, TypeVar

from litestar import Controller, Request, Response, Router, get
from litestar.di import Provide

from im.runtime import Runtime
from im.server.metrics import ServerMetrics

log = logging.getLogger("im.server")

T = TypeVar("T")
try:
    from litestar.di import NamedDependency
except ImportError:  # Litestar before 2.23 (our lower bound is 2.14) marks dependencies so
    from litestar.params import Dependency

    NamedDependency = Annotated[T, Dependency(skip_validation=True)]  # type: ignore[misc]

READINESS_SECONDS = 2.0  # a readiness answer is reused this long: probes cost one write at most
PROMETHEUS_TEXT = "text/plain; version=0.0.4"


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


def _ready(runtime: Runtime, readiness: Readiness,
           request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    reasons = readiness.reasons()
    body: dict[str, Any] = {"status": "ok" if not reasons else "unavailable"}
    if reasons and _token_holder(runtime, request.headers.get("authorization")):
        body["reasons"] = reasons
    return Response(body, status_code=200 if not reasons else 503)


class HealthController(Controller):
    path = "/"

    @get("/health/live")
    async def live(self) -> dict[str, str]:
        """Liveness: the process answers (nothing else is checked)."""
        return {"status": "ok"}

    @get("/health", sync_to_thread=True)
    def health(self, runtime: NamedDependency[Runtime], readiness: NamedDependency[Readiness],
               request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
        """Readiness (as /health/ready), for load balancers and monitors that ask /health."""
        return _ready(runtime, readiness, request)

    @get("/health/ready", sync_to_thread=True)
    def health_ready(self, runtime: NamedDependency[Runtime],
                     readiness: NamedDependency[Readiness],
                     request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
        """Readiness: the database takes a write and the background work runs. Terse for
        anyone; the reasons for an API token's holder only."""
        return _ready(runtime, readiness, request)

    @get("/metrics", sync_to_thread=True, media_type=PROMETHEUS_TEXT)
    def prometheus(self, runtime: NamedDependency[Runtime],
                   metrics: NamedDependency[ServerMetrics],
                   metrics_token: NamedDependency[bool],
                   request: Request[Any, Any, Any]) -> Response[bytes]:
        """Prometheus metrics."""
        if metrics_token and not _token_holder(runtime, request.headers.get("authorization")):
            return Response(b'{"error":"a valid `Authorization: Bearer TOKEN` is required"}',
                            status_code=401, media_type="application/json")
        return Response(metrics.render(), media_type=PROMETHEUS_TEXT)


def router(runtime: Runtime, readiness: Readiness, metrics: ServerMetrics, *,
           metrics_token: bool) -> Router:
    """The routes with their dependencies. `metrics_token` (`server.metrics_token: true`):
    /metrics answers API token holders only (a read-only token suits Prometheus's
    `authorization` setting); off by default, as Prometheus is usually on the same private
    network."""
    def constant(value: Any) -> Provide:
        return Provide(lambda: value, use_cache=True, sync_to_thread=False)

    return Router(path="/", route_handlers=[HealthController], dependencies={
        "runtime": constant(runtime), "readiness": constant(readiness),
        "metrics": constant(metrics), "metrics_token": constant(metrics_token)})
