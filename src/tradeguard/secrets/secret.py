"""`Secret`: a value that cannot be printed, pickled, copied or compared by accident.

A secret lives in one mutable `bytearray` so that `wipe()` can zero it in place. Every way Python
has of turning an object into text (`repr`, `str`, f-strings, `%`-formatting, logging) shows a
mask instead of the value; every way of duplicating it (pickle, copy, deepcopy) raises; comparing
it with a plain `str`/`bytes` raises, because such comparisons are how timing leaks are written;
comparing two secrets uses `hmac.compare_digest`.

What zeroing can and cannot promise in CPython is written down in docs/security.md: the buffer
we own is zeroed, but a `str` or `bytes` the value was built from, or that a caller makes while it
is revealed, is immutable and lives until the garbage collector reuses its memory.
"""

from __future__ import annotations

import contextlib
import hmac
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, NoReturn, Self

from tradeguard.core.errors import SecretValueError, SecretWipedError
from tradeguard.secrets import _registry, memlock

__all__ = ["Secret"]

# A secret shorter than this never shows a single character, whatever its type says.
_MIN_LEN_FOR_PREFIX = 16

_Buffer = bytes | bytearray | memoryview


class Secret:
    """A secret value held in a buffer that is zeroed by `wipe()`.

    Build one from `str` (encoded as UTF-8) or any bytes-like object; the input is copied. Use
    `with secret.reveal() as view:` to read it for as short a time as possible, and `wipe()` (or
    `with Secret(...) as s:`) when done. Subclasses name the kind of secret (`kind`, used in
    redaction markers) and may check its shape in `_check`.
    """

    __slots__ = ("__weakref__", "_buf", "_locked", "_wiped")

    kind: ClassVar[str] = "secret"
    # How many leading characters `repr` may show, for identifiers that are public-ish (API key
    # ids printed on the venue's own web page). Zero for everything that is truly secret.
    shown_prefix: ClassVar[int] = 0

    def __init__(self, value: str | _Buffer) -> None:
        if isinstance(value, Secret):
            raise TypeError("value is already a Secret; pass it on instead of wrapping it again")
        if isinstance(value, str):
            try:
                buf = bytearray(value, "utf-8")
            except UnicodeEncodeError:
                raise SecretValueError("a secret must be valid Unicode text") from None
        elif isinstance(value, bytes | bytearray | memoryview):
            buf = bytearray(value)
        else:
            raise TypeError(f"value must be str or bytes-like, not {type(value).__name__}")
        self._own(buf)

    def _own(self, buf: bytearray) -> None:
        """Hold `buf` as this secret's value, after checking its shape (zeroed if refused)."""
        self._buf = buf
        self._wiped = False
        self._locked = False
        try:
            self._check(memoryview(buf).toreadonly())
        except BaseException:
            self.wipe()
            raise

    @classmethod
    def adopt(cls, buf: bytearray) -> Self:
        """Take ownership of `buf` without copying it (for decrypted plaintext).

        The caller must drop every reference to `buf`: from now on `wipe()` zeroes it.
        """
        if not isinstance(buf, bytearray):
            raise TypeError(f"buf must be a bytearray, not {type(buf).__name__}")
        secret = cls.__new__(cls)
        secret._own(buf)
        return secret

    def _check(self, value: memoryview) -> None:
        """Raise `SecretValueError` when `value` has the wrong shape. Never quote the value."""

    # -- reading -----------------------------------------------------------------------------

    @contextmanager
    def reveal(self) -> Iterator[memoryview]:
        """Yield a read-only view of the bytes; the view is released when the block ends."""
        self._require_live()
        view = memoryview(self._buf).toreadonly()
        try:
            yield view
        finally:
            view.release()

    @contextmanager
    def reveal_text(self) -> Iterator[str]:
        """Yield the value as `str`, for libraries that take nothing else (ccxt, HTTP headers).

        The `str` is an immutable copy that cannot be zeroed; keep the block short and do not
        store what it yields.
        """
        self._require_live()
        yield self._buf.decode("utf-8")

    def lock_memory(self) -> bool:
        """Keep the buffer out of swap (mlock) until `wipe()`; False where the OS refuses."""
        self._require_live()
        if not self._locked:
            self._locked = memlock.lock_buffer(self._buf)
        return self._locked

    def __len__(self) -> int:
        return len(self._buf)

    def __bool__(self) -> bool:
        return len(self._buf) > 0

    @property
    def wiped(self) -> bool:
        return self._wiped

    # -- disposal ----------------------------------------------------------------------------

    def wipe(self) -> None:
        """Zero the buffer in place and forget the value; later reads raise `SecretWipedError`."""
        if self._wiped:
            return
        _registry.live_values.discard(self)
        # Same-length slice assignment writes into the existing allocation (no resize), so it
        # works even while a view from reveal() is still exported.
        self._buf[:] = bytes(len(self._buf))
        if self._locked:
            memlock.unlock_buffer(self._buf)
            self._locked = False
        self._wiped = True

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.wipe()

    def __del__(self) -> None:
        # At interpreter shutdown the registry's globals may already be gone.
        with contextlib.suppress(Exception):
            self.wipe()

    def _require_live(self) -> None:
        if self._wiped:
            raise SecretWipedError(
                f"this {type(self).__name__} was wiped and can no longer be read; "
                "obtain the value again from its source"
            )

    # -- display: always masked --------------------------------------------------------------

    def masked(self) -> str:
        """The value as it may be shown: `***`, or e.g. `ABC***` for a long public-ish id."""
        if self._wiped:
            return "wiped"
        n = len(self._buf)
        if self.shown_prefix and n >= _MIN_LEN_FOR_PREFIX:
            prefix = self._buf[: self.shown_prefix].decode("ascii", errors="replace")
            if prefix.isprintable():
                return f"{prefix}***"
        return "***"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.masked()}, len={len(self._buf)})"

    __str__ = __repr__

    def __format__(self, format_spec: str) -> str:
        return repr(self)

    # -- comparison: constant time, Secret against Secret only -------------------------------

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Secret):
            self._require_live()
            other._require_live()
            return hmac.compare_digest(self._buf, other._buf)
        if isinstance(other, str | bytes | bytearray | memoryview):
            raise TypeError(
                "comparing a Secret with a plain str/bytes is refused: wrap the other value in "
                "Secret(...) so the comparison runs in constant time"
            )
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # equal secrets must not be findable by hash

    # -- duplication: refused ----------------------------------------------------------------

    def _refuse(self, what: str) -> NoReturn:
        raise TypeError(
            f"{type(self).__name__} values cannot be {what}: a secret has one owner; "
            "store it through the vault, never by serialising or copying it"
        )

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        self._refuse("pickled")

    def __reduce__(self) -> NoReturn:
        self._refuse("pickled")

    def __getstate__(self) -> NoReturn:
        self._refuse("pickled")

    def __copy__(self) -> NoReturn:
        self._refuse("copied")

    def __deepcopy__(self, memo: Any) -> NoReturn:
        self._refuse("copied")
