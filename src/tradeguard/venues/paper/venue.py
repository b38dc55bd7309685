"""`PaperVenue`: the built-in venue that fills orders against candles, persisted in the store.

    venue = PaperVenue(engine, account="alice-paper", markets=markets, clock=clock)
    await venue.create_order(request)          # checked, funds held, resting
    await venue.on_candle("ETH/BTC", candle)   # fills what the candle triggers

One instance is one paper account. Its balances, orders, fills and the last candle per symbol
live in the database (migration 0005), so a new `PaperVenue` on the same database continues
exactly where the last one stopped. Every state change (an order, a cancel, a candle) is one
transaction that locks the account row first. Fill rules: `tradeguard.venues.paper.engine`.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from decimal import Decimal
from types import MappingProxyType
from typing import Protocol

import sqlalchemy as sa

from tradeguard.core.clock import Clock, SystemClock
from tradeguard.core.errors import (
    InvalidOrder,
    MarketDataError,
    OrderNotFound,
    VenueRejected,
)
from tradeguard.marketdata.candles import Candle, Timeframe
from tradeguard.store.engine import for_writing
from tradeguard.venues.client_ids import one_order_id
from tradeguard.venues.paper import store
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
        if not 1 <= len(account) <= 64 or not account.isprintable():
            raise ValueError("a paper account name is 1 to 64 printable characters")
        for symbol, market in markets.items():
            if symbol != market.symbol:
                raise ValueError(f"paper markets: key {symbol!r} holds market {market.symbol!r}")
        self.engine = engine
        self.config = config or PaperConfig()
        self.clock = clock or SystemClock()
        self.timeframe = timeframe
        self._markets = MappingProxyType(dict(markets))
        self._candles = candles
        self._seen: dict[str, collections.deque[Candle]] = {}
        self._closed = False
        self._account = store.ensure_account(
            engine, account, self.config.starting_balances, self.clock.now()
        )

    @property
    def account(self) -> str:
        return self._account.name

    # -- plumbing ------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise VenueRejected(
                f"{self.name}: this venue was closed; open a new PaperVenue", venue=self.name
            )

    @contextmanager
    def _writing(self) -> Iterator[tuple[sa.Connection, store.AccountRow]]:
        self._check_open()
        with for_writing(self.engine.connect()) as conn, conn.begin():
            yield conn, store.lock_account(conn, self._account.id)

    @contextmanager
    def _reading(self) -> Iterator[sa.Connection]:
        self._check_open()
        with self.engine.connect() as conn:
            yield conn

    def _find(
        self,
        conn: sa.Connection,
        symbol: str,
        venue_order_id: str | None,
        client_order_id: str | None,
    ) -> PaperOrderState:
        ref = one_order_id(self.name, venue_order_id, client_order_id)
        order = store.find_order(
            conn,
            self._account.id,
            venue_order_id=venue_order_id,
            client_order_id=client_order_id,
        )
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
        with self._reading() as conn:
            lines = store.ledger_lines(conn, self._account.id)
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
        with self._writing() as (conn, account):
            existing = store.find_order(conn, account.id, client_order_id=request.client_order_id)
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
            mark = store.candle_mark(conn, account.id, market.symbol)
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
            ledger = Ledger(store.ledger_lines(conn, account.id), self.name)
            ledger.lock(*hold)
            seq = account.order_seq + 1
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
            store.insert_order(conn, account.id, order)
            store.save_ledger(conn, account.id, ledger)
            store.save_counters(conn, dataclasses.replace(account, order_seq=seq))
        return order.to_order()

    async def cancel_order(
        self, symbol: str, *, venue_order_id: str | None = None, client_order_id: str | None = None
    ) -> Order:
        """Cancel an open order and release what it holds. A filled, canceled or expired
        order cannot be canceled (`OrderNotFound`, as real venues answer)."""
        with self._writing() as (conn, account):
            order = self._find(conn, symbol, venue_order_id, client_order_id)
            if order.status.is_final:
                raise OrderNotFound(
                    f"{self.name}: order {order.venue_order_id} on {symbol} is already "
                    f"{order.status}; there is nothing to cancel",
                    venue=self.name,
                )
            ledger = Ledger(store.ledger_lines(conn, account.id), self.name)
            release(ledger, order)
            order = dataclasses.replace(
                order,
                status=OrderStatus.CANCELED,
                locked=Decimal(0),
                updated_at=self.clock.now(),
            )
            store.update_order(conn, account.id, order)
            store.save_ledger(conn, account.id, ledger)
        return order.to_order()

    async def fetch_order(
        self, symbol: str, *, venue_order_id: str | None = None, client_order_id: str | None = None
    ) -> Order:
        with self._reading() as conn:
            return self._find(conn, symbol, venue_order_id, client_order_id).to_order()

    async def fetch_open_orders(self, symbol: str | None = None) -> list[Order]:
        with self._reading() as conn:
            return [o.to_order() for o in store.open_orders(conn, self._account.id, symbol)]

    async def fetch_my_trades(
        self, symbol: str, *, since_ms: int | None = None, limit: int | None = None
    ) -> list[Trade]:
        """Oldest first: from `since_ms` on, the first `limit`; without `since_ms`, the last."""
        if limit is not None and limit < 1:
            raise ValueError("limit is at least 1")
        with self._reading() as conn:
            return store.select_trades(conn, self._account.id, symbol, since_ms, limit)

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
            with self._reading() as conn:
                mark = store.candle_mark(conn, self._account.id, symbol)
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
        """Stop using this venue. The engine belongs to the caller and stays open."""
        self._closed = True

    # -- the feed ------------------------------------------------------------------------------

    async def on_candle(self, symbol: str, candle: Candle) -> list[Trade]:
        """Process one closed candle of `symbol`: fill, trigger or expire the open orders it
        reaches (in the order they were accepted) and record it as the last price. Returns the
        fills. A candle not newer than the last one processed for `symbol` is skipped (a feed
        that repeats its last candle after a restart changes nothing)."""
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
        fills: list[Trade] = []
        with self._writing() as (conn, account):
            mark = store.candle_mark(conn, account.id, symbol)
            if mark is not None and candle.ts_ms <= mark.ts_ms:
                return []
            ledger = Ledger(store.ledger_lines(conn, account.id), self.name)
            now = self.clock.now()
            trade_seq = account.trade_seq
            for order in store.open_orders(conn, account.id, symbol):
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
                            symbol=symbol,
                            side=order.side,
                            price=decision.price,
                            amount=order.amount - order.filled,
                            fee=done.fee,
                            fee_currency=market.quote,
                            liquidity=decision.liquidity,
                            at=now,
                        )
                        store.insert_trade(conn, account.id, trade_seq, trade)
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
                    updated = dataclasses.replace(
                        order, triggered=True, fresh=False, updated_at=now
                    )
                elif order.fresh:
                    updated = dataclasses.replace(order, fresh=False)
                else:
                    continue
                store.update_order(conn, account.id, updated)
            store.save_mark(conn, account.id, symbol, candle)
            store.save_ledger(conn, account.id, ledger)
            store.save_counters(conn, dataclasses.replace(account, trade_seq=trade_seq))
        self._seen.setdefault(symbol, collections.deque(maxlen=HISTORY_CANDLES)).append(candle)
        return fills

    def last_candle(self, symbol: str) -> Candle | None:
        """The last candle processed for `symbol` (from the database: it survives restarts)."""
        with self._reading() as conn:
            return store.candle_mark(conn, self._account.id, symbol)
