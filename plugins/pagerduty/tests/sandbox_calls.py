"""Short REST calls the sandbox tests repeat."""

import httpx


def new_incident(client: httpx.Client, service: str = "PXXXXXX", **fields) -> dict:
    body = {
        "type": "incident",
        "title": fields.pop("title", "Database is slow"),
        "service": {"id": service, "type": "service_reference"},
        **fields,
    }
    response = client.post("/incidents", json={"incident": body})
    assert response.status_code == 201, response.text
    return response.json()["incident"]


def update(
    client: httpx.Client, incident_id: str, from_email: str | None = None, **fields
) -> httpx.Response:
    headers = {"From": from_email} if from_email else {}
    return client.put(
        f"/incidents/{incident_id}",
        json={"incident": {"type": "incident_reference", **fields}},
        headers=headers,
    )


def subscribe(client: httpx.Client, url: str, events=None, **filter_) -> dict:
    body = {
        "type": "webhook_subscription",
        "delivery_method": {"type": "http_delivery_method", "url": url},
        "events": events
        or [
            "incident.triggered",
            "incident.acknowledged",
            "incident.unacknowledged",
            "incident.escalated",
            "incident.reassigned",
            "incident.delegated",
            "incident.priority_updated",
            "incident.annotated",
            "incident.resolved",
            "incident.reopened",
        ],
        "filter": filter_ or {"type": "account_reference"},
    }
    response = client.post("/webhook_subscriptions", json={"webhook_subscription": body})
    assert response.status_code == 200, response.text
    return response.json()["webhook_subscription"]
