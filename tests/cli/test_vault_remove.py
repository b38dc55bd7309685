"""`vault remove` refuses a credential a bot still trades with, as the API does."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from tests.cli.test_audit_cli import Home, add_credential, home_env
from tests.conftest import CliRunner

from tradeguard.store.models import BotRow
from tradeguard.vault.master import init_keyring_file


def test_a_credential_a_bot_trades_with_is_not_removed(tmp_path: Path) -> None:
    (tmp_path / "cwd").mkdir(exist_ok=True)
    init_keyring_file(tmp_path / "master.keyring")
    home = Home(tmp_path, CliRunner(tmp_path / "cwd", home_env(tmp_path)))
    home.ok("users", "add", "svc", "--vault-mode", "service")
    add_credential(home, "main")
    engine = sa.create_engine(f"sqlite:///{home.db}")
    with engine.begin() as conn:
        conn.execute(
            sa.insert(BotRow).values(
                id=str(uuid.uuid4()), name="sma", user_name="svc", connection="main",
                mode="paper", source="/src", created_at=datetime.now(UTC),
            )
        )  # fmt: skip
    refused = home.tg("vault", "remove", "main", "--user", "svc", "--yes")
    assert refused.code != 0
    assert "bot sma trades with credential main" in refused.output
    assert "main" in home.ok("vault", "list", "--user", "svc").output

    with engine.begin() as conn:
        conn.execute(sa.delete(BotRow))
    engine.dispose()
    home.ok("vault", "remove", "main", "--user", "svc", "--yes")
    assert "main" not in home.ok("vault", "list", "--user", "svc").output
