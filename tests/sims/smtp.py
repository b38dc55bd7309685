"""An SMTP server on loopback (aiosmtpd) that keeps every message it accepts.

    with SmtpSim() as smtp:                      # plain, no auth
        Mailer(SmtpConfig(smtp.host, smtp.port, "none", None, None, "tg@example.com"))...
        smtp.messages[0].message["Subject"]

Options: `starttls` (an `ssl.SSLContext` with the server's certificate: STARTTLS offered and
required before MAIL), `implicit_tls` (a context: TLS from the first byte, like port 465),
`users` (name -> password: AUTH offered; with `starttls`, only after it, and then required).
`attempts` records each login tried (name, and whether it succeeded): never the password.
"""

from __future__ import annotations

import email
import email.policy
import socket
import ssl
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from types import TracebackType
from typing import Any, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

__all__ = ["Received", "SmtpSim"]


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    encrypted: bool
    login: str | None

    @property
    def message(self) -> EmailMessage:
        # SMTP lines end in CRLF; parsed content reads as Python text with plain newlines
        raw = self.raw.replace(b"\r\n", b"\n")
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class SmtpSim:
    starttls: ssl.SSLContext | None = None
    implicit_tls: ssl.SSLContext | None = None
    users: dict[str, str] | None = None
    host: str = "127.0.0.1"
    port: int = 0
    messages: list[Received] = field(default_factory=list)
    attempts: list[tuple[str, bool]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _controller: Controller | None = None

    def __enter__(self) -> Self:
        kwargs: dict[str, Any] = {}
        if self.starttls is not None:
            kwargs.update(tls_context=self.starttls, require_starttls=True)
        if self.users is not None:
            # With STARTTLS, AUTH is offered (and required) only once the connection is
            # encrypted. aiosmtpd counts only STARTTLS as encryption, so with implicit TLS, or in
            # a plain-text sim, AUTH is offered from the start and not required.
            kwargs.update(
                authenticator=self._authenticate,
                auth_required=self.starttls is not None,
                auth_require_tls=self.starttls is not None,
            )
        self.port = _free_port(self.host)
        self._controller = Controller(
            _Handler(self),
            hostname=self.host,
            port=self.port,
            ssl_context=self.implicit_tls,
            ready_timeout=10.0,
            **kwargs,
        )
        self._controller.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        name = auth_data.login.decode("utf-8", "replace")
        known = (self.users or {}).get(name)
        ok = known is not None and known.encode() == auth_data.password
        with self._lock:
            self.attempts.append((name, ok))
        return AuthResult(success=ok, handled=False, auth_data=auth_data)


class _Handler:
    def __init__(self, sim: SmtpSim) -> None:
        self.sim = sim

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        received = Received(
            mail_from=str(envelope.mail_from),
            rcpt_tos=list(envelope.rcpt_tos),
            raw=content if isinstance(content, bytes) else content.encode(),
            encrypted=session.ssl is not None or self.sim.implicit_tls is not None,
            login=session.login_data.decode() if isinstance(session.login_data, bytes) else None,
        )
        with self.sim._lock:
            self.sim.messages.append(received)
        return "250 Message accepted for delivery"


def _free_port(host: str) -> int:
    """A port nothing listens on now (aiosmtpd's Controller needs a number, not 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port
