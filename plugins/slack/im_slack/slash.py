"""The slash command (`/im` as the Slack app names it; whatever name Slack sends is the one
answers use): `declare SEV-n TITLE --service a,b`, `ack INC-n [note]`, `resolve INC-n
[note]`, `note INC-n TEXT`, `status [INC-n]`, `help`. Every answer is a few lines at most,
seen by the one who typed it; bad input is one line with the usage."""

from __future__ import annotations

import shlex

import im
from im_slack import acting
from im_slack.acting import Outcome, failed, incident_line
from im_slack.messages import escape

STATUS_LIMIT = 10  # open incidents `status` lists, newest first
# Slack's clients may turn typed quotes into typographic ones
_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u201e": '"'})
_SERVICE_OPTIONS = ("--service", "--services", "-s")


def usage(command: str) -> str:
    return (f"Usage: {command} declare SEV-n TITLE --service a,b | ack INC-n [note] |"
            " resolve INC-n [note] | note INC-n TEXT | status [INC-n] | help")


def help_text(command: str) -> str:
    return "\n".join([
        f"`{command} declare SEV-2 Payment API Down --service payments` declare an incident"
        " (a quoted title too; services comma-separated)",
        f"`{command} ack INC-7 [note]` acknowledge it",
        f"`{command} resolve INC-7 [note]` resolve it",
        f"`{command} note INC-7 TEXT` add a note to its timeline",
        f"`{command} status [INC-7]` one incident, or the open ones (newest first)",
    ])


def run(runtime: im.Runtime, connector: str, actor: im.Origin, command: str,
        text: str) -> Outcome:
    """Carry out the command `text` typed (after the command's name)."""
    command = command or "/im"
    verb, _, rest = text.strip().partition(" ")
    verb, rest = verb.lower(), rest.strip()
    if verb in ("", "help"):
        return Outcome(text=help_text(command))
    if verb not in ("declare", "ack", "resolve", "note", "status"):
        return failed(f"Unknown command {escape(verb)!r}. {usage(command)}")

    def act() -> Outcome:
        if verb == "declare":
            return _declare(runtime, actor, command, rest)
        if verb == "status":
            return _status(runtime, connector, rest)
        incident_id, _, words = rest.partition(" ")
        if not incident_id:
            return failed(f"Which incident? {usage(command)}")
        if verb == "note":
            if not words.strip():
                return failed(f"The note is empty. {usage(command)}")
            return acting.note(runtime, incident_id, words.strip(), actor=actor)
        return acting.transition(runtime, incident_id, verb, note=words.strip(), actor=actor)

    return acting.safely(connector, act)


def _declare(runtime: im.Runtime, actor: im.Origin, command: str, text: str) -> Outcome:
    from im.app import incidents as app

    lexer = shlex.shlex(text.translate(_QUOTES), posix=True)
    lexer.whitespace_split, lexer.quotes, lexer.commenters = True, '"', ""
    try:
        words = list(lexer)
    except ValueError:
        return failed(f"A quote is not closed. {usage(command)}")
    services: list[str] = []
    title: list[str] = []
    index = 0
    while index < len(words):
        word = words[index]
        name, equals, value = word.partition("=")
        if name in _SERVICE_OPTIONS and equals:
            services.append(value)
        elif word in _SERVICE_OPTIONS:
            if index + 1 == len(words):
                return failed(f"{word} needs the services: --service a,b")
            services.append(words[index + 1])
            index += 1
        else:
            title.append(word)
        index += 1
    if not title:
        return failed(f"Give the severity and the title. {usage(command)}")
    severity, title = title[0], title[1:]
    if not title:
        return failed(f"The title is missing. {usage(command)}")
    if not services:
        return failed(f"Give the services with --service a,b. {usage(command)}")
    incident = app.declare(runtime, title=" ".join(title), severity=severity,
                           services=services, actor=actor)
    return Outcome(text=f"Declared {incident.id}: {incident.severity.value}"
                        f" {escape(incident.title)} ({escape(', '.join(incident.services))})",
                   changed=True)


def _status(runtime: im.Runtime, connector: str, rest: str) -> Outcome:
    from im.app import incidents as app

    if rest:
        view = app.show(runtime, app.parse_incident_id(rest.split()[0]))
        incident = view.incident
        lines = [incident_line(incident),
                 f"Declared by {escape(incident.created_by)} at"
                 f" {incident.created_at:%Y-%m-%d %H:%M} UTC"
                 + (f" · assigned to {escape(incident.assignee)}" if incident.assignee
                    else "")]
        linked = [f"<{link.remote_url}|{escape(link.connector)}"
                  f"{' #' + link.remote_number if link.remote_number else ''}>"
                  if link.remote_url else escape(link.connector) for link in view.links
                  if link.connector != connector]  # not the message the answer is beside
        if linked:
            lines.append("Linked: " + " · ".join(linked))
        return Outcome(text="\n".join(lines))
    found = app.list_incidents(runtime, statuses=["open,mitigated"], limit=STATUS_LIMIT + 1)
    if not found:
        return Outcome(text="No open incidents")
    more = f" (the latest {STATUS_LIMIT})" if len(found) > STATUS_LIMIT else ""
    lines = [f"Open incidents, newest first{more}:"]
    lines += [incident_line(incident) for incident in found[:STATUS_LIMIT]]
    return Outcome(text="\n".join(lines))
