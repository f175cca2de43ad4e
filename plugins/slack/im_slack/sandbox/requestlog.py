"""Every Web API call the sandbox answered, with its arguments and answer, so tests can count
calls and check them against Slack's own description of the API."""

from __future__ import annotations

from collections import deque
from typing import Any

import msgspec


class RequestRecord(msgspec.Struct, frozen=True, kw_only=True):
    http_method: str
    method: str  # the Web API method, such as "chat.postMessage"
    content_type: str
    # the arguments as received (form and query values are strings), the token left out
    params: dict[str, Any]
    authorization: str  # "bearer", "token" (an argument) or "" (none)
    status: int | None  # None when the connection was dropped
    answer: Any  # the JSON answer, or None
    at: float
    fault: str | None = None


class RequestLog:
    def __init__(self, size: int) -> None:
        self._records: deque[RequestRecord] = deque(maxlen=size)
        self.generation = 0  # goes up at every clear

    def add(self, record: RequestRecord, generation: int | None = None) -> None:
        if generation is None or generation == self.generation:
            self._records.append(record)

    def clear(self) -> None:
        self._records.clear()
        self.generation += 1

    def select(self, *, method: str | None = None) -> list[RequestRecord]:
        return [r for r in self._records if method in (None, r.method)]
