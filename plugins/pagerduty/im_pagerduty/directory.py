"""Look-ups of PagerDuty's directory of users, by what is needed: a user's e-mail by id (an
event's agent, an incident's assignee) and a user's id by e-mail (im's own user, an assignee
im sets). Never the whole directory: a real account holds tens of thousands of users, and a
listing cannot reach past its 10,000th record, so reading every user made every event of such
an account unreadable. Each answer is kept for a few minutes, shared by every connector of
the account, in a cache of bounded size."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from cachetools import TTLCache

if TYPE_CHECKING:
    from im_pagerduty.client import PagerDutyClient

TTL_SECONDS = 300.0
MAX_ENTRIES = 20_000  # users remembered at once, across accounts: a few MB at most
_MISSING = ""  # a cached answer "no such user"
_cache: TTLCache[tuple[str, str, str, str], str] = TTLCache(MAX_ENTRIES, TTL_SECONDS)
_lock = threading.Lock()


def _account(client: PagerDutyClient) -> tuple[str, str]:
    return client.base_url, client.key_id


def _cached(key: tuple[str, str, str, str]) -> str | None:
    with _lock:
        return _cache.get(key)


def _keep(client: PagerDutyClient, user_id: str, email: str) -> None:
    with _lock:
        _cache[(*_account(client), "id", user_id)] = email
        if email:
            _cache[(*_account(client), "email", email.lower())] = user_id


def email_of(client: PagerDutyClient, user_id: str) -> str | None:
    """The e-mail of a PagerDuty user (GET /users/{id}, once in TTL_SECONDS); None for a user
    PagerDuty does not know."""
    from im_pagerduty.client import PagerDutyError

    if not user_id:
        return None
    found = _cached((*_account(client), "id", user_id))
    if found is None:
        try:
            user = client.get(f"/users/{user_id}").get("user") or {}
        except PagerDutyError as error:
            if error.status != 404:
                raise
            user = {}
        found = str(user.get("email") or _MISSING)
        _keep(client, user_id, found)
    return found or None


def id_of(client: PagerDutyClient, email: str) -> str | None:
    """The id of the PagerDuty user with this e-mail, whatever its case (GET /users?query=,
    which matches names and e-mails: a few records, never the directory); None if none."""
    key = (*_account(client), "email", email.lower())
    found = _cached(key)
    if found is None:
        found = _MISSING
        for user in client.paginate("/users", "users", {"query": email}):
            if str(user.get("email", "")).lower() == email.lower():
                found = str(user["id"])
                _keep(client, found, str(user["email"]))
                break
        with _lock:
            _cache[key] = found
    return found or None


def forget(client: PagerDutyClient) -> None:
    """Drop what is known of an account's users (a user added or changed since)."""
    account = _account(client)
    with _lock:
        for key in [k for k in _cache if k[:2] == account]:
            _cache.pop(key, None)
