"""`im serve`: create_app(runtime) builds the Litestar app, then plugins add their routes."""

from __future__ import annotations

from typing import Any

from litestar import Litestar, get

from im.runtime import Runtime


def create_app(runtime: Runtime) -> Litestar:
    @get("/health", sync_to_thread=False)
    def health() -> dict[str, Any]:
        """Liveness and readiness: the database answers."""
        runtime.store.conn.execute("SELECT 1").fetchone()
        return {"status": "ok", "database": "ok"}

    handlers: list[Any] = [health]
    runtime.pm.hook.register_routes(register=handlers.append)
    return Litestar(route_handlers=handlers, state={"runtime": runtime})
