"""Inclusion and consistency proofs served from the database, as JSON an auditor can check.

Proofs are always made against a signed tree head, so the person checking one needs only the
audit public key: the head's signature vouches for the root, and the proof ties the entry (or the
older head) to that root. `check_proof` is the offline check (`tradeguard audit check-proof`).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from tradeguard.audit import tables
from tradeguard.audit.entry import Entry
from tradeguard.audit.heads import TreeHead, origin_of
from tradeguard.audit.keys import AuditKeys, SignatureChecker
from tradeguard.audit.merkle import (
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    subtree_root,
    verify_consistency,
    verify_inclusion,
)
from tradeguard.audit.prune import load_prunes
from tradeguard.core.errors import TradeguardError

__all__ = ["DbSource", "ProofRequestError", "check_proof", "consistency", "inclusion"]


_NODE_SQLITE = "SELECT hash FROM audit_nodes WHERE level = ? AND idx = ?"
_NODE_PG = "SELECT hash FROM audit_nodes WHERE level = %s AND idx = %s"


class ProofRequestError(TradeguardError):
    """A proof cannot be made: no such entry, pruned, or no signed head covers it yet."""


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


class DbSource:
    """Leaf and stored-node hashes from the database; the signed prune frontier stands in for
    pruned entries (any subtree a proof of a kept entry needs there is one of its nodes)."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn
        prunes = load_prunes(conn)
        self.first_seq = prunes[-1].first_seq if prunes else 0
        frontier = prunes[-1].frontier() if prunes else None
        self.pruned: dict[tuple[int, int], bytes] = (
            dict(zip(frontier.levels(), frontier.nodes, strict=True)) if frontier else {}
        )

    def leaf_hashes(self, start: int, end: int) -> Sequence[bytes]:
        pruned = [self._pruned(0, i) for i in range(start, min(end, self.first_seq))]
        e = tables.entries
        rows = self.conn.execute(
            sa.select(e.c.leaf_hash)
            .where(e.c.seq >= max(start, self.first_seq), e.c.seq < end)
            .order_by(e.c.seq)
        ).scalars()
        hashes = pruned + [bytes(h) for h in rows]
        if len(hashes) != end - start:
            raise ProofRequestError(
                f"entries {start} to {end - 1} are not all in the log; run `tradeguard audit "
                "verify`"
            )
        return hashes

    def node(self, level: int, index: int) -> bytes | None:
        start, end = index << level, (index + 1) << level
        if end <= self.first_seq:
            return self._pruned(level, index)
        if start < self.first_seq:
            # Straddles the prune boundary: its pruned part is made of frontier nodes.
            return node_hash(
                self._subtree(level - 1, 2 * index), self._subtree(level - 1, 2 * index + 1)
            )
        return self._stored(level, index)

    def _subtree(self, level: int, index: int) -> bytes:
        found = self.node(level, index) if level > 0 else None
        if found is not None:
            return found
        return subtree_root(self, index << level, (index + 1) << level)

    def _stored(self, level: int, index: int) -> bytes | None:
        # The driver's cursor: a proof asks for a few dozen nodes, one at a time, and building
        # a SQLAlchemy statement for each cost more than the lookup.
        cursor = self.conn.connection.cursor()
        try:
            if self.conn.dialect.name == "postgresql":
                cursor.execute(_NODE_PG, (level, index))
            else:
                cursor.execute(_NODE_SQLITE, (level, index))
            found = cursor.fetchone()
        finally:
            cursor.close()
        return None if found is None else bytes(found[0])

    def _pruned(self, level: int, index: int) -> bytes:
        try:
            return self.pruned[(level, index)]
        except KeyError:
            raise ProofRequestError(
                "that proof needs entries that were pruned; ask for a proof against a tree "
                "size after the prune boundary"
            ) from None


def _latest_head(conn: sa.Connection, origin: str, covering: int) -> TreeHead:
    h = tables.tree_heads
    row = conn.execute(sa.select(h).order_by(h.c.size.desc()).limit(1)).first()
    if row is None or row.size < covering:
        raise ProofRequestError(
            f"no signed tree head covers {covering} entries yet; run `tradeguard audit sign` "
            "(or wait for the next head) and ask again"
        )
    return TreeHead(
        origin, row.size, bytes(row.root), row.ts, row.key_version, bytes(row.signature)
    )


def inclusion(engine: sa.Engine, keys: AuditKeys, seq: int) -> dict[str, Any]:
    """The entry at `seq`, its leaf hash and its inclusion proof in the latest signed head."""
    with engine.connect() as conn, conn.begin():
        origin = origin_of(tables.instance_id(conn))
        row = conn.execute(sa.select(tables.entries).where(tables.entries.c.seq == seq)).first()
        if row is None:
            raise ProofRequestError(f"there is no entry {seq} (pruned, or not written yet)")
        head = _latest_head(conn, origin, seq + 1)
        entry = Entry(row.seq, row.ts, row.event, row.actor, row.subject, row.ip, row.details)
        proof = inclusion_proof(DbSource(conn), seq, head.size)
    return {
        "kind": "inclusion",
        "seq": seq,
        "entry": entry.as_dict(),
        "leaf_hash": _b64(leaf_hash(entry.leaf_data())),
        "proof": [_b64(p) for p in proof],
        "tree_head": head.to_json(keys),
    }


def consistency(engine: sa.Engine, keys: AuditKeys, old_size: int) -> dict[str, Any]:
    """A proof that the latest signed head extends the tree of `old_size` entries."""
    if old_size < 1:
        raise ProofRequestError("OLD_SIZE must be at least 1")
    with engine.connect() as conn, conn.begin():
        origin = origin_of(tables.instance_id(conn))
        head = _latest_head(conn, origin, old_size)
        source = DbSource(conn)
        old_root = subtree_root(source, 0, old_size)
        proof = consistency_proof(source, old_size, head.size)
    return {
        "kind": "consistency",
        "old_size": old_size,
        "old_root": _b64(old_root),
        "proof": [_b64(p) for p in proof],
        "tree_head": head.to_json(keys),
    }


def _hash(text: object, name: str) -> bytes:
    if not isinstance(text, str):
        raise ProofError(f'"{name}" must be a base64 string')
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ProofError(f'"{name}" is not valid base64') from None


def _canonical_entry(entry: object) -> bytes:
    """The entry's canonical JSON: the exact bytes its leaf commits to (see audit/entry.py)."""
    if not isinstance(entry, dict):
        raise ProofError('"entry" must be the entry as a JSON object')
    try:
        return json.dumps(
            entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode()
    except (TypeError, ValueError, UnicodeEncodeError):
        raise ProofError('"entry" cannot be written as canonical JSON') from None


def _proof_items(document: dict[str, Any]) -> list[bytes]:
    items = document.get("proof")
    if not isinstance(items, list):
        raise ProofError('"proof" must be a list of base64 hashes')
    return [_hash(item, "proof") for item in items]


def check_proof(document: object, keys: SignatureChecker) -> TreeHead:
    """Check a proof document made by `inclusion` or `consistency`: the head's signature under
    the audit key (the keyring, or only its published public keys), then the proof against the
    head's root. Raises `ProofError`; returns the head. The `public_key` a document carries is
    never trusted: the checker's own keys are."""
    if not isinstance(document, dict):
        raise ProofError("a proof must be a JSON object")
    try:
        head = TreeHead.from_json(document.get("tree_head"))
    except ValueError as e:
        raise ProofError(f"tree_head: {e}") from None
    if not head.signed_by(keys):
        raise ProofError(f"the tree head of size {head.size} is not signed by this audit key")
    kind = document.get("kind")
    if kind == "inclusion":
        seq = document.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool):
            raise ProofError('"seq" must be a whole number')
        leaf = _hash(document.get("leaf_hash"), "leaf_hash")
        if leaf_hash(_canonical_entry(document.get("entry"))) != leaf:
            raise ProofError('"entry" does not hash to "leaf_hash": the entry was changed')
        verify_inclusion(seq, head.size, leaf, _proof_items(document), head.root)
    elif kind == "consistency":
        old_size = document.get("old_size")
        if not isinstance(old_size, int) or isinstance(old_size, bool):
            raise ProofError('"old_size" must be a whole number')
        old_root = _hash(document.get("old_root"), "old_root")
        verify_consistency(old_size, head.size, old_root, head.root, _proof_items(document))
    else:
        raise ProofError('"kind" must be "inclusion" or "consistency"')
    return head
