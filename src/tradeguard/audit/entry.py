"""One audit entry: what it holds, how it is checked, the exact bytes its Merkle leaf commits to.

The leaf data of an entry is its canonical JSON: the keys `actor, details, event, ip, seq, subject,
ts` in that (sorted) order, no whitespace, UTF-8, `details` nested as canonical JSON too, times
as integer microseconds since the Unix epoch (UTC), Decimals as strings. Anyone can rebuild it
from an exported line with `json.dumps(entry, sort_keys=True, separators=(",", ":"),
ensure_ascii=False)`; `leaf_data` builds the same bytes without a parse, because `verify`
rebuilds a million of them.

Everything that enters an entry is checked before anything is written: the event name comes
from the catalogue, subject and ip have a strict shape, and every string in `details` passes
the redactor (a `Secret` is refused outright).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tradeguard.core.errors import TradeguardError
from tradeguard.core.events import EventName
from tradeguard.secrets import Secret
from tradeguard.secrets.patterns import redact_text

if TYPE_CHECKING:
    from tradeguard.audit.keys import MacKey

__all__ = [
    "AuditInputError",
    "Entry",
    "actor_hash",
    "canonical_details",
    "check_actor",
    "check_event",
    "check_ip",
    "check_subject",
    "from_micros",
    "leaf_data",
    "to_micros",
]

_SUBJECT = re.compile(r"[A-Za-z0-9][A-Za-z0-9:._@/+=-]{0,255}", re.ASCII)
_DETAIL_KEY = re.compile(r"[a-z][a-z0-9_.]{0,63}", re.ASCII)
_MAX_STRING = 4096
_MAX_DEPTH = 4
_MAX_INT = 10**30  # money and counts fit; a giant int would be slow to print and parse
_MAX_DETAILS = 64 * 1024
_EVENTS = {e.value: e for e in EventName}
_KNOWN_KEYS: set[str] = set()  # detail keys already checked (bounded)
_MAX_KNOWN_KEYS = 4096
# One encoder for every append: json.dumps with options builds a new one per call.
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class AuditInputError(TradeguardError, ValueError):
    """An append was refused before anything was written: the message says which part."""


@dataclass(frozen=True, slots=True)
class Entry:
    seq: int
    ts: int  # microseconds since the Unix epoch, UTC
    event: str
    actor: str | None  # hex HMAC-SHA256 of the actor id, never the id itself
    subject: str | None
    ip: str | None
    details: str  # canonical JSON object

    def leaf_data(self) -> bytes:
        return leaf_data(
            self.seq, self.ts, self.event, self.actor, self.subject, self.ip, self.details
        )

    def as_dict(self) -> dict[str, Any]:
        """The entry as an exported JSON object (canonical JSON of it is `leaf_data`)."""
        return {
            "actor": self.actor,
            "details": json.loads(self.details),
            "event": self.event,
            "ip": self.ip,
            "seq": self.seq,
            "subject": self.subject,
            "ts": self.ts,
        }


def leaf_data(
    seq: int,
    ts: int,
    event: str,
    actor: str | None,
    subject: str | None,
    ip: str | None,
    details: str,
) -> bytes:
    """The canonical JSON of an entry: the bytes its Merkle leaf commits to."""
    # Only `details` may need escaping, and it is stored already canonical; the other strings
    # have shapes (checked on append) that JSON writes verbatim between quotes. Append refuses
    # text that is not valid Unicode; surrogateescape only gives back the bytes of a stored row
    # that is not UTF-8 (SQLite keeps any), so verify hashes what is there.
    a = "null" if actor is None else f'"{actor}"'
    s = "null" if subject is None else f'"{subject}"'
    i = "null" if ip is None else f'"{ip}"'
    return (
        f'{{"actor":{a},"details":{details},"event":"{event}","ip":{i},'
        f'"seq":{seq},"subject":{s},"ts":{ts}}}'
    ).encode("utf-8", "surrogateescape")


def to_micros(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise AuditInputError("an audit time must be an aware UTC datetime (the clock gives one)")
    return (moment - _EPOCH) // _MICROSECOND


def from_micros(ts: int) -> datetime:
    return datetime.fromtimestamp(ts // 1_000_000, UTC).replace(microsecond=ts % 1_000_000)


def check_event(name: str | EventName) -> EventName:
    # An EventName hashes and compares as its str value, so one lookup serves both.
    event = _EVENTS.get(name) if isinstance(name, str) else None
    if event is None:
        raise AuditInputError(
            f"unknown audit event {str(name)[:64]!r}: add it to EventName in core/events.py"
        )
    return event


def check_subject(subject: str | None) -> str | None:
    if subject is None:
        return None
    if not isinstance(subject, str) or not _SUBJECT.fullmatch(subject):
        raise AuditInputError(
            "an audit subject is an id such as `credential:<uuid>` or `user:42` (letters, "
            "digits and :._@/+=- only, at most 256)"
        )
    return subject


def check_ip(ip: str | None) -> str | None:
    """An address as text; IPv6 zone ids (`%eth0`) are refused: any text may follow the `%`."""
    if ip is None:
        return None
    if not isinstance(ip, str) or "%" in ip:
        raise AuditInputError("an audit ip must be an IPv4 or IPv6 address (without a zone id)")
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        raise AuditInputError("an audit ip must be an IPv4 or IPv6 address") from None


def check_actor(actor: str) -> str:
    """An actor id (`user:42`, `operator`): text, at most 256 characters, valid Unicode."""
    if not isinstance(actor, str) or not 0 < len(actor) <= 256 or not _encodable(actor):
        raise AuditInputError("an audit actor is an id such as `user:42`, 1 to 256 characters")
    return actor


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True


def actor_hash(pepper: MacKey, actor: str) -> str:
    """HMAC-SHA256 of the actor id under the audit pepper: stable, searchable, not reversible
    without the pepper."""
    return pepper.digest(actor.encode()).hex()


def _clean(value: object, depth: int) -> object:
    """A JSON-ready copy of one details value; refuses anything that is not plain data."""
    if isinstance(value, str):  # the common case first
        return _clean_text(str(value))
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if abs(value) >= _MAX_INT:
            raise AuditInputError("an audit details number is too large; record it as a string")
        return value
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise AuditInputError("audit details cannot hold a NaN or infinite Decimal")
        return str(value)
    if isinstance(value, Secret):
        raise AuditInputError("audit details cannot hold a Secret; record an id or a mask")
    if isinstance(value, float):
        raise AuditInputError("audit details cannot hold a float; use Decimal (or an int)")
    if depth >= _MAX_DEPTH:
        raise AuditInputError(f"audit details nest deeper than {_MAX_DEPTH} levels")
    if isinstance(value, Mapping):
        return _clean_mapping(value, depth + 1)
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return [_clean(item, depth + 1) for item in value]
    raise AuditInputError(
        f"audit details cannot hold a {type(value).__name__}; use str, int, bool, Decimal, "
        "None, lists and mappings of them"
    )


def _clean_text(value: str) -> str:
    if len(value) > _MAX_STRING:
        raise AuditInputError(f"an audit details string is longer than {_MAX_STRING}")
    if not _encodable(value):
        raise AuditInputError("an audit details string is not valid Unicode (lone surrogate)")
    return redact_text(value)


def _check_key(key: object) -> None:
    if key in _KNOWN_KEYS:  # the same few keys come back on every append
        return
    if not isinstance(key, str) or not _DETAIL_KEY.fullmatch(key):
        raise AuditInputError(
            "audit details keys are lower-case identifiers (a-z, 0-9, _ and .), at most 64"
        )
    if len(_KNOWN_KEYS) < _MAX_KNOWN_KEYS:
        _KNOWN_KEYS.add(key)


def _clean_mapping(details: object, depth: int) -> dict[str, object]:
    if not isinstance(details, Mapping):
        raise AuditInputError("audit details are a mapping of names to values")
    clean: dict[str, object] = {}
    for key, value in details.items():
        _check_key(key)
        clean[key] = _clean(value, depth)
    return clean


def canonical_details(details: Mapping[str, object] | None) -> str:
    """Details as canonical JSON (sorted keys, no whitespace, UTF-8), every string redacted."""
    text = _CANONICAL.encode(_clean_mapping(details or {}, 0))
    if len(text) > _MAX_DETAILS:
        raise AuditInputError("audit details are larger than 64 KiB; record ids, not documents")
    return text
