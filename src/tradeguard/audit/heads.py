"""Signed tree heads: what they sign, the checkpoint file they are shipped in, the webhook.

A tree head commits to the whole log at one size. Its signed body is a text note in the spirit of
C2SP's tlog-checkpoint, one item per line:

    tradeguard.audit/<instance id>
    <tree size>
    <base64 root hash>
    time <microseconds since the Unix epoch>

signed with Ed25519 by the audit key. The origin line ties a head to one installation, so a head
from another tradeguard (or a test) never verifies here. Heads are stored in the database and
appended, one JSON object per line, to the checkpoint file, which operators ship off the host:
a copy the database's owner cannot roll back is what catches a restored old backup.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import json
import logging
import os
import queue
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tradeguard.audit.entry import from_micros
from tradeguard.audit.keys import AuditKeys, SignatureChecker
from tradeguard.audit.merkle import HASH_SIZE
from tradeguard.core.errors import TradeguardError
from tradeguard.core.permissions import write_fully
from tradeguard.secrets import Secret

__all__ = [
    "CheckpointError",
    "TreeHead",
    "WebhookPublisher",
    "append_checkpoint",
    "origin_of",
    "read_checkpoints",
]

log = logging.getLogger(__name__)
_MAX_LINE = 4096


class CheckpointError(TradeguardError):
    """A checkpoint file cannot be read, or a line in it is malformed."""

    exit_code = 1


def origin_of(instance_id: str) -> str:
    return f"tradeguard.audit/{instance_id}"


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True)
class TreeHead:
    origin: str
    size: int
    root: bytes
    ts: int
    key_version: int
    signature: bytes

    @staticmethod
    def body_of(origin: str, size: int, root: bytes, ts: int) -> bytes:
        return f"{origin}\n{size}\n{_b64(root)}\ntime {ts}\n".encode()

    def body(self) -> bytes:
        return self.body_of(self.origin, self.size, self.root, self.ts)

    @classmethod
    def sign(cls, keys: AuditKeys, origin: str, size: int, root: bytes, ts: int) -> TreeHead:
        version, signature = keys.sign(cls.body_of(origin, size, root, ts))
        return cls(origin, size, root, ts, version, signature)

    def signed_by(self, keys: SignatureChecker) -> bool:
        return keys.has(self.key_version) and keys.check_signature(
            self.key_version, self.body(), self.signature
        )

    def to_json(self, keys: AuditKeys | None = None) -> dict[str, Any]:
        document: dict[str, Any] = {
            "origin": self.origin,
            "tree_size": self.size,
            "root_hash": _b64(self.root),
            "timestamp": from_micros(self.ts).isoformat(),
            "ts": self.ts,
            "key_version": self.key_version,
            "signature": _b64(self.signature),
        }
        if keys is not None and keys.has(self.key_version):
            document["public_key"] = keys.public_key_text(self.key_version)
        return document

    @classmethod
    def from_json(cls, document: object) -> TreeHead:
        """Parse a checkpoint line's object; ValueError naming the first bad field."""
        if not isinstance(document, dict):
            raise ValueError("not a JSON object")
        origin = document.get("origin")
        size, ts, version = (document.get(k) for k in ("tree_size", "ts", "key_version"))
        if not isinstance(origin, str) or not origin:
            raise ValueError('"origin" must be a non-empty string')
        for name, value in (("tree_size", size), ("ts", ts), ("key_version", version)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f'"{name}" must be a whole number')
        root = _decode(document.get("root_hash"), "root_hash", HASH_SIZE)
        signature = _decode(document.get("signature"), "signature", 64)
        return cls(origin, int(size or 0), root, int(ts or 0), int(version or 0), signature)


def _decode(text: object, name: str, size: int) -> bytes:
    if not isinstance(text, str):
        raise ValueError(f'"{name}" must be a base64 string')
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f'"{name}" is not valid base64') from None
    if len(raw) != size:
        raise ValueError(f'"{name}" must decode to {size} bytes, not {len(raw)}')
    return raw


def append_checkpoint(path: Path, head: TreeHead, keys: AuditKeys) -> None:
    """Append one head as a JSON line; durable when this returns. Safe across processes."""
    line = (json.dumps(head.to_json(keys), sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # one whole line at a time, whoever else appends
        write_fully(fd, line)
    finally:
        os.close(fd)


def read_checkpoints(path: Path) -> Iterator[tuple[int, TreeHead]]:
    """(line number, head) for every line; `CheckpointError` naming the first bad line."""
    try:
        handle = path.open("rb")
    except OSError as e:
        raise CheckpointError(f"cannot read the checkpoint file {path} ({e.strerror})") from None
    with handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            if len(raw) > _MAX_LINE:
                raise CheckpointError(f"{path} line {number}: longer than {_MAX_LINE} bytes")
            try:
                yield number, TreeHead.from_json(json.loads(raw))
            except (ValueError, UnicodeDecodeError) as e:
                reason = e.msg if isinstance(e, json.JSONDecodeError) else str(e)
                raise CheckpointError(f"{path} line {number}: {reason}") from None


class WebhookPublisher:
    """POSTs each tree head (JSON) to the configured URL from a background thread.

    Publishing never delays or fails an append: a webhook that is down costs a logged warning
    per head, and the checkpoint file still has every head. The URL is a `Secret` (webhook URLs
    usually carry their token) and is never logged.
    """

    def __init__(self, url: Secret, keys: AuditKeys, *, timeout: float = 5.0) -> None:
        self._url = url
        self._keys = keys
        self._timeout = timeout
        self._queue: queue.Queue[TreeHead | None] = queue.Queue(maxsize=1000)
        self._thread = threading.Thread(target=self._run, name="audit-webhook", daemon=True)
        self._thread.start()

    def publish(self, head: TreeHead) -> None:
        try:
            self._queue.put_nowait(head)
        except queue.Full:
            log.warning("audit webhook: queue full, tree head %d not published", head.size)

    def _post(self, head: TreeHead) -> None:
        body = json.dumps(head.to_json(self._keys), sort_keys=True).encode()
        with self._url.reveal() as view:
            request = urllib.request.Request(  # noqa: S310 - the scheme is checked by the caller
                bytes(view).decode(),
                data=body,
                method="POST",
                headers={"Content-Type": "application/json"},
            )
        with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310
            response.read(1024)

    def _run(self) -> None:
        while (head := self._queue.get()) is not None:
            try:
                self._post(head)
            except Exception as e:  # noqa: BLE001 - any failure is logged, never raised
                log.warning(
                    "audit webhook: tree head %d not published (%s)", head.size, type(e).__name__
                )

    def close(self, timeout: float = 10.0) -> None:
        """Send what is queued (waiting at most `timeout`), then stop."""
        self._queue.put(None)
        self._thread.join(timeout)
