"""Faults to inject at run time, for reliability tests of whatever talks to the sandbox.

Counted faults (`burst_5xx`, `storm_429`, `drop_connections`) are used up one request at a
time; `latency_ms` holds a call before it is carried out, `late_answer_ms` after (Slack did it,
and the client that gives up waiting, or dies, does not know); rates are drawn from a random
generator that `seed` makes repeatable. `methods` limits them to some Web API methods (empty:
every one).
"""

from __future__ import annotations

import random
from typing import Annotated, Literal

import msgspec

Rate = Annotated[float, msgspec.Meta(ge=0, le=1)]
ServerError = Annotated[int, msgspec.Meta(ge=500, le=599)]
Count = Annotated[int, msgspec.Meta(ge=0)]


class Faults(msgspec.Struct, frozen=True, kw_only=True):
    error_rate: Rate = 0.0
    error_status: ServerError = 500
    latency_ms: Annotated[float, msgspec.Meta(ge=0, le=60_000)] = 0.0
    late_answer_ms: Annotated[float, msgspec.Meta(ge=0, le=60_000)] = 0.0
    burst_5xx: Count = 0
    burst_status: ServerError = 503
    storm_429: Count = 0
    storm_429_retry_after: Annotated[int, msgspec.Meta(ge=0)] = 1
    drop_connections: Count = 0
    drop_rate: Rate = 0.0
    methods: tuple[str, ...] = ()
    seed: int | None = None


class Injection(msgspec.Struct, frozen=True, kw_only=True):
    kind: Literal["drop", "server_error", "rate_limit"]
    status: int = 0


class FaultSwitch:
    def __init__(self) -> None:
        self.current = Faults()
        self._random = random.Random()

    def set(self, faults: Faults) -> None:
        self.current = faults
        self._random = random.Random(faults.seed)

    def _applies(self, method: str) -> bool:
        return not self.current.methods or method in self.current.methods

    def latency_seconds(self, method: str) -> float:
        return self.current.latency_ms / 1000 if self._applies(method) else 0.0

    def late_answer_seconds(self, method: str) -> float:
        return self.current.late_answer_ms / 1000 if self._applies(method) else 0.0

    def _use(self, **counts: int) -> None:
        self.current = msgspec.structs.replace(self.current, **counts)

    def take(self, method: str) -> Injection | None:
        """The fault this call meets, if any; counted faults are used up."""
        faults = self.current
        if not self._applies(method):
            return None
        if faults.drop_connections:
            self._use(drop_connections=faults.drop_connections - 1)
            return Injection(kind="drop")
        if faults.drop_rate and self._random.random() < faults.drop_rate:
            return Injection(kind="drop")
        if faults.storm_429:
            self._use(storm_429=faults.storm_429 - 1)
            return Injection(kind="rate_limit", status=429)
        if faults.burst_5xx:
            self._use(burst_5xx=faults.burst_5xx - 1)
            return Injection(kind="server_error", status=faults.burst_status)
        if faults.error_rate and self._random.random() < faults.error_rate:
            return Injection(kind="server_error", status=faults.error_status)
        return None
