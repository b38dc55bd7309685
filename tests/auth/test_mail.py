"""Mail through real smtplib to an aiosmtpd server on loopback: plain to a local relay,
STARTTLS and implicit TLS with a throw-away certificate, and every failure as a MailError that
names the server and the step, never the password."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tests.sims.smtp import SmtpSim

from tradeguard.auth.mail import Mailer, MailError, SmtpConfig
from tradeguard.core.clock import ManualClock
from tradeguard.core.errors import ConfigError
from tradeguard.secrets import Secret

SENDER = "tradeguard@example.com"
SMTP_PASSWORD = "smtp-pass-Zq81x"


@dataclass(frozen=True)
class Cert:
    server: ssl.SSLContext  # holds the key and certificate
    client: ssl.SSLContext  # trusts that certificate, and only it


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> Cert:
    """A self-signed certificate for localhost / 127.0.0.1, made for this test module."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tradeguard test SMTP")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory = tmp_path_factory.mktemp("smtp-cert")
    cert_pem = certificate.public_bytes(serialization.Encoding.PEM)
    (directory / "cert.pem").write_bytes(cert_pem)
    (directory / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(directory / "cert.pem", directory / "key.pem")
    client = ssl.create_default_context(cadata=cert_pem.decode())
    return Cert(server=server, client=client)


def _config(sim: SmtpSim, security: str, **overrides: object) -> SmtpConfig:
    values: dict[str, object] = {
        "host": sim.host,
        "port": sim.port,
        "security": security,
        "username": None,
        "password": None,
        "sender": SENDER,
        "timeout": 5.0,
    }
    values.update(overrides)
    return SmtpConfig(**values)  # type: ignore[arg-type]


@pytest.fixture
def plain() -> Iterator[SmtpSim]:
    with SmtpSim() as sim:
        yield sim


@pytest.fixture
def starttls(cert: Cert) -> Iterator[SmtpSim]:
    with SmtpSim(starttls=cert.server, users={"mailer": SMTP_PASSWORD}) as sim:
        yield sim


def _error_text(error: BaseException) -> str:
    return "".join(traceback.format_exception(error)) + repr(error)


# -- sending ---------------------------------------------------------------------------------


def test_a_plain_send_to_a_local_relay(plain: SmtpSim) -> None:
    clock = ManualClock(datetime(2026, 5, 4, 3, 2, 1, tzinfo=UTC))
    Mailer(_config(plain, "none"), clock=clock).send(
        "alice@example.org", "Reset your password", "Open https://tg.example/reset#token=x\n"
    )
    [mail] = plain.messages
    assert mail.mail_from == SENDER
    assert mail.rcpt_tos == ["alice@example.org"]
    message = mail.message
    assert message["From"] == SENDER
    assert message["To"] == "alice@example.org"
    assert message["Subject"] == "Reset your password"
    assert message["Date"] == "Mon, 04 May 2026 03:02:01 +0000"
    assert message["Message-ID"].endswith("@example.com>")
    assert message.get_content() == "Open https://tg.example/reset#token=x\n"
    assert not mail.encrypted


def test_non_ascii_subject_and_body_arrive_intact(plain: SmtpSim) -> None:
    Mailer(_config(plain, "none")).send("bob@example.org", "Grüße — reset", "Ünïcødé ✓\n")
    message = plain.messages[0].message
    assert message["Subject"] == "Grüße — reset"
    assert message.get_content() == "Ünïcødé ✓\n"


def test_starttls_with_login(starttls: SmtpSim, cert: Cert) -> None:
    config = _config(starttls, "starttls", username="mailer", password=Secret(SMTP_PASSWORD))
    Mailer(config, ssl_context=cert.client).send("alice@example.org", "Hello", "Body\n")
    [mail] = starttls.messages
    assert mail.encrypted
    assert mail.login == "mailer"
    assert starttls.attempts == [("mailer", True)]


def test_implicit_tls(cert: Cert) -> None:
    with SmtpSim(implicit_tls=cert.server, users={"mailer": SMTP_PASSWORD}) as sim:
        config = _config(sim, "tls", username="mailer", password=Secret(SMTP_PASSWORD))
        Mailer(config, ssl_context=cert.client).send("alice@example.org", "Hello", "Body\n")
        [mail] = sim.messages
        assert mail.encrypted
        assert mail.login == "mailer"


# -- failures --------------------------------------------------------------------------------


def test_a_wrong_password_is_a_mail_error_without_the_password(
    starttls: SmtpSim, cert: Cert
) -> None:
    wrong = "wrong-pass-Qx77z"
    config = _config(starttls, "starttls", username="mailer", password=Secret(wrong))
    with pytest.raises(MailError) as caught:
        Mailer(config, ssl_context=cert.client).send("alice@example.org", "Hello", "Body\n")
    assert caught.value.message == (
        f"mail through the SMTP server 127.0.0.1:{starttls.port} failed while logging in: "
        "the server refused the user name and password (SMTP 535); check them"
    )
    text = _error_text(caught.value)
    assert wrong not in text
    assert SMTP_PASSWORD not in text
    assert caught.value.__context__ is None
    assert starttls.attempts  # smtplib tries each mechanism the server offers
    assert {ok for _, ok in starttls.attempts} == {False}
    assert starttls.messages == []


def test_an_untrusted_certificate_stops_before_anything_is_sent(starttls: SmtpSim) -> None:
    config = _config(starttls, "starttls", username="mailer", password=Secret(SMTP_PASSWORD))
    with pytest.raises(MailError, match="failed while starting TLS: the server's TLS certificate "):
        Mailer(config).send("alice@example.org", "Hello", "Body\n")  # the system trust store
    assert starttls.attempts == []
    assert starttls.messages == []


def test_starttls_is_never_skipped_when_the_server_lacks_it(plain: SmtpSim) -> None:
    config = SmtpConfig("localhost", plain.port, "starttls", None, None, SENDER, timeout=5.0)
    with pytest.raises(MailError, match="failed while starting TLS: the server does not offer it"):
        Mailer(config).send("alice@example.org", "Hello", "Body\n")
    assert plain.messages == []


def test_a_host_that_is_down_is_a_mail_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = SmtpConfig("127.0.0.1", port, "none", None, None, SENDER)
    with pytest.raises(MailError) as caught:
        Mailer(config).send("alice@example.org", "Hello", "Body\n")
    assert caught.value.message == (
        f"mail through the SMTP server 127.0.0.1:{port} failed while connecting: Connection refused"
    )


def test_a_server_that_never_greets_times_out() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # the kernel accepts; nobody ever speaks
        port = listener.getsockname()[1]
        config = SmtpConfig("127.0.0.1", port, "none", None, None, SENDER, timeout=0.3)
        with pytest.raises(MailError, match=r"failed while connecting: no answer within 0\.3 s"):
            Mailer(config).send("alice@example.org", "Hello", "Body\n")


@pytest.mark.parametrize(
    "to",
    [
        "alice@example.org\r\nBcc: mallory@example.net",
        "alice@example.org\nBcc: mallory@example.net",
        "alice@example.org, mallory@example.net",
        "Alice <alice@example.org>",
        "alice@example.org mallory@example.net",
        "not an address",
        "",
        "@example.org",
        "alice@",
        "alice@@example.org",
        "alice\x00@example.org",
        "älice@example.org",
        "a" * 250 + "@example.org",
    ],
)
def test_a_bad_recipient_is_refused_before_anything_is_sent(plain: SmtpSim, to: str) -> None:
    with pytest.raises(MailError, match="the recipient is not one email address on one line"):
        Mailer(_config(plain, "none")).send(to, "Hello", "Body\n")
    assert plain.messages == []


def test_a_subject_with_a_line_break_is_a_programming_error(plain: SmtpSim) -> None:
    with pytest.raises(ValueError, match="one line"):
        Mailer(_config(plain, "none")).send("a@example.org", "Hi\r\nBcc: m@example.net", "x")
    assert plain.messages == []


# -- settings --------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.53", "::1", "[::1]", "localhost"])
def test_plain_text_is_allowed_to_loopback(host: str) -> None:
    SmtpConfig(host, 25, "none", None, None, SENDER)


@pytest.mark.parametrize(
    "host",
    ["smtp.example.com", "10.0.0.2", "0.0.0.0", "localhost.evil.com"],  # noqa: S104 - refused
)
def test_plain_text_is_refused_to_anything_else(host: str) -> None:
    with pytest.raises(ConfigError, match="allowed only to a server on this host"):
        SmtpConfig(host, 25, "none", None, None, SENDER)


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({"username": "mailer"}, "both a user name and a password"),
        ({"password": Secret("x")}, "both a user name and a password"),
        ({"username": "m", "password": "plain"}, "must be a Secret"),
        ({"sender": "not an address"}, "the sender must be one email address"),
        ({"sender": "a@example.com\r\nBcc: b@example.com"}, "the sender must be one"),
        ({"port": 0}, "port must be from 1 to 65535"),
        ({"port": 70000}, "port must be from 1 to 65535"),
        ({"security": "ssl"}, "security must be starttls, tls or none"),
        ({"host": ""}, "host name or address"),
        ({"host": "smtp example"}, "host name or address"),
        ({"timeout": 0}, "timeout must be a positive number"),
    ],
)
def test_bad_settings_are_config_errors(overrides: dict[str, object], says: str) -> None:
    values: dict[str, object] = {
        "host": "smtp.example.com",
        "port": 587,
        "security": "starttls",
        "username": None,
        "password": None,
        "sender": SENDER,
    }
    values.update(overrides)
    with pytest.raises(ConfigError, match=says):
        SmtpConfig(**values)  # type: ignore[arg-type]


def test_the_password_is_masked_in_the_settings_repr() -> None:
    config = SmtpConfig(
        "smtp.example.com", 587, "starttls", "mailer", Secret(SMTP_PASSWORD), SENDER
    )
    assert SMTP_PASSWORD not in repr(config)


def test_implicit_tls_to_a_plain_server_fails_in_the_handshake(plain: SmtpSim) -> None:
    config = SmtpConfig("127.0.0.1", plain.port, "tls", None, None, SENDER, timeout=5.0)
    with pytest.raises(MailError, match="failed while connecting: the TLS handshake failed"):
        Mailer(config).send("alice@example.org", "Hello", "Body\n")
    assert plain.messages == []
