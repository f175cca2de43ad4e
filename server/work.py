"""The background work of `im serve`: outbox delivery, inbox processing and polling.

Each runs in a thread of its own (the store is synchronous SQLite), wakes on a timer or when
there is new work, and never lets one failure stop the loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from im.connectors import parse_duration
from im.runtime import Runtime

log = logging.getLogger("im.server.work")

BUSY_BATCH = 20  # events applied per write transaction while webhooks pour in
# ... and the share of the time spent applying them: the rest is left to answering senders
# (the cores and the database's one writer are shared); the backlog is applied at full speed
# once the burst is over.
BUSY_SHARE = 0.25


class Loop:
    def __init__(self, name: str, interval: float, step: Callable[[], object]) -> None:
        self.name = name
        self.interval = interval
        self.step = step
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.last_run: float | None = None
        self.last_error: str | None = None
        self.thread = threading.Thread(target=self._run, name=f"im-{name}", daemon=True)

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.step()
                self.last_error = None
            except Exception as error:
                self.last_error = f"{type(error).__name__}: {error}"
                log.exception("%s failed", self.name)
            self.last_run = time.time()
            self.wake.wait(self.interval)
            self.wake.clear()

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()
        self.thread.join(timeout=30)

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()


class BackgroundWork:
    def __init__(self, runtime: Runtime, *, interval: float = 1.0) -> None:
        from im.housekeeping import retention
        from im.inbound import poll, process_inbox
        from im.sync import OUTBOX_LEASE_SECONDS, deliver_outbox

        retention(runtime.settings)  # a bad setting is refused at start, not an hour later
        self.runtime = runtime
        self._polled: dict[str, float] = {}
        self._poll = poll
        # Each pass ends well inside a claim's lease: a connector waiting out a remote rate
        # limit (up to a minute each) must not hold a row past it, or another process would
        # take the row meanwhile and deliver it twice. What is left waits for the next pass.
        self.outbox = Loop("outbox", interval, lambda: deliver_outbox(
            runtime, budget=OUTBOX_LEASE_SECONDS / 2))
        self.busy: Callable[[], bool] = lambda: False
        self._process_inbox = process_inbox
        self.inbox = Loop("inbox", interval, self._drain_inbox)
        self.poller = Loop("poller", interval, self._poll_due)
        self.sla = Loop("sla", 15.0, self._check_sla)
        self.housekeeping = Loop("housekeeping", 3600.0, self._housekeeping)
        self.loops = [self.outbox, self.inbox, self.poller, self.sla, self.housekeeping]

    def start(self) -> None:
        for loop in self.loops:
            loop.thread.start()

    def stop(self) -> None:
        for loop in self.loops:
            loop.stop()
        self.runtime.store.close()

    def _drain_inbox(self) -> None:
        """Apply stored events. While webhooks pour in, work in small batches with pauses:
        answering senders fast comes first (the GIL is shared), applying can lag a little."""
        while True:
            busy = self.busy()
            started = time.monotonic()
            report = self._process_inbox(self.runtime, limit=BUSY_BATCH if busy else None)
            if not busy or report.processed + report.quarantined < BUSY_BATCH:
                return
            spent = time.monotonic() - started
            if self.inbox.stopping.wait(spent * (1 - BUSY_SHARE) / BUSY_SHARE):
                return

    def _housekeeping(self) -> None:
        from im.housekeeping import purge

        purged = purge(self.runtime)
        if any(purged.values()):
            log.info("housekeeping removed %s", purged)

    def _check_sla(self) -> None:
        from im.sla import check_breaches

        if check_breaches(self.runtime):
            self.outbox.wake.set()

    def _poll_due(self) -> None:
        now = time.monotonic()
        for record in self.runtime.store.list_connectors():
            if not record.enabled or not record.sync_direction.pulls:
                continue
            try:
                interval = parse_duration(record.settings.get("sync_interval", "5m"))
            except ValueError:
                continue
            if interval <= 0:
                continue  # "0s": webhooks only, no polling
            if now - self._polled.get(record.name, -interval) < interval:
                continue
            self._polled[record.name] = now
            try:
                self._poll(self.runtime, record.name)
            except Exception as error:
                log.warning("polling %s failed: %s", record.name, error)
