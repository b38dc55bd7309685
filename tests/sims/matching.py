"""A small, deterministic, in-memory exchange core that the venue simulators share.

It knows nothing about any venue's wire format: `tests/sims/binance.py` and the Bybit simulator
wrap one `MatchingEngine` each and translate its names (statuses, errors, filters) into their
own. Everything runs under one lock, so a simulator may call it from any thread.

The model, kept deliberately small:

* Accounts (any hashable id, usually a string) hold balances per asset, `free` and `locked`.
* Markets are spot or perp. A perp settles in its quote asset with fixed leverage
  (`MatchingEngine(leverage=10)`); its positions carry a signed size and an entry price.
* Each symbol has a last price, set by the test with `set_price`. There is no book of other
  traders: a market order fills in full at the last price; a limit order that crosses the last
  price fills in full at once at the last price (taker), otherwise it rests and fills in full at
  its own price when a later `set_price` crosses it (maker). `fill` fills part of a resting order
  by hand, for tests that need PARTIALLY_FILLED.
* Stop orders (stop_market, stop_limit) wait until the last price reaches the stop price: a buy
  stop when last >= stop, a sell stop when last <= stop. A stop that would trigger at once is
  refused (`WouldTriggerImmediately`).
* Fees are charged in the quote asset at the maker or taker rate.
* Spot: a buy locks quote (price * qty plus the taker fee; the last price for market orders), a
  sell locks base. Perp: an order locks the margin of the part that would open or grow a
  position (notional / leverage) plus the taker fee; a fill moves that margin to the position,
  and reducing a position returns its margin and realises the profit or loss.
* Timestamps come from the injectable `clock` (milliseconds).

Faults: `lose_next_replies(n)` arms a counter the simulator consumes with `reply_lost()` right
after an order was accepted, to play "the order is in the book but the reply never arrived".
`add_accept_hook(fn)` calls `fn(order)` (outside the lock) after every accepted order.
"""

from __future__ import annotations

import enum
import itertools
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal

__all__ = [
    "ZERO",
    "AccountId",
    "Balance",
    "CancelRejected",
    "DuplicateClientOrderId",
    "FilterFailure",
    "FilterRule",
    "InsufficientBalance",
    "InvalidOrderRequest",
    "Market",
    "MarketKind",
    "MatchingEngine",
    "MatchingError",
    "NoPrice",
    "Order",
    "OrderNotFound",
    "OrderStatus",
    "OrderType",
    "Position",
    "ReduceOnlyRejected",
    "Side",
    "TimeInForce",
    "Trade",
    "UnknownMarket",
    "WouldTriggerImmediately",
]

ZERO = Decimal(0)
AccountId = Hashable


class Side(enum.StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1


class OrderType(enum.StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP_MARKET = "stop_market"
    STOP_LIMIT = "stop_limit"


class TimeInForce(enum.StrEnum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"


class OrderStatus(enum.StrEnum):
    NEW = "NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"

    @property
    def is_open(self) -> bool:
        return self in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)


class MarketKind(enum.StrEnum):
    SPOT = "spot"
    PERP = "perp"


class FilterRule(enum.StrEnum):
    """Which market rule an order broke; each simulator maps these to its own filter names."""

    PRICE_TICK = "price_tick"  # price not a multiple of the tick, or not positive
    AMOUNT_STEP = "amount_step"  # quantity not a multiple of the step, or above the maximum
    MIN_AMOUNT = "min_amount"
    MIN_NOTIONAL = "min_notional"


# -- errors ---------------------------------------------------------------------------------


class MatchingError(Exception):
    """Base of every refusal; the simulators map each subclass to their wire error."""


class UnknownMarket(MatchingError):
    pass


class InvalidOrderRequest(MatchingError):
    """A request that is malformed rather than refused by a rule (e.g. a limit without price)."""


class FilterFailure(MatchingError):
    def __init__(self, rule: FilterRule, message: str) -> None:
        super().__init__(message)
        self.rule = rule


class InsufficientBalance(MatchingError):
    pass


class DuplicateClientOrderId(MatchingError):
    pass


class OrderNotFound(MatchingError):
    pass


class CancelRejected(MatchingError):
    """The order exists but is no longer open."""


class ReduceOnlyRejected(MatchingError):
    pass


class WouldTriggerImmediately(MatchingError):
    pass


class NoPrice(MatchingError):
    """A market order (or a check against the last price) on a symbol with no price yet."""


# -- values ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Market:
    symbol: str  # the venue's id, e.g. BTCUSDT
    base: str
    quote: str  # also the settle / margin asset of a perp
    tick: Decimal  # price increment
    step: Decimal  # quantity increment
    min_amount: Decimal
    min_notional: Decimal
    kind: MarketKind = MarketKind.SPOT
    max_amount: Decimal | None = None


@dataclass(slots=True)
class Balance:
    free: Decimal = ZERO
    locked: Decimal = ZERO

    @property
    def total(self) -> Decimal:
        return self.free + self.locked


@dataclass(slots=True)
class Position:
    symbol: str
    size: Decimal = ZERO  # signed: > 0 long, < 0 short
    entry_price: Decimal = ZERO
    margin: Decimal = ZERO  # held in the settle asset's `locked`
    realized_pnl: Decimal = ZERO


@dataclass(slots=True)
class Order:
    order_id: int
    account: AccountId
    client_order_id: str
    symbol: str
    side: Side
    type: OrderType
    time_in_force: TimeInForce
    qty: Decimal
    price: Decimal | None
    stop_price: Decimal | None
    reduce_only: bool
    status: OrderStatus
    created_ms: int
    updated_ms: int
    filled_qty: Decimal = ZERO
    cum_quote: Decimal = ZERO  # sum of price * qty over the fills
    fees: Decimal = ZERO
    triggered: bool = False  # a stop order whose stop price was reached
    lock_asset: str = ""
    lock_remaining: Decimal = ZERO  # what this order still holds in `locked`

    @property
    def remaining(self) -> Decimal:
        return self.qty - self.filled_qty

    @property
    def avg_price(self) -> Decimal:
        return self.cum_quote / self.filled_qty if self.filled_qty else ZERO

    @property
    def is_stop(self) -> bool:
        return self.type in (OrderType.STOP_MARKET, OrderType.STOP_LIMIT)


@dataclass(frozen=True, slots=True)
class Trade:
    trade_id: int
    order_id: int
    account: AccountId
    symbol: str
    side: Side
    price: Decimal
    qty: Decimal
    quote_qty: Decimal
    fee: Decimal
    fee_asset: str
    maker: bool
    time_ms: int
    realized_pnl: Decimal = ZERO


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class _Account:
    balances: dict[str, Balance] = field(default_factory=dict)
    positions: dict[str, Position] = field(default_factory=dict)

    def balance(self, asset: str) -> Balance:
        return self.balances.setdefault(asset, Balance())


class MatchingEngine:
    """The venue-neutral core. Every public method takes the lock; values returned are copies."""

    def __init__(
        self,
        *,
        clock: Callable[[], int] = _now_ms,
        maker_fee: Decimal = Decimal("0.001"),
        taker_fee: Decimal = Decimal("0.001"),
        leverage: int = 10,
    ) -> None:
        self.clock = clock
        self.maker_fee = maker_fee
        self.taker_fee = taker_fee
        self.leverage = Decimal(leverage)
        self._lock = threading.RLock()
        self._markets: dict[str, Market] = {}
        self._prices: dict[str, Decimal] = {}
        self._accounts: dict[AccountId, _Account] = {}
        self._orders: dict[int, Order] = {}
        self._trades: list[Trade] = []
        self._order_ids = itertools.count(1)
        self._trade_ids = itertools.count(1)
        self._lost_replies = 0
        self._accept_hooks: list[Callable[[Order], None]] = []

    # -- setup ----------------------------------------------------------------------------

    def add_market(self, market: Market, *, price: Decimal | None = None) -> None:
        with self._lock:
            self._markets[market.symbol] = market
            if price is not None:
                self._prices[market.symbol] = price

    def market(self, symbol: str) -> Market:
        with self._lock:
            try:
                return self._markets[symbol]
            except KeyError:
                raise UnknownMarket(f"unknown symbol {symbol!r}") from None

    def markets(self) -> list[Market]:
        with self._lock:
            return list(self._markets.values())

    def add_account(self, account: AccountId) -> None:
        with self._lock:
            self._accounts.setdefault(account, _Account())

    def deposit(self, account: AccountId, asset: str, amount: Decimal) -> None:
        with self._lock:
            self._account(account).balance(asset).free += amount

    def set_balance(self, account: AccountId, asset: str, free: Decimal) -> None:
        """Set the free amount outright (locked amounts stay as they are)."""
        with self._lock:
            self._account(account).balance(asset).free = free

    def balances(self, account: AccountId) -> dict[str, Balance]:
        with self._lock:
            return {
                a: Balance(b.free, b.locked) for a, b in self._account(account).balances.items()
            }

    def positions(self, account: AccountId) -> list[Position]:
        with self._lock:
            return [replace(p) for p in self._account(account).positions.values()]

    def position(self, account: AccountId, symbol: str) -> Position:
        with self._lock:
            p = self._account(account).positions.get(symbol)
            return replace(p) if p else Position(symbol)

    def unrealized_pnl(self, account: AccountId, symbol: str) -> Decimal:
        with self._lock:
            p = self._account(account).positions.get(symbol)
            last = self._prices.get(symbol)
            if not p or not p.size or last is None:
                return ZERO
            return (last - p.entry_price) * p.size

    # -- prices ---------------------------------------------------------------------------

    def last_price(self, symbol: str) -> Decimal | None:
        with self._lock:
            return self._prices.get(symbol)

    def set_price(self, symbol: str, price: Decimal) -> list[Trade]:
        """Move the last price; trigger stops it reaches and fill resting limits it crosses.
        Returns the trades this caused, in order."""
        with self._lock:
            self.market(symbol)
            self._prices[symbol] = price
            trades: list[Trade] = []
            for order in self._resting(symbol):
                if order.is_stop and not order.triggered:
                    if not self._stop_reached(order, price):
                        continue
                    order.triggered = True
                    order.updated_ms = self.clock()
                    if order.type is OrderType.STOP_MARKET:
                        trades.append(self._fill(order, order.remaining, price, maker=False))
                        continue
                    assert order.price is not None
                    if self._crosses(order.side, order.price, price):
                        trades.append(self._fill(order, order.remaining, price, maker=False))
                    continue
                assert order.price is not None
                if self._crosses(order.side, order.price, price):
                    trades.append(self._fill(order, order.remaining, order.price, maker=True))
            return trades

    # -- orders ---------------------------------------------------------------------------

    def create_order(
        self,
        account: AccountId,
        symbol: str,
        side: Side,
        type: OrderType,
        qty: Decimal,
        *,
        price: Decimal | None = None,
        stop_price: Decimal | None = None,
        time_in_force: TimeInForce = TimeInForce.GTC,
        client_order_id: str | None = None,
        reduce_only: bool = False,
    ) -> Order:
        """Validate, lock funds, accept, and fill what fills at once. Raises a `MatchingError`
        subclass when refused (nothing is recorded then). Returns a copy of the order."""
        with self._lock:
            market = self.market(symbol)
            self._validate(market, type, qty, price, stop_price)
            acct = self._account(account)
            if client_order_id is not None and self._by_client_id(account, client_order_id):
                raise DuplicateClientOrderId(f"client order id {client_order_id!r} already used")
            last = self._prices.get(symbol)
            if type is OrderType.MARKET and last is None:
                raise NoPrice(f"no last price for {symbol}")
            if type in (OrderType.STOP_MARKET, OrderType.STOP_LIMIT):
                assert stop_price is not None
                if last is not None and (
                    (side is Side.BUY and last >= stop_price)
                    or (side is Side.SELL and last <= stop_price)
                ):
                    raise WouldTriggerImmediately("the stop price would trigger at once")
            ref_price = price if price is not None else (stop_price or last)
            assert ref_price is not None
            if market.min_notional and type is not OrderType.MARKET:
                if ref_price * qty < market.min_notional:
                    raise FilterFailure(
                        FilterRule.MIN_NOTIONAL, f"notional below {market.min_notional}"
                    )
            elif market.min_notional and last is not None and last * qty < market.min_notional:
                raise FilterFailure(
                    FilterRule.MIN_NOTIONAL, f"notional below {market.min_notional}"
                )
            if reduce_only:
                self._check_reduce_only(acct, market, side, qty)
            lock_asset, lock = self._lock_needed(acct, market, side, qty, ref_price)
            # FOK / IOC limits that cannot fill now are expired without touching balances.
            crosses = type is OrderType.MARKET or (
                type is OrderType.LIMIT
                and last is not None
                and price is not None
                and self._crosses(side, price, last)
            )
            if lock:
                bal = acct.balance(lock_asset)
                if bal.free < lock:
                    raise InsufficientBalance(
                        f"need {lock} {lock_asset} free, have {bal.free} {lock_asset}"
                    )
            now = self.clock()
            order_id = next(self._order_ids)
            order = Order(
                order_id=order_id,
                account=account,
                client_order_id=client_order_id or f"sim-{order_id}",
                symbol=symbol,
                side=side,
                type=type,
                time_in_force=time_in_force,
                qty=qty,
                price=price,
                stop_price=stop_price,
                reduce_only=reduce_only,
                status=OrderStatus.NEW,
                created_ms=now,
                updated_ms=now,
                lock_asset=lock_asset,
            )
            self._orders[order_id] = order
            if type is OrderType.LIMIT and not crosses and time_in_force is not TimeInForce.GTC:
                order.status = OrderStatus.EXPIRED
            else:
                if lock:
                    bal = acct.balance(lock_asset)
                    bal.free -= lock
                    bal.locked += lock
                    order.lock_remaining = lock
                if crosses:
                    assert last is not None
                    self._fill(order, qty, last, maker=False)
            result = replace(order)
        for hook in list(self._accept_hooks):
            hook(result)
        return result

    def fill(self, order_id: int, qty: Decimal, price: Decimal | None = None) -> Trade:
        """Fill `qty` of a resting order by hand (at its limit price unless `price` is given),
        as a maker: the way a test makes an order PARTIALLY_FILLED."""
        with self._lock:
            order = self._orders.get(order_id)
            if order is None:
                raise OrderNotFound(f"no order {order_id}")
            if not order.status.is_open or qty <= 0 or qty > order.remaining:
                raise InvalidOrderRequest("the order is not open or the quantity is wrong")
            at = price if price is not None else order.price or self._prices.get(order.symbol)
            if at is None:
                raise NoPrice(f"no price to fill order {order_id} at")
            return self._fill(order, qty, at, maker=True)

    def cancel(
        self,
        account: AccountId,
        *,
        order_id: int | None = None,
        client_order_id: str | None = None,
        symbol: str | None = None,
    ) -> Order:
        with self._lock:
            order = self._find(account, order_id, client_order_id, symbol)
            if not order.status.is_open:
                raise CancelRejected(f"order {order.order_id} is {order.status}")
            order.status = OrderStatus.CANCELED
            order.updated_ms = self.clock()
            self._release(order)
            return replace(order)

    def cancel_all(self, account: AccountId, symbol: str | None = None) -> list[Order]:
        with self._lock:
            return [self.cancel(account, order_id=o.order_id) for o in self._open(account, symbol)]

    def order(
        self,
        account: AccountId,
        *,
        order_id: int | None = None,
        client_order_id: str | None = None,
        symbol: str | None = None,
    ) -> Order:
        """One of the account's orders, by venue id or client id (and symbol, when given)."""
        with self._lock:
            return replace(self._find(account, order_id, client_order_id, symbol))

    def open_orders(self, account: AccountId, symbol: str | None = None) -> list[Order]:
        with self._lock:
            return [replace(o) for o in self._open(account, symbol)]

    def orders(self, account: AccountId, symbol: str | None = None) -> list[Order]:
        """Every order of the account, open or not, oldest first."""
        with self._lock:
            return [
                replace(o)
                for o in self._orders.values()
                if o.account == account and (symbol is None or o.symbol == symbol)
            ]

    def trades(
        self,
        account: AccountId,
        symbol: str | None = None,
        *,
        since_ms: int | None = None,
        until_ms: int | None = None,
        order_id: int | None = None,
        from_id: int | None = None,
        limit: int | None = None,
    ) -> list[Trade]:
        """The account's trades, oldest first, filtered by every argument given."""
        with self._lock:
            out = [
                t
                for t in self._trades
                if t.account == account
                and (symbol is None or t.symbol == symbol)
                and (since_ms is None or t.time_ms >= since_ms)
                and (until_ms is None or t.time_ms <= until_ms)
                and (order_id is None or t.order_id == order_id)
                and (from_id is None or t.trade_id >= from_id)
            ]
            return out[:limit] if limit is not None else out

    # -- faults ---------------------------------------------------------------------------

    def lose_next_replies(self, n: int = 1) -> None:
        """The next `n` accepted orders should have their reply lost (the simulator asks)."""
        with self._lock:
            self._lost_replies += n

    def reply_lost(self) -> bool:
        """Called by a simulator right after an order was accepted: True (and one fewer armed)
        when this reply must be lost."""
        with self._lock:
            if self._lost_replies > 0:
                self._lost_replies -= 1
                return True
            return False

    def add_accept_hook(self, hook: Callable[[Order], None]) -> None:
        with self._lock:
            self._accept_hooks.append(hook)

    # -- internals (lock held) ------------------------------------------------------------

    def _account(self, account: AccountId) -> _Account:
        return self._accounts.setdefault(account, _Account())

    def _validate(
        self,
        market: Market,
        type: OrderType,
        qty: Decimal,
        price: Decimal | None,
        stop_price: Decimal | None,
    ) -> None:
        needs_price = type in (OrderType.LIMIT, OrderType.STOP_LIMIT)
        if needs_price and price is None:
            raise InvalidOrderRequest(f"a {type} order needs a price")
        if type is OrderType.MARKET and price is not None:
            raise InvalidOrderRequest("a market order takes no price")
        if (stop_price is None) == (type in (OrderType.STOP_MARKET, OrderType.STOP_LIMIT)):
            raise InvalidOrderRequest(f"a stop price goes with stop orders only, not {type}")
        for p in (price, stop_price):
            if p is not None and (p <= 0 or p % market.tick):
                raise FilterFailure(FilterRule.PRICE_TICK, f"price {p} off the tick {market.tick}")
        if qty <= 0 or qty % market.step:
            raise FilterFailure(FilterRule.AMOUNT_STEP, f"quantity {qty} off the step")
        if market.max_amount is not None and qty > market.max_amount:
            raise FilterFailure(FilterRule.AMOUNT_STEP, f"quantity above {market.max_amount}")
        if qty < market.min_amount:
            raise FilterFailure(FilterRule.MIN_AMOUNT, f"quantity below {market.min_amount}")

    def _check_reduce_only(self, acct: _Account, market: Market, side: Side, qty: Decimal) -> None:
        if market.kind is not MarketKind.PERP:
            raise InvalidOrderRequest("reduce-only is for perps")
        pos = acct.positions.get(market.symbol)
        size = pos.size if pos else ZERO
        if size == 0 or (size > 0) == (side is Side.BUY) or qty > abs(size):
            raise ReduceOnlyRejected("a reduce-only order would open or increase a position")

    def _lock_needed(
        self, acct: _Account, market: Market, side: Side, qty: Decimal, price: Decimal
    ) -> tuple[str, Decimal]:
        if market.kind is MarketKind.SPOT:
            if side is Side.BUY:
                return market.quote, price * qty * (1 + self.taker_fee)
            return market.base, qty
        pos = acct.positions.get(market.symbol)
        size = pos.size if pos else ZERO
        closing = min(qty, abs(size)) if size and (size > 0) != (side is Side.BUY) else ZERO
        opening = qty - closing
        return market.quote, price * opening / self.leverage + price * qty * self.taker_fee

    def _crosses(self, side: Side, limit: Decimal, last: Decimal) -> bool:
        return last <= limit if side is Side.BUY else last >= limit

    def _stop_reached(self, order: Order, last: Decimal) -> bool:
        assert order.stop_price is not None
        return last >= order.stop_price if order.side is Side.BUY else last <= order.stop_price

    def _resting(self, symbol: str) -> list[Order]:
        return [o for o in self._orders.values() if o.symbol == symbol and o.status.is_open]

    def _open(self, account: AccountId, symbol: str | None) -> Iterable[Order]:
        return [
            o
            for o in self._orders.values()
            if o.account == account and o.status.is_open and (symbol is None or o.symbol == symbol)
        ]

    def _by_client_id(self, account: AccountId, client_order_id: str) -> Order | None:
        for o in self._orders.values():
            if o.account == account and o.client_order_id == client_order_id:
                return o
        return None

    def _find(
        self,
        account: AccountId,
        order_id: int | None,
        client_order_id: str | None,
        symbol: str | None,
    ) -> Order:
        if order_id is None and client_order_id is None:
            raise InvalidOrderRequest("give an order id or a client order id")
        order: Order | None
        if order_id is not None:
            order = self._orders.get(order_id)
            if (
                order is not None
                and client_order_id is not None
                and order.client_order_id != client_order_id
            ):
                order = None
        else:
            assert client_order_id is not None
            order = self._by_client_id(account, client_order_id)
        if order is None or order.account != account or (symbol and order.symbol != symbol):
            raise OrderNotFound("order does not exist")
        return order

    def _release(self, order: Order) -> None:
        if order.lock_remaining:
            bal = self._account(order.account).balance(order.lock_asset)
            bal.locked -= order.lock_remaining
            bal.free += order.lock_remaining
            order.lock_remaining = ZERO

    def _fill(self, order: Order, qty: Decimal, price: Decimal, *, maker: bool) -> Trade:
        market = self._markets[order.symbol]
        acct = self._account(order.account)
        # Give back this fill's share of what the order holds; the fill then takes what it costs.
        share = (
            order.lock_remaining
            if qty == order.remaining
            else order.lock_remaining * qty / order.remaining
        )
        if share:
            held = acct.balance(order.lock_asset)
            held.locked -= share
            held.free += share
            order.lock_remaining -= share
        notional = price * qty
        fee = notional * (self.maker_fee if maker else self.taker_fee)
        quote = acct.balance(market.quote)
        pnl = ZERO
        if market.kind is MarketKind.SPOT:
            base = acct.balance(market.base)
            if order.side is Side.BUY:
                quote.free -= notional + fee
                base.free += qty
            else:
                base.free -= qty
                quote.free += notional - fee
        else:
            quote.free -= fee
            pnl = self._move_position(acct, market, order.side.sign * qty, price)
        order.filled_qty += qty
        order.cum_quote += notional
        order.fees += fee
        order.updated_ms = self.clock()
        order.status = OrderStatus.FILLED if order.remaining == 0 else OrderStatus.PARTIALLY_FILLED
        if order.status is OrderStatus.FILLED:
            self._release(order)
        trade = Trade(
            trade_id=next(self._trade_ids),
            order_id=order.order_id,
            account=order.account,
            symbol=order.symbol,
            side=order.side,
            price=price,
            qty=qty,
            quote_qty=notional,
            fee=fee,
            fee_asset=market.quote,
            maker=maker,
            time_ms=order.updated_ms,
            realized_pnl=pnl,
        )
        self._trades.append(trade)
        return trade

    def _move_position(
        self, acct: _Account, market: Market, delta: Decimal, price: Decimal
    ) -> Decimal:
        pos = acct.positions.setdefault(market.symbol, Position(market.symbol))
        quote = acct.balance(market.quote)
        pnl = ZERO
        if pos.size and (pos.size > 0) != (delta > 0):
            closing = min(abs(delta), abs(pos.size))
            direction = 1 if pos.size > 0 else -1
            pnl = (price - pos.entry_price) * closing * direction
            released = pos.margin * closing / abs(pos.size)
            pos.margin -= released
            quote.locked -= released
            quote.free += released + pnl
            pos.realized_pnl += pnl
            pos.size -= direction * closing
            delta += direction * closing
            if pos.size == 0:
                pos.entry_price = ZERO
                pos.margin = ZERO
        if delta:
            new_size = pos.size + delta
            pos.entry_price = (pos.entry_price * abs(pos.size) + price * abs(delta)) / abs(new_size)
            pos.size = new_size
            margin = price * abs(delta) / self.leverage
            pos.margin += margin
            quote.free -= margin
            quote.locked += margin
        return pnl
