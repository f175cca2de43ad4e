"""`teams.notify`: post an incident's Adaptive Card to a Teams channel through a Workflows
(Power Automate) webhook.

The webhook URL is a credential (anyone holding it can post to the channel), so it is a secret
setting (`im.secret()`): a rule holds it either as the URL itself or as `env:VARIABLE`. im hides
a literal in what it prints of a rule (`im workflow show`, `list --json`, the runs shown) and
reads `env:` when the action runs, so the action is given the URL; it must appear in no output,
message or log line of the action either.

Teams gives no idempotency: the webhook has no key and returns nothing to look up. A crash
between Teams taking the card and im recording it posts the card again when the run is retried:
at most once more per crash, so a duplicate card is possible and bounded.
"""

from __future__ import annotations

import logging
import re
from typing import Annotated
from urllib.parse import urlsplit

import msgspec

import im
from im_teams.card import incident_card, message

log = logging.getLogger("im.teams")

ENV = re.compile(r"^env:[A-Za-z_][A-Za-z0-9_]*$")
MAX_ERROR_TEXT = 200


class TeamsSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # the Workflows webhook URL, or env:VARIABLE holding it (a secret: never printed)
    webhook_url: Annotated[str, im.secret("Workflows webhook URL")]
    channel: str | None = None  # how the timeline names it ("#incidents"); Teams does not say
    title_prefix: str = ""  # put before the card's title ("[PROD] ")
    view_url: str | None = None  # a button to the incident: "https://im.example.com/incidents/{id}"
    timeout: float = 10.0  # seconds to wait for Teams

    def __post_init__(self) -> None:
        # saved: the URL or env:VARIABLE; run: the URL (the core read the variable). The
        # messages never repeat the value, a secret
        if self.webhook_url.startswith("env:"):
            if not ENV.match(self.webhook_url):
                raise ValueError("webhook_url must be env:VARIABLE (a letter or _, then"
                                 " letters, digits or _) or the Workflows URL - at"
                                 " `$.webhook_url`")
        elif not self.webhook_url.startswith(("https://", "http://")):
            raise ValueError("webhook_url must be the Workflows URL (http(s)://...) or"
                             " env:VARIABLE - at `$.webhook_url`")
        if self.view_url is not None and not self.view_url.startswith(("https://", "http://")):
            raise ValueError("view_url must be an http(s) URL - at `$.view_url`")
        if not 0 < self.timeout <= 120:
            raise ValueError("timeout must be between 0 and 120 seconds - at `$.timeout`")


def _reason(error: im.ConnectorHTTPError, client: im.ConnectorClient) -> str:
    """What Teams said of a refusal, short and on one line: its error's code and message, or
    the body; the URL masked in it (before it is cut, so no part of it is left)."""
    answer = error.response
    if answer is None:
        return ""
    body = answer.content
    text = body.decode("utf-8", "replace")
    try:
        data = msgspec.json.decode(body)
        said = data.get("error") if isinstance(data, dict) else None
        if isinstance(said, dict):
            text = ": ".join(str(said[k]) for k in ("code", "message") if said.get(k))
    except msgspec.DecodeError:
        pass
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in client.mask(text)).split())
    return text[:MAX_ERROR_TEXT]


class TeamsNotify(im.WorkflowAction):
    name = "teams.notify"
    description = "Post the incident's card to a Microsoft Teams channel (Workflows webhook)"
    Settings = TeamsSettings
    settings: TeamsSettings
    defaults = (im.DefaultRule(name="teams-notice", trigger=im.Trigger.DECLARED,
                               severities=[im.Severity.SEV1, im.Severity.SEV2],
                               description="a card in the incident channel for every SEV-1"
                                           " and SEV-2"),)

    def _where(self) -> str:
        return f"Teams channel {self.settings.channel}" if self.settings.channel else (
            "the Teams channel")

    def describe(self, request: im.ActionRequest) -> str:
        # `im workflow test` describes the rule as saved: name the variable, never the URL
        url = self.settings.webhook_url
        source = f"webhook from {url}" if url.startswith("env:") else "webhook URL in the rule"
        return f"post {request.incident.id}'s card to {self._where()} ({source})"

    def run(self, request: im.ActionRequest) -> im.ActionResult:
        url = self.settings.webhook_url  # the URL: the core has read env:VARIABLE
        links = self.runtime.store.links(request.incident.id)
        card = incident_card(request.incident, event=request.event, links=links,
                             title_prefix=self.settings.title_prefix,
                             view_url=self.settings.view_url)
        # the client keeps to the run's deadline, and masks the URL (a secret setting) in
        # its errors and log lines; one attempt: Teams has no idempotency, and the workflow
        # runner tries the run again with backoff, after the Retry-After a 429 gives
        parts = urlsplit(url)
        client = im.connector_client(self, base_url=f"{parts.scheme}://{parts.netloc}",
                                     system="Teams", timeout=self.settings.timeout,
                                     max_attempts=1)
        try:
            with client, client.until(request.deadline):
                response = client.request("POST", url, json=message(card))
        except im.ConnectorHTTPError as error:
            if error.status is None:  # no answer: the client's words say why
                raise
            raise self._refusal(error, client) from None
        log.info("posted %s's card to %s (HTTP %d)", request.incident.id, self._where(),
                 response.status_code)
        where = self.settings.channel
        return im.ActionResult(timeline=[f"Teams notified: {where}" if where
                                         else "Teams channel notified"])

    def _refusal(self, error: im.ConnectorHTTPError, client: im.ConnectorClient
                 ) -> im.ConnectorError:
        """An answer other than 2xx in Teams' words; retryable and its wait as the client
        read them."""
        status = error.status
        reason = _reason(error, client)
        said = f"HTTP {status}" + (f": {reason}" if reason else "")
        if status == 429:
            return im.ConnectorError(f"Teams is rate limiting ({said})", retryable=True,
                                     retry_after=error.retry_after)
        if error.retryable:  # 5xx, 408
            return im.ConnectorError(f"Teams is unavailable ({said})", retryable=True,
                                     retry_after=error.retry_after)
        hint = ""
        if status in (401, 403, 404):
            hint = ("; check the webhook URL (the flow may have been turned off or deleted,"
                    " or its URL renewed)")
        elif status is not None and 300 <= status < 400:
            hint = "; the webhook URL redirects: use the URL the Workflows app gives"
        return im.ConnectorError(f"Teams refused the card ({said}){hint}", retryable=False)
