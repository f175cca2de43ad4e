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
    def __init__(self, size: int) -> None:
        self._records: deque[RequestRecord] = deque(maxlen=size)

    def add(self, record: RequestRecord) -> None:
        self._records.append(record)

    def clear(self) -> None:
        self._records.clear()

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
