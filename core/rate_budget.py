"""A rate limit a connector keeps to itself, before it calls: `im.RateBudget`.

A remote system's 429 is waited out by im.connector_client; a connector that knows the limit
in advance (a message a second per chat channel, so many calls a minute per API key) spends
fewer of them by waiting its turn before sending: `client.request(..., budget=(BUDGET, key))`.

Loaded only when a connector asks for it: `import im` stays cheap.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

# How far past its turn a call waits: the remote system counts a call when it arrives, and one
# call may take a little longer to get there than the one before it.
MARGIN = 0.05  # seconds


class RateBudget:
    """At most `limit` calls per key, a call waiting its turn: `limit` in the `limits`
    library's notation (`1/second`, `900/minute`, `5 per 10 seconds`).

    Counted in this process (a moving window), or with `shared`, the connector's
    `self.runtime.shared_rate_limits()`, by every im process on the database (several `im
    serve` on PostgreSQL; fixed windows, so a limit of one call per window keeps calls apart
    as a moving window would, where a larger one lets a window's calls come at once). Keep the
    one of this process in a module-level value: connectors are built afresh for each use,
    and a budget counts only the calls made through it. A key names what the remote system
    counts calls of: an account (a hash of its credential, never the credential itself), and
    a channel or the like where it counts per one.

    `take(key)` waits for a call's turn; ConnectorClient.request does it before each attempt
    when given `budget=(budget, key)`, within the caller's deadline."""

    def __init__(self, limit: str, *, shared: Any = None) -> None:
        from limits import parse
        from limits.storage import MemoryStorage
        from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter

        self.limit = limit
        self.item = parse(limit)
        self.limiter = (MovingWindowRateLimiter(MemoryStorage()) if shared is None
                        else FixedWindowRateLimiter(shared))
        self.lock = threading.Lock()

    def take(self, key: str, *, deadline: float | None = None,
             sleep: Callable[[float], None] = time.sleep,
             monotonic: Callable[[], float] = time.monotonic) -> float | None:
        """Wait for a call's turn under the limit, and count it: None once it has come; or,
        without waiting, the seconds still to wait when they would end past `deadline` (a
        `monotonic()` time, such as PushRequest.deadline), the call not counted."""
        while True:
            with self.lock:
                if self.limiter.hit(self.item, key):
                    return None
                reset, _remaining = self.limiter.get_window_stats(self.item, key)
            wait = max(0.0, reset - time.time()) + MARGIN  # the windows are kept in Unix time
            if deadline is not None and monotonic() + wait > deadline:
                return wait
            sleep(wait)

    def __repr__(self) -> str:
        return f"RateBudget({self.limit!r})"
