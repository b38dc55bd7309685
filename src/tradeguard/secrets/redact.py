"""Log redaction: the second line of defence behind the `Secret` types.

`install()` is called by every entry point. From then on every record handled by any logger
(ours and third-party ones alike: uvicorn, httpx, ccxt, sqlalchemy) is redacted before a single
handler sees it: its message, its arguments, its traceback, its stack and any `extra` fields.

Why `Logger.handle` and not a filter: a filter on the root logger only sees records logged on the
root logger itself, not those propagated from child loggers; filters on handlers miss handlers
that libraries add later; and a record factory runs before `extra` fields are attached. Every
record of every logger, whatever its handlers, goes through `Logger.handle` once.

The hook never raises and never drops a record: if redaction itself fails, the record is kept
and its text is replaced by a notice (failing closed: the text is lost, not leaked).
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from tradeguard.secrets._registry import live_values
from tradeguard.secrets.patterns import marker, redact_text
from tradeguard.secrets.secret import Secret
from tradeguard.secrets.tracebacks import format_exception, is_sensitive_name

__all__ = [
    "RedactingFilter",
    "format_exception",
    "install",
    "installed",
    "redact_record",
    "redact_text",
    "register",
    "uninstall",
    "unregister",
]

_BASE_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__)
_BASE_ATTR_COUNT = len(_BASE_ATTRS)
_STANDARD_ATTRS = _BASE_ATTRS | {"message", "asctime"}
_WITHHELD = (
    f"{marker('unredactable')} a log message could not be redacted and was withheld; "
    "please report this with the logger name"
)


def register(secret: Secret) -> None:
    """Redact `secret`'s value (and its URL, base64 and hex spellings) until it is wiped."""
    live_values.add(secret)


def unregister(secret: Secret) -> None:
    live_values.discard(secret)


def _unformattable(record: logging.LogRecord) -> str:
    # The format and its arguments disagree; show both (redacted) instead of failing later in a
    # handler, where logging would print the raw arguments to stderr.
    return f"{record.msg!s} (log arguments did not match the format: {record.args!r})"


def _redact_field(name: object, value: Any) -> Any:
    """An `extra=` field or a key of one: blanked by its name, else redacted by its content."""
    if isinstance(name, str) and is_sensitive_name(name):
        return marker("credential")
    return _redact_extra(value)


def _redact_extra(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Mapping):
        return {k: _redact_field(k, v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_extra(v) for v in value]
    return redact_text(str(value))


def redact_record(record: logging.LogRecord) -> None:
    """Redact `record` in place. Never raises.

    Redacting a redacted record changes nothing (tests/secrets/test_redact.py), so a record that
    meets two redactors (a RedactingFilter in a process that also ran install(), a record handled
    again off a queue) is not marked as done: a new attribute on every LogRecord would cost more
    than redacting most lines.
    """
    try:
        try:
            message = str(record.msg)  # exactly what LogRecord.getMessage() does
            if record.args:
                message = message % record.args
        except Exception:  # noqa: BLE001 - a user __str__ or a bad format must not escape
            message = _unformattable(record)
        record.msg = redact_text(message)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            record.exc_text = format_exception(record.exc_info[1])
        elif record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        # Handlers that render exc_info themselves (with locals, say) get nothing to render.
        record.exc_info = None
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        state = record.__dict__
        if len(state) > _BASE_ATTR_COUNT:  # `extra=` fields were attached
            for name in state.keys() - _STANDARD_ATTRS:
                state[name] = _redact_field(name, state[name])
    except Exception:  # noqa: BLE001 - the hook never raises; it withholds instead
        record.msg, record.args = _WITHHELD, None
        record.exc_info = record.exc_text = record.stack_info = None


class RedactingFilter(logging.Filter):
    """The same redaction as a filter, for handlers built outside a process that ran install()."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


# -- installation ------------------------------------------------------------------------------

_lock = threading.Lock()
_original_handle = logging.Logger.handle
_original_excepthook = sys.excepthook
_original_threading_excepthook = threading.excepthook


def _redacting_handle(self: logging.Logger, record: logging.LogRecord) -> Any:
    redact_record(record)
    return _original_handle(self, record)


def _excepthook(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    sys.stderr.write(format_exception(exc.with_traceback(tb)))


def _threading_excepthook(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None or args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread else "unknown"
    sys.stderr.write(f"Exception in thread {name}:\n{format_exception(args.exc_value)}")


def install() -> None:
    """Redact every log record and every uncaught traceback in this process. Idempotent."""
    with _lock:
        logging.Logger.handle = _redacting_handle  # type: ignore[method-assign]
        sys.excepthook = _excepthook
        threading.excepthook = _threading_excepthook


def uninstall() -> None:
    """Undo install(); for tests and benchmarks that compare with and without redaction."""
    with _lock:
        logging.Logger.handle = _original_handle  # type: ignore[method-assign]
        sys.excepthook = _original_excepthook
        threading.excepthook = _original_threading_excepthook


def installed() -> bool:
    return logging.Logger.handle is _redacting_handle
