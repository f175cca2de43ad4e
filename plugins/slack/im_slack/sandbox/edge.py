"""What every Web API call meets before its route: the injected faults. And the controls'
rule: loopback clients only.

A plain ASGI wrapper rather than Litestar middleware, because it must be able to drop a
connection without answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import time
from typing import Any

import msgspec

from im_slack.sandbox.core import Sandbox
from im_slack.sandbox.faults import Injection
from im_slack.sandbox.requestlog import RequestRecord
from im_slack.sandbox.transport import current_transport

Scope = dict[str, Any]

CONTROL_PREFIX = "/_sandbox"
API_PREFIX = "/api/"
# Slack's edge answers these, not the API: HTML, as the real thing would.
_GATEWAY_BODIES = {
    502: b"<html><body><h1>502 Bad Gateway</h1></body></html>",
    503: b"<html><body><h1>503 Service Unavailable</h1></body></html>",
    504: b"<html><body><h1>504 Gateway Time-out</h1></body></html>",
}


def _is_loopback(client: tuple[str, int] | None) -> bool:
    if not client:
        return False
    try:
        return ipaddress.ip_address(client[0]).is_loopback
    except ValueError:
        return False


async def _answer(send: Any, status: int, body: bytes, content_type: str,
                  headers: dict[str, str] | None = None) -> None:
    raw_headers = [(b"content-type", content_type.encode()),
                   (b"content-length", str(len(body)).encode())]
    raw_headers += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


class Edge:
    def __init__(self, app: Any, sandbox: Sandbox) -> None:
        self.app = app
        self.sandbox = sandbox

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/"):
            if not _is_loopback(scope.get("client")):
                await _answer(send, 403, b'{"detail":"the sandbox controls are loopback only"}',
                              "application/json")
                return
        elif path.startswith(API_PREFIX):
            method = path[len(API_PREFIX):]
            faults = self.sandbox.faults
            latency = faults.latency_seconds(method)
            if latency:
                await self.sandbox.hold(latency)
            injection = faults.take(method)
            if injection is not None:
                await self._inject(injection, scope, receive, send, method)
                return
            late = faults.late_answer_seconds(method)
            if late:
                send = self._late(send, late)
        await self.app(scope, receive, send)

    def _late(self, send: Any, seconds: float) -> Any:
        """`send`, holding the answer `seconds` once the call was carried out."""

        async def held(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                await self.sandbox.hold(seconds)
            await send(message)

        return held

    async def _inject(self, injection: Injection, scope: Scope, receive: Any, send: Any,
                      method: str) -> None:
        generation = self.sandbox.requests.generation
        status: int | None = injection.status or None
        if injection.kind == "drop":
            transport = current_transport.get()
            if transport is None:
                raise RuntimeError("dropping a connection needs the sandbox's own server")
            transport.abort()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1):
                    while (await receive())["type"] != "http.disconnect":
                        pass
        elif injection.kind == "rate_limit":
            retry_after = self.sandbox.faults.current.storm_429_retry_after
            await _answer(send, 429, msgspec.json.encode({"ok": False, "error": "ratelimited"}),
                          "application/json; charset=utf-8", {"Retry-After": str(retry_after)})
        elif injection.status in _GATEWAY_BODIES:
            await _answer(send, injection.status, _GATEWAY_BODIES[injection.status], "text/html")
        else:
            await _answer(send, injection.status,
                          msgspec.json.encode({"ok": False, "error": "internal_error"}),
                          "application/json; charset=utf-8")
        self.sandbox.requests.add(RequestRecord(
            http_method=scope["method"], method=method, content_type="", params={},
            authorization="", status=status, answer=None, at=time.time(),
            fault=injection.kind + (f" {injection.status}" if injection.status else "")),
            generation)
