"""Storage: the database target, engines, models and migrations."""

from tradeguard.store.engine import connect_check, create_engine
from tradeguard.store.schema import SchemaStatus, schema_status, upgrade
from tradeguard.store.url import DatabaseTarget, resolve_database

__all__ = [
    "DatabaseTarget",
    "SchemaStatus",
    "connect_check",
    "create_engine",
    "resolve_database",
    "schema_status",
    "upgrade",
]
