"""/oncalls, computed from the escalation policies, schedule layers and overrides on each call."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency

from im_pagerduty.sandbox import errors
from im_pagerduty.sandbox.api.common import Page, Query, json_response
from im_pagerduty.sandbox.core import Sandbox
from im_pagerduty.sandbox.oncall import MAX_REACH, oncalls


class OnCallController(Controller):
    path = "/oncalls"

    @get("/")
    async def list_oncalls(
        self, request: Request[Any, Any, Any], sandbox: NamedDependency[Sandbox]
    ) -> Response[bytes]:
        query = Query(request)
        page = Page.from_query(query, sandbox.settings.offset_ceiling)
        now = sandbox.clock.now()
        since = query.time("since") or now
        until = query.time("until") or max(now, since)
        if until < since:
            raise errors.invalid_since_until("until must not be before since")
        # Shifts are rendered at most 90 days ahead.
        until = min(until, since + MAX_REACH)
        found = oncalls(
            sandbox.store,
            since,
            until,
            escalation_policy_ids=frozenset(query.strings("escalation_policy_ids[]")),
            schedule_ids=frozenset(query.strings("schedule_ids[]")),
            user_ids=frozenset(query.strings("user_ids[]")),
            earliest=query.boolean("earliest"),
        )
        includes = query.includes()
        renderer = sandbox.renderer()
        return json_response(page.body("oncalls", found, lambda o: renderer.oncall(o, includes)))
