"""What a responder does from Slack, done through im's application layer (`im.app`, the rules
every front end keeps) as `Origin(actor=<their e-mail>, system=<the slack connector>)`, and
said back in one line: what changed, or why nothing did."""

from __future__ import annotations

import logging
from collections.abc import Callable

import msgspec

import im
from im_slack.messages import escape

log = logging.getLogger("im_slack")

WORDS = {"ack": "acknowledged", "resolve": "resolved"}


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """What came of a request: the line the responder reads (ephemeral; may be empty),
    whether an incident changed (im serve delivers it at once), whether it was refused (a
    modal then stays open with the line under its input), and where to say it when the
    request itself carries no response_url (a modal's submission)."""

    text: str = ""
    changed: bool = False
    failed: bool = False
    status: int = 200
    replay: bool = False
    answer_to: str | None = None


def failed(text: str) -> Outcome:
    return Outcome(text=text, failed=True)


def safely(connector: str, what: Callable[[], Outcome]) -> Outcome:
    """`what()`, with im's refusals as their one line and anything else as a line that
    points to the log (never a traceback to Slack)."""
    try:
        return what()
    except im.NotFoundError as error:
        return failed(_not_found(str(error)))
    except im.ImError as error:
        return failed(str(error))
    except Exception:  # a bug, or the database gone: the responder is told, the log has it
        logging.getLogger(f"im.connector.{connector}").exception(
            "a request from Slack failed")
        return failed("im could not do that: an unexpected error (`im logs --filter"
                      f" {connector}` says more)")


def _not_found(message: str) -> str:
    # the core's "no incident INC-9; `im list` shows the incidents": the command is not
    # the responder's here
    return message.split(";", 1)[0].replace("no incident", "No incident", 1)


def already(incident: im.Incident, action: str) -> str | None:
    """Why `action` (ack, resolve) has nothing to do on the incident as it is, or None."""
    status = incident.status.value
    if action == "ack" and status == "mitigated":
        return f"{incident.id} is already acknowledged"
    if status in ("resolved", "closed"):
        return f"{incident.id} is already {status}"
    return None


def transition(runtime: im.Runtime, incident_id: str, action: str, *, note: str,
               actor: im.Origin) -> Outcome:
    """Acknowledge or resolve an incident; one that is past it says so and is left as it
    is."""
    from im.app import incidents as app

    incident = app.show(runtime, app.parse_incident_id(incident_id)).incident
    said = already(incident, action)
    if said:
        return Outcome(text=said)
    change = app.ack if action == "ack" else app.resolve
    try:
        changed = change(runtime, incident.id, note=note, actor=actor)
    except im.TransitionError as error:  # changed meanwhile, by someone else
        now = app.show(runtime, incident.id).incident
        return Outcome(text=already(now, action) or str(error), failed=True)
    return Outcome(text=f"{changed.id} {WORDS[action]}", changed=True)


def note(runtime: im.Runtime, incident_id: str, text: str, *, actor: im.Origin) -> Outcome:
    from im.app import incidents as app

    noted = app.note(runtime, app.parse_incident_id(incident_id), text, actor=actor)
    return Outcome(text=f"Note added to {noted.incident.id}", changed=True)


def incident_line(incident: im.Incident) -> str:
    """`INC-7 [SEV-2] Payment API Down: Mitigated (payments)`, for Slack's mrkdwn."""
    from im_slack.messages import STATUS_WORDS

    word = STATUS_WORDS.get(incident.status.value, incident.status.value)
    return (f"{incident.id} [{incident.severity.value}] {escape(incident.title)}: {word}"
            f" ({escape(', '.join(incident.services))})")
