"""The FastAPI application: routers, error handlers, the security middleware.

Published: the OpenAPI schema at /api/openapi.json, and no pages. FastAPI's Swagger UI and
ReDoc load their code from a CDN; a page of this origin never runs code from elsewhere, so they
are off: open the schema in a viewer of your own (docs/api.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from starlette.concurrency import run_in_threadpool

import tradeguard
from tradeguard.vault import UnlockSessions
from tradeguard.web.context import AppContext
from tradeguard.web.errors import install_error_handlers
from tradeguard.web.middleware import SecurityMiddleware
from tradeguard.web.proxies import trusted_proxies
from tradeguard.web.routers import (
    audit,
    auth,
    bots,
    credentials,
    me,
    orders,
    risk,
    users,
    vault,
    ws,
)
from tradeguard.web.schemas import HealthOut

__all__ = ["OPENAPI_URL", "SERVER_OPTIONS", "create_app"]

OPENAPI_URL = "/api/openapi.json"

# How uvicorn must run this app (`tradeguard serve`, and the tests, which serve it the same way):
# no proxy-header rewriting (uvicorn believes X-Forwarded-* from 127.0.0.1 by default; the
# middleware and web.deps believe them from `trusted_proxies` only), no Server header, no
# uvicorn access log (it prints the query string, WebSocket ticket included: ours redacts it),
# and WebSocket messages no larger than a request body.
SERVER_OPTIONS: dict[str, object] = {
    "proxy_headers": False,
    "server_header": False,
    "access_log": False,
    "ws_max_size": 64 * 1024,
}

# Every router of the API, one line a router.
ROUTERS: list[APIRouter] = [
    auth.router,
    auth.setup_router,
    me.router,
    users.router,
    ws.router,
    credentials.router,
    bots.router,
    orders.router,
    risk.router,
    audit.router,
    vault.router,
]

log = logging.getLogger(__name__)

health = APIRouter(prefix="/api", tags=["health"])


@health.get("/health", response_model=HealthOut)
async def get_health() -> HealthOut:
    """Liveness, without authentication. Says nothing about the installation."""
    return HealthOut()


# How often the keys of expired vault unlock sessions are wiped, whether or not anyone asks.
SWEEP_INTERVAL_S = 60.0


async def sweep_unlock_sessions(sessions: UnlockSessions, every_s: float) -> None:
    """Wipe expired unlock sessions' keys every `every_s` seconds, until cancelled. Without
    this, an expired key would stay in memory until its user or a vault status call came by."""
    while True:
        await asyncio.sleep(every_s)
        try:
            sessions.sweep()
        except Exception:  # the sweeper must outlive one bad pass
            log.exception("sweeping vault unlock sessions failed; trying again in %.0f s", every_s)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    ctx: AppContext = app.state.ctx
    sweeper = asyncio.create_task(sweep_unlock_sessions(ctx.vault.sessions, SWEEP_INTERVAL_S))
    try:
        yield
    finally:
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
    await run_in_threadpool(_shut_down, ctx)


def _shut_down(ctx: AppContext) -> None:
    """Queued reset mails go out, the vault's last usage counts reach the audit log, and the
    log signs its final head, in that order. Each step is idempotent, so web.runtime closing
    them again afterwards is harmless."""
    ctx.accounts.close()
    ctx.vault.flush_usage()
    ctx.audit.close()


def create_app(ctx: AppContext) -> FastAPI:
    app = FastAPI(
        title="tradeguard",
        version=tradeguard.__version__,
        openapi_url=OPENAPI_URL,
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        lifespan=_lifespan,
    )
    app.state.ctx = ctx
    install_error_handlers(app)
    for router in [health, *ROUTERS]:
        app.include_router(router)
    app.add_middleware(
        SecurityMiddleware,
        public_url=ctx.settings.public_url,
        proxies=trusted_proxies(ctx.settings.trusted_proxies),
    )
    return app
