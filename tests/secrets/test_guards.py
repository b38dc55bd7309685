"""The redactor's guard phase: the C extension answers exactly as the Python reference does.

`guards.rules` decides which redaction rules run on a line, so a guard that says "no" when the
reference says "yes" would let a secret through. The C guard is held to the reference on
generated text dense with trigger fragments and cut-off triggers, on every corpus line, and at
the edges (empty, very long, non-ASCII, not a str).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.fakes import Fakes, fill
from tests.secrets.test_redaction_corpus import load_corpus

from tradeguard.secrets import guards, patterns

try:
    from tradeguard.secrets import _guard
except ImportError:  # pragma: no cover - only without a compiler at install
    if os.environ.get("CI") == "true":
        raise
    pytest.skip("the C guard was not built (no compiler at install)", allow_module_level=True)

# Each trigger, cut-off triggers, near misses and the characters that make up runs.
FRAGMENTS = [
    "-----BEGIN", "-----begin", "-----BEGI", "bearer", "Bearer", "beare", "basic", "BASIC",
    "eyJ", "eyj", "ey", "://", ":/", "@", "xox", "xo", "xapp-", "xapp", "hooks.slack",
    "hooks.slac", "AKIA", "akia", "ASIA", "ASI", "key", "KEY", "ke", "secret", "secre", "token",
    "toke", "passw", "pass", "passphrase", "pwd", "pw", "cookie", "credential", "credentia",
    "mnemonic", "ticket", "auth", "aut", "sign", "SIGN", "signature", "signatur", "signal",
    "design", "ature", "a", "z", "Z", " ", ":", "=", "_", "-", "0", "9", "f", "F", "g",
    "deadbeef", "0123456789abcdef", "abandon ", "zoo ", "\t", "\n", "~", "\x00", "\x7f",
]  # fmt: skip
ascii_lines = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.text(st.characters(max_codepoint=127), max_size=3)),
    max_size=60,
).map("".join)


@settings(max_examples=3000, deadline=None)
@given(ascii_lines)
def test_the_c_guard_equals_the_reference_on_generated_lines(text: str) -> None:
    assert _guard.rules(text) == guards.rules_py(text)


@pytest.mark.parametrize("run", [64, 63, 65, 128], ids=lambda n: f"hex{n}")
@pytest.mark.parametrize("length", [0, 43, 44, 200])
def test_run_lengths_and_line_lengths_at_their_thresholds(run: int, length: int) -> None:
    for text in (
        "k:" + "a" * run,
        ("x" * length)[: max(0, length - run)] + "f" * run,
        "1" * 8 + ":" + "b" * max(0, length - 9),
        "abandon " * (run // 8) + "x" * (length - run if length > run else 0),
        " " * 11 + "ab" * (run // 2),
    ):
        assert _guard.rules(text) == guards.rules_py(text), text


_WITHOUT_C_GUARD = """
import json, sys
sys.modules["tradeguard.secrets._guard"] = None  # as on a host that had no compiler at install
from tradeguard.secrets import guards, patterns
assert not guards.ACCELERATED and guards.rules_ascii is guards.rules_py
print(json.dumps([patterns.redact_text(line) for line in json.load(sys.stdin)]))
"""


def test_every_corpus_line_gets_the_same_mask_and_the_same_redaction_without_the_c_guard() -> None:
    lines = [fill(case.input, Fakes(seed=case.index))[0] for case in load_corpus()]
    assert all(_guard.rules(text) == guards.rules_py(text) for text in lines if text.isascii())
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_C_GUARD],
        input=json.dumps(lines),
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(done.stdout) == [patterns.redact_text(text) for text in lines]


def test_a_long_line_is_scanned_to_its_end() -> None:
    body = "x" * 1_000_000
    assert _guard.rules(body) == 0
    assert _guard.rules(body + " api_key=") == guards.FIELD
    assert _guard.rules(body + "-----BEGIN") == guards.PEM


@pytest.mark.parametrize("guard", [_guard.rules, guards.rules_py], ids=["c", "python"])
def test_a_line_of_glued_trigger_words_costs_linear_time(guard: object) -> None:
    """Every `key` in `keykeykey...` starts a name that runs to the end of the line; measuring
    that name once per hit would take minutes on this line, and a log call must not hang."""
    assert callable(guard)
    assert guard("keysign" * 30_000) == 0
    assert guard("keysign" * 30_000 + "=1") == guards.FIELD


def test_the_c_guard_takes_only_ascii_str_and_other_text_takes_the_python_guard() -> None:
    with pytest.raises(TypeError):
        _guard.rules(b"key")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ASCII"):
        _guard.rules("clé key")
    # The Kelvin sign lower-cases to an ASCII k: only the Python guard knows Unicode case.
    value = secrets.token_hex(8)
    assert patterns.redact_text(f"\u212aey={value}") == "\u212aey=[REDACTED:credential]"


@pytest.mark.parametrize("guard", [_guard.rules, guards.rules_py], ids=["c", "python"])
def test_the_field_guard_admits_every_credential_field_with_a_value(guard: object) -> None:
    assert callable(guard)
    names = [*patterns._BARE_FIELDS, "X-BAPI-SIGN", "okx_passphrase", "binanceApiKey", "apiSign",
             "apisignature", "pwd"]  # fmt: skip
    for name in names:
        for field in (f"{name}=x", f"{name} = x", f"{name}: x", f'"{name}": "x"', f"'{name}'\t:"):
            assert guard(field) & guards.FIELD, field
    prose = "strategy signal: generated, check passed, designed by hand; key rotation due"
    assert not guard(prose) & guards.FIELD
    assert not guard("api_key") & guards.FIELD  # a name with no value


def test_the_unrolled_field_prefilter_admits_every_field_trigger() -> None:
    """guards._may_hold_field is an unrolled copy of _FIELD_TRIGGERS, kept for speed."""
    for word in guards._FIELD_TRIGGERS:
        assert guards._may_hold_field(f"x {word} y"), word
    assert not guards._may_hold_field("order filled at 64250.5, position flat")


def test_the_installed_package_uses_the_c_guard() -> None:
    assert guards.ACCELERATED
