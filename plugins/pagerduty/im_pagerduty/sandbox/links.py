"""`self` and `html_url` of every object: API links point at the sandbox, web links at a
placeholder host that cannot resolve (there is no web UI)."""

from __future__ import annotations

from typing import Any

# kind -> (API path, web path); `{id}` is the object's id.
_PATHS: dict[str, tuple[str, str]] = {
    "incident": ("/incidents/{id}", "/incidents/{id}"),
    "service": ("/services/{id}", "/service-directory/{id}"),
    "user": ("/users/{id}", "/users/{id}"),
    "escalation_policy": ("/escalation_policies/{id}", "/escalation_policies/{id}"),
    "schedule": ("/schedules/{id}", "/schedules/{id}"),
    "priority": ("/priorities/{id}", "/account/incident_priorities"),
    "team": ("/teams/{id}", "/teams/{id}"),
    "webhook_subscription": ("/webhook_subscriptions/{id}", "/webhook_subscriptions/{id}"),
}


class Links:
    def __init__(self, api_base: str, web_base: str) -> None:
        self.api_base = api_base.rstrip("/")
        self.web_base = web_base.rstrip("/")

    def api(self, kind: str, object_id: str) -> str:
        return self.api_base + _PATHS[kind][0].format(id=object_id)

    def web(self, kind: str, object_id: str) -> str:
        return self.web_base + _PATHS[kind][1].format(id=object_id)

    def ref(self, kind: str, object_id: str, summary: str) -> dict[str, Any]:
        """A REST reference: `{"id", "type": "<kind>_reference", "summary", "self", "html_url"}`."""
        return {
            "id": object_id,
            "type": f"{kind}_reference",
            "summary": summary,
            "self": self.api(kind, object_id),
            "html_url": self.web(kind, object_id),
        }

    def log_entry_self(self, entry_id: str, incident_id: str) -> str:
        return f"{self.api_base}/log_entries/{entry_id}?incident_id={incident_id}"

    def log_entry_web(self, entry_id: str, incident_id: str) -> str:
        return f"{self.web_base}/incidents/{incident_id}/log_entries/{entry_id}"
