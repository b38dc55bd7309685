"""The bot process's entry point, inside the sandbox:

    python -I -m tradeguard.sdk.runner --socket PATH --token-fd N --bot-dir DIR \
        --state-dir DIR [--policy JSON]

In order: read the gateway token from the inherited descriptor (never argv or the environment),
confine the process (`confine.apply`: rlimits, then Landlock), and only then import the bot's
code, connect to the gateway and deliver events to the bot one at a time. An exception in a
callback ends the process with status 1 after `on_stop` (the supervisor decides on a restart);
SIGTERM or a `stop` event ends it with status 0.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import inspect
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from . import confine
from .bot import Bot
from .client import GatewayClient
from .types import Candle, Fill, Order

__all__ = ["call", "deliver", "load_bot_class", "main"]

log = logging.getLogger("tradeguard.sdk")


def _read_token(fd: int) -> str:
    with os.fdopen(fd, "rb", closefd=True) as pipe:
        token = pipe.read(256).decode("ascii").strip()
    if not token:
        raise SystemExit("no gateway token on the inherited descriptor")
    return token


def load_bot_class(bot_dir: Path) -> type[Bot]:
    """The one `Bot` subclass defined in `bot_dir/bot.py`."""
    path = bot_dir / "bot.py"
    sys.path.insert(0, str(bot_dir))
    spec = importlib.util.spec_from_file_location("bot", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bot"] = module
    spec.loader.exec_module(module)
    found = [
        value
        for value in vars(module).values()
        if inspect.isclass(value)
        and issubclass(value, Bot)
        and value is not Bot
        and value.__module__ == "bot"
    ]
    if len(found) != 1:
        names = ", ".join(c.__name__ for c in found) or "none"
        raise SystemExit(f"{path} must define exactly one Bot subclass; found {names}")
    return found[0]


async def call(callback: Any, *args: Any) -> None:
    """Call a bot callback, sync or async."""
    result = callback(*args)
    if inspect.isawaitable(result):
        await result


async def deliver(bot: Bot, event: dict[str, Any]) -> bool:
    """Hand one gateway event to the bot (the clock first moves to its time); False once the
    bot is to stop. A backtest delivers fills and order updates with this too."""
    kind = event.get("event")
    if "at_ms" in event:
        bot.clock._advance(int(event["at_ms"]))
    if kind == "candle":
        await call(bot.on_candle, Candle.from_wire(event["candle"]))
    elif kind == "fill":
        await call(bot.on_fill, Fill.from_wire(event["fill"]))
    elif kind == "order":
        await call(bot.on_order_update, Order.from_wire(event["order"]))
    elif kind in ("stop", "closed"):
        log.info("stopping: %s", event.get("reason", kind))
        return False
    return True


async def _dispatch(bot: Bot, client: GatewayClient) -> None:
    await call(bot.on_start)
    while True:
        event = await client.events.get()
        if not await deliver(bot, event):
            return
        if event.get("event") == "candle" and bot.clock.simulated:
            # a replay waits for this before its next candle
            await client.request("ready", at_ms=int(event["at_ms"]))


async def _run(args: argparse.Namespace, token: str) -> int:
    bot_class = load_bot_class(Path(args.bot_dir))
    client, hello = await GatewayClient.connect(args.socket, token)
    del token
    bot = bot_class()
    bot._attach(hello, client, Path(args.state_dir))
    task = asyncio.create_task(_dispatch(bot, client))
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    status = 0
    try:
        await task
    except asyncio.CancelledError:
        log.info("stopping: SIGTERM")
    except Exception:
        log.exception("the bot raised; stopping")
        status = 1
    try:
        await call(bot.on_stop)
    except Exception:
        log.exception("on_stop raised")
        status = 1
    await client.close()
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tradeguard.sdk.runner")
    parser.add_argument("--socket", required=True)
    parser.add_argument("--token-fd", type=int, required=True)
    parser.add_argument("--bot-dir", required=True)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--policy", default="{}", help="confinement policy (JSON)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    token = _read_token(args.token_fd)
    confine.apply(json.loads(args.policy))
    return asyncio.run(_run(args, token))


if __name__ == "__main__":
    sys.exit(main())
