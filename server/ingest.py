"""Webhook ingest: `POST /connectors/{name}/webhook`, from the request to the stored event.

WebhookIngest is the policy, as a raw ASGI route: where a request may come from, how large it
may be, whose signature it needs, how many per second, and how refusals are counted and
answered (see docs/server.md); an authentic event is stored durably and answered 202, and is
processed later by the background work.

Storing uses group commit. SQLite has one writer, and a commit with synchronous=FULL costs an
fsync, so committing once per request caps ingest at the disk's fsync rate. Instead, request
handlers hand their events to one writer thread (InboxWriter), which stores everything that
queued up while it was busy in a single transaction; each handler answers only after the
commit that holds its event.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import queue
import re
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec

from im.connectors import Connector, WebhookRequest
from im.errors import ImError
from im.runtime import Runtime
from im.server import guard
from im.storage import Store

if TYPE_CHECKING:
    from im.server.metrics import ServerMetrics

log = logging.getLogger("im.server.ingest")
server_log = logging.getLogger("im.server")
webhook_log = logging.getLogger("im.webhook")  # `im logs --component webhook`

# Well above the largest webhook senders deliver (256 KB): no real one is refused for size.
MAX_WEBHOOK_BODY = 1024 * 1024
CONNECTOR_CACHE_SECONDS = 2.0
WEBHOOK_PATH = re.compile(r"^(?:/connectors)?/([^/]+)/webhook/?$")

MAX_BATCH = 512
# Ingest counts as busy for this long after the last stored webhook: the background work then
# applies events in small, paced batches (see im.server.work).
BUSY_WINDOW = 0.25


class InboundEvent(msgspec.Struct, frozen=True):
    connector: str
    delivery_id: str
    event_type: str
    body: bytes
    received_at: datetime


class StorageUnavailable(Exception):
    pass


class InboxWriter:
    def __init__(self, store_factory: Callable[[], Store],
                 on_stored: Callable[[], None] | None = None) -> None:
        self._store_factory = store_factory
        self._on_stored = on_stored
        self._queue: queue.SimpleQueue[tuple[InboundEvent, asyncio.Future[bool],
                                             asyncio.AbstractEventLoop] | None] = (
            queue.SimpleQueue())
        self._thread = threading.Thread(target=self._run, name="im-inbox-writer", daemon=True)
        self.batches = 0
        self.stored = 0
        self.last_batch_at = 0.0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def busy(self) -> bool:
        """Whether events were stored within the last BUSY_WINDOW seconds."""
        return time.monotonic() - self.last_batch_at < BUSY_WINDOW

    async def store(self, event: InboundEvent) -> bool:
        """Store an event durably; True if new, False for a duplicate delivery.
        Raises StorageUnavailable when it could not be committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        self._queue.put((event, future, loop))
        return await future

    def _run(self) -> None:
        store = self._store_factory()
        stopping = False
        while not stopping:
            item = self._queue.get()
            if item is None:
                break
            batch = [item]
            while len(batch) < MAX_BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                batch.append(more)
            results: list[bool] | list[StorageUnavailable]
            try:
                results = store.store_inbox_many([
                    (e.connector, e.delivery_id, e.event_type, e.body, e.received_at)
                    for e, _, _ in batch])
            except Exception as error:
                log.error("cannot store %d webhook events: %s", len(batch), error)
                results = [StorageUnavailable(str(error))] * len(batch)
            self.batches += 1
            self.last_batch_at = time.monotonic()
            self.stored += sum(1 for r in results if r is True)
            # One wake-up of each event loop per batch, not one per event (each is a syscall).
            by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[bool], Any]]] = {}
            for (_, future, loop), result in zip(batch, results, strict=True):
                by_loop.setdefault(loop, []).append((future, result))
            for loop, settled in by_loop.items():
                loop.call_soon_threadsafe(_settle_all, settled)
            if self._on_stored is not None and any(r is True for r in results):
                self._on_stored()
        store.close()


def _settle_all(settled: list[tuple[asyncio.Future[bool], Any]]) -> None:
    for future, result in settled:
        _settle(future, result)


def _settle(future: asyncio.Future[bool], result: bool | BaseException) -> None:
    if future.done():
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)


# -- the route -----------------------------------------------------------------------------


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
            server_log.warning("cannot read the configured connectors: %s", error)
            self._names_at = now  # tried again in a while, not on every request meanwhile
            return
        self._names, self._names_at = names, now
        for gone in set(self._cache) - names:
            del self._cache[gone]

    def __len__(self) -> int:
        return len(self._cache)


class WebhookIngest:
    """The webhook route: call it as an ASGI app. A request is checked in the order that
    costs a refused one least: path, method, declared and actual size, source address,
    connector, signature, then the sender's rate; an authentic event is stored (a duplicate
    delivery id is acknowledged and dropped) and answered 202 after the commit.

    `server_settings` is the settings file's `server` object (webhook_allow,
    webhook_rate_limit, webhook_refused_limit, webhook_refused_limit_total, trusted_proxies);
    `on_stored` is called after a batch with a new event is committed (to wake its
    processing). start() and stop() run and end the writer thread and the refusal log."""

    def __init__(self, runtime: Runtime, metrics: ServerMetrics, server_settings: dict[str, Any],
                 *, on_stored: Callable[[], None] | None = None) -> None:
        self.runtime = runtime
        self.metrics = metrics
        self.writer = InboxWriter(lambda: runtime.store, on_stored=on_stored)
        self.connectors = ConnectorCache(runtime)
        allow = guard.networks(server_settings.get("webhook_allow"), "webhook_allow")
        self._allowed = guard.AddressSet(allow) if allow else None
        self._client_address = guard.ClientAddress(server_settings)
        self._behind_proxy = bool(self._client_address.proxies)
        # Signed deliveries and refused requests are limited apart: a flood of refused
        # requests never takes a sender's deliveries' places (see docs/server.md).
        self._within_rate = guard.per_second(server_settings, "webhook_rate_limit", 1000)
        self._refused_within = guard.per_second(server_settings, "webhook_refused_limit", 10)
        self._refused_within_total = guard.per_second(server_settings,
                                                      "webhook_refused_limit_total", 100)
        self.refusals = guard.RefusalLog()

    def start(self) -> None:
        self.writer.start()
        self.refusals.start()

    def stop(self) -> None:
        self.writer.stop()
        self.refusals.stop()

    def refuse(self, client: str | None, reason: str, connector: str | None, status: int,
               error: str) -> tuple[int, dict[str, str]]:
        """A refused request: counted by reason (and by connector for a configured one),
        logged in aggregate, answered 429 when refusals from that source, or from all, are
        over their limit. Never touches the limit of signed deliveries."""
        throttled = ((self._refused_within is not None
                      and not self._refused_within(client or "unknown"))
                     or (self._refused_within_total is not None
                         and not self._refused_within_total("")))
        self.metrics.refused(reason, throttled)
        if connector is not None:
            self.metrics.webhook(connector, _OUTCOMES[reason])
        self.refusals.record(client, reason, connector, throttled)
        if throttled:
            return 429, {"error": "too many refused requests; retry after a second"}
        return status, {"error": error}

    def admit(self, name: str, client: str | None
              ) -> tuple[Connector | None, tuple[int, dict[str, str]] | None]:
        """Whether a delivery to `name` from `client` may send its body: decided on the head
        alone, so a refused sender never gets to make the server read (and wait for) a body."""
        connector = self.connectors.get(name)  # None unless a configured connector
        label = name if connector is not None else None
        if self._allowed is not None and client not in self._allowed:
            return None, self.refuse(client, "forbidden", label, 403,
                                     "source address not allowed")
        # an outbound connector applies nothing that comes in: its webhooks would be stored
        # and never read, so they are refused like a connector's whose webhooks are off
        if connector is None or not connector.settings.enable_webhook or (
                not connector.settings.sync_direction.pulls):
            return None, self.refuse(client, "not_found", label, 404,
                                     "no webhook for this connector")
        return connector, None

    async def ingest(self, connector: Connector, name: str, headers: dict[str, str],
                     body: bytes, client: str | None) -> tuple[int, dict[str, str]]:
        """A signed event, to an admitted connector: verify, store durably, answer 202,
        process later."""
        webhook_request = WebhookRequest(headers=headers, body=body, client=client)
        try:
            authentic = connector.verify_webhook(webhook_request)
        except Exception:  # a connector that cannot verify accepts nothing
            authentic = False
        if not authentic:
            return self.refuse(client, "bad_signature", name, 401,
                               "invalid or missing signature")
        # Only signed deliveries count against their sender's limit.
        if self._within_rate is not None and not self._within_rate(client or "unknown"):
            self.metrics.webhook(name, "rate_limited")
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
                             body=body, received_at=self.runtime.clock())
        try:
            new = await self.writer.store(event)
        except StorageUnavailable:
            self.metrics.webhook(name, "unavailable")
            return 503, {"error": "storage unavailable; retry"}
        self.metrics.webhook(name, "accepted" if new else "duplicate")
        return 202, {"status": "accepted" if new else "duplicate"}

    # A raw ASGI route: the hot path of `im serve` skips request models and response
    # building (about half the time per request); what it does is `ingest` above.
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        peer = scope.get("client")
        client = peer[0] if peer else None
        if self._behind_proxy:  # from a trusted proxy: the address it forwards
            client = self._client_address(client, scope["headers"])
        match = WEBHOOK_PATH.search(scope["path"])
        if match is None:
            status, payload = self.refuse(client, "not_found", None, 404, "not found")
            return await answer(send, status, payload, _retry(status))
        if scope["method"] != "POST":
            return await answer(send, 405, {"error": "use POST"})
        connector, refusal = self.admit(match.group(1), client)
        if refusal is not None:
            return await answer(send, *refusal, _retry(refusal[0]))
        assert connector is not None
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope["headers"]}
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_WEBHOOK_BODY:
            status, payload = self.refuse(client, "too_large", None, 413, "body too large")
            return await answer(send, status, payload, _retry(status))
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_WEBHOOK_BODY:
                status, payload = self.refuse(client, "too_large", None, 413, "body too large")
                return await answer(send, status, payload, _retry(status))
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        status, payload = await self.ingest(connector, match.group(1), headers,
                                            b"".join(chunks), client)
        return await answer(send, status, payload, _RETRY if status == 429 else None)


async def answer(send: Any, status: int, payload: dict[str, str],
                 headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """A JSON answer straight through ASGI (the webhook route builds no Response)."""
    body = msgspec.json.encode(payload)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


_OUTCOMES = {"forbidden": "forbidden", "not_found": "not_found", "too_large": "too_large",
             "bad_signature": "unauthorized"}  # the outcome label of im_webhook_requests


_RETRY = [(b"retry-after", b"1")]


def _retry(status: int) -> list[tuple[bytes, bytes]]:
    return _RETRY if status == 429 else []
