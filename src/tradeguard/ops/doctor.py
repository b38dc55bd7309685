"""`tradeguard doctor`: the deployment checklist, run against this host as it is.

Each check reports pass, warn or fail with what it found and how to fix it. Doctor only reads:
it opens the database read-only and creates nothing, so it is safe to run on a broken or
half-configured host, which is exactly when it is needed. Later components add their rows here.
"""

from __future__ import annotations

import os
import pwd
import resource
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tradeguard.audit import AUDIT_KEY
from tradeguard.config import (
    ENV_PREFIX,
    Settings,
    check_data_dir,
    dotenv_path,
    load_settings,
    production_problems,
    secret_setting_names,
)
from tradeguard.core.errors import TradeguardError
from tradeguard.core.permissions import exposure_problem
from tradeguard.crypto.keyring_file import KeyringVariables, describe_source, load_keyring
from tradeguard.ops.serving import check_setup, tls_options
from tradeguard.secrets import Secret, guards
from tradeguard.secrets.files import read_secret_file
from tradeguard.store import DatabaseTarget, create_engine, schema_status
from tradeguard.store.engine import check_sqlite_files
from tradeguard.store.url import is_local_host
from tradeguard.vault.master import MASTER_KEY

__all__ = ["Check", "Status", "run_checks"]

Status = Literal["pass", "warn", "fail"]


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str


def _user() -> Check:
    uid = os.geteuid()
    if uid == 0:
        return Check(
            "running user",
            "warn",
            "running as root: a bug or an escaped bot would own the whole machine; run "
            "tradeguard as a dedicated unprivileged user",
        )
    return Check("running user", "pass", f"{pwd.getpwuid(uid).pw_name} (uid {uid}), not root")


def _dotenv(cwd: Path, production: bool) -> Check:
    path = dotenv_path(cwd)
    if not path.is_file():
        return Check(".env file", "pass", f"none in {cwd}")
    if production:
        return Check(
            ".env file",
            "fail",
            f"{path} exists; production ignores it, but it leaves secrets in a plain file: "
            "delete it and pass secrets with TRADEGUARD_*_FILE or a secrets manager",
        )
    problem = exposure_problem(path, path.stat(), "file")
    if problem:
        return Check(".env file", "warn", f"may hold secrets: {problem}")
    return Check(".env file", "pass", f"{path} (read in dev only; private)")


def _secret_files(environ: Mapping[str, str]) -> Iterator[Check]:
    found = False
    for name in secret_setting_names():
        variable = f"{ENV_PREFIX}{name.upper()}_FILE"
        if variable not in environ:
            continue
        found = True
        path = Path(environ[variable])
        try:
            read_secret_file(variable, path).wipe()  # the same checks the server makes
        except TradeguardError as e:
            yield Check(variable, "fail", e.message)
        else:
            yield Check(variable, "pass", f"{path} is private to its owner")
    if not found:
        yield Check("secret files", "pass", "no TRADEGUARD_*_FILE set")


def _data_dir(settings: Settings) -> Check:
    path = settings.data_dir
    try:
        exists = check_data_dir(path)
    except TradeguardError as e:
        return Check("data directory", "fail", e.message)
    if not exists:
        return Check("data directory", "warn", f"{path} does not exist yet (created 0700 on use)")
    return Check("data directory", "pass", f"{path} (0700)")


def _sqlite_files(target: DatabaseTarget) -> Check:
    path = target.sqlite_file()
    try:
        exists = check_sqlite_files(path)
    except TradeguardError as e:
        return Check("database files", "fail", e.message)
    if not exists:
        return Check(
            "database files", "warn", f"{path} not created yet; run: tradeguard db upgrade"
        )
    return Check("database files", "pass", f"{path} and its -wal/-shm are 0600")


def _postgres_tls(target: DatabaseTarget) -> Check:
    sslmode = target.url.query.get("sslmode")
    host = target.url.host or "the local socket"
    if sslmode == "verify-full":
        return Check("database TLS", "pass", f"{host}: sslmode=verify-full")
    if is_local_host(target.url.host):
        return Check("database TLS", "pass", f"{host} is this machine")
    return Check(
        "database TLS",
        "warn",
        f"{host} with sslmode={sslmode or 'unset'}: add sslmode=verify-full and sslrootcert "
        "(production refuses anything weaker)",
    )


def _schema(target: DatabaseTarget) -> Check:
    if target.sqlite_path is not None and not target.sqlite_path.exists():
        return Check("database schema", "warn", "no database yet; run: tradeguard db upgrade")
    try:
        engine = create_engine(target, read_only=True)
        try:
            status = schema_status(engine)
        finally:
            engine.dispose()
    except TradeguardError as e:
        return Check("database schema", "fail", e.message)
    except Exception as e:  # noqa: BLE001 - doctor reports, it does not crash
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return Check("database schema", "fail", f"cannot read the database: {reason}")
    if status.state == "current":
        return Check("database schema", "pass", f"at revision {status.head} (this version)")
    if status.state == "newer":
        return Check(
            "database schema",
            "fail",
            f"at revision {status.current}, newer than this tradeguard knows; upgrade tradeguard",
        )
    return Check(
        "database schema",
        "warn",
        f"at {status.current or 'no revision'}, head is {status.head}; run: tradeguard db upgrade",
    )


def _database(settings: Settings) -> Iterator[Check]:
    try:
        target = settings.database()
    except TradeguardError as e:
        yield Check("database", "fail", e.message)
        return
    yield _sqlite_files(target) if target.backend == "sqlite" else _postgres_tls(target)
    yield _schema(target)


_LABELS = {
    "demo": "demo mode",
    "sandbox": "bot sandbox",
    "log_level": "log level",
    "master_key": "master key source",
    "audit_key": "audit key source",
}


def _production_rules(settings: Settings) -> Iterator[Check]:
    for name, problem in production_problems(settings).items():
        label = _LABELS.get(name, name)
        if problem:
            yield Check(label, "fail", problem)
        elif name in ("master_key", "audit_key"):
            yield Check(label, "pass", f"not refused ({settings.env})")
        else:
            value = getattr(settings, name)
            yield Check(label, "pass", f"{ENV_PREFIX}{name.upper()}={value} ({settings.env})")


def _inside(path: Path, directory: Path) -> bool:
    try:
        path.resolve().relative_to(directory.resolve())
    except ValueError:
        return False
    return True


def _keyring(
    settings: Settings,
    names: KeyringVariables,
    secret: Secret | None,
    command: str | None,
    *,
    needed: str,
    carries: str,
) -> Iterator[Check]:
    """A keyring's rows: configured, loadable (versions, primary), and kept apart from the data.

    `needed` says what refuses to run without it; `carries` what a copy of the data directory
    would carry if the keyring sat inside it."""
    label = names.what
    if secret is None and not command:
        yield Check(
            label,
            "fail" if settings.production else "warn",
            f"none configured ({needed}); create a keyring with {names.init_command} and set "
            f"{names.file_variable}=PATH",
        )
        return
    try:
        keyring = load_keyring(secret, command, names)
    except TradeguardError as e:
        yield Check(label, "fail", e.message)
        return
    versions, primary = keyring.versions, keyring.primary
    keyring.wipe()
    source = describe_source(command, names)
    yield Check(label, "pass", f"{source}: versions {versions}, primary {primary}")
    file = os.environ.get(names.file_variable)
    if file and _inside(Path(file), settings.data_dir):
        yield Check(
            f"{label} location",
            "warn" if settings.production else "pass",
            f"{file} is inside the data directory, so every copy or backup of the data carries "
            f"{carries}"
            + ("; keep the keyring elsewhere (or in a secrets manager)" if settings.production
               else " (acceptable for the demo and development)"),
        )  # fmt: skip


def _master_key(settings: Settings) -> Iterator[Check]:
    return _keyring(
        settings,
        MASTER_KEY,
        settings.master_key,
        settings.master_key_command,
        needed="the server refuses to start without one",
        carries="the key that opens it",
    )


def _audit_key(settings: Settings) -> Iterator[Check]:
    yield from _keyring(
        settings,
        AUDIT_KEY,
        settings.audit_key,
        settings.audit_key_command,
        needed="commands that change anything refuse to run without one",
        carries="the key that signs its history",
    )
    checkpoints = settings.checkpoint_file()
    if _inside(checkpoints, settings.data_dir):
        yield Check(
            "audit checkpoints",
            "warn" if settings.production else "pass",
            f"tree heads go to {checkpoints}, inside the data directory: a rollback of the host "
            "rolls them back too"
            + ("; ship the file off the host (or set TRADEGUARD_AUDIT_WEBHOOK_URL) and point "
               "TRADEGUARD_AUDIT_CHECKPOINT_FILE at a synced location" if settings.production
               else " (acceptable for the demo and development)"),
        )  # fmt: skip


def _memory_lock() -> Check:
    soft, _ = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    if soft == 0:
        return Check(
            "memory locking",
            "warn",
            "RLIMIT_MEMLOCK is 0: unlocked vault keys may be swapped to disk; set LimitMEMLOCK= "
            "in the systemd unit (64K is plenty)",
        )
    shown = "unlimited" if soft == resource.RLIM_INFINITY else f"{soft // 1024} KiB"
    return Check("memory locking", "pass", f"RLIMIT_MEMLOCK {shown}: unlocked keys stay in RAM")


def _redaction_guard() -> Check:
    if guards.ACCELERATED:
        return Check("log redaction", "pass", "guard phase in C (secrets/_guard.c)")
    return Check(
        "log redaction",
        "warn",
        "the C guard was not built (no compiler at install): every log line is still redacted, "
        "but redaction costs about twice as much per line; install gcc and the Python headers, "
        "then reinstall tradeguard",
    )


def _api(settings: Settings) -> Iterator[Check]:
    """What `tradeguard serve` would refuse, and account settings worth a second look."""
    try:
        check_setup(settings, settings.http_host)
        tls_options(settings)
    except TradeguardError as e:
        yield Check("API setup", "fail", e.message)
    else:
        yield Check(
            "API setup",
            "pass",
            f"{settings.http_host}:{settings.http_port} as {settings.public_url}",
        )
    if settings.breached_check == "off":
        yield Check(
            "breached passwords",
            "warn" if settings.production else "pass",
            "new passwords meet the common-password list only; if this host may reach "
            "api.pwnedpasswords.com, set TRADEGUARD_BREACHED_CHECK=fail-closed",
        )
    else:
        yield Check("breached passwords", "pass", f"checked ({settings.breached_check})")
    if settings.smtp_host is None:
        yield Check(
            "reset mail",
            "warn" if settings.production else "pass",
            "no TRADEGUARD_SMTP_HOST: password resets are accepted but no mail goes out",
        )
    else:
        yield Check("reset mail", "pass", f"via {settings.smtp_host}:{settings.smtp_port}")


def run_checks(
    *, cwd: Path | None = None, overrides: Mapping[str, object] | None = None
) -> list[Check]:
    """Every check, in the order a person fixes them."""
    cwd = cwd or Path.cwd()
    environ = os.environ
    production = environ.get(f"{ENV_PREFIX}ENV", "").strip().lower() == "production"
    checks = [_user(), _dotenv(cwd, production), *_secret_files(environ)]
    try:
        settings = load_settings(cwd=cwd, strict=False, **dict(overrides or {}))
    except TradeguardError as e:
        return [*checks, Check("settings", "fail", e.message)]
    checks.append(Check("settings", "pass", f"loaded (TRADEGUARD_ENV={settings.env})"))
    checks.extend(_production_rules(settings))
    checks.append(_data_dir(settings))
    checks.extend(_database(settings))
    checks.extend(_master_key(settings))
    checks.extend(_audit_key(settings))
    checks.extend(_api(settings))
    checks.append(_memory_lock())
    checks.append(_redaction_guard())
    return checks
