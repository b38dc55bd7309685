"""The redaction hook: every record of every logger, whatever its handlers, is redacted."""

from __future__ import annotations

import base64
import logging
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import pytest
from tests.conftest import Capture
from tests.fakes import Fakes

from tradeguard.secrets import ApiSecret, Secret, redact


@pytest.fixture
def installed() -> Iterator[None]:
    redact.install()
    try:
        yield
    finally:
        redact.uninstall()


def _signed_url() -> tuple[str, str]:
    signature = secrets.token_hex(32)
    return (
        f"GET https://api.binance.com/api/v3/account?timestamp=1&signature={signature}",
        signature,
    )


@pytest.mark.usefixtures("installed")
@pytest.mark.parametrize(
    "name", ["tradeguard.gateway", "uvicorn.access", "httpx", "ccxt.base.exchange", "sqlalchemy"]
)
def test_child_loggers_propagating_to_the_root_are_redacted(capture: Capture, name: str) -> None:
    url, signature = _signed_url()
    logging.getLogger(name).warning("request %s", url)  # sqlalchemy defaults to WARNING
    assert signature not in capture.text
    assert "signature=[REDACTED:credential]" in capture.text


@pytest.mark.usefixtures("installed")
@contextmanager
def _own_logger(name: str, handler: logging.Handler) -> Iterator[logging.Logger]:
    """A logger that does not propagate and writes to `handler` only, as libraries set up."""
    logger = logging.getLogger(name)
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield logger
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


@pytest.mark.usefixtures("installed")
def test_a_library_logger_with_its_own_handler_added_later_is_redacted() -> None:
    handler = Capture()  # added after install(), as libraries do at import or first use
    url, signature = _signed_url()
    with _own_logger("thirdparty.client", handler) as logger:
        logger.warning("retrying %s", url)
    assert signature not in handler.text
    assert len(handler.records) == 1


def test_without_install_the_same_record_leaks(capture: Capture) -> None:
    """The control for the tests above: the hook, not the handler, does the redacting."""
    url, signature = _signed_url()
    logging.getLogger("httpx").info("request %s", url)
    assert signature in capture.text


@pytest.mark.usefixtures("installed")
def test_live_values_are_redacted_in_every_encoding(capture: Capture) -> None:
    raw = "k3y/" + secrets.token_urlsafe(24) + "+=&"
    secret = ApiSecret(raw)
    redact.register(secret)
    encoded = raw.encode()
    forms = {
        "raw": raw,
        "url": quote(raw, safe=""),
        "b64": base64.b64encode(encoded).decode(),
        "b64url": base64.urlsafe_b64encode(encoded).decode().rstrip("="),
        "hex": encoded.hex(),
        "HEX": encoded.hex().upper(),
    }
    log = logging.getLogger("somewhere.deep")
    for label, form in forms.items():
        log.info("%s form: <%s>", label, form)
    for form in forms.values():
        assert form not in capture.text
    assert capture.text.count("[REDACTED:api_secret]") == len(forms)
    secret.wipe()


@pytest.mark.usefixtures("installed")
def test_a_wiped_secret_is_no_longer_searched_for(capture: Capture) -> None:
    raw = secrets.token_urlsafe(24)
    secret = Secret(raw)
    redact.register(secret)
    logging.getLogger("x").info("before %s", raw)
    secret.wipe()
    logging.getLogger("x").info("after %s", raw)
    before, after = capture.text.splitlines()
    assert raw not in before
    assert raw in after  # "live" means until wiped; patterns remain the second line


def test_short_values_are_not_registered() -> None:
    short = Secret("1234567")  # would match ordinary numbers in every line
    redact.register(short)
    assert redact.redact_text("id 1234567") == "id 1234567"


@pytest.mark.usefixtures("installed")
def test_mismatched_arguments_are_kept_redacted_and_do_not_raise(capture: Capture) -> None:
    url, signature = _signed_url()
    logging.getLogger("x").info("two placeholders %s %s", url)
    assert len(capture.records) == 1
    assert signature not in capture.text
    assert "did not match the format" in capture.text


@pytest.mark.usefixtures("installed")
def test_a_message_whose_str_raises_is_withheld_not_dropped(capture: Capture) -> None:
    class Hostile:
        def __str__(self) -> str:
            raise RuntimeError("boom")

        def __repr__(self) -> str:
            raise RuntimeError("boom")

    logging.getLogger("x").error(Hostile())
    assert len(capture.records) == 1
    assert "could not be redacted and was withheld" in capture.text


@pytest.mark.usefixtures("installed")
def test_exception_text_is_redacted_and_exc_info_is_not_passed_on(capture: Capture) -> None:
    url, signature = _signed_url()
    try:
        raise ConnectionError(f"request failed: {url}")
    except ConnectionError:
        logging.getLogger("ccxt").exception("order failed")
    assert signature not in capture.text
    assert "ConnectionError: request failed" in capture.text
    assert capture.records[0].exc_info is None  # no handler can render the raw traceback


@pytest.mark.usefixtures("installed")
def test_stack_info_is_redacted(capture: Capture) -> None:
    token = "xoxb-" + secrets.token_hex(12)

    def deep(slack_token: str) -> None:
        logging.getLogger("x").info("where am I %s", slack_token, stack_info=True)

    deep(token)
    assert token not in capture.text
    assert "Stack (most recent call last)" in capture.text


@pytest.mark.usefixtures("installed")
def test_extra_fields_are_redacted_by_name_and_by_content(capture: Capture) -> None:
    api_key, password = secrets.token_hex(16), secrets.token_urlsafe(16)
    bearer = secrets.token_urlsafe(24)
    logging.getLogger("x").info(
        "structured",
        extra={
            "api_key": api_key,
            "payload": {"user": "bob", "nested": {"password": password}},
            "header": f"Bearer {bearer}",
        },
    )
    record = capture.records[0]
    assert record.api_key == "[REDACTED:credential]"  # type: ignore[attr-defined]
    assert record.payload == {  # type: ignore[attr-defined]
        "user": "bob",
        "nested": {"password": "[REDACTED:credential]"},
    }
    assert bearer not in record.header  # type: ignore[attr-defined]


def test_a_record_redacted_twice_is_the_record_redacted_once() -> None:
    """A record can meet two redactors (the hook and a RedactingFilter, or a queue's re-handle);
    nothing marks it, so the second pass must change nothing."""
    api_key, bearer = secrets.token_hex(16), secrets.token_urlsafe(24)
    try:
        raise ValueError(f"rejected Bearer {bearer}")
    except ValueError as exc:
        error = exc
    record = logging.getLogger("x").makeRecord(
        "x", logging.ERROR, __file__, 1, "order %s failed api_key=%s", ("tg-1", api_key),
        (ValueError, error, error.__traceback__), extra={"headers": {"X-MBX-APIKEY": api_key}},
        sinfo="Stack (most recent call last):\n  token=" + bearer,
    )  # fmt: skip
    redact.redact_record(record)
    once = dict(record.__dict__)
    redact.redact_record(record)
    assert record.__dict__ == once
    assert api_key not in repr(once)
    assert bearer not in repr(once)


def test_the_filter_form_redacts_for_handlers_outside_an_installed_process() -> None:
    handler = Capture()
    handler.addFilter(redact.RedactingFilter())
    url, signature = _signed_url()
    with _own_logger("filtered.only", handler) as logger:
        logger.info("request %s", url)
    assert signature not in handler.text


def test_install_is_idempotent_and_uninstall_restores() -> None:
    original = logging.Logger.handle
    redact.install()
    redact.install()
    assert redact.installed()
    redact.uninstall()
    assert logging.Logger.handle is original
    assert not redact.installed()


_CRASH = """
import threading
from tradeguard.secrets import redact
redact.install()
def worker():
    raise RuntimeError("thread saw {webhook}")
t = threading.Thread(target=worker); t.start(); t.join()
raise ValueError("main saw postgresql://bot:{password}@db/x")
"""


def test_uncaught_tracebacks_in_main_and_threads_are_redacted() -> None:
    password, slack = secrets.token_urlsafe(12), Fakes(seed=7).slack_webhook_path()
    webhook = f"https://hooks.slack.com/services/{slack}"
    script = _CRASH.format(password=password, webhook=webhook)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert done.returncode == 1
    assert "ValueError: main saw postgresql://bot:[REDACTED:url_password]@db/x" in done.stderr
    assert "hooks.slack.com/services/[REDACTED:slack_webhook]" in done.stderr
    assert password not in done.stderr
    assert slack not in done.stderr


def test_a_websocket_ticket_in_a_url_is_redacted() -> None:
    """A ticket is the one token allowed in a URL (browsers cannot set WebSocket headers); any
    log line that quotes the URL loses it."""
    ticket = secrets.token_urlsafe(32)
    for line in (
        f'127.0.0.1 - "GET /api/ws?ticket={ticket} HTTP/1.1" 101',
        f"connect wss://trade.example.com/api/ws?ticket={ticket}&x=1",
        f'{{"ws_ticket": "{ticket}"}}',
    ):
        assert ticket not in redact.redact_text(line)
