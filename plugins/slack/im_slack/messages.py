"""The Block Kit of what the Slack plugin posts: the incident message (kept to the incident's
current state with chat.update, with its buttons), the thread reply of each change, a war
room's summary, and the modal a note is written in.

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
ACTIONS_BLOCK = "actions"
# the incident message's buttons (their value is the incident's id), and the note modal's
ACK_ACTION, RESOLVE_ACTION, NOTE_ACTION = "im.ack", "im.resolve", "im.note"
NOTE_VIEW = "im.note"  # the modal's callback_id
NOTE_INPUT, NOTE_TEXT = "note", "text"  # its input block and the input's action
MAX_NOTE = 3000


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


def _button(text: str, action_id: str, value: str, style: str | None = None
            ) -> dict[str, Any]:
    button: dict[str, Any] = {"type": "button", "action_id": action_id, "value": value,
                              "text": {"type": "plain_text", "text": text, "emoji": False}}
    if style:
        button["style"] = style
    return button


def buttons(incident: im.Incident) -> dict[str, Any]:
    """The actions block: Acknowledge while open, Resolve while open or mitigated, and Add
    note."""
    status = incident.status.value
    elements = []
    if status == "open":
        elements.append(_button("Acknowledge", ACK_ACTION, incident.id, "primary"))
    if status in ("open", "mitigated"):
        elements.append(_button("Resolve", RESOLVE_ACTION, incident.id))
    elements.append(_button("Add note", NOTE_ACTION, incident.id))
    return {"type": "actions", "block_id": ACTIONS_BLOCK, "elements": elements}


def note_modal(incident: im.Incident, *, metadata: str) -> dict[str, Any]:
    """The modal Add note opens: one multiline input; `metadata` (the incident and where to
    answer) comes back with its submission."""
    return {
        "type": "modal", "callback_id": NOTE_VIEW, "private_metadata": metadata,
        "title": {"type": "plain_text", "text": _cut(f"Note on {incident.id}", 24)},
        "submit": {"type": "plain_text", "text": "Add note"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {"type": "section", "block_id": "incident",
             "text": {"type": "plain_text", "emoji": False,
                      "text": _cut(f"{incident.id} [{incident.severity.value}]"
                                   f" {incident.title}", MAX_SECTION)}},
            {"type": "input", "block_id": NOTE_INPUT,
             "label": {"type": "plain_text", "text": "Note"},
             "element": {"type": "plain_text_input", "action_id": NOTE_TEXT,
                         "multiline": True, "max_length": MAX_NOTE}},
        ],
    }


def incident_message(incident: im.Incident, *, key: str, links: list[im.Link],
                     url: str | None = None, with_buttons: bool = False
                     ) -> tuple[str, list[dict[str, Any]]]:
    """The incident message: (its text, for notifications and clients without blocks; its
    blocks). `with_buttons`: the connector takes Slack's requests (it has a signing secret),
    so the message has its buttons."""
    status = incident.status.value
    word = STATUS_WORDS.get(status, status.title())
    title = f"{incident.id}: {incident.title}"
    # `text` is mrkdwn too (notifications read it): a title's <!channel> must stay text
    text = f"{incident.id} [{incident.severity.value}] {escape(incident.title)} ({word})"
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
    linked = _linked(links)
    if linked:
        blocks.append(linked)
    context = (f"{STATUS_EMOJI.get(status, '')} Declared by {escape(incident.created_by)}"
               f" at {incident.created_at:%Y-%m-%d %H:%M} UTC")
    if url:
        context += f" · <{url}|Open in im>"
    blocks.append({"type": "context", "block_id": "declared",
                   "elements": [{"type": "mrkdwn", "text": context.strip()}]})
    if with_buttons:
        blocks.append(buttons(incident))
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
        text = f"{line}: {escape(note)}"
    return _cut(text, 4000), blocks


def note_of(message: dict[str, Any]) -> str | None:
    """The note a thread reply carries, verbatim, or None."""
    for block in message.get("blocks") or []:
        if block.get("block_id") == NOTE_BLOCK:
            return str(block.get("text", {}).get("text", ""))
    return None


def _linked(links: list[im.Link]) -> dict[str, Any] | None:
    """A section listing the remote incidents linked (the paging incident), or None."""
    remote = [link for link in links if link.remote_url]
    if not remote:
        return None
    lines = [f"<{link.remote_url}|{escape(link.connector)}"
             f"{' #' + link.remote_number if link.remote_number else ''}>"
             f" ({escape(link.service)})" for link in remote]
    return {"type": "section", "block_id": "links",
            "text": {"type": "mrkdwn", "text": _cut("*Linked:* " + " · ".join(lines),
                                                    MAX_SECTION)}}


def war_room_summary(incident: im.Incident, *, key: str, incident_link: str | None,
                     remote: list[im.Link] | None = None) -> tuple[str, list[dict[str, Any]]]:
    """The summary posted and pinned in a war room; `remote`: the remote incidents linked
    (the paging incident), each a link."""
    text = (f"{incident.id} [{incident.severity.value}] {escape(incident.title)}: war room."
            " Services:"
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
    linked = _linked(remote or [])
    if linked:
        blocks.append(linked)
    if incident_link:
        blocks.append({"type": "context", "block_id": "thread",
                       "elements": [{"type": "mrkdwn",
                                     "text": f"Updates: <{incident_link}|the incident's"
                                             " message>"}]})
    return text, blocks
