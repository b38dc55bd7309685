"""`tradeguard serve`: the HTTP API, with uvicorn.

Bound to 127.0.0.1 by default. Before anything listens, the setup is checked: production needs
an https:// public URL, and a non-loopback address needs TLS here (a certificate and a 0600 key
file) or a TLS reverse proxy in front (listed in TRADEGUARD_TRUSTED_PROXIES). The schema is
upgraded first. While no admin exists, a one-time setup token is printed to this terminal (never
to the log) with the request that uses it.
"""

from __future__ import annotations

import ipaddress
import os
import shlex
import signal
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn

from tradeguard.cli.console import err
from tradeguard.cli.settings import cli_settings
from tradeguard.config import Settings
from tradeguard.core.errors import ConfigError, InsecurePermissionsError
from tradeguard.core.permissions import exposure_problem
from tradeguard.web.app import SERVER_OPTIONS, create_app
from tradeguard.web.context import AppContext
from tradeguard.web.runtime import open_context

__all__ = ["check_setup", "serve", "tls_options"]


def serve(
    host: Annotated[
        str | None, typer.Option("--host", help="Address to bind (default TRADEGUARD_HTTP_HOST).")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option("--port", min=1, max=65535, help="Port (default TRADEGUARD_HTTP_PORT)."),
    ] = None,
) -> None:
    """Run the HTTP API and the WebSocket stream."""
    settings = cli_settings()
    host = host or settings.http_host
    port = port or settings.http_port
    check_setup(settings, host)
    tls = tls_options(settings)
    with open_context(settings) as ctx, _stop_signals_return():
        _print_setup_token(ctx)
        uvicorn.run(
            create_app(ctx),
            host=host,
            port=port,
            log_config=None,  # ours: redacted records on stderr
            lifespan="on",
            **SERVER_OPTIONS,  # type: ignore[arg-type]
            **tls,
        )


@contextmanager
def _stop_signals_return() -> Iterator[None]:
    """uvicorn stops gracefully on SIGINT/SIGTERM, then raises the signal again for the handler
    it found. Ours only notes it, so `uvicorn.run` returns and everything opened is closed in
    order (the vault's keys wiped, the audit log's final head signed) before a clean exit."""
    stops = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in stops}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def check_setup(settings: Settings, host: str) -> None:
    """Refuse a setup that would serve logins in clear text to the network."""
    https = settings.public_url.startswith("https://")
    if settings.production and not https:
        raise ConfigError(
            f"TRADEGUARD_PUBLIC_URL is {settings.public_url}, but production needs https://: "
            "set it to the https:// address users reach (TLS here or at a reverse proxy)"
        )
    tls_here = settings.tls_cert_file is not None or settings.tls_key_file is not None
    if not _loopback(host) and not tls_here and not settings.trusted_proxies:
        raise ConfigError(
            f"refusing to serve plain HTTP on {host}: passwords and tokens would cross the "
            "network in clear. Set TRADEGUARD_TLS_CERT_FILE and TRADEGUARD_TLS_KEY_FILE, or put "
            "a TLS reverse proxy in front and list its address in TRADEGUARD_TRUSTED_PROXIES, or "
            "bind 127.0.0.1"
        )


def tls_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's TLS options, after checking the files: both or neither, the key private."""
    cert, key = settings.tls_cert_file, settings.tls_key_file
    if cert is None and key is None:
        return {}
    if cert is None or key is None:
        raise ConfigError(
            "set both TRADEGUARD_TLS_CERT_FILE and TRADEGUARD_TLS_KEY_FILE (or neither, behind "
            "a TLS reverse proxy)"
        )
    _check_readable("TRADEGUARD_TLS_CERT_FILE", cert)
    _check_readable("TRADEGUARD_TLS_KEY_FILE", key)
    problem = exposure_problem(key, os.stat(key), "file")
    if problem:
        raise InsecurePermissionsError(f"TRADEGUARD_TLS_KEY_FILE: {problem}")
    return {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}


def _check_readable(variable: str, path: Path) -> None:
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        raise ConfigError(
            f"{variable}: cannot read {path} ({e.strerror}); check the path"
        ) from None
    if not stat.S_ISREG(mode):
        raise ConfigError(f"{variable}: {path} is not a regular file")


def _print_setup_token(ctx: AppContext) -> None:
    """While no admin exists: a one-time token to create one over the API, on this terminal
    only (the console, not the logger: log files must never hold it)."""
    token = ctx.accounts.setup_token()
    if token is None:
        return
    url = shlex.quote(f"{ctx.settings.public_url}/api/setup")
    with token.reveal_text() as text:
        body = (
            f'{{"token": "{text}", "name": "admin", "email": "admin@example.com", '
            '"password": "<a long passphrase>"}'
        )
    err.print(
        "\nNo admin account exists yet. Within 24 hours, create the first one with this "
        "one-time token (shown once, never logged). Put the JSON below, with your own name, "
        "email and passphrase, in a private file (chmod 600) and send it:\n\n"
        f"  {body}\n\n"
        f"  curl --fail -X POST {url} -H 'Content-Type: application/json' "
        "--data-binary @setup.json\n\n"
        "then delete the file, log in, and turn on two-factor authentication "
        "(POST /api/me/2fa). Or stop the server and run `tradeguard users create-admin NAME "
        "--email EMAIL`.\n",
        markup=False,
    )
