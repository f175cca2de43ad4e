"""`im serve --workers N`: N HTTP worker processes in front of one process doing the work.

One Python process answers webhooks at about the rate of one core. With `--workers N`, `im serve`
becomes a supervisor: uvicorn starts N worker processes that share the listening socket and
each runs the app without background work (a webhook is verified and stored, with group
commit, before its 202), and the supervisor runs the background work (inbox processing,
outbox delivery, polling, SLA timers) in its own process, outside the workers' GIL. The
processes write to one SQLite file; `im.storage` queues its writers on a lock file.

The supervisor listens on a loopback UDP socket (its address in `IM_SERVE_CONTROL`):
- `inbox` and `outbox` from a worker wake the matching loop, so an event is applied as soon as
  it is stored, not at the next tick (a datagram lost is a wake-up one tick late, never work
  lost: the work is in the database);
- `health` is answered with the loops that stopped, which a worker's `/health` reports.

Workers die with the supervisor (Linux: the parent-death signal; elsewhere a watchdog), so a
killed `im serve` never leaves workers holding the port. The workers' webhook counters are
summed across processes with prometheus-client's multiprocess mode.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from im.server.ingest import BUSY_WINDOW

if TYPE_CHECKING:
    from im.runtime import Runtime
    from im.server.work import BackgroundWork

log = logging.getLogger("im.server")

CONTROL_ENV = "IM_SERVE_CONTROL"
PARENT_ENV = "IM_SERVE_PARENT"
LOG_LEVEL_ENV = "IM_SERVE_LOG_LEVEL"
METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client's multiprocess mode
NOTIFY_EVERY = 0.05  # a worker sends at most one wake-up per kind this often
HEALTH_TIMEOUT = 1.0


class Control:
    """The supervisor's end: wakes loops and answers health questions."""

    def __init__(self, work: BackgroundWork) -> None:
        self.work = work
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.address = "%s:%d" % self.socket.getsockname()
        self.last_inbox = 0.0
        self._thread = threading.Thread(target=self._run, name="im-control", daemon=True)
        self._stopping = False
        work.busy = self.busy

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        try:
            # wake the receiving thread so it sees `_stopping`
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(
                b"stop", self.socket.getsockname())
        except OSError:
            pass
        self._thread.join(timeout=5)
        self.socket.close()

    def busy(self) -> bool:
        """As InboxWriter.busy, for the events the workers store."""
        return time.monotonic() - self.last_inbox < BUSY_WINDOW

    def _run(self) -> None:
        while not self._stopping:
            try:
                message, sender = self.socket.recvfrom(64)
            except OSError:
                return
            if message == b"inbox":
                self.last_inbox = time.monotonic()
                self.work.inbox.wake.set()
            elif message == b"outbox":
                self.work.outbox.wake.set()
                self.work.workflows.wake.set()
            elif message == b"health":
                stopped = [loop.name for loop in self.work.loops if not loop.alive]
                try:
                    self.socket.sendto(json.dumps({"stopped": stopped}).encode(), sender)
                except OSError:
                    pass


class SupervisorLink:
    """A worker's end: tells the supervisor about new work and asks how its loops are."""

    def __init__(self, address: str) -> None:
        host, port = address.rsplit(":", 1)
        self.address = (host, int(port))
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.setblocking(False)
        self._last: dict[bytes, float] = {}

    def notify(self, kind: str) -> None:
        message = kind.encode()
        now = time.monotonic()
        if now - self._last.get(message, 0.0) < NOTIFY_EVERY:
            return
        self._last[message] = now
        try:
            self._socket.sendto(message, self.address)
        except OSError:  # the loop runs on its timer anyway
            pass

    def health_reasons(self) -> list[str]:
        """What is wrong with the background work, as /health reports it."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as asker:
            asker.settimeout(HEALTH_TIMEOUT)
            try:
                asker.sendto(b"health", self.address)
                answer = json.loads(asker.recv(4096))
            except (OSError, ValueError):
                return ["background work not answering"]
        return [f"{name} worker stopped" for name in answer.get("stopped", [])]


def worker_app() -> Any:
    """The app of one HTTP worker (uvicorn's factory, in a process of its own)."""
    from im.logs import install
    from im.runtime import Runtime
    from im.server import create_app, serving

    _die_with_parent(int(os.environ.get(PARENT_ENV, "0")))
    logging.basicConfig(level=os.environ.get(LOG_LEVEL_ENV, "INFO").upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    runtime = Runtime()
    install(runtime.store)
    return serving(create_app(runtime, supervisor=SupervisorLink(os.environ[CONTROL_ENV])))


def run(runtime: Runtime, *, host: str, port: int, workers: int, log_level: str,
        tls: dict[str, str] | None = None) -> None:
    """Run the supervisor until SIGINT or SIGTERM; uvicorn starts and restarts the workers."""
    import uvicorn

    from im.server.work import BackgroundWork

    work = BackgroundWork(runtime)
    control = Control(work)
    metrics_dir = tempfile.mkdtemp(prefix="im-serve-metrics-")
    os.environ.update({
        "IM_HOME": str(runtime.home), CONTROL_ENV: control.address,
        PARENT_ENV: str(os.getpid()), LOG_LEVEL_ENV: log_level, METRICS_ENV: metrics_dir,
        "PYTHONFAULTHANDLER": "1",
    })
    control.start()
    work.start()
    try:
        uvicorn.run("im.server.workers:worker_app", factory=True, host=host, port=port,
                    workers=workers, log_level=log_level, timeout_graceful_shutdown=10,
                    access_log=False, log_config=None, proxy_headers=False,
                    http="im.server.protocol:BoundedHttpProtocol", **(tls or {}))
    finally:
        work.stop()
        control.stop()
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _die_with_parent(parent: int) -> None:
    """Stop this worker (SIGTERM: finish what is in flight) when the supervisor is gone."""
    if not parent:
        return
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            pr_set_pdeathsig = 1
            libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
        except (OSError, AttributeError):
            pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="im-parent-watch", daemon=True).start()


def metrics_collector(registry: Any) -> bool:
    """In a worker: sum the workers' counters into `registry`; False when not a worker."""
    directory = os.environ.get(METRICS_ENV)
    if not directory or not Path(directory).is_dir():
        return False
    from prometheus_client import multiprocess

    multiprocess.MultiProcessCollector(registry, path=directory)
    return True
