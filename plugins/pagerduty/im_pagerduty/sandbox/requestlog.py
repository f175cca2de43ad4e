"""Every API request the sandbox answered, so tests can count calls instead of guessing."""

from __future__ import annotations

from collections import deque

import msgspec


class RequestRecord(msgspec.Struct, frozen=True, kw_only=True):
    method: str
    path: str
    query: str
    status: int | None  # None when the connection was dropped
    at: str
    fault: str | None = None


class RequestLog:
    """The log holds the requests that arrived since it was last cleared: one that arrived
    before (still sleeping in an injected latency, say) is not added when it ends."""

    def __init__(self, size: int) -> None:
        self._records: deque[RequestRecord] = deque(maxlen=size)
        self.generation = 0  # goes up at every clear

    def add(self, record: RequestRecord, generation: int | None = None) -> None:
        if generation is None or generation == self.generation:
            self._records.append(record)

    def clear(self) -> None:
        self._records.clear()
        self.generation += 1

    def select(self, *, method: str | None = None, path: str | None = None) -> list[RequestRecord]:
        """`path` matches exactly, or as a prefix when it ends with `*`."""
        found = []
        for record in self._records:
            if method and record.method != method.upper():
                continue
            if path:
                if path.endswith("*"):
                    if not record.path.startswith(path[:-1]):
                        continue
                elif record.path != path:
                    continue
            found.append(record)
        return found
