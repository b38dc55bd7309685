"""Tracebacks formatted by tradeguard: locals scrubbed by name, text scrubbed by pattern."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from tradeguard.secrets.tracebacks import SENSITIVE_NAMES, format_exception, is_sensitive_name


def _raise_with_locals(**values: Any) -> BaseException:
    def failing(api_key: str, **kwargs: Any) -> None:
        locals().update(kwargs)
        config = kwargs.get("config")
        raise RuntimeError("order rejected")

    try:
        failing(**values)
    except RuntimeError as e:
        return e
    raise AssertionError("unreachable")


@pytest.mark.parametrize(
    "name",
    [
        "api_key", "apiKey", "binance_api_secret", "X-Api-Key", "privateKey", "db_password",
        "passwd", "bot_token", "okx_passphrase", "mnemonic", "seed_phrase", "signature",
        "set_cookie", "Authorization", "sessionid", "csrf_token", "x_forwarded_for",
    ],
)  # fmt: skip
def test_sensitive_names_match_as_substrings_in_any_spelling(name: str) -> None:
    assert is_sensitive_name(name)


@pytest.mark.parametrize("name", ["symbol", "price", "order_id", "qty", "side", "client"])
def test_ordinary_names_are_shown(name: str) -> None:
    assert not is_sensitive_name(name)


def test_denylist_covers_sentrys_defaults() -> None:
    sentry = ["password", "passwd", "secret", "api_key", "apikey", "auth", "credentials",
              "privatekey", "private_key", "token", "session", "csrftoken", "sessionid",
              "x_csrftoken", "x_forwarded_for", "set_cookie", "cookie", "authorization",
              "x_api_key", "csrf_token", "phpsessid", "_session", "xsrf-token"]  # fmt: skip
    assert all(is_sensitive_name(n) for n in sentry), SENSITIVE_NAMES


def test_locals_named_like_credentials_are_blanked_recursively() -> None:
    key, secret, nested = secrets.token_hex(16), secrets.token_hex(16), secrets.token_hex(16)
    exc = _raise_with_locals(
        api_key=key,
        config={"symbol": "BTC/USDT", "secret": secret, "deeper": [{"passphrase": nested}]},
    )
    text = format_exception(exc, show_locals=True)
    for value in (key, secret, nested):
        assert value not in text
    assert "api_key = [REDACTED:local]" in text
    assert "'symbol': 'BTC/USDT'" in text  # what is not secret stays useful
    assert "RuntimeError: order rejected" in text


def test_without_show_locals_no_local_value_appears() -> None:
    marker = secrets.token_hex(8)
    exc = _raise_with_locals(api_key="x", harmless=marker)
    assert marker not in format_exception(exc)


def test_secret_text_in_the_exception_message_is_redacted() -> None:
    token = f"{secrets.randbelow(10**9) + 10**8}:AA{secrets.token_urlsafe(33)[:33]}"
    try:
        raise ConnectionError(f"GET https://api.telegram.org/bot{token}/getMe failed")
    except ConnectionError as e:
        text = format_exception(e)
    assert token not in text
    assert "bot[REDACTED:telegram_token]/getMe" in text


def test_chained_exceptions_have_their_locals_scrubbed_too() -> None:
    password = secrets.token_urlsafe(16)

    def connect(db_password: str) -> None:
        raise OSError("refused")

    try:
        try:
            connect(password)
        except OSError as inner:
            raise RuntimeError("store unavailable") from inner
    except RuntimeError as outer:
        text = format_exception(outer, show_locals=True)
    assert password not in text
    assert "db_password = [REDACTED:local]" in text
    assert "The above exception was the direct cause" in text


def test_a_local_with_a_failing_repr_does_not_break_the_report() -> None:
    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    exc = _raise_with_locals(api_key="x", thing=Broken())
    assert "Broken with a failing repr" in format_exception(exc, show_locals=True)


def test_exception_groups_are_scrubbed() -> None:
    token = secrets.token_hex(16)

    def fail(auth_token: str) -> None:
        raise ValueError("bad")

    try:
        try:
            fail(token)
        except ValueError as e:
            raise ExceptionGroup("many", [e]) from None
    except ExceptionGroup as group:
        text = format_exception(group, show_locals=True)
    assert token not in text
    assert "auth_token = [REDACTED:local]" in text
