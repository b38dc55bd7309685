"""`tradeguard serve`: the HTTP API, with uvicorn.

Bound to 127.0.0.1 by default. Before anything listens, the setup is checked: production needs
an https:// public URL, and a non-loopback address needs TLS here (a certificate and a 0600 key
file) or a TLS reverse proxy in front (listed in TRADEGUARD_TRUSTED_PROXIES). The schema is
upgraded first. While no admin exists, a one-time setup token is printed to this terminal (never
to the log) with the request that uses it.
"""

from __future__ import annotations

import shlex
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from tradeguard.cli.console import err
from tradeguard.cli.settings import cli_settings
from tradeguard.ops.rewrap_job import BackgroundRewrap
from tradeguard.ops.serving import check_setup, tls_options

if TYPE_CHECKING:
    from tradeguard.web.context import AppContext

__all__ = ["serve"]


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
    # The web stack loads only for this command: every other command starts without it.
    import uvicorn

    from tradeguard.web.app import SERVER_OPTIONS, create_app
    from tradeguard.web.runtime import open_context

    settings = cli_settings()
    host = host or settings.http_host
    port = port or settings.http_port
    check_setup(settings, host)
    tls = tls_options(settings)
    with open_context(settings) as ctx, _stop_signals_return():
        _print_setup_token(ctx)
        rewrap_job = BackgroundRewrap(ctx.vault)
        rewrap_job.start()
        uvicorn.run(
            create_app(ctx),
            host=host,
            port=port,
            log_config=None,  # ours: redacted records on stderr
            lifespan="on",
            **SERVER_OPTIONS,  # type: ignore[arg-type]
            **tls,
        )
        # Stop a running rewrap after its batch, before the store closes (it resumes at the
        # next start), well inside systemd's stop timeout.
        rewrap_job.stop(timeout=20)


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


def _print_setup_token(ctx: AppContext) -> None:
    """While no admin exists: a one-time token to create one over the API, on this terminal
    only (the console, not the logger: log files must never hold it)."""
    if not ctx.accounts.needs_setup():
        return
    if not sys.stderr.isatty():  # a journal or a log file: never put the token there
        err.print(
            "No admin account exists yet. Create one with `tradeguard users create-admin NAME "
            "--email EMAIL`, or run `tradeguard serve` once at a terminal for a setup token.",
            markup=False,
        )
        return
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
