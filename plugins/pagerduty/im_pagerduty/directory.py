"""Look-ups of PagerDuty's directory (users), shared by every connector of an account and kept
for a few minutes, so that processing a stream of events does not list users again and again."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from im_pagerduty.client import PagerDutyClient

TTL_SECONDS = 300.0
_cache: dict[tuple[str, str], tuple[float, dict[str, str]]] = {}
_lock = threading.Lock()


def user_emails(client: PagerDutyClient) -> dict[str, str]:
    key = (client.base_url, client.key_id)
    with _lock:
        cached = _cache.get(key)
        if cached is not None and time.monotonic() - cached[0] < TTL_SECONDS:
            return cached[1]
    emails = {user["id"]: user["email"] for user in client.paginate("/users", "users")}
    with _lock:
        _cache[key] = (time.monotonic(), emails)
    return emails


def forget(client: PagerDutyClient) -> None:
    with _lock:
        _cache.pop((client.base_url, client.key_id), None)
