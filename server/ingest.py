"""Durable webhook ingest with group commit.

SQLite has one writer, and a commit with synchronous=FULL costs an fsync, so committing once per
request caps ingest at the disk's fsync rate. Instead, request handlers hand their events to one
writer thread, which stores everything that queued up while it was busy in a single
transaction; each handler answers only after the commit that holds its event.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import msgspec

from im.storage import Store

log = logging.getLogger("im.server.ingest")

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
