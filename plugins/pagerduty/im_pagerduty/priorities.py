"""Severity <-> PagerDuty priority, through the `priority_mapping` setting.

PagerDuty's admins may rename priorities ("SEV-1", "Critical"...) or not enable them at all
(GET /priorities then lists none). im sets a priority by id, read from GET /priorities: a
listing per account kept a few minutes, so a burst of changes does not ask again and again,
and a renamed priority is seen soon enough.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from im import Severity
from im_pagerduty.settings import priority_names

if TYPE_CHECKING:
    from im_pagerduty.client import PagerDutyClient
    from im_pagerduty.connector import PagerDutyConnector

TTL_SECONDS = 300.0
MAX_ACCOUNTS = 64  # the cache's bound: one entry per account (base URL and key)
MAX_PAGES = 5  # an account has a handful of priorities: 500 is more than any has
NOT_ENABLED = "PagerDuty has no priorities enabled"
_cache: dict[tuple[str, str], tuple[float, list[dict[str, Any]]]] = {}
_lock = threading.Lock()


def listed(client: PagerDutyClient) -> list[dict[str, Any]]:
    """The account's priorities, most severe first; [] when priorities are not enabled.
    Raises PagerDutyError when PagerDuty cannot tell."""
    key = (client.base_url, client.key_id)
    with _lock:
        cached = _cache.get(key)
        if cached is not None and time.monotonic() - cached[0] < TTL_SECONDS:
            return cached[1]
    found: list[dict[str, Any]] = []
    for page in range(MAX_PAGES):
        answer = client.get("/priorities", limit=100, offset=page * 100)
        found += answer.get("priorities") or []
        if not answer.get("more"):
            break
    with _lock:
        if len(_cache) >= MAX_ACCOUNTS:
            _cache.pop(min(_cache, key=lambda k: _cache[k][0]))
        _cache[key] = (time.monotonic(), found)
    return found


def forget(client: PagerDutyClient) -> None:
    with _lock:
        _cache.pop((client.base_url, client.key_id), None)


def forget_all() -> None:
    with _lock:
        _cache.clear()


def severity_of(connector: PagerDutyConnector, incident: dict[str, Any]) -> str:
    """An incident's im severity: its priority through the mapping; else (no priority, or a
    name the mapping does not know) its urgency: high is SEV-2, low SEV-3."""
    priority = incident.get("priority") or {}
    # REST gives the priority's name and summary, a webhook its summary only
    mapped = mapped_severity(connector, str(priority.get("name") or priority.get("summary")
                                            or ""))
    return mapped or ("SEV-2" if incident.get("urgency") == "high" else "SEV-3")


def mapped_severity(connector: PagerDutyConnector, name: str) -> str | None:
    """The severity `priority_mapping` reads a priority name as (any case), if any."""
    wanted = name.strip().lower()
    mapping = connector.settings.custom.priority_mapping
    for severity in Severity:
        if wanted and wanted in (n.lower() for n in priority_names(mapping, severity)):
            return severity.value
    return None


class Choice:
    """The priority to set for a severity: a reference, or none and the reason in words."""

    def __init__(self, ref: dict[str, str] | None, name: str | None, why: str | None) -> None:
        self.ref, self.name, self.why = ref, name, why


def choose(connector: PagerDutyConnector, severity: Severity) -> Choice:
    """Raises only what would fail the change itself (PagerDuty unreachable, slow, or rate
    limiting: the change then waits in the outbox as any other would); else a change goes
    to PagerDuty without a priority rather than not at all."""
    from im_pagerduty.client import PagerDutyError

    names = priority_names(connector.settings.custom.priority_mapping, severity)
    if not names:
        return Choice(None, None, None)  # the mapping leaves this severity to urgency alone
    try:
        priorities = listed(connector.client)
    except PagerDutyError as error:
        if error.retryable:
            raise
        if error.status in (402, 403, 404):  # the account's plan or key has no priorities
            return Choice(None, None, NOT_ENABLED)
        return Choice(None, None, f"could not list PagerDuty's priorities ({error})")
    if not priorities:
        return Choice(None, None, NOT_ENABLED)
    wanted = names[0].lower()
    for priority in priorities:  # most severe first: the first of a name wins, as in PagerDuty
        if str(priority.get("name") or "").strip().lower() == wanted and priority.get("id"):
            return Choice({"id": priority["id"], "type": "priority_reference"},
                          str(priority["name"]), None)
    return Choice(None, None, f"PagerDuty has no priority named {names[0]}")
