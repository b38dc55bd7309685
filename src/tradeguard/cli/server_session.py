"""A command that acts on a running `tradeguard serve`: log in as a user (password asked, and
a code when the account has a second factor), do one thing, log out.

Used where the state lives in the server's memory, such as a password-mode vault's unlock
session. The server is `--server`, else TRADEGUARD_PUBLIC_URL. Passwords are read with getpass
(or one a line from a pipe), never from argv, and go to the server over that URL only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx

from tradeguard.cli.prompts import ask_code, ask_password
from tradeguard.config import check_public_url
from tradeguard.core.errors import AuthError, ConfigError
from tradeguard.core.hosts import is_loopback_host

__all__ = ["api_error", "logged_in"]

_TIMEOUT = 30.0


def api_error(response: httpx.Response) -> AuthError:
    """The server's own one-line message (our error shape), as an error to print."""
    try:
        message = str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        message = f"the server answered {response.status_code}"
    return AuthError(message.splitlines()[0][:300])


def _server_url(server: str | None, public_url: str) -> str:
    """The server's origin. Passwords go there: plain http only to this machine."""
    try:
        url = check_public_url(server or public_url)
    except ValueError as e:
        raise ConfigError(f"--server: {e}") from None
    if url.startswith("http://") and not is_loopback_host(urlsplit(url).hostname):
        raise ConfigError(
            f"--server: {url} is plain http to another machine, and the passwords would cross "
            "the network in clear; use its https:// address"
        )
    return url


@contextmanager
def logged_in(user: str, server: str | None, public_url: str) -> Iterator[httpx.Client]:
    """A client with `user`'s access token, logged out afterwards."""
    url = _server_url(server, public_url)
    with httpx.Client(base_url=url, timeout=_TIMEOUT, trust_env=False) as client:
        body: dict[str, Any] = {"login": user}
        with (
            ask_password(f"login password for {user}") as secret,
            secret.reveal_text() as password,
        ):
            body["password"] = password
            answer = _post(client, "/api/auth/login", body, url)
            if answer.status_code == 401 and _code(answer) == "SecondFactorRequired":
                body["code"] = ask_code(f"code from {user}'s authenticator app")
                answer = _post(client, "/api/auth/login", body, url)
        if answer.status_code != 200:
            raise api_error(answer)
        client.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
        try:
            yield client
        finally:
            client.post("/api/auth/logout")


def _post(client: httpx.Client, path: str, body: dict[str, Any], url: str) -> httpx.Response:
    try:
        return client.post(path, json=body)
    except httpx.HTTPError as e:
        raise ConfigError(
            f"cannot reach the server at {url} ({type(e).__name__}); is `tradeguard serve` "
            "running there? (--server URL)"
        ) from None


def _code(response: httpx.Response) -> str | None:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return None
