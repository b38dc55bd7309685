"""`tradeguard bots create|list|run|start|stop|restart|status|logs` (`promote` is in risk.py).

`bots run` supervises one bot in the foreground: its gateway, its sandboxed process and a
replay of candles; `bots start` runs the same thing detached (its pid in status.json) and
`bots stop` ends it. Until `tradeguard serve` hosts bots, paper connections driven by replayed
candles are what `run` offers; live connections are refused with a message saying so.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Annotated

import sqlalchemy as sa
import typer
from rich.table import Table

from tradeguard.bots import control
from tradeguard.bots.registry import create_bot, find_bot, list_bots
from tradeguard.bots.runtime import BotRuntime
from tradeguard.cli.console import out
from tradeguard.cli.open_audit import opened_for_change
from tradeguard.cli.risk import bots_app
from tradeguard.core.errors import ConfigError
from tradeguard.vault.users import all_users

__all__ = ["bots_app"]

BotArg = Annotated[str, typer.Argument(help="The bot's name (`tradeguard bots list`).")]
ReplayOpt = Annotated[
    list[str],
    typer.Option(
        "--replay",
        help="Candles to replay: a .csv/.parquet file named like ETH_BTC-5m.csv, or "
        "sample:NAME for a bundled one (sample:ETH_BTC-5m.csv). Once per symbol.",
    ),
]
SpeedOpt = Annotated[
    float, typer.Option("--speed", min=0, help="0: as fast as the bot keeps up; 60: 1 h/min.")
]


_opened = opened_for_change
ACTOR = "operator"


def _default_user(db: sa.Engine) -> str:
    with db.connect() as conn:
        names = [u.name for u in all_users(conn)]
    if len(names) != 1:
        raise ConfigError("say whose bot this is with --user (`tradeguard users list`)")
    return names[0]


@bots_app.command("create")
def create(
    source: Annotated[Path, typer.Option("--from", help="The bot folder (bot.py, bot.toml).")],
    connection: Annotated[
        str | None, typer.Option(help="A credential's name, or paper (default: bot.toml's).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Default: bot.toml's name.")] = None,
    user: Annotated[str | None, typer.Option(help="Whose bot; default: the only user.")] = None,
) -> None:
    """Copy a bot folder in: its own UUID, state dir and virtualenv, requirements checked."""
    with _opened() as (settings, db, audit):
        owner = user or _default_user(db)
        info = create_bot(
            db,
            settings,
            source,
            user=owner,
            events=audit,
            name=name,
            connection=connection,
            show=lambda line: out.print(line, markup=False),
        )
    out.print(
        f"created bot {info.name} ({info.id}) for {info.user} on {info.connection}; "
        f"start it with `tradeguard bots run {info.name} --replay sample:ETH_BTC-5m.csv`",
        markup=False,
    )


@bots_app.command("list")
def list_() -> None:
    """Every bot, with its state."""
    with _opened() as (settings, db, _audit):
        bots = list_bots(db)
        table = Table("name", "id", "user", "connection", "mode", "state")
        for info in bots:
            state = str(control.read_status(settings, info).get("state"))
            table.add_row(info.name, info.id, info.user, info.connection, info.mode, state)
    out.print(table if bots else "no bots yet: `tradeguard bots create --from FOLDER`")


@bots_app.command("run")
def run(bot: BotArg, replay: ReplayOpt = [], speed: SpeedOpt = 0.0) -> None:  # noqa: B006
    """Run a bot in the foreground until the replay ends or Ctrl-C / SIGTERM."""
    candles = control.replay_candles(replay)
    with _opened() as (settings, db, audit):
        info = find_bot(db, bot)
        runtime = BotRuntime(settings, db, audit, info, replay=candles, speed=speed)
        code = asyncio.run(_run(runtime))
    out.print(f"bot {bot} stopped (exit {code}); logs: {info.paths(settings).logs / 'bot.log'}")
    raise typer.Exit(code)


async def _run(runtime: BotRuntime) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return await runtime.run(stop)


@bots_app.command("start")
def start(bot: BotArg, replay: ReplayOpt = [], speed: SpeedOpt = 0.0) -> None:  # noqa: B006
    """`bots run` in the background; `bots status` and `bots stop` find it."""
    with _opened() as (settings, db, audit):
        info = find_bot(db, bot)
        pid = control.start(settings, info, replay, speed, events=audit, actor=ACTOR)
    out.print(f"bot {bot} starting (supervisor pid {pid}); `tradeguard bots status {bot}`")


@bots_app.command("stop")
def stop(bot: BotArg) -> None:
    """Stop a bot started with `bots start`: it gets SIGTERM (its on_stop runs)."""
    with _opened() as (settings, db, audit):
        info = find_bot(db, bot)
        stopped = control.stop(settings, info, events=audit, actor=ACTOR)
    out.print(f"bot {bot} {'stopped' if stopped else 'is not running'}.", markup=False)


@bots_app.command("restart")
def restart(bot: BotArg) -> None:
    """Stop, then start again with the replay it was started with."""
    with _opened() as (settings, db, _audit):
        replay, speed = control.last_run(settings, find_bot(db, bot))
    stop(bot)
    start(bot, replay, speed)


@bots_app.command("status")
def status(bot: BotArg) -> None:
    """State, process, restarts, memory and CPU, requests answered, trading state."""
    with _opened() as (settings, db, _audit):
        info = find_bot(db, bot)
        current = control.read_status(settings, info)
    table = Table("", "", title=f"bot {info.name}", show_header=False)
    for key in ("state", "pid", "restarts", "last_exit", "connected", "requests", "trading"):
        table.add_row(key, str(current.get(key, "")))
    rss, cpu = current.get("rss_bytes"), current.get("cpu_seconds")
    table.add_row("memory", f"{rss / 2**20:.1f} MiB" if isinstance(rss, int) else "")
    table.add_row("cpu", f"{cpu:.2f} s" if isinstance(cpu, float | int) else "")
    out.print(table)


@bots_app.command("logs")
def logs(
    bot: BotArg,
    lines: Annotated[int, typer.Option("-n", "--lines", min=1, max=100_000)] = 50,
) -> None:
    """The last lines of the bot's log (redacted when written)."""
    with _opened() as (settings, db, _audit):
        info = find_bot(db, bot)
    for line in control.tail_log(info.paths(settings).logs / "bot.log", lines):
        out.print(line, markup=False, highlight=False)
