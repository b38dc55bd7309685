"""Merkle tree hashing and proofs for the append-only audit log (RFC 6962, RFC 9162 section 2.1).

    leaf hash = SHA-256(0x00 || entry)        node hash = SHA-256(0x01 || left || right)
    MTH(D[n]) splits at k, the largest power of two below n: node(MTH(D[0:k]), MTH(D[k:n]))

The distinct 0x00/0x01 prefixes keep a leaf from ever passing for an inner node. The shape is
RFC 6962's exactly, so any verifier written from the RFC (or transparency-dev's Go code, whose
test vectors our tests replay) checks our proofs, and we check theirs.

`Frontier` is what the writer keeps: the roots of the perfect subtrees that make up the log, one
per set bit of its size, so appending a leaf and taking the root cost O(log n) hashes and no
storage reads. Each append reports the perfect subtrees it completed; storing the higher ones
lets `inclusion_proof` and `consistency_proof` read O(log n) stored nodes plus a few short leaf
ranges instead of the whole log. Everything here is pure: storage is the caller's `HashSource`.

Verification follows RFC 9162's algorithms step for step and raises `ProofError`, never returns
False. It is stricter than the RFC in one way: every hash argument (leaf, roots, each proof item)
must be exactly 32 bytes, so a truncated or padded value is refused by name, not by accident.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol

from tradeguard.core.errors import IntegrityError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "Frontier",
    "HashSource",
    "ListSource",
    "ProofError",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_from_inclusion",
    "subtree_root",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
_sha256 = hashlib.sha256
_LEAF = b"\x00"
_NODE = b"\x01"
EMPTY_ROOT: bytes = _sha256(b"").digest()
_LEAF_STATE = _sha256(_LEAF)


class ProofError(IntegrityError):
    """A proof does not verify or is malformed; message says which (one line)."""


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data): the hash an entry enters the tree as."""
    h = _LEAF_STATE.copy()  # cheaper than a new hash and a copy of `data` with the prefix
    h.update(data)
    return h.digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right), for two 32-byte child hashes."""
    _check_hash(left, "left")
    _check_hash(right, "right")
    return _sha256(_NODE + left + right).digest()


def _check_hash(value: object, name: str) -> None:
    """Misuse of the building blocks: `TypeError` for a non-bytes, `ValueError` for a bad length."""
    if not isinstance(value, bytes):
        raise TypeError(f"{name} must be bytes, not {type(value).__name__}")
    if len(value) != HASH_SIZE:
        raise ValueError(f"{name} must be a {HASH_SIZE}-byte hash, got {len(value)} bytes")


def _check_int(value: object, name: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")


def _fold(hashes: Sequence[bytes]) -> bytes:
    """node(h0, node(h1, ... node(h[-2], h[-1]))): the root over perfect subtrees, largest first."""
    h = hashes[-1]
    for i in range(len(hashes) - 2, -1, -1):
        h = _sha256(_NODE + hashes[i] + h).digest()
    return h


def _perfect_root(hashes: Sequence[bytes]) -> bytes:
    """The root of a perfect subtree (a power-of-two count of leaf hashes), level by level."""
    level = list(hashes)
    while len(level) > 1:
        level = [_sha256(_NODE + level[i] + level[i + 1]).digest() for i in range(0, len(level), 2)]
    return level[0]


# -- The writer's frontier ----------------------------------------------------------------------


class Frontier:
    """The compact range of [0, size): roots of the perfect subtrees of the binary
    decomposition of `size`, largest (leftmost) first. Append is O(log n).

    This is all the writer needs to keep between appends (`to_bytes` is 32 bytes per set bit of
    `size`, at most 2 KiB for any log that fits in 64 bits).
    """

    __slots__ = ("_nodes", "_root", "_size")

    def __init__(self, size: int = 0, nodes: Sequence[bytes] = ()) -> None:
        _check_int(size, "size")
        if size < 0:
            raise ValueError(f"a frontier's size cannot be negative, got {size}")
        if len(nodes) != size.bit_count():
            raise ValueError(
                f"a frontier of size {size} has {size.bit_count()} nodes, got {len(nodes)}"
            )
        for i, node in enumerate(nodes):
            _check_hash(node, f"nodes[{i}]")
        self._size = size
        self._nodes = list(nodes)
        self._root: bytes | None = None

    @property
    def size(self) -> int:
        return self._size

    @property
    def nodes(self) -> tuple[bytes, ...]:
        return tuple(self._nodes)

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add one leaf hash. Returns the perfect subtrees completed by this append, as
        (level, index, hash) with level>=1 (a subtree of 2**level leaves starting at leaf
        index*2**level), lowest level first. Callers persist high levels for fast proofs."""
        if type(leaf) is not bytes or len(leaf) != HASH_SIZE:
            _check_hash(leaf, "leaf")
        completed: list[tuple[int, int, bytes]] = []
        nodes = self._nodes
        h = leaf
        rest = self._size
        level = 0
        # Each trailing 1 bit of the old size is a subtree of the same size on our left: merge.
        while rest & 1:
            h = _sha256(_NODE + nodes.pop() + h).digest()
            rest >>= 1
            level += 1
            completed.append((level, rest, h))  # rest == old size >> level == index at level
        nodes.append(h)
        self._size += 1
        self._root = None
        return completed

    def append_subtree(self, level: int, node: bytes) -> list[tuple[int, int, bytes]]:
        """Add a complete subtree of 2**level leaves at once (the size must be a multiple of
        it), for callers that hashed a block themselves. Returns the subtrees this completes
        above it, like `append`."""
        _check_hash(node, "node")
        if level < 0 or self._size % (1 << level):
            raise ValueError(f"a subtree of 2**{level} leaves cannot follow {self._size} leaves")
        added = 1 << level
        completed: list[tuple[int, int, bytes]] = []
        nodes = self._nodes
        rest = self._size >> level
        while rest & 1:  # as in append: merge with equal subtrees on the left
            node = _sha256(_NODE + nodes.pop() + node).digest()
            rest >>= 1
            level += 1
            completed.append((level, rest, node))
        nodes.append(node)
        self._size += added
        self._root = None
        return completed

    def root(self) -> bytes:
        """MTH of the whole range; EMPTY_ROOT when size == 0."""
        root = self._root
        if root is None:
            root = self._root = _fold(self._nodes) if self._nodes else EMPTY_ROOT
        return root

    def copy(self) -> Frontier:
        twin = Frontier.__new__(Frontier)
        twin._size = self._size
        twin._nodes = list(self._nodes)
        twin._root = self._root
        return twin

    def to_bytes(self) -> bytes:
        """The node hashes concatenated, largest subtree first; `size` is stored beside it."""
        return b"".join(self._nodes)

    @classmethod
    def from_bytes(cls, size: int, blob: bytes) -> Frontier:
        """Rebuild from `to_bytes` output; `ValueError` unless `blob` has 32 bytes per node."""
        _check_int(size, "size")
        if not isinstance(blob, bytes):
            raise TypeError(f"blob must be bytes, not {type(blob).__name__}")
        if size < 0:
            raise ValueError(f"a frontier's size cannot be negative, got {size}")
        want = size.bit_count() * HASH_SIZE
        if len(blob) != want:
            raise ValueError(f"a frontier of size {size} is {want} bytes, got {len(blob)}")
        return cls(size, [blob[i : i + HASH_SIZE] for i in range(0, want, HASH_SIZE)])

    def levels(self) -> list[tuple[int, int]]:
        """(level, index) of each node, same order as `nodes`: which stored subtree each is."""
        size = self._size
        top = size.bit_length() - 1
        return [(level, (size >> level) - 1) for level in range(top, -1, -1) if size >> level & 1]

    def __repr__(self) -> str:
        return f"Frontier(size={self._size})"


# -- Reading stored hashes ----------------------------------------------------------------------


class HashSource(Protocol):
    """Where proofs read the log's hashes from (the audit store, or a list in tests)."""

    def leaf_hashes(self, start: int, end: int) -> Sequence[bytes]:
        """The leaf hashes [start, end), in order."""
        ...

    def node(self, level: int, index: int) -> bytes | None:
        """The stored hash of the perfect subtree (level, index), or None when not stored."""
        ...


class ListSource:
    """A `HashSource` over an in-memory list of leaf hashes (tests, small logs); stores no nodes,
    so every hash is computed from leaves."""

    __slots__ = ("_leaves",)

    def __init__(self, leaves: Sequence[bytes]) -> None:
        for i, leaf in enumerate(leaves):
            _check_hash(leaf, f"leaves[{i}]")
        self._leaves = tuple(leaves)

    def leaf_hashes(self, start: int, end: int) -> Sequence[bytes]:
        if not 0 <= start <= end <= len(self._leaves):
            raise ValueError(f"leaf range [{start}, {end}) is outside [0, {len(self._leaves)})")
        return self._leaves[start:end]

    def node(self, level: int, index: int) -> bytes | None:
        return None


def _pieces(start: int, end: int) -> list[tuple[int, int]]:
    """The perfect subtrees, as (first leaf, level), that RFC 6962's split cuts [start, end)
    into: one per set bit of end - start, largest first. MTH(D[start:end]) is their `_fold`."""
    pieces = []
    left = end - start
    while left:
        level = left.bit_length() - 1
        pieces.append((start, level))
        start += 1 << level
        left -= 1 << level
    return pieces


def _subtree_roots(source: HashSource, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
    """MTH of each non-empty range, with as few reads as possible.

    Each range splits into perfect subtrees. Those aligned to their size (level >= 1) are asked
    of `source.node` first; the rest are computed from leaves, read in one `leaf_hashes` call per
    run of adjacent missing subtrees across all the ranges. Proof ranges come from one tree, so
    there are O(log n) subtrees in all, and with levels >= L stored only subtrees below level L
    (near the proved leaf and at the right edge) are read as leaves.
    """
    plans = [_pieces(start, end) for start, end in ranges]
    found: dict[tuple[int, int], bytes] = {}
    missing: list[tuple[int, int]] = []
    for plan in plans:
        for start, level in plan:
            if (start, level) in found:
                continue
            if level and not start & ((1 << level) - 1):
                stored = source.node(level, start >> level)
                if stored is not None:
                    if not isinstance(stored, bytes) or len(stored) != HASH_SIZE:
                        raise ValueError(f"source.node({level}, {start >> level}) is not a hash")
                    found[(start, level)] = stored
                    continue
            missing.append((start, level))

    missing.sort()
    runs: list[list[tuple[int, int]]] = []  # each run: adjacent missing subtrees, left to right
    run_end = -1
    for piece in missing:
        if piece in found:
            continue  # the same subtree twice in `ranges`
        start, level = piece
        found[piece] = b""  # claimed; computed below
        if start != run_end:
            runs.append([])
        runs[-1].append(piece)
        run_end = start + (1 << level)
    for run in runs:
        first = run[0][0]
        last = run[-1][0] + (1 << run[-1][1])
        leaves = source.leaf_hashes(first, last)
        if len(leaves) != last - first or not all(
            isinstance(leaf, bytes) and len(leaf) == HASH_SIZE for leaf in leaves
        ):
            raise ValueError(f"source.leaf_hashes({first}, {last}) did not return its hashes")
        for start, level in run:
            offset = start - first
            found[start, level] = _perfect_root(leaves[offset : offset + (1 << level)])

    return [_fold([found[piece] for piece in plan]) for plan in plans]


def subtree_root(source: HashSource, start: int, end: int) -> bytes:
    """MTH(D[start:end]) under RFC 6962's split (EMPTY_ROOT for an empty range).

    Perfect subtrees aligned to their size come from `source.node` when stored; everything else
    from leaves, one `leaf_hashes` call per run of adjacent subtrees that must be computed.
    """
    _check_int(start, "start")
    _check_int(end, "end")
    if not 0 <= start <= end:
        raise ValueError(f"[{start}, {end}) is not a range of leaves")
    if start == end:
        return EMPTY_ROOT
    return _subtree_roots(source, [(start, end)])[0]


# -- Proofs -------------------------------------------------------------------------------------


def _inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose MTHs make RFC 6962's PATH(index, D[size]), lowest level first."""
    ranges = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = 1 << ((hi - lo - 1).bit_length() - 1)
        if index < lo + k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo += k
    ranges.reverse()
    return ranges


def _consistency_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose MTHs make RFC 6962's PROOF(old_size, D[new_size]), in its order."""
    ranges = []
    lo, hi = 0, new_size
    whole = True  # SUBPROOF's b: is [lo, old_size) still the old tree itself (root known)?
    while hi != old_size:
        k = 1 << ((hi - lo - 1).bit_length() - 1)
        if old_size - lo <= k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo += k
            whole = False
    if not whole:
        ranges.append((lo, hi))
    ranges.reverse()
    return ranges


def inclusion_proof(source: HashSource, index: int, size: int) -> list[bytes]:
    """The audit path of leaf `index` in the tree of the first `size` leaves (RFC 9162
    2.1.3.1), lowest level first."""
    _check_int(index, "index")
    _check_int(size, "size")
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    return _subtree_roots(source, _inclusion_ranges(index, size))


def consistency_proof(source: HashSource, old_size: int, new_size: int) -> list[bytes]:
    """Proof that the tree of `new_size` leaves extends the one of `old_size` (RFC 9162
    2.1.4.1); empty when the sizes are equal."""
    _check_int(old_size, "old_size")
    _check_int(new_size, "new_size")
    if not 0 < old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to size {new_size}")
    if old_size == new_size:
        return []
    return _subtree_roots(source, _consistency_ranges(old_size, new_size))


# -- Verification -------------------------------------------------------------------------------


def _check_proof_hash(value: object, name: str) -> None:
    """Malformed proof input is a failed proof: `ProofError`, except a non-bytes (`TypeError`)."""
    if not isinstance(value, bytes):
        raise TypeError(f"{name} must be bytes, not {type(value).__name__}")
    if len(value) != HASH_SIZE:
        raise ProofError(f"{name} must be a {HASH_SIZE}-byte hash, got {len(value)} bytes")


def _check_proof(proof: Sequence[bytes], kind: str) -> None:
    for i, item in enumerate(proof):
        _check_proof_hash(item, f"{kind} proof item {i}")


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root that `proof` proves leaf hash `leaf` at `index` under, in a tree of `size`
    leaves (RFC 9162 2.1.3.2); `ProofError` if the proof has the wrong shape for them."""
    _check_int(index, "index")
    _check_int(size, "size")
    _check_proof_hash(leaf, "leaf hash")
    _check_proof(proof, "inclusion")
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise _wrong_inclusion_length(index, size, len(proof))
        if fn & 1 or fn == sn:
            r = _sha256(_NODE + p + r).digest()
            while fn and not fn & 1:  # only when fn == sn with fn even
                fn >>= 1
                sn >>= 1
        else:
            r = _sha256(_NODE + r + p).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise _wrong_inclusion_length(index, size, len(proof))
    return r


def _wrong_inclusion_length(index: int, size: int, got: int) -> ProofError:
    want = len(_inclusion_ranges(index, size))
    return ProofError(
        f"inclusion proof has {got} hashes; leaf {index} of a tree of size {size} needs {want}"
    )


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that leaf hash `leaf` is entry `index` of the tree of `size` leaves whose root is
    `root`; `ProofError` if not."""
    _check_proof_hash(root, "root")
    if root_from_inclusion(index, size, leaf, proof) != root:
        raise ProofError(
            f"inclusion proof for leaf {index} of a tree of size {size} does not lead to the "
            "given root (wrong leaf, proof or root)"
        )


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of `new_size` leaves with root `new_root` extends the tree of
    `old_size` leaves with root `old_root` (RFC 9162 2.1.4.2); `ProofError` if not.

    Equal sizes need an empty proof and equal roots (the empty tree's root when both are 0).
    A proof from size 0 to a larger size is refused: it would prove nothing about `new_root`.
    """
    _check_int(old_size, "old_size")
    _check_int(new_size, "new_size")
    _check_proof_hash(old_root, "old root")
    _check_proof_hash(new_root, "new root")
    _check_proof(proof, "consistency")
    if not 0 <= old_size <= new_size:
        raise ProofError(f"no consistency proof from size {old_size} to size {new_size}")
    if old_size == new_size:
        if proof:
            raise ProofError(f"tree sizes are equal ({old_size}) but the proof is not empty")
        if old_root != new_root:
            raise ProofError(f"tree sizes are equal ({old_size}) but the roots differ")
        if old_size == 0 and old_root != EMPTY_ROOT:
            raise ProofError("a tree of size 0 must have the empty tree's root")
        return
    if old_size == 0:
        raise ProofError("a consistency proof from size 0 proves nothing; check the new root")
    if not proof:
        raise _wrong_consistency_length(old_size, new_size, 0)

    path = list(proof)
    if not old_size & (old_size - 1):  # a power of two: the old root is the first path node
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise _wrong_consistency_length(old_size, new_size, len(proof))
        if fn & 1 or fn == sn:
            fr = _sha256(_NODE + c + fr).digest()
            sr = _sha256(_NODE + c + sr).digest()
            while fn and not fn & 1:  # only when fn == sn with fn even
                fn >>= 1
                sn >>= 1
        else:
            sr = _sha256(_NODE + sr + c).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise _wrong_consistency_length(old_size, new_size, len(proof))
    if fr != old_root:
        raise ProofError(
            f"consistency proof from size {old_size} to {new_size} does not lead to the old root"
        )
    if sr != new_root:
        raise ProofError(
            f"consistency proof from size {old_size} to {new_size} does not lead to the new root"
        )


def _wrong_consistency_length(old_size: int, new_size: int, got: int) -> ProofError:
    want = len(_consistency_ranges(old_size, new_size))
    return ProofError(
        f"consistency proof has {got} hashes; sizes {old_size} to {new_size} need {want}"
    )
