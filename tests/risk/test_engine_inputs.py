"""Prices from a feed are checked before the engine uses them, and cash checks count only the
orders cash pays for."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tradeguard.core.errors import MarketDataError
from tradeguard.core.events import MemorySink
from tradeguard.risk import Approval, BotLimits, OrderIntent, Reason, RiskEngine, TradingState
from tradeguard.venues.types import (
    Balance,
    BalanceLine,
    Liquidity,
    Market,
    MarketKind,
    Side,
    Trade,
)

D = Decimal
BTC = Market("BTC/USDT", "BTCUSDT", "BTC", "USDT", MarketKind.SPOT, D("0.01"), D("0.001"))
PERP = Market(
    "BTC/USDT:USDT", "BTCUSDT", "BTC", "USDT", MarketKind.SWAP, D("0.1"), D("0.001"),
    settle="USDT",
)  # fmt: skip


def engine() -> RiskEngine:
    risk = RiskEngine(events=MemorySink())
    balance = Balance({"USDT": BalanceLine(D(100_000), D(0))})
    risk.add_account("acc", {m.symbol: m for m in (BTC, PERP)}, balance)
    limits = BotLimits(
        capital=D(100_000), symbols=frozenset({BTC.symbol, PERP.symbol}),
        blocked_zones=frozenset(),
    )  # fmt: skip
    risk.register_bot("b", user="u", account="acc", limits=limits)
    return risk


@pytest.mark.parametrize("price", [D("NaN"), D("Infinity"), D(0), D(-5), 50_000.0, "50000"])
def test_a_bad_price_from_a_feed_is_refused_and_changes_nothing(price: object) -> None:
    risk = engine()
    risk.on_price("acc", BTC.symbol, D(50_000))
    with pytest.raises(MarketDataError, match="positive finite Decimal"):
        risk.on_price("acc", BTC.symbol, price)  # type: ignore[arg-type]
    assert risk.effective_state("b") is TradingState.ACTIVE
    # the last good price still values orders: 1% above it is inside the 5% band
    order = OrderIntent("x", BTC.symbol, "buy", "limit", D("0.01"), D("50500"))
    assert isinstance(risk.pre_trade("b", order), Approval)


def test_a_perpetual_order_does_not_hold_spot_cash_or_spot_coins() -> None:
    risk = engine()
    risk.on_price("acc", BTC.symbol, D(50_000))
    risk.on_price("acc", PERP.symbol, D(50_000))
    at = datetime(2026, 1, 1, tzinfo=UTC)
    assert risk.pre_trade("b", OrderIntent("buy", BTC.symbol, "buy", "market", D(1)))
    risk.on_fill(
        "b", Trade("t", "v", "buy", BTC.symbol, Side.BUY, D(50_000), D(1), D(0), "USDT",
                   Liquidity.TAKER, at),
    )  # fmt: skip
    # a perp short of 1 BTC on margin: it holds no spot BTC
    assert risk.pre_trade("b", OrderIntent("hedge", PERP.symbol, "sell", "limit", D(1), D(50_000)))
    # so the spot holding can still be sold
    sell = risk.pre_trade("b", OrderIntent("exit", BTC.symbol, "sell", "limit", D(1), D(50_000)))
    assert isinstance(sell, Approval), sell
    # and the perp order holds none of the spot cash left (50,000 USDT) either
    spend = risk.pre_trade(
        "b", OrderIntent("more", BTC.symbol, "buy", "limit", D("0.9"), D(50_000))
    )
    assert isinstance(spend, Approval), spend
    too_much = risk.pre_trade(
        "b", OrderIntent("x", BTC.symbol, "buy", "limit", D("0.2"), D(50_000))
    )
    assert getattr(too_much, "reason", None) is Reason.BALANCE
