"""Calling Slack's Web API: one method call, its `{"ok": false, "error": ...}` envelope turned
into an `im.ConnectorError` a user can act on.

HTTP itself (the 429 and its Retry-After, 5xx, timeouts, the deadline, logging and the call
records of `im connector status`) is `im.connector_client`'s: this module only reads Slack's
own answers, which come with HTTP 200 whatever they say, and paces the messages it posts.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import im

if TYPE_CHECKING:
    import httpx

DEFAULT_BASE_URL = "https://slack.com/api"

# Methods Slack describes as reads: sent as GET with query arguments. The others are POSTs of
# a JSON body (Slack takes both; JSON keeps `blocks` typed).
READS = frozenset({"auth.test", "conversations.info", "conversations.history",
                   "conversations.replies", "conversations.list", "users.lookupByEmail",
                   "users.info"})

# Slack takes about one message a second per channel (short bursts aside): im keeps to it
# before posting, rather than meet 429s when many changes come at once. chat.postEphemeral
# is not paced: im never calls it (its answers to a user go to the response_url).
PACED = frozenset({"chat.postMessage"})
MESSAGE_PACE = "1/second"

# Errors that say Slack itself had trouble: trying again later may succeed.
PASSING = frozenset({"internal_error", "fatal_error", "service_unavailable", "request_timeout",
                     "ratelimited", "team_added_to_org"})

# The token is refused: nothing this connector does will work until someone fixes it.
TOKEN_REFUSED = frozenset({"invalid_auth", "not_authed", "token_revoked", "token_expired",
                           "account_inactive", "no_permission", "not_allowed_token_type"})


class SlackAPIError(im.ConnectorError):
    """Slack answered `{"ok": false}`: `error` is Slack's code (`name_taken`, ...), for the
    callers that treat one as an answer rather than a failure."""

    def __init__(self, message: str, *, error: str, method: str, retryable: bool = False,
                 needed: str | None = None) -> None:
        super().__init__(message, retryable=retryable)
        self.error = error
        self.method = method
        self.needed = needed


def explain(method: str, body: dict[str, Any], *, channel: str | None = None) -> SlackAPIError:
    """The error a refused call is, in words that say what to do."""
    error = str(body.get("error") or "unknown_error")
    where = f" {channel}" if channel else ""
    if error == "missing_scope":
        needed = str(body.get("needed") or "").strip() or None
        scope = f"the `{needed}` scope" if needed else "a scope it needs"
        message = (f"Slack refused {method}: the bot token lacks {scope}. Add it in your Slack"
                   " app (OAuth & Permissions → Bot Token Scopes), reinstall the app to the"
                   " workspace, and give im the new bot token if it changed")
        return SlackAPIError(message, error=error, method=method, needed=needed)
    if error in TOKEN_REFUSED:
        message = (f"Slack refused the bot token ({error}) on {method}: give the connector"
                   " a valid bot token (xoxb-..., OAuth & Permissions → Bot User OAuth"
                   " Token) as api_key")
        return SlackAPIError(message, error=error, method=method)
    if error == "channel_not_found":
        message = (f"Slack has no channel{where} that the bot can see (channel_not_found, on"
                   f" {method}): check the channel's ID (a private channel also needs the"
                   " bot invited to it)")
        return SlackAPIError(message, error=error, method=method)
    if error == "not_in_channel":
        message = (f"the bot is not a member of{where or ' the channel'} (not_in_channel, on"
                   f" {method}): invite it there (/invite @your-app), or grant the"
                   " `channels:join` scope so that it joins public channels itself")
        return SlackAPIError(message, error=error, method=method)
    if error == "is_archived":
        message = f"the channel{where} is archived (is_archived, on {method}): unarchive it" \
                  " or configure another channel"
        return SlackAPIError(message, error=error, method=method)
    if error in PASSING:
        return SlackAPIError(f"Slack could not carry out {method} ({error}); trying again"
                             " later", error=error, method=method, retryable=True)
    return SlackAPIError(f"Slack refused {method}: {error}", error=error, method=method)


def slack_error_message(response: httpx.Response) -> str | None:
    """The remote message of a non-2xx answer (a 429's `ratelimited`), for connector_client."""
    try:
        body = response.json()
    except ValueError:
        return None
    return str(body.get("error")) if isinstance(body, dict) and body.get("error") else None


_pace: im.RateBudget | None = None  # this process's, made on first use
_pace_lock = threading.Lock()


def message_pace(shared: Any = None) -> im.RateBudget:
    """The pace of messages: counted by every im process on the database with `shared`
    (Runtime.shared_rate_limits(): several `im serve` posting to one channel), else by this
    process, whichever connector instance posts."""
    global _pace
    if shared is not None:
        return im.RateBudget(MESSAGE_PACE, shared=shared)
    with _pace_lock:
        if _pace is None:
            _pace = im.RateBudget(MESSAGE_PACE)
        return _pace


def account_key(token: str) -> str:
    """What names the bot token (and so its workspace) in rate-limit keys: never the token."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


class SlackWeb:
    """Slack's Web API through a connector's `im.ConnectorClient`. With a `pace`, a message
    (PACED) waits its turn in its channel, counted per `account` (account_key of the token)
    and channel."""

    def __init__(self, client: im.ConnectorClient, *, pace: im.RateBudget | None = None,
                 account: str = "") -> None:
        self.client = client
        self.pace = pace
        self.account = account

    def response(self, method: str, *, label: str | None = None,
                 **arguments: Any) -> tuple[dict[str, Any], httpx.Response]:
        """Call `method`; its answer (ok) and the HTTP response, or raise SlackAPIError.
        `label` names the channel in error messages (default: the `channel` argument)."""
        arguments = {k: v for k, v in arguments.items() if v is not None}
        if method in READS:
            response = self.client.request("GET", f"/{method}", params=arguments)
        else:
            budget = None
            if self.pace is not None and method in PACED:
                channel = arguments.get("channel")
                budget = (self.pace, f"slack:{self.account}:messages:{channel}")
            response = self.client.request(
                "POST", f"/{method}", json=arguments, budget=budget,
                headers={"Content-Type": "application/json; charset=utf-8"})
        try:
            body = response.json()
        except ValueError:
            raise im.ConnectorError(f"Slack sent a body that is not JSON ({method})",
                                    retryable=True) from None
        if not isinstance(body, dict) or not body.get("ok"):
            raise explain(method, body if isinstance(body, dict) else {},
                          channel=label or arguments.get("channel"))
        return body, response

    def call(self, method: str, *, label: str | None = None, **arguments: Any
             ) -> dict[str, Any]:
        return self.response(method, label=label, **arguments)[0]

    def pages(self, method: str, key: str, *, pages: int = 10, **arguments: Any
              ) -> Iterator[dict[str, Any]]:
        """The items under `key` of a cursor-paginated method, page after page (at most
        `pages` of them)."""
        cursor = None
        for _ in range(pages):
            body = self.call(method, cursor=cursor, **arguments)
            yield from body.get(key) or []
            cursor = (body.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return
