"""Which database to use, decided once from TRADEGUARD_DATABASE_URL and the data directory.

SQLite in the data directory is the default. PostgreSQL is reached through psycopg 3; its TLS
options (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`) are query parameters that pass straight
through to libpq. In production a PostgreSQL server that is not on this host must be reached with
`sslmode=verify-full`: anything weaker lets a network attacker read or change what we store.

Error messages never contain the URL, which may hold a password.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from tradeguard.core.errors import DatabaseUrlError, UnsafeProductionSetting
from tradeguard.core.hosts import is_loopback_host
from tradeguard.secrets import Secret

__all__ = ["SQLITE_FILENAME", "DatabaseTarget", "is_local_host", "resolve_database"]

SQLITE_FILENAME = "tradeguard.db"

_SQLITE_DRIVERS = {"sqlite", "sqlite+pysqlite"}
_POSTGRES_DRIVERS = {"postgresql", "postgres", "postgresql+psycopg"}
_EXPECTED = "expected sqlite:////ABSOLUTE/PATH or postgresql+psycopg://USER@HOST:PORT/DBNAME"


@dataclass(frozen=True)
class DatabaseTarget:
    """A validated database location. `url` masks its password in repr and str."""

    backend: Literal["sqlite", "postgresql"]
    url: URL
    sqlite_path: Path | None = None

    def sqlite_file(self) -> Path:
        if self.sqlite_path is None:
            raise TypeError(f"{self.describe()} is not a SQLite database")
        return self.sqlite_path

    def describe(self) -> str:
        """A form safe to print: the path, or the URL with its password hidden."""
        if self.sqlite_path is not None:
            return f"SQLite {self.sqlite_path}"
        return f"PostgreSQL {self.url.render_as_string(hide_password=True)}"


def is_local_host(host: str | None) -> bool:
    """True for no host, a socket directory, localhost or a loopback address."""
    if not host or host.startswith("/"):
        return True  # no host or a directory: a Unix socket on this machine
    return is_loopback_host(host)


def _sqlite(url: URL) -> DatabaseTarget:
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        raise DatabaseUrlError(
            "TRADEGUARD_DATABASE_URL names an in-memory or URI SQLite database, which would lose "
            f"every order and audit entry on exit; {_EXPECTED}"
        )
    path = Path(database).expanduser().resolve()
    return DatabaseTarget("sqlite", url.set(drivername="sqlite", database=str(path)), path)


def _postgres(url: URL, *, production: bool) -> DatabaseTarget:
    url = url.set(drivername="postgresql+psycopg")
    if not url.database:
        raise DatabaseUrlError(f"TRADEGUARD_DATABASE_URL names no database; {_EXPECTED}")
    host = url.host or url.query.get("host")
    hosts = [host] if isinstance(host, str) or host is None else list(host)
    sslmode = url.query.get("sslmode")
    if production and not all(map(is_local_host, hosts)) and sslmode != "verify-full":
        raise UnsafeProductionSetting(
            "in production a PostgreSQL server on another host must be reached with "
            f"sslmode=verify-full (got {sslmode or 'no sslmode'}); add "
            "?sslmode=verify-full&sslrootcert=/path/to/ca.pem to TRADEGUARD_DATABASE_URL"
        )
    return DatabaseTarget("postgresql", url)


def resolve_database(
    database_url: Secret | None, data_dir: Path, *, production: bool
) -> DatabaseTarget:
    """Validate TRADEGUARD_DATABASE_URL (None: SQLite in `data_dir`) without connecting."""
    if database_url is None:
        path = data_dir / SQLITE_FILENAME
        return DatabaseTarget("sqlite", URL.create("sqlite", database=str(path)), path)
    with database_url.reveal_text() as text:
        try:
            url = make_url(text.strip())
        except ArgumentError:
            raise DatabaseUrlError(
                f"TRADEGUARD_DATABASE_URL is not a database URL; {_EXPECTED}"
            ) from None
    if url.drivername in _SQLITE_DRIVERS:
        return _sqlite(url)
    if url.drivername in _POSTGRES_DRIVERS:
        return _postgres(url, production=production)
    raise DatabaseUrlError(
        f"TRADEGUARD_DATABASE_URL uses {url.drivername!r}, which tradeguard does not support; "
        f"{_EXPECTED}"
    )
