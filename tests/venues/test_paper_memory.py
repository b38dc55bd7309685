"""The paper venue in memory (for backtests) behaves exactly as the paper venue in the database.

Each test drives a `PaperVenue.in_memory` and a `PaperVenue` on a migrated SQLite file with the
same calls and compares everything they answer: orders, fills, balances, and the type, message
and code of every refusal. The replay runs thousands of real ETH/BTC candles from the bundled
sample with a scripted strategy.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from tests.venues.test_paper import CONFIG, ETH_USDT, STEP, SYMBOL, T0, D, candle, cid, run

from tradeguard.core.clock import ManualClock
from tradeguard.core.errors import InsufficientFunds, InvalidOrder, TradeguardError, VenueRejected
from tradeguard.marketdata import load_sample
from tradeguard.marketdata.candles import Candle, Timeframe
from tradeguard.store import DatabaseTarget, create_engine, resolve_database, upgrade
from tradeguard.venues import (
    BalanceLine,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)
from tradeguard.venues.paper import MemoryBook, PaperConfig, PaperVenue, market_from_candles
from tradeguard.venues.paper import venue as venue_module
from tradeguard.venues.paper.engine import Ledger

FIVE_MINUTES = Timeframe.parse("5m")

Maker = Callable[..., PaperVenue]


def sqlite_engine(directory: Path) -> sa.Engine:
    """A migrated SQLite database in `directory`, as the store builds one."""
    directory.mkdir(mode=0o700)
    target: DatabaseTarget = resolve_database(None, directory, production=False)
    engine = create_engine(target)
    upgrade(engine, target)
    return engine


@pytest.fixture
def makers(tmp_path: Path) -> dict[str, Maker]:
    """Both ways to build a paper venue: in the database (a fresh SQLite file) and in memory."""
    engine = sqlite_engine(tmp_path / "data")

    def sql(**kw: Any) -> PaperVenue:
        return PaperVenue(engine, **kw)

    return {"sql": sql, "memory": PaperVenue.in_memory}


class Transcript:
    """Everything a venue answered, in order: results, or a refusal's type, message and code.
    A label said again is numbered: `order 2`, `order 2 #2`."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, Any]] = []
        self.said: dict[str, int] = {}

    async def __call__(self, label: str, call: Awaitable[Any] | Callable[[], Any]) -> Any:
        self.said[label] = self.said.get(label, 0) + 1
        if self.said[label] > 1:
            label = f"{label} #{self.said[label]}"
        try:
            result = await call if inspect.isawaitable(call) else call()
        except TradeguardError as e:
            self.lines.append((label, (type(e).__name__, e.message, getattr(e, "code", None))))
            return None
        self.lines.append((label, result))
        return result


async def scripted(venue: PaperVenue, clock: ManualClock) -> list[tuple[str, Any]]:
    """Every kind of order and outcome, each refusal, retries and stale candles."""
    say = Transcript()
    i = 0

    async def feed(o: str, h: str, low: str, c: str) -> None:
        nonlocal i
        clock.advance(STEP / 1000)
        await say(f"candle {i}", venue.on_candle(SYMBOL, candle(i, o, h, low, c)))
        i += 1

    def order(n: int, side: Side, type_: OrderType, amount: str, **kw: Any) -> Any:
        for name in ("price", "stop_price"):
            if name in kw:
                kw[name] = D(kw[name])
        request = OrderRequest(cid(n), SYMBOL, side, type_, D(amount), **kw)
        return say(f"order {n}", venue.create_order(request))

    async def state(label: str) -> None:
        await say(f"{label}: balance", venue.fetch_balance())
        await say(f"{label}: open", venue.fetch_open_orders())
        await say(f"{label}: open {SYMBOL}", venue.fetch_open_orders(SYMBOL))
        await say(f"{label}: trades", venue.fetch_my_trades(SYMBOL))

    await state("start")
    await order(1, Side.BUY, OrderType.MARKET, "1")  # no price yet: refused
    await feed("2000", "2001", "1999", "2000")
    # A market buy, a resting limit buy, a sell stop, a stop limit, an IOC that will not cross.
    await order(1, Side.BUY, OrderType.MARKET, "1.5")
    await order(2, Side.BUY, OrderType.LIMIT, "1", price="1950")
    await order(3, Side.SELL, OrderType.STOP_MARKET, "0.5", stop_price="1900")
    await order(4, Side.BUY, OrderType.STOP_LIMIT, "0.2", stop_price="2100", price="2105")
    await order(5, Side.BUY, OrderType.LIMIT, "0.1", price="1900", time_in_force=TimeInForce.IOC)
    await order(6, Side.BUY, OrderType.LIMIT, "0.1", price="1800")  # canceled below
    await state("accepted")
    # Refusals: funds, a post-only that would take, a stop through the market, the tick.
    await order(7, Side.BUY, OrderType.LIMIT, "50", price="2000")
    await order(8, Side.SELL, OrderType.LIMIT, "9", price="2100")
    await order(9, Side.BUY, OrderType.LIMIT, "1", price="2001",
                time_in_force=TimeInForce.POST_ONLY)  # fmt: skip
    await order(10, Side.SELL, OrderType.STOP_MARKET, "1", stop_price="2001")
    await order(11, Side.BUY, OrderType.LIMIT, "1", price="1900.001")
    await order(12, Side.SELL, OrderType.MARKET, "1", reduce_only=True)
    # A retry of the same request returns the order; the same id for another order is refused.
    clock.advance(7)
    await order(2, Side.BUY, OrderType.LIMIT, "1", price="1950")
    await order(2, Side.BUY, OrderType.LIMIT, "2", price="1950")
    # The cancel releases its hold; a second cancel and unknown orders are refused.
    await say("cancel 6", venue.cancel_order(SYMBOL, client_order_id=cid(6)))
    await say("cancel 6 again", venue.cancel_order(SYMBOL, client_order_id=cid(6)))
    await say("cancel unknown", venue.cancel_order(SYMBOL, venue_order_id="PO0000000099"))
    await say("fetch two ids", venue.fetch_order(SYMBOL))
    await say("fetch other symbol", venue.fetch_order("BTC/USDT", client_order_id=cid(2)))
    await state("canceled")
    # The market buy fills, the IOC expires, the limit rests (touched, not traded through).
    await feed("2010", "2020", "1950", "2015")
    await state("first fills")
    # A candle older than the last, and the same candle again: both skipped.
    await say("stale", venue.on_candle(SYMBOL, candle(0, "100", "100", "100", "100")))
    await say("repeat", venue.on_candle(SYMBOL, candle(i - 1, "1", "9000", "1", "1")))
    await say("last candle", lambda: venue.last_candle(SYMBOL))
    await state("after stale")
    # Trades through the limit and the sell stop; the stop limit triggers and rests.
    await feed("1960", "1970", "1890", "1900")
    await feed("2150", "2160", "2140", "2150")
    await feed("2140", "2145", "2110", "2120")
    await order(2, Side.BUY, OrderType.LIMIT, "1", price="1950")  # a retry after the fill
    await say("inconsistent", venue.on_candle(SYMBOL, candle(i, "10", "9", "8", "10")))
    await say("unknown market", venue.on_candle("BTC/USDT", candle(i, "1", "1", "1", "1")))
    await state("end")
    for n in range(1, 13):
        await say(f"fetch {n}", venue.fetch_order(SYMBOL, client_order_id=cid(n)))
    second = (await venue.fetch_my_trades(SYMBOL))[1]
    since = int(second.at.timestamp() * 1000)  # exactly a fill's time: it is included
    await say("trades since", venue.fetch_my_trades(SYMBOL, since_ms=since, limit=1))
    await say("trades last", venue.fetch_my_trades(SYMBOL, limit=2))
    await say("ohlcv", venue.fetch_ohlcv(SYMBOL, FIVE_MINUTES, limit=3))
    await say("ohlcv since", venue.fetch_ohlcv(SYMBOL, FIVE_MINUTES, since_ms=T0 + STEP))
    await say("ohlcv 1h", venue.fetch_ohlcv(SYMBOL, Timeframe.parse("1h")))
    await say("permissions", venue.check_permissions())
    await venue.close()
    await say("closed", venue.fetch_balance())
    await say("closed candle", venue.on_candle(SYMBOL, candle(i, "1", "1", "1", "1")))
    return say.lines


def test_the_scripted_sequence_gives_the_same_answers_in_memory_and_in_the_database(
    makers: dict[str, Maker],
) -> None:
    transcripts = {}
    for kind, make in makers.items():
        clock = ManualClock(datetime.fromtimestamp(T0 / 1000, UTC))
        venue = make(
            account="alice",
            markets={SYMBOL: ETH_USDT},
            config=CONFIG,
            clock=clock,
            timeframe=FIVE_MINUTES,
        )
        transcripts[kind] = run(scripted(venue, clock))
    sql, memory = transcripts["sql"], transcripts["memory"]
    assert [label for label, _ in memory] == [label for label, _ in sql]
    for (label, got), (_, expected) in zip(memory, sql, strict=True):
        assert got == expected, label
    # The script reached every outcome it means to compare.
    answers = dict(memory)
    refusals = {e[0] for e in answers.values() if isinstance(e, tuple) and len(e) == 3}
    assert refusals == {
        "InsufficientFunds",
        "InvalidOrder",
        "MarketDataError",
        "OrderNotFound",
        "VenueRejected",
    }
    assert answers["order 2 #2"] == answers["order 2"]  # the retry: the same order
    assert answers["order 2 #3"][2] == "duplicate_client_order_id"
    assert answers["order 2 #4"].status is OrderStatus.FILLED  # a retry after the fill
    assert answers["stale"] == answers["repeat"] == []
    statuses = {answers[f"fetch {n}"].status for n in (1, 2, 3, 4, 5, 6)}
    assert statuses == {
        OrderStatus.FILLED,
        OrderStatus.OPEN,
        OrderStatus.EXPIRED,
        OrderStatus.CANCELED,
    }
    assert [t.trade_id for t in answers["trades since"]] == ["PT0000000002"]
    trades = answers["end: trades"]
    assert [t.trade_id for t in trades] == ["PT0000000001", "PT0000000002", "PT0000000003"]
    assert {t.liquidity for t in trades} == {"maker", "taker"}
    assert answers["closed"] == ("VenueRejected", "paper: this venue was closed; open a new "
                                 "PaperVenue", None)  # fmt: skip


def test_times_read_back_in_utc_in_memory_as_in_the_database(makers: dict[str, Maker]) -> None:
    """The database hands back aware UTC times whatever zone the clock used; memory too."""
    zone = timezone(timedelta(hours=2))
    answers = {}
    for kind, make in makers.items():
        clock = ManualClock(datetime.fromtimestamp(T0 / 1000, zone))
        venue = make(account="zoned", markets={SYMBOL: ETH_USDT}, config=CONFIG, clock=clock)
        run(venue.on_candle(SYMBOL, candle(0, "2000", "2001", "1999", "2000")))
        run(venue.create_order(OrderRequest(cid(1), SYMBOL, Side.SELL, OrderType.MARKET, D(1))))
        run(venue.on_candle(SYMBOL, candle(1, "2000", "2001", "1999", "2000")))
        order = run(venue.fetch_order(SYMBOL, client_order_id=cid(1)))
        (trade,) = run(venue.fetch_my_trades(SYMBOL))
        assert order.created_at.tzinfo is UTC
        assert trade.at.tzinfo is UTC
        answers[kind] = (order, trade)
    assert answers["memory"] == answers["sql"]


def test_a_candle_that_fails_midway_changes_nothing_in_memory_as_in_the_database(
    makers: dict[str, Maker], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A transaction is all or nothing: the database rolls back, the memory book undoes."""
    real = venue_module.evaluate
    for kind, make in makers.items():
        clock = ManualClock(datetime.fromtimestamp(T0 / 1000, UTC))
        venue = make(account="undo", markets={SYMBOL: ETH_USDT}, config=CONFIG, clock=clock)
        run(venue.on_candle(SYMBOL, candle(0, "2000", "2001", "1999", "2000")))
        for n in (1, 2):
            run(venue.create_order(OrderRequest(cid(n), SYMBOL, Side.BUY, OrderType.MARKET, D(1))))
        before = (
            run(venue.fetch_balance()),
            run(venue.fetch_open_orders()),
            venue.last_candle(SYMBOL),
        )
        calls = 0

        def failing(*args: Any) -> Any:
            nonlocal calls
            calls += 1
            if calls == 2:  # after the first order filled: its trade and balances are written
                raise RuntimeError("boom")
            return real(*args)

        monkeypatch.setattr(venue_module, "evaluate", failing)
        with pytest.raises(RuntimeError, match="boom"):
            run(venue.on_candle(SYMBOL, candle(1, "2010", "2020", "2000", "2015")))
        monkeypatch.setattr(venue_module, "evaluate", real)
        after = (
            run(venue.fetch_balance()),
            run(venue.fetch_open_orders()),
            venue.last_candle(SYMBOL),
        )
        assert after == before, kind
        assert run(venue.fetch_my_trades(SYMBOL)) == [], kind
        fills = run(venue.on_candle(SYMBOL, candle(1, "2010", "2020", "2000", "2015")))
        assert [t.trade_id for t in fills] == ["PT0000000001", "PT0000000002"], kind


def _write_then_fail(book: MemoryBook) -> None:
    with book.writing() as txn:
        ledger = Ledger(txn.ledger_lines(), "paper")
        ledger.lock("USDT", D(40))
        ledger.credit("BTC", D(1))
        txn.save_ledger(ledger)
        txn.save_mark(SYMBOL, candle(0, "1", "1", "1", "1"))
        assert txn.candle_mark(SYMBOL) is not None  # a transaction reads its own writes
        assert txn.ledger_lines()["BTC"] == BalanceLine(D(1), D(0))
        raise KeyError("boom")


def test_the_memory_book_undoes_a_failed_transaction_and_refuses_nesting() -> None:
    book = MemoryBook("undo", {"USDT": D(100), "ETH": D(0)})
    assert book.ledger_lines() == {"USDT": BalanceLine(D(100), D(0))}
    with pytest.raises(KeyError):
        _write_then_fail(book)
    assert book.ledger_lines() == {"USDT": BalanceLine(D(100), D(0))}
    assert book.candle_mark(SYMBOL) is None
    with book.writing(), pytest.raises(RuntimeError, match="do not nest"), book.writing():
        pass
    with pytest.raises(RuntimeError, match="outside writing"):
        book.save_mark(SYMBOL, candle(0, "1", "1", "1", "1"))


def test_a_memory_venue_starts_fresh_and_checks_what_the_database_venue_checks() -> None:
    kw: dict[str, Any] = {"markets": {SYMBOL: ETH_USDT}, "config": CONFIG}
    first = PaperVenue.in_memory(account="bt", **kw)
    assert first.engine is None
    assert first.account == "bt"
    run(first.on_candle(SYMBOL, candle(0, "2000", "2001", "1999", "2000")))
    run(first.create_order(OrderRequest(cid(1), SYMBOL, Side.SELL, OrderType.MARKET, D(1))))
    second = PaperVenue.in_memory(account="bt", **kw)  # another object: another account
    assert run(second.fetch_open_orders()) == []
    assert run(second.fetch_balance()).lines["ETH"].free == D(2)
    with pytest.raises(ValueError, match="1 to 64 printable characters"):
        PaperVenue.in_memory(account="", **kw)
    with pytest.raises(ValueError, match="holds market"):
        PaperVenue.in_memory(account="bt", markets={"BTC/USDT": ETH_USDT})


# -- real candles ------------------------------------------------------------------------------

REPLAY_CANDLES = 2000


async def replay(venue: PaperVenue, clock: ManualClock, candles: list[Candle]) -> Any:
    """Orders every few candles (market buys, take-profit limits, protective stops, dip buys,
    cancels) over real candles; the clock at each candle's close, as a backtest runs."""
    market = (await venue.load_markets())["ETH/BTC"]
    tick = market.price_tick

    def price(at: Decimal, factor: str) -> Decimal:
        return (at * D(factor) / tick).to_integral_value(ROUND_FLOOR) * tick

    fills = []
    accepted: list[str] = []
    refused: list[tuple[str, str]] = []
    for i, c in enumerate(candles):
        clock.advance(max(0.0, (c.ts_ms + STEP) / 1000 - clock.now().timestamp()))
        fills += await venue.on_candle("ETH/BTC", c)
        n = 10 * i
        requests = []
        if i % 50 == 0:
            requests.append(OrderRequest(cid(n + 1), "ETH/BTC", Side.BUY, OrderType.MARKET, D(3)))
        if i % 50 == 3:
            requests += [
                OrderRequest(cid(n + 2), "ETH/BTC", Side.SELL, OrderType.LIMIT, D("1.5"),
                             price=price(c.close, "1.004")),
                OrderRequest(cid(n + 3), "ETH/BTC", Side.SELL, OrderType.STOP_MARKET, D("1.5"),
                             stop_price=price(c.close, "0.993")),
            ]  # fmt: skip
        if i % 50 == 25:
            requests.append(
                OrderRequest(cid(n + 4), "ETH/BTC", Side.BUY, OrderType.LIMIT, D(1),
                             price=price(c.close, "0.998"))
            )  # fmt: skip
        if i % 50 == 49:
            for order in await venue.fetch_open_orders("ETH/BTC"):
                await venue.cancel_order("ETH/BTC", venue_order_id=order.venue_order_id)
        for request in requests:
            try:
                await venue.create_order(request)
                accepted.append(request.client_order_id)
            except (InsufficientFunds, VenueRejected, InvalidOrder) as e:
                refused.append((request.client_order_id, e.message))
    orders = [await venue.fetch_order("ETH/BTC", client_order_id=c) for c in accepted]
    return (
        fills,
        await venue.fetch_my_trades("ETH/BTC"),
        orders,
        refused,
        await venue.fetch_balance(),
    )


def test_thousands_of_real_candles_give_the_same_trades_in_memory_and_in_the_database(
    makers: dict[str, Maker],
) -> None:
    candles = load_sample("ETH_BTC-5m.csv").candles[:REPLAY_CANDLES]
    assert len(candles) == REPLAY_CANDLES
    market = market_from_candles("ETH/BTC", candles)
    config = PaperConfig(
        maker_fee_bps=D("7.5"),
        taker_fee_bps=D(10),
        slippage_bps=D(3),
        starting_balances={"BTC": D(5)},
    )
    results = {}
    for kind, make in makers.items():
        clock = ManualClock(datetime.fromtimestamp(candles[0].ts_ms / 1000, UTC))
        venue = make(account="replay", markets={"ETH/BTC": market}, config=config, clock=clock)
        results[kind] = run(replay(venue, clock, candles))
    assert results["memory"] == results["sql"]
    fills, trades, orders, _refused, balance = results["memory"]
    assert fills == trades  # what on_candle returned is what the book kept
    assert len(trades) > 50
    assert {t.liquidity for t in trades} == {"maker", "taker"}
    assert [t.trade_id for t in trades] == [f"PT{k:010d}" for k in range(1, len(trades) + 1)]
    assert {OrderStatus.FILLED, OrderStatus.CANCELED} <= {o.status for o in orders}
    btc, eth = D(5), D(0)
    for t in trades:
        sign = 1 if t.side is Side.BUY else -1
        eth += sign * t.amount
        btc -= sign * t.price * t.amount + t.fee
    assert (balance.total("BTC"), balance.total("ETH")) == (btc, eth)


def test_a_memory_venue_without_open_orders_only_records_the_candle() -> None:
    """The fast path: no open order on the symbol, so no clock read, no ledger, no counters."""

    class CountingClock(ManualClock):
        reads = 0

        def now(self) -> datetime:
            self.reads += 1
            return super().now()

    clock = CountingClock(datetime.fromtimestamp(T0 / 1000, UTC))
    venue = PaperVenue.in_memory(
        account="fast",
        markets={SYMBOL: ETH_USDT},
        config=CONFIG,
        clock=clock,
        timeframe=FIVE_MINUTES,
    )
    candles = [candle(i, "2000", str(2001 + i), "1999", str(2000 + i)) for i in range(100)]
    reads = clock.reads
    for c in candles:
        assert run(venue.on_candle(SYMBOL, c)) == []
    assert clock.reads == reads
    assert run(venue.on_candle(SYMBOL, candles[50])) == []  # older than the last: skipped
    assert venue.last_candle(SYMBOL) == candles[-1]
    assert run(venue.fetch_ohlcv(SYMBOL, FIVE_MINUTES, limit=1000)) == candles
    assert run(venue.fetch_balance()).lines == {
        "ETH": BalanceLine(D(2), D(0)),
        "USDT": BalanceLine(D(10_000), D(0)),
    }
