"""Sending mail (password resets, security notices) through an SMTP server, with `smtplib`.

TLS is on by default and verified: `starttls` (port 587) upgrades the connection before
anything else is said and fails rather than continue in clear text if the server does not
offer it; `tls` (port 465) speaks TLS from the first byte. Certificates are checked against the
system's trust store (`ssl.create_default_context()`) unless a context is passed in. `none`
sends in clear text and is allowed only to a server on this host (a local relay).

A message has one recipient, checked to be one address on one line before any header is
built, so user input cannot add recipients or headers. The body may hold a reset link: it is
never logged, and no error message quotes it (or the SMTP password).
"""

from __future__ import annotations

import re
import smtplib
import ssl
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Literal

from tradeguard.core.clock import Clock, SystemClock
from tradeguard.core.errors import ConfigError, TradeguardError
from tradeguard.core.hosts import is_loopback_host
from tradeguard.secrets import Secret

__all__ = ["MailError", "Mailer", "Security", "SmtpConfig"]

Security = Literal["starttls", "tls", "none"]
_SECURITIES = ("starttls", "tls", "none")
_LOOPBACK_NAMES = ("localhost",)
# One address, no display name, no quoting, no comments: what a person's account email is.
_ADDRESS = re.compile(r"[^@\s\"<>(),;:\\\[\]]+@[^@\s\"<>(),;:\\\[\]]+", re.ASCII)
_MAX_ADDRESS = 254  # RFC 5321's limit on a path


class MailError(TradeguardError):
    """A mail could not be handed to the SMTP server; the message names the server, the step
    that failed and why (never the password or the mail's content)."""

    exit_code = 1


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how to send mail. `username` and `password` come together or not at all."""

    host: str
    port: int
    security: Security
    username: str | None
    password: Secret | None
    sender: str
    timeout: float = 10.0

    def __post_init__(self) -> None:
        problem = _config_problem(self)
        if problem is not None:
            raise ConfigError(f"SMTP settings: {problem}")


def _config_problem(config: SmtpConfig) -> str | None:
    if not config.host or not config.host.isprintable() or " " in config.host:
        return "the host must be a host name or address"
    if not isinstance(config.port, int) or not 1 <= config.port <= 65535:
        return "the port must be from 1 to 65535"
    if config.security not in _SECURITIES:
        return "security must be starttls, tls or none"
    if config.security == "none" and not is_loopback_host(config.host):
        return (
            "security 'none' sends mail and any password in clear text, so it is allowed only "
            "to a server on this host (127.0.0.1, ::1, localhost); use starttls or tls"
        )
    if (config.username is None) != (config.password is None):
        return "give both a user name and a password, or neither"
    if config.password is not None and not isinstance(config.password, Secret):
        return "the password must be a Secret"
    if not _is_address(config.sender):
        return "the sender must be one email address, like tradeguard@example.com"
    if not config.timeout > 0:
        return "the timeout must be a positive number of seconds"
    return None


class Mailer:
    """Sends one message at a time, each over its own connection (mail is rare here)."""

    def __init__(
        self,
        config: SmtpConfig,
        *,
        ssl_context: ssl.SSLContext | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.config = config
        self._ssl_context = ssl_context or ssl.create_default_context()
        self._clock = clock or SystemClock()

    def send(self, to: str, subject: str, body: str) -> None:
        """Hand one plain-text message to the server, or raise `MailError`."""
        if not _is_address(to):
            raise MailError(
                f"not sending mail through {self._server}: the recipient is not one email "
                "address on one line"
            )
        if not isinstance(subject, str) or "\r" in subject or "\n" in subject:
            raise ValueError("subject must be one line of text")
        self._deliver(self._message(to, subject, body), to)

    @property
    def _server(self) -> str:
        return f"{self.config.host}:{self.config.port}"

    def _message(self, to: str, subject: str, body: str) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.config.sender
        message["To"] = to
        message["Subject"] = subject
        message["Date"] = format_datetime(self._clock.now())
        message["Message-ID"] = make_msgid(domain=self.config.sender.rpartition("@")[2])
        message.set_content(body)
        return message

    def _deliver(self, message: EmailMessage, to: str) -> None:
        step = "connecting"
        reason: str | None = None
        try:
            with self._connect() as smtp:
                if self.config.security == "starttls":
                    step = "starting TLS"
                    smtp.starttls(context=self._ssl_context)
                if self.config.username is not None and self.config.password is not None:
                    step = "logging in"
                    with self.config.password.reveal_text() as password:
                        smtp.login(self.config.username, password)
                step = "sending"
                smtp.send_message(message, from_addr=self.config.sender, to_addrs=[to])
        except (smtplib.SMTPException, OSError) as error:
            # Described, then raised outside the handler: smtplib's exception is not chained.
            reason = _describe(error, self.config.timeout)
        if reason is not None:
            raise MailError(
                f"mail through the SMTP server {self._server} failed while {step}: {reason}"
            )

    def _connect(self) -> smtplib.SMTP:
        host, port, timeout = self.config.host, self.config.port, self.config.timeout
        if self.config.security == "tls":
            return smtplib.SMTP_SSL(host, port, timeout=timeout, context=self._ssl_context)
        return smtplib.SMTP(host, port, timeout=timeout)


def _describe(error: BaseException, timeout: float) -> str:
    """Why a step failed, from the exception's kind and codes only (never its arguments, which
    can hold the server's echo of what we sent)."""
    if isinstance(error, smtplib.SMTPAuthenticationError):
        return f"the server refused the user name and password (SMTP {error.smtp_code}); check them"
    if isinstance(error, smtplib.SMTPNotSupportedError):
        return "the server does not offer it; check the security setting and port"
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return "the server refused the recipient address"
    if isinstance(error, smtplib.SMTPSenderRefused):
        return f"the server refused the sender address (SMTP {error.smtp_code})"
    if isinstance(error, smtplib.SMTPResponseException):
        return f"the server answered SMTP {error.smtp_code}"
    if isinstance(error, smtplib.SMTPServerDisconnected):
        # smtplib reports a read that timed out as a disconnection, with the timeout as context
        if isinstance(error.__context__, TimeoutError):
            return f"no answer within {timeout:g} s"
        return "the server closed the connection"
    if isinstance(error, smtplib.SMTPException):
        return f"the SMTP exchange failed ({type(error).__name__})"
    if isinstance(error, ssl.SSLCertVerificationError):
        return (
            f"the server's TLS certificate was not accepted ({error.verify_message}); "
            "check the host name and that its certificate is trusted"
        )
    if isinstance(error, ssl.SSLError):
        return f"the TLS handshake failed ({error.reason or type(error).__name__})"
    if isinstance(error, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(error, OSError):
        return error.strerror or type(error).__name__
    return type(error).__name__


def _is_address(value: object) -> bool:
    """One plain ASCII `local@domain` address, on one line, that the email package parses as
    such. (Internationalized addresses would need SMTPUTF8 from every relay; not yet.)"""
    if not isinstance(value, str) or len(value) > _MAX_ADDRESS:
        return False
    if not (value.isascii() and value.isprintable() and _ADDRESS.fullmatch(value)):
        return False
    try:
        parsed = Address(addr_spec=value)
    except (ValueError, IndexError, HeaderParseError):
        return False
    return parsed.addr_spec == value and bool(parsed.username) and bool(parsed.domain)
