"""A real SMTP server on loopback (aiosmtpd) for the tests of email.notify and `im demo`:
STARTTLS with a certificate from a throwaway certificate authority (trustme), AUTH LOGIN and
PLAIN, recipients refused on demand, and the answer to a message it took held on demand
(`hold`). aiosmtpd and trustme come with the `test` extra."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

USER, PASSWORD = "im-notices", "correct horse battery staple"


@dataclass
class Delivery:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    tls: bool
    auth: str | None


@dataclass
class Handler:
    delivered: list[Delivery] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)  # address -> reply ("550 ...")
    logins: list[tuple[str, str]] = field(default_factory=list)  # (mechanism, user)
    hold: float = 0.0  # seconds between taking a message and saying so (250)
    hold_quit: float = 0.0  # seconds before answering QUIT
    pace: float = 0.0  # seconds before answering each MAIL and RCPT (a slow server)

    async def handle_MAIL(self, server, session, envelope, address, mail_options):  # noqa: N802
        if self.pace:
            await asyncio.sleep(self.pace)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if self.pace:
            await asyncio.sleep(self.pace)
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        message = message_from_bytes(envelope.content, policy=policy.default)
        self.delivered.append(Delivery(envelope.mail_from, list(envelope.rcpt_tos), message,
                                       tls=session.ssl is not None,
                                       auth=session.auth_data and session.auth_data.login
                                       .decode()))
        if self.hold:
            await asyncio.sleep(self.hold)
        return "250 Message accepted for delivery"

    async def handle_QUIT(self, server, session, envelope):  # noqa: N802
        if self.hold_quit:
            await asyncio.sleep(self.hold_quit)
        return "221 Bye"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        self.logins.append((mechanism, login))
        # handled=False: aiosmtpd answers a failure with 535 itself
        return AuthResult(success=(login, password) == (USER, PASSWORD), handled=False,
                          auth_data=auth_data)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SmtpServer:
    """Started with `with`: `port`, `ca_file` (the CA that signed its certificate),
    `delivered`, `refuse`, `logins`."""

    def __init__(self, folder: Path, *, port: int | None = None,
                 exclude: list[str] | None = None) -> None:
        self.ca = trustme.CA()
        self.ca_file = folder / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert("127.0.0.1", "localhost").configure_cert(tls)
        self.handler = Handler()
        self.port = port or free_port()
        self.controller = Controller(
            self.handler, hostname="127.0.0.1", port=self.port, tls_context=tls,
            require_starttls=True, authenticator=self.handler.authenticate,
            auth_require_tls=True, auth_exclude_mechanism=exclude or [])

    @property
    def delivered(self) -> list[Delivery]:
        return self.handler.delivered

    def __enter__(self) -> SmtpServer:
        # aiosmtpd warns on its own logger of an attribute it sets itself at each login
        logging.getLogger("mail.log").setLevel(logging.ERROR)
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()
