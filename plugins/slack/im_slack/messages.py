"""The Block Kit of what the Slack plugin posts: the incident message (kept to the incident's
current state with chat.update), the thread reply of each change, and a war room's summary.

Block ids carry what the plugin must find again after a crash: the incident message's header
block has the incident's idempotency key as its id, a thread reply's first block the key of
its change. Slack keeps block ids as given, and conversations.history and .replies return
them, so no message metadata (and no scope for it) is needed.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import im

STATUS_WORDS = {"open": "Open", "mitigated": "Mitigated", "resolved": "Resolved",
                "closed": "Closed"}
STATUS_EMOJI = {"open": ":red_circle:", "mitigated": ":large_orange_circle:",
                "resolved": ":large_green_circle:", "closed": ":white_check_mark:"}
MAX_SECTION = 3000  # Slack's limit on a section's text
MAX_HEADER = 150  # and on a header's
MAX_BLOCK_ID = 255
NOTE_BLOCK = "note"  # the id of a reply's block holding the note, verbatim
STATE_BLOCK = "state"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def escape(text: str) -> str:
    """Text for mrkdwn: Slack reads &, < and > as markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def incident_block_id(idempotency_key: str) -> str:
    return _cut(idempotency_key, MAX_BLOCK_ID)


def change_block_id(request: im.PushRequest) -> str:
    """The key of one change (one outbox row): the same on every attempt of it."""
    import msgspec

    seed = msgspec.json.encode([request.idempotency_key, request.action,
                                str(request.queued_at), request.payload])
    return f"im-change-{hashlib.sha256(seed).hexdigest()[:24]}"


def status_of(text: str) -> str | None:
    """The incident status a message's state block says (read back by tests and retries)."""
    for status, word in STATUS_WORDS.items():
        if f"*Status:* {word}" in text:
            return status
    return None


def incident_message(incident: im.Incident, *, key: str, links: list[im.Link],
                     url: str | None = None) -> tuple[str, list[dict[str, Any]]]:
    """The incident message: (its text, for notifications and clients without blocks; its
    blocks)."""
    status = incident.status.value
    word = STATUS_WORDS.get(status, status.title())
    title = f"{incident.id}: {incident.title}"
    text = f"{incident.id} [{incident.severity.value}] {incident.title} ({word})"
    fields = [f"*Severity:* {incident.severity.value}",
              f"*Status:* {word}",
              f"*Services:* {escape(', '.join(incident.services))}"]
    if incident.assignee:
        fields.append(f"*Assignee:* {escape(incident.assignee)}")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "block_id": incident_block_id(key),
         "text": {"type": "plain_text", "text": _cut(title, MAX_HEADER), "emoji": True}},
        {"type": "section", "block_id": STATE_BLOCK,
         "fields": [{"type": "mrkdwn", "text": field} for field in fields]},
    ]
    if incident.description:
        blocks.append({"type": "section", "block_id": "description",
                       "text": {"type": "mrkdwn", "text": _cut(escape(incident.description),
                                                               MAX_SECTION)}})
    remote = [link for link in links if link.remote_url]
    if remote:
        lines = [f"<{link.remote_url}|{escape(link.connector)}"
                 f"{' #' + link.remote_number if link.remote_number else ''}>"
                 f" ({escape(link.service)})" for link in remote]
        blocks.append({"type": "section", "block_id": "links",
                       "text": {"type": "mrkdwn",
                                "text": _cut("*Linked:* " + " · ".join(lines), MAX_SECTION)}})
    context = (f"{STATUS_EMOJI.get(status, '')} Declared by {escape(incident.created_by)}"
               f" at {incident.created_at:%Y-%m-%d %H:%M} UTC")
    if url:
        context += f" · <{url}|Open in im>"
    blocks.append({"type": "context", "block_id": "declared",
                   "elements": [{"type": "mrkdwn", "text": context.strip()}]})
    return text, blocks


def change_line(request: im.PushRequest) -> str:
    """What happened, as the thread reply's first line says it."""
    incident, payload = request.incident, request.payload
    action = request.action
    lines = {
        "ack": ":large_orange_circle: Acknowledged: the incident is mitigated",
        "unack": ":red_circle: Acknowledgement withdrawn: the incident is open again",
        "resolve": ":large_green_circle: Resolved",
        "close": ":white_check_mark: Closed",
        "reopen": ":red_circle: Reopened",
        "note": ":memo: Note",
        "sla_breach": ":alarm_clock: SLA breached",
    }
    if action == "severity":
        return f":rotating_light: Severity is now {incident.severity.value}"
    if action == "assign":
        who = payload.get("assignee") or incident.assignee
        return f":bust_in_silhouette: Assigned to {escape(str(who))}" if who else \
            ":bust_in_silhouette: Unassigned"
    return lines.get(action, f"{escape(action.replace('_', ' ').capitalize())}")


def change_reply(request: im.PushRequest) -> tuple[str, list[dict[str, Any]]]:
    """The thread reply of one change: its first block's id is the change's key; a note is a
    block of its own, verbatim."""
    line = change_line(request)
    note = str(request.payload.get("note") or "").strip()
    blocks: list[dict[str, Any]] = [
        {"type": "section", "block_id": change_block_id(request),
         "text": {"type": "mrkdwn", "text": _cut(line, MAX_SECTION)}}]
    text = line
    if note:
        blocks.append({"type": "section", "block_id": NOTE_BLOCK,
                       "text": {"type": "plain_text", "text": _cut(note, MAX_SECTION),
                                "emoji": False}})
        text = f"{line}: {note}"
    return _cut(text, 4000), blocks


def note_of(message: dict[str, Any]) -> str | None:
    """The note a thread reply carries, verbatim, or None."""
    for block in message.get("blocks") or []:
        if block.get("block_id") == NOTE_BLOCK:
            return str(block.get("text", {}).get("text", ""))
    return None


def war_room_summary(incident: im.Incident, *, key: str, incident_link: str | None
                     ) -> tuple[str, list[dict[str, Any]]]:
    """The summary posted and pinned in a war room."""
    text = (f"{incident.id} [{incident.severity.value}] {incident.title}: war room. Services:"
            f" {', '.join(incident.services)}")
    fields = [f"*Severity:* {incident.severity.value}",
              f"*Status:* {STATUS_WORDS.get(incident.status.value, incident.status.value)}",
              f"*Services:* {escape(', '.join(incident.services))}",
              f"*Declared by:* {escape(incident.created_by)}"]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "block_id": _cut(key, MAX_BLOCK_ID),
         "text": {"type": "plain_text", "emoji": True,
                  "text": _cut(f"{incident.id}: {incident.title}", MAX_HEADER)}},
        {"type": "section", "block_id": "summary",
         "fields": [{"type": "mrkdwn", "text": field} for field in fields]},
    ]
    if incident.description:
        blocks.append({"type": "section", "block_id": "description",
                       "text": {"type": "mrkdwn",
                                "text": _cut(escape(incident.description), MAX_SECTION)}})
    if incident_link:
        blocks.append({"type": "context", "block_id": "thread",
                       "elements": [{"type": "mrkdwn",
                                     "text": f"Updates: <{incident_link}|the incident's"
                                             " message>"}]})
    return text, blocks
