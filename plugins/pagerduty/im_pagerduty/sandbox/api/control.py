"""/_sandbox/: controls for tests and demos. No API key; loopback clients only (see edge.py).

Not part of PagerDuty's API, so errors here use plain `{"detail": ...}` bodies.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.exceptions import HTTPException

from im_pagerduty.sandbox.config import RuntimeSettings, apply_settings
from im_pagerduty.sandbox.core import Sandbox
from im_pagerduty.sandbox.errors import PagerDutyError
from im_pagerduty.sandbox.faults import Faults
from im_pagerduty.sandbox.model import User
from im_pagerduty.sandbox.seed import SeedName
from im_pagerduty.sandbox.times import format_time

T = TypeVar("T", bound=msgspec.Struct)


def _json(body: Any, status: int = 200) -> Response[bytes]:
    return Response(
        content=msgspec.json.encode(body), status_code=status, media_type="application/json"
    )


async def _read(request: Request[Any, Any, Any], kind: type[T]) -> T:
    raw = await request.body()
    try:
        return msgspec.json.decode(raw or b"{}", type=kind)
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        raise HTTPException(status_code=400, detail=str(exc)) from None


class ResetRequest(msgspec.Struct, frozen=True, kw_only=True):
    seed: SeedName | None = None


class FaultChanges(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """PATCH /_sandbox/faults: every field of Faults, optional."""

    error_rate: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    error_status: Annotated[int, msgspec.Meta(ge=500, le=599)] | None = None
    latency_ms: Annotated[float, msgspec.Meta(ge=0, le=60_000)] | None = None
    burst_5xx: Annotated[int, msgspec.Meta(ge=0)] | None = None
    burst_status: Annotated[int, msgspec.Meta(ge=500, le=599)] | None = None
    storm_429: Annotated[int, msgspec.Meta(ge=0)] | None = None
    storm_429_headers: bool | None = None
    storm_429_reset_seconds: Annotated[int, msgspec.Meta(ge=0)] | None = None
    drop_connections: Annotated[int, msgspec.Meta(ge=0)] | None = None
    drop_rate: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    late_answer_rate: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    late_answer_ms: Annotated[float, msgspec.Meta(ge=0, le=60_000)] | None = None
    paths: tuple[str, ...] | None = None
    webhooks: Literal["deliver", "paused", "failing"] | None = None
    webhook_duplicates: bool | None = None
    seed: int | None = None


class WaitRequest(msgspec.Struct, frozen=True, kw_only=True):
    timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=120)] = 5.0


class RotateRequest(msgspec.Struct, frozen=True, kw_only=True):
    # How long the old secret keeps signing; None: until end_rotation is called.
    grace_seconds: Annotated[float, msgspec.Meta(ge=0)] | None = None


class BulkIncidents(msgspec.Struct, frozen=True, kw_only=True):
    count: Annotated[int, msgspec.Meta(ge=1, le=100_000)]
    service_id: str = "PXXXXXX"
    title: str = "Load test incident"
    status: Literal["triggered", "acknowledged", "resolved"] = "resolved"
    urgency: Literal["high", "low"] = "high"
    # created_at is spread evenly over this many seconds, ending now.
    span_seconds: Annotated[float, msgspec.Meta(ge=0)] = 7 * 86400
    announce: bool = False


class PrioritiesRequest(msgspec.Struct, frozen=True, kw_only=True):
    # Most severe first, as PagerDuty lists them; [] is an account without priorities enabled.
    priorities: tuple[Annotated[str, msgspec.Meta(min_length=1)], ...]


class BulkUsers(msgspec.Struct, frozen=True, kw_only=True):
    # a big account: "Bulk User N" <user.N@bulk.company.com>, ids PB00001 on; they sort
    # before the seeded users, so a listing of them all would pass the 10,000 offset cap
    count: Annotated[int, msgspec.Meta(ge=1, le=99_999)]


class ResponderReply(msgspec.Struct, frozen=True, kw_only=True):
    # a requested responder's answer, given in PagerDuty's app or web UI
    user_id: str
    state: Literal["joined", "declined"]


class ClockRequest(msgspec.Struct, frozen=True, kw_only=True):
    advance_seconds: Annotated[float, msgspec.Meta(ge=0)]


def _subscription_or_404(sandbox: Sandbox, subscription_id: str) -> Any:
    sub = sandbox.store.subscriptions.get(subscription_id)
    if sub is None:
        raise HTTPException(status_code=404, detail=f"no webhook subscription {subscription_id}")
    return sub


class ControlController(Controller):
    path = "/_sandbox"

    @get("/health")
    async def health(self, sandbox: NamedDependency[Sandbox]) -> Response[bytes]:
        return _json({"status": "ok", "base_url": sandbox.base_url, "seed": sandbox.seed_name})

    @post("/reset")
    async def reset(
        self, request: Request[Any, Any, Any], sandbox: NamedDependency[Sandbox]
    ) -> Response[bytes]:
        wanted = await _read(request, ResetRequest)
        sandbox.reset(wanted.seed)
        return _json({"status": "reset", "seed": sandbox.seed_name})

    @get("/config")
    async def get_config(self, sandbox: NamedDependency[Sandbox]) -> Response[bytes]:
        return _json(sandbox.settings)

    @patch("/config")
    async def patch_config(
        self, request: Request[Any, Any, Any], sandbox: NamedDependency[Sandbox]
    ) -> Response[bytes]:
        changes = await _read(request, RuntimeSettings)
        try:
            settings = apply_settings(sandbox.settings, changes)
        except ValueError as error:
            raise HTTPException(status_code=400, detail=str(error)) from None
        sandbox.apply_settings(settings)
        return _json(sandbox.settings)

    @get("/faults")
    async def get_faults(self, sandbox: NamedDependency[Sandbox]) -> Response[bytes]:
        return _json(sandbox.faults.current)

    @put("/faults")
    async def put_faults(
        self, request: Request[Any, Any, Any], sandbox: NamedDependency[Sandbox]
    ) -> Response[bytes]:
        sandbox.set_faults(await _read(request, Faults))
        return _json(sandbox.faults.current)

    @patch("/faults")
    async def patch_faults(
        self, request: Request[Any, Any, Any], sandbox: NamedDependency[Sandbox]
    ) -> Response[bytes]:
        changes = await _read(request, FaultChanges)
        given = {k: v for k, v in msgspec.structs.asdict(changes).items() if v is not None}
        sandbox.set_faults(msgspec.structs.replace(sandbox.faults.current, **given))
        return _json(sandbox.faults.current)

    @delete("/faults", status_code=200)
    async def clear_faults(self, sandbox: NamedDependency[Sandbox]) -> Response[bytes]:
        sandbox.set_faults(Faults())
        return _json(sandbox.faults.current)

    @get("/requests")
    async def requests(
        self, request: Request[Any, Any, Any], sandbox: NamedDependency[Sandbox]
    ) -> Response[bytes]:
        params = request.query_params
        found = sandbox.requests.select(method=params.get("method"), path=params.get("path"))
        return _json({"requests": found, "count": len(found)})

    @delete("/requests", status_code=200)
    async def clear_requests(self, sandbox: NamedDependency[Sandbox]) -> Response[bytes]:
        sandbox.requests.clear()
        return _json({"requests": [], "count": 0})

    @get("/webhooks/deliveries")
    async def deliveries(
        self, request: Request[Any, Any, Any], sandbox: NamedDependency[Sandbox]
    ) -> Response[bytes]:
        params = request.query_params
        found = [
            a
            for a in sandbox.webhooks.attempts
            if params.get("subscription_id") in (None, a.subscription_id)
            and params.get("event_type") in (None, a.event_type)
            and params.get("outcome") in (None, a.outcome)
        ]
        return _json(
            {"deliveries": found, "count": len(found), "pending": sandbox.webhooks.pending()}
        )

    @get("/webhooks/events")
    async def events(
        self, request: Request[Any, Any, Any], sandbox: NamedDependency[Sandbox]
    ) -> Response[bytes]:
        event_type = request.query_params.get("event_type")
        found = [e for e in sandbox.webhooks.published if event_type in (None, e.event_type)]
        return _json({"events": found, "count": len(found)})

    @delete("/webhooks", status_code=200)
    async def clear_webhook_logs(self, sandbox: NamedDependency[Sandbox]) -> Response[bytes]:
        sandbox.webhooks.attempts.clear()
        sandbox.webhooks.published.clear()
        return _json({"deliveries": [], "events": []})

    @post("/webhooks/wait")
    async def wait(
        self, request: Request[Any, Any, Any], sandbox: NamedDependency[Sandbox]
    ) -> Response[bytes]:
        """Answers once no delivery is queued or being retried, or when the timeout passes."""
        wanted = await _read(request, WaitRequest)
        idle = await sandbox.webhooks.wait_idle(wanted.timeout_seconds)
        return _json({"idle": idle, "pending": sandbox.webhooks.pending()})

    @post("/webhook_subscriptions/{subscription_id:str}/rotate_secret")
    async def rotate_secret(
        self,
        request: Request[Any, Any, Any],
        sandbox: NamedDependency[Sandbox],
        subscription_id: FromPath[str],
    ) -> Response[bytes]:
        sub = _subscription_or_404(sandbox, subscription_id)
        wanted = await _read(request, RotateRequest)
        until = (
            sandbox.clock.now() + timedelta(seconds=wanted.grace_seconds)
            if wanted.grace_seconds is not None
            else None
        )
        rotated = msgspec.structs.replace(
            sub,
            secret=sandbox.store.ids.secret(),
            previous_secret=sub.secret,
            previous_secret_until=until,
        )
        sandbox.store.put_subscription(rotated)
        return _json(
            {
                "secret": rotated.secret,
                "previous_secret_until": format_time(until) if until else None,
            }
        )

    @post("/webhook_subscriptions/{subscription_id:str}/end_rotation")
    async def end_rotation(
        self, sandbox: NamedDependency[Sandbox], subscription_id: FromPath[str]
    ) -> Response[bytes]:
        sub = _subscription_or_404(sandbox, subscription_id)
        sandbox.store.put_subscription(
            msgspec.structs.replace(sub, previous_secret=None, previous_secret_until=None)
        )
        return _json({"status": "rotation ended"})

    @post("/incidents/bulk")
    async def bulk_incidents(
        self, request: Request[Any, Any, Any], sandbox: NamedDependency[Sandbox]
    ) -> Response[bytes]:
        wanted = await _read(request, BulkIncidents)
        if wanted.service_id not in sandbox.store.services:
            raise HTTPException(status_code=400, detail=f"no service {wanted.service_id}")
        now = sandbox.clock.now()
        span = timedelta(seconds=wanted.span_seconds)
        created = sandbox.incidents.bulk_create(
            count=wanted.count,
            service_id=wanted.service_id,
            title=wanted.title,
            status=wanted.status,
            urgency=wanted.urgency,
            first_created_at=now - span,
            spacing=span / wanted.count,
            agent_user_id=sandbox.account_owner_id,
            announce=wanted.announce,
        )
        return _json(
            {
                "created": len(created),
                "first": {"id": created[0].id, "number": created[0].number},
                "last": {"id": created[-1].id, "number": created[-1].number},
            },
            201,
        )

    @post("/incidents/{incident_id:str}/responders")
    async def responder_reply(
        self,
        request: Request[Any, Any, Any],
        sandbox: NamedDependency[Sandbox],
        incident_id: FromPath[str],
    ) -> Response[bytes]:
        """A requested responder joins or declines (`incident.responder.replied`, with
        `client` PagerDuty: the answer is given in PagerDuty's app or web UI). PagerDuty's REST
        API has no route for a reply, so this stands for it; the request itself is PagerDuty's
        own `POST /incidents/{id}/responder_requests`."""
        wanted = await _read(request, ResponderReply)
        if incident_id not in sandbox.store.incidents:
            raise HTTPException(status_code=404, detail=f"no incident {incident_id}")
        try:
            responder = sandbox.incidents.responder_reply(
                incident_id, wanted.user_id, wanted.state
            )
        except PagerDutyError as error:
            raise HTTPException(status_code=400, detail="; ".join(error.errors)) from None
        return _json({"incident": incident_id, "user": responder.user_id,
                      "state": responder.state})

    @put("/priorities")
    async def put_priorities(
        self, request: Request[Any, Any, Any], sandbox: NamedDependency[Sandbox]
    ) -> Response[bytes]:
        """The account's priorities as its admins set them: renamed, more or fewer, or none
        (not enabled). A priority keeps its id where its rank stays, as a rename does."""
        wanted = await _read(request, PrioritiesRequest)
        if len({name.lower() for name in wanted.priorities}) < len(wanted.priorities):
            raise HTTPException(status_code=400, detail="priority names repeat")
        sandbox.store.set_priorities(wanted.priorities)
        ordered = sorted(sandbox.store.priorities.values(), key=lambda p: p.order)
        return _json({"priorities": [{"id": p.id, "name": p.name} for p in ordered]})

    @post("/users/bulk")
    async def bulk_users(
        self, request: Request[Any, Any, Any], sandbox: NamedDependency[Sandbox]
    ) -> Response[bytes]:
        wanted = await _read(request, BulkUsers)
        store = sandbox.store
        first = sum(1 for user_id in store.users if user_id.startswith("PB")) + 1
        if first + wanted.count - 1 > 99_999:
            raise HTTPException(status_code=400, detail="at most 99,999 bulk users")
        for n in range(first, first + wanted.count):
            store.put_user(User(id=f"PB{n:05d}", name=f"Bulk User {n}",
                                email=f"user.{n}@bulk.company.com"))
        return _json({"created": wanted.count, "users": len(store.users)}, 201)

    @get("/clock")
    async def get_clock(self, sandbox: NamedDependency[Sandbox]) -> Response[bytes]:
        return _json(
            {
                "now": format_time(sandbox.clock.now()),
                "offset_seconds": sandbox.clock.offset.total_seconds(),
            }
        )

    @post("/clock")
    async def advance_clock(
        self, request: Request[Any, Any, Any], sandbox: NamedDependency[Sandbox]
    ) -> Response[bytes]:
        wanted = await _read(request, ClockRequest)
        sandbox.clock.advance(wanted.advance_seconds)
        steps = sandbox.incidents.escalate_due()
        return _json(
            {
                "now": format_time(sandbox.clock.now()),
                "offset_seconds": sandbox.clock.offset.total_seconds(),
                "escalations": steps,
            }
        )
