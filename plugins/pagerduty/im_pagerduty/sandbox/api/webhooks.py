"""/webhook_subscriptions: the secret is shown once, at creation; ping sends `pagey.ping`."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, Response, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath

from im_pagerduty.sandbox import errors
from im_pagerduty.sandbox.api.common import Page, Query, json_response, read_json
from im_pagerduty.sandbox.core import Sandbox
from im_pagerduty.sandbox.events import SUBSCRIBABLE_EVENT_TYPES
from im_pagerduty.sandbox.ids import event_id
from im_pagerduty.sandbox.model import CustomHeader, WebhookSubscription
from im_pagerduty.sandbox.requests import CreateSubscriptionBody, FilterIn, UpdateSubscriptionBody

# Up to 10 subscriptions per service, team or account scope.
MAX_PER_SCOPE = 10


def _check_events(events: list[str]) -> tuple[str, ...]:
    if not events or len(set(events)) != len(events):
        raise errors.invalid_input("events must list at least one event type, each once")
    unknown = [e for e in events if e not in SUBSCRIBABLE_EVENT_TYPES]
    if unknown:
        raise errors.invalid_input(f"Unknown event types: {', '.join(unknown)}")
    return tuple(events)


def _check_filter(sandbox: NamedDependency[Sandbox], filter_: FilterIn) -> None:
    if filter_.type == "account_reference":
        return
    if not filter_.id:
        raise errors.invalid_input("filter.id is required unless filter.type is account_reference")
    if filter_.type == "service_reference" and filter_.id not in sandbox.store.services:
        raise errors.invalid_input("Service not found")


def _subscription(sandbox: Sandbox, subscription_id: str) -> WebhookSubscription:
    sub = sandbox.store.subscriptions.get(subscription_id)
    if sub is None:
        raise errors.not_found("Webhook Subscription Not Found", 5001)
    return sub


class WebhookSubscriptionController(Controller):
    path = "/webhook_subscriptions"

    @post("/")
    async def create(
        self, request: Request[Any, Any, Any], sandbox: NamedDependency[Sandbox]
    ) -> Response[bytes]:
        wanted = (await read_json(request, CreateSubscriptionBody)).webhook_subscription
        events = _check_events(wanted.events)
        _check_filter(sandbox, wanted.filter)
        if not wanted.delivery_method.url.startswith(("http://", "https://")):
            raise errors.invalid_input("delivery_method.url must be an http(s) URL")
        store = sandbox.store
        scope = (
            wanted.filter.type,
            wanted.filter.id if wanted.filter.type != "account_reference" else None,
        )
        in_scope = [
            s for s in store.subscriptions.values() if (s.filter_type, s.filter_id) == scope
        ]
        if len(in_scope) >= MAX_PER_SCOPE:
            raise errors.PagerDutyError(400, "Product Limit Reached", 2019)
        sub = WebhookSubscription(
            id=store.ids.object_id(),
            delivery_method_id=store.ids.object_id(),
            url=wanted.delivery_method.url,
            custom_headers=tuple(
                CustomHeader(name=h.name, value=h.value)
                for h in wanted.delivery_method.custom_headers
            ),
            description=wanted.description,
            events=events,
            filter_type=wanted.filter.type,
            filter_id=scope[1],
            active=wanted.active,
            secret=store.ids.secret(),
        )
        store.put_subscription(sub)
        return json_response(
            {"webhook_subscription": sandbox.renderer().subscription(sub, reveal=True)}, 200
        )

    @get("/")
    async def list_subscriptions(
        self, request: Request[Any, Any, Any], sandbox: NamedDependency[Sandbox]
    ) -> Response[bytes]:
        query = Query(request)
        page = Page.from_query(query, sandbox.settings.offset_ceiling)
        filter_type, filter_id = query.text("filter_type"), query.text("filter_id")
        if filter_type not in (None, "account", "service", "team"):
            raise errors.invalid_input("filter_type must be account, service or team")
        subs = [
            s
            for s in sandbox.store.subscriptions.values()
            if (filter_type is None or s.filter_type == f"{filter_type}_reference")
            and (filter_id is None or s.filter_id == filter_id)
        ]
        renderer = sandbox.renderer()
        return json_response(page.body("webhook_subscriptions", subs, renderer.subscription))

    @get("/{subscription_id:str}")
    async def get_subscription(
        self, sandbox: NamedDependency[Sandbox], subscription_id: FromPath[str]
    ) -> Response[bytes]:
        sub = _subscription(sandbox, subscription_id)
        return json_response({"webhook_subscription": sandbox.renderer().subscription(sub)})

    @put("/{subscription_id:str}")
    async def update_subscription(
        self,
        request: Request[Any, Any, Any],
        sandbox: NamedDependency[Sandbox],
        subscription_id: FromPath[str],
    ) -> Response[bytes]:
        sub = _subscription(sandbox, subscription_id)
        changes = (await read_json(request, UpdateSubscriptionBody)).webhook_subscription
        fields: dict[str, Any] = {}
        if changes.description is not None:
            fields["description"] = changes.description
        if changes.events is not None:
            fields["events"] = _check_events(changes.events)
        if changes.active is not None:
            fields["active"] = changes.active
        if changes.filter is not None:
            _check_filter(sandbox, changes.filter)
            fields["filter_type"] = changes.filter.type
            fields["filter_id"] = (
                changes.filter.id if changes.filter.type != "account_reference" else None
            )
        sub = msgspec.structs.replace(sub, **fields)
        sandbox.store.put_subscription(sub)
        return json_response({"webhook_subscription": sandbox.renderer().subscription(sub)})

    @delete("/{subscription_id:str}", status_code=204)
    async def delete_subscription(
        self, sandbox: NamedDependency[Sandbox], subscription_id: FromPath[str]
    ) -> None:
        _subscription(sandbox, subscription_id)
        del sandbox.store.subscriptions[subscription_id]

    @post("/{subscription_id:str}/ping", status_code=202)
    async def ping(
        self, sandbox: NamedDependency[Sandbox], subscription_id: FromPath[str]
    ) -> Response[bytes]:
        sub = _subscription(sandbox, subscription_id)
        event = sandbox.event_maker().ping_event(
            event_id(), sandbox.account_owner_id, sandbox.clock.now()
        )
        sandbox.webhooks.ping(sub, event)
        return Response(content=b"", status_code=202)

    @post("/{subscription_id:str}/enable", status_code=200)
    async def enable(
        self, sandbox: NamedDependency[Sandbox], subscription_id: FromPath[str]
    ) -> Response[bytes]:
        sub = msgspec.structs.replace(
            _subscription(sandbox, subscription_id), temporarily_disabled=False, consecutive_drops=0
        )
        sandbox.store.put_subscription(sub)
        return json_response({"webhook_subscription": sandbox.renderer().subscription(sub)})
