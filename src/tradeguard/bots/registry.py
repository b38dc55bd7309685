"""The bots of this installation: `bots create` copies a bot folder in, gives it a UUID, a
virtualenv with the SDK and its checked requirements, and a row in `bots`.

    <data dir>/bots/<uuid>/code/    the bot's files, as copied (read-only to the bot)
                          venv/    its virtualenv: the SDK and its requirements, nothing else
                          state/   0700, the only place the bot may write (`self.state`)
                          logs/    bot.log, written by the supervisor, redacted
    <runtime dir>/<uuid>/gateway.sock

A create that fails leaves nothing behind: no folder, no row.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import cast

import sqlalchemy as sa

from tradeguard.bots import packages, venvs
from tradeguard.bots.manifest import Manifest, check_bot_name, load_manifest, parse_manifest
from tradeguard.config import Settings
from tradeguard.core.clock import Clock, SystemClock
from tradeguard.core.errors import ConfigError, Conflict
from tradeguard.core.events import DomainEvent, EventName, EventSink
from tradeguard.core.permissions import create_private_dir
from tradeguard.store.engine import for_writing
from tradeguard.store.models import BotRow, Credential, User

__all__ = [
    "BotInfo",
    "BotPaths",
    "UnknownBot",
    "check_credential_unused",
    "create_bot",
    "find_bot",
    "list_bots",
    "owned_bot",
]

_BOTS = cast(sa.Table, BotRow.__table__)
MAX_FILES = 500
MAX_BYTES = 20 * 1024 * 1024
_SKIP = {"__pycache__", ".git", ".venv", "venv", ".mypy_cache", ".pytest_cache"}


class UnknownBot(ConfigError):
    pass


@dataclass(frozen=True)
class BotPaths:
    root: Path
    runtime: Path

    @classmethod
    def of(cls, settings: Settings, bot_id: str) -> BotPaths:
        return cls(settings.data_dir / "bots" / bot_id, settings.runtime_dir / bot_id)

    @property
    def code(self) -> Path:
        return self.root / "code"

    @property
    def venv(self) -> Path:
        return self.root / "venv"

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def socket(self) -> Path:
        return self.runtime / "gateway.sock"


@dataclass(frozen=True)
class BotInfo:
    id: str
    name: str
    user: str
    connection: str
    mode: str
    source: str
    created_at: datetime

    def paths(self, settings: Settings) -> BotPaths:
        return BotPaths.of(settings, self.id)

    def manifest(self, settings: Settings) -> Manifest:
        """The bot.toml as copied at create, with the name and connection it was created as."""
        manifest = load_manifest(self.paths(settings).code)
        raw = {
            "name": self.name,
            "connection": self.connection,
            "symbols": list(manifest.symbols),
            "timeframe": manifest.timeframe,
            "mode": self.mode,
            "params": dict(manifest.params),
            "risk": dict(manifest.risk),
        }
        return parse_manifest(raw, str(self.paths(settings).code / "bot.toml"))


def _info(row: sa.Row[tuple[object, ...]]) -> BotInfo:
    m = row._mapping
    return BotInfo(
        str(m["id"]),
        str(m["name"]),
        str(m["user_name"]),
        str(m["connection"]),
        str(m["mode"]),
        str(m["source"]),
        cast(datetime, m["created_at"]),
    )


def list_bots(db: sa.Engine, user: str | None = None) -> list[BotInfo]:
    """Every bot, or `user`'s only."""
    query = sa.select(_BOTS).order_by(_BOTS.c.name)
    if user is not None:
        query = query.where(_BOTS.c.user_name == user)
    with db.connect() as conn:
        return [_info(r) for r in conn.execute(query)]


def check_credential_unused(db: sa.Engine, user: str, credential: str) -> None:
    """Refuse (`Conflict`) while one of `user`'s bots trades with the credential named
    `credential`: removing it would leave the bot with no key. The API and the CLI both ask."""
    query = (
        sa.select(_BOTS.c.name)
        .where(_BOTS.c.user_name == user, _BOTS.c.connection == credential)
        .order_by(_BOTS.c.name)
    )
    with db.connect() as conn:
        bot = conn.execute(query).scalar()
    if bot is not None:
        raise Conflict(
            f"bot {bot} trades with credential {credential}; remove the bot or give it another "
            "connection first"
        )


def owned_bot(db: sa.Engine, bot_id: str, user: str) -> BotInfo:
    """`user`'s bot with this id: someone else's bot is as unknown as a missing one."""
    query = sa.select(_BOTS).where(_BOTS.c.id == bot_id, _BOTS.c.user_name == user)
    with db.connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        raise UnknownBot(f"no bot with id {bot_id!r}; GET /api/bots lists yours")
    return _info(row)


def find_bot(db: sa.Engine, name: str) -> BotInfo:
    with db.connect() as conn:
        row = conn.execute(sa.select(_BOTS).where(_BOTS.c.name == name)).first()
    if row is None:
        raise UnknownBot(f"no bot named {name!r}; `tradeguard bots list` shows them")
    return _info(row)


def _copy_code(source: Path, target: Path) -> None:
    """Regular files only (a symlink could point anywhere on the host), bounded in number and
    size; caches and virtualenvs are left behind."""
    files = [
        p
        for p in sorted(source.rglob("*"))
        if not any(part in _SKIP for part in p.relative_to(source).parts)
    ]
    if len(files) > MAX_FILES:
        raise ConfigError(f"{source} holds over {MAX_FILES} files; a bot folder is its code")
    total = 0
    for path in files:
        if path.is_symlink():
            raise ConfigError(f"{path} is a symlink; copy the file it points to into the folder")
        if path.is_file():
            total += path.stat().st_size
    if total > MAX_BYTES:
        raise ConfigError(f"{source} holds over {MAX_BYTES // 2**20} MiB; keep data out of it")
    target.mkdir(mode=0o700)
    for path in files:
        dest = target / path.relative_to(source)
        if path.is_dir():
            dest.mkdir(mode=0o700, exist_ok=True)
        elif path.is_file():
            shutil.copyfile(path, dest)
            dest.chmod(0o600)


def _check_owner(conn: sa.Connection, user: str, connection: str) -> None:
    user_id = conn.scalar(sa.select(User.id).where(User.name == user))
    if user_id is None:
        raise ConfigError(f"no user {user!r}; add one with `tradeguard users add NAME`")
    if connection == "paper":
        return
    found = conn.scalar(
        sa.select(Credential.id).where(Credential.user_id == user_id, Credential.name == connection)
    )
    if found is None:
        raise ConfigError(
            f"user {user} has no connection {connection!r}; use `paper` or add a credential "
            "with `tradeguard vault add`"
        )


def create_bot(
    db: sa.Engine,
    settings: Settings,
    source: Path,
    *,
    user: str,
    events: EventSink,
    name: str | None = None,
    connection: str | None = None,
    show: Callable[[str], None] | None = None,
    clock: Clock | None = None,
) -> BotInfo:
    """Copy the bot folder `source` in and set it up; `ConfigError` naming the problem."""
    clock = clock or SystemClock()
    if not (source / "bot.py").is_file():
        raise ConfigError(f"{source} has no bot.py; a bot folder needs bot.py and bot.toml")
    manifest = load_manifest(source)
    name = check_bot_name(name or manifest.name, "--name")
    connection = connection or manifest.connection
    if manifest.mode == "live":
        raise ConfigError(
            f"{source}/bot.toml says mode = live; a bot starts on paper and goes live only "
            "through `tradeguard bots promote`"
        )
    with db.connect() as conn:
        _check_owner(conn, user, connection)
        if conn.scalar(sa.select(_BOTS.c.id).where(_BOTS.c.name == name)) is not None:
            raise ConfigError(f"a bot named {name} exists; pick another --name")
    bot_id = str(uuid.uuid4())
    paths = BotPaths.of(settings, bot_id)
    if not paths.root.parent.exists():
        create_private_dir(paths.root.parent)
    paths.root.mkdir(mode=0o700)
    try:
        _copy_code(source, paths.code)
        paths.state.mkdir(mode=0o700)
        paths.logs.mkdir(mode=0o700)
        venvs.create_venv(paths.venv)
        venvs.install_sdk(paths.venv)
        plan = packages.plan_install(
            paths.code / "requirements.txt", settings=settings, events=events, bot=name
        )
        packages.install(plan, paths.venv, settings=settings, events=events, bot=name, show=show)
        now = clock.now()
        with for_writing(db.connect()) as conn, conn.begin():
            conn.execute(
                sa.insert(_BOTS).values(
                    id=bot_id,
                    name=name,
                    user_name=user,
                    connection=connection,
                    mode="paper",
                    source=str(source.resolve()),
                    created_at=now,
                )
            )
    except BaseException:
        shutil.rmtree(paths.root, ignore_errors=True)
        raise
    events.emit(
        DomainEvent(
            EventName.BOT_CREATED,
            now,
            "operator",
            bot_id,
            {"name": name, "user": user, "connection": connection},
        )
    )
    return find_bot(db, name)
