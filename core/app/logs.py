"""Reading im's structured logs (`im logs`): the lines `im serve` and the CLI recorded, by
component, level, text and time, oldest first.

Recording them is `im.logs`' (a handler that keeps im's log records in the store). Reading
is in two steps, so that a front end that reads again and again (`im logs --follow`) checks
what it was asked once: `query` checks the filters, `read` reads the lines that match.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec

from im.errors import InvalidInputError
from im.logs import COMPONENTS

if TYPE_CHECKING:
    from im.runtime import Runtime

__all__ = ["COMPONENTS", "LEVELS", "LogLine", "LogQuery", "query", "read"]

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR}


class LogQuery(msgspec.Struct, frozen=True, kw_only=True):
    """Which lines: of `component` (None: every one), at `min_level` (a logging level) or
    above, mentioning `text` (a connector's name or type, an incident, any text)."""

    component: str | None = None
    min_level: int = logging.INFO
    text: str | None = None


class LogLine(msgspec.Struct, frozen=True, kw_only=True):
    """One recorded line. `id` orders the lines (read after it to get only newer ones);
    `connector` is the connector it is about, if any (of a `workflows` line, the action's
    name: `teams.notify`); `data` the record's extra fields
    (a logged request's `body` and `headers` among them, redacted)."""

    id: int
    at: datetime
    level: str
    component: str
    connector: str | None
    message: str
    data: dict[str, Any]


def query(*, component: str | None = None, level: str = "info", text: str | None = None
          ) -> LogQuery:
    """The filters, checked: `component` one of COMPONENTS, `level` one of LEVELS (in any
    case)."""
    if component and component not in COMPONENTS:
        raise InvalidInputError(f"unknown component {component!r}; choose from"
                                f" {', '.join(COMPONENTS)}")
    if level.lower() not in LEVELS:
        raise InvalidInputError(f"unknown level {level!r}; choose from {', '.join(LEVELS)}")
    return LogQuery(component=component or None, min_level=LEVELS[level.lower()],
                    text=text)


def read(runtime: Runtime, query: LogQuery, *, since: datetime | None = None,
         after_id: int = 0, limit: int = 200) -> list[LogLine]:
    """The latest `limit` lines that match `query`, recorded at or after `since` and after
    line `after_id`, oldest first. What this process logged is written first (records are
    kept in batches), so it is among them."""
    for handler in logging.getLogger("im").handlers:
        handler.flush()
    rows = runtime.store.logs(since=since, min_level=query.min_level,
                              component=query.component, text=query.text,
                              after_id=after_id, limit=limit)
    return [LogLine(**row) for row in rows]
