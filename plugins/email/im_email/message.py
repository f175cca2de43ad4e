"""The notice of an incident as an e-mail: subject, plain-text and HTML bodies, and the
Message-ID that makes a second sending of the same notice recognizable."""

from __future__ import annotations

import hashlib
import html
import re
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

import im

# what a subject says after the title, for a rule whose trigger is not a declaration
_HAPPENED = {"severity_changed": "severity changed", "acknowledged": "acknowledged",
             "resolved": "resolved", "closed": "closed", "sla_breached": "SLA breached",
             "note_added": "note added"}
MAX_DESCRIPTION = 4000


def one_line(text: str) -> str:
    """Text safe in a header: no line breaks nor other control characters."""
    return " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())


def subject(incident: im.Incident, trigger: str) -> str:
    """`[SEV-1] INC-42 Payment API Down`, and what happened when it was not the declaration."""
    text = f"[{incident.severity.value}] {incident.id} {one_line(incident.title)}"
    happened = _HAPPENED.get(trigger)
    return f"{text}: {happened}" if happened else text


def _domain(address: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "", address.rpartition("@")[2]) or "im.invalid"


def message_id(incident: im.Incident, event: im.TimelineEvent | None, rule: str,
               sender: str) -> str:
    """The same for every sending of one rule's notice of one event: a duplicate sent after a
    crash between sending and recording is recognizable (and dropped by mail systems that drop
    repeated Message-IDs). Without an event (it was deleted), a fresh one."""
    domain = _domain(sender)
    if event is None:
        return make_msgid(idstring=f"{incident.id}.{incident.correlation_id}", domain=domain)
    # short enough that no mail system folds the header
    digest = hashlib.sha256(f"{incident.correlation_id}:{rule}".encode()).hexdigest()[:20]
    return f"<{incident.id}.e{event.id}.{digest}@{domain}>"


def thread_id(incident: im.Incident, sender: str) -> str:
    """Every notice of one incident refers to it, so mail readers thread them together."""
    return f"<{incident.id}.{incident.correlation_id[:20]}@{_domain(sender)}>"


def _facts(incident: im.Incident) -> list[tuple[str, str]]:
    return [("Severity", incident.severity.value), ("Status", incident.status.value),
            ("Services", ", ".join(incident.services) or "none"),
            ("Assignee", incident.assignee or "nobody yet"),
            ("Declared", f"{incident.created_at:%Y-%m-%d %H:%M} UTC by {incident.created_by}")]


def _links(incident: im.Incident, links: list[im.Link],
           view_url: str | None) -> list[tuple[str, str]]:
    found = []
    if view_url:
        found.append((f"View {incident.id}", view_url.replace("{id}", incident.id)))
    for link in links:
        if link.remote_url:
            found.append((f"{link.connector} #{link.remote_number or link.remote_id}"
                          f" ({link.service})", link.remote_url))
    return found


def _description(incident: im.Incident) -> str:
    text = incident.description
    return text if len(text) <= MAX_DESCRIPTION else text[:MAX_DESCRIPTION - 1] + "…"


def plain_text(incident: im.Incident, event: im.TimelineEvent | None, links: list[im.Link],
               view_url: str | None, rule: str) -> str:
    lines = [f"{incident.severity.value} {incident.id}: {incident.title}", ""]
    if event is not None:
        lines += [event.text, ""]
    lines += [f"{title + ':':<10} {value}" for title, value in _facts(incident)]
    if incident.description:
        lines += ["", _description(incident)]
    found = _links(incident, links, view_url)
    if found:
        lines += [""] + [f"{title}: {url}" for title, url in found]
    lines += ["", f"Sent by im for the workflow {rule}."]
    return "\n".join(lines) + "\n"


def html_body(incident: im.Incident, event: im.TimelineEvent | None, links: list[im.Link],
              view_url: str | None, rule: str) -> str:
    e = html.escape
    colour = "#b91c1c" if incident.severity.value in ("SEV-1", "SEV-2") else "#b45309"
    parts = ["<!DOCTYPE html>", "<html><body style=\"font-family: sans-serif\">",
             f"<h2 style=\"color: {colour}\">{e(incident.severity.value)} {e(incident.id)}:"
             f" {e(incident.title)}</h2>"]
    if event is not None:
        parts.append(f"<p><em>{e(event.text)}</em></p>")
    parts.append("<table>")
    parts += [f"<tr><th align=\"left\">{e(title)}</th><td>{e(value)}</td></tr>"
              for title, value in _facts(incident)]
    parts.append("</table>")
    if incident.description:
        parts.append(f"<p style=\"white-space: pre-wrap\">{e(_description(incident))}</p>")
    found = _links(incident, links, view_url)
    if found:
        parts.append("<ul>")
        parts += [f"<li><a href=\"{e(url)}\">{e(title)}</a></li>" for title, url in found]
        parts.append("</ul>")
    parts += [f"<p style=\"color: #6b7280\">Sent by im for the workflow {e(rule)}.</p>",
              "</body></html>"]
    return "\n".join(parts) + "\n"


def notice(request: im.ActionRequest, *, sender: str, recipients: list[str],
           links: list[im.Link], view_url: str | None, now: object) -> EmailMessage:
    incident, event = request.incident, request.event
    msg = EmailMessage()
    msg["Subject"] = subject(incident, request.trigger.value)
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = format_datetime(now)  # type: ignore[arg-type]
    msg["Message-ID"] = message_id(incident, event, request.rule, sender)
    msg["References"] = thread_id(incident, sender)
    # an automatic notice (RFC 3834): out-of-office replies are not sent back to it
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-IM-Incident"] = incident.id
    msg.set_content(plain_text(incident, event, links, view_url, request.rule))
    msg.add_alternative(html_body(incident, event, links, view_url, request.rule),
                        subtype="html")
    return msg
