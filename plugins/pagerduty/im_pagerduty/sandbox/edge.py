"""What every API request meets before the routes: faults, authentication, the v2 `Accept`
header and the per-key rate limit; and the request log, which sees every answer.

A plain ASGI wrapper rather than Litestar middleware, because it must also see requests that
match no route and be able to drop a connection without answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from typing import Any
from urllib.parse import parse_qs

import msgspec

from im_pagerduty.sandbox import errors
from im_pagerduty.sandbox.core import Sandbox
from im_pagerduty.sandbox.faults import Injection
from im_pagerduty.sandbox.incidents import acting_client
from im_pagerduty.sandbox.requestlog import RequestRecord
from im_pagerduty.sandbox.times import format_event_time, rendering_zone, zone
from im_pagerduty.sandbox.transport import current_transport

Scope = dict[str, Any]
Message = dict[str, Any]

CONTROL_PREFIX = "/_sandbox"
# A control on API requests, not PagerDuty's: the changes the request makes are announced as
# made through that client (an integration such as Slack), as the webhook's `client` says
VIA_HEADER = b"x-sandbox-client"
TOKEN_PREFIX = "Token token="
# Load balancers answer these, not the API: HTML, like the real thing would be.
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


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            decoded: str = value.decode("latin-1")
            return decoded
    return None


def _unsupported_version(accept: str | None) -> bool:
    if not accept or "application/vnd.pagerduty+json" not in accept:
        return False
    for part in accept.replace(",", ";").split(";"):
        name, _, value = part.strip().partition("=")
        if name == "version" and value.strip() != "2":
            return True
    return False


async def _answer(
    send: Any, status: int, body: bytes, content_type: str, headers: dict[str, str]
) -> None:
    raw_headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    raw_headers += [(k.encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


async def _answer_error(send: Any, error: errors.PagerDutyError) -> None:
    await _answer(
        send,
        error.status,
        msgspec.json.encode(error.body()),
        "application/json; charset=utf-8",
        error.headers,
    )


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
                await _answer_error(
                    send,
                    errors.PagerDutyError(403, "The sandbox control API is loopback only", 2010),
                )
                return
            await self.app(scope, receive, send)
            return
        await self._api(scope, receive, send, path)

    async def _api(self, scope: Scope, receive: Any, send: Any, path: str) -> None:
        sandbox = self.sandbox
        status: int | None = None
        fault: str | None = None
        extra_headers: dict[str, str] = {}
        late = 0.0
        generation = sandbox.requests.generation

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if late:  # the work is done; only the answer is held back
                    await sandbox.hold(late)
                if extra_headers:
                    message = {
                        **message,
                        "headers": [
                            *message.get("headers", []),
                            *((k.encode(), v.encode()) for k, v in extra_headers.items()),
                        ],
                    }
            await send(message)

        try:
            injection = sandbox.faults.take(path)
            latency = sandbox.faults.latency_seconds(path)
            if latency:
                await sandbox.hold(latency)
            if injection:
                fault = f"{injection.kind}" + (f" {injection.status}" if injection.status else "")
                await self._inject(injection, receive, send_with_headers)
                return
            late = sandbox.faults.late_answer_seconds(path)
            if late:
                fault = "late_answer"
            authorization = _header(scope, b"authorization") or ""
            api_key = (
                authorization[len(TOKEN_PREFIX) :] if authorization.startswith(TOKEN_PREFIX) else ""
            )
            if api_key not in sandbox.settings.api_keys:
                await _answer_error(send_with_headers, errors.authentication_failed())
                return
            if _unsupported_version(_header(scope, b"accept")):
                await _answer_error(
                    send_with_headers,
                    errors.invalid_input(
                        "Only version 2 of the REST API is available: "
                        "Accept: application/vnd.pagerduty+json;version=2"
                    ),
                )
                return
            verdict = await sandbox.limiter.hit(api_key)
            operation = sandbox.operation_limiters.get(f"{scope['method']} {path}")
            if verdict.allowed and operation is not None:
                # the headers describe "the limit that is closest to being reached"
                narrower = await operation.hit(api_key)
                if not narrower.allowed or narrower.remaining < verdict.remaining:
                    verdict = narrower
            extra_headers = verdict.headers()
            if not verdict.allowed:
                await _answer_error(send_with_headers, errors.rate_limited())
                return
            asked = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("time_zone")
            try:
                where = zone(asked[-1] if asked else sandbox.settings.time_zone)
            except ValueError as error:
                await _answer_error(send_with_headers, errors.invalid_input(str(error)))
                return
            token = rendering_zone.set(where)
            via = acting_client.set(_header(scope, VIA_HEADER) or None)
            try:
                await self.app(scope, receive, send_with_headers)
            finally:
                acting_client.reset(via)
                rendering_zone.reset(token)
        finally:
            query = scope.get("query_string", b"").decode("latin-1")
            sandbox.requests.add(
                RequestRecord(
                    method=scope["method"],
                    path=path,
                    query=query,
                    status=status,
                    at=format_event_time(sandbox.clock.now()),
                    fault=fault,
                ),
                generation,
            )

    async def _inject(self, injection: Injection, receive: Any, send: Any) -> None:
        if injection.kind == "drop":
            transport = current_transport.get()
            if transport is None:
                raise RuntimeError("dropping a connection needs the sandbox's own server")
            transport.abort()
            # Wait for the server to notice, so it does not answer on a dead connection.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1):
                    while (await receive())["type"] != "http.disconnect":
                        pass
            return
        if injection.kind == "client_error":
            await _answer_error(send, errors.invalid_input("refused by the sandbox's faults"
                                                           " (refuse_rate)"))
            return
        if injection.kind == "rate_limit":
            if injection.headers:
                settings = self.sandbox.settings
                error = errors.rate_limited(
                    {
                        "ratelimit-limit": str(settings.rate_limit),
                        "ratelimit-remaining": "0",
                        "ratelimit-reset": str(self.sandbox.faults.current.storm_429_reset_seconds),
                    }
                )
                await _answer_error(send, error)
            else:
                await _answer(send, 429, b"", "text/plain", {})
            return
        if injection.status in _GATEWAY_BODIES:
            await _answer(
                send, injection.status, _GATEWAY_BODIES[injection.status], "text/html", {}
            )
        else:
            await _answer_error(
                send, errors.PagerDutyError(injection.status, "Internal Server Error", 2000)
            )
