"""The database as a whole: its size by table and what is kept how long (`im db status`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from im.housekeeping import Retention, retention
from im.storage.records import DatabaseSize

if TYPE_CHECKING:
    from im.runtime import Runtime


class DatabaseStatus(msgspec.Struct, frozen=True, kw_only=True):
    size: DatabaseSize
    retention: Retention
    events_days: int  # processed webhook events: the replay window and a day, not a setting


def status(runtime: Runtime) -> DatabaseStatus:
    """Sizes (reading every table whole: seconds for millions of rows) and retention."""
    from im.inbound import REPLAY_WINDOW

    return DatabaseStatus(size=runtime.store.size(), retention=retention(runtime.settings),
                          events_days=REPLAY_WINDOW.days + 1)
