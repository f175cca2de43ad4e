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
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Annotated, Any

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


class _HideWebhookUrls(logging.Filter):
    """httpx logs every request's URL at INFO; a webhook URL is a secret, so it is masked in
    what httpx logs, whoever configures logging."""

    urls: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.urls and isinstance(record.args, tuple):
            record.args = tuple("[Teams webhook URL]" if str(arg) in self.urls else arg
                                for arg in record.args)
        return True


_hide = _HideWebhookUrls()
logging.getLogger("httpx").addFilter(_hide)


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: a number of seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


def _error_text(body: bytes, url: str) -> str:
    """The remote's reason, short, on one line, without the URL or any signature in it."""
    text = body.decode("utf-8", "replace")
    try:
        data = msgspec.json.decode(body)
        error = data.get("error") if isinstance(data, dict) else None
        if isinstance(error, dict):
            text = ": ".join(str(error[k]) for k in ("code", "message") if error.get(k))
    except msgspec.DecodeError:
        pass
    text = text.replace(url, "[webhook URL]")
    text = re.sub(r"sig=[^&\s\"']+", "sig=[hidden]", text)
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
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
        import httpx

        url = self.settings.webhook_url  # the URL: the core has read env:VARIABLE
        links = self.runtime.store.links(request.incident.id)
        card = incident_card(request.incident, event=request.event, links=links,
                             title_prefix=self.settings.title_prefix,
                             view_url=self.settings.view_url)
        timeout = self.settings.timeout
        if request.deadline is not None:
            timeout = max(1.0, min(timeout, request.deadline - time.monotonic()))
        _hide.urls.add(url)
        try:
            with httpx.Client(timeout=timeout, follow_redirects=False) as client:
                response = client.post(url, json=message(card))
        except httpx.TimeoutException:
            raise im.ConnectorError(f"Teams did not answer within {timeout:.0f} s",
                                    retryable=True) from None
        except httpx.HTTPError as error:
            reason = str(error).replace(url, "[webhook URL]") or type(error).__name__
            raise im.ConnectorError(f"could not reach Teams: {reason}",
                                    retryable=True) from None
        self._check(response, url)
        log.info("posted %s's card to %s (HTTP %d)", request.incident.id, self._where(),
                 response.status_code)
        where = self.settings.channel
        return im.ActionResult(timeline=[f"Teams notified: {where}" if where
                                         else "Teams channel notified"])

    def _check(self, response: Any, url: str) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        reason = _error_text(response.content, url)
        said = f"HTTP {status}" + (f": {reason}" if reason else "")
        if status == 429:
            wait = retry_after(response.headers.get("retry-after"))
            raise im.ConnectorError(f"Teams is rate limiting ({said})", retryable=True,
                                    retry_after=wait)
        if status >= 500 or status == 408:
            raise im.ConnectorError(f"Teams is unavailable ({said})", retryable=True)
        hint = ""
        if status in (401, 403, 404):
            hint = ("; check the webhook URL (the flow may have been turned off or deleted,"
                    " or its URL renewed)")
        elif 300 <= status < 400:
            hint = "; the webhook URL redirects: use the URL the Workflows app gives"
        raise im.ConnectorError(f"Teams refused the card ({said}){hint}", retryable=False)
