"""The audit log, for admins: verify it, export its entries.

An exported entry is the object whose canonical JSON (sorted keys, no whitespace, UTF-8) is its
Merkle leaf data, as `tradeguard audit export` prints it: an auditor can rebuild the tree from
an export alone. Actors are keyed hashes, never the ids themselves.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from tradeguard.audit import verify
from tradeguard.audit.reading import entries_from
from tradeguard.web.deps import Admin, Ctx
from tradeguard.web.errors import responses

__all__ = ["router"]

router = APIRouter(prefix="/api/audit", tags=["audit"])

MAX_PAGE = 5000


class FindingOut(BaseModel):
    kind: str = Field(description="modified, deleted, inserted, reordered, truncated, ...")
    seq: int | None
    message: str


class VerifyOut(BaseModel):
    ok: bool
    entries: int
    first_seq: int = Field(description="Entries below it were pruned")
    size: int
    heads: int = Field(description="Signed tree heads checked")
    root: str = Field(description="The tree's root hash, hex")
    findings: list[FindingOut] = Field(description="Empty when the log is intact")


class EntryOut(BaseModel):
    seq: int
    ts: int = Field(description="Microseconds since the Unix epoch, UTC")
    event: str
    actor: str | None = Field(description="HMAC of the actor id (never the id)")
    subject: str | None
    ip: str | None
    details: dict[str, Any]


class ExportOut(BaseModel):
    entries: list[EntryOut]
    next_seq: int | None = Field(description="from_seq of the next page; None: no more")


@router.get("/verify", response_model=VerifyOut, responses=responses(401, 403, 429))
def verify_log(_admin: Admin, ctx: Ctx) -> VerifyOut:
    """Recompute the tree and check every entry and signed tree head (reads the whole log)."""
    report = verify(ctx.engine, ctx.audit.keys)
    return VerifyOut(
        ok=report.ok,
        entries=report.entries,
        first_seq=report.first_seq,
        size=report.size,
        heads=report.heads,
        root=report.root.hex(),
        findings=[FindingOut(kind=f.kind, seq=f.seq, message=f.message) for f in report.findings],
    )


@router.get("/export", response_model=ExportOut, responses=responses(401, 403, 422, 429))
def export_entries(
    _admin: Admin,
    ctx: Ctx,
    from_seq: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1000,
) -> ExportOut:
    """Entries from `from_seq` on, in order, a page at a time."""
    with ctx.engine.connect() as conn:
        page = entries_from(conn, from_seq, limit + 1)  # one more: is there a next page?
    entries = [EntryOut.model_validate(e.as_dict()) for e in page[:limit]]
    return ExportOut(entries=entries, next_seq=page[limit].seq if len(page) > limit else None)
