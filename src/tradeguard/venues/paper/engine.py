"""The paper venue's fill logic: pure, deterministic, no I/O.

Every decision is a function of the order, one candle and the configuration, so the same
candles and the same orders give the same fills, to the last digit. Arithmetic runs in a decimal
context that raises rather than round (`exact`): fees, slippage and balances are exact.

The rules (docs/venues.md, "The paper venue", explains them with examples):

- An order is considered from the first candle processed after it was accepted; that candle's
  open is its *arrival* price.
- Every taker fill pays slippage: the price moves `slippage_bps` against the order (a buy pays
  more, a sell gets less), never past a limit price.
- MARKET: fills on its first candle at the open plus slippage; taker.
- LIMIT: on its first candle, a buy whose limit is at or above the open (a sell: at or below)
  crosses on arrival and fills at the open plus slippage, capped at the limit; taker. Otherwise
  it rests, and fills at its limit price once a candle trades *through* it (a buy: low strictly
  below the limit; a sell: high strictly above); maker. A resting order that the market gaps
  through also fills at its own limit price, as on a real book. IOC and FOK orders that do not
  cross on arrival expire (fills are all or nothing, so IOC and FOK behave alike); a post-only
  order that would cross on arrival expires instead of taking.
- STOP_MARKET: triggers when a candle's high reaches the stop (a buy; a sell: the low), then
  fills at the stop plus slippage, or at the open plus slippage if the candle opened through the
  stop (a gap); taker.
- STOP_LIMIT: triggers like a stop market. If the trigger price (the stop, or the open after a
  gap) is within the limit, it fills there plus slippage, capped at the limit; taker. Otherwise
  it rests as a limit from the next candle on (maker), or expires if IOC/FOK.
- Fees are charged in the quote currency on each fill's notional: maker or taker bps.
"""

from __future__ import annotations

import decimal
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from tradeguard.core.errors import InsufficientFunds
from tradeguard.marketdata.candles import Candle
from tradeguard.venues.paper.config import PaperConfig
from tradeguard.venues.types import (
    BalanceLine,
    Liquidity,
    Market,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)

__all__ = [
    "BPS",
    "Decision",
    "Expire",
    "Fill",
    "Ledger",
    "PaperOrderState",
    "Settlement",
    "Trigger",
    "arrival_refusal",
    "evaluate",
    "exact",
    "release",
    "reservation",
    "settle",
    "slipped",
]

BPS = Decimal(10_000)


@contextmanager
def exact() -> Iterator[None]:
    """A decimal context wide enough for every product the engine forms, that raises instead of
    rounding: a result that is not exact is a bug, never a silent cent."""
    with decimal.localcontext() as ctx:
        ctx.prec = 200
        ctx.traps[decimal.Inexact] = True
        ctx.traps[decimal.Rounded] = True
        yield


class Ledger:
    """Free and used balance per currency. Raises rather than let a balance go negative."""

    def __init__(self, lines: Mapping[str, BalanceLine], venue: str) -> None:
        self._free = {c: line.free for c, line in lines.items()}
        self._used = {c: line.used for c, line in lines.items()}
        self.venue = venue
        self.changed: set[str] = set()

    def free(self, currency: str) -> Decimal:
        return self._free.get(currency, Decimal(0))

    def used(self, currency: str) -> Decimal:
        return self._used.get(currency, Decimal(0))

    def line(self, currency: str) -> BalanceLine:
        return BalanceLine(self.free(currency), self.used(currency))

    def lines(self) -> dict[str, BalanceLine]:
        return {c: self.line(c) for c in sorted(set(self._free) | set(self._used))}

    def _set(self, currency: str, free: Decimal, used: Decimal) -> None:
        if free < 0 or used < 0:
            raise AssertionError(f"paper ledger: {currency} would go negative")
        self._free[currency] = free or Decimal(0)  # one zero, not 0E-15
        self._used[currency] = used or Decimal(0)
        self.changed.add(currency)

    def lock(self, currency: str, amount: Decimal) -> None:
        free = self.free(currency)
        if amount > free:
            raise InsufficientFunds(
                "Account has insufficient balance for requested action: "
                f"need {amount} {currency}, free {free}",
                venue=self.venue,
            )
        self._set(currency, free - amount, self.used(currency) + amount)

    def unlock(self, currency: str, amount: Decimal) -> None:
        self._set(currency, self.free(currency) + amount, self.used(currency) - amount)

    def credit(self, currency: str, amount: Decimal) -> None:
        self._set(currency, self.free(currency) + amount, self.used(currency))

    def debit(self, currency: str, amount: Decimal) -> None:
        self._set(currency, self.free(currency) - amount, self.used(currency))


@dataclass(frozen=True, slots=True)
class PaperOrderState:
    """An order as the paper venue keeps it: the public `Order` plus what it holds."""

    seq: int
    venue_order_id: str
    client_order_id: str
    symbol: str
    side: Side
    type: OrderType
    time_in_force: TimeInForce
    amount: Decimal
    price: Decimal | None
    stop_price: Decimal | None
    reduce_only: bool
    status: OrderStatus
    filled: Decimal
    average: Decimal | None
    fee: Decimal
    fee_currency: str | None
    locked: Decimal
    lock_currency: str
    triggered: bool
    fresh: bool
    created_at: datetime
    updated_at: datetime

    def to_order(self) -> Order:
        return Order(
            venue_order_id=self.venue_order_id,
            client_order_id=self.client_order_id,
            symbol=self.symbol,
            side=self.side,
            type=self.type,
            status=self.status,
            amount=self.amount,
            filled=self.filled,
            price=self.price,
            average=self.average,
            stop_price=self.stop_price,
            created_at=self.created_at,
            updated_at=self.updated_at,
            reduce_only=self.reduce_only,
            fee=self.fee,
            fee_currency=self.fee_currency,
        )

    def same_request(self, request: OrderRequest) -> bool:
        """Whether `request` (already checked) asks for this order."""
        return (
            request.symbol == self.symbol
            and request.side is self.side
            and request.type is self.type
            and request.amount == self.amount
            and request.price == self.price
            and request.stop_price == self.stop_price
            and request.time_in_force is self.time_in_force
            and request.reduce_only == self.reduce_only
        )


# -- decisions ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fill:
    price: Decimal
    liquidity: Liquidity


@dataclass(frozen=True, slots=True)
class Expire:
    reason: str


@dataclass(frozen=True, slots=True)
class Trigger:
    """A stop-limit order's stop traded but its limit did not: it rests as a limit now."""


Decision = Fill | Expire | Trigger | None


def slipped(price: Decimal, side: Side, config: PaperConfig) -> Decimal:
    with exact():
        if side is Side.BUY:
            return price * (BPS + config.slippage_bps) / BPS
        return price * (BPS - config.slippage_bps) / BPS


def _given(value: Decimal | None, what: str) -> Decimal:
    if value is None:  # OrderRequest guarantees it; a corrupt row would not
        raise ValueError(f"this order has no {what}")
    return value


def _capped(price: Decimal, limit: Decimal, side: Side) -> Decimal:
    return min(price, limit) if side is Side.BUY else max(price, limit)


def _crosses(price: Decimal, limit: Decimal, side: Side) -> bool:
    """Whether a buy (sell) limit at `limit` is marketable at `price`."""
    return price <= limit if side is Side.BUY else price >= limit


def _triggers(candle: Candle, stop: Decimal, side: Side) -> bool:
    return candle.high >= stop if side is Side.BUY else candle.low <= stop


def _limit_decision(order: PaperOrderState, candle: Candle, config: PaperConfig) -> Decision:
    limit = _given(order.price, "limit price")
    if order.fresh:
        crosses = _crosses(candle.open, limit, order.side)
        if crosses and order.time_in_force is TimeInForce.POST_ONLY:
            return Expire("post-only order would have taken liquidity on arrival")
        if crosses:
            return Fill(_capped(slipped(candle.open, order.side, config), limit, order.side),
                        Liquidity.TAKER)  # fmt: skip
        if order.time_in_force in (TimeInForce.IOC, TimeInForce.FOK):
            return Expire(f"{order.time_in_force} order did not cross on arrival")
    through = candle.low < limit if order.side is Side.BUY else candle.high > limit
    return Fill(limit, Liquidity.MAKER) if through else None


def evaluate(order: PaperOrderState, candle: Candle, config: PaperConfig) -> Decision:
    """What `candle` does to the open `order` (see the module's rules); None: nothing."""
    side = order.side
    if order.type is OrderType.MARKET:
        return Fill(slipped(candle.open, side, config), Liquidity.TAKER)
    if order.type in (OrderType.STOP_MARKET, OrderType.STOP_LIMIT) and not order.triggered:
        stop = _given(order.stop_price, "stop price")
        if not _triggers(candle, stop, side):
            return None
        at = max(candle.open, stop) if side is Side.BUY else min(candle.open, stop)
        if order.type is OrderType.STOP_MARKET:
            return Fill(slipped(at, side, config), Liquidity.TAKER)
        limit = _given(order.price, "limit price")
        if _crosses(at, limit, side):
            return Fill(_capped(slipped(at, side, config), limit, side), Liquidity.TAKER)
        if order.time_in_force in (TimeInForce.IOC, TimeInForce.FOK):
            return Expire(f"{order.time_in_force} stop-limit order did not fill on its trigger")
        return Trigger()
    return _limit_decision(order, candle, config)


# -- money -------------------------------------------------------------------------------------


def reservation(
    market: Market, request: OrderRequest, config: PaperConfig, last_price: Decimal | None
) -> tuple[str, Decimal] | None:
    """What an order holds while open: (currency, amount). A sell holds its base amount; a buy
    holds quote for the worst fill it can get plus the highest fee. None: a market buy with no
    price to value it at."""
    if request.side is Side.SELL:
        return market.base, request.amount
    with exact():
        if request.type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
            worst, fee_bps = _given(request.price, "limit price"), config.max_fee_bps
        else:
            reference = request.stop_price if request.type is OrderType.STOP_MARKET else last_price
            if reference is None:
                return None
            worst, fee_bps = slipped(reference, Side.BUY, config), config.taker_fee_bps
        return market.quote, worst * request.amount * (BPS + fee_bps) / BPS


def arrival_refusal(request: OrderRequest, last_price: Decimal | None) -> str | None:
    """Why a real venue would refuse `request` at `last_price` (a stop that would trigger at
    once, a post-only order that would take), or None."""
    if last_price is None:
        return None
    if request.type in (OrderType.STOP_MARKET, OrderType.STOP_LIMIT):
        stop = _given(request.stop_price, "stop price")
        if _crosses(stop, last_price, request.side):
            return (
                f"a {request.side} stop at {stop} would trigger immediately (last "
                f"price {last_price}); a buy stop goes above the market, a sell stop below"
            )
    if request.type is OrderType.LIMIT and request.time_in_force is TimeInForce.POST_ONLY:
        limit = _given(request.price, "limit price")
        if _crosses(last_price, limit, request.side):
            return (
                f"a post-only {request.side} at {limit} would take liquidity (last "
                f"price {last_price}); price it on the passive side of the market"
            )
    return None


@dataclass(frozen=True, slots=True)
class Settlement:
    """The order after a fill, and the fill's fee; `order.status` is EXPIRED (no fill) when a
    buy's cost outran its hold and the free balance could not cover the rest."""

    order: PaperOrderState
    fee: Decimal
    filled: bool


def release(ledger: Ledger, order: PaperOrderState) -> None:
    if order.locked:
        ledger.unlock(order.lock_currency, order.locked)


def settle(
    ledger: Ledger,
    market: Market,
    order: PaperOrderState,
    fill: Fill,
    config: PaperConfig,
    now: datetime,
) -> Settlement:
    """Fill the whole remaining `order` at `fill.price`: move the balances, release the hold."""
    amount = order.amount - order.filled
    fee_bps = config.maker_fee_bps if fill.liquidity is Liquidity.MAKER else config.taker_fee_bps
    with exact():
        cost = fill.price * amount
        fee = cost * fee_bps / BPS
        release(ledger, order)
        done = replace(order, locked=Decimal(0), fresh=False, updated_at=now)
        if order.side is Side.BUY:
            if cost + fee > ledger.free(market.quote):
                return Settlement(replace(done, status=OrderStatus.EXPIRED), Decimal(0), False)
            ledger.debit(market.quote, cost + fee)
            ledger.credit(market.base, amount)
        else:
            ledger.debit(market.base, amount)
            ledger.credit(market.quote, cost - fee)
        return Settlement(
            replace(
                done,
                status=OrderStatus.FILLED,
                filled=order.amount,
                average=fill.price,
                fee=order.fee + fee,
                fee_currency=market.quote,
            ),
            fee,
            True,
        )
