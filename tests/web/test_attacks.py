"""The attack suite: each test is an attack on the real app over real HTTP (uvicorn on
127.0.0.1; SQLite, and PostgreSQL + Redis), asserting what the attacker gets and that the
victim is unharmed. An attack another file already shows over HTTP is cited, not repeated.

Attacks, and the tests that show them (in this file unless a path is given):

- Brute force on one account from one address: 429 + Retry-After before any password is
  hashed, the right password included; refused attempts do not extend the wait.
    test_brute_force_is_throttled_before_any_password_is_hashed
    tests/web/test_auth_api.py::test_failed_logins_are_throttled_with_retry_after
  The window ends on the `limits` library's wall clock, not the test's ManualClock, and a
  test does not wait for it: what needs no waiting is shown instead (nothing is hashed while
  throttled, the wait is within the first window and does not grow). The throttle itself:
    tests/auth/test_throttle.py::test_one_address_guessing_one_account_is_slowed_after_five
- Credential stuffing, one address against many accounts: throttled by address, unhashed,
  while the owners log in from elsewhere.
    test_credential_stuffing_from_one_address_is_throttled_by_address
- Lockout as denial of service, a botnet's failures against one account: new addresses are
  throttled, the owner logs in from an address used before, and a forged X-Forwarded-For
  does not make a bot that address.
    test_a_botnet_cannot_lock_the_owner_out_of_a_known_address
- TOTP replay: a used code for a second login, for a step-up, an older step, a raced code.
    tests/web/test_auth_api.py::test_second_factor_is_asked_for_then_accepted_once
    test_a_login_code_cannot_be_replayed_for_a_step_up
    test_one_code_raced_by_concurrent_logins_wins_once
- Backup-code reuse, in other spellings and at a step-up.
    tests/web/test_auth_api.py::test_a_backup_code_logs_in_once
    test_a_used_backup_code_is_dead_in_every_spelling_and_route
- Reset-token reuse and expiry (expiry in Redis: on the store), and two racing confirms.
    tests/web/test_auth_api.py::test_reset_confirm_sets_the_password_once_and_ends_every_session
    tests/web/test_auth_api.py::test_an_expired_reset_token_fails
    tests/auth/test_onetime.py::test_a_redis_token_expires_by_redis_ttl
    test_one_reset_token_raced_twice_sets_one_password
- Account enumeration: byte-identical answers and equal timing for login (unknown name or
  email vs wrong password) and for reset requests (known vs unknown address).
    test_login_does_not_tell_unknown_names_from_wrong_passwords
    test_reset_does_not_tell_known_addresses_from_unknown
- Refresh-token reuse revokes the family, the rotated session's access token included.
    tests/web/test_auth_api.py::test_a_reused_refresh_token_ends_the_session_and_raises_an_alert
- JWT attacks on GET /api/me: alg none; HS384/HS512 under the real key; RS256, ES256; HS256
  keyed with a public key; each required claim missing (iat ...); wrong aud or iss; expired,
  not yet valid, issued in the future; role or sub edited; a session that ended; malformed.
  The first test is the control: a token re-signed with the real key is accepted.
    test_a_token_re_signed_with_the_real_key_is_accepted
    test_tokens_under_another_algorithm_are_refused
    test_tokens_with_missing_or_wrong_claims_are_refused
    test_a_token_for_an_ended_session_is_refused_even_freshly_signed
    test_malformed_tokens_are_refused
  Expiry on the clock, and a token in a query parameter or a cookie:
    tests/web/test_auth_api.py::test_an_access_token_expires_with_the_clock
    tests/web/test_auth_api.py::test_me_needs_a_bearer_token_in_the_header
- CSRF on refresh: no token, another session's token, a foreign Origin, Sec-Fetch-Site
  cross-site, each leaving the refresh token usable; every unsafe method from another site;
  another account's token, the cookie used elsewhere, JSON in a cross-site form.
    tests/web/test_auth_api.py::test_refresh_needs_the_sessions_csrf_token
    tests/web/test_auth_api.py::test_refresh_from_another_site_is_refused_before_anything_runs
    tests/web/test_middleware.py::test_unsafe_methods_from_another_site_are_refused
    test_csrf_tokens_and_cookies_do_not_cross_over
- WebSocket tickets: reuse, a foreign or missing Origin, another address, expiry (database
  store), no bearer token; a stolen ticket through the trusted proxy (refused and burned, a
  forged X-Forwarded-For too); no ticket and other tokens posing as one; expiry in Redis.
    tests/web/test_ws_api.py::test_a_ticket_works_once
    tests/web/test_ws_api.py::test_a_foreign_or_missing_origin_is_refused_and_spends_no_ticket
    tests/web/test_ws_api.py::test_a_ticket_from_another_address_is_refused
    tests/web/test_ws_api.py::test_an_expired_ticket_is_refused
    tests/web/test_ws_api.py::test_a_ticket_needs_a_bearer_token
    test_a_stolen_ticket_is_refused_from_another_address_and_burned
    test_nothing_but_a_ticket_opens_the_socket
    test_a_ticket_expires_in_redis
- IDOR across users, and the users routes for non-admins.
    tests/web/test_resources_api.py::test_another_users_objects_are_404_like_missing_ones
    tests/web/test_users_api.py::test_only_admins_with_a_second_factor_manage_users
- Injection: SQL, script, NUL, very long, RTL override and emoji strings in every text field
  of login, reset, setup, user creation and change, /api/me, and the User-Agent: refused with
  422 naming the field and never echoed, or stored and returned exactly, as JSON with nosniff;
  never a 5xx; the users table intact. Resource routes: test_resources_api.py.
    test_hostile_text_in_anonymous_routes_is_inert
    test_hostile_text_in_account_routes_is_stored_exactly_or_refused
    tests/web/test_resources_api.py::test_hostile_text_is_stored_and_returned_inert
- Every operation of the published schema, fuzzed, authenticated: tests/web/test_schemathesis.py
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import jwt
import pyotp
import pytest
import redis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from limits import parse_many
from tests.web.conftest import PUBLIC_URL, Api, ApiFactory, Tokens
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect
from websockets.typing import Origin

from tradeguard.auth.accounts import Role
from tradeguard.auth.factory import instance_prefix
from tradeguard.auth.service import RESET_TTL_S, TICKET_TTL_S
from tradeguard.auth.throttle import PER_ACCOUNT_UNKNOWN
from tradeguard.secrets import Password, Token
from tradeguard.web.middleware import MAX_BODY
from tradeguard.web.routers.auth import REFRESH_COOKIE

PROXY = ["127.0.0.1/32"]  # the test client plays the reverse proxy: X-Forwarded-For is believed
HIGH = "1000000/second"  # the unknown-address hashing ceiling, out of the way of other layers
POLICY_VIOLATION = 1008
OPEN = "open"
WRONG = "wrong password 1"


def _code(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


def _from(ip: str) -> dict[str, str]:
    return {"X-Forwarded-For": ip}


def _attempt(
    api: Api, login: str, password: str, *, ip: str | None = None, code: str | None = None
) -> httpx.Response:
    body: dict[str, Any] = {"login": login, "password": password}
    if code is not None:
        body["code"] = code
    return api.client.post("/api/auth/login", json=body, headers=_from(ip) if ip else None)


def _count_hashes(api: Api, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the password checks the server does from now on (`burn`, for an unknown name,
    verifies a dummy hash, so it counts too)."""
    counter = [0]
    real = api.ctx.accounts.hasher.verify

    def counting(phc: str, password: Password) -> None:
        counter[0] += 1
        real(phc, password)

    monkeypatch.setattr(api.ctx.accounts.hasher, "verify", counting)
    return counter


# -- brute force, credential stuffing, lockout ---------------------------------------------------


def test_brute_force_is_throttled_before_any_password_is_hashed(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    victim = api.make_user()
    checked = _count_hashes(api, monkeypatch)
    guesses = [_attempt(api, victim.name, f"guess number {n}") for n in range(5)]
    assert [r.status_code for r in guesses] == [401] * 5
    assert checked[0] == 5
    # Throttled now: the right password is refused like a wrong one, and nothing is hashed,
    # which is what "checked before any hashing" means (and why a flood costs no CPU).
    waits = []
    for password in (victim.password, "guess number 6", victim.password):
        refused = _attempt(api, victim.name, password)
        assert refused.status_code == 429, refused.text
        assert _code(refused) == "Throttled"
        waits.append(int(refused.headers["retry-after"]))
    assert checked[0] == 5
    assert all(1 <= wait <= 60 for wait in waits)  # the first window of the backoff: a minute
    assert waits == sorted(waits, reverse=True)  # refused attempts do not extend the wait


def test_credential_stuffing_from_one_address_is_throttled_by_address(
    api_factory: ApiFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    stuffer, elsewhere = "203.0.113.66", "198.51.100.20"
    with api_factory(trusted_proxies=PROXY, login_unknown_rate=HIGH) as api:
        owners = [api.make_user() for _ in range(3)]
        checked = _count_hashes(api, monkeypatch)
        # A leaked list: a few real names with stale passwords, mostly names that do not exist;
        # each pair tried once, so no per-account counter ever fills.
        leaked = [(o.name, "stale password 2019") for o in owners[:2]]
        leaked += [(f"leaked-user-{n}", "summer2019!summer") for n in range(28)]
        statuses = [_attempt(api, name, pw, ip=stuffer).status_code for name, pw in leaked]
        assert statuses == [401] * 30
        assert checked[0] == 30
        # The address's budget (30 failures a minute) is spent: even a pair from the list that
        # is right is refused, unhashed.
        hit = _attempt(api, owners[2].name, owners[2].password, ip=stuffer)
        assert hit.status_code == 429
        assert int(hit.headers["retry-after"]) >= 1
        assert checked[0] == 30
        # The owners, the two on the list included, log in from their own address.
        for owner in owners:
            assert _attempt(api, owner.name, owner.password, ip=elsewhere).status_code == 200


def test_a_botnet_cannot_lock_the_owner_out_of_a_known_address(
    api_factory: ApiFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = "198.51.100.7"
    with api_factory(trusted_proxies=PROXY, login_unknown_rate=HIGH) as api:
        victim = api.make_user()
        api.login(victim, **_from(home))  # the owner has logged in from home before
        checked = _count_hashes(api, monkeypatch)
        # A botnet, one guess a bot: the account's budget for unknown addresses (per hour) is
        # filled by that many failures; the rest are refused unhashed.
        budget = parse_many(PER_ACCOUNT_UNKNOWN)[0].amount
        bots = [f"203.0.{n // 250}.{n % 250 + 1}" for n in range(budget + 5)]
        statuses = [_attempt(api, victim.name, WRONG, ip=bot).status_code for bot in bots]
        assert statuses == [401] * budget + [429] * 5
        assert checked[0] == budget
        # A bot that guesses right from a new address is refused too.
        assert _attempt(api, victim.name, victim.password, ip="203.0.113.99").status_code == 429
        # A bot cannot claim the owner's address: the proxy appends the real peer, and the
        # right-most untrusted entry is the client.
        forged = _attempt(api, victim.name, victim.password, ip=f"{home}, 203.0.113.98")
        assert forged.status_code == 429
        # The owner, from home, logs in at once.
        assert _attempt(api, victim.name, victim.password, ip=home).status_code == 200


# -- second factor -------------------------------------------------------------------------------


def test_a_login_code_cannot_be_replayed_for_a_step_up(api: Api) -> None:
    user = api.make_user(totp=True)
    assert user.totp_secret is not None
    code = api.code(user)
    tokens = api.login(user, code=code)

    def step_up(with_code: str) -> httpx.Response:
        # New backup codes need the password and a fresh code: the password is right here.
        body = {"password": user.password, "code": with_code}
        return api.client.post("/api/me/backup-codes", json=body, headers=tokens.headers)

    replayed = step_up(code)
    assert replayed.status_code == 401
    assert _code(replayed) == "InvalidCode"
    # The step before the used one is still inside the +-1 window, but older: refused.
    older = pyotp.TOTP(user.totp_secret).at(api.clock.now().timestamp() - 30)
    assert step_up(older).status_code == 401
    fresh = api.code(user)
    assert step_up(fresh).status_code == 200  # the control: a fresh code is fine
    # ... and that one is now spent for a login.
    again = _attempt(api, user.name, user.password, code=fresh)
    assert again.status_code == 401
    assert _code(again) == "InvalidCode"


def _race(api: Api, count: int, request: Callable[[httpx.Client], httpx.Response]) -> list[int]:
    """`count` clients send `request` at the same moment; their statuses."""
    barrier = threading.Barrier(count)

    def one(_: int) -> int:
        with httpx.Client(base_url=api.url, timeout=30) as client:
            barrier.wait()
            return request(client).status_code

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def test_one_code_raced_by_concurrent_logins_wins_once(api: Api) -> None:
    user = api.make_user(totp=True)
    body = {"login": user.name, "password": user.password, "code": api.code(user)}
    statuses = _race(api, 6, lambda client: client.post("/api/auth/login", json=body))
    assert statuses.count(200) == 1, statuses
    assert set(statuses) <= {200, 401, 429}, statuses


def test_a_used_backup_code_is_dead_in_every_spelling_and_route(api: Api) -> None:
    user = api.make_user(totp=True)
    used, spare = user.backup_codes[0], user.backup_codes[1]
    tokens = api.login(user, code=used)
    for spelling in (used.lower(), used.replace("-", ""), f"  {used}  "):
        again = _attempt(api, user.name, user.password, code=spelling)
        assert again.status_code == 401, spelling
        assert _code(again) == "InvalidCode"

    def step_up(code: str) -> httpx.Response:
        body = {"password": user.password, "code": code}
        return api.client.post("/api/me/backup-codes", json=body, headers=tokens.headers)

    assert step_up(used).status_code == 401
    # The control: an unused code passes the same step-up.
    fine = step_up(spare)
    assert fine.status_code == 200, fine.text


# -- password reset ------------------------------------------------------------------------------


def test_one_reset_token_raced_twice_sets_one_password(api: Api) -> None:
    user = api.make_user()
    token: Token = api.ctx.accounts.tokens.issue("reset", user_id=user.id, ttl=RESET_TTL_S)
    with token.reveal_text() as text:
        reset_token = text
    passwords = iter(["first racer's new passphrase 1", "second racer's new passphrase 2"])
    lock = threading.Lock()

    def confirm(client: httpx.Client) -> httpx.Response:
        with lock:
            password = next(passwords)
        body = {"token": reset_token, "password": password}
        return client.post("/api/auth/reset/confirm", json=body)

    statuses = _race(api, 2, confirm)
    assert sorted(statuses) == [200, 401], statuses
    logins = [
        _attempt(api, user.name, pw).status_code
        for pw in ("first racer's new passphrase 1", "second racer's new passphrase 2")
    ]
    assert sorted(logins) == [200, 401]


# -- account enumeration -------------------------------------------------------------------------


def _same_answer(responses: list[httpx.Response]) -> None:
    """Status, body bytes and headers (but the date) are the same for every response."""
    first = responses[0]
    for response in responses[1:]:
        assert response.status_code == first.status_code
        assert response.content == first.content
        assert {k: v for k, v in response.headers.items() if k != "date"} == {
            k: v for k, v in first.headers.items() if k != "date"
        }


def test_login_does_not_tell_unknown_names_from_wrong_passwords(api_factory: ApiFactory) -> None:
    with api_factory(trusted_proxies=PROXY, login_unknown_rate=HIGH) as api:
        user = api.make_user()
        probes = {
            "known name": user.name,
            "known email": user.email,
            "unknown name": "no-such-user",
            "unknown email": "no-such-user@example.com",
        }
        times: dict[str, list[float]] = {kind: [] for kind in probes}
        answers: list[httpx.Response] = []
        for n in range(7):  # each probe from its own address: no throttle gets involved
            for i, (kind, login) in enumerate(probes.items()):
                ip = f"203.0.113.{n * len(probes) + i + 1}"
                start = time.perf_counter()
                answers.append(_attempt(api, login, WRONG, ip=ip))
                times[kind].append(time.perf_counter() - start)
        assert answers[0].status_code == 401
        _same_answer(answers)
        # An unknown name costs a password hash like a known one (PasswordHasher.burn): a
        # server that skipped it would answer an unknown name in a few milliseconds instead
        # of the ~50 ms of an Argon2id check, ten times faster or more.
        medians = {kind: statistics.median(t) for kind, t in times.items()}
        assert max(medians.values()) < 3 * min(medians.values()), medians


class SlowMailer:
    """Stands in for the SMTP server: each mail takes 100 ms, and is counted."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, to: str, subject: str, body: str) -> None:
        time.sleep(0.1)
        self.sent.append(to)


def test_reset_does_not_tell_known_addresses_from_unknown(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = api.make_user()
    mailer = SlowMailer()
    monkeypatch.setattr(api.ctx.accounts, "mailer", mailer)
    times: dict[str, list[float]] = {"known": [], "unknown": []}
    answers: list[httpx.Response] = []
    for _ in range(9):
        for kind, email in (("known", user.email), ("unknown", "nobody-here@example.com")):
            start = time.perf_counter()
            answers.append(api.client.post("/api/auth/reset/request", json={"email": email}))
            times[kind].append(time.perf_counter() - start)
    assert answers[0].status_code == 202
    _same_answer(answers)
    # The route only queues the address; a worker looks the account up and sends the mail. So
    # both answers do the same work: a route that sent the mail itself would take 100 ms
    # longer for a known address, every time. 50 ms is generous for a loaded machine.
    known, unknown = (statistics.median(times[k]) for k in ("known", "unknown"))
    assert abs(known - unknown) < 0.05, (known, unknown)
    api.ctx.accounts.wait_for_mail()
    assert mailer.sent == [user.email] * 9  # the worker did send, to the known address only


# -- access tokens -------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"


def _session_key(api: Api) -> bytes:
    """The installation's signing key, read where the server keeps it (no setting is set)."""
    return (api.ctx.settings.data_dir / "session.key").read_bytes().rstrip(b"\r\n")


def _claims_of(tokens: Tokens) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(tokens.access, options={"verify_signature": False})
    return claims


def _fresh(claims: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The claims with a new token id and `changes`; a change to None drops the claim."""
    fresh = {**claims, "jti": uuid.uuid4().hex, **changes}
    return {k: v for k, v in fresh.items() if v is not None}


def _refused(api: Api, forged: dict[str, str]) -> None:
    """Every forged token is a 401 TokenInvalid on GET /api/me."""
    accepted = {}
    for name, token in forged.items():
        response = api.client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
        if response.status_code != 401 or _code(response) != "TokenInvalid":
            accepted[name] = (response.status_code, response.text)
        else:
            assert response.headers["www-authenticate"] == "Bearer"
    assert not accepted, accepted


def test_a_token_re_signed_with_the_real_key_is_accepted(api: Api) -> None:
    # The control for the forgeries below: our signing works, so their 401s mean something.
    tokens = api.login(api.make_user())
    forged = jwt.encode(_fresh(_claims_of(tokens)), _session_key(api), algorithm="HS256")
    response = api.client.get("/api/me", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 200, response.text


def test_tokens_under_another_algorithm_are_refused(api: Api) -> None:
    tokens = api.login(api.make_user())
    claims = _fresh(_claims_of(tokens))
    key = _session_key(api)
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    public_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signature = tokens.access.rsplit(".", 1)[1]
    forged = {
        **{
            f"alg {alg}": _unsigned({"alg": alg, "typ": "JWT"}, claims) + "."
            for alg in ("none", "None", "NONE", "nOnE")
        },
        "alg none keeping a real signature": _unsigned({"alg": "none"}, claims) + f".{signature}",
        "HS384 under the real key": jwt.encode(claims, key, algorithm="HS384"),
        "HS512 under the real key": jwt.encode(claims, key, algorithm="HS512"),
        "RS256 under the attacker's key": jwt.encode(claims, rsa_key, algorithm="RS256"),
        "ES256 under the attacker's key": jwt.encode(claims, ec_key, algorithm="ES256"),
        "HS256 keyed with a public key": _unsigned({"alg": "HS256", "typ": "JWT"}, claims)
        + "."
        + _b64(
            hmac.new(
                public_pem,
                _unsigned({"alg": "HS256", "typ": "JWT"}, claims).encode(),
                hashlib.sha256,
            ).digest()
        ),
        "RS256 header on an HS256 signature": _unsigned({"alg": "RS256"}, claims)
        + "."
        + _b64(
            hmac.new(key, _unsigned({"alg": "RS256"}, claims).encode(), hashlib.sha256).digest()
        ),
    }
    _refused(api, forged)
    assert api.client.get("/api/me", headers=tokens.headers).status_code == 200


def test_tokens_with_missing_or_wrong_claims_are_refused(api: Api) -> None:
    user, other = api.make_user(Role.VIEWER), api.make_user(Role.ADMIN)
    tokens = api.login(user)
    claims = _claims_of(tokens)
    key = _session_key(api)
    now = int(api.clock.now().timestamp())
    variants: dict[str, dict[str, Any]] = {
        f"no {claim}": _fresh(claims, **{claim: None})
        for claim in ("iat", "exp", "nbf", "aud", "iss", "sub", "jti", "sid", "role")
    }
    variants |= {
        "wrong aud": _fresh(claims, aud="tradeguard-admin"),
        "aud list without ours": _fresh(claims, aud=["someone-else"]),
        "wrong iss": _fresh(claims, iss="https://evil.example"),
        "expired": _fresh(claims, iat=now - 600, nbf=now - 600, exp=now - 1),
        "not yet valid": _fresh(claims, nbf=now + 600, exp=now + 900),
        "issued in the future": _fresh(claims, iat=now + 600, exp=now + 900),
        "role raised to admin": _fresh(claims, role="admin"),
        "another user's id on my session": _fresh(claims, sub=str(other.id)),
        "sub as an injection": _fresh(claims, sub="1 OR 1=1"),
        "sid of nothing": _fresh(claims, sid=uuid.uuid4().hex),
    }
    forged = {name: jwt.encode(c, key, algorithm="HS256") for name, c in variants.items()}
    # And the edited role re-signed with a key that is not ours.
    forged["role edited, signed with a guessed key"] = jwt.encode(
        _fresh(claims, role="admin"), secrets.token_bytes(48), algorithm="HS256"
    )
    _refused(api, forged)
    assert api.client.get("/api/me", headers=tokens.headers).status_code == 200


def test_a_token_for_an_ended_session_is_refused_even_freshly_signed(api: Api) -> None:
    user = api.make_user()
    tokens = api.login(user)
    assert api.client.post("/api/auth/logout", headers=tokens.headers).status_code == 200
    now = int(api.clock.now().timestamp())
    resurrected = _fresh(_claims_of(tokens), iat=now, nbf=now, exp=now + 300)
    _refused(
        api,
        {
            "the old token": tokens.access,
            "a new token for the old session": jwt.encode(
                resurrected, _session_key(api), algorithm="HS256"
            ),
        },
    )


def test_malformed_tokens_are_refused(api: Api) -> None:
    tokens = api.login(api.make_user())
    header, payload, _ = tokens.access.split(".")
    other_signature = api.login(api.make_user()).access.split(".")[2]
    _refused(
        api,
        {
            "signature stripped": f"{header}.{payload}.",
            "no signature part": f"{header}.{payload}",
            "signature of another token": f"{header}.{payload}.{other_signature}",
            "too long": tokens.access + "A" * 5000,
            "four parts": tokens.access + ".e30",
            "not base64": "!!!.???.***",
        },
    )
    for scheme in ("Basic", "Token", "bearer-ish"):
        response = api.client.get("/api/me", headers={"Authorization": f"{scheme} {tokens.access}"})
        assert response.status_code == 401, scheme


# -- CSRF ----------------------------------------------------------------------------------------


def test_csrf_tokens_and_cookies_do_not_cross_over(api: Api) -> None:
    alice, mallory = api.make_user(), api.make_user()
    alices, mallorys = api.login(alice), api.login(mallory)
    # Mallory holds a valid CSRF token of her own; it is bound to her session, not Alice's.
    borrowed = api.client.post("/api/auth/refresh", headers=alices.refresh_headers(mallorys.csrf))
    assert borrowed.status_code == 401
    # The refresh cookie is a credential for /api/auth/refresh only.
    cookie = {"Cookie": f"{REFRESH_COOKIE}={alices.refresh}"}
    assert api.client.get("/api/me", headers=cookie).status_code == 401
    assert api.client.post("/api/ws-ticket", headers=cookie).status_code == 401
    assert api.client.post("/api/auth/logout", headers=cookie).status_code == 401
    # An HTML form on another site can post text/plain, urlencoded or multipart, without an
    # Origin in old browsers: a JSON body in it is not JSON to the API.
    body = json.dumps({"login": alice.name, "password": alice.password})
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
        form = api.client.post(
            "/api/auth/login", content=body, headers={"Content-Type": content_type}
        )
        assert form.status_code == 422, content_type
    # Alice's refresh token was not spent by any of it.
    renewed = api.client.post("/api/auth/refresh", headers=alices.refresh_headers())
    assert renewed.status_code == 200, renewed.text


# -- WebSocket tickets ---------------------------------------------------------------------------


def _socket(api: Api, query: str, *, origin: str = PUBLIC_URL, ip: str | None = None) -> object:
    """What the server does with a socket: OPEN if it keeps it open (nothing is sent for a
    user without bots), else the close code it sends."""
    url = api.url.replace("http://", "ws://") + "/api/ws" + query
    headers = _from(ip) if ip else None
    with connect(
        url,
        origin=Origin(origin),
        additional_headers=headers,
        open_timeout=5,
        proxy=None,
    ) as ws:
        try:
            ws.recv(timeout=1.5)
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None
        except TimeoutError:
            return OPEN
    return OPEN


def _ticket(api: Api, tokens: Tokens, ip: str | None = None) -> str:
    response = api.client.post("/api/ws-ticket", headers=tokens.headers | (_from(ip) if ip else {}))
    assert response.status_code == 200, response.text
    return str(response.json()["ticket"])


def _query(ticket: str) -> str:
    return "?" + urlencode({"ticket": ticket})


def test_a_stolen_ticket_is_refused_from_another_address_and_burned(
    api_factory: ApiFactory,
) -> None:
    owner_ip, thief_ip = "198.51.100.7", "203.0.113.50"
    # The server listens on 127.0.0.1 only: another address comes through the trusted proxy.
    with api_factory(trusted_proxies=PROXY) as api:
        tokens = api.login(api.make_user(), **_from(owner_ip))
        ticket = _ticket(api, tokens, owner_ip)
        assert _socket(api, _query(ticket), ip=thief_ip) == POLICY_VIOLATION
        # The thief's try burned it: the owner asks for another (a ticket lives 30 s anyway).
        assert _socket(api, _query(ticket), ip=owner_ip) == POLICY_VIOLATION
        # A forged X-Forwarded-For naming the owner: the proxy appends the thief's own address.
        ticket = _ticket(api, tokens, owner_ip)
        forged = f"{owner_ip}, {thief_ip}"
        assert _socket(api, _query(ticket), ip=forged) == POLICY_VIOLATION
        assert _socket(api, _query(_ticket(api, tokens, owner_ip)), ip=owner_ip) == OPEN


def test_nothing_but_a_ticket_opens_the_socket(api: Api) -> None:
    user = api.make_user()
    tokens = api.login(user)
    reset: Token = api.ctx.accounts.tokens.issue("reset", user_id=user.id, ttl=RESET_TTL_S)
    with reset.reveal_text() as reset_token:
        impostors = {
            "no ticket": "",
            "empty ticket": "?ticket=",
            "garbage": _query("x" * 43),
            "too long": _query("x" * 5000),
            "the access token": _query(tokens.access),
            "the refresh token": _query(tokens.refresh),
            "the CSRF token": _query(tokens.csrf),
            "a reset token": _query(reset_token),
            "a token as another parameter": "?token=" + quote(_ticket(api, tokens)),
            "a ticket with a suffix": _query(_ticket(api, tokens) + "x"),
        }
    outcomes = {name: _socket(api, query) for name, query in impostors.items()}
    assert outcomes == dict.fromkeys(impostors, POLICY_VIOLATION)
    assert _socket(api, _query(_ticket(api, tokens))) == OPEN  # the control


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_ticket_expires_in_redis(api: Api) -> None:
    # In Redis a ticket expires by Redis's own TTL, on the wall clock (the database store's
    # expiry, on the test clock: tests/web/test_ws_api.py::test_an_expired_ticket_is_refused).
    # So: the route's ticket carries a TTL of at most 30 s, and a ticket whose TTL has run out
    # is refused by the same redemption path.
    settings = api.ctx.settings
    assert settings.redis_url is not None
    user = api.make_user()
    tokens = api.login(user)
    _ticket(api, tokens)
    with settings.redis_url.reveal_text() as url:
        client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(f"{instance_prefix(api.ctx.engine)}:ott:ws:*"))
        assert len(keys) == 1
        assert 0 < client.pttl(keys[0]) <= TICKET_TTL_S * 1000
    finally:
        client.close()
    short: Token = api.ctx.accounts.tokens.issue(
        "ws", user_id=user.id, ttl=0.3, bound_to="127.0.0.1"
    )
    time.sleep(0.6)
    with short.reveal_text() as text:
        assert _socket(api, _query(text)) == POLICY_VIOLATION


# -- injection -----------------------------------------------------------------------------------

HOSTILE = {
    "sql or": "' OR 1=1 --",
    "sql drop": "'; DROP TABLE users; --",
    "script": "<script>alert(1)</script>",
    "attribute": '"><img src=x onerror=alert(1)>',
    "nul": "nul\x00byte",
    "very long": "A" * 5000,
    "rtl override": "\u202etxt.exe",
    "emoji": "\U0001f4a3\U0001f525\u200d",
}


def _inert(response: httpx.Response, value: str, field: str | None = None) -> None:
    """No 5xx; JSON with nosniff; the value not echoed; a 422 names the field (`field`)."""
    assert response.status_code < 500, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert value not in response.text
    assert json.dumps(value)[1:-1] not in response.text
    if response.status_code == 422 and _code(response) == "validation" and field is not None:
        fields = [f["loc"] for f in response.json()["error"]["fields"]]
        assert any(loc == field or loc.startswith(field + ".") for loc in fields), fields


def _users_intact(api: Api, admin: Tokens, expected: int) -> None:
    listed = api.client.get("/api/users", headers=admin.headers)
    assert listed.status_code == 200
    assert len(listed.json()) == expected


def test_hostile_text_in_anonymous_routes_is_inert(api_factory: ApiFactory) -> None:
    with api_factory(trusted_proxies=PROXY, login_unknown_rate=HIGH) as api:
        admin = api.make_user(Role.ADMIN, totp=True)
        user = api.make_user()
        addresses = (f"203.0.113.{n}" for n in range(1, 250))  # no throttle gets involved

        def post(path: str, body: dict[str, Any]) -> httpx.Response:
            return api.client.post(path, json=body, headers=_from(next(addresses)))

        for value in HOSTILE.values():
            for field, body in (
                ("login", {"login": value, "password": WRONG}),
                ("password", {"login": user.name, "password": value}),
                ("code", {"login": admin.name, "password": admin.password, "code": value}),
            ):
                response = post("/api/auth/login", body)
                _inert(response, value, f"body.{field}")
                assert response.status_code in (401, 422), (field, response.text)
            for email in (value, f"{value}@example.com"):
                response = post("/api/auth/reset/request", {"email": email})
                _inert(response, value, "body.email")
                assert response.status_code in (202, 422)
            for field, body in (
                ("token", {"token": value, "password": "a fine new passphrase 7"}),
                ("password", {"token": "x" * 43, "password": value}),
                ("code", {"token": "x" * 43, "password": "a fine new passphrase 7", "code": value}),
            ):
                response = post("/api/auth/reset/confirm", body)
                _inert(response, value, f"body.{field}")
                assert response.status_code in (401, 422)
            for field in ("token", "name", "email", "password"):
                body = {"token": "x" * 43, "name": "root", "email": "r@example.com"}
                body |= {"password": "the first admin's passphrase", field: value}
                _inert(post("/api/setup", body), value, f"body.{field}")
        # Bodies that are not JSON text at all.
        not_utf8 = api.client.post(
            "/api/auth/login",
            content=b'{"login": "\xff\xfe", "password": "x"}',
            headers={"Content-Type": "application/json"},
        )
        assert not_utf8.status_code == 422
        assert not_utf8.json()["error"]["fields"][0]["loc"] == "body"
        huge = api.client.post("/api/auth/login", json={"login": "a", "password": "A" * MAX_BODY})
        assert huge.status_code == 413
        # Everyone still logs in; the users table holds who it held.
        api.login(user)
        _users_intact(api, api.login(admin), expected=2)


def test_hostile_text_in_account_routes_is_stored_exactly_or_refused(
    api_factory: ApiFactory,
) -> None:
    with api_factory(trusted_proxies=PROXY) as api:
        admin = api.make_user(Role.ADMIN, totp=True)
        tokens = api.login(admin)
        addresses = (f"203.0.113.{n}" for n in range(1, 250))  # step-ups count like logins

        def send(method: str, path: str, body: dict[str, Any]) -> httpx.Response:
            headers = tokens.headers | _from(next(addresses))
            return api.client.request(method, path, json=body, headers=headers)

        accounts, stored = 1, set()
        for n, value in enumerate(HOSTILE.values()):
            # A user name has a pattern: refused, the field named.
            body = {"name": value, "password": "orbit velvet marmalade 9", "role": "viewer"}
            response = send("POST", "/api/users", body)
            assert response.status_code == 422
            _inert(response, value, "body.name")
            # An email address is free text but for @, white space and control characters:
            # what passes is stored and returned as given (addresses are kept lowercase, as
            # these are), escaped as JSON.
            email = f"{value}@example.com"
            body = {"name": f"inj-{n}", "email": email, "password": "orbit velvet marmalade 9"}
            response = send("POST", "/api/users", body | {"role": "viewer"})
            if response.status_code == 201:
                accounts += 1
                stored.add(value)
                _stored_as_sent(response, "email", email)
            else:
                assert response.status_code in (400, 422), response.text
                _inert(response, value, "body.email")
            # The role is an enum, the id an integer.
            patch = send("PATCH", f"/api/users/{admin.id}", {"role": value})
            assert patch.status_code == 422
            _inert(patch, value, "body.role")
            by_id = send("PATCH", f"/api/users/{quote(value, safe='')}", {})
            assert by_id.status_code in (404, 422)
            _inert(by_id, value, "path.user_id")
            # Step-up codes and passwords of /api/me: wrong, never a 5xx, never echoed.
            for path, field, me_body in (
                ("/api/me/backup-codes", "code", {"password": admin.password, "code": value}),
                ("/api/me/2fa/confirm", "code", {"code": value}),
                ("/api/me/password", "current_password", {
                    "current_password": value, "new_password": "a fine new passphrase 7",
                    "code": "000000",
                }),
                ("/api/me/password", "new_password", {
                    "current_password": admin.password, "new_password": value, "code": value,
                }),
            ):  # fmt: skip
                answer = send("POST", path, me_body)
                _inert(answer, value, f"body.{field}")
                assert answer.status_code in (401, 409, 422), (path, answer.text)
        # Of the list, the addresses without white space or NUL, and short enough, are stored.
        assert stored == {HOSTILE[k] for k in ("script", "rtl override", "emoji")}
        # The SQL and attribute strings without spaces are addresses too: stored as sent.
        for n, email in enumerate(
            ("'or'1'='1'--@example.com", '"><svg/onload=alert(1)>@example.com')
        ):
            body = {"name": f"stored-{n}", "email": email, "password": "orbit velvet marmalade 9"}
            response = send("POST", "/api/users", body | {"role": "viewer"})
            assert response.status_code == 201, (email, response.text)
            _stored_as_sent(response, "email", email)
            accounts += 1
        # A password may be any text: the SQL string is a password like any other.
        sql_user = {"name": "sql-pw", "password": "'; DROP TABLE users; -- 42", "role": "viewer"}
        assert send("POST", "/api/users", sql_user).status_code == 201
        accounts += 1
        assert _attempt(api, "sql-pw", "'; DROP TABLE users; -- 42").status_code == 200
        # The User-Agent is stored with the session and shown back as it was sent.
        for value in (HOSTILE["sql drop"], HOSTILE["script"], HOSTILE["attribute"]):
            session = api.login(admin, **{"User-Agent": value})
            sessions = api.client.get("/api/me/sessions", headers=session.headers)
            mine = [s for s in sessions.json() if s["current"]]
            assert mine[0]["user_agent"] == value
            assert sessions.headers["x-content-type-options"] == "nosniff"
        _users_intact(api, api.login(admin), expected=accounts)


def _stored_as_sent(response: httpx.Response, field: str, value: str) -> None:
    assert response.json()[field] == value
    assert json.dumps(value, ensure_ascii=False) in response.text  # a JSON string, escaped
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-content-type-options"] == "nosniff"
