"""/log_entries: the account's log, newest first, as PagerDuty lists it."""

from __future__ import annotations

import bisect
from typing import Any

from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath

from im_pagerduty.sandbox import errors
from im_pagerduty.sandbox.api.common import Page, Query, json_response
from im_pagerduty.sandbox.core import Sandbox

# What `is_overview=true` keeps: the entries that change an incident's state.
OVERVIEW_TYPES = frozenset(
    {
        "trigger_log_entry",
        "acknowledge_log_entry",
        "unacknowledge_log_entry",
        "resolve_log_entry",
        "escalate_log_entry",
        "delegate_log_entry",
    }
)


def log_entries_body(
    sandbox: NamedDependency[Sandbox], query: Query, entry_ids: list[str]
) -> dict[str, Any]:
    page = Page.from_query(query, sandbox.settings.offset_ceiling)
    since, until = query.time("since"), query.time("until")
    if since and until and until < since:
        raise errors.invalid_since_until("until must not be before since")
    overview = query.boolean("is_overview")
    includes = query.includes()
    store = sandbox.store
    first, last = 0, len(entry_ids)
    if entry_ids is store.log_order:  # the account's log, in time order: only the range
        first = bisect.bisect_left(store.log_times, since) if since else 0
        last = bisect.bisect_left(store.log_times, until) if until else last
    entries = []
    for entry_id in reversed(entry_ids[first:last]):
        entry = store.log_entries[entry_id]
        if since and entry.created_at < since:
            continue
        if until and entry.created_at >= until:
            continue
        if overview and entry.type not in OVERVIEW_TYPES:
            continue
        entries.append(entry)
    renderer = sandbox.renderer()
    return page.body("log_entries", entries, lambda e: renderer.log_entry(e, includes))


class LogEntryController(Controller):
    path = "/log_entries"

    @get("/")
    async def list_log_entries(
        self, request: Request[Any, Any, Any], sandbox: NamedDependency[Sandbox]
    ) -> Response[bytes]:
        return json_response(log_entries_body(sandbox, Query(request), sandbox.store.log_order))

    @get("/{entry_id:str}")
    async def get_log_entry(
        self,
        request: Request[Any, Any, Any],
        sandbox: NamedDependency[Sandbox],
        entry_id: FromPath[str],
    ) -> Response[bytes]:
        entry = sandbox.store.log_entries.get(entry_id)
        if entry is None:
            raise errors.not_found()
        includes = Query(request).includes()
        return json_response({"log_entry": sandbox.renderer().log_entry(entry, includes)})
