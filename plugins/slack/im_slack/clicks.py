"""The incident message's buttons and the note modal: Acknowledge and Resolve act at once;
Add note opens a modal (views.open, with the click's trigger_id) whose submission adds the
note. The modal carries the incident and the click's response_url in its private_metadata,
which Slack gives back, signed, with the submission."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import im
from im_slack import acting, messages
from im_slack.acting import Outcome, failed

if TYPE_CHECKING:
    from im_slack.connector import SlackConnector
    from im_slack.verify import SlackRequest


def block_actions(runtime: im.Runtime, connector: SlackConnector, request: SlackRequest,
                  actor: im.Origin) -> Outcome:
    """A button of the incident message clicked (other apps' and unknown actions: nothing)."""
    actions = request.payload.get("actions")
    action = actions[0] if isinstance(actions, list) and actions else {}
    action_id = str(action.get("action_id") or "") if isinstance(action, dict) else ""
    incident_id = str(action.get("value") or "") if isinstance(action, dict) else ""
    if action_id in (messages.ACK_ACTION, messages.RESOLVE_ACTION):
        verb = "ack" if action_id == messages.ACK_ACTION else "resolve"
        return acting.safely(connector.name, lambda: acting.transition(
            runtime, incident_id, verb, note="", actor=actor))
    if action_id == messages.NOTE_ACTION:
        return acting.safely(connector.name,
                             lambda: _open_note(runtime, connector, request, incident_id))
    return Outcome()


def _open_note(runtime: im.Runtime, connector: SlackConnector, request: SlackRequest,
               incident_id: str) -> Outcome:
    from im.app import incidents as app

    from im_slack.api import SlackAPIError

    incident = app.show(runtime, app.parse_incident_id(incident_id)).incident
    if not request.trigger_id:
        return failed("Slack sent no trigger_id: the note form cannot be opened")
    metadata = json.dumps({"incident": incident.id, "response_url": request.response_url},
                          separators=(",", ":"))
    try:
        # a trigger_id lives three seconds: no waiting, nor retrying, past them
        with connector.client.until(time.monotonic() + 2.0):
            connector.web.call("views.open", trigger_id=request.trigger_id,
                               view=messages.note_modal(incident, metadata=metadata))
    except SlackAPIError as error:
        return failed(f"The note form could not be opened ({error.error}); try again, or"
                      f" add it with the slash command: note {incident.id} TEXT")
    return Outcome()


def view_submission(runtime: im.Runtime, connector: SlackConnector, request: SlackRequest,
                    actor: im.Origin) -> Outcome:
    """The note modal submitted: the note added, said where the click was (its
    response_url). A refusal keeps the modal open with the reason under the input."""
    view = request.payload.get("view")
    view = view if isinstance(view, dict) else {}
    if view.get("callback_id") != messages.NOTE_VIEW:
        return Outcome()
    try:
        metadata = json.loads(str(view.get("private_metadata") or ""))
    except ValueError:
        metadata = None
    if not isinstance(metadata, dict) or not metadata.get("incident"):
        return failed("This form is not one im opened")
    answer_to = str(metadata.get("response_url") or "") or None
    text = _typed(view)
    if not text.strip():
        return failed("The note is empty")
    outcome = acting.safely(connector.name, lambda: acting.note(
        runtime, str(metadata["incident"]), text, actor=actor))
    return Outcome(text=outcome.text, changed=outcome.changed, failed=outcome.failed,
                   answer_to=answer_to)


def _typed(view: dict[str, Any]) -> str:
    values = (view.get("state") or {}).get("values") or {}
    entered = (values.get(messages.NOTE_INPUT) or {}).get(messages.NOTE_TEXT) or {}
    return str(entered.get("value") or "") if isinstance(entered, dict) else ""
