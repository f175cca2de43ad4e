"""The HTTP protocol `im serve` runs: uvicorn's httptools protocol with the bounds on a request's
head that it lacks. Without them, one request with a 50 MB header, sent by anyone before any
check of im's, was buffered whole (eight such took the server to 590 MB).

A request's head (request line and headers) may be at most MAX_HEAD_BYTES and hold at most
MAX_HEADERS headers; past either, the client is answered 431 and the connection closed, with no
more of it read. nginx and h11 draw the line in the same place (8 to 16 KiB). A head must also
arrive within HEAD_SECONDS of its first byte (or of the connection): a client sending a byte
now and then no longer holds a connection, and its file descriptor, for as long as it likes.
A body must likewise arrive within BODY_SECONDS of its head.

Connections are capped per process (`server.max_connections`, and always below the limit of
open files, keeping a reserve for the database, logs and outgoing calls): slow clients once
used every file descriptor, so that /health failed and the poller could not open a socket. At
the cap, a new connection takes the place of the one that has waited longest for a request head
(a slow or idle client); only when none is waiting is the new connection closed. A request
being read or answered is never cut off for a newcomer, so signed deliveries, which arrive
whole at once, keep being answered while slow clients come and go.

The time bounds are enforced by one sweep per server every SWEEP_SECONDS, not by a timer per
request: uvloop makes a libuv handle for each timer, and three per request cost about a
quarter of the CPU of a webhook delivery (bench/RESULTS.md). A bound is therefore enforced
within SWEEP_SECONDS of its time."""

from __future__ import annotations

import logging
import resource
import time
import weakref
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEAD_BYTES = 16 * 1024
MAX_HEADERS = 100
HEAD_SECONDS = 10.0
BODY_SECONDS = 30.0
DEFAULT_MAX_CONNECTIONS = 1000
# open files kept for everything but client connections: the database and its WAL, logs,
# the connectors' outgoing connections, the workers' control socket
RESERVED_FILES = 64
SWEEP_SECONDS = 0.5
# an answer the client does not read (its socket buffer full) holds the connection this long
SEND_SECONDS = 30.0
CAP_LOG_SECONDS = 60.0  # at the cap: one warning a minute at most, with the counts
log = logging.getLogger("im.server")
_REFUSAL = (b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: text/plain; charset=utf-8\r\n"
            b"content-length: 33\r\nconnection: close\r\n\r\n"
            b"Request header fields too large.\n")


_BODY_TIMEOUT = (b"HTTP/1.1 408 Request Timeout\r\n"
                 b"content-type: text/plain; charset=utf-8\r\n"
                 b"content-length: 33\r\nconnection: close\r\n\r\n"
                 b"The request body came too slowly.\n")


class Connections:
    """The client connections of one server: how many; those waiting for a request head,
    oldest first (a dict keeps insertion order: taking the oldest costs O(1)); and those
    reading a body, in the order their heads arrived (so in the order their time runs out)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0
        self.waiting: dict[BoundedHttpProtocol, None] = {}
        self.reading: dict[BoundedHttpProtocol, None] = {}
        self.members: set[BoundedHttpProtocol] = set()
        self.evicted = 0  # waiting connections closed to make room
        self.turned_away = 0  # new connections closed, none waiting
        self._told = (0.0, 0, 0)  # when the last warning was logged, and the counts then
        self._sweep: Any = None

    def at_cap(self) -> None:
        now = time.monotonic()
        at, evicted, turned_away = self._told
        if now - at < CAP_LOG_SECONDS and at:
            return
        self._told = (now, self.evicted, self.turned_away)
        log.warning("%d client connections open, the cap (server.max_connections): %d"
                    " waiting for a request closed to make room and %d new ones turned away"
                    " since the last count", self.count - 1, self.evicted - evicted,
                    self.turned_away - turned_away)

    def watch(self, loop: Any) -> None:
        """Sweep while there are connections (started by the first one)."""
        if self._sweep is None:
            self._sweep = loop.call_later(SWEEP_SECONDS, self.sweep, loop)

    def sweep(self, loop: Any) -> None:
        self._sweep = None
        now = loop.time()
        for connection in [c for c in self.waiting if c._head_since is not None
                           and now - c._head_since > HEAD_SECONDS]:
            connection._head_too_slow()
        late = []
        for connection in self.reading:  # oldest first: stop at the first still in time
            if now - connection._body_since <= BODY_SECONDS:
                break
            late.append(connection)
        for connection in late:
            connection._body_too_slow()
        # A client that does not read its answers (pipelined requests, a large answer) is
        # "at work" and never made room for anyone: cut it off once its answers have waited
        # SEND_SECONDS for it to read them.
        for connection in list(self.members):
            if connection._not_read():
                if connection._stalled_since is None:
                    connection._stalled_since = now
                elif now - connection._stalled_since > SEND_SECONDS:
                    connection.transport.abort()
            else:
                connection._stalled_since = None
        if self.count:
            self.watch(loop)


def open_files_limit() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def raise_open_files_limit() -> None:
    """Take the hard limit of open files as the soft one (`im serve` at start, as most servers
    do): the default soft limit, often 1,024, is what a busy server runs out of first."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass  # kept as it is: the cap of connections follows the soft limit


def connection_limit(setting: int | None) -> int:
    """The cap on client connections: the setting (or the default), kept below the limit of
    open files by RESERVED_FILES, and never under 1."""
    wanted = DEFAULT_MAX_CONNECTIONS if setting is None else setting
    files = open_files_limit()
    if files != resource.RLIM_INFINITY:
        wanted = min(wanted, files - RESERVED_FILES)
    return max(1, wanted)


_setting: int | None = None
_tables: weakref.WeakKeyDictionary[Any, Connections] = weakref.WeakKeyDictionary()


def limit_connections(setting: int | None) -> None:
    """Set this process's cap (`im serve` and its workers, from `server.max_connections`),
    for the servers started from now on."""
    global _setting
    _setting = setting


def connections(server_state: Any) -> Connections:
    """The connections of one server (uvicorn's state shared by its connections)."""
    table = _tables.get(server_state)
    if table is None:
        table = _tables[server_state] = Connections(connection_limit(_setting))
    return table


class BoundedHttpProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # the bytes arriving belong to a request's head
        self._head_bytes = 0
        self._tail = b""  # the last bytes of the head so far: its end may span two reads
        self._refused = False
        # when the head being waited for began (the connection, or its first byte on a
        # kept-alive connection); None while a kept-alive connection idles (uvicorn's
        # keep-alive timeout ends that)
        self._head_since: float | None = None
        self._body_since = 0.0
        self._stalled_since: float | None = None
        self._body_in_read = 0  # body bytes the parser gave out of the read being parsed
        self._begun_in_read = 0  # requests begun in the read being parsed
        self._counted = False
        self._table = Connections(0)  # this server's, from connection_made on

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        table = self._table = connections(self.server_state)
        table.count += 1
        table.members.add(self)
        self._counted = True
        self._head_since = self.loop.time()
        table.waiting[self] = None
        table.watch(self.loop)
        if table.count > table.limit:
            oldest = next(iter(table.waiting))
            if oldest is self:  # none other is waiting: every other one is at work
                table.turned_away += 1
                table.at_cap()
                self._drop()
                return
            table.evicted += 1
            table.at_cap()
            oldest._drop()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._counted:
            self._counted = False
            self._table.count -= 1
            self._table.members.discard(self)
            self._table.waiting.pop(self, None)
            self._table.reading.pop(self, None)
        super().connection_lost(exc)

    def _drop(self) -> None:
        """Cut the connection off without an answer (a client that has not sent a request is
        owed none). Aborted, not closed: a close waits for unsent bytes to drain, which a
        client that reads nothing never lets happen, and the place would stay taken."""
        self._refused = True
        self._table.waiting.pop(self, None)
        self.transport.abort()

    def _not_read(self) -> bool:
        """Whether answers wait for the client to read them (its buffer full)."""
        return bool(self.flow is not None and self.flow.write_paused) or (
            self.transport.is_closing() and self.transport.get_write_buffer_size() > 0)

    def _head_too_slow(self) -> None:
        self._drop()  # no answer: a client this slow is not waiting for one

    def _body_too_slow(self) -> None:
        if self.flow is not None and self.flow.read_paused:
            # im has not read what came yet (uvicorn stopped reading): not the client's delay
            self._body_since = self.loop.time()
            self._table.reading.pop(self, None)
            self._table.reading[self] = None
            return
        self._table.reading.pop(self, None)
        if self.transport.is_closing():
            return
        self._refused = True
        cycle = self.cycle
        if cycle is None or not cycle.response_started:
            self.transport.write(_BODY_TIMEOUT)
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        head = 0  # this read's bytes of the head being waited for
        if self._in_head:
            if self._head_since is None:  # a byte (a blank line) on an idle kept-alive one
                self._head_since = self.loop.time()
            # the head's end may span this read and the last: look for it in both
            seen = self._tail + data
            end = seen.find(b"\r\n\r\n")
            head = len(data) if end < 0 else max(0, end + 4 - len(self._tail))
            self._head_bytes += head
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refuse()
                return
            self._tail = seen[-3:]
        self._body_in_read = self._begun_in_read = 0
        super().data_received(data)
        if self._in_head and self._begun_in_read and not self._refused:
            # Requests ended in this read and the next began in it (pipelined): what is
            # neither the first head nor a body is the next heads', each within the bound.
            rest = len(data) - head - self._body_in_read
            if rest > MAX_HEAD_BYTES * self._begun_in_read:
                self._refuse()
                return
            # of which the head still arriving: at most what follows the last blank line
            last = data.rfind(b"\r\n\r\n")
            after = len(data) - (last + 4) if last >= 0 else rest
            self._head_bytes, self._tail = min(rest, after), data[-3:]

    def on_body(self, body: bytes) -> None:
        self._body_in_read += len(body)
        super().on_body(body)

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._in_head:  # a chunked body's trailers: buffered whole, never bounded
            self._refuse()
            raise ValueError("trailers")  # stops the parser; answered already
        super().on_header(name, value)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._begun_in_read += 1
        if self._head_since is None:  # a kept-alive connection's next request
            self._head_since = self.loop.time()

    def on_headers_complete(self) -> None:
        # Counted here, not header by header (a call per header costs every request): the
        # head's byte bound already keeps what a crowded head holds small.
        if len(self.headers) > MAX_HEADERS:
            self._refuse()
            raise ValueError("too many headers")  # stops the parser; answered already
        self._in_head = False
        self._head_since = None
        self._table.waiting.pop(self, None)  # at work: never evicted for a newcomer
        previous = self.cycle
        if previous is None or previous.response_complete:
            # (a pipelined request waits for the answer before it: its body is not late)
            self._body_since = self.loop.time()
            self._table.reading[self] = None
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._table.reading.pop(self, None)
        super().on_message_complete()
        self._in_head, self._head_bytes, self._tail = True, 0, b""  # the next request

    def on_response_complete(self) -> None:
        queued = bool(self.pipeline)  # a pipelined request starts now: still at work
        super().on_response_complete()
        if self._counted and not queued and not self.transport.is_closing():
            # idle until its next request (uvicorn's keep-alive timeout ends it): may make room
            self._table.waiting[self] = None

    def send_400_response(self, msg: str) -> None:
        if not self._refused:  # the parser's error after a refusal: answered with 431
            super().send_400_response(msg)

    def _refuse(self) -> None:
        self._refused = True
        if not self.transport.is_closing():
            self.transport.write(_REFUSAL)
            self.transport.close()
