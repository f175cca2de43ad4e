"""/_sandbox/: controls and inspection for tests and demos. No token; loopback clients only
(see edge.py). Not part of Slack's API, so errors here use plain `{"detail": ...}` bodies."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post, put
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException
from litestar.params import FromPath

from im_slack.sandbox.config import RuntimeSettings, SeedUser, apply_settings
from im_slack.sandbox.core import Sandbox
from im_slack.sandbox.faults import Faults
from im_slack.sandbox.outgoing import Interaction, SlashCommand, ViewSubmission
from im_slack.sandbox.workspace import Channel

T = TypeVar("T", bound=msgspec.Struct)


def _json(body: Any, status: int = 200) -> Response[bytes]:
    return Response(content=msgspec.json.encode(body), status_code=status,
                    media_type="application/json")


async def _read(request: Request[Any, Any, Any], kind: type[T]) -> T:
    raw = await request.body()
    try:
        return msgspec.json.decode(raw or b"{}", type=kind)
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        raise HTTPException(status_code=400, detail=str(exc)) from None


class FaultChanges(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """PATCH /_sandbox/faults: every field of Faults, optional."""

    error_rate: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    error_status: Annotated[int, msgspec.Meta(ge=500, le=599)] | None = None
    latency_ms: Annotated[float, msgspec.Meta(ge=0, le=60_000)] | None = None
    late_answer_ms: Annotated[float, msgspec.Meta(ge=0, le=60_000)] | None = None
    burst_5xx: Annotated[int, msgspec.Meta(ge=0)] | None = None
    burst_status: Annotated[int, msgspec.Meta(ge=500, le=599)] | None = None
    storm_429: Annotated[int, msgspec.Meta(ge=0)] | None = None
    storm_429_retry_after: Annotated[int, msgspec.Meta(ge=0)] | None = None
    drop_connections: Annotated[int, msgspec.Meta(ge=0)] | None = None
    drop_rate: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    methods: tuple[str, ...] | None = None
    seed: int | None = None


def _channel_state(channel: Channel) -> dict[str, Any]:
    """Everything about a channel, its threads included (conversations.history leaves out
    replies, and needs the bot in the channel)."""
    return {
        **channel.render(num_members=True),
        "members": list(channel.members),
        "pins": list(channel.pins),
        "messages": [m.render() for m in channel.messages.values()],
    }


class ControlController(Controller):
    path = "/_sandbox"

    @get("/health")
    async def health(self, sandbox: NamedDependency[Sandbox]) -> Response[bytes]:
        return _json({"status": "ok", "base_url": sandbox.base_url})

    @post("/reset")
    async def reset(self, sandbox: NamedDependency[Sandbox]) -> Response[bytes]:
        sandbox.reset()
        return _json({"status": "reset"})

    @get("/config")
    async def get_config(self, sandbox: NamedDependency[Sandbox]) -> Response[bytes]:
        # the token and the signing secret are the caller's own: it started the sandbox
        return _json(sandbox.settings)

    @patch("/config")
    async def patch_config(self, request: Request[Any, Any, Any],
                           sandbox: NamedDependency[Sandbox]) -> Response[bytes]:
        changes = await _read(request, RuntimeSettings)
        sandbox.apply_settings(apply_settings(sandbox.settings, changes))
        return _json(sandbox.settings)

    @get("/faults")
    async def get_faults(self, sandbox: NamedDependency[Sandbox]) -> Response[bytes]:
        return _json(sandbox.faults.current)

    @put("/faults")
    async def put_faults(self, request: Request[Any, Any, Any],
                         sandbox: NamedDependency[Sandbox]) -> Response[bytes]:
        sandbox.set_faults(await _read(request, Faults))
        return _json(sandbox.faults.current)

    @patch("/faults")
    async def patch_faults(self, request: Request[Any, Any, Any],
                           sandbox: NamedDependency[Sandbox]) -> Response[bytes]:
        changes = await _read(request, FaultChanges)
        given = {k: v for k, v in msgspec.structs.asdict(changes).items() if v is not None}
        sandbox.set_faults(msgspec.structs.replace(sandbox.faults.current, **given))
        return _json(sandbox.faults.current)

    @delete("/faults", status_code=200)
    async def clear_faults(self, sandbox: NamedDependency[Sandbox]) -> Response[bytes]:
        sandbox.set_faults(Faults())
        return _json(sandbox.faults.current)

    @get("/requests")
    async def requests(self, request: Request[Any, Any, Any],
                       sandbox: NamedDependency[Sandbox]) -> Response[bytes]:
        found = sandbox.requests.select(method=request.query_params.get("method"))
        return _json({"requests": found, "count": len(found)})

    @delete("/requests", status_code=200)
    async def clear_requests(self, sandbox: NamedDependency[Sandbox]) -> Response[bytes]:
        sandbox.requests.clear()
        return _json({"requests": [], "count": 0})

    @get("/users")
    async def users(self, sandbox: NamedDependency[Sandbox]) -> Response[bytes]:
        return _json({"users": [u.render() for u in sandbox.workspace.users.values()]})

    @post("/users")
    async def add_user(self, request: Request[Any, Any, Any],
                       sandbox: NamedDependency[Sandbox]) -> Response[bytes]:
        wanted = await _read(request, SeedUser)
        try:
            user = sandbox.workspace.add_user(wanted)
        except ValueError as error:
            raise HTTPException(status_code=409, detail=str(error)) from None
        return _json({"user": user.render()}, 201)

    @get("/channels")
    async def channels(self, sandbox: NamedDependency[Sandbox]) -> Response[bytes]:
        return _json({"channels": [_channel_state(c)
                                   for c in sandbox.workspace.channels.values()]})

    @get("/channels/{channel:str}")
    async def channel(self, sandbox: NamedDependency[Sandbox],
                      channel: FromPath[str]) -> Response[bytes]:
        from im_slack.sandbox.workspace import SlackError

        try:
            found = sandbox.workspace.channel(channel)
        except SlackError:
            raise HTTPException(status_code=404, detail=f"no channel {channel}") from None
        return _json(_channel_state(found))

    @get("/ephemerals")
    async def ephemerals(self, sandbox: NamedDependency[Sandbox]) -> Response[bytes]:
        return _json({"ephemerals": sandbox.workspace.ephemerals})

    @post("/slash_commands")
    async def slash_command(self, request: Request[Any, Any, Any],
                            sandbox: NamedDependency[Sandbox]) -> Response[bytes]:
        """Send a signed slash command to the app, as Slack does when a user types one."""
        wanted = await _read(request, SlashCommand)
        try:
            body, _fields, response_url, trigger_id = sandbox.outgoing.slash_command(
                sandbox.workspace, sandbox.team_domain, wanted)
        except ValueError as error:
            raise HTTPException(status_code=400, detail=str(error)) from None
        delivery = await sandbox.outgoing.send(
            kind="slash_command", url=wanted.url, body=body,
            secret=sandbox.settings.signing_secret, timestamp=wanted.timestamp,
            timeout=sandbox.settings.app_timeout_seconds, response_url=response_url,
            trigger_id=trigger_id)
        return _json(delivery)

    @post("/interactions")
    async def interaction(self, request: Request[Any, Any, Any],
                          sandbox: NamedDependency[Sandbox]) -> Response[bytes]:
        """Send a signed `block_actions` payload, as Slack does when a user clicks a button."""
        wanted = await _read(request, Interaction)
        try:
            body, _payload, response_url, trigger_id = sandbox.outgoing.interaction(
                sandbox.workspace, sandbox.team_domain, wanted)
        except ValueError as error:
            raise HTTPException(status_code=400, detail=str(error)) from None
        delivery = await sandbox.outgoing.send(
            kind="block_actions", url=wanted.url, body=body,
            secret=sandbox.settings.signing_secret, timestamp=wanted.timestamp,
            timeout=sandbox.settings.app_timeout_seconds, response_url=response_url,
            trigger_id=trigger_id)
        return _json(delivery)

    @post("/view_submissions")
    async def view_submission(self, request: Request[Any, Any, Any],
                              sandbox: NamedDependency[Sandbox]) -> Response[bytes]:
        """Send a signed `view_submission` payload, as Slack does when a user submits a modal
        the app opened (views.open) with the values given."""
        wanted = await _read(request, ViewSubmission)
        try:
            body, _payload, trigger_id = sandbox.outgoing.view_submission(
                sandbox.workspace, sandbox.team_domain, wanted)
        except ValueError as error:
            raise HTTPException(status_code=400, detail=str(error)) from None
        delivery = await sandbox.outgoing.send(
            kind="view_submission", url=wanted.url, body=body,
            secret=sandbox.settings.signing_secret, timestamp=wanted.timestamp,
            timeout=sandbox.settings.app_timeout_seconds, response_url="",
            trigger_id=trigger_id)
        sandbox.outgoing.after_submission(sandbox.workspace, wanted.view_id, delivery)
        return _json(delivery)

    @get("/views")
    async def views(self, sandbox: NamedDependency[Sandbox]) -> Response[bytes]:
        """The modals the app opened, each with `closed` and the values submitted."""
        return _json({"views": [{**view.render(), "user_id": view.user_id,
                                 "closed": view.closed}
                                for view in sandbox.workspace.views.values()]})

    @get("/deliveries")
    async def deliveries(self, sandbox: NamedDependency[Sandbox]) -> Response[bytes]:
        found = sandbox.outgoing.deliveries
        return _json({"deliveries": found, "count": len(found)})

    @get("/responses")
    async def responses(self, sandbox: NamedDependency[Sandbox]) -> Response[bytes]:
        """What the app posted to response_urls."""
        found = sandbox.outgoing.responses
        return _json({"responses": found, "count": len(found)})
