"""The Adaptive Card of an incident, and the message that carries it to a Workflows webhook."""

from __future__ import annotations

from typing import Any

import im

CARD_VERSION = "1.4"  # what Teams renders everywhere (desktop, web, mobile)
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
MAX_DESCRIPTION = 1000  # a card is one message; Teams refuses messages over about 28 KB

# the colour of the title: Teams' own names, for its light and dark themes alike
_COLOUR = {"SEV-1": "Attention", "SEV-2": "Attention", "SEV-3": "Warning", "SEV-4": "Default"}


def message(card: dict[str, Any]) -> dict[str, Any]:
    """What a Workflows webhook takes: a message with the card as its one attachment."""
    return {"type": "message",
            "attachments": [{"contentType": CONTENT_TYPE, "contentUrl": None, "content": card}]}


def incident_card(incident: im.Incident, *, event: im.TimelineEvent | None,
                  links: list[im.Link], title_prefix: str = "",
                  view_url: str | None = None) -> dict[str, Any]:
    """An Adaptive Card of `incident`: its severity, title, what happened (`event`), status,
    services, and buttons to it in im (`view_url`) and in the systems it is linked to."""
    severity = incident.severity.value
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": f"{title_prefix}{severity} {incident.id}: {incident.title}",
         "size": "Large", "weight": "Bolder", "wrap": True,
         "color": _COLOUR.get(severity, "Default")},
    ]
    if event is not None:
        body.append({"type": "TextBlock", "text": event.text, "isSubtle": True, "wrap": True,
                     "spacing": "None"})
    facts = [("Severity", severity), ("Status", incident.status.value),
             ("Services", ", ".join(incident.services) or "none"),
             ("Assignee", incident.assignee or "nobody yet"),
             ("Declared", f"{incident.created_at:%Y-%m-%d %H:%M} UTC by {incident.created_by}")]
    body.append({"type": "FactSet",
                 "facts": [{"title": title, "value": value} for title, value in facts]})
    if incident.description:
        description = incident.description
        if len(description) > MAX_DESCRIPTION:
            description = description[:MAX_DESCRIPTION - 1] + "…"
        body.append({"type": "TextBlock", "text": description, "wrap": True})
    actions: list[dict[str, Any]] = []
    if view_url:
        actions.append({"type": "Action.OpenUrl", "title": f"View {incident.id}",
                        "url": view_url.replace("{id}", incident.id)})
    seen = set()
    for link in links:
        if not link.remote_url or link.remote_url in seen:
            continue
        seen.add(link.remote_url)
        label = link.remote_number or link.remote_id
        actions.append({"type": "Action.OpenUrl", "url": link.remote_url,
                        "title": f"{link.connector} #{label} ({link.service})"})
    card: dict[str, Any] = {"$schema": CARD_SCHEMA, "type": "AdaptiveCard",
                            "version": CARD_VERSION, "body": body,
                            "msteams": {"width": "Full"}}
    if actions:
        card["actions"] = actions[:6]  # Teams shows at most six buttons
    return card
