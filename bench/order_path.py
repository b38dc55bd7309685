"""The order path as a bot sees it: bot (SDK `GatewayClient`) -> Unix socket -> gateway (frame
checks) -> risk `pre_trade` -> journal -> durable `order.intent` audit append -> paper venue
ack, beside a bare echo over the same kind of socket with the same framing, in one run.

Set-up: a migrated SQLite store in a temporary directory (WAL, synchronous=FULL), an `AuditLog`
with generated keys and the default group-commit window, `RiskEngine` (system clock, the
SqlRiskStore journal) with one bot whose limits never deny here (no notional caps, 10**9 submits
a minute, 10**6 open orders, 50% price band), a `PaperVenue` with ETH/BTC (sample candles) and
10**6 BTC, a `GuardedVenue` with journal and audit, a `Desk` and the bot's `BotGateway`. The
order: a limit buy of 0.01 ETH/BTC 30% under the mark, so it rests at the venue (nothing fills,
no fill processing in the figures). The run raises if any order is denied, and checks that the
venue and the audit log each hold one order / one intent per order placed.

Processes: the server (gateway, echo server, database, the audit writer thread and the group
writer thread that commits the journal's and the paper venue's writes) runs in this process on
one event loop; the bot is a separate process (multiprocessing, spawn) on its own
event loop, so client and server do not share a core's loop. The token reaches the child
through a pipe, not argv or the environment; `is_bot_process` accepts the child's pid only.

Figures (`time.perf_counter_ns` in the bot process, around `await connection.limit(...)`):
- echo: a server that reads each frame, decodes it, and answers with an order reply of the
  same shape the gateway sends (so the SDK parses the same reply); one in flight p50/p99, and
  throughput with 64 in flight.
- gateway, one in flight: each placement timed, then canceled (untimed) before the next, so
  the bot has no open order when it places: p50/p99 against the targets 200 us / 1,000 us.
- gateway, 64 in flight: 64 tasks place orders until a batch of `--batch` is placed (timed),
  then cancel them all (untimed) and start the next batch; throughput = orders placed / time
  spent placing, against the target 10,000 orders/s. Open orders grow from 0 to `--batch`
  within a batch: the risk engine's balance check sums the account's open orders.
- overhead: gateway minus echo, per order (p50) and in throughput.

`--quick` for a smoke run, `--profile` to print the server's cProfile (top 25 by own time,
the event-loop thread; the audit and group writer threads are not in it) to stderr. Prints one
JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import multiprocessing
import os
import pstats
import resource
import secrets
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from _report import emit  # bench/ is on sys.path: the scripts run from there
from tradeguard.audit import AuditKeys, AuditLog, tables
from tradeguard.bots.sdk import Connection, OrderRejected, wire
from tradeguard.bots.sdk.client import GatewayClient
from tradeguard.core.clock import SystemClock
from tradeguard.core.events import EventName
from tradeguard.crypto import DataKey, Keyring
from tradeguard.gateway.desk import BotIdentity, Desk
from tradeguard.gateway.server import MAX_IN_FLIGHT, BotGateway
from tradeguard.marketdata import load_sample
from tradeguard.risk import RiskEngine, SqlRiskStore
from tradeguard.risk.guard import GuardedVenue
from tradeguard.risk.intents import OrderIntent
from tradeguard.risk.limits import bot_limits_from
from tradeguard.risk.store import StoredOrder
from tradeguard.secrets.secret import Secret
from tradeguard.store import create_engine, resolve_database, upgrade
from tradeguard.store.engine import for_writing
from tradeguard.venues.client_ids import new_client_order_id
from tradeguard.venues.paper import PaperConfig, PaperVenue, market_from_candles

TARGET_P50_US = 200
TARGET_P99_US = 1_000
TARGET_ORDERS_PER_S = 10_000
IN_FLIGHT = 64
SYMBOL, ACCOUNT, BOT, CONNECTION = "ETH/BTC", "paper:bench", "bench-bot", "paper"
AMOUNT, PRICE = "0.01", "0.07"  # the mark is ~0.0995: the buy rests
D = Decimal

# Quoted, not measured here: /work/shared/BENCHMARKS.md, "Order path" (same machine kind).
PEER = {
    "source": "/work/shared/BENCHMARKS.md (quoted constants, not measured in this run)",
    "stdlib_socket_gateway_prototype": {
        "path": "process -> Unix socket -> gateway (JSON, Decimal checks, SHA-256 chained audit)",
        "one_in_flight": {"orders_per_s": 7_700, "p50_us": 98, "p99_us": 292},
        "in_flight_64_orders_per_s": 14_300,
        "fsync_per_audit_record_orders_per_s": {"sequential": 3_200, "pipelined": 4_600},
    },
    "nautilus_in_process_orders_per_s": [16_200, 16_800],
}


# -- the bot process ---------------------------------------------------------------------------


def _stats(samples_ns: list[int]) -> dict[str, float]:
    ordered = sorted(samples_ns)
    n = len(ordered)

    def us(q: float) -> float:
        return round(ordered[min(n - 1, int(q * n))] / 1000, 1)

    return {
        "orders": n,
        "mean_us": round(sum(ordered) / n / 1000, 1),
        "p50_us": us(0.50),
        "p90_us": us(0.90),
        "p99_us": us(0.99),
        "max_us": round(ordered[-1] / 1000, 1),
    }


async def _one_in_flight(
    paper: Connection, orders: int, warmup: int, cancel: bool
) -> dict[str, float]:
    pc = time.perf_counter_ns
    samples: list[int] = []
    for k in range(warmup + orders):
        t0 = pc()
        order = await paper.limit(SYMBOL, "buy", AMOUNT, PRICE)
        t1 = pc()
        if k >= warmup:
            samples.append(t1 - t0)
        if cancel:
            await paper.cancel(order)
    return _stats(samples)


async def _in_flight(paper: Connection, orders: int, batch: int, cancel: bool) -> dict[str, Any]:
    """IN_FLIGHT tasks place orders until `batch` are placed (timed); then, untimed, every one
    is canceled; until `orders` are placed."""
    placed_total, placing_s, batches = 0, 0.0, 0
    while placed_total < orders:
        size = min(batch, orders - placed_total)
        queue = iter(range(size))
        placed: list[str] = []

        async def place() -> None:
            for _ in queue:  # noqa: B023 - the batch's own iterator, shared by its tasks
                order = await paper.limit(SYMBOL, "buy", AMOUNT, PRICE)
                placed.append(order.client_order_id)  # noqa: B023

        start = time.perf_counter()
        await asyncio.gather(*(place() for _ in range(IN_FLIGHT)))
        placing_s += time.perf_counter() - start
        placed_total += len(placed)
        batches += 1
        if cancel:
            ids = iter(placed)

            async def drain() -> None:
                for cid in ids:  # noqa: B023
                    await paper.cancel(cid)

            await asyncio.gather(*(drain() for _ in range(IN_FLIGHT)))
    return {
        "orders": placed_total,
        "in_flight": IN_FLIGHT,
        "batch": batch,
        "batches": batches,
        "placing_s": round(placing_s, 3),
        "orders_per_s": round(placed_total / placing_s),
    }


async def _bot(pipe: Pipe, args: dict[str, Any]) -> dict[str, Any]:
    token: str = pipe.recv()
    results: dict[str, Any] = {"denied": 0}
    for name, path, cancel in (
        ("echo", args["echo"], False),
        ("gateway", args["gateway"], True),
    ):
        pipe.send(("start", name))
        pipe.recv()  # the server is ready (profiling, if asked)
        client, hello = await GatewayClient.connect(path, token)
        [info] = hello["connections"]
        paper = Connection(client, info["name"], info["venue"], info["key"])
        try:
            one = await _one_in_flight(paper, args["orders"], args["warmup"], cancel)
            many = await _in_flight(paper, args["orders_64"], args["batch"], cancel)
        except OrderRejected as denied:
            results["denied"] += 1
            results["denial"] = f"{denied.code}: {denied.message}"
            raise
        finally:
            await client.close()
        results[name] = {"one_in_flight": one, "in_flight_64": many}
        pipe.send(("done", name))
        pipe.recv()
    results["bot_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return results


def bot_process(pipe: Pipe, args: dict[str, Any]) -> None:
    """The bot: its own process and event loop; results go back through the pipe."""
    try:
        pipe.send(("result", asyncio.run(_bot(pipe, args))))
    except Exception as error:
        pipe.send(("error", f"{type(error).__name__}: {error}"))
        raise


# -- the server process ------------------------------------------------------------------------


def _echo_order(request: dict[str, Any]) -> dict[str, Any]:
    return {
        "connection": request.get("connection"),
        "client_order_id": "0x" + "0" * 32,
        "symbol": request.get("symbol"),
        "side": request.get("side"),
        "type": request.get("type"),
        "status": "open",
        "amount": request.get("amount"),
        "filled": "0",
        "price": request.get("price"),
        "average": None,
    }


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, hello: Any) -> None:
    """The baseline: read a frame, decode it, answer with an order reply of the gateway's
    shape. No checks, no risk, no audit, no venue."""
    try:
        while (body := await wire.read_frame(reader)) is not None:
            request = wire.decode(body)
            if request.get("op") == "hello":
                writer.write(wire.encode({"id": 0, "ok": True, **hello}))
            else:
                reply = {"id": request["id"], "ok": True, "order": _echo_order(request)}
                writer.write(wire.encode(reply))
    except (wire.FrameError, OSError):
        pass
    finally:
        writer.close()


def _keys() -> AuditKeys:
    keyring = Keyring({1: DataKey.generate()}, 1, "order_path bench audit key")
    try:
        return AuditKeys(keyring)
    finally:
        keyring.wipe()


class Server:
    """The desk of the module docstring, on a fresh SQLite store under `root`."""

    def __init__(self, root: Path) -> None:
        data = root / "data"
        data.mkdir(mode=0o700)
        target = resolve_database(None, data, production=False)
        self.db = create_engine(target)
        upgrade(self.db, target)
        self.clock = SystemClock()
        self.audit = AuditLog(self.db, _keys(), clock=self.clock)
        journal = SqlRiskStore(self.db)
        self.engine = RiskEngine(clock=self.clock, events=self.audit, store=journal)
        candles = load_sample("ETH_BTC-5m.csv").candles[:5]
        markets = {SYMBOL: market_from_candles(SYMBOL, candles)}
        self.venue = PaperVenue(
            self.db,
            account="bench",
            markets=markets,
            clock=self.clock,
            config=PaperConfig(starting_balances={"BTC": D(10**6)}),
        )
        asyncio.run(self.venue.on_candle(SYMBOL, candles[0]))
        self.engine.add_account(ACCOUNT, markets, asyncio.run(self.venue.fetch_balance()))
        limits = bot_limits_from(
            {
                "capital": "1000000",
                "symbols": [SYMBOL],
                "max_open_orders": 10**6,
                "max_submits_per_minute": 10**9,
                "price_band_pct": 50,
                "blocked_zones": [],
            }
        )
        self.engine.register_bot(BOT, user="bench", account=ACCOUNT, limits=limits)
        self.engine.on_close(ACCOUNT, SYMBOL, candles[0].close)
        self.guard = GuardedVenue(
            self.engine, self.venue, account=ACCOUNT, journal=journal, audit=self.audit
        )
        self.desk = Desk(self.engine)
        self.desk.add_account(ACCOUNT, self.guard, venue="paper", key="paper***")
        self.identity = BotIdentity(
            BOT, str(uuid.uuid4()), "bench", "paper", (SYMBOL,), "5m", {CONNECTION: ACCOUNT}
        )

    async def stages(self, n: int) -> dict[str, dict[str, Any]]:
        """Each step of `GuardedVenue.submit` on its own, in this process (no socket), per call
        in microseconds: where the gateway's time goes. Every order is canceled afterwards."""
        pc, journal = time.perf_counter_ns, SqlRiskStore(self.db)
        times: dict[str, list[int]] = {
            k: [] for k in ("pre_trade", "reload_states", "journal", "audit_append", "venue")
        }
        commits: list[int] = []  # the floor: one bare durable commit on this disk
        with self.db.begin() as conn:
            conn.execute(sa.text("CREATE TABLE bench_commit (n INTEGER)"))
        for i in range(n):
            t = pc()
            with for_writing(self.db.connect()) as conn, conn.begin():
                conn.execute(sa.text("INSERT INTO bench_commit VALUES (:n)"), {"n": i})
            commits.append(pc() - t)
            intent = OrderIntent(new_client_order_id(), SYMBOL, "buy", "limit", D(AMOUNT), D(PRICE))
            t0 = pc()
            decision = self.engine.pre_trade(BOT, intent)
            t1 = pc()
            self.engine.reload_states()
            t2 = pc()
            cid = intent.client_order_id
            await journal.record_order_async(
                StoredOrder(cid, BOT, ACCOUNT, SYMBOL), self.clock.now()
            )
            t3 = pc()
            await self.audit.append_async(
                EventName.ORDER_INTENT, actor=f"bot:{BOT}", subject=cid, details={"bench": "x"}
            )
            t4 = pc()
            request = getattr(decision, "request", None)
            if request is None:
                raise RuntimeError(f"stage run: order denied: {decision}")
            await self.venue.create_order(request)
            t5 = pc()
            for key, took in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True):
                times[key].append(took)
            await self.venue.cancel_order(SYMBOL, client_order_id=cid)
            self.engine.order_ended(BOT, cid)
            await journal.forget_order_async(cid)
        times["durable_commit"] = commits
        out: dict[str, dict[str, Any]] = {}
        for key, samples in times.items():
            samples.sort()
            out[key] = {
                "p50_us": round(samples[len(samples) // 2] / 1000, 1),
                "p99_us": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))] / 1000, 1),
            }
        out["venue"]["what"] = (
            "PaperVenue.create_order: one SQLite write transaction, on the group writer thread"
        )
        out["journal"]["what"] = (
            "SqlRiskStore.record_order_async: one SQLite write transaction, on the group writer"
        )
        out["reload_states"]["what"] = "RiskEngine.reload_states: a read (submit does it twice)"
        out["durable_commit"]["what"] = (
            "a one-row INSERT committed on the event loop (BEGIN IMMEDIATE, synchronous=FULL: "
            "an fsync of the WAL): the floor of each of the 3 commits an order waits for"
        )
        return out

    def count(self, table: str, where: str = "") -> int:
        with self.db.connect() as conn:
            return int(conn.execute(sa.text(f"SELECT count(*) FROM {table} {where}")).scalar_one())  # noqa: S608

    def intents(self) -> int:
        entries = tables.entries
        with self.db.connect() as conn:
            query = sa.select(sa.func.count()).where(entries.c.event == "order.intent")
            return int(conn.execute(query).scalar_one())

    def close(self) -> None:
        self.audit.close()
        self.db.dispose()


async def _serve(
    server: Server, run_dir: Path, args: dict[str, Any], profile: bool
) -> tuple[dict[str, Any], cProfile.Profile | None]:
    token = Secret(secrets.token_hex(32))
    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe()
    paths = {"echo": run_dir / "echo.sock", "gateway": run_dir / "gw.sock"}
    child = ctx.Process(
        target=bot_process,
        args=(theirs, {**args, **{k: str(v) for k, v in paths.items()}}),
        name="order-path-bot",
    )
    gateway = BotGateway(
        server.identity,
        server.desk,
        path=paths["gateway"],
        token=token,
        is_bot_process=lambda pid: pid == child.pid,
        events=server.audit,
    )
    server.desk.add_bot(server.identity, gateway.deliver)
    await gateway.start()
    hello = server.desk.hello(server.identity)
    echo = await asyncio.start_unix_server(
        lambda r, w: _echo(r, w, hello), path=str(paths["echo"]), limit=wire.MAX_FRAME + 8
    )
    loop = asyncio.get_running_loop()
    profiler = cProfile.Profile() if profile else None
    child.start()
    try:
        with token.reveal_text() as text:
            ours.send(text)
        while True:
            kind, value = await loop.run_in_executor(None, ours.recv)
            if kind == "start":
                print(f"order_path: {value}", file=sys.stderr)
                if profiler is not None and value == "gateway":
                    profiler.enable()
                ours.send("go")
            elif kind == "done":
                if profiler is not None and value == "gateway":
                    profiler.disable()
                ours.send("next")
            elif kind == "result":
                return value, profiler
            else:
                raise RuntimeError(f"the bot process failed: {value}")
    finally:
        echo.close()
        await gateway.close()
        await loop.run_in_executor(None, child.join, 30)
        token.wipe()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=2_000, help="one-in-flight orders, each")
    parser.add_argument("--orders-64", type=int, default=5_120, help="orders with 64 in flight")
    parser.add_argument("--batch", type=int, default=640, help="orders placed before a drain")
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--stages", type=int, default=500, help="orders for the per-step run")
    parser.add_argument("--quick", action="store_true", help="a smoke run (a few hundred orders)")
    parser.add_argument("--profile", action="store_true", help="server cProfile to stderr")
    options = parser.parse_args()
    if options.quick:
        options.orders, options.orders_64, options.warmup = 300, 1_280, 50
        options.stages = 100
    began = time.perf_counter()
    load_at_start = round(os.getloadavg()[0], 2)
    args = {
        "orders": options.orders,
        "orders_64": options.orders_64,
        "batch": options.batch,
        "warmup": options.warmup,
    }
    with _temporary() as root:
        server = Server(root)
        try:
            stages = asyncio.run(server.stages(options.stages))
            measured, profiler = asyncio.run(_serve(server, root, args, options.profile))
            placed = options.warmup + options.orders + options.orders_64 + options.stages
            checks = {
                "denied": measured["denied"],
                "venue_orders": server.count("paper_orders"),
                "audit_intents": server.intents(),
                "expected_each": placed,
                "open_after_run": server.count("paper_orders", "WHERE status = 'open'"),
            }
        finally:
            server.close()
    if checks["denied"] or checks["venue_orders"] != placed or checks["audit_intents"] != placed:
        raise RuntimeError(f"not every order went the whole path: {checks}")
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
        print(out.getvalue(), file=sys.stderr)

    echo, gateway = measured["echo"], measured["gateway"]
    one, many = gateway["one_in_flight"], gateway["in_flight_64"]
    result = {
        "benchmark": "order_path",
        "mode": "quick" if options.quick else "full",
        "setup": {
            "processes": "bot (SDK GatewayClient) in a separate process (multiprocessing spawn); "
            "gateway, echo server, SQLite and the audit writer thread in this one",
            "store": "SQLite in a temporary directory (WAL, synchronous=FULL)",
            "audit": "AuditLog, default group-commit window (2 ms), order.intent committed "
            "before the venue is called",
            "order": f"limit buy {AMOUNT} {SYMBOL} at {PRICE} (~30% under the mark): rests",
            "one_in_flight": "each placement timed, then canceled untimed",
            "in_flight_64": f"batches of {options.batch} placed (timed), then canceled (untimed)",
            "max_in_flight_gateway": MAX_IN_FLIGHT,
            "load_avg_1m_at_start": load_at_start,
        },
        "echo": echo,
        "gateway": gateway,
        "overhead_vs_echo": {
            "one_in_flight_p50_us": round(one["p50_us"] - echo["one_in_flight"]["p50_us"], 1),
            "one_in_flight_p99_us": round(one["p99_us"] - echo["one_in_flight"]["p99_us"], 1),
            "in_flight_64_us_per_order": round(
                1e6 / many["orders_per_s"] - 1e6 / echo["in_flight_64"]["orders_per_s"], 1
            ),
            "throughput_ratio_echo_over_gateway": round(
                echo["in_flight_64"]["orders_per_s"] / many["orders_per_s"], 1
            ),
        },
        "gateway_steps_in_process": stages,
        "checks": checks,
        "targets": {
            "one_in_flight_p50_us": TARGET_P50_US,
            "one_in_flight_p99_us": TARGET_P99_US,
            "in_flight_64_orders_per_s": TARGET_ORDERS_PER_S,
        },
        "meets_target": {
            "p50": one["p50_us"] <= TARGET_P50_US,
            "p99": one["p99_us"] <= TARGET_P99_US,
            "throughput": many["orders_per_s"] >= TARGET_ORDERS_PER_S,
        },
        "postgresql": {"skipped": "not measured: SQLite only in this benchmark"},
        "peer": PEER,
        "bot_peak_rss_mb": measured["bot_peak_rss_mb"],
        "runtime_s": round(time.perf_counter() - began, 1),
        "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
    }
    emit(result)


@contextlib.contextmanager
def _temporary() -> Iterator[Path]:
    # short: the sockets live here too, and a Unix socket path stays under 108 bytes
    root = Path(tempfile.mkdtemp(dir="/tmp", prefix="tg-bench-"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
