"""Settings: environment, secret files, .env, production refusals and the data directory."""

from __future__ import annotations

import base64
import logging
import os
import re
import secrets
from pathlib import Path

import pytest

from tradeguard.config import ensure_data_dir, load_settings, secret_setting_names
from tradeguard.core.errors import (
    ConfigError,
    DatabaseUrlError,
    DataDirError,
    InsecurePermissionsError,
    SecretFileError,
    UnsafeProductionSetting,
)
from tradeguard.vault.master import init_keyring_file

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")


def _secret_file(path: Path, content: str, mode: int = 0o600) -> Path:
    path.write_text(content)
    path.chmod(mode)
    return path


def test_defaults(tmp_path: Path) -> None:
    settings = load_settings()
    assert settings.env == "dev"
    assert settings.data_dir == tmp_path / "xdg" / "tradeguard"
    assert settings.database_url is None
    assert settings.log_level == "INFO"
    assert settings.sandbox == "on"
    assert settings.database().sqlite_path == settings.data_dir / "tradeguard.db"


def test_relative_xdg_data_home_is_ignored_as_the_spec_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", "relative/dir")
    assert load_settings().data_dir == Path.home() / ".local/share/tradeguard"


def test_every_setting_comes_from_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEGUARD_ENV", "Production")
    monkeypatch.setenv("TRADEGUARD_DATA_DIR", "~/tg-data")
    monkeypatch.setenv("TRADEGUARD_LOG_LEVEL", "warning")
    monkeypatch.setenv("TRADEGUARD_SANDBOX", "ON")
    monkeypatch.setenv("TRADEGUARD_DEMO", "false")
    monkeypatch.setenv("TRADEGUARD_DATABASE_URL", "postgresql://tg@127.0.0.1/tg")
    settings = load_settings()
    assert settings.production
    assert settings.data_dir == Path.home() / "tg-data"
    assert settings.log_level == "WARNING"
    assert settings.database().describe() == "PostgreSQL postgresql+psycopg://tg@127.0.0.1/tg"


def test_a_misspelt_variable_is_refused_with_a_suggestion(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEGUARD_ENVV", "production")
    with pytest.raises(ConfigError, match="did you mean TRADEGUARD_ENV"):
        load_settings()


def test_invalid_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEGUARD_SANDBOX", "maybe")
    with pytest.raises(ConfigError, match=r"^TRADEGUARD_SANDBOX: "):
        load_settings()


def test_a_bad_database_url_is_refused_without_echoing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    password = secrets.token_urlsafe(12)
    monkeypatch.setenv("TRADEGUARD_DATABASE_URL", f"mysql://root:{password}@db/x")
    with pytest.raises(DatabaseUrlError, match=r"'mysql' , which|does not support") as raised:
        load_settings()
    assert password not in str(raised.value)
    monkeypatch.setenv("TRADEGUARD_DATABASE_URL", f"not a url {password}")
    with pytest.raises(DatabaseUrlError, match="is not a database URL") as raised:
        load_settings()
    assert password not in str(raised.value)
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__


# -- secret files ------------------------------------------------------------------------------


def test_the_secret_settings_are_the_urls_with_credentials_the_keys_and_passwords() -> None:
    assert secret_setting_names() == [
        "database_url",
        "master_key",
        "audit_key",
        "audit_webhook_url",
        "session_key",
        "redis_url",
        "smtp_password",
    ]


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("TRADEGUARD_RATE_LIMIT_USER", "lots", "600/minute"),
        ("TRADEGUARD_PUBLIC_URL", "https://trade.example.com/app", "origin only"),
        ("TRADEGUARD_PUBLIC_URL", "ftp://trade.example.com", "https://"),
        ("TRADEGUARD_TRUSTED_PROXIES", '["10.0.0.300"]', "not an IP address"),
        ("TRADEGUARD_BREACHED_CHECK", "maybe", "fail-closed"),
        ("TRADEGUARD_PASSWORD_MEMORY_KIB", "8192", "19456"),
    ],
)
def test_bad_api_and_account_settings_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=f"^{variable}: ") as raised:
        load_settings()
    assert message in str(raised.value)


def test_the_public_url_is_kept_as_an_origin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEGUARD_PUBLIC_URL", "https://Trade.example.com:8443/")
    assert load_settings().public_url == "https://Trade.example.com:8443"


@pytest.mark.parametrize("name", ["master_key", "audit_key"])
def test_an_env_key_is_refused_in_production_unless_allowed(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    variable = f"TRADEGUARD_{name.upper()}"
    monkeypatch.setenv("TRADEGUARD_ENV", "production")
    monkeypatch.setenv(variable, base64.b64encode(os.urandom(32)).decode())
    with pytest.raises(UnsafeProductionSetting, match=f"{variable}_FILE") as raised:
        load_settings()
    assert os.environ[variable] not in str(raised.value)
    monkeypatch.setenv(f"TRADEGUARD_ALLOW_ENV_{name.upper()}", "1")
    assert getattr(load_settings(), name) is not None


def test_a_master_key_file_is_allowed_in_production(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    keyring = tmp_path / "keyring.json"
    init_keyring_file(keyring)
    monkeypatch.setenv("TRADEGUARD_ENV", "production")
    monkeypatch.setenv("TRADEGUARD_MASTER_KEY_FILE", str(keyring))
    settings = load_settings()
    assert settings.master_key is not None
    assert repr(settings.master_key).startswith("Secret(***")


def test_secret_from_file_strips_the_trailing_newline(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = _secret_file(tmp_path / "db_url", "postgresql://tg@127.0.0.1/tg\n")
    monkeypatch.setenv("TRADEGUARD_DATABASE_URL_FILE", str(path))
    settings = load_settings()
    assert settings.database_url is not None
    with settings.database_url.reveal_text() as text:
        assert text == "postgresql://tg@127.0.0.1/tg"
    assert "tg@127.0.0.1" not in repr(settings)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_a_secret_file_others_can_read_is_refused_with_the_chmod(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mode: int
) -> None:
    path = _secret_file(tmp_path / "db url", "postgresql://tg@127.0.0.1/tg", mode)
    monkeypatch.setenv("TRADEGUARD_DATABASE_URL_FILE", str(path))
    with pytest.raises(SecretFileError) as raised:
        load_settings()
    message = str(raised.value)
    assert message.startswith("TRADEGUARD_DATABASE_URL_FILE: ")
    assert f"mode {mode:04o}" in message
    assert message.endswith(f"run: chmod 600 '{path}'")


@needs_root
def test_a_secret_file_owned_by_someone_else_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = _secret_file(tmp_path / "db_url", "postgresql://tg@127.0.0.1/tg")
    os.chown(path, 65534, 65534)
    monkeypatch.setenv("TRADEGUARD_DATABASE_URL_FILE", str(path))
    with pytest.raises(SecretFileError, match=r"is owned by nobody.*run: chown root"):
        load_settings()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.mkdir(mode=0o700), "is not a regular file"),
        (lambda p: _secret_file(p, "\n"), "is empty"),
        (lambda p: _secret_file(p, "x" * (64 * 1024 + 1)), "larger than 64 KiB"),
    ],
)
def test_unusable_secret_files_are_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, make: object, message: str
) -> None:
    path = tmp_path / "secret"
    make(path)  # type: ignore[operator]
    monkeypatch.setenv("TRADEGUARD_DATABASE_URL_FILE", str(path))
    with pytest.raises(SecretFileError, match=message):
        load_settings()


def test_value_and_file_together_are_ambiguous(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TRADEGUARD_DATABASE_URL", "postgresql://a@127.0.0.1/a")
    monkeypatch.setenv(
        "TRADEGUARD_DATABASE_URL_FILE", str(_secret_file(tmp_path / "u", "sqlite:////x.db"))
    )
    with pytest.raises(ConfigError, match=r"both TRADEGUARD_DATABASE_URL and .*_FILE are set"):
        load_settings()


def test_file_variables_exist_only_for_secret_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TRADEGUARD_LOG_LEVEL_FILE", str(_secret_file(tmp_path / "l", "INFO")))
    with pytest.raises(ConfigError, match=r"TRADEGUARD_LOG_LEVEL_FILE .* is not a tradeguard"):
        load_settings()


# -- .env and production -----------------------------------------------------------------------


def test_dotenv_is_read_in_dev(clean_environment: Path) -> None:
    (clean_environment / ".env").write_text("TRADEGUARD_LOG_LEVEL=warning\n")
    assert load_settings().log_level == "WARNING"


def test_dotenv_is_ignored_in_production_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, clean_environment: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (clean_environment / ".env").write_text("TRADEGUARD_LOG_LEVEL=error\n")
    monkeypatch.setenv("TRADEGUARD_ENV", "production")
    with caplog.at_level(logging.WARNING):
        settings = load_settings()
    assert settings.log_level == "INFO"
    assert "a .env file is never read in production" in caplog.text


def test_dotenv_cannot_switch_production_on(clean_environment: Path) -> None:
    (clean_environment / ".env").write_text("TRADEGUARD_ENV=production\n")
    with pytest.raises(ConfigError, match="set TRADEGUARD_ENV in the process environment"):
        load_settings()


def test_dotenv_with_an_unknown_setting_is_refused(clean_environment: Path) -> None:
    (clean_environment / ".env").write_text("TRADEGUARD_DATA_DRI=/x\n")
    with pytest.raises(ConfigError, match=r"from .*\.env\) is not a tradeguard setting"):
        load_settings()


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("TRADEGUARD_DEMO", "true", "TRADEGUARD_DEMO=true is refused in production"),
        ("TRADEGUARD_SANDBOX", "off", "TRADEGUARD_SANDBOX=off is refused in production"),
        ("TRADEGUARD_LOG_LEVEL", "debug", "TRADEGUARD_LOG_LEVEL=DEBUG is refused in production"),
    ],
)
def test_unsafe_settings_refuse_to_start_in_production(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    load_settings()  # fine in dev
    monkeypatch.setenv("TRADEGUARD_ENV", "production")
    with pytest.raises(UnsafeProductionSetting, match=message):
        load_settings()


# -- data directory ----------------------------------------------------------------------------


def test_data_dir_is_created_0700_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        path = ensure_data_dir(load_settings(data_dir=tmp_path / "a" / "b" / "data"))
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o700


def test_an_existing_data_dir_open_to_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "data"
    path.mkdir(mode=0o755)
    path.chmod(0o755)
    with pytest.raises(InsecurePermissionsError, match=f"mode 0755.*run: chmod 700 {path}$"):
        ensure_data_dir(load_settings(data_dir=path))


def test_a_data_dir_that_cannot_be_created_says_so(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(DataDirError, match=r"data directory .* set TRADEGUARD_DATA_DIR to a dir"):
        ensure_data_dir(load_settings(data_dir=blocker / "data"))
    with pytest.raises(DataDirError, match="cannot create the data directory"):
        ensure_data_dir(load_settings(data_dir=Path("/proc/tradeguard-data")))
    with pytest.raises(DataDirError, match="is not a directory"):
        ensure_data_dir(load_settings(data_dir=blocker))


def test_loading_settings_creates_nothing(tmp_path: Path) -> None:
    load_settings(data_dir=tmp_path / "never")
    assert not (tmp_path / "never").exists()


def test_venue_api_urls_take_https_or_loopback_http(monkeypatch: pytest.MonkeyPatch) -> None:
    urls = '{"binance": "http://127.0.0.1:8123", "bybit": "https://bybit.example"}'
    monkeypatch.setenv("TRADEGUARD_VENUE_API_URLS", urls)
    monkeypatch.setenv("TRADEGUARD_VENUE_TESTNET", '["hyperliquid"]')
    settings = load_settings()
    assert settings.venue_api_urls["binance"] == "http://127.0.0.1:8123"
    assert settings.venue_testnet == ["hyperliquid"]


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://proxy.example.com", "plain http is allowed only to 127.0.0.1"),
        ("ftp://127.0.0.1", "give an http(s) URL"),
        ("https://user:pw@proxy.example", "no user, password, query or fragment"),
        ("https://proxy.example/?token=x", "no user, password, query or fragment"),
    ],
)
def test_unsafe_venue_api_urls_are_refused(
    monkeypatch: pytest.MonkeyPatch, url: str, says: str
) -> None:
    monkeypatch.setenv("TRADEGUARD_VENUE_API_URLS", f'{{"binance": "{url}"}}')
    with pytest.raises(ConfigError, match=re.escape(says)) as caught:
        load_settings()
    assert "pw@" not in str(caught.value)
    assert "token" not in str(caught.value)
