"""The HTTP protocol `im serve` runs: uvicorn's httptools protocol with the bounds on a request's
head that it lacks. Without them, one request with a 50 MB header, sent by anyone before any
check of im's, was buffered whole (eight such took the server to 590 MB).

A request's head (request line and headers) may be at most MAX_HEAD_BYTES and hold at most
MAX_HEADERS headers; past either, the client is answered 431 and the connection closed, with no
more of it read. nginx and h11 draw the line in the same place (8 to 16 KiB). A head must also
arrive within HEAD_SECONDS of its first byte (or of the connection): a client sending a byte
now and then no longer holds a connection, and its file descriptor, for as long as it likes."""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEAD_BYTES = 16 * 1024
MAX_HEADERS = 100
HEAD_SECONDS = 10.0
_REFUSAL = (b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: text/plain; charset=utf-8\r\n"
            b"content-length: 33\r\nconnection: close\r\n\r\n"
            b"Request header fields too large.\n")


class BoundedHttpProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # the bytes arriving belong to a request's head
        self._head_bytes = 0
        self._tail = b""  # the last bytes of the head so far: its end may span two reads
        self._headers = 0
        self._refused = False
        self._head_timer: Any = None

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def _start_head_timer(self) -> None:
        self._stop_head_timer()
        self._head_timer = self.loop.call_later(HEAD_SECONDS, self._head_too_slow)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self._in_head and not self.transport.is_closing():
            self._refused = True
            self.transport.close()  # no answer: a client this slow is not waiting for one

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._in_head:
            # only the head's own bytes count: a read often holds the head and the body's start
            seen = self._tail + data
            end = seen.find(b"\r\n\r\n")
            self._head_bytes += len(data) if end < 0 else max(0, end + 4 - len(self._tail))
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refuse()
                return
            self._tail = seen[-3:]
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._headers = 0
        if self._head_timer is None:  # a keep-alive connection's next request
            self._start_head_timer()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers += 1
        if self._headers > MAX_HEADERS:
            self._refuse()
            raise ValueError("too many headers")  # stops the parser; answered already
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._stop_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head, self._head_bytes, self._tail = True, 0, b""  # the next request

    def send_400_response(self, msg: str) -> None:
        if not self._refused:  # the parser's error after a refusal: answered with 431
            super().send_400_response(msg)

    def _refuse(self) -> None:
        self._refused = True
        if not self.transport.is_closing():
            self.transport.write(_REFUSAL)
            self.transport.close()
