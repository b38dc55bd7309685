"""The secret values the redactor must find verbatim while they are in use.

The vault registers each value it decrypts for the length of a request. A secret can reach a log
in another spelling than its own: percent-encoded in a URL, base64 in a header, hex in a debug
dump. So each value is registered in all of those forms, and `Secret.wipe()` removes them.

The forms are kept as `str` in this process's memory for as long as the secret is live; that is
the price of being able to recognise them (docs/security.md).
"""

from __future__ import annotations

import base64
import threading
from typing import TYPE_CHECKING
from urllib.parse import quote, quote_plus

if TYPE_CHECKING:
    from tradeguard.secrets.secret import Secret

__all__ = ["MIN_REGISTERED_LEN", "LiveValues", "live_values"]

# Shorter values would match ordinary words and numbers everywhere and ruin every log line. They
# are still masked by their type; they just cannot be found again once revealed and copied.
MIN_REGISTERED_LEN = 8


def _forms(raw: bytes) -> set[str]:
    forms: set[str] = set()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None:
        forms.update({text, quote(text, safe=""), quote_plus(text, safe="")})
    for encoded in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
        as_text = encoded.decode("ascii")
        forms.update({as_text, as_text.rstrip("=")})
    hexed = raw.hex()
    forms.update({hexed, hexed.upper()})
    return {f for f in forms if len(f) >= MIN_REGISTERED_LEN}


class LiveValues:
    """Registered secrets, compiled into one pattern that is rebuilt only when they change."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_owner: dict[int, tuple[str, frozenset[str]]] = {}
        # Read without the lock on every log line: one attribute holding an immutable tuple is
        # swapped whole, so a reader sees the old set or the new one, never half of each.
        self.snapshot: tuple[tuple[str, str], ...] = ()

    def add(self, secret: Secret) -> None:
        if len(secret) < MIN_REGISTERED_LEN:
            return
        with secret.reveal() as view:
            forms = frozenset(_forms(view.tobytes()))
        with self._lock:
            self._by_owner[id(secret)] = (secret.kind, forms)
            self._rebuild()

    def discard(self, secret: Secret) -> None:
        with self._lock:
            if self._by_owner.pop(id(secret), None) is not None:
                self._rebuild()

    def __len__(self) -> int:
        return len(self._by_owner)

    def _rebuild(self) -> None:
        """(form, kind) pairs, longest form first so a value is replaced before its prefixes.

        No regex is compiled: the vault registers and wipes values per request, and a handful of
        `in` checks per log line cost less than compiling an alternation on every change.
        """
        kind_of: dict[str, str] = {}
        for kind, forms in self._by_owner.values():
            for form in forms:
                kind_of.setdefault(form, kind)
        self.snapshot = tuple(sorted(kind_of.items(), key=lambda fk: len(fk[0]), reverse=True))


live_values = LiveValues()
