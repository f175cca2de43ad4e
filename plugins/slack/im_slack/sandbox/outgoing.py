"""What Slack sends to an app, made on demand for tests and demos: slash commands and
interactivity payloads (a button clicked, a modal submitted), signed as Slack signs them; and
the `response_url` each carries, which the sandbox serves and records what the app posts to
it."""

from __future__ import annotations

import itertools
import json
import secrets
import time
from typing import Any
from urllib.parse import urlencode

import httpx
import msgspec

from im_slack.sandbox.signing import signed_headers
from im_slack.sandbox.workspace import TEAM_ID, SlackError, Workspace

FORM = "application/x-www-form-urlencoded"
# Slack lets a response_url be used five times within thirty minutes.
RESPONSE_URL_USES = 5
RESPONSE_URL_SECONDS = 30 * 60


class SlashCommand(msgspec.Struct, frozen=True, kw_only=True):
    url: str  # the app's Request URL
    command: str = "/incident"
    text: str = ""
    user_id: str | None = None  # default: the first person of the workspace
    channel_id: str | None = None  # default: #incidents
    # Unix seconds to sign with instead of now (an old one shows replay protection)
    timestamp: int | None = None


class Interaction(msgspec.Struct, frozen=True, kw_only=True):
    url: str
    action_id: str
    value: str = ""
    block_id: str = "actions"
    user_id: str | None = None
    channel_id: str | None = None
    message_ts: str | None = None  # the message whose button was clicked (default: latest)
    timestamp: int | None = None


class ViewSubmission(msgspec.Struct, frozen=True, kw_only=True):
    url: str
    view_id: str  # a modal the app opened (views.open)
    # what the user typed: {block_id: {action_id: text}} of the view's input blocks
    values: dict[str, dict[str, str]] = {}
    user_id: str | None = None  # default: the user the view was opened for
    timestamp: int | None = None


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    kind: str  # "slash_command", "block_actions" or "view_submission"
    url: str
    headers: dict[str, str]
    body: str
    response_url: str
    trigger_id: str
    outcome: str  # "answered", "timeout" or "unreachable"
    status: int | None = None
    answer: str | None = None
    seconds: float = 0.0


class ResponsePost(msgspec.Struct, frozen=True, kw_only=True):
    response_url: str
    kind: str
    channel_id: str
    user_id: str
    body: Any
    at: float


class _ResponseUrl(msgspec.Struct, kw_only=True):
    kind: str
    channel_id: str
    user_id: str
    message_ts: str | None
    expires: float
    uses: int = 0


class Outgoing:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self._counter = itertools.count(1)
        self._response_urls: dict[str, _ResponseUrl] = {}
        self.deliveries: list[Delivery] = []
        self.responses: list[ResponsePost] = []

    def clear(self) -> None:
        self._response_urls.clear()
        self.deliveries.clear()
        self.responses.clear()

    def _response_url(self, kind: str, channel_id: str, user_id: str,
                      message_ts: str | None) -> str:
        key = f"{next(self._counter)}/{secrets.token_hex(12)}"
        self._response_urls[key] = _ResponseUrl(kind=kind, channel_id=channel_id,
                                                 user_id=user_id, message_ts=message_ts,
                                                 expires=time.time() + RESPONSE_URL_SECONDS)
        return f"{self.base_url}/hooks/response/{key}"


    @staticmethod
    def _who(workspace: Workspace, user_id: str | None, channel_id: str | None
             ) -> tuple[str, str, str, str]:
        people = [u for u in workspace.users.values() if not u.is_bot]
        user = workspace.users.get(user_id) if user_id else (people[0] if people else None)
        if user is None:
            raise ValueError(f"no user {user_id}")
        try:
            channel = workspace.channel(channel_id or "incidents")
        except SlackError:
            raise ValueError(f"no channel {channel_id}") from None
        return user.id, user.name, channel.id, channel.name

    def slash_command(self, workspace: Workspace, team_domain: str,
                      wanted: SlashCommand) -> tuple[str, dict[str, str], str, str]:
        user_id, user_name, channel_id, channel_name = self._who(
            workspace, wanted.user_id, wanted.channel_id)
        response_url = self._response_url("slash_command", channel_id, user_id, None)
        trigger_id = workspace.issue_trigger(user_id)
        fields = {
            "token": "sandbox-verification-token",  # deprecated by Slack, still sent
            "team_id": TEAM_ID,
            "team_domain": team_domain,
            "channel_id": channel_id,
            "channel_name": channel_name,
            "user_id": user_id,
            "user_name": user_name,
            "command": wanted.command,
            "text": wanted.text,
            "api_app_id": "A0SANDBOX1",
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": trigger_id,
        }
        return urlencode(fields), fields, response_url, trigger_id

    def interaction(self, workspace: Workspace, team_domain: str,
                    wanted: Interaction) -> tuple[str, dict[str, Any], str, str]:
        user_id, user_name, channel_id, channel_name = self._who(
            workspace, wanted.user_id, wanted.channel_id)
        channel = workspace.channels[channel_id]
        ts = wanted.message_ts or next(reversed(channel.messages), None)
        message = channel.messages.get(ts) if ts else None
        if message is None:
            raise ValueError(f"no message {wanted.message_ts or '(the channel is empty)'}")
        response_url = self._response_url("block_actions", channel_id, user_id, message.ts)
        trigger_id = workspace.issue_trigger(user_id)
        payload = {
            "type": "block_actions",
            "user": {"id": user_id, "username": user_name, "name": user_name,
                     "team_id": TEAM_ID},
            "api_app_id": "A0SANDBOX1",
            "token": "sandbox-verification-token",
            "container": {"type": "message", "message_ts": message.ts,
                          "channel_id": channel_id, "is_ephemeral": False},
            "trigger_id": trigger_id,
            "team": {"id": TEAM_ID, "domain": team_domain},
            "channel": {"id": channel_id, "name": channel_name},
            "message": message.render(),
            "response_url": response_url,
            "actions": [{
                "type": "button",
                "action_id": wanted.action_id,
                "block_id": wanted.block_id,
                "value": wanted.value,
                "action_ts": workspace.new_ts(),
            }],
        }
        body = urlencode({"payload": json.dumps(payload, separators=(",", ":"))})
        return body, payload, response_url, trigger_id

    def view_submission(self, workspace: Workspace, team_domain: str,
                        wanted: ViewSubmission) -> tuple[str, dict[str, Any], str]:
        """The payload Slack sends when the user submits a modal, the values typed in its
        state; refused (ValueError) as Slack's client would not send it: a view closed or
        unknown, an input the view does not have, a required one left empty."""
        view = workspace.views.get(wanted.view_id)
        if view is None or view.closed:
            raise ValueError(f"no open view {wanted.view_id}")
        user_id = wanted.user_id or view.user_id
        user = workspace.users.get(user_id)
        if user is None:
            raise ValueError(f"no user {user_id}")
        inputs = {str(block.get("block_id")): block for block in view.body.get("blocks") or []
                  if block.get("type") == "input"}
        values: dict[str, Any] = {}
        for block_id, block in inputs.items():
            element = block.get("element") or {}
            action_id = str(element.get("action_id"))
            given = wanted.values.get(block_id, {})
            unknown = set(given) - {action_id}
            if unknown:
                raise ValueError(f"the input {block_id} has no action {sorted(unknown)[0]}")
            text = given.get(action_id)
            if not text and not block.get("optional", False):
                raise ValueError(f"the input {block_id} is required")
            values[block_id] = {action_id: {"type": element.get("type", "plain_text_input"),
                                            "value": text or None}}
        unknown_blocks = set(wanted.values) - set(inputs)
        if unknown_blocks:
            raise ValueError(f"the view has no input {sorted(unknown_blocks)[0]}")
        view.values = values
        trigger_id = workspace.issue_trigger(user_id)
        payload = {
            "type": "view_submission",
            "team": {"id": TEAM_ID, "domain": team_domain},
            "user": {"id": user.id, "username": user.name, "name": user.name,
                     "team_id": TEAM_ID},
            "api_app_id": "A0SANDBOX1",
            "token": "sandbox-verification-token",
            "trigger_id": trigger_id,
            "view": view.render(),
            "response_urls": [],
            "is_enterprise_install": False,
            "enterprise": None,
        }
        body = urlencode({"payload": json.dumps(payload, separators=(",", ":"))})
        return body, payload, trigger_id

    @staticmethod
    def after_submission(workspace: Workspace, view_id: str, delivery: Delivery) -> None:
        """What the app's answer does to the modal, as Slack reads it: HTTP 200 with an empty
        body (or `"response_action": "clear"`) closes it; `"errors"` keeps it open."""
        view = workspace.views.get(view_id)
        if view is None or delivery.status != 200:
            return
        action = None
        if delivery.answer and delivery.answer.strip():
            try:
                answer = json.loads(delivery.answer)
            except ValueError:
                answer = {}
            action = answer.get("response_action") if isinstance(answer, dict) else None
        if action in (None, "clear"):
            view.closed = True

    async def send(self, *, kind: str, url: str, body: str, secret: str, timestamp: int | None,
                   timeout: float, response_url: str, trigger_id: str) -> Delivery:
        headers = signed_headers(secret, timestamp if timestamp is not None else int(time.time()),
                                 body.encode(), FORM)
        started = time.monotonic()
        outcome, status, answer = "answered", None, None
        try:
            async with httpx.AsyncClient(timeout=timeout, trust_env=False) as client:
                response = await client.post(url, content=body.encode(), headers=headers)
            status, answer = response.status_code, response.text
        except httpx.TimeoutException:
            outcome = "timeout"
        except httpx.HTTPError:
            outcome = "unreachable"
        delivery = Delivery(kind=kind, url=url, headers=headers, body=body,
                            response_url=response_url, trigger_id=trigger_id, outcome=outcome,
                            status=status, answer=answer,
                            seconds=round(time.monotonic() - started, 3))
        self.deliveries.append(delivery)
        return delivery

    def respond(self, workspace: Workspace, key: str, body: Any) -> tuple[int, dict[str, Any]]:
        """A POST to a response_url: recorded; `in_channel` answers are posted to the channel
        and `replace_original` ones replace the message a button was clicked on."""
        url = self._response_urls.get(key)
        if url is None or url.expires < time.time():
            return 404, {"ok": False, "error": "expired_url"}
        if url.uses >= RESPONSE_URL_USES:
            return 404, {"ok": False, "error": "used_url"}
        if not isinstance(body, dict) or not (body.get("text") or body.get("blocks")
                                              or body.get("delete_original")):
            return 400, {"ok": False, "error": "no_text"}
        url.uses += 1
        self.responses.append(ResponsePost(
            response_url=f"{self.base_url}/hooks/response/{key}", kind=url.kind,
            channel_id=url.channel_id, user_id=url.user_id, body=body, at=time.time()))
        channel = workspace.channels[url.channel_id]
        original = channel.messages.get(url.message_ts) if url.message_ts else None
        text = str(body.get("text") or "")
        blocks = body.get("blocks")
        if original is not None and body.get("delete_original"):
            del channel.messages[original.ts]
        elif original is not None and body.get("replace_original"):
            original.text = text
            original.blocks = blocks
            original.edited = workspace.new_ts()
        elif body.get("response_type") == "in_channel":
            workspace.post(channel, text, blocks=blocks)
        else:
            workspace.ephemerals.append({"channel": channel.id, "user": url.user_id,
                                         "text": text, "blocks": blocks,
                                         "message_ts": workspace.new_ts(), "thread_ts": None})
        return 200, {"ok": True}
