"""Faults to inject at run time, for reliability tests of whatever talks to the sandbox.

Counted faults (`burst_5xx`, `storm_429`, `drop_connections`) are used up one request at a
time; rates are drawn from a random generator that `seed` makes repeatable.
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
    burst_5xx: Count = 0
    burst_status: ServerError = 503
    storm_429: Count = 0
    storm_429_headers: bool = True
    storm_429_reset_seconds: Annotated[int, msgspec.Meta(ge=0)] = 1
    drop_connections: Count = 0
    drop_rate: Rate = 0.0
    # That share of requests is carried out at once but answered only after late_answer_ms:
    # a client that gives up sooner cannot know that the change was made.
    late_answer_rate: Rate = 0.0
    late_answer_ms: Annotated[float, msgspec.Meta(ge=0, le=60_000)] = 1_000.0
    # That share of requests is refused as PagerDuty refuses what it will not carry out
    # (400 Invalid Input Provided): a client error, which trying again does not fix.
    refuse_rate: Rate = 0.0
    # Path prefixes the API faults apply to; empty means every API path.
    paths: tuple[str, ...] = ()
    webhooks: Literal["deliver", "paused", "failing"] = "deliver"
    webhook_duplicates: bool = False
    seed: int | None = None


class Injection(msgspec.Struct, frozen=True, kw_only=True):
    kind: Literal["drop", "server_error", "rate_limit", "client_error"]
    status: int = 0
    headers: bool = True


class FaultSwitch:
    def __init__(self) -> None:
        self.current = Faults()
        self._random = random.Random()

    def set(self, faults: Faults) -> None:
        self.current = faults
        self._random = random.Random(faults.seed)

    def _applies(self, path: str) -> bool:
        prefixes = self.current.paths
        return not prefixes or any(path.startswith(prefix) for prefix in prefixes)

    def latency_seconds(self, path: str) -> float:
        return self.current.latency_ms / 1000 if self._applies(path) else 0.0

    def late_answer_seconds(self, path: str) -> float:
        """How long this request's answer is held back (drawn; 0 for most requests)."""
        faults = self.current
        if faults.late_answer_rate and self._applies(path) and (
                self._random.random() < faults.late_answer_rate):
            return faults.late_answer_ms / 1000
        return 0.0

    def _use(self, **counts: int) -> None:
        self.current = msgspec.structs.replace(self.current, **counts)

    def take(self, path: str) -> Injection | None:
        """The fault this request meets, if any; counted faults are used up."""
        faults = self.current
        if not self._applies(path):
            return None
        if faults.drop_connections:
            self._use(drop_connections=faults.drop_connections - 1)
            return Injection(kind="drop")
        if faults.drop_rate and self._random.random() < faults.drop_rate:
            return Injection(kind="drop")
        if faults.storm_429:
            self._use(storm_429=faults.storm_429 - 1)
            return Injection(kind="rate_limit", status=429, headers=faults.storm_429_headers)
        if faults.burst_5xx:
            self._use(burst_5xx=faults.burst_5xx - 1)
            return Injection(kind="server_error", status=faults.burst_status)
        if faults.error_rate and self._random.random() < faults.error_rate:
            return Injection(kind="server_error", status=faults.error_status)
        if faults.refuse_rate and self._random.random() < faults.refuse_rate:
            return Injection(kind="client_error", status=400)
        return None
