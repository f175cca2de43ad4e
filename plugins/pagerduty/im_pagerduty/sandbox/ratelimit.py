"""REST rate limiting per API key: a fixed window, as PagerDuty's `ratelimit-reset` describes."""

from __future__ import annotations

import math
import time

import msgspec
from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import FixedWindowRateLimiter


class Verdict(msgspec.Struct, frozen=True, kw_only=True):
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int

    def headers(self) -> dict[str, str]:
        return {
            "ratelimit-limit": str(self.limit),
            "ratelimit-remaining": str(self.remaining),
            "ratelimit-reset": str(self.reset_seconds),
        }


class KeyRateLimiter:
    def __init__(self, limit: int, window_seconds: int) -> None:
        self._item = RateLimitItemPerSecond(limit, window_seconds)
        self._limiter = FixedWindowRateLimiter(MemoryStorage())

    async def hit(self, api_key: str) -> Verdict:
        allowed = await self._limiter.hit(self._item, api_key)
        reset_at, remaining = await self._limiter.get_window_stats(self._item, api_key)
        return Verdict(
            allowed=allowed,
            limit=self._item.amount,
            remaining=remaining,
            reset_seconds=max(1, math.ceil(reset_at - time.time())),
        )
