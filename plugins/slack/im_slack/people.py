"""Who asks, from Slack: the workspace a connector's bot token belongs to (auth.test) and the
im actor a Slack user is (users.info: their e-mail, else `slack:<user name>`). Each answer is
kept for a while, shared by the connectors of one token, in a cache of bounded size, so a
click costs no call to Slack once its clicker is known."""

from __future__ import annotations

import hashlib
import logging
import threading
from typing import TYPE_CHECKING

from cachetools import TTLCache

import im

if TYPE_CHECKING:
    from im_slack.connector import SlackConnector

TTL_SECONDS = 600.0  # a user's e-mail changed in Slack shows in im within ten minutes
MAX_ENTRIES = 10_000
_cache: TTLCache[tuple[str, str, str], str] = TTLCache(MAX_ENTRIES, TTL_SECONDS)
_lock = threading.Lock()


def _token(connector: SlackConnector) -> str:
    """Which token (and Slack) the answers came from, without keeping the token itself."""
    seed = f"{connector.settings.base_url}\n{connector.settings.api_key}"
    return hashlib.sha256(seed.encode()).hexdigest()[:24]


def _cached(key: tuple[str, str, str]) -> str | None:
    with _lock:
        return _cache.get(key)


def _keep(key: tuple[str, str, str], value: str) -> None:
    with _lock:
        _cache[key] = value


def team_of(connector: SlackConnector) -> str:
    """The id of the workspace (team) the connector's bot token belongs to (auth.test);
    raises im.ConnectorError when Slack cannot say."""
    key = (_token(connector), "team", "")
    found = _cached(key)
    if found is None:
        found = str(connector.web.call("auth.test").get("team_id") or "")
        if not found:
            raise im.ConnectorError("Slack's auth.test gave no team_id")
        _keep(key, found)
    return found


class UnknownUser(im.ConnectorError):
    """Slack did not say who a user is: nothing is done in their name."""


def actor_of(connector: SlackConnector, user_id: str, user_name: str) -> str:
    """The im actor of a Slack user: their e-mail (users.info, scope users:read.email), else
    `slack:<their name in Slack>` (no e-mail scope, or none in their profile). When Slack
    does not answer, or does not know the user, UnknownUser: the timeline never names who
    the request only says it is (the user name in a request is theirs to change)."""
    key = (_token(connector), "user", user_id)
    found = _cached(key)
    if found is not None:
        return found
    try:
        user = connector.web.call("users.info", user=user_id).get("user") or {}
    except im.ConnectorError as error:
        logging.getLogger(f"im.connector.{connector.name}").warning(
            "who Slack user %s is could not be read: %s", user_id, error)
        raise UnknownUser(f"Slack did not say who user {user_id} is ({error})",
                          retryable=error.retryable) from None
    email = str((user.get("profile") or {}).get("email") or "").strip()
    found = email or f"slack:{user.get('name') or user_id}"
    _keep(key, found)
    return found


def forget() -> None:
    """Drop every answer kept (tests; a user's e-mail changed in Slack)."""
    with _lock:
        _cache.clear()
