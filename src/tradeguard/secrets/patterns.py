"""Find secrets in free text and replace them with `[REDACTED:<kind>]`.

Rules run in a fixed order and a replaced span is never looked at again (every rule skips text
that is already a marker):

1. live values registered by the vault, in every encoding (`_registry`);
2. PEM private-key blocks (a block cut off before its END line is redacted to the end);
3. `Bearer` and `Basic` credentials (Basic only when it decodes to `user:password`);
4. JWTs; 5. passwords in URL userinfo; 6. Slack webhooks and tokens; 7. Telegram bot tokens;
8. AWS access key ids; 9. 64-hex keys next to a key-ish label (a tx hash stays);
10. BIP39 mnemonics that pass the checksum; 11. values of credential-named fields in query
strings, JSON, dict reprs and headers.

Speed matters because every log line passes here, and almost no line holds a secret. No rule's
regex runs unless its guard (`guards`: a trigger word in the lower-cased line, or a run of
hex digits or lowercase words) says it could match. See bench/redaction.py for what this buys.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable

from tradeguard.secrets import bip39, guards
from tradeguard.secrets._registry import live_values
from tradeguard.secrets.guards import rules_ascii, rules_py

__all__ = ["MARKER_PREFIX", "marker", "redact_text"]

MARKER_PREFIX = "[REDACTED:"


def marker(kind: str) -> str:
    return f"{MARKER_PREFIX}{kind}]"


# A field name: `api_key`, `X-MBX-APIKEY`, `okx.passphrase`.
_NAME_RUN = re.compile(r"[A-Za-z0-9_.\-]*")

# -- 2. PEM ------------------------------------------------------------------------------------

_PEM = re.compile(
    r"-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY((?: BLOCK)?)-----"
    r"(?:.*?-----END \1PRIVATE KEY\2-----|.*\Z)",
    re.S,
)


def _pem(text: str) -> str:
    return _PEM.sub(marker("pem_private_key"), text)


# -- 3. HTTP auth schemes ----------------------------------------------------------------------

_BEARER = re.compile(r"\b(bearer)(\s+)(?!\[REDACTED:)[A-Za-z0-9\-._~+/]{8,}=*", re.I)
_BASIC = re.compile(r"\b(basic)(\s+)([A-Za-z0-9+/]{6,}={0,2})(?![A-Za-z0-9+/=])", re.I)


def _bearer(text: str) -> str:
    return _BEARER.sub(lambda m: f"{m[1]}{m[2]}{marker('bearer')}", text)


def _basic(text: str) -> str:
    def replace(m: re.Match[str]) -> str:
        try:
            decoded = base64.b64decode(m[3], validate=True)
        except (binascii.Error, ValueError):
            return m[0]
        # Basic credentials are base64("user:password"); the word "basic" in prose is not.
        return f"{m[1]}{m[2]}{marker('basic_auth')}" if b":" in decoded else m[0]

    return _BASIC.sub(replace, text)


# -- 4-8. token shapes -------------------------------------------------------------------------

_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
# `(?!\*\*\*@)`: SQLAlchemy and others already print `user:***@`; leave their mask alone.
_URL_PASSWORD = re.compile(
    r"\b([A-Za-z][A-Za-z0-9+.\-]*://[^\s:/?#@\[\]]*):(?!\[REDACTED:|\*\*\*@)[^\s@/?#]+@"
)
_SLACK_WEBHOOK = re.compile(
    r"(https?://hooks\.slack\.com/(?:services|workflows|triggers)/)[A-Za-z0-9_/\-]+"
)
_SLACK_TOKEN = re.compile(r"\b(?:xox[abposre]-[A-Za-z0-9-]{10,}|xapp-[0-9]-[A-Za-z0-9-]{10,})")
_TELEGRAM = re.compile(r"(?<![0-9])[0-9]{8,10}:[A-Za-z0-9_-]{35}(?![A-Za-z0-9_-])")
_AWS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")


def _jwt(text: str) -> str:
    return _JWT.sub(marker("jwt"), text)


def _url_password(text: str) -> str:
    return _URL_PASSWORD.sub(lambda m: f"{m[1]}:{marker('url_password')}@", text)


def _slack(text: str) -> str:
    text = _SLACK_WEBHOOK.sub(lambda m: f"{m[1]}{marker('slack_webhook')}", text)
    return _SLACK_TOKEN.sub(marker("slack_token"), text)


def _telegram(text: str) -> str:
    return _TELEGRAM.sub(marker("telegram_token"), text)


def _aws(text: str) -> str:
    return _AWS_KEY_ID.sub(marker("aws_access_key"), text)


# -- 9. 64-hex keys ----------------------------------------------------------------------------

_KEYISH = ("key", "secret", "priv", "seed", "signer")
_LABEL_SEPARATORS = " \t\"':="


def _label_before(text: str, at: int) -> str:
    """The field name or word just before position `at`, past quotes, `:`, `=` and spaces."""
    window = text[max(0, at - 80) : at].rstrip(_LABEL_SEPARATORS)[::-1]
    name = _NAME_RUN.match(window)
    return name[0][::-1] if name else ""


def _hex_key_spans(text: str, hexes: bytes) -> list[tuple[int, int]]:
    """Spans of exactly-64-hex-digit tokens (with any `0x`) that follow a key-ish label.

    `hexes` marks each hex digit of `text` with `x` (see guards.HEX_COLON_MAP), so runs are found by
    `bytes.find` instead of a regex stepping through every position.
    """
    spans = []
    at = hexes.find(guards.HEX_RUN)
    while at != -1:
        tail = hexes[at : at + 65]
        length = len(tail) - len(tail.lstrip(b"x"))
        end = at + length
        start = at - 2 if text[max(0, at - 2) : at] in ("0x", "0X") else at
        alone = not text[start - 1 : start].isalnum() and not text[end : end + 1].isalnum()
        if length == 64 and alone:
            label = _label_before(text, start).lower()
            if any(word in label for word in _KEYISH):
                spans.append((start, end))
        if length > 64:  # a longer run (a signature, a hash chain): skip all of it
            end = at + len(hexes[at:]) - len(hexes[at:].lstrip(b"x"))
        at = hexes.find(guards.HEX_RUN, end)
    return spans


def _replace_spans(text: str, spans: list[tuple[int, int]], kind: str) -> str:
    out, done = [], 0
    for start, end in spans:
        out += [text[done:start], marker(kind)]
        done = end
    return "".join(out) + text[done:]


def _hex_keys(text: str) -> str:
    # The map is rebuilt because earlier rules may have replaced text and moved positions.
    hexes = text.encode("ascii", "replace").translate(guards.HEX_COLON_MAP)
    return _replace_spans(text, _hex_key_spans(text, hexes), "hex_key")


# -- 10. BIP39 mnemonics -----------------------------------------------------------------------

_LONGEST_FIRST = sorted(bip39.VALID_LENGTHS, reverse=True)
_SHORTEST = min(bip39.VALID_LENGTHS)


def _mnemonic_windows(words: list[str]) -> list[tuple[int, int]]:
    """(first, last+1) word indexes of each checksum-valid phrase, longest first, no overlap."""
    listed = [w in bip39.WORDS for w in words]
    spans: list[tuple[int, int]] = []
    i = 0
    while i <= len(words) - _SHORTEST:
        run = 0
        while i + run < len(words) and listed[i + run]:
            run += 1
        if run < _SHORTEST:  # prose: a word off the list ends the run; jump past it
            i += run + 1
            continue
        for length in _LONGEST_FIRST:
            if length <= run and bip39.checksum_ok(words[i : i + length]):
                spans.append((i, i + length))
                i += length
                break
        else:
            i += 1
    return spans


def _mnemonics_in(segment: str) -> str:
    """Redact phrases in a stretch of lowercase letters and spaces (single spaces separate)."""
    words = segment.split(" ")
    windows = _mnemonic_windows(words)
    if not windows:
        return segment
    out: list[str] = []
    done = 0
    for first, last in windows:
        out += [*words[done:first], marker("mnemonic")]
        done = last
    return " ".join(out + words[done:])


def _mnemonics(text: str) -> str:
    """Mnemonics are 12+ lowercase list words: only stretches of [a-z ] long enough to hold one
    (found with `bytes.find` on a class map) are split into words and checked."""
    letters = text.encode("ascii", "replace").translate(guards.WORDS_MAP)
    spans = []
    at = letters.find(guards.WORD_RUN_MIN)
    while at != -1:
        start = letters.rfind(b"\0", 0, at) + 1
        end = letters.find(b"\0", at)
        end = len(letters) if end == -1 else end
        spans.append((start, end))
        at = letters.find(guards.WORD_RUN_MIN, end)
    out, done = [], 0
    for start, end in spans:
        out += [text[done:start], _mnemonics_in(text[start:end])]
        done = end
    return "".join(out) + text[done:]


# -- 11. credential-named fields ---------------------------------------------------------------

_SENSITIVE_NAME = re.compile(
    r"key|secret|token|passw|passphrase|pwd|signature|credential|auth|cookie|mnemonic|ticket"
)
_SEGMENTS = re.compile(r"[-_.]|(?<=[a-z0-9])(?=[A-Z])")
# Names that mention a credential but hold something public about it, and exception classes
# (`KeyError: 'x'` in every traceback is not a field called KeyError).
_PUBLIC_TAILS = frozenset(("id", "ids", "version", "count", "len", "length", "type", "name",
    "kind", "hash", "fingerprint", "size", "expiry", "expires", "ttl", "at", "index", "path",
    "file", "tokens", "error", "exception", "warning", "strength", "language", "lang", "words",
    "wordlist", "bits", "algorithm", "alg", "format", "mode", "url", "uri",
    "endpoint"))  # fmt: skip
# Bare words that are credential fields even without `_`, `-` or camelCase (`password: x`).
_BARE_FIELDS = frozenset(("key", "apikey", "secret", "token", "password", "passwd", "pwd",
    "passphrase", "signature", "sign", "authorization", "cookie", "credential", "credentials",
    "mnemonic", "ticket"))  # fmt: skip
_QUOTED_VALUE = re.compile(r"[ \t]*:[ \t]*b?(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*')")
_BARE_VALUE = re.compile(
    r"([ \t]*=[ \t]*|:[ \t]*)(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|[^\s&\"',;)\]}<>]+)"
)
_ALREADY_REDACTED = re.compile(r"[ \t]*\[REDACTED:")


def _is_credential_name(name: str) -> bool:
    tail = _SEGMENTS.split(name)[-1].lower()
    if tail in _PUBLIC_TAILS:
        return False
    # `sign` counts only as the last segment (X-BAPI-SIGN, sign=), not in `sign_method`.
    return tail == "sign" or _SENSITIVE_NAME.search(name.lower()) is not None


def _looks_like_field(name: str) -> bool:
    """A `name:` is a field (header, YAML key), not prose (`auth: login failed`) and not a
    logger or module name (`botocore.credentials: Found credentials`)."""
    if "." in name:
        return False
    return (
        name.lower() in _BARE_FIELDS or "-" in name or "_" in name or bool(_SEGMENTS.search(name))
    )


def _field_value_span(text: str, start: int, end: int) -> tuple[int, int] | None:
    """Where the value of the field name text[start:end] lies, or None if it is not a field."""
    before = text[start - 1] if start else ""
    if before in "\"'" and text[end : end + 1] == before:
        m = _QUOTED_VALUE.match(text, end + 1)
        return (m.start(1) + 1, m.end(1) - 1) if m else None
    m = _BARE_VALUE.match(text, end)
    if m is None or (m[1].lstrip().startswith(":") and not _looks_like_field(text[start:end])):
        return None
    quoted = m[2][0] in "\"'"
    return (m.start(2) + 1, m.end(2) - 1) if quoted else (m.start(2), m.end(2))


def _lower_same_length(text: str) -> str:
    """`text.lower()`, keeping characters whose lower case is longer (Turkish İ) as they are,
    so that positions found in the result are positions in `text`."""
    lowered = text.lower()
    if len(lowered) == len(text):
        return lowered
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)


def _word_hits(lowered: str) -> list[tuple[int, int]]:
    hits = []
    for word in guards.FIELD_WORDS:
        at = lowered.find(word)
        while at != -1:
            hits.append((at, at + len(word)))
            at = lowered.find(word, at + 1)
    hits.sort()
    return hits


def _name_around(text: str, backwards: str, start: int, end: int, floor: int) -> tuple[int, int]:
    """Extend the hit text[start:end] to the whole field name around it (not below `floor`)."""
    before = _NAME_RUN.match(backwards, len(text) - start)
    after = _NAME_RUN.match(text, end)
    start -= before.end() - before.start() if before else 0
    return max(start, floor), after.end() if after else end


def _fields(text: str) -> str:
    out: list[str] = []
    done = examined = 0
    backwards = text[::-1]  # to extend a name to the left with one C-speed regex match
    for hit_start, hit_end in _word_hits(_lower_same_length(text)):
        if hit_start < examined:  # inside a name already looked at, or already replaced
            continue
        start, end = _name_around(text, backwards, hit_start, hit_end, done)
        examined = end
        # Cheapest test first: most hits (`PUBLIC KEY-----`, `token` in prose) have no value.
        span = _field_value_span(text, start, end)
        if span is None or span[0] == span[1] or not _is_credential_name(text[start:end]):
            continue
        value_start, value_end = span
        # A value holding a marker was handled by a more specific rule (`Bearer [REDACTED:..]`,
        # `session=[REDACTED:jwt]`); so was one followed by a marker (`Bearer` + marker).
        if MARKER_PREFIX in text[value_start:value_end] or _ALREADY_REDACTED.match(text, value_end):
            continue
        out += [text[done:value_start], marker("credential")]
        done = examined = value_end
    if not out:
        return text
    out.append(text[done:])
    return "".join(out)


# The rules in the order the module docstring gives, each with the guard bit that admits it.
_RULES: tuple[tuple[int, Callable[[str], str]], ...] = (
    (guards.PEM, _pem),
    (guards.BEARER, _bearer),
    (guards.BASIC, _basic),
    (guards.JWT, _jwt),
    (guards.URL_PASSWORD, _url_password),
    (guards.SLACK, _slack),
    (guards.AWS, _aws),
    (guards.TELEGRAM, _telegram),
    (guards.HEX_KEY, _hex_keys),
    (guards.MNEMONIC, _mnemonics),
    (guards.FIELD, _fields),
)


# -- the pipeline ------------------------------------------------------------------------------


def redact_text(text: str) -> str:
    """Return `text` with every secret the rules recognise replaced by `[REDACTED:<kind>]`."""
    for form, kind in live_values.snapshot:
        if form in text:
            text = text.replace(form, marker(kind))
    # Guards are read once, before any rule runs: a rule only ever replaces text with a marker,
    # which can hide a later rule's trigger but never create one that matters.
    found = rules_ascii(text) if text.isascii() else rules_py(text)
    if not found:
        return text
    for bit, rule in _RULES:
        if found & bit:
            text = rule(text)
    return text
