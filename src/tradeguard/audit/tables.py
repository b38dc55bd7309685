"""The audit tables as SQLAlchemy Core tables (the models live in store/models.py)."""

from __future__ import annotations

from typing import cast

import sqlalchemy as sa

from tradeguard.store.models import (
    AuditEntry,
    AuditNode,
    AuditPrune,
    AuditState,
    AuditTreeHead,
    Instance,
)

__all__ = ["entries", "instance", "instance_id", "nodes", "prunes", "state", "tree_heads"]

entries = cast(sa.Table, AuditEntry.__table__)
state = cast(sa.Table, AuditState.__table__)
nodes = cast(sa.Table, AuditNode.__table__)
tree_heads = cast(sa.Table, AuditTreeHead.__table__)
prunes = cast(sa.Table, AuditPrune.__table__)
instance = cast(sa.Table, Instance.__table__)


def instance_id(connection: sa.Connection) -> str:
    return str(connection.execute(sa.select(instance.c.instance_id)).scalar_one())
