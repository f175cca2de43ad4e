"""Slack's rate limits: per method and token by tier, and chat.postMessage per channel.

Tiers allow about 1, 20, 50 and 100 calls a minute; chat.postMessage about one message a second
per channel with short bursts (a moving window of `burst` messages in `burst` seconds). A call
over the limit answers HTTP 429 with `Retry-After` in seconds.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from im_slack.sandbox.config import SandboxConfig

TIER_PER_MINUTE = {1: 1, 2: 20, 3: 50, 4: 100}


class RateLimits:
    def __init__(self, settings: SandboxConfig) -> None:
        self.settings = settings
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def _item(self, tier: int) -> RateLimitItem:
        settings = self.settings
        if tier == 0:  # chat.postMessage, per channel
            if settings.rate_limits == "strict":
                return RateLimitItemPerSecond(1, 1)
            burst = settings.post_message_burst
            return RateLimitItemPerSecond(burst, burst)
        if settings.rate_limits == "strict":
            return RateLimitItemPerMinute(settings.strict_limit, 1)
        return RateLimitItemPerMinute(TIER_PER_MINUTE[tier], 1)

    async def retry_after(self, tier: int, *key: str) -> int | None:
        """None if the call may go ahead (and is counted), else the seconds to wait."""
        if self.settings.rate_limits == "off":
            return None
        item = self._item(tier)
        if await self._limiter.hit(item, *key):
            return None
        if self.settings.retry_after_seconds is not None:
            return self.settings.retry_after_seconds
        reset_at, _remaining = await self._limiter.get_window_stats(item, *key)
        return max(1, math.ceil(reset_at - time.time()))
