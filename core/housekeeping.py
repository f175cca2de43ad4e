"""What im keeps, and how long: the `retention` settings, and the purge `im serve` runs hourly.

Processed webhook events are kept a day past the replay window (they are how a delivery sent
again is known as a duplicate), so that is not a setting. Delivered changes, log lines and the
records of calls to remote systems are history: kept `retention.*_days` days, then forgotten.
Of the delivered changes past their time, each connector's latest is kept (a connector idle for
longer still knows when it last delivered). The keys of `Runtime.first_time` go once they
expire.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import msgspec

from im.errors import ImError

if TYPE_CHECKING:
    from im.runtime import Runtime


class Retention(msgspec.Struct, frozen=True, kw_only=True):
    outbox_days: int = 30  # delivered changes (the outbox's done rows)
    logs_days: int = 14  # `im logs`
    calls_days: int = 30  # calls to remote systems (`im metrics connector`)


FIELDS = tuple(Retention.__struct_fields__)


def retention(settings: dict[str, Any]) -> Retention:
    """The `retention` object of the settings file, checked: whole numbers of days."""
    value = settings.get("retention", {})
    if not isinstance(value, dict):
        raise ImError('settings retention: must be an object such as {"outbox_days": 30}')
    for key, days in value.items():
        if key not in FIELDS:
            raise ImError(f"settings retention: unknown key {key!r} (known: {', '.join(FIELDS)})")
        if isinstance(days, bool) or not isinstance(days, int) or days < 1:
            raise ImError(f"settings retention.{key}: must be a whole number of days, at least"
                          f" 1, not {days!r}")
    return Retention(**value)


def purge(runtime: Runtime) -> dict[str, int]:
    """Forget what is past its keeping time; how many rows went, by kind."""
    from im.inbound import REPLAY_WINDOW

    keep = retention(runtime.settings)
    now = runtime.clock()
    return runtime.store.purge(inbox_before=now - REPLAY_WINDOW - timedelta(days=1),
                               logs_before=now - timedelta(days=keep.logs_days),
                               calls_before=now - timedelta(days=keep.calls_days),
                               outbox_before=now - timedelta(days=keep.outbox_days),
                               keys_before=now)
