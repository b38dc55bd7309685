"""Format exceptions without leaking secrets, for logs, crash reports and bot tracebacks.

Two layers: with `show_locals`, every local or argument whose name suggests a credential is
replaced before its value is ever turned into text, and containers are walked so that
`{"api_key": ...}` nested in a local is caught by its key; then the whole formatted text passes
the pattern redactor, which catches secrets inside exception messages (a signed URL in a ccxt
error, a DSN in a driver error) and any live value the vault registered.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from itertools import islice
from types import FrameType

from tradeguard.secrets.patterns import marker, redact_text

__all__ = ["SENSITIVE_NAMES", "format_exception", "is_sensitive_name"]

# Sentry's default denylist and then some, matched as substrings of the lower-cased name with
# `-` read as `_`, so `X-Api-Key`, `apiKey`, `api_key` and `binance_api_key` all match.
SENSITIVE_NAMES = (
    "api_key", "apikey", "secret", "token", "private_key", "privatekey", "password", "passwd",
    "pwd", "passphrase", "mnemonic", "seed", "signature", "cookie", "authorization", "auth",
    "credential", "session", "csrf", "xsrf", "x_forwarded_for", "phpsessid", "connect.sid",
    "symfony", "dek", "master_key",
)  # fmt: skip

_MAX_DEPTH = 4
_MAX_ITEMS = 40
_MAX_REPR = 300
_LOCAL = marker("local")


def is_sensitive_name(name: str) -> bool:
    lowered = name.lower().replace("-", "_")
    return any(word in lowered for word in SENSITIVE_NAMES)


def _short_repr(value: object) -> str:
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - a broken __repr__ must not hide the original error
        return f"<{type(value).__name__} with a failing repr>"
    return text if len(text) <= _MAX_REPR else f"{text[:_MAX_REPR]}..."


def _scrubbed_repr(value: object, depth: int = 0) -> str:
    """repr() that blanks the values of credential-named keys, however deep they sit."""
    if depth >= _MAX_DEPTH:
        return "..."
    if isinstance(value, Mapping):
        items = []
        for key, item in islice(value.items(), _MAX_ITEMS):
            hidden = isinstance(key, str) and is_sensitive_name(key)
            shown = _LOCAL if hidden else _scrubbed_repr(item, depth + 1)
            items.append(f"{_short_repr(key)}: {shown}")
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list | tuple | set | frozenset):
        inner = ", ".join(_scrubbed_repr(v, depth + 1) for v in islice(value, _MAX_ITEMS))
        if isinstance(value, list):
            return f"[{inner}]"
        return f"({inner})" if isinstance(value, tuple) else f"{{{inner}}}"
    return _short_repr(value)


def _scrubbed_locals(frame: FrameType) -> dict[str, str]:
    shown: dict[str, str] = {}
    for name, value in islice(frame.f_locals.items(), _MAX_ITEMS):
        if name.startswith("__"):
            continue
        shown[name] = _LOCAL if is_sensitive_name(name) else _scrubbed_repr(value)
    return shown


def _attach_locals(te: traceback.TracebackException, exc: BaseException | None) -> None:
    if exc is None:
        return
    frames = [frame for frame, _ in traceback.walk_tb(exc.__traceback__)]
    for summary, frame in zip(te.stack, frames, strict=False):
        summary.locals = _scrubbed_locals(frame)
    if te.__cause__ is not None:
        _attach_locals(te.__cause__, exc.__cause__)
    if te.__context__ is not None:
        _attach_locals(te.__context__, exc.__context__)
    for sub_te, sub_exc in zip(te.exceptions or (), getattr(exc, "exceptions", ()), strict=False):
        _attach_locals(sub_te, sub_exc)


def format_exception(exc: BaseException, *, show_locals: bool = False) -> str:
    """The traceback of `exc` as text, with secrets redacted.

    `show_locals` adds each frame's locals (names matching `SENSITIVE_NAMES` blanked), for crash
    reports a person will read; logs leave them out.
    """
    te = traceback.TracebackException.from_exception(exc, capture_locals=False)
    if show_locals:
        _attach_locals(te, exc)
    return redact_text("".join(te.format()))
