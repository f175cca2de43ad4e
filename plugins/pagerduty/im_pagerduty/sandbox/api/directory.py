"""The account's directory: services, users, escalation policies, schedules, priorities."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath

from im_pagerduty.sandbox import errors
from im_pagerduty.sandbox.api.common import Page, Query, json_response, read_json
from im_pagerduty.sandbox.core import Sandbox
from im_pagerduty.sandbox.model import Override
from im_pagerduty.sandbox.requests import CreateOverridesBody
from im_pagerduty.sandbox.times import format_time, parse_time

# GET /schedules/{id} renders two weeks when no window is given.
DEFAULT_SCHEDULE_WINDOW = timedelta(days=14)


def _matches(query: str | None, *fields: str) -> bool:
    return query is None or any(query.lower() in field.lower() for field in fields)


class ServiceController(Controller):
    path = "/services"

    @get("/")
    async def list_services(
        self, request: Request[Any, Any, Any], sandbox: NamedDependency[Sandbox]
    ) -> Response[bytes]:
        query = Query(request)
        page = Page.from_query(query, sandbox.settings.offset_ceiling)
        text, name = query.text("query"), query.text("name")
        if query.strings("team_ids[]"):
            services = []
        else:
            services = sorted(
                (
                    s
                    for s in sandbox.store.services.values()
                    if _matches(text, s.name) and (name is None or s.name == name)
                ),
                key=lambda s: s.name.lower(),
                reverse=query.text("sort_by") == "name:desc",
            )
        includes = query.includes()
        renderer = sandbox.renderer()
        return json_response(
            page.body("services", services, lambda s: renderer.service(s, includes))
        )

    @get("/{service_id:str}")
    async def get_service(
        self,
        request: Request[Any, Any, Any],
        sandbox: NamedDependency[Sandbox],
        service_id: FromPath[str],
    ) -> Response[bytes]:
        service = sandbox.store.services.get(service_id)
        if service is None:
            raise errors.not_found("Service Not Found", 5002)
        return json_response(
            {"service": sandbox.renderer().service(service, Query(request).includes())}
        )


class UserController(Controller):
    path = "/users"

    @get("/")
    async def list_users(
        self, request: Request[Any, Any, Any], sandbox: NamedDependency[Sandbox]
    ) -> Response[bytes]:
        query = Query(request)
        page = Page.from_query(query, sandbox.settings.offset_ceiling)
        text = query.text("query")
        # `query` matches name or email, as PagerDuty's own client relies on.
        users = [u for u in sandbox.store.users.values() if _matches(text, u.name, u.email)]
        if query.strings("team_ids[]"):
            users = []
        users.sort(key=lambda u: u.name.lower())
        renderer = sandbox.renderer()
        return json_response(page.body("users", users, renderer.user))

    @get("/me")
    async def current_user(self) -> Response[bytes]:
        # The sandbox's API keys are account-level keys, with which PagerDuty answers this
        # route 400: it is for user-level keys and OAuth tokens only.
        raise errors.invalid_input(
            "GET /users/me needs a user-level API key or an OAuth token; this request was"
            " made with an account-level API key")

    @get("/{user_id:str}")
    async def get_user(
        self, sandbox: NamedDependency[Sandbox], user_id: FromPath[str]
    ) -> Response[bytes]:
        user = sandbox.store.users.get(user_id)
        if user is None:
            raise errors.not_found("User Not Found", 2013)
        return json_response({"user": sandbox.renderer().user(user)})


class EscalationPolicyController(Controller):
    path = "/escalation_policies"

    @get("/")
    async def list_policies(
        self, request: Request[Any, Any, Any], sandbox: NamedDependency[Sandbox]
    ) -> Response[bytes]:
        query = Query(request)
        page = Page.from_query(query, sandbox.settings.offset_ceiling)
        text = query.text("query")
        user_ids = frozenset(query.strings("user_ids[]"))
        store = sandbox.store

        def targets_user(policy_id: str) -> bool:
            policy = store.escalation_policies[policy_id]
            for rule in policy.rules:
                for target in rule.targets:
                    if target.kind == "user" and target.id in user_ids:
                        return True
                    schedule = store.schedules.get(target.id) if target.kind == "schedule" else None
                    if schedule and any(
                        user_ids.intersection(layer.user_ids) for layer in schedule.layers
                    ):
                        return True
            return False

        policies = [
            p
            for p in store.escalation_policies.values()
            if _matches(text, p.name) and (not user_ids or targets_user(p.id))
        ]
        if query.strings("team_ids[]"):
            policies = []
        policies.sort(key=lambda p: p.name.lower(), reverse=query.text("sort_by") == "name:desc")
        includes = query.includes()
        renderer = sandbox.renderer()
        return json_response(
            page.body(
                "escalation_policies", policies, lambda p: renderer.escalation_policy(p, includes)
            )
        )

    @get("/{policy_id:str}")
    async def get_policy(
        self,
        request: Request[Any, Any, Any],
        sandbox: NamedDependency[Sandbox],
        policy_id: FromPath[str],
    ) -> Response[bytes]:
        policy = sandbox.store.escalation_policies.get(policy_id)
        if policy is None:
            raise errors.not_found("Escalation Policy Not Found", 5001)
        body = sandbox.renderer().escalation_policy(policy, Query(request).includes())
        return json_response({"escalation_policy": body})


class ScheduleController(Controller):
    path = "/schedules"

    @get("/")
    async def list_schedules(
        self, request: Request[Any, Any, Any], sandbox: NamedDependency[Sandbox]
    ) -> Response[bytes]:
        query = Query(request)
        page = Page.from_query(query, sandbox.settings.offset_ceiling)
        text = query.text("query")
        schedules = [s for s in sandbox.store.schedules.values() if _matches(text, s.name)]
        if query.strings("team_ids[]"):
            schedules = []
        schedules.sort(key=lambda s: s.name.lower())
        renderer = sandbox.renderer()
        return json_response(page.body("schedules", schedules, renderer.schedule))

    @get("/{schedule_id:str}")
    async def get_schedule(
        self,
        request: Request[Any, Any, Any],
        sandbox: NamedDependency[Sandbox],
        schedule_id: FromPath[str],
    ) -> Response[bytes]:
        schedule = sandbox.store.schedules.get(schedule_id)
        if schedule is None:
            raise errors.not_found("Schedule Not Found", 2100)
        query = Query(request)
        since = query.time("since") or sandbox.clock.now()
        until = query.time("until") or since + DEFAULT_SCHEDULE_WINDOW
        if until < since:
            raise errors.invalid_since_until("until must not be before since")
        return json_response({"schedule": sandbox.renderer().schedule(schedule, (since, until))})

    @get("/{schedule_id:str}/overrides")
    async def list_overrides(
        self,
        request: Request[Any, Any, Any],
        sandbox: NamedDependency[Sandbox],
        schedule_id: FromPath[str],
    ) -> Response[bytes]:
        schedule = sandbox.store.schedules.get(schedule_id)
        if schedule is None:
            raise errors.not_found("Schedule Not Found", 2100)
        query = Query(request)
        since, until = query.time("since"), query.time("until")
        if since is None or until is None:
            raise errors.invalid_input("since and until are required")
        renderer = sandbox.renderer()
        overrides = [o for o in schedule.overrides if o.end > since and o.start < until]
        return json_response(
            {
                "overrides": [
                    {
                        "id": o.id,
                        "start": format_time(o.start),
                        "end": format_time(o.end),
                        "user": renderer.user_ref(o.user_id),
                    }
                    for o in overrides
                ]
            }
        )

    @post("/{schedule_id:str}/overrides")
    async def create_overrides(
        self,
        request: Request[Any, Any, Any],
        sandbox: NamedDependency[Sandbox],
        schedule_id: FromPath[str],
    ) -> Response[bytes]:
        store = sandbox.store
        schedule = store.schedules.get(schedule_id)
        if schedule is None:
            raise errors.not_found("Schedule Not Found", 2100)
        body = await read_json(request, CreateOverridesBody)
        created = []
        for wanted in body.overrides:
            try:
                start, end = parse_time(wanted.start), parse_time(wanted.end)
            except ValueError:
                raise errors.invalid_input("start and end must be ISO 8601 times") from None
            if end <= start:
                raise errors.invalid_input("end must be after start")
            if (wanted.user.id or "") not in store.users:
                raise errors.invalid_input("User not found")
            created.append(
                Override(
                    id=store.ids.object_id(), start=start, end=end, user_id=wanted.user.id or ""
                )
            )
        store.put_schedule(
            msgspec.structs.replace(schedule, overrides=(*schedule.overrides, *created))
        )
        renderer = sandbox.renderer()
        return json_response(
            [
                {
                    "status": 201,
                    "override": {
                        "id": o.id,
                        "start": format_time(o.start),
                        "end": format_time(o.end),
                        "user": renderer.user_ref(o.user_id),
                    },
                }
                for o in created
            ],
            201,
        )


class PriorityController(Controller):
    path = "/priorities"

    @get("/")
    async def list_priorities(
        self, request: Request[Any, Any, Any], sandbox: NamedDependency[Sandbox]
    ) -> Response[bytes]:
        page = Page.from_query(Query(request), sandbox.settings.offset_ceiling)
        priorities = sorted(sandbox.store.priorities.values(), key=lambda p: p.order)
        return json_response(page.body("priorities", priorities, sandbox.renderer().priority))
