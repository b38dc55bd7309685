"""`PaperVenue`: the built-in venue that fills orders against candles.

    venue = PaperVenue(engine, account="alice-paper", markets=markets, clock=clock)
    await venue.create_order(request)          # checked, funds held, resting
    await venue.on_candle("ETH/BTC", candle)   # fills what the candle triggers

One instance is one paper account. Its balances, orders, fills and the last candle per symbol
live in a `PaperBook`: in the database (migration 0005), so a new `PaperVenue` on the
same database continues exactly where the last one stopped, or, for backtests, in memory
(`PaperVenue.in_memory`). Every state change (an order, a cancel, a candle) is one book
transaction; in the database it locks the account row first. Fill rules:
`tradeguard.venues.paper.engine`.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from decimal import Decimal
from types import MappingProxyType
from typing import Protocol, Self, TypeVar

import sqlalchemy as sa

from tradeguard.core.clock import Clock, SystemClock
from tradeguard.core.errors import (
    InvalidOrder,
    MarketDataError,
    OrderNotFound,
    VenueRejected,
)
from tradeguard.marketdata.candles import Candle, Timeframe
from tradeguard.venues.client_ids import one_order_id
from tradeguard.venues.paper.book import BookTxn, BookView, MemoryBook, PaperBook, SqlBook
from tradeguard.venues.paper.config import PaperConfig
from tradeguard.venues.paper.engine import (
    Expire,
    Fill,
    Ledger,
    PaperOrderState,
    Trigger,
    arrival_refusal,
    evaluate,
    release,
    reservation,
    settle,
)
from tradeguard.venues.precision import checked_order, market_for, round_amount
from tradeguard.venues.types import (
    Balance,
    KeyPermissions,
    Market,
    MarketKind,
    Order,
    OrderRequest,
    OrderStatus,
    Trade,
)

__all__ = ["CandleSource", "PaperVenue"]

HISTORY_CANDLES = 10_000

T = TypeVar("T")


class CandleSource(Protocol):
    """Where `fetch_ohlcv` reads candles from, when given (e.g. a stored-data reader)."""

    def __call__(
        self, symbol: str, timeframe: Timeframe, since_ms: int | None, limit: int
    ) -> list[Candle]: ...


def _venue_order_id(seq: int) -> str:
    return f"PO{seq:010d}"


def _trade_id(seq: int) -> str:
    return f"PT{seq:010d}"


class PaperVenue:
    """A paper account that implements the `Venue` protocol.

    `markets` are the markets it trades (see `market_from_candles` for building one from
    data); `config` the fees, slippage and starting balances; `clock` stamps orders and fills
    (a `ManualClock` for replays and tests). `timeframe` is the feed's candle length, which
    `fetch_ohlcv` serves from the candles seen; `candles`, if given, serves `fetch_ohlcv`
    instead. The account is created with `config.starting_balances` the first time it opens.

    Where the account lives:

    - `PaperVenue(engine, account=..., ...)`: in the store's database. The account outlives
      the process, and two venues (or processes) on one account take turns.
    - `PaperVenue.in_memory(account=..., ...)`: in this object only, for backtests. Same
      rules, checks, errors and ids; nothing is persisted, and each call starts a new account
      from `config.starting_balances`.
    """

    name = "paper"

    def __init__(
        self,
        engine: sa.Engine,
        *,
        account: str,
        markets: Mapping[str, Market],
        config: PaperConfig | None = None,
        clock: Clock | None = None,
        timeframe: Timeframe | None = None,
        candles: CandleSource | None = None,
    ) -> None:
        self._setup(account, markets, config, clock, timeframe, candles)
        self.engine: sa.Engine | None = engine
        self._book: PaperBook = SqlBook(
            engine, account, self.config.starting_balances, self.clock.now()
        )

    @classmethod
    def in_memory(
        cls,
        *,
        account: str,
        markets: Mapping[str, Market],
        config: PaperConfig | None = None,
        clock: Clock | None = None,
        timeframe: Timeframe | None = None,
        candles: CandleSource | None = None,
    ) -> Self:
        """A venue whose account lives in memory (a `MemoryBook`), for backtests: it starts
        from `config.starting_balances` and ends with this object; `engine` is None."""
        venue = cls.__new__(cls)
        venue._setup(account, markets, config, clock, timeframe, candles)
        venue.engine = None
        venue._book = MemoryBook(account, venue.config.starting_balances)
        return venue

    def _setup(
        self,
        account: str,
        markets: Mapping[str, Market],
        config: PaperConfig | None,
        clock: Clock | None,
        timeframe: Timeframe | None,
        candles: CandleSource | None,
    ) -> None:
        if not 1 <= len(account) <= 64 or not account.isprintable():
            raise ValueError("a paper account name is 1 to 64 printable characters")
        for symbol, market in markets.items():
            if symbol != market.symbol:
                raise ValueError(f"paper markets: key {symbol!r} holds market {market.symbol!r}")
        self.config = config or PaperConfig()
        self.clock = clock or SystemClock()
        self.timeframe = timeframe
        self._markets = MappingProxyType(dict(markets))
        self._candles = candles
        self._seen: dict[str, collections.deque[Candle]] = {}
        self._closed = False

    @property
    def account(self) -> str:
        return self._book.account

    # -- plumbing ------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise VenueRejected(
                f"{self.name}: this venue was closed; open a new PaperVenue", venue=self.name
            )

    def _writing(self) -> AbstractContextManager[BookTxn]:
        self._check_open()
        return self._book.writing()

    async def _write(self, work: Callable[[BookTxn], T]) -> T:
        """`work` in one book transaction: off the event loop and grouped with other writes
        into one commit for a database book, here and now for a memory book."""
        self._check_open()
        return await self._book.write(work)

    def _reading(self) -> AbstractContextManager[BookView]:
        self._check_open()
        return self._book.reading()

    def _find(
        self,
        book: BookView,
        symbol: str,
        venue_order_id: str | None,
        client_order_id: str | None,
    ) -> PaperOrderState:
        ref = one_order_id(self.name, venue_order_id, client_order_id)
        order = book.find_order(venue_order_id=venue_order_id, client_order_id=client_order_id)
        if order is None or order.symbol != symbol:
            raise OrderNotFound(
                f"{self.name}: no order {ref} on {symbol} in paper account {self.account}",
                venue=self.name,
            )
        return order

    # -- Venue ---------------------------------------------------------------------------------

    async def load_markets(self, *, reload: bool = False) -> Mapping[str, Market]:
        self._check_open()
        return self._markets

    async def fetch_balance(self) -> Balance:
        with self._reading() as book:
            lines = book.ledger_lines()
        return Balance(MappingProxyType({c: x for c, x in lines.items() if x.total != 0}))

    async def create_order(self, request: OrderRequest) -> Order:
        """Check, hold funds and accept `request`; it fills on the candles that follow.

        A client order id this account already used returns that order (a retry); reused for
        a different order it is refused. `InvalidOrder` for a request that breaks the market's
        limits, `InsufficientFunds` when the free balance cannot cover the hold, and
        `VenueRejected` for what a real venue refuses (a stop that would trigger at once, a
        post-only order that would take, a market buy before any price is known).
        """
        market = market_for(self._markets, request.symbol, self.name)
        label = f"{self.name} {market.symbol}"
        if market.kind is not MarketKind.SPOT:
            raise InvalidOrder(
                f"{label}: the paper venue does not simulate perpetual markets yet; trade a "
                "spot market",
                venue=self.name,
            )
        if request.reduce_only:
            raise InvalidOrder(
                f"{label}: reduce_only applies to perpetual markets, not spot", venue=self.name
            )
        if not 1 <= len(request.client_order_id) <= 64:
            raise InvalidOrder(f"{label}: a client order id is 1 to 64 characters", venue=self.name)

        def place(book: BookTxn) -> Order:
            existing = book.find_order(client_order_id=request.client_order_id)
            if existing is not None:
                rounded = dataclasses.replace(request, amount=round_amount(market, request.amount))
                if existing.same_request(rounded):
                    return existing.to_order()
                raise VenueRejected(
                    f"{label}: client order id {request.client_order_id} is already used by "
                    f"order {existing.venue_order_id}, a different order; use a new id",
                    venue=self.name,
                    code="duplicate_client_order_id",
                )
            mark = book.candle_mark(market.symbol)
            last = mark.close if mark else None
            checked = checked_order(market, request, self.name, reference_price=last)
            refusal = arrival_refusal(checked, last)
            if refusal:
                raise VenueRejected(f"{label}: {refusal}", venue=self.name)
            hold = reservation(market, checked, self.config, last)
            if hold is None:
                raise VenueRejected(
                    f"{label}: no price yet to value a market buy; feed a candle first",
                    venue=self.name,
                )
            ledger = Ledger(book.ledger_lines(), self.name)
            ledger.lock(*hold)
            counters = book.counters()
            seq = counters.order_seq + 1
            now = self.clock.now()
            order = PaperOrderState(
                seq=seq,
                venue_order_id=_venue_order_id(seq),
                client_order_id=checked.client_order_id,
                symbol=checked.symbol,
                side=checked.side,
                type=checked.type,
                time_in_force=checked.time_in_force,
                amount=checked.amount,
                price=checked.price,
                stop_price=checked.stop_price,
                reduce_only=checked.reduce_only,
                status=OrderStatus.OPEN,
                filled=Decimal(0),
                average=None,
                fee=Decimal(0),
                fee_currency=None,
                locked=hold[1],
                lock_currency=hold[0],
                triggered=False,
                fresh=True,
                created_at=now,
                updated_at=now,
            )
            book.insert_order(order)
            book.save_ledger(ledger)
            book.save_counters(dataclasses.replace(counters, order_seq=seq))
            return order.to_order()

        return await self._write(place)

    async def cancel_order(
        self, symbol: str, *, venue_order_id: str | None = None, client_order_id: str | None = None
    ) -> Order:
        """Cancel an open order and release what it holds. A filled, canceled or expired
        order cannot be canceled (`OrderNotFound`, as real venues answer)."""

        def cancel(book: BookTxn) -> Order:
            order = self._find(book, symbol, venue_order_id, client_order_id)
            if order.status.is_final:
                raise OrderNotFound(
                    f"{self.name}: order {order.venue_order_id} on {symbol} is already "
                    f"{order.status}; there is nothing to cancel",
                    venue=self.name,
                )
            ledger = Ledger(book.ledger_lines(), self.name)
            release(ledger, order)
            order = dataclasses.replace(
                order,
                status=OrderStatus.CANCELED,
                locked=Decimal(0),
                updated_at=self.clock.now(),
            )
            book.update_order(order)
            book.save_ledger(ledger)
            return order.to_order()

        return await self._write(cancel)

    async def fetch_order(
        self, symbol: str, *, venue_order_id: str | None = None, client_order_id: str | None = None
    ) -> Order:
        with self._reading() as book:
            return self._find(book, symbol, venue_order_id, client_order_id).to_order()

    async def fetch_open_orders(self, symbol: str | None = None) -> list[Order]:
        with self._reading() as book:
            return [o.to_order() for o in book.open_orders(symbol)]

    async def fetch_my_trades(
        self, symbol: str, *, since_ms: int | None = None, limit: int | None = None
    ) -> list[Trade]:
        """Oldest first: from `since_ms` on, the first `limit`; without `since_ms`, the last."""
        if limit is not None and limit < 1:
            raise ValueError("limit is at least 1")
        with self._reading() as book:
            return book.select_trades(symbol, since_ms, limit)

    async def fetch_ohlcv(
        self, symbol: str, timeframe: Timeframe, *, since_ms: int | None = None, limit: int = 500
    ) -> list[Candle]:
        """From the candle source if one was given; otherwise the candles `on_candle` saw in
        this process (the last one survives a restart), if `timeframe` is the feed's."""
        self._check_open()
        if self._candles is not None:
            return self._candles(symbol, timeframe, since_ms, limit)
        if self.timeframe is None or timeframe.ms != self.timeframe.ms:
            feed = self.timeframe or "no timeframe given"
            raise VenueRejected(
                f"{self.name}: candles of {timeframe} are not available (the feed's are "
                f"{feed}); give the PaperVenue a candle source",
                venue=self.name,
            )
        seen = list(self._seen.get(symbol, ()))
        if not seen:
            with self._reading() as book:
                mark = book.candle_mark(symbol)
            seen = [mark] if mark else []
        if since_ms is not None:
            return [c for c in seen if c.ts_ms >= since_ms][:limit]
        return seen[-limit:] if limit > 0 else []

    async def check_permissions(self) -> KeyPermissions:
        self._check_open()
        return KeyPermissions(
            can_read=True,
            can_trade=True,
            can_withdraw=False,
            can_transfer=False,
            ip_restricted=None,
            expires_at=None,
            trade_kinds=frozenset({MarketKind.SPOT}),
            raw={"venue": self.name, "account": self.account},
        )

    async def close(self) -> None:
        """Stop using this venue. The engine belongs to the caller and stays open; an
        in-memory venue's state goes with the object."""
        self._closed = True

    # -- the feed ------------------------------------------------------------------------------

    async def on_candle(self, symbol: str, candle: Candle) -> list[Trade]:
        """Process one closed candle of `symbol`: fill, trigger or expire the open orders it
        reaches (in the order they were accepted) and record it as the last price. Returns the
        fills. A candle not newer than the last one processed for `symbol` is skipped (a feed
        that repeats its last candle after a restart changes nothing). With no open order on
        `symbol`, recording the candle is all it does."""
        market = self._markets.get(symbol)
        if market is None:
            raise MarketDataError(
                f"{self.name}: a candle for {symbol}, which is not one of its markets; add the "
                "market to the PaperVenue"
            )
        if not candle.is_consistent():
            raise MarketDataError(
                f"{self.name}: the {symbol} candle at {candle.ts_ms} is inconsistent (its high "
                "or low does not bound its prices, or a value is negative); check the feed"
            )

        def process(book: BookTxn) -> list[Trade] | None:
            mark = book.candle_mark(symbol)
            if mark is not None and candle.ts_ms <= mark.ts_ms:
                return None
            orders = book.open_orders(symbol)
            fills = self._fill(book, market, candle, orders) if orders else []
            book.save_mark(symbol, candle)
            return fills

        fills = await self._write(process)
        if fills is None:
            return []
        seen = self._seen.get(symbol)
        if seen is None:
            seen = self._seen[symbol] = collections.deque(maxlen=HISTORY_CANDLES)
        seen.append(candle)
        return fills

    def _fill(
        self, book: BookTxn, market: Market, candle: Candle, orders: list[PaperOrderState]
    ) -> list[Trade]:
        """Apply `candle` to the open `orders` of its market, in `book`; the fills."""
        fills: list[Trade] = []
        ledger = Ledger(book.ledger_lines(), self.name)
        now = self.clock.now()
        counters = book.counters()
        trade_seq = counters.trade_seq
        for order in orders:
            decision = evaluate(order, candle, self.config)
            if isinstance(decision, Fill):
                done = settle(ledger, market, order, decision, self.config, now)
                updated = done.order
                if done.filled:
                    trade_seq += 1
                    trade = Trade(
                        trade_id=_trade_id(trade_seq),
                        venue_order_id=order.venue_order_id,
                        client_order_id=order.client_order_id,
                        symbol=market.symbol,
                        side=order.side,
                        price=decision.price,
                        amount=order.amount - order.filled,
                        fee=done.fee,
                        fee_currency=market.quote,
                        liquidity=decision.liquidity,
                        at=now,
                    )
                    book.insert_trade(trade_seq, trade)
                    fills.append(trade)
            elif isinstance(decision, Expire):
                release(ledger, order)
                updated = dataclasses.replace(
                    order,
                    status=OrderStatus.EXPIRED,
                    locked=Decimal(0),
                    fresh=False,
                    updated_at=now,
                )
            elif isinstance(decision, Trigger):
                updated = dataclasses.replace(order, triggered=True, fresh=False, updated_at=now)
            elif order.fresh:
                updated = dataclasses.replace(order, fresh=False)
            else:
                continue
            book.update_order(updated)
        book.save_ledger(ledger)
        if trade_seq != counters.trade_seq:
            book.save_counters(dataclasses.replace(counters, trade_seq=trade_seq))
        return fills

    def last_candle(self, symbol: str) -> Candle | None:
        """The last candle processed for `symbol` (in the database, it survives restarts)."""
        with self._reading() as book:
            return book.candle_mark(symbol)
