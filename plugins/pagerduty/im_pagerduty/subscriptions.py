"""PagerDuty webhook subscriptions: create, re-enable, remove, test and ping.

PagerDuty returns a subscription's signing secret once, when it is created; it is kept in the
connector's settings (`custom.webhook_secrets`, never printed). A secret already there stays
valid next to the new one, so deliveries signed with either verify during a change-over.
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING

from im import ConnectorError, WebhookSetupResult, WebhookTestEvent
from im_pagerduty.webhooks import EVENT_TYPES, sign

if TYPE_CHECKING:
    from im_pagerduty.connector import PagerDutyConnector

KEEP_SECRETS = 2


def disabled(subscription: dict) -> bool:  # type: ignore[type-arg]
    """Switched off: by PagerDuty after failed deliveries (`temporarily_disabled`), or by
    someone (`active` false)."""
    method = subscription.get("delivery_method") or {}
    return bool(method.get("temporarily_disabled")) or subscription.get("active") is False


def _description(connector: PagerDutyConnector) -> str:
    return f"im connector {connector.name}"


def _ours(connector: PagerDutyConnector, url: str
          ) -> tuple[dict | None, list[dict]]:  # type: ignore[type-arg]
    """This connector's subscription to `url`, and the orphans: subscriptions to `url` it made
    (by their description) whose id it does not know, because the answer to their creation
    was lost. PagerDuty gave their secret in that answer only: they can never be verified."""
    subscriptions = connector.client.paginate("/webhook_subscriptions", "webhook_subscriptions")
    known = connector.settings.custom.webhook_subscription_id
    matching = [s for s in subscriptions if (s.get("delivery_method") or {}).get("url") == url]
    orphans = [s for s in matching
               if s["id"] != known and s.get("description") == _description(connector)]
    return next((s for s in matching if s["id"] == known), None), orphans


def subscribe(connector: PagerDutyConnector, url: str) -> WebhookSetupResult:
    existing, orphans = _ours(connector, url)
    custom = connector.settings.custom
    from im_pagerduty.client import PagerDutyError

    removed = []
    for orphan in orphans:
        try:
            connector.client.request("DELETE", f"/webhook_subscriptions/{orphan['id']}")
        except PagerDutyError as error:
            if error.status != 404:  # gone already (another run removed it)
                raise
            continue
        removed.append(f"Deleted PagerDuty webhook subscription {orphan['id']} (im never"
                       " received its signing secret)")
    if existing is not None and custom.webhook_secrets:
        if disabled(existing):
            connector.client.post(f"/webhook_subscriptions/{existing['id']}/enable", {},
                                  repeatable=True)
            line = f"Re-enabled PagerDuty webhook subscription {existing['id']}"
        else:
            line = f"PagerDuty webhook subscription {existing['id']} is active"
        connector.runtime.update_connector_settings(connector.name, {"enable_webhook": True})
        return WebhookSetupResult(lines=[*removed, line])
    created = connector.client.post("/webhook_subscriptions", {"webhook_subscription": {
        "type": "webhook_subscription",
        "delivery_method": {"type": "http_delivery_method", "url": url},
        "description": _description(connector),
        "events": EVENT_TYPES,
        "filter": {"type": "account_reference"},
    }})["webhook_subscription"]
    secret = (created.get("delivery_method") or {}).get("secret")
    if not secret:
        raise ConnectorError("PagerDuty did not return the subscription's signing secret")
    secrets = [secret, *custom.webhook_secrets][:KEEP_SECRETS]
    connector.runtime.update_connector_settings(connector.name, {
        "enable_webhook": True, "custom.webhook_subscription_id": created["id"],
        "custom.webhook_secrets": secrets,
    })
    return WebhookSetupResult(lines=[
        *removed, f"Created PagerDuty webhook subscription {created['id']} for"
        f" {len(EVENT_TYPES)} incident event types"])


def unsubscribe(connector: PagerDutyConnector, url: str) -> WebhookSetupResult:
    from im_pagerduty.client import PagerDutyError

    subscription_id = connector.settings.custom.webhook_subscription_id
    lines = []
    if subscription_id:
        try:
            connector.client.request("DELETE", f"/webhook_subscriptions/{subscription_id}")
            lines.append(f"Deleted PagerDuty webhook subscription {subscription_id}")
        except PagerDutyError as error:
            if error.status != 404:
                raise
            lines.append(f"PagerDuty webhook subscription {subscription_id} was already gone")
    connector.runtime.update_connector_settings(connector.name, {
        "enable_webhook": False, "custom.webhook_subscription_id": None,
        "custom.webhook_secrets": [],
    })
    return WebhookSetupResult(lines=lines + ["Webhook disabled"])


def test_event(connector: PagerDutyConnector) -> WebhookTestEvent:
    """A `pagey.ping` like PagerDuty's own, signed with the current secret."""
    secrets = connector.settings.custom.webhook_secrets
    if not secrets:
        raise ConnectorError(f"no webhook secret yet; run: im connector webhook {connector.name}"
                             " --enable")
    event_id = f"im-test-{uuid.uuid4().hex}"
    body = json.dumps({"event": {
        "id": event_id, "event_type": "pagey.ping", "resource_type": "pagey",
        "occurred_at": connector.runtime.clock().isoformat().replace("+00:00", "Z"),
        "agent": None, "client": None,
        "data": {"message": "Hello from im (webhook test)", "type": "ping"},
    }}, separators=(",", ":")).encode()
    return WebhookTestEvent(delivery_id=event_id, body=body, headers={
        "Content-Type": "application/json", "User-Agent": "PagerDuty-Webhook/V3.0",
        "X-Webhook-Id": event_id, "X-PagerDuty-Signature": sign(secrets[0], body)})


def ping(connector: PagerDutyConnector) -> str:
    subscription_id = connector.settings.custom.webhook_subscription_id
    if not subscription_id:
        raise ConnectorError(f"no webhook subscription; run: im connector webhook"
                             f" {connector.name} --enable")
    connector.client.post(f"/webhook_subscriptions/{subscription_id}/ping", {},
                          repeatable=True)
    return "pagey.ping"
