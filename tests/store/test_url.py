"""Which database TRADEGUARD_DATABASE_URL names, and which ones production refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from tradeguard.core.errors import DatabaseUrlError, UnsafeProductionSetting
from tradeguard.secrets import Secret
from tradeguard.store import DatabaseTarget, create_engine, resolve_database


def _resolve(url: str, *, production: bool = False) -> DatabaseTarget:
    return resolve_database(Secret(url), Path("/srv/tg"), production=production)


def test_no_url_means_sqlite_in_the_data_dir() -> None:
    target = resolve_database(None, Path("/srv/tg"), production=True)
    assert target.backend == "sqlite"
    assert target.sqlite_path == Path("/srv/tg/tradeguard.db")


def test_sqlite_paths_are_made_absolute(clean_environment: Path) -> None:
    assert _resolve("sqlite:///rel/tg.db").sqlite_path == clean_environment / "rel" / "tg.db"


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "sqlite:///file:x?uri=true"])
def test_sqlite_databases_that_would_lose_data_are_refused(url: str) -> None:
    with pytest.raises(DatabaseUrlError, match="in-memory or URI SQLite"):
        _resolve(url)


@pytest.mark.parametrize("scheme", ["postgres", "postgresql", "postgresql+psycopg"])
def test_postgres_spellings_all_use_psycopg3(scheme: str) -> None:
    target = _resolve(f"{scheme}://tg:pw@127.0.0.1:5432/tg")
    assert target.url.drivername == "postgresql+psycopg"
    assert "pw" not in target.describe()


@pytest.mark.parametrize("url", ["postgresql+psycopg2://h/db", "mysql://h/db", "redis://h/0"])
def test_other_drivers_are_refused(url: str) -> None:
    with pytest.raises(DatabaseUrlError, match="does not support"):
        _resolve(url)


def test_postgres_url_without_a_database_is_refused() -> None:
    with pytest.raises(DatabaseUrlError, match="names no database"):
        _resolve("postgresql://tg@127.0.0.1")


@pytest.mark.parametrize("sslmode", [None, "disable", "prefer", "require", "verify-ca"])
def test_production_refuses_a_remote_postgres_without_verify_full(sslmode: str | None) -> None:
    query = f"?sslmode={sslmode}" if sslmode else ""
    url = f"postgresql://tg:pw@db.internal:5432/tg{query}"
    _resolve(url)  # dev: allowed
    with pytest.raises(UnsafeProductionSetting, match="sslmode=verify-full") as raised:
        _resolve(url, production=True)
    assert "pw" not in str(raised.value)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://tg@db.internal/tg?sslmode=verify-full&sslrootcert=/etc/tg/ca.pem",
        "postgresql://tg@127.0.0.1/tg",
        "postgresql://tg@[::1]/tg",
        "postgresql://tg@localhost/tg",
        "postgresql:///tg",  # default Unix socket
        "postgresql:///tg?host=/var/run/postgresql",
    ],
)
def test_production_accepts_verified_tls_or_this_machine(url: str) -> None:
    assert _resolve(url, production=True).backend == "postgresql"


def test_tls_options_reach_the_driver() -> None:
    target = _resolve(
        "postgresql://tg@db.internal/tg?sslmode=verify-full&sslrootcert=/etc/tg/ca.pem"
        "&sslcert=/etc/tg/client.pem&sslkey=/etc/tg/client.key"
    )
    engine = create_engine(target)
    _, params = engine.dialect.create_connect_args(engine.url)
    assert params["sslmode"] == "verify-full"
    assert params["sslrootcert"] == "/etc/tg/ca.pem"
    assert params["sslcert"] == "/etc/tg/client.pem"
    assert params["sslkey"] == "/etc/tg/client.key"
