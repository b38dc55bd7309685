"""The security middleware: headers, HSTS, cross-site refusals, body limits, the last-resort
500 and the access log. Some tests run the real app; the rest a tiny app behind the same
middleware, which can misbehave on purpose."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI, Request
from starlette.types import Message
from tests.conftest import Capture
from tests.sims.server import serve
from tests.web.conftest import PUBLIC_URL, Api, ApiFactory

from tradeguard.auth.accounts import Role
from tradeguard.web.app import SERVER_OPTIONS
from tradeguard.web.middleware import (
    CSP,
    HSTS,
    MAX_BODY,
    SECURITY_HEADERS,
    SecurityMiddleware,
    loggable_query,
    origin_of,
)
from tradeguard.web.proxies import TrustedProxies

# -- a tiny app behind the middleware ------------------------------------------------------------


def _tiny_app(proxies: list[str] | None = None) -> FastAPI:
    app = FastAPI()

    @app.post("/api/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    @app.get("/api/boom")
    async def boom() -> None:
        raise RuntimeError("secret detail that must not reach the client")

    @app.get("/page")
    async def page() -> dict[str, str]:
        return {"page": "yes"}

    app.add_middleware(
        SecurityMiddleware, public_url=PUBLIC_URL, proxies=TrustedProxies(proxies or [])
    )
    return app


@pytest.fixture
def tiny() -> Iterator[httpx.Client]:
    with serve(_tiny_app(), **SERVER_OPTIONS) as url, httpx.Client(base_url=url) as client:
        yield client


def _has_security_headers(response: httpx.Response) -> None:
    for name, value in SECURITY_HEADERS:
        assert response.headers.get(name) == value, name


def test_every_response_has_the_headers_errors_included(tiny: httpx.Client) -> None:
    for response in (
        tiny.get("/page"),
        tiny.get("/api/nowhere"),
        tiny.delete("/api/echo"),
        tiny.get("/api/boom"),
    ):
        _has_security_headers(response)
        assert "strict-transport-security" not in response.headers  # plain HTTP
    assert "content-security-policy" in tiny.get("/page").headers
    assert CSP.count("unsafe") == 0


def test_cache_control_no_store_on_api_responses_only(tiny: httpx.Client) -> None:
    assert tiny.get("/api/nowhere").headers["cache-control"] == "no-store"
    assert "cache-control" not in tiny.get("/page").headers


def test_an_unexpected_error_is_a_bare_500_and_logged(tiny: httpx.Client, capture: Capture) -> None:
    response = tiny.get("/api/boom")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "InternalError"
    assert "secret detail" not in response.text
    assert "RuntimeError" in capture.text


def test_a_body_over_the_limit_is_refused_by_its_length(tiny: httpx.Client) -> None:
    assert tiny.post("/api/echo", content=b"x" * MAX_BODY).json() == {"bytes": MAX_BODY}
    response = tiny.post("/api/echo", content=b"x" * (MAX_BODY + 1))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "PayloadTooLarge"
    _has_security_headers(response)


def test_a_streamed_body_over_the_limit_is_refused_while_it_arrives(tiny: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b"x" * 8192  # no Content-Length: chunked

    response = tiny.post("/api/echo", content=chunks())
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "PayloadTooLarge"


def test_a_malformed_content_length_is_refused() -> None:
    # uvicorn's HTTP parser refuses one before any app sees it; behind another server the
    # middleware still does. So this one talks ASGI directly.
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/echo",
        "query_string": b"",
        "headers": [(b"content-length", b"2x")],
        "client": ("127.0.0.1", 5000),
        "scheme": "http",
    }
    asyncio.run(_tiny_app().build_middleware_stack()(scope, receive, send))
    assert sent[0]["status"] == 400


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_unsafe_methods_from_another_site_are_refused(tiny: httpx.Client, method: str) -> None:
    for headers in (
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://trade.example.test"},  # same host, not the same scheme
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},  # a sibling subdomain is another site's code
    ):
        response = tiny.request(method, "/api/echo", headers=headers)
        assert response.status_code == 403, headers
        assert response.json()["error"]["code"] == "CrossSiteRequest"
        _has_security_headers(response)


def test_same_origin_and_header_less_requests_pass(tiny: httpx.Client) -> None:
    for headers in (
        {},
        {"Origin": PUBLIC_URL},
        {"Origin": PUBLIC_URL.upper() + ":443"},
        {"Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Site": "none"},  # typed into the address bar, a bookmark
    ):
        assert tiny.post("/api/echo", headers=headers).status_code == 200, headers
    assert tiny.get("/page", headers={"Origin": "https://evil.example"}).status_code == 200


def test_hsts_only_over_tls_as_a_trusted_proxy_reports_it() -> None:
    for proxies, expected in ((["127.0.0.1/32"], True), ([], False), (["10.0.0.0/8"], False)):
        with (
            serve(_tiny_app(proxies), **SERVER_OPTIONS) as url,
            httpx.Client(base_url=url) as client,
        ):
            response = client.get("/page", headers={"X-Forwarded-Proto": "https"})
            assert ("strict-transport-security" in response.headers) is expected, proxies
            if expected:
                assert response.headers["strict-transport-security"] == HSTS


def test_the_access_log_redacts_secret_query_values(tiny: httpx.Client, capture: Capture) -> None:
    tiny.get("/page", params={"ticket": "TICKET-SECRET", "token": "TOKEN-SECRET", "page": "2"})
    lines = [r.getMessage() for r in capture.records if r.name == "tradeguard.web.access"]
    assert len(lines) == 1
    # Every server-side record (the test's own httpx client logs the URL it asked for).
    server = "\n".join(
        r.getMessage() for r in capture.records if not r.name.startswith(("httpx", "httpcore"))
    )
    assert "TICKET-SECRET" not in server
    assert "TOKEN-SECRET" not in server
    assert "/page?ticket=[REDACTED]&token=[REDACTED]&page=2" in lines[0]
    assert lines[0].startswith("GET ")
    assert " 200 " in lines[0]
    assert "127.0.0.1" in lines[0]


def test_loggable_query_and_origins() -> None:
    assert loggable_query(b"") == ""
    assert loggable_query(b"ticket=abc&x=1") == "ticket=[REDACTED]&x=1"
    assert loggable_query(b"Access_Token=abc") == "Access_Token=[REDACTED]"
    assert origin_of("HTTPS://Trade.Example.test:443") == "https://trade.example.test"
    assert origin_of("http://127.0.0.1:8000") == "http://127.0.0.1:8000"
    assert origin_of("https://x.example:99999") == "invalid"


def test_proxies_believe_forwarded_for_only_from_a_trusted_peer() -> None:
    proxies = TrustedProxies(["10.0.0.0/8"])
    assert proxies.client("203.0.113.9", "1.2.3.4") == "203.0.113.9"  # not a proxy: ignored
    assert proxies.client("10.0.0.2", "1.2.3.4") == "1.2.3.4"
    # A client's own X-Forwarded-For is on the left; the proxy appended the real address.
    assert proxies.client("10.0.0.2", "6.6.6.6, 1.2.3.4, 10.0.0.7") == "1.2.3.4"
    assert proxies.client("10.0.0.2", "garbage, 1.2.3.4") == "1.2.3.4"
    assert proxies.client("10.0.0.2", "1.2.3.4, not-an-ip") == "10.0.0.2"
    assert not TrustedProxies([]).trusts("127.0.0.1")


# -- the real app --------------------------------------------------------------------------------


def test_the_app_publishes_openapi_and_nothing_else_by_default(api: Api) -> None:
    schema = api.client.get("/api/openapi.json")
    assert schema.status_code == 200
    info = schema.json()["info"]
    assert info["title"] == "tradeguard"
    assert "/api/auth/login" in schema.json()["paths"]
    for path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect", "/api/docs"):
        assert api.client.get(path).status_code == 404, path
    assert api.client.get("/api/health").json() == {"status": "ok"}


def test_the_client_address_comes_from_a_trusted_proxy_only(api_factory: ApiFactory) -> None:
    with api_factory(trusted_proxies=["127.0.0.1/32"]) as api:
        user = api.make_user(Role.TRADER)
        forwarded = {"X-Forwarded-For": "6.6.6.6, 198.51.100.7"}
        tokens = api.login(user, **forwarded)
        sessions = api.client.get("/api/me/sessions", headers=tokens.headers).json()
        assert sessions[0]["ip"] == "198.51.100.7"


def test_without_trusted_proxies_forwarded_for_is_ignored(api: Api) -> None:
    tokens = api.login(api.make_user(), **{"X-Forwarded-For": "198.51.100.7"})
    sessions = api.client.get("/api/me/sessions", headers=tokens.headers).json()
    assert sessions[0]["ip"] == "127.0.0.1"


def test_login_from_another_site_is_refused(api: Api) -> None:
    user = api.make_user()
    response = api.client.post(
        "/api/auth/login",
        json={"login": user.name, "password": user.password},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status_code == 403


def test_no_cors_header_is_ever_sent(api: Api) -> None:
    for origin in (PUBLIC_URL, "https://evil.example", "null"):
        for response in (
            api.client.get("/api/health", headers={"Origin": origin}),
            api.client.options(
                "/api/auth/login",
                headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
            ),
        ):
            assert not any(k.lower().startswith("access-control-") for k in response.headers)
