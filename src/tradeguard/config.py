"""Settings: every option from `TRADEGUARD_*` environment variables, validated once, frozen.

- Secret settings (typed `Secret`) may also come from a file named by `TRADEGUARD_<NAME>_FILE`,
  which must be a regular file owned by the user running tradeguard and closed to group and
  others; the usual way to pass secrets from systemd credentials, Docker or Kubernetes secrets.
- `TRADEGUARD_ENV` is `dev` (default) or `production`. A `.env` in the working directory is read
  in dev only; in production it is ignored with a warning, and development conveniences that
  are unsafe there (demo mode, the bot sandbox off, debug logging) refuse to start.
- A `TRADEGUARD_*` variable that names no setting is an error, not a silent default: a typo in
  `TRADEGUARD_ENV` must not quietly leave a production server in dev mode.

`load_settings()` reads and checks but changes nothing on disk; `ensure_data_dir()` is the one
step that creates something, and entry points call it when they are about to write.
"""

from __future__ import annotations

import difflib
import ipaddress
import logging
import os
import shlex
import stat
import tempfile
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

from dotenv import dotenv_values
from limits import parse_many
from pydantic import (
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    WithJsonSchema,
    field_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from tradeguard.core.errors import (
    ConfigError,
    DataDirError,
    InsecurePermissionsError,
    UnsafeProductionSetting,
)
from tradeguard.core.hosts import is_loopback_host
from tradeguard.core.permissions import create_private_dir, exposure_problem
from tradeguard.crypto import DEFAULT_PARAMS, KdfParams
from tradeguard.secrets import Secret
from tradeguard.secrets.files import read_secret_file
from tradeguard.store.url import DatabaseTarget, resolve_database

__all__ = [
    "ENV_PREFIX",
    "Settings",
    "check_data_dir",
    "check_public_url",
    "default_data_dir",
    "dotenv_path",
    "ensure_data_dir",
    "load_settings",
    "production_problems",
    "secret_setting_names",
]

ENV_PREFIX = "TRADEGUARD_"
log = logging.getLogger(__name__)


def _to_secret(value: object) -> Secret:
    if isinstance(value, Secret):
        return value
    if isinstance(value, str):
        return Secret(value)
    raise ValueError("must be text")


SecretSetting = Annotated[
    Secret,
    PlainValidator(_to_secret),
    PlainSerializer(repr, return_type=str),
    WithJsonSchema({"type": "string", "writeOnly": True}),
]


def default_data_dir() -> Path:
    """`$XDG_DATA_HOME/tradeguard`, or `~/.local/share/tradeguard` (the XDG default)."""
    xdg = os.environ.get("XDG_DATA_HOME", "")
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".local" / "share"
    return base / "tradeguard"


def default_runtime_dir() -> Path:
    """`$XDG_RUNTIME_DIR/tradeguard` (per-user, 0700, tmpfs on systemd hosts), else a
    per-user folder in the temp dir."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base:
        return Path(base) / "tradeguard"
    return Path(tempfile.gettempdir()) / f"tradeguard-{os.getuid()}"


class Settings(BaseSettings):
    """tradeguard's settings. docs/configuration.md describes each one."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        frozen=True,
        extra="forbid",
        case_sensitive=False,
        validate_default=True,
    )

    env: Literal["dev", "production"] = "dev"
    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: SecretSetting | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    sandbox: Literal["on", "off"] = "on"
    demo: bool = False
    master_key: SecretSetting | None = None
    master_key_command: str | None = None
    allow_env_master_key: bool = False
    vault_idle_timeout: int = Field(default=15 * 60, ge=60, le=24 * 3600)
    vault_absolute_timeout: int = Field(default=12 * 3600, ge=60, le=7 * 24 * 3600)
    vault_kdf_memory_kib: int = Field(default=DEFAULT_PARAMS.memory_kib, ge=19 * 1024)
    vault_kdf_iterations: int = Field(default=DEFAULT_PARAMS.iterations, ge=2)
    vault_kdf_lanes: int = Field(default=DEFAULT_PARAMS.lanes, ge=1, le=64)
    audit_key: SecretSetting | None = None
    audit_key_command: str | None = None
    allow_env_audit_key: bool = False
    audit_checkpoint_file: Path | None = None
    audit_webhook_url: SecretSetting | None = None
    audit_head_every: int = Field(default=1000, ge=1, le=1_000_000)
    audit_head_interval: int = Field(default=60, ge=1, le=24 * 3600)
    audit_group_commit_ms: float = Field(default=2.0, ge=0, le=2.0)
    audit_retention_days: int = Field(default=90, ge=1)
    # Where a venue's API lives, when not at the venue's own host: a regional mirror, a proxy,
    # or a loopback simulator in tests. JSON: {"binance": "https://...", ...}.
    venue_api_urls: dict[str, str] = Field(default_factory=dict)
    # Venues to use in their testnet / sandbox mode (ccxt's set_sandbox_mode): their test hosts
    # and, on Hyperliquid, testnet signing. JSON list: ["binance", "hyperliquid"].
    venue_testnet: list[str] = Field(default_factory=list)
    # The operator's floor under live trading: the loosest breakers a live bot may have (paper
    # bots may loosen them), and what a paper record must show before `bots promote`.
    risk_live_max_consecutive_losses: int = Field(default=3, ge=1, le=1000)
    risk_live_max_daily_loss_pct: Decimal = Field(default=Decimal(5), gt=0, le=100)
    risk_live_max_drawdown_pct: Decimal = Field(default=Decimal(25), gt=0, le=100)
    risk_max_portfolio_drawdown_pct: Decimal = Field(default=Decimal(40), gt=0, le=100)
    promotion_min_trades: int = Field(default=100, ge=1)
    promotion_min_win_rate_pct: Decimal = Field(default=Decimal(60), ge=0, le=100)
    promotion_min_profit_factor: Decimal = Field(default=Decimal("1.5"), gt=0)
    promotion_max_drawdown_pct: Decimal = Field(default=Decimal(15), gt=0, le=100)
    # Bots: where their gateway sockets live (short: a Unix socket path has 107 bytes at
    # most), what their processes may use, where their packages come from, and when a crashing
    # bot stops being restarted.
    runtime_dir: Path = Field(default_factory=default_runtime_dir)
    bot_memory_mb: int = Field(default=1024, ge=64, le=64 * 1024)
    bot_cpu_seconds: int = Field(default=24 * 3600, ge=1)
    bot_max_open_files: int = Field(default=256, ge=16, le=65536)
    bot_max_processes: int = Field(default=64, ge=1, le=4096)
    bot_max_file_mb: int = Field(default=256, ge=1)
    bot_index_url: str | None = None  # a PyPI mirror for bots' requirements
    bot_wheelhouse: Path | None = None  # a folder of wheels: installs use it and nothing else
    bot_package_denylist: list[str] = Field(default_factory=list)  # added to the built-in one
    bot_package_allow: list[str] = Field(default_factory=list)  # names a typosquat check spared
    bot_crash_limit: int = Field(default=5, ge=1, le=1000)
    bot_crash_window_s: int = Field(default=600, ge=1)
    # The HTTP API (`tradeguard serve`, docs/api.md). `public_url` is the origin browsers see:
    # Origin checks, cookie security and links in mails use it. Behind a reverse proxy, list the
    # proxy's address in `trusted_proxies` (only then are X-Forwarded-For/-Proto believed).
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=1, le=65535)
    public_url: str = "http://127.0.0.1:8000"
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    trusted_proxies: list[str] = Field(default_factory=list)
    # Accounts. The session key signs access tokens and CSRF tokens; unset, a random one is kept
    # in `<data dir>/session.key` (instances behind one load balancer must share it).
    session_key: SecretSetting | None = None
    # Who must have a second factor before the API lets them do anything but turn one on.
    require_2fa: Literal["admins", "everyone"] = "admins"
    access_token_ttl: int = Field(default=300, ge=30, le=3600)
    session_idle_timeout: int = Field(default=30 * 60, ge=60, le=7 * 24 * 3600)
    session_absolute_timeout: int = Field(default=12 * 3600, ge=300, le=30 * 24 * 3600)
    password_memory_kib: int = Field(default=19456, ge=19456)
    password_iterations: int = Field(default=2, ge=1, le=64)
    password_lanes: int = Field(default=1, ge=1, le=64)
    password_min_score: int = Field(default=3, ge=3, le=4)
    breached_check: Literal["off", "fail-open", "fail-closed"] = "off"
    breached_url: str = "https://api.pwnedpasswords.com"
    # Shared counters and one-time tokens across instances; unset, they live in this process
    # (counters) and the database (tokens).
    redis_url: SecretSetting | None = None
    rate_limit_user: str = "600/minute"
    rate_limit_global: str = "12000/minute"
    # Password checks from addresses a user has never logged in from, all users together: the
    # ceiling on what a distributed guessing attack can make the server hash.
    login_unknown_rate: str = "10/second"
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_username: str | None = None
    smtp_password: SecretSetting | None = None
    mail_from: str | None = None

    @field_validator("env", "sandbox", "require_2fa", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator(
        "data_dir",
        "audit_checkpoint_file",
        "runtime_dir",
        "bot_wheelhouse",
        "tls_cert_file",
        "tls_key_file",
    )
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        return None if value is None else value.expanduser().absolute()

    @field_validator("rate_limit_user", "rate_limit_global", "login_unknown_rate")
    @classmethod
    def _rate(cls, value: str) -> str:
        try:
            parse_many(value)
        except ValueError:
            raise ValueError(
                "give a rate such as 600/minute or 10/second;100/hour (the limits library's "
                "notation)"
            ) from None
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        return check_public_url(value)

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: list[str]) -> list[str]:
        for address in value:
            try:
                ipaddress.ip_network(address)
            except ValueError:
                raise ValueError(f"{address!r} is not an IP address or network") from None
        return value

    @field_validator("venue_api_urls")
    @classmethod
    def _venue_urls(cls, value: dict[str, str]) -> dict[str, str]:
        for venue, url in value.items():
            check_venue_api_url(venue, url)
        return value

    @property
    def production(self) -> bool:
        return self.env == "production"

    def checkpoint_file(self) -> Path:
        """Where signed tree heads are appended (ship this file off the host)."""
        return self.audit_checkpoint_file or self.data_dir / "audit-checkpoints.jsonl"

    def kdf_params(self) -> KdfParams:
        try:
            return KdfParams(
                self.vault_kdf_memory_kib, self.vault_kdf_iterations, self.vault_kdf_lanes
            )
        except ValueError as e:
            raise ConfigError(f"TRADEGUARD_VAULT_KDF_*: {e}") from None

    def database(self) -> DatabaseTarget:
        return resolve_database(self.database_url, self.data_dir, production=self.production)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _SecretFileSource(settings_cls), dotenv_settings


def check_venue_api_url(venue: str, url: str) -> None:
    """An API base URL: https, or plain http to loopback only (a key id travels in a header,
    so it never crosses a network in clear); no user, query or fragment."""
    where = f"TRADEGUARD_VENUE_API_URLS[{venue!r}]"
    if not venue.isidentifier() or venue != venue.lower():
        raise ConfigError(f"{where}: a venue name is lowercase letters, digits and _ (binance)")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError(f"{where}: give an http(s) URL such as https://api.example.com")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ConfigError(f"{where}: plain http is allowed only to 127.0.0.1; use https")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ConfigError(f"{where}: no user, password, query or fragment in the URL")


def check_public_url(value: str) -> str:
    """An origin (scheme, host, port) as `scheme://host[:port]`; ValueError saying what is
    wrong otherwise."""
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("give the origin users reach, such as https://trade.example.com")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError("give an origin only (scheme, host, port), with no path or query")
    return f"{parts.scheme}://{parts.netloc}"


def _holds_secret(annotation: object) -> bool:
    """True for `Secret`, `Secret | None`, `Annotated[Secret, ...]` and the like."""
    if isinstance(annotation, type) and issubclass(annotation, Secret):
        return True
    return any(_holds_secret(arg) for arg in get_args(annotation))


def secret_setting_names() -> list[str]:
    """Names of the settings that hold secrets (and so also accept `..._FILE`)."""
    return [name for name, f in Settings.model_fields.items() if _holds_secret(f.annotation)]


def _variable(name: str) -> str:
    return f"{ENV_PREFIX}{name.upper()}"


class _SecretFileSource(PydanticBaseSettingsSource):
    """`TRADEGUARD_<NAME>_FILE` for every secret setting."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads every field at once

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in secret_setting_names():
            file_variable = f"{_variable(name)}_FILE"
            path = os.environ.get(file_variable)
            if path is None:
                continue
            if _variable(name) in os.environ:
                raise ConfigError(
                    f"both {_variable(name)} and {file_variable} are set; unset one "
                    f"(prefer {file_variable}, which keeps the secret out of the environment)"
                )
            values[name] = read_secret_file(file_variable, Path(path))
        return values


# -- loading -----------------------------------------------------------------------------------


def _known_variables() -> set[str]:
    names = {_variable(name) for name in Settings.model_fields}
    return names | {f"{_variable(name)}_FILE" for name in secret_setting_names()}


def _refuse_unknown(variables: set[str], where: str) -> None:
    known = _known_variables()
    for variable in sorted(v for v in variables if v.upper().startswith(ENV_PREFIX)):
        if variable.upper() not in known:
            close = difflib.get_close_matches(variable.upper(), known, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise ConfigError(
                f"{variable} (from {where}) is not a tradeguard setting; {hint}"
                "see docs/configuration.md for the full list"
            )


def dotenv_path(cwd: Path) -> Path:
    return cwd / ".env"


def _dotenv_file(cwd: Path, production: bool) -> Path | None:
    """The `.env` to read, if any. Refuses one that tries to switch on production."""
    path = dotenv_path(cwd)
    if not path.is_file():
        return None
    if production:
        log.warning("ignored %s: a .env file is never read in production", path)
        return None
    values = dotenv_values(path)
    _refuse_unknown(set(values), str(path))
    if str(values.get(_variable("env")) or "").strip().lower() == "production":
        raise ConfigError(
            f"{path} sets TRADEGUARD_ENV=production, but .env files are ignored in production; "
            "set TRADEGUARD_ENV in the process environment instead"
        )
    return path


def _validation_error(error: ValidationError) -> ConfigError:
    # include_input=False: the rejected value may be a secret; say where, not what.
    first = error.errors(include_input=False, include_url=False)[0]
    name = _variable(str(first["loc"][0])) if first["loc"] else "settings"
    return ConfigError(f"{name}: {first['msg']}; see docs/configuration.md")


def _from_env(settings: Settings, name: str) -> bool:
    """The secret setting came from its TRADEGUARD_<NAME> variable, not a file or command."""
    return getattr(settings, name) is not None and _variable(name) in os.environ


_PRODUCTION_RULES: tuple[tuple[str, Callable[[Settings], bool], str], ...] = (
    (
        "demo",
        lambda s: s.demo,
        "TRADEGUARD_DEMO=true is refused in production: demo mode keeps its master key next to "
        "the data; unset TRADEGUARD_DEMO",
    ),
    (
        "sandbox",
        lambda s: s.sandbox == "off",
        "TRADEGUARD_SANDBOX=off is refused in production: bots would run with the server's "
        "access; unset it and run on a kernel with Landlock and user namespaces",
    ),
    (
        "master_key",
        lambda s: _from_env(s, "master_key") and not s.allow_env_master_key,
        "TRADEGUARD_MASTER_KEY in the environment is refused in production: every process and "
        "crash report of this user can read it; use TRADEGUARD_MASTER_KEY_FILE or "
        "TRADEGUARD_MASTER_KEY_COMMAND (or set TRADEGUARD_ALLOW_ENV_MASTER_KEY=1 if you must)",
    ),
    (
        "audit_key",
        lambda s: _from_env(s, "audit_key") and not s.allow_env_audit_key,
        "TRADEGUARD_AUDIT_KEY in the environment is refused in production: every process and "
        "crash report of this user can read it; use TRADEGUARD_AUDIT_KEY_FILE or "
        "TRADEGUARD_AUDIT_KEY_COMMAND (or set TRADEGUARD_ALLOW_ENV_AUDIT_KEY=1 if you must)",
    ),
    (
        "log_level",
        lambda s: s.log_level == "DEBUG",
        "TRADEGUARD_LOG_LEVEL=DEBUG is refused in production: debug logs carry request detail; "
        "use INFO",
    ),
)


def production_problems(settings: Settings) -> dict[str, str | None]:
    """For each setting that is unsafe in production: the refusal, or None when it is fine."""
    return {
        name: message if settings.production and unsafe(settings) else None
        for name, unsafe, message in _PRODUCTION_RULES
    }


def load_settings(*, cwd: Path | None = None, strict: bool = True, **overrides: Any) -> Settings:
    """Read and check the settings. Raises `ConfigError` (exit code 2) on anything wrong.

    `overrides` take precedence over the environment (the demo uses them for its data dir).
    `strict=False` skips the production rules and the database URL check, for `doctor`, which
    reports each of them as its own row instead of stopping at the first.
    """
    _refuse_unknown(set(os.environ), "the environment")
    env = str(overrides.get("env") or os.environ.get(_variable("env"), "dev")).strip().lower()
    dotenv = _dotenv_file(cwd or Path.cwd(), production=env == "production")
    try:
        settings = Settings(_env_file=dotenv, **overrides)
    except ValidationError as e:
        raise _validation_error(e) from None
    if strict:
        for problem in production_problems(settings).values():
            if problem:
                raise UnsafeProductionSetting(problem)
        settings.database()  # a bad URL fails now, before anything touches the disk
    return settings


def check_data_dir(path: Path) -> bool:
    """Whether the data directory exists; raises if it exists but is unusable or not private.

    Read-only: `ensure_data_dir` and `doctor` share it.
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        return False
    except OSError as e:
        raise DataDirError(
            f"cannot use the data directory {path} ({e.strerror}); set TRADEGUARD_DATA_DIR to a "
            "directory this user can write"
        ) from None
    if not stat.S_ISDIR(st.st_mode):
        raise DataDirError(
            f"the data directory {path} exists but is not a directory; set TRADEGUARD_DATA_DIR "
            "to another path"
        )
    problem = exposure_problem(path, st, "directory")
    if problem:
        raise InsecurePermissionsError(f"data directory: {problem}")
    if not os.access(path, os.W_OK | os.X_OK):
        raise DataDirError(
            f"the data directory {path} is not writable by this user; run: chmod 700 "
            f"{shlex.quote(str(path))} (as its owner)"
        )
    return True


def ensure_data_dir(settings: Settings) -> Path:
    """Create the data directory 0700, or check that the existing one is private."""
    path = settings.data_dir
    if check_data_dir(path):
        return path
    try:
        create_private_dir(path)
    except OSError as e:
        raise DataDirError(
            f"cannot create the data directory {path} ({e.strerror}); set "
            "TRADEGUARD_DATA_DIR to a directory this user can write"
        ) from None
    return path
