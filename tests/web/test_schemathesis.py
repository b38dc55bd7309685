"""Schemathesis over the published schema (/api/openapi.json) of the live app, over real HTTP,
on SQLite and on PostgreSQL + Redis.

Every operation the schema publishes is fuzzed with schema-valid (positive) and schema-invalid
(negative) requests, authenticated with the bearer token of an admin who has a second factor
(admin routes refuse an admin without one). Each response must pass three checks:
`not_a_server_error` (no 5xx), `response_schema_conformance` (the body matches the declared
model, errors included) and `status_code_conformance` (the status is one the operation
declares).

What is left out, and why:

- The WebSocket route is not an HTTP operation: FastAPI does not publish it, so it is not in
  the schema (tests/web/test_ws_api.py and test_attacks.py attack it).
- Nothing else. Step-up routes want a fresh TOTP code, which Schemathesis cannot produce: they
  answer 401/422, which is what the checks accept. Reset and setup tokens are random strings:
  401/409. The logout routes would end the session the rest of the run uses, so each of their
  requests carries the token of a throw-away account made for it: a fresh viewer, because a
  PATCH /api/users case may have disabled or re-roled any earlier one (and `logout-all` ends
  every session of its account, so a second session of the admin would not do).

Bounded and repeatable: a fixed number of examples an operation and mode, derandomized
Hypothesis (the same cases every run), no example database, no shrinking (a failure is
reported with its curl command instead). The pytest integration of Schemathesis
(`schemathesis.pytest.from_fixture`) needs a fixture-loaded schema, and with pytest 9 it fails
before the first case (`'Function' object has no attribute '_nodeid'`), so this test drives
each operation's Hypothesis strategy itself, which is the public `as_strategy` API.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from limits import parse_many
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.core.result import Err
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance
from tests.web.conftest import Api, ApiFactory

from tradeguard.auth.accounts import Role
from tradeguard.web.app import OPENAPI_URL

# Request budgets far above what one run sends: a 429 would hide whatever the request would
# have reached, a 5xx included (the test asserts that no 429 was seen). The settings raise the
# per-user and global budgets and the unknown-address hashing ceiling; the login throttles and
# the budget of anonymous routes are constants of tradeguard.auth.throttle, so the fixture
# raises them on this installation's live limiters. Their own behaviour is proven in
# tests/auth/test_throttle.py and tests/web/test_attacks.py.
HIGH = "1000000/minute"
MAX_EXAMPLES = 25  # an operation and mode: about 30 s a store for the 36 operations of today
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]
Operation = APIOperation[Any, Any, Any, Any]
LOGOUTS = frozenset({"/api/auth/logout", "/api/auth/logout-all"})


@dataclass
class Fuzz:
    api: Api
    headers: dict[str, str]
    failures: list[str] = field(default_factory=list)
    statuses: dict[str, set[int]] = field(default_factory=dict)

    def headers_for(self, case: Any) -> dict[str, str]:
        if case.path in LOGOUTS:
            return self.api.login(self.api.make_user(Role.VIEWER)).headers
        return self.headers


@pytest.fixture
def fuzz(api_factory: ApiFactory) -> Iterator[Fuzz]:
    with api_factory(rate_limit_user=HIGH, rate_limit_global=HIGH, login_unknown_rate=HIGH) as api:
        throttle = api.ctx.accounts.throttle
        throttle.per_address = throttle.per_pair = throttle.per_account_unknown = parse_many(HIGH)
        api.ctx.accounts.rates.anonymous = parse_many(HIGH)
        admin = api.make_user(Role.ADMIN, totp=True)
        yield Fuzz(api, api.login(admin).headers)


def test_every_operation_answers_without_5xx_and_within_its_schema(fuzz: Fuzz) -> None:
    config = SchemathesisConfig.from_dict({"base-url": fuzz.api.url})
    schema = schemathesis.openapi.from_url(fuzz.api.url + OPENAPI_URL, config=config)
    operations = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            pytest.fail(f"the published schema has an invalid operation: {result.err()}")
        operations.append(result.ok())
    assert {"/api/auth/login", "/api/users", "/api/me"} <= {op.path for op in operations}
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzzer(fuzz, operation, mode)()
            except Unsatisfiable:
                # Nothing to make invalid: no parameters and no body (GET /api/health).
                assert mode is GenerationMode.NEGATIVE, operation.label
    assert not fuzz.failures, "\n\n".join(fuzz.failures)
    seen = {status for statuses in fuzz.statuses.values() for status in statuses}
    assert 429 not in seen, "a throttle answered: raise its budget for this test"
    # The token worked: authenticated operations were reached, not just refused.
    assert 200 in fuzz.statuses[f"{GenerationMode.POSITIVE} GET /api/users"]


def _fuzzer(fuzz: Fuzz, operation: Operation, mode: GenerationMode) -> Callable[[], None]:
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(mode))
    def run(case: Any) -> None:
        headers = fuzz.headers_for(case)
        response = case.call(headers=headers)
        fuzz.statuses.setdefault(f"{mode} {operation.label}", set()).add(response.status_code)
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except (Failure, FailureGroup) as failure:
            fuzz.failures.append(f"{operation.label} ({mode}): {failure}")

    return run
