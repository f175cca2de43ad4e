"""`email.notify`: mail a notice of an incident over SMTP (STARTTLS and a login by default),
to recipients chosen by the incident's severity.

The password is a secret setting (`im.secret()`): a rule holds it either as the password itself
or as `env:VARIABLE`. im hides a literal in what it prints of a rule (`im workflow show`, `list
--json`, the runs shown) and reads `env:` when the action runs, so the action is given the
password, and no message or log line of it repeats the password. The server's certificate is
always verified, against the system's certificate authorities or the one in `ca_file`;
`tls: "none"` (a relay on loopback) is a choice a rule makes in so many words, and it cannot be
combined with a login.

SMTP gives no idempotency: a crash between the server taking the message and im recording it
sends it again when the run is retried. Each sending of one rule's notice of one event carries
the same Message-ID (the incident's and the event's ids), so the duplicate is recognizable, and
mail systems that drop repeated Message-IDs drop it.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import time
from email.utils import parseaddr
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec

import im

if TYPE_CHECKING:
    import smtplib

log = logging.getLogger("im.email")

ENV = re.compile(r"^env:[A-Za-z_][A-Za-z0-9_]*$")


def _is_address(text: str) -> bool:
    name, address = parseaddr(text)
    local, at, domain = address.partition("@")
    return bool(local and at and "." in domain and not name)


class EmailSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True,
                    rename={"from_": "from"}):
    host: str  # the SMTP server (a relay: smtp.office365.com, email-smtp.eu-west-1.amazonaws.com)
    port: int = 587
    # starttls: plain connection upgraded to TLS (port 587); ssl: TLS from the start (465);
    # none: no TLS at all (a relay on loopback), never with a login
    tls: Literal["starttls", "ssl", "none"] = "starttls"
    ca_file: str | None = None  # a CA bundle (PEM, absolute path) to trust instead of the system's
    username: str | None = None
    # the password, or env:VARIABLE holding it (a secret: never printed)
    password: Annotated[str | None, im.secret("SMTP password")] = None
    from_: str  # the sender, "im@company.com"
    to: list[str] = []  # who gets every notice of the rule
    # who else gets the notice of an incident of that severity (added to `to`)
    to_by_severity: dict[im.Severity, list[str]] = {}
    view_url: str | None = None  # a link to the incident: "https://im.example.com/incidents/{id}"
    timeout: float = 30.0  # seconds for each step of the conversation with the server

    def __post_init__(self) -> None:
        if not self.host or any(ch.isspace() for ch in self.host):
            raise ValueError("host must be a host name - at `$.host`")
        if self.ca_file is not None and not os.path.isabs(self.ca_file):
            # im serve and the commands run from different folders
            raise ValueError("ca_file must be an absolute path - at `$.ca_file`")
        if not 0 < self.port < 65536:
            raise ValueError("port must be between 1 and 65535 - at `$.port`")
        if not _is_address(self.from_):
            raise ValueError("from must be an e-mail address - at `$.from`")
        for address in self.to:
            if not _is_address(address):
                raise ValueError(f"{address!r} is not an e-mail address - at `$.to`")
        for severity, addresses in self.to_by_severity.items():
            for address in addresses:
                if not _is_address(address):
                    raise ValueError(f"{address!r} is not an e-mail address"
                                     f" - at `$.to_by_severity.{severity.value}`")
        if not self.to and not any(self.to_by_severity.values()):
            raise ValueError("no recipients: give to, to_by_severity or both - at `$.to`")
        # saved: the password or env:VARIABLE; run: the password (the core read the
        # variable). The messages never repeat the value, a secret
        if self.password is not None:
            if not self.password:
                raise ValueError("password is empty - at `$.password`")
            if self.password.startswith("env:") and not ENV.match(self.password):
                raise ValueError("password must be env:VARIABLE (a letter or _, then letters,"
                                 " digits or _) or the password itself - at `$.password`")
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together - at `$.password`")
        if self.tls == "none" and self.password is not None:
            raise ValueError("a login needs TLS (the password would cross the network in"
                             " clear): use starttls or ssl - at `$.tls`")
        if self.view_url is not None and not self.view_url.startswith(("https://", "http://")):
            raise ValueError("view_url must be an http(s) URL - at `$.view_url`")
        if not 0 < self.timeout <= 300:
            raise ValueError("timeout must be between 0 and 300 seconds - at `$.timeout`")

    def recipients(self, severity: im.Severity) -> list[str]:
        """`to`, then those for `severity`, each once."""
        return list(dict.fromkeys([*self.to, *self.to_by_severity.get(severity, [])]))


class _OutOfTime(TimeoutError):
    """The run's time (its deadline) is up."""


class _KeepsToDeadline:
    """An smtplib client whose every wait for the server ends by `deadline` (time.monotonic()),
    so that the whole conversation, a dozen commands, keeps to the time the run was given and
    not `timeout` for each: a run still going after its claim ran out would be taken, and its
    notice mailed, by another process meanwhile. Past the deadline it raises TimeoutError."""

    sock: Any
    timeout: float

    def __init__(self, *args: Any, deadline: float | None = None, **kwargs: Any) -> None:
        self.deadline = deadline
        super().__init__(*args, **kwargs)

    def _time_left(self) -> None:
        if self.deadline is None or self.sock is None:
            return
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise _OutOfTime
        try:
            self.sock.settimeout(min(left, self.timeout))
        except OSError:  # a socket a failed STARTTLS left: the call itself fails, as it would
            pass

    def send(self, s: Any) -> None:
        self._time_left()
        super().send(s)  # type: ignore[misc]

    def getreply(self) -> tuple[int, bytes]:
        import smtplib

        self._time_left()
        try:
            return super().getreply()  # type: ignore[misc, no-any-return]
        except smtplib.SMTPServerDisconnected:  # what a read that timed out becomes
            if self.deadline is not None and time.monotonic() >= self.deadline:
                raise _OutOfTime from None
            raise

    def __exit__(self, *exc: object) -> None:
        # QUIT, as the conversation ends whichever way it went: the mail taken or not, it
        # changes nothing, and must not raise over what did happen
        self.deadline = None
        super().__exit__(*exc)  # type: ignore[misc]


@functools.cache
def _client(tls: str) -> type[smtplib.SMTP]:
    """smtplib's client (TLS from the start for "ssl"), keeping to a deadline."""
    import smtplib

    base = smtplib.SMTP_SSL if tls == "ssl" else smtplib.SMTP
    return type(f"Deadline{base.__name__}", (_KeepsToDeadline, base), {})


def _reply(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return " ".join(f"{code} {text}".split())[:200]


class EmailNotify(im.WorkflowAction):
    name = "email.notify"
    description = "Mail a notice of the incident (to management) over SMTP"
    Settings = EmailSettings
    settings: EmailSettings
    defaults = (im.DefaultRule(name="management-notice", trigger=im.Trigger.DECLARED,
                               severities=[im.Severity.SEV1, im.Severity.SEV2],
                               description="management is told of every SEV-1 and SEV-2"),)

    def describe(self, request: im.ActionRequest) -> str:
        from im_email.message import subject

        to = self.settings.recipients(request.incident.severity)
        if not to:
            return f"mail nothing (no recipients for {request.incident.severity.value})"
        return (f"mail \"{subject(request.incident, request.trigger.value)}\" to"
                f" {', '.join(to)} through {self.settings.host}:{self.settings.port}")

    def run(self, request: im.ActionRequest) -> im.ActionResult:
        from im_email.message import notice

        settings = self.settings
        recipients = settings.recipients(request.incident.severity)
        if not recipients:
            log.info("no recipients for %s (%s): nothing mailed", request.incident.id,
                     request.incident.severity.value)
            return im.ActionResult()
        msg = notice(request, sender=settings.from_, recipients=recipients,
                     links=self.runtime.store.links(request.incident.id),
                     view_url=settings.view_url, now=self.runtime.clock())
        timeout = settings.timeout
        if request.deadline is not None:
            timeout = max(1.0, min(timeout, request.deadline - time.monotonic()))
        refused = self._send(msg, recipients, timeout, request.deadline)
        delivered = [address for address in recipients if address not in refused]
        log.info("mailed %s's notice to %s (Message-ID %s)", request.incident.id,
                 ", ".join(delivered), msg["Message-ID"])
        lines = [f"Management notified: {', '.join(delivered)}"]
        lines += [f"Management notice refused for {address}: {_reply(*reply)}"
                  for address, reply in refused.items()]
        return im.ActionResult(timeline=lines)

    def _send(self, msg: object, recipients: list[str], timeout: float,
              deadline: float | None) -> dict[str, tuple[int, bytes]]:
        """Send it; the recipients the server refused while taking it for the others."""
        import smtplib
        import socket
        import ssl

        settings = self.settings
        server = f"{settings.host}:{settings.port}"
        try:
            context = ssl.create_default_context(cafile=settings.ca_file)
        except (OSError, ssl.SSLError) as error:
            raise im.ConnectorError(f"cannot read ca_file {settings.ca_file}: {error}",
                                    retryable=False) from None
        local = socket.gethostname()  # not getfqdn(), which may wait on DNS
        try:
            client: Any = _client(settings.tls)
            if settings.tls == "ssl":
                smtp: smtplib.SMTP = client(settings.host, settings.port,
                                            local_hostname=local, timeout=timeout,
                                            context=context, deadline=deadline)
            else:
                smtp = client(settings.host, settings.port, local_hostname=local,
                              timeout=timeout, deadline=deadline)
            with smtp:
                smtp.ehlo()
                if settings.tls == "starttls":
                    if not smtp.has_extn("starttls"):
                        raise im.ConnectorError(
                            f"the SMTP server {server} does not offer STARTTLS; im will not"
                            " send over a plain connection (tls: \"ssl\" for a server that"
                            " speaks TLS from the start)", retryable=False)
                    smtp.starttls(context=context)
                    smtp.ehlo()
                if settings.username and settings.password is not None:
                    # the password: the core has read env:VARIABLE
                    smtp.login(settings.username, settings.password)
                return smtp.send_message(msg, to_addrs=recipients)  # type: ignore[arg-type]
        except im.ConnectorError:
            raise
        except smtplib.SMTPAuthenticationError as error:
            raise im.ConnectorError(
                f"the SMTP server {server} refused the login of {settings.username}"
                f" ({_reply(error.smtp_code, error.smtp_error)}): check username and the"
                " password", retryable=False) from None
        except smtplib.SMTPNotSupportedError as error:
            raise im.ConnectorError(f"the SMTP server {server}: {error}",
                                    retryable=False) from None
        except smtplib.SMTPRecipientsRefused as error:
            replies = error.recipients
            said = "; ".join(f"{address} ({_reply(*reply)})" for address, reply in
                             replies.items())
            temporary = all(400 <= code < 500 for code, _ in replies.values())
            raise im.ConnectorError(f"the SMTP server {server} refused every recipient:"
                                    f" {said}", retryable=temporary) from None
        except smtplib.SMTPResponseException as error:
            # 4xx: try again later (greylisting, a full queue); 5xx: refused for good
            temporary = 400 <= error.smtp_code < 500
            raise im.ConnectorError(
                f"the SMTP server {server} {'deferred' if temporary else 'refused'} the"
                f" notice ({_reply(error.smtp_code, error.smtp_error)})",
                retryable=temporary) from None
        except ssl.SSLCertVerificationError as error:
            raise im.ConnectorError(
                f"the certificate of the SMTP server {server} is not trusted"
                f" ({error.verify_message}); if it is signed by a private CA, give its"
                " certificate as ca_file", retryable=False) from None
        except ssl.SSLError as error:
            raise im.ConnectorError(f"TLS with the SMTP server {server} failed:"
                                    f" {error.reason or error}", retryable=True) from None
        except _OutOfTime:
            raise im.ConnectorError(f"the SMTP server {server} is too slow: the time this"
                                    " attempt had ran out", retryable=True) from None
        except (TimeoutError, socket.timeout):
            raise im.ConnectorError(f"the SMTP server {server} did not answer within"
                                    f" {timeout:.0f} s", retryable=True) from None
        except smtplib.SMTPServerDisconnected as error:
            raise im.ConnectorError(f"the SMTP server {server} closed the connection: {error}",
                                    retryable=True) from None
        except (OSError, smtplib.SMTPException) as error:
            reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
            raise im.ConnectorError(f"could not reach the SMTP server {server}: {reason}",
                                    retryable=True) from None
