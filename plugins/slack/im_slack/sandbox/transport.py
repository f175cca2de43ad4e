"""Lets a request reach its own TCP connection, so the sandbox can drop it without a reply.

ASGI hides the transport. Our HTTP protocol class (uvicorn's own, subclassed) puts it in a
context variable while it parses incoming bytes; the request task uvicorn creates there copies
that context, so `current_transport` answers inside the request.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar
from typing import cast

from uvicorn.protocols.http.auto import AutoHTTPProtocol

current_transport: ContextVar[asyncio.Transport | None] = ContextVar(
    "im_slack_sandbox_transport", default=None
)


# AutoHTTPProtocol is a variable (h11's or httptools' protocol), hence the ignore.
class TransportAwareProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses but have the same methods.
        self._sandbox_transport = cast(asyncio.Transport, transport)
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        token = current_transport.set(self._sandbox_transport)
        try:
            super().data_received(data)
        finally:
            current_transport.reset(token)
