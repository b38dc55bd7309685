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

Speed matters because every log line passes here, and almost no line holds a secret. Python's
`re` is slow at large alternations, so no rule's regex runs unless a C-speed guard says it could
match: a substring test on the lower-cased line, or a substring test on a class map of the line
(`bytes.translate`: "64 hex digits in a row", "8 digits and a colon", "47 characters of lowercase
words"). See bench/redaction.py for what this buys.
"""

from __future__ import annotations

import base64
import binascii
import re

from tradeguard.secrets import bip39
from tradeguard.secrets._registry import live_values

__all__ = ["MARKER_PREFIX", "marker", "redact_text"]

MARKER_PREFIX = "[REDACTED:"


def marker(kind: str) -> str:
    return f"{MARKER_PREFIX}{kind}]"


_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")

# -- 2. PEM ------------------------------------------------------------------------------------

_PEM = re.compile(
    r"-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY( BLOCK)?-----"
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
_URL_PASSWORD = re.compile(
    r"\b([A-Za-z][A-Za-z0-9+.\-]*://[^\s:/?#@\[\]]*):(?!\[REDACTED:)[^\s@/?#]+@"
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

_HEX64 = re.compile(r"(?<![0-9A-Za-z])(?:0x)?[0-9a-fA-F]{64}(?![0-9A-Za-z])")
_KEYISH = ("key", "secret", "priv", "seed", "signer")
_LABEL_SEPARATORS = " \t\"':="


def _label_before(text: str, at: int) -> str:
    """The field name or word just before position `at`, past quotes, `:`, `=` and spaces."""
    end = len(text[max(0, at - 16) : at].rstrip(_LABEL_SEPARATORS)) + max(0, at - 16)
    start = end
    while start > 0 and end - start < 64 and text[start - 1] in _NAME_CHARS:
        start -= 1
    return text[start:end]


def _hex_keys(text: str) -> str:
    def replace(m: re.Match[str]) -> str:
        label = _label_before(text, m.start()).lower()
        return marker("hex_key") if any(word in label for word in _KEYISH) else m[0]

    return _HEX64.sub(replace, text)


# -- 10. BIP39 mnemonics -----------------------------------------------------------------------

# Every English list word is 3-8 lowercase letters; a run of 12+ such words is a candidate.
_WORD_RUN = re.compile(r"(?<![A-Za-z])(?:[a-z]{3,8} ){11,}[a-z]{3,8}(?![A-Za-z])")
_LONGEST_FIRST = sorted(bip39.VALID_LENGTHS, reverse=True)


def _mnemonic_spans(words: list[str]) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(words):
        for length in _LONGEST_FIRST:
            window = words[i : i + length]
            complete = len(window) == length and all(w in bip39.WORDS for w in window)
            if complete and bip39.checksum_ok(window):
                spans.append((i, i + length))
                i += length
                break
        else:
            i += 1
    return spans


def _mnemonics(text: str) -> str:
    def replace(m: re.Match[str]) -> str:
        words = m[0].split(" ")
        spans = _mnemonic_spans(words)
        if not spans:
            return m[0]
        out: list[str] = []
        at = 0
        for start, end in spans:
            out.extend(words[at:start])
            out.append(marker("mnemonic"))
            at = end
        out.extend(words[at:])
        return " ".join(out)

    return _WORD_RUN.sub(replace, text)


# -- 11. credential-named fields ---------------------------------------------------------------

# `sign` covers `signature` and the `X-BAPI-SIGN` style; whether a name holding it is a credential
# (`sign`, `X-BAPI-SIGN`: yes; `signal`: no) is decided on the whole name by _SENSITIVE_NAME.
_FIELD_WORDS = ("key", "secret", "token", "pass", "pwd", "sign", "credential", "auth", "cookie",
                "mnemonic")  # fmt: skip
_SENSITIVE_NAME = re.compile(
    r"key|secret|token|passw|passphrase|pwd|signature|credential|auth|cookie|mnemonic"
    r"|(?<![a-z0-9])sign(?![a-z0-9])"
)
_SEGMENTS = re.compile(r"[-_.]|(?<=[a-z0-9])(?=[A-Z])")
# Names that mention a credential but hold something public about it, and exception classes
# (`KeyError: 'x'` in every traceback is not a field called KeyError).
_PUBLIC_TAILS = frozenset(("id", "ids", "version", "count", "len", "length", "type", "name",
    "kind", "hash", "fingerprint", "size", "expiry", "expires", "ttl", "at", "index", "path",
    "file", "tokens", "error", "exception", "warning"))  # fmt: skip
# Bare words that are credential fields even without `_`, `-` or camelCase (`password: x`).
_BARE_FIELDS = frozenset(("key", "apikey", "secret", "token", "password", "passwd", "pwd",
    "passphrase", "signature", "sign", "authorization", "cookie", "credential", "credentials",
    "mnemonic"))  # fmt: skip
_QUOTED_VALUE = re.compile(r"[ \t]*:[ \t]*b?(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*')")
_BARE_VALUE = re.compile(
    r"([ \t]*=[ \t]*|:[ \t]*)(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|[^\s&\"',;)\]}<>]+)"
)
_ALREADY_REDACTED = re.compile(r"[ \t]*\[REDACTED:")


def _is_credential_name(name: str) -> bool:
    tail = _SEGMENTS.split(name)[-1].lower()
    return tail not in _PUBLIC_TAILS and _SENSITIVE_NAME.search(name.lower()) is not None


def _looks_like_field(name: str) -> bool:
    """A `name:` is a field (header, YAML key) and not prose like `auth: login failed`."""
    return (
        name.lower() in _BARE_FIELDS
        or any(c in name for c in "-_.")
        or _SEGMENTS.search(name) is not None
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
    for word in _FIELD_WORDS:
        at = lowered.find(word)
        while at != -1:
            hits.append((at, at + len(word)))
            at = lowered.find(word, at + 1)
    hits.sort()
    return hits


def _fields(text: str) -> str:
    out: list[str] = []
    done = 0
    for start, end in _word_hits(_lower_same_length(text)):
        if start < done:
            continue
        while start > done and text[start - 1] in _NAME_CHARS:
            start -= 1
        while end < len(text) and text[end] in _NAME_CHARS:
            end += 1
        if not _is_credential_name(text[start:end]):
            continue
        span = _field_value_span(text, start, end)
        if span is None or span[0] == span[1]:
            continue
        value_start, value_end = span
        if text.startswith(MARKER_PREFIX, value_start) or _ALREADY_REDACTED.match(text, value_end):
            continue
        out.append(text[done:value_start])
        out.append(marker("credential"))
        done = value_end
    if not out:
        return text
    out.append(text[done:])
    return "".join(out)


# -- the pipeline ------------------------------------------------------------------------------


def _class_map(*groups: tuple[bytes, bytes]) -> bytes:
    """A bytes.translate table sending each listed byte to its class letter, the rest to NUL."""
    table = bytearray(256)
    for members, letter in groups:
        for byte in members:
            table[byte] = letter[0]
    return bytes(table)


_HEX = b"0123456789abcdefABCDEF"
_DIGITS = b"0123456789"
_LOWER_WORDS = b"abcdefghijklmnopqrstuvwxyz "
_HEX_MAP = _class_map((_HEX, b"x"))
_DIGIT_MAP = _class_map((_DIGITS, b"9"), (b":", b":"))
_WORDS_MAP = _class_map((_LOWER_WORDS, b"a"))
_HEX_RUN = b"x" * 64
_TELEGRAM_HEAD = b"9" * 8 + b":"
_WORD_RUN_MIN = b"a" * (12 * 3 + 11)  # twelve 3-letter words and the spaces between them


def redact_text(text: str) -> str:
    """Return `text` with every secret the rules recognise replaced by `[REDACTED:<kind>]`."""
    for form, kind in live_values.snapshot:
        if form in text:
            text = text.replace(form, marker(kind))
    low = text.lower()
    raw = text.encode("ascii", "replace")  # one byte per character, for the class maps
    if "-----begin" in low:
        text = _pem(text)
    if "bearer" in low:
        text = _bearer(text)
    if "basic" in low:
        text = _basic(text)
    if "eyj" in low:
        text = _jwt(text)
    if "://" in low and "@" in low:
        text = _url_password(text)
    if "xox" in low or "xapp-" in low or "hooks.slack" in low:
        text = _slack(text)
    if _TELEGRAM_HEAD in raw.translate(_DIGIT_MAP):
        text = _telegram(text)
    if "AKIA" in text or "ASIA" in text:
        text = _aws(text)
    if len(raw) >= 64 and _HEX_RUN in raw.translate(_HEX_MAP):
        text = _hex_keys(text)
    if _WORD_RUN_MIN in raw.translate(_WORDS_MAP):
        text = _mnemonics(text)
    if any(word in low for word in _FIELD_WORDS):
        text = _fields(text)
    return text
