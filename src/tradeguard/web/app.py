"""The FastAPI application: routers, error handlers, the security middleware.

Published: the OpenAPI schema at /api/openapi.json and, outside production, Swagger UI at
/api/docs. Swagger UI comes from a CDN and starts with an inline script, so its page gets a
CSP of its own (that CDN and that script's hash); in production there is no such page, and no
page of this origin loads code from elsewhere.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

import tradeguard
from tradeguard.web.context import AppContext
from tradeguard.web.errors import install_error_handlers
from tradeguard.web.middleware import SecurityMiddleware
from tradeguard.web.proxies import trusted_proxies
from tradeguard.web.routers import audit, auth, bots, credentials, me, orders, risk, users, ws
from tradeguard.web.schemas import HealthOut

__all__ = ["DOCS_URL", "OPENAPI_URL", "SERVER_OPTIONS", "create_app"]

OPENAPI_URL = "/api/openapi.json"
DOCS_URL = "/api/docs"
_SWAGGER_CDN = "https://cdn.jsdelivr.net"

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
]

health = APIRouter(prefix="/api", tags=["health"])


@health.get("/health", response_model=HealthOut)
async def get_health() -> HealthOut:
    """Liveness, without authentication. Says nothing about the installation."""
    return HealthOut()


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    await run_in_threadpool(_shut_down, app.state.ctx)


def _shut_down(ctx: AppContext) -> None:
    """Queued reset mails go out, the vault's last usage counts reach the audit log, and the
    log signs its final head, in that order. Each step is idempotent, so web.runtime closing
    them again afterwards is harmless."""
    ctx.accounts.close()
    ctx.vault.flush_usage()
    ctx.audit.close()


def create_app(ctx: AppContext) -> FastAPI:
    docs = not ctx.settings.production
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
    csp_overrides = {}
    if docs:
        page = _docs_page()
        csp_overrides[DOCS_URL] = _docs_csp(page)
        app.add_api_route(
            DOCS_URL, lambda: HTMLResponse(page), include_in_schema=False, methods=["GET"]
        )
    app.add_middleware(
        SecurityMiddleware,
        public_url=ctx.settings.public_url,
        proxies=trusted_proxies(ctx.settings.trusted_proxies),
        csp_overrides=csp_overrides,
    )
    return app


def _docs_page() -> str:
    response = get_swagger_ui_html(openapi_url=OPENAPI_URL, title="tradeguard API")
    return bytes(response.body).decode()


def _docs_csp(page: str) -> str:
    """The docs page's policy: the CDN's script and style, and its one inline script by hash."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
        for script in re.findall(r"<script>(.*?)</script>", page, flags=re.DOTALL)
    )
    return (
        f"default-src 'none'; script-src {_SWAGGER_CDN} {hashes}; style-src {_SWAGGER_CDN}; "
        "img-src 'self' data: https://fastapi.tiangolo.com; connect-src 'self'; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'"
    )
