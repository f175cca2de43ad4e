"""Structured logs: records of im's loggers are kept in the database for `im logs`.

Components come from logger names: `im.webhook`, `im.sync` (inbound and outbound sync),
`im.server`, `im.cli`, `im.connector.<name>` for what a connector logs (its debug traces
among them), and `im.workflows` for the workflow runner, `im.workflows.<action name>` for
what an action logs (the traces of im.connector_client among them; the line's `connector` is
then the action's name). Secrets never get here: connectors redact before they log (see
im.redact).
"""

from __future__ import annotations

import atexit
import logging
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from im.storage import Store

FLUSH_WAIT_SECONDS = 10.0
COMPONENTS = ("webhook", "sync", "server", "cli", "connector", "workflows")
_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def component_of(logger_name: str) -> tuple[str, str | None]:
    parts = logger_name.split(".")
    if len(parts) >= 3 and parts[1] == "connector":
        return "connector", parts[2]
    if len(parts) >= 3 and parts[1] == "workflows":  # an action's: its name is dotted
        return "workflows", ".".join(parts[2:])
    if len(parts) >= 2:
        name = {"inbound": "sync", "sync": "sync", "webhook": "webhook", "cli": "cli"}.get(
            parts[1], "server" if parts[1] == "server" else parts[1])
        return name, None
    return "im", None


class StoreHandler(logging.Handler):
    """Writes records to the `logs` table in batches (one commit per batch, at most every
    half second, and at exit), so logging an event costs no fsync of its own. Failures to log
    never fail the caller."""

    FLUSH_SECONDS = 0.5
    BATCH = 500

    def __init__(self, store: Store, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.store = store
        self._pending: list[dict[str, Any]] = []
        self._wake = threading.Event()
        self._closed = False
        self._pending_lock = threading.Lock()  # held only to append or take the batch
        # Held across taking the batch and writing it, so a flush that returns has seen every
        # record emitted before it was called committed, even one the flush thread was writing.
        self._flushing = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="im-logs", daemon=True)
        self._thread.start()
        atexit.register(self.flush)

    def createLock(self) -> None:
        # No handler-wide lock: `logging.shutdown` holds it while it calls flush(), and a
        # flush waits for the flush thread's write, which may wait for the database, which a
        # thread that is logging may hold. emit() and flush() take their own short locks.
        self.lock = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            component, connector = component_of(record.name)
            data = {k: v for k, v in vars(record).items() if k not in _RESERVED
                    and not k.startswith("_")}
            connector = data.pop("connector", None) or connector
            entry = {"at": datetime.fromtimestamp(record.created, UTC),
                     "level": record.levelname.lower(), "levelno": record.levelno,
                     "component": component, "connector": connector,
                     "message": record.getMessage(), "data": data}
        except Exception:
            self.handleError(record)
            return
        with self._pending_lock:
            self._pending.append(entry)
            full = len(self._pending) >= self.BATCH
        if full:
            self._wake.set()

    def flush(self) -> None:
        # Bounded: at exit, a database that stays locked must not keep the process alive.
        if not self._flushing.acquire(timeout=FLUSH_WAIT_SECONDS):
            return
        try:
            with self._pending_lock:
                pending, self._pending = self._pending, []
            if pending:
                self.store.add_logs(pending)
        except Exception:  # the log is best effort; the work it describes is not
            pass
        finally:
            self._flushing.release()

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self.FLUSH_SECONDS)
            self._wake.clear()
            self.flush()

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        self.flush()
        super().close()


def install(store: Store, *, level: int = logging.INFO) -> StoreHandler:
    """Keep im's log records in `store` (idempotent per logger tree)."""
    logger = logging.getLogger("im")
    for handler in logger.handlers:
        if isinstance(handler, StoreHandler) and handler.store is store:
            return handler
    handler = StoreHandler(store, level)
    logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > level:
        logger.setLevel(level)
    return handler


def keep_logs_in(store: Store) -> StoreHandler:
    """Keep im's log records in `store` from now on, and no longer in any other store (the
    stores' handlers are flushed and closed): for a program that moves to another im home
    while it runs, as `im demo` does."""
    logger = logging.getLogger("im")
    for handler in [h for h in logger.handlers if isinstance(h, StoreHandler)
                    and h.store is not store]:
        logger.removeHandler(handler)
        handler.close()
    return install(store)
