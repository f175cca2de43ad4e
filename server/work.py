"""The background work of `im serve`: outbox delivery, inbox processing and polling.

Each runs in a thread of its own (the stores are synchronous), wakes on a timer or when there
is new work, and never lets one failure stop the loop.

Several servers on one database (PostgreSQL): every server delivers the outbox and applies the
inbox (rows are claimed with a lease, so each is done once), and hears of work another server
stored (its store's listener), so an event received by one is applied at once by whichever is
free; a change queued is delivered by the process that queued it, or by a server's next tick. The duties that must run once in the cluster (polling, SLA checks, housekeeping) run in
the server that holds the duty's leadership; when it dies, another takes the duty at its next
try, within a few seconds.
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
SLA_INTERVAL = 15.0
HOUSEKEEPING_INTERVAL = 3600.0
# how often a server of a cluster tries to take a duty no server holds (one that died)
LEADER_RETRY = 2.0


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
        from im.workflows import DELIVERIES_FIRST_SECONDS, RUN_LEASE_SECONDS, run_queued

        # workflow actions: as the outbox, each pass well inside a run's lease; each after
        # its change has reached the connected systems (for up to half a minute)
        self.workflows = Loop("workflows", interval, lambda: run_queued(
            runtime, budget=RUN_LEASE_SECONDS / 2,
            deliveries_first=DELIVERIES_FIRST_SECONDS))
        self.busy: Callable[[], bool] = lambda: False
        self._process_inbox = process_inbox
        self.inbox = Loop("inbox", interval, self._drain_inbox)
        self.poller = Loop("poller", interval, self._poll_due)
        store = runtime.store
        self._leaderships = {duty: store.leadership(duty)
                             for duty in ("poll", "sla", "housekeeping")}
        self.clustered = any(lease is not None for lease in self._leaderships.values())
        self.leading: set[str] = set()
        # SLA checks every 15 s and housekeeping hourly; in a cluster, every server asks every
        # few seconds whether the duty is its own (so one that died is replaced at once)
        self.sla = Loop("sla", SLA_INTERVAL if not self.clustered else LEADER_RETRY,
                        self._check_sla)
        self._last_sla = 0.0
        self._last_housekeeping = 0.0
        self.housekeeping = Loop("housekeeping",
                                 HOUSEKEEPING_INTERVAL if not self.clustered else LEADER_RETRY,
                                 self._housekeeping)
        self.loops = [self.outbox, self.inbox, self.poller, self.sla, self.housekeeping,
                      self.workflows]
        if self.clustered:
            # the duties this server holds say so every few seconds, whatever their loops are
            # doing (a long poll): a server that stops saying so loses them
            self.heartbeat = Loop("heartbeat", LEADER_RETRY, self._beat)
            self.loops.append(self.heartbeat)
        self.listening: threading.Thread | None = None
        self._listener_stop = threading.Event()
        if self.clustered:
            self.listening = threading.Thread(target=self._listen, name="im-listen",
                                              daemon=True)

    def start(self) -> None:
        for loop in self.loops:
            loop.thread.start()
        if self.listening is not None:
            self.listening.start()

    def stop(self) -> None:
        self._listener_stop.set()
        for loop in self.loops:
            loop.stop()
        for lease in self._leaderships.values():
            if lease is not None:
                lease.release()
        if self.listening is not None:
            self.listening.join(timeout=10)
        self.runtime.store.close()

    def _leads(self, duty: str) -> bool:
        """Whether this server runs `duty` now: always with one server; in a cluster, while
        it holds the duty's leadership."""
        lease = self._leaderships.get(duty)
        if lease is None:
            return True
        held = lease.acquire()
        if held and duty not in self.leading:
            log.info("this server now runs %s for the cluster", duty)
            self.leading.add(duty)
        elif not held and duty in self.leading:
            log.warning("this server no longer runs %s for the cluster", duty)
            self.leading.discard(duty)
        return held

    def _beat(self) -> None:
        for duty in list(self.leading):
            self._leads(duty)

    def _listen(self) -> None:
        """Wake the inbox and outbox loops when any server of the cluster stored work."""
        listener = None
        while not self._listener_stop.is_set():
            try:
                if listener is None:
                    listener = self.runtime.store.listener()
                    if listener is None:
                        return
                    # what was stored while this server was not listening
                    self.inbox.wake.set()
                    self.outbox.wake.set()
                for kind in listener.wait(timeout=1.0):
                    {"inbox": self.inbox, "outbox": self.outbox}.get(
                        kind, self.outbox).wake.set()
            except Exception as error:
                log.warning("listening for the cluster's work failed (%s: %s); retrying",
                            type(error).__name__, error)
                if listener is not None:
                    try:
                        listener.close()
                    except Exception:  # noqa: BLE001 - a broken connection is dropped anyway
                        pass
                listener = None
                self._listener_stop.wait(LEADER_RETRY)
        if listener is not None:
            listener.close()

    def _drain_inbox(self) -> None:
        """Apply stored events. While webhooks pour in, work in small batches with pauses:
        answering senders fast comes first (the GIL is shared), applying can lag a little."""
        while True:
            busy = self.busy()
            started = time.monotonic()
            report = self._process_inbox(self.runtime, limit=BUSY_BATCH if busy else None)
            if report.processed:  # a remote change may have triggered workflow actions
                self.workflows.wake.set()
            if not busy or report.processed + report.quarantined < BUSY_BATCH:
                return
            spent = time.monotonic() - started
            if self.inbox.stopping.wait(spent * (1 - BUSY_SHARE) / BUSY_SHARE):
                return

    def _housekeeping(self) -> None:
        from im.housekeeping import purge

        if not self._leads("housekeeping"):
            return
        if self.clustered and time.monotonic() - self._last_housekeeping < (
                HOUSEKEEPING_INTERVAL) and self._last_housekeeping:
            return
        self._last_housekeeping = time.monotonic()
        purged = purge(self.runtime)
        if any(purged.values()):
            log.info("housekeeping removed %s", purged)

    def _check_sla(self) -> None:
        from im.sla import check_breaches

        if not self._leads("sla"):
            return
        if self.clustered and time.monotonic() - self._last_sla < SLA_INTERVAL:
            return
        self._last_sla = time.monotonic()
        if check_breaches(self.runtime):
            self.outbox.wake.set()
            self.workflows.wake.set()

    def _poll_due(self) -> None:
        if not self._leads("poll"):
            self._polled.clear()  # the leader polls; if this server takes over, it polls at once
            return
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
