"""The breached-password check against the loopback HIBP simulator: counts, padding, only the
5-character prefix on the wire, and fail-open / fail-closed when the service cannot answer."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest
from tests.conftest import Capture
from tests.sims.hibp import HibpSim, hibp_sim, sha1_hex

from tradeguard.auth.breached import DEFAULT_BASE_URL, BreachCheckUnavailable, BreachedPasswords
from tradeguard.core.errors import ConfigError, ServiceUnavailable, WeakPassword
from tradeguard.secrets import Password

BREACHED = "password1234"
UNSEEN = "glacier-ottoman-5-quiver"


KNOWN = {BREACHED: 31_337, "correct horse battery staple": 3}


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[HibpSim, str]]:
    """One simulator for the module (starting uvicorn costs more than a test)."""
    shared = HibpSim()
    with hibp_sim(shared) as base_url:
        yield shared, base_url


@pytest.fixture
def sim(served: tuple[HibpSim, str]) -> HibpSim:
    served[0].reset(KNOWN)
    return served[0]


@pytest.fixture
def url(sim: HibpSim, served: tuple[HibpSim, str]) -> str:
    return served[1]


def _client(url: str, *, fail_closed: bool = True, timeout: float = 3.0) -> BreachedPasswords:
    return BreachedPasswords(url, fail_closed=fail_closed, timeout=timeout)


def test_a_breached_password_is_counted(url: str) -> None:
    with _client(url) as breached:
        assert breached.count(Password(BREACHED)) == 31_337
        assert breached.count(Password("correct horse battery staple")) == 3


def test_an_unseen_password_counts_zero_and_passes(url: str) -> None:
    with _client(url) as breached:
        assert breached.count(Password(UNSEEN)) == 0
        breached.check(Password(UNSEEN))


def test_check_refuses_a_breached_password_with_the_count(url: str) -> None:
    with _client(url) as breached, pytest.raises(WeakPassword) as caught:
        breached.check(Password(BREACHED))
    assert caught.value.message == (
        "this password has appeared in 31337 known data breaches; choose another"
    )
    assert caught.value.status == 422


def test_padding_lines_with_count_zero_are_ignored(sim: HibpSim, url: str) -> None:
    # the service can pad with our own suffix at count 0: that is not a breach
    sim.add(UNSEEN, 0)
    with _client(url) as breached:
        assert breached.count(Password(UNSEEN)) == 0
        breached.check(Password(UNSEEN))


def test_the_request_asks_for_padding_and_carries_only_the_prefix(sim: HibpSim, url: str) -> None:
    with _client(url) as breached:
        breached.count(Password(BREACHED))
    digest = sha1_hex(BREACHED)
    [seen] = sim.requests
    assert (seen.method, seen.path, seen.query) == ("GET", f"/range/{digest[:5]}", "")
    assert seen.headers["add-padding"] == "true"
    everything = seen.text()
    for leak in (BREACHED, digest, digest[5:], digest.lower(), digest[5:].lower()):
        assert leak not in everything


def test_nothing_but_the_prefix_leaves_the_process() -> None:
    """Every byte httpx would send (URL, headers, body), seen from inside the transport."""
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, text="0" * 35 + ":0\r\n")

    transport = httpx.MockTransport(handler)
    with BreachedPasswords(DEFAULT_BASE_URL, fail_closed=True, transport=transport) as breached:
        assert breached.count(Password(UNSEEN)) == 0
    digest = sha1_hex(UNSEEN)
    [request] = sent
    assert str(request.url) == f"https://api.pwnedpasswords.com/range/{digest[:5]}"
    wire = "\n".join(
        [str(request.url), *(f"{k}: {v}" for k, v in request.headers.items())]
    ) + request.content.decode("latin-1")
    for leak in (UNSEEN, digest, digest[5:], digest.lower(), digest[5:].lower()):
        assert leak not in wire


def test_a_compatibility_form_of_a_breached_password_is_caught(sim: HibpSim, url: str) -> None:
    fullwidth = "ｐａｓｓｗｏｒｄ1234"  # noqa: RUF001 - NFKC maps it to the breached password
    with _client(url) as breached:
        assert breached.count(Password(fullwidth)) == 31_337
    assert len(sim.requests) == 2  # the form as typed and its NFKC form


@pytest.mark.parametrize("status", [500, 503, 404, 429, 302])
def test_a_non_200_answer_is_unavailable(sim: HibpSim, url: str, status: int) -> None:
    sim.status = status
    with _client(url) as breached, pytest.raises(BreachCheckUnavailable) as caught:
        breached.count(Password(UNSEEN))
    assert f"answered HTTP {status}" in caught.value.message
    assert isinstance(caught.value, ServiceUnavailable)
    assert caught.value.status == 503


def test_fail_open_logs_a_warning_and_accepts(sim: HibpSim, url: str, capture: Capture) -> None:
    sim.status = 500
    with _client(url, fail_closed=False) as breached:
        breached.check(Password(BREACHED))
    [record] = [r for r in capture.records if r.name == "tradeguard.auth.breached"]
    assert record.levelname == "WARNING"
    assert "127.0.0.1 answered HTTP 500" in record.getMessage()
    # the password appears nowhere (httpx's own INFO line names the URL, with the prefix only)
    assert BREACHED not in capture.text
    assert sha1_hex(BREACHED)[5:] not in capture.text
    assert sha1_hex(BREACHED)[:5] not in record.getMessage()


def test_fail_closed_refuses_with_503(sim: HibpSim, url: str) -> None:
    sim.status = 500
    with _client(url) as breached, pytest.raises(BreachCheckUnavailable) as caught:
        breached.check(Password(UNSEEN))
    assert caught.value.message == (
        "the check against known data breaches is unavailable: 127.0.0.1 answered HTTP 500; "
        "try again later"
    )


def test_a_timeout_under_fail_open_is_a_warning(sim: HibpSim, url: str, capture: Capture) -> None:
    sim.hang = True
    with _client(url, fail_closed=False, timeout=0.3) as breached:
        breached.check(Password(BREACHED))
    assert "did not answer within 0.3 s" in capture.text


def test_a_timeout_under_fail_closed_refuses(sim: HibpSim, url: str) -> None:
    sim.hang = True
    with (
        _client(url, timeout=0.3) as breached,
        pytest.raises(BreachCheckUnavailable, match=r"did not answer within 0\.3 s"),
    ):
        breached.check(Password(UNSEEN))


def test_a_service_that_is_down_is_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with (
        _client(f"http://127.0.0.1:{port}") as breached,
        pytest.raises(BreachCheckUnavailable, match=r"could not be reached \(ConnectError\)"),
    ):
        breached.check(Password(UNSEEN))


@pytest.mark.parametrize(
    "body",
    [
        "",
        "<html><body>Captive portal</body></html>",
        "0018A45C4D1DEF81644B54AB7F969B88D65:1\r\nnot a line",
        "0018A45C4D1DEF81644B54AB7F969B88D6:1",  # 34 digits
        "0018A45C4D1DEF81644B54AB7F969B88D65:-1",
        "0018A45C4D1DEF81644B54AB7F969B88D65:1:2",
    ],
)
def test_a_malformed_answer_is_unavailable(sim: HibpSim, url: str, body: str) -> None:
    sim.body = body
    with (
        _client(url) as breached,
        pytest.raises(BreachCheckUnavailable, match="not a range list"),
    ):
        breached.count(Password(UNSEEN))


def test_an_oversized_answer_is_unavailable() -> None:
    line = "0018A45C4D1DEF81644B54AB7F969B88D65:1\r\n"
    transport = httpx.MockTransport(lambda request: httpx.Response(200, text=line * 40_000))
    with (
        BreachedPasswords(DEFAULT_BASE_URL, fail_closed=True, transport=transport) as breached,
        pytest.raises(BreachCheckUnavailable, match="more than 1048576 bytes"),
    ):
        breached.count(Password(UNSEEN))


def test_lower_case_hex_in_the_answer_is_read() -> None:
    digest = sha1_hex(BREACHED)
    body = f"{digest[5:].lower()}:7\r\n"
    transport = httpx.MockTransport(lambda request: httpx.Response(200, text=body))
    with BreachedPasswords(DEFAULT_BASE_URL, fail_closed=True, transport=transport) as breached:
        assert breached.count(Password(BREACHED)) == 7


@pytest.mark.parametrize(
    "good",
    [
        "https://api.pwnedpasswords.com",
        "https://api.pwnedpasswords.com/",
        "https://mirror.example.org:8443/pwned",
        "http://127.0.0.1:8080",
        "http://127.0.0.2",
        "http://[::1]:9000",
        "http://localhost:9000/",
    ],
)
def test_good_base_urls_are_accepted(good: str) -> None:
    with BreachedPasswords(good, fail_closed=True) as breached:
        assert not breached.base_url.endswith("/")


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ("http://api.pwnedpasswords.com", "must use https"),
        ("http://10.0.0.5", "must use https"),
        ("ftp://api.pwnedpasswords.com", "must start with https://"),
        ("api.pwnedpasswords.com", "must start with https://"),
        ("https://user:pw@api.pwnedpasswords.com", "user name or password"),
        ("https://api.pwnedpasswords.com?x=1", "query or fragment"),
        ("https://api.pwnedpasswords.com/#frag", "query or fragment"),
        ("https://", "has no host"),
        ("https://api.pwnedpasswords.com:99999", "malformed port"),
        ("https://api.pwnedpasswords.com\n", "printable"),
    ],
)
def test_bad_base_urls_are_refused(bad: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        BreachedPasswords(bad, fail_closed=True)


def test_a_plain_string_is_refused_by_type() -> None:
    with (
        BreachedPasswords(DEFAULT_BASE_URL, fail_closed=True) as breached,
        pytest.raises(TypeError, match="Password"),
    ):
        breached.count(BREACHED)  # type: ignore[arg-type]
