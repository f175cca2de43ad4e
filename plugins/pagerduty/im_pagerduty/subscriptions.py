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
    """Names the connector and this im installation: another im on the same account with a
    connector of the same name (staging beside production) has subscriptions of its own."""
    return f"im connector {connector.name} ({connector.runtime.installation_id})"


def _endpoint(connector: PagerDutyConnector) -> str | None:
    """Where this installation takes the connector's webhooks, when its public URL is known."""
    from im import ImError

    try:
        base = connector.runtime.public_url_for(connector.name)
    except ImError:
        return None
    return f"{base.rstrip('/')}/connectors/{connector.name}/webhook" if base else None


def _mine(connector: PagerDutyConnector, url: str | None
          ) -> tuple[list[dict], list[str]]:  # type: ignore[type-arg]
    """The subscriptions this connector made: the one it knows by id, any other with its
    description (made for a URL given earlier, or one whose creation answer was lost), and
    one an earlier im described without its installation id that delivers to this
    installation's URL (`url`, else the known public URL's). Then a line for each other one
    described as an earlier im did: it may be another installation's, so it is left alone."""
    subscriptions = connector.client.paginate("/webhook_subscriptions", "webhook_subscriptions")
    known = connector.settings.custom.webhook_subscription_id
    ours = url or _endpoint(connector)
    legacy = f"im connector {connector.name}"
    mine, doubtful = [], []
    for s in subscriptions:
        if s["id"] == known or s.get("description") == _description(connector) or (
                s.get("description") == legacy and ours is not None and _url(s) == ours):
            mine.append(s)
        elif s.get("description") == legacy:
            doubtful.append(
                f"! PagerDuty webhook subscription {s['id']} (to {_url(s)}) says it is"
                f" '{legacy}' but not which im made it; left as it is: delete it in PagerDuty"
                " if no other im installation uses it")
    return mine, doubtful


def _url(subscription: dict) -> str | None:  # type: ignore[type-arg]
    return (subscription.get("delivery_method") or {}).get("url")


def _delete(connector: PagerDutyConnector, subscription_id: str, why: str) -> str:
    """Delete a subscription; the line that says so (one gone already is no error)."""
    from im_pagerduty.client import PagerDutyError

    try:
        connector.client.request("DELETE", f"/webhook_subscriptions/{subscription_id}")
    except PagerDutyError as error:
        if error.status != 404:  # gone already (another run removed it)
            raise
        return f"PagerDuty webhook subscription {subscription_id} was already gone"
    return f"Deleted PagerDuty webhook subscription {subscription_id}{why}"


def subscribe(connector: PagerDutyConnector, url: str) -> WebhookSetupResult:
    """Exactly one subscription of this connector's delivers to `url` afterwards: the one it
    has (re-enabled if PagerDuty disabled it) or a new one; the others it made are deleted,
    those to another URL once the new one exists (they deliver to a URL im left)."""
    custom = connector.settings.custom
    mine, doubtful = _mine(connector, url)
    existing = next((s for s in mine if s["id"] == custom.webhook_subscription_id
                     and _url(s) == url and custom.webhook_secrets), None)
    # PagerDuty gives a secret only in the answer to a creation: one to this URL whose id im
    # does not know can never be verified
    orphans = [s for s in mine if s is not existing and _url(s) == url]
    elsewhere = [s for s in mine if s is not existing and _url(s) != url]
    lines = [_delete(connector, s["id"], " (im never received its signing secret)")
             for s in orphans]
    if existing is not None:
        if disabled(existing):
            connector.client.post(f"/webhook_subscriptions/{existing['id']}/enable", {},
                                  repeatable=True)
            lines.append(f"Re-enabled PagerDuty webhook subscription {existing['id']}")
        else:
            lines.append(f"PagerDuty webhook subscription {existing['id']} is active")
        missing = [e for e in EVENT_TYPES if e not in (existing.get("events") or [])]
        if missing:
            # made by an earlier im that handled fewer event types: without this, the events
            # it handles since never come (the events it asked for, and any added, are kept)
            events = [*(existing.get("events") or []), *missing]
            connector.client.put(f"/webhook_subscriptions/{existing['id']}", {
                "webhook_subscription": {"events": events}})
            lines.append(f"Added {len(missing)} incident event types to PagerDuty webhook"
                         f" subscription {existing['id']}")
        connector.runtime.update_connector_settings(connector.name, {"enable_webhook": True})
    else:
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
        lines.append(f"Created PagerDuty webhook subscription {created['id']} for"
                     f" {len(EVENT_TYPES)} incident event types")
    lines += [_delete(connector, s["id"], f" (it delivered to {_url(s)})") for s in elsewhere]
    return WebhookSetupResult(lines=lines + doubtful)


def unsubscribe(connector: PagerDutyConnector, url: str) -> WebhookSetupResult:
    """Delete every subscription this connector made, whatever URL it delivers to."""
    known = connector.settings.custom.webhook_subscription_id
    mine, doubtful = _mine(connector, url or None)
    ids = list(dict.fromkeys([*([known] if known else []), *(s["id"] for s in mine)]))
    lines = [_delete(connector, subscription_id, "") for subscription_id in ids] + doubtful
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
