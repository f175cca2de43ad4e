"""What makes a request from Slack one to act on: a `slack` connector of that name that takes
requests (it has the app's signing secret), Slack's signature over the raw body with a
timestamp within five minutes of im's clock (slack_sdk's SignatureVerifier), a body in
Slack's form, and the workspace of the connector's bot token. Each refusal is an HTTP status
and one generic line; the reason goes to the connector's log only."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import msgspec
from slack_sdk.signature import Clock, SignatureVerifier

import im

if TYPE_CHECKING:
    from im_slack.connector import SlackConnector

TIMESTAMP_HEADER = "x-slack-request-timestamp"
SIGNATURE_HEADER = "x-slack-signature"
WINDOW_SECONDS = 5 * 60  # Slack's rule, and slack_sdk's: older (or newer) is a replay


class Refused(Exception):
    """A request not acted on: `status` and the one line answered; `reason` is logged."""

    def __init__(self, status: int, answer: str, reason: str | None = None) -> None:
        super().__init__(answer)
        self.status = status
        self.answer = answer
        self.reason = reason


class SlackRequest(msgspec.Struct, frozen=True, kw_only=True):
    """An authentic request from Slack, read: who sent it from which workspace, where to
    answer later, and what it says (`fields` of a slash command, `payload` of an
    interaction)."""

    kind: str  # "command" or "interaction"
    signature: str
    team_id: str
    user_id: str
    user_name: str
    response_url: str | None = None
    trigger_id: str | None = None
    fields: dict[str, str] = {}
    payload: dict[str, Any] = {}


class _ImClock(Clock):
    """slack_sdk's clock, read from im's (runtime.clock), so a fake clock moves it too."""

    def __init__(self, runtime: im.Runtime) -> None:
        self.runtime = runtime

    def now(self) -> float:
        return self.runtime.clock().timestamp()


def log(name: str) -> logging.Logger:
    """The connector's log (`im logs --component connector --filter NAME`)."""
    return logging.getLogger(f"im.connector.{name}")


def slack_connector(runtime: im.Runtime, name: str) -> SlackConnector:
    """The enabled `slack` connector `name` that takes Slack's requests, or Refused (404)."""
    from im_slack.connector import SlackConnector

    record = runtime.store.get_connector(name)
    if record is None or record.type != SlackConnector.type:
        raise Refused(404, f"no slack connector named {name}")
    if not record.enabled:
        raise Refused(404, f"slack connector {name} is disabled")
    if not (record.settings.get("custom") or {}).get("signing_secret"):
        raise Refused(404, f"slack connector {name} takes no requests from Slack: give it"
                           " the app's signing secret (custom.signing_secret)")
    try:
        connector = runtime.connector(name)
    except im.ImError as error:  # an env: secret not set in this process, say
        raise Refused(503, f"slack connector {name} cannot be used now",
                      f"the connector cannot be built: {error}") from None
    assert isinstance(connector, SlackConnector)
    return connector


def check_signature(runtime: im.Runtime, connector: SlackConnector, headers: dict[str, str],
                    body: bytes) -> str:
    """The request's signature, when Slack made it with the connector's signing secret within
    five minutes of im's clock; else Refused (401), the same line whatever was wrong."""
    secret = connector.settings.custom.signing_secret or ""
    timestamp = headers.get(TIMESTAMP_HEADER)
    signature = headers.get(SIGNATURE_HEADER)
    verifier = SignatureVerifier(secret, clock=_ImClock(runtime))
    try:
        valid = verifier.is_valid(body=body, timestamp=timestamp, signature=signature)
    except (ValueError, UnicodeDecodeError, OverflowError):
        # a timestamp not a number (or one of hundreds of digits), a body not UTF-8
        valid = False
    if valid and signature:
        return signature
    raise Refused(401, "the request's Slack signature is not valid",
                  _why_invalid(runtime, timestamp, signature))


def _why_invalid(runtime: im.Runtime, timestamp: str | None, signature: str | None) -> str:
    if not timestamp or not signature:
        return "no X-Slack-Request-Timestamp or X-Slack-Signature header"
    try:
        age = runtime.clock().timestamp() - int(timestamp)
    except (ValueError, OverflowError):
        return "a timestamp that is not a number of seconds"
    if abs(age) > WINDOW_SECONDS:
        return (f"a timestamp {abs(age):.0f} s {'old' if age > 0 else 'ahead'} (Slack's rule"
                f" allows {WINDOW_SECONDS} s: a replay, or a clock that is off)")
    return "a signature not made with the signing secret"


def _form(body: bytes) -> dict[str, str]:
    try:
        return dict(parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=True))
    except (ValueError, UnicodeDecodeError):
        raise Refused(400, "the body is not a form Slack sends",
                      "a signed body that is not a form") from None


def read(kind: str, signature: str, body: bytes) -> SlackRequest:
    """A signed body in Slack's form: a slash command's fields, or an interaction's
    `payload` JSON; Refused (400) otherwise."""
    fields = _form(body)
    if kind == "command":
        team, user = fields.get("team_id", ""), fields.get("user_id", "")
        if not team or not user or "command" not in fields:
            raise Refused(400, "the body is not a slash command Slack sends",
                          "a signed form without command, team_id or user_id")
        return SlackRequest(kind=kind, signature=signature, team_id=team, user_id=user,
                            user_name=fields.get("user_name", ""),
                            response_url=fields.get("response_url") or None,
                            trigger_id=fields.get("trigger_id") or None, fields=fields)
    try:
        payload = json.loads(fields.get("payload", ""))
    except (ValueError, RecursionError):  # not JSON, or nested past any payload of Slack's
        payload = None
    if not isinstance(payload, dict) or not isinstance(payload.get("type"), str):
        raise Refused(400, "the body is not an interaction Slack sends",
                      "a signed form without a payload of JSON")
    team = payload.get("team") if isinstance(payload.get("team"), dict) else {}
    user = payload.get("user") if isinstance(payload.get("user"), dict) else {}
    team_id = str(team.get("id") or user.get("team_id") or "")
    if not team_id or not user.get("id"):
        raise Refused(400, "the body is not an interaction Slack sends",
                      "a signed payload without its team or user")
    return SlackRequest(kind=kind, signature=signature, team_id=team_id,
                        user_id=str(user["id"]),
                        user_name=str(user.get("username") or user.get("name") or ""),
                        response_url=str(payload.get("response_url") or "") or None,
                        trigger_id=str(payload.get("trigger_id") or "") or None,
                        payload=payload)
