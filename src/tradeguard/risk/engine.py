"""`RiskEngine`: the checks every order passes, the trading states and the circuit breakers.

    engine = RiskEngine(clock=clock, events=audit, store=SqlRiskStore(db))
    engine.add_account("paper:alice", markets, balance)
    engine.register_bot("sma-eth", user="alice", account="paper:alice", limits=limits)
    decision = engine.pre_trade("sma-eth", intent)      # Approval (booked) or Denial
    trips = engine.on_fill("sma-eth", trade)             # breakers, from the fill

`pre_trade` checks and books the order under one lock, so two orders checked at the same time
cannot both use the last unit of a limit. It never raises on bad input and never changes
anything when it denies. Nothing here does I/O except the store (states, trips, books), which
is written on state changes and fills, never on the pre-trade path.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from tradeguard.core.clock import Clock, SystemClock
from tradeguard.core.errors import ConfigError, MarketDataError
from tradeguard.core.events import Detail, DomainEvent, EventName, EventSink, LogSink
from tradeguard.risk.book import BotBook, ClosedTrade, OpenOrder, worst_size
from tradeguard.risk.breakers import BotMeters, Reading, UserMeters, judge
from tradeguard.risk.decisions import Approval, Denial, Reason
from tradeguard.risk.intents import OrderIntent, parse
from tradeguard.risk.limits import BotLimits, OperatorPolicy, UserLimits
from tradeguard.risk.states import GLOBAL, Scope, ScopeKind, TradingState, strictest
from tradeguard.risk.store import BotRecord, RiskStore, TripRecord
from tradeguard.risk.zones import VolatilityZones, Zone, ZoneConfig
from tradeguard.venues.precision import Problem, check_order
from tradeguard.venues.types import (
    Balance,
    Market,
    MarketKind,
    OrderRequest,
    OrderType,
    Side,
    Trade,
)

__all__ = ["Mode", "RiskEngine", "Trip"]

ZERO = Decimal(0)
HUNDRED = Decimal(100)
# Enum members the pre-trade path compares against, as module constants: on Python 3.11
# `Side.BUY` costs a descriptor call (~90 ns), a global a dict lookup.
BUY, SELL = Side.BUY, Side.SELL
SPOT = MarketKind.SPOT
STOP_MARKET, STOP_LIMIT = OrderType.STOP_MARKET, OrderType.STOP_LIMIT
ACTIVE, REDUCING, HALTED = TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED
RATE_WINDOW = 60.0  # seconds: the submit and modify limits are per minute


class Mode(StrEnum):
    PAPER = "paper"
    LIVE = "live"


@dataclass(frozen=True, slots=True)
class Trip:
    """A breaker that tripped: `scope` is now HALTED. `cancel` are the open orders to cancel;
    `close` the positions to close (symbol, signed quantity) when the bot asked for that."""

    scope: Scope
    reading: Reading
    at: datetime
    cancel: tuple[tuple[str, OpenOrder], ...]
    close: tuple[tuple[str, str, Decimal], ...] = ()  # (bot, symbol, qty)


@dataclass(slots=True)
class _Account:
    name: str
    markets: Mapping[str, Market]
    totals: dict[str, Decimal]
    marks: dict[str, Decimal] = field(default_factory=dict)  # change only through set_mark
    bots: list[_Bot] = field(default_factory=list)
    # the spot symbols whose buys are paid in a currency, and whose sells sell it
    _paid_in: dict[str, list[str]] = field(default_factory=dict)
    _selling: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for symbol, market in self.markets.items():
            if market.kind is SPOT:  # a perpetual's order holds margin, not cash
                self._paid_in.setdefault(market.quote, []).append(symbol)
                self._selling.setdefault(market.base, []).append(symbol)

    def set_mark(self, symbol: str, price: Decimal) -> None:
        self.marks[symbol] = price
        for bot in self.bots:
            bot.book.revalue(symbol)

    def held(self, currency: str, side: Side) -> Decimal:
        """What the open spot orders on `side` of every bot of the account hold in
        `currency`: buys paid in it their value, sells of it their amount."""
        buying = side is BUY
        symbols = (self._paid_in if buying else self._selling).get(currency, ())
        held = ZERO
        for bot in self.bots:
            open_symbols = bot.book.open_symbols()
            for symbol in symbols:
                sides = open_symbols.get(symbol)
                if sides is not None:
                    held += sides.buy.value if buying else sides.sell.amount
        return held


@dataclass(slots=True)
class _User:
    name: str
    limits: UserLimits
    meters: UserMeters = field(default_factory=UserMeters)
    bots: list[_Bot] = field(default_factory=list)


@dataclass(slots=True)
class _Bot:
    name: str
    scope: Scope
    user_scope: Scope
    user: _User
    account: _Account
    mode: Mode
    limits: BotLimits
    book: BotBook
    meters: BotMeters
    submits: deque[float] = field(default_factory=deque)
    modifies: deque[float] = field(default_factory=deque)
    # (book version, gross exposure at the marks): kept while the version stands, as every
    # order of the user's other bots is checked against it
    _gross: tuple[int, Decimal] = (-1, ZERO)

    def mark(self, symbol: str) -> Decimal | None:
        return self.account.marks.get(symbol)

    def gross(self) -> Decimal:
        """The bot's worst-case gross exposure at its account's marks."""
        version, gross = self._gross
        if version != self.book.version:
            gross = self.book.gross(self.account.marks)
            self._gross = (self.book.version, gross)
        return gross

    def equity(self) -> Decimal:
        unrealized = ZERO
        for symbol, position in self.book.positions.items():
            if position.qty:
                mark = self.account.marks.get(symbol, position.avg_price)
                unrealized += position.unrealized(mark)
        return self.limits.capital + self.book.realized + unrealized


class RiskEngine:
    """The risk engine of one process. Thread-safe; every public method takes one lock."""

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        events: EventSink | None = None,
        store: RiskStore | None = None,
        policy: OperatorPolicy | None = None,
        zones: ZoneConfig | None = None,
    ) -> None:
        self.clock = clock or SystemClock()
        self.events: EventSink = events or LogSink()
        self.store = store
        self.policy = policy or OperatorPolicy()
        self.zones = VolatilityZones(zones or ZoneConfig())
        self._lock = threading.RLock()
        self._states: dict[Scope, TradingState] = {}
        self._accounts: dict[str, _Account] = {}
        self._users: dict[str, _User] = {}
        self._bots: dict[str, _Bot] = {}
        # Told of every closed trade (bot, trade), after the breakers counted it: a backtest
        # reports the engine's own trades rather than a second bookkeeping of its own.
        self.on_closed: Callable[[str, ClosedTrade], None] | None = None
        if store is not None:
            self._states.update(store.load_states())

    # -- set-up --------------------------------------------------------------------------------

    def add_account(
        self, name: str, markets: Mapping[str, Market], balance: Balance | None = None
    ) -> None:
        """A venue account bots trade on: its markets and (for the balance checks) balances."""
        with self._lock:
            if name in self._accounts:
                raise ConfigError(f"risk: account {name!r} is already added")
            self._accounts[name] = _Account(name, dict(markets), {})
            if balance is not None:
                self.set_balance(name, balance)

    def set_balance(self, account: str, balance: Balance) -> None:
        """The account's balances as the venue reports them (after a sync with the venue)."""
        with self._lock:
            self._account(account).totals = {c: line.total for c, line in balance.lines.items()}

    def set_user_limits(self, user: str, limits: UserLimits) -> None:
        """The user's ceilings; refused if a registered bot is above them, or if a live bot
        would lose what live trading needs (the portfolio breaker)."""
        with self._lock:
            record = self._user(user)
            for bot in record.bots:
                limits.check_bot(bot.limits, where=f"bot {bot.name}")
                if bot.mode is Mode.LIVE:
                    self.policy.check_live(bot.name, bot.limits, limits)
            record.limits = limits

    def _user(self, name: str) -> _User:
        """The user's record, created (with its stored portfolio meters) on first use."""
        user = self._users.get(name)
        if user is None:
            user = _User(name, UserLimits())
            saved = self.store.load_user(name) if self.store is not None else None
            if saved is not None:
                user.meters = saved
            self._users[name] = user
        return user

    def register_bot(
        self,
        name: str,
        *,
        user: str,
        account: str,
        limits: BotLimits,
        mode: Mode = Mode.PAPER,
    ) -> None:
        """Hold bot `name` to `limits`. Refused (`ConfigError`, naming the field) when the
        limits pass a user ceiling, a live bot loosens a breaker past the operator's ceiling,
        or a symbol is not a market of the account. A bot seen before continues its book,
        breaker meters and trading state from the store."""
        scope = Scope.bot(name)
        with self._lock:
            if name in self._bots:
                raise ConfigError(f"risk: bot {name!r} is already registered")
            venue_account = self._account(account)
            owner = self._user(user)
            where = f"bot {name}"
            owner.limits.check_bot(limits, where=where)
            if mode is Mode.LIVE:
                self.policy.check_live(name, limits, owner.limits)
            unknown = sorted(limits.symbols - set(venue_account.markets))
            if unknown:
                raise ConfigError(
                    f"{where}: symbol {unknown[0]!r} is not a market of account {account}"
                )
            now = self.clock.now()
            saved = self.store.load_bot(name) if self.store is not None else None
            if saved is not None and (saved.user, saved.account) != (user, account):
                raise ConfigError(
                    f"{where}: this bot belongs to user {saved.user} on account {saved.account}; "
                    "a bot keeps its user and account (register a new bot instead)"
                )
            if (
                self.store is not None
                and mode is Mode.LIVE
                and (saved is None or not saved.promoted_at)
            ):
                raise ConfigError(
                    f"{where}: not promoted to live trading; its paper record must pass "
                    f"`tradeguard bots promote {name}` first"
                )
            book = saved.book if saved is not None else BotBook()
            meters = saved.meters if saved is not None else BotMeters.starting(limits.capital, now)
            bot = _Bot(
                name, scope, Scope.user(user), owner, venue_account, mode, limits, book, meters
            )
            self._bots[name] = bot
            owner.bots.append(bot)
            venue_account.bots.append(bot)
            owner.meters.observe(sum((b.equity() for b in owner.bots), ZERO))
            if self.store is not None:
                self.store.save_bot(self._record(bot), self.clock.now())
            self._emit(
                EventName.RISK_BOT_REGISTERED,
                subject=str(scope),
                details={"user": user, "account": account, "mode": mode.value},
            )

    def restore_order(self, bot: str, order: OpenOrder) -> None:
        """An order found open at the venue after a restart: book it so limits count it."""
        with self._lock:
            self._bot(bot).book.add_order(order)

    # -- market data ---------------------------------------------------------------------------

    def on_price(self, account: str, symbol: str, price: Decimal) -> list[Trip]:
        """The last trade price of `symbol` on `account`: marks positions, runs the equity
        breakers of the bots holding it."""
        if not isinstance(price, Decimal) or not price.is_finite() or price <= 0:
            raise MarketDataError(
                f"risk: a last price for {symbol} on {account} must be a positive finite "
                f"Decimal, not {price!r}; check the feed"
            )
        with self._lock:
            venue_account = self._account(account)
            venue_account.set_mark(symbol, price)
            holders = [b for b in venue_account.bots if b.book.qty(symbol)]
            trips = self._evaluate(holders)
            if self.store is not None:
                now = self.clock.now()
                for bot in holders:  # a peak or a day start seen only in marks must survive
                    self.store.save_bot(self._record(bot), now)
            return trips

    def on_close(self, account: str, symbol: str, close: Decimal) -> list[Trip]:
        """A closed candle's close: the volatility zone, then the mark (`on_price`)."""
        with self._lock:
            self.zones.add(f"{account}|{symbol}", close)
            return self.on_price(account, symbol, close)

    def zone(self, account: str, symbol: str) -> Zone | None:
        with self._lock:
            return self.zones.zone(f"{account}|{symbol}")

    # -- pre-trade -----------------------------------------------------------------------------

    def pre_trade(self, bot: str, intent: OrderIntent | OrderRequest) -> Approval | Denial:
        """Check one new order; on approval it is booked as open (the limits count it) until
        `order_ended` or its fills close it."""
        with self._lock:
            record = self._bots.get(bot)
            if record is None:
                return Denial(Reason.UNKNOWN_BOT, f"no bot {bot!r} is registered with the engine")
            decision = self._checked(record, intent, replacing=None)
            if isinstance(decision, Approval):
                self._book(record, decision)
                record.submits.append(self.clock.monotonic())
            return decision

    def pre_modify(
        self,
        bot: str,
        client_order_id: str,
        *,
        amount: Decimal | None = None,
        price: Decimal | None = None,
        new_client_order_id: str | None = None,
    ) -> Approval | Denial:
        """Check replacing an open order's amount and/or price. The replacement is checked as
        a new order with the old one's share taken out; on approval the old order is unbooked
        and the replacement booked (under `new_client_order_id`, or the same id)."""
        with self._lock:
            record = self._bots.get(bot)
            if record is None:
                return Denial(Reason.UNKNOWN_BOT, f"no bot {bot!r} is registered with the engine")
            old = record.book.orders.get(client_order_id)
            if old is None:
                return Denial(
                    Reason.UNKNOWN_ORDER, f"bot {bot} has no open order {client_order_id!r}"
                )
            state = self._effective(record)
            if state is HALTED:
                return self._state_denial(record, state)
            used = self._recent(record.modifies)
            if used >= record.limits.max_modifies_per_minute:
                return Denial(
                    Reason.MODIFY_RATE,
                    f"max_modifies_per_minute is {record.limits.max_modifies_per_minute}; the "
                    f"bot modified {used} orders in the last minute",
                )
            intent = OrderIntent(
                client_order_id=new_client_order_id or client_order_id,
                symbol=old.symbol,
                side=old.side.value,
                type=OrderType.LIMIT.value,
                amount=old.remaining if amount is None else amount,
                price=old.price if price is None else price,
                reduce_only=old.reduce_only,
            )
            decision = self._checked(record, intent, replacing=old)
            if isinstance(decision, Approval):
                record.book.end_order(client_order_id)
                self._book(record, decision)
                record.modifies.append(self.clock.monotonic())
            return decision

    def order_ended(self, bot: str, client_order_id: str) -> None:
        """The order is no longer open (canceled, rejected, expired, or never sent)."""
        with self._lock:
            self._bot(bot).book.end_order(client_order_id)

    def _book(self, bot: _Bot, approval: Approval) -> None:
        request = approval.request
        market = bot.account.markets[request.symbol]
        bot.book.add_order(
            OpenOrder(
                client_order_id=request.client_order_id,
                symbol=request.symbol,
                kind=market.kind,
                side=request.side,
                remaining=request.amount,
                price=approval.reference,
                reduce_only=request.reduce_only,
            )
        )

    def _checked(
        self, bot: _Bot, intent: OrderIntent | OrderRequest, replacing: OpenOrder | None
    ) -> Approval | Denial:
        try:
            return self._check(bot, intent, replacing)
        except ArithmeticError:
            # A number so large or so fine that Decimal cannot divide it by the tick or step:
            # no market trades it, and nothing was booked.
            return Denial(
                Reason.MALFORMED,
                "an amount or price is out of any market's range; check the order's numbers",
            )

    def _check(
        self, bot: _Bot, intent: OrderIntent | OrderRequest, replacing: OpenOrder | None
    ) -> Approval | Denial:
        request = parse(intent)
        if isinstance(request, Denial):
            return request
        clash = bot.book.orders.get(request.client_order_id)
        if clash is not None and clash is not replacing:
            return Denial(
                Reason.MALFORMED,
                f"client_order_id {request.client_order_id!r} is already an open order of "
                "this bot; use a new id",
            )
        market = bot.account.markets.get(request.symbol)
        denial = self._market_denial(bot, request, market)
        if denial is not None:
            return denial
        assert market is not None  # noqa: S101 - _market_denial refuses a missing market
        state = self._effective(bot)
        if state is HALTED:
            return self._state_denial(bot, state)
        mark = bot.mark(request.symbol)
        if mark is None:
            return Denial(
                Reason.NO_PRICE,
                f"no last trade price for {request.symbol} yet; orders wait for market data",
            )
        checked = check_order(market, request, f"{bot.account.name} {market.symbol}", mark)
        if isinstance(checked, Problem):
            return Denial(Reason(checked.breach.value), checked.message)
        if replacing is not None:
            bot.book.end_order(replacing.client_order_id)
        try:
            return self._limits(bot, checked, market, mark, state, replacing is not None)
        finally:
            if replacing is not None:
                bot.book.add_order(replacing)

    def _market_denial(
        self, bot: _Bot, request: OrderRequest, market: Market | None
    ) -> Denial | None:
        if market is None:
            return Denial(
                Reason.UNKNOWN_MARKET,
                f"account {bot.account.name} has no market {request.symbol!r}",
            )
        if request.symbol not in bot.limits.symbols:
            return Denial(
                Reason.MARKET_NOT_ENABLED,
                f"{request.symbol} is not one of the bot's symbols "
                f"({', '.join(sorted(bot.limits.symbols))})",
            )
        if not market.active:
            return Denial(Reason.MARKET_INACTIVE, f"{request.symbol} is not trading now")
        if request.reduce_only and market.kind is SPOT:
            return Denial(
                Reason.UNSUPPORTED, f"{request.symbol} is a spot market; reduce_only is for perps"
            )
        return None

    def _limits(
        self,
        bot: _Bot,
        request: OrderRequest,
        market: Market,
        mark: Decimal,
        state: TradingState,
        modifying: bool,
    ) -> Approval | Denial:
        band = self._band_denial(bot, request, mark)
        if band is not None:
            return band
        reference = request.price or request.stop_price or mark
        if request.type is STOP_MARKET:
            reference = max(request.stop_price or mark, mark)
        book, symbol, amount = bot.book, request.symbol, request.amount
        buying, spot = request.side is BUY, market.kind is SPOT
        qty, buys, sells = book.sizes(symbol)
        before = worst_size(qty, buys, sells)
        if buying:
            after = worst_size(qty, buys, sells, amount, ZERO)
        else:
            after = worst_size(qty, buys, sells, ZERO, amount)
        growing = after > before
        on_its_side = buys if buying else sells  # the bot's open orders on the order's side
        # reducing: the order and every open order on its side fit inside the position
        reducing = qty != 0 and buying == (qty < 0) and amount + on_its_side <= abs(qty)
        if state is REDUCING and not reducing:
            return self._state_denial(bot, state)
        if request.reduce_only and not reducing:
            held = "no position" if qty == 0 else f"a position of {qty}"
            return Denial(
                Reason.REDUCE_ONLY,
                f"reduce-only {request.side} {amount} {symbol} would not reduce: the bot has "
                f"{held} and {on_its_side} already on that side",
            )
        if spot and not buying:
            selling = amount + sells
            if selling > qty:
                return Denial(
                    Reason.SPOT_SHORT,
                    f"selling {selling} {market.base} (with open sells) but the bot holds {qty}; "
                    "a spot bot sells only what it bought",
                )
        if growing:
            denial = self._growth_denial(bot, request, market, reference, mark, after)
            if denial is not None:
                return denial
        if not modifying:
            denial = self._rate_denial(bot)
            if denial is not None:
                return denial
        if growing or spot:
            denial = self._funds_denial(bot, request, market, reference)
            if denial is not None:
                return denial
        return Approval(request, reference)

    def _band_denial(self, bot: _Bot, request: OrderRequest, mark: Decimal) -> Denial | None:
        price = request.price
        if price is None:
            return None
        anchor = request.stop_price if request.type is STOP_LIMIT else mark
        assert anchor is not None  # noqa: S101 - a stop-limit has a stop price
        band = bot.limits.price_band_pct
        if abs(price - anchor) * HUNDRED > band * anchor:  # more than band% from the anchor
            off = abs(price - anchor) / anchor * HUNDRED
            what = "stop price" if request.type is STOP_LIMIT else "last price"
            return Denial(
                Reason.PRICE_BAND,
                f"limit price {price} is {off:.2f}% from the {what} {anchor}; "
                f"price_band_pct is {band}",
            )
        return None

    def _growth_denial(
        self,
        bot: _Bot,
        request: OrderRequest,
        market: Market,
        reference: Decimal,
        mark: Decimal,
        after: Decimal,
    ) -> Denial | None:
        limits, symbol = bot.limits, request.symbol
        # Classifying costs work (deferred since the last ask); a bot that blocks no zone
        # does not need it.
        zone = self.zones.zone(f"{bot.account.name}|{symbol}") if limits.blocked_zones else None
        if zone is not None and zone in limits.blocked_zones:
            return Denial(
                Reason.ZONE,
                f"{symbol} is in volatility zone {zone}; entries are blocked in "
                f"{', '.join(sorted(z.value for z in limits.blocked_zones))} (exits pass)",
            )
        notional = request.amount * reference
        if limits.max_order_notional is not None and notional > limits.max_order_notional:
            return Denial(
                Reason.ORDER_NOTIONAL,
                f"order notional {notional:.8g} {market.quote} is above max_order_notional "
                f"{limits.max_order_notional}",
            )
        position = after * mark
        cap = limits.max_position_notional
        if cap is not None and position > cap:
            return Denial(
                Reason.POSITION_NOTIONAL,
                f"{symbol} position could reach {position:.8g} {market.quote} with open orders; "
                f"max_position_notional is {cap}",
            )
        gross = bot.book.gross(bot.account.marks, (symbol, after))
        cap = limits.max_gross_exposure
        if cap is not None and gross > cap:
            return Denial(
                Reason.BOT_EXPOSURE,
                f"the bot's gross exposure could reach {gross:.8g}; max_gross_exposure is {cap}",
            )
        cap = bot.user.limits.max_gross_exposure
        if cap is not None:
            others = ZERO
            for other in bot.user.bots:
                if other is not bot:
                    others += other.gross()
            total = gross + others
            if total > cap:
                return Denial(
                    Reason.USER_EXPOSURE,
                    f"user {bot.user.name}'s gross exposure could reach {total:.8g}; the user's "
                    f"max_gross_exposure is {cap}",
                )
        return None

    def _recent(self, times: deque[float]) -> int:
        horizon = self.clock.monotonic() - RATE_WINDOW
        while times and times[0] <= horizon:
            times.popleft()
        return len(times)

    def _rate_denial(self, bot: _Bot) -> Denial | None:
        limits = bot.limits
        if len(bot.book.orders) >= limits.max_open_orders:
            return Denial(
                Reason.OPEN_ORDERS,
                f"max_open_orders is {limits.max_open_orders}; the bot has "
                f"{len(bot.book.orders)} open",
            )
        used = self._recent(bot.submits)
        if used >= limits.max_submits_per_minute:
            return Denial(
                Reason.SUBMIT_RATE,
                f"max_submits_per_minute is {limits.max_submits_per_minute}; the bot sent "
                f"{used} orders in the last minute (denied, not queued)",
            )
        return None

    def _funds_denial(
        self, bot: _Bot, request: OrderRequest, market: Market, reference: Decimal
    ) -> Denial | None:
        if market.kind is not SPOT:
            return self._margin_denial(bot, request, market, reference)
        # Cash pays for spot orders only (a perpetual order holds margin): every open spot
        # buy in the quote currency holds its value, every open spot sell of the base its
        # amount, whichever bot of the account sent it.
        account = bot.account
        if request.side is BUY:
            currency, need = market.quote, request.amount * reference
        else:
            currency, need = market.base, request.amount
        held = account.held(currency, request.side)
        have = account.totals.get(currency, ZERO)
        if held + need > have:
            return Denial(
                Reason.BALANCE,
                f"needs {need:.8g} {currency} with {held:.8g} held by open orders; the "
                f"account has {have:.8g}",
            )
        return None

    def _margin_denial(
        self,
        bot: _Bot,
        request: OrderRequest,
        market: Market,
        reference: Decimal,
    ) -> Denial | None:
        account = bot.account
        settle = market.settle or market.quote
        equity, used = account.totals.get(settle, ZERO), ZERO
        for other in account.bots:
            for symbol, position in other.book.positions.items():
                held = account.markets.get(symbol)
                if (
                    not position.qty
                    or held is None
                    or held.kind is not MarketKind.SWAP
                    or (held.settle or held.quote) != settle
                ):
                    continue  # spot holdings are paid for in cash: they use no margin
                mark = account.marks.get(symbol, position.avg_price)
                equity += position.unrealized(mark)
                used += abs(position.qty) * mark / other.limits.leverage
            used += sum(
                (
                    o.remaining * o.price / other.limits.leverage
                    for o in other.book.orders.values()
                    if o.kind is MarketKind.SWAP and not o.reduce_only
                ),
                ZERO,
            )
        need = request.amount * reference / bot.limits.leverage
        if used + need > equity:
            return Denial(
                Reason.MARGIN,
                f"needs {need:.8g} {settle} of margin at leverage {bot.limits.leverage}; free "
                f"margin is {equity - used:.8g} {settle}",
            )
        return None

    def closing_order(self, bot: str, symbol: str, client_order_id: str) -> Approval | None:
        """A market order that closes the bot's whole position in `symbol`, booked: the one
        order a HALTED bot may send, because a breaker trip asked for it
        (`close_positions_on_trip`). None when there is nothing to close."""
        with self._lock:
            record = self._bot(bot)
            qty = record.book.qty(symbol)
            market = record.account.markets.get(symbol)
            side = SELL if qty > 0 else BUY
            # what closing orders already on their way cover is not closed twice (a bot trip
            # and its user's trip on the same mark both ask for the close)
            amount = abs(qty) - record.book.open_amount(symbol, side)
            if not qty or market is None or amount <= 0:
                return None
            request = OrderRequest(
                client_order_id=client_order_id,
                symbol=symbol,
                side=side,
                type=OrderType.MARKET,
                amount=amount,
                reduce_only=market.kind is MarketKind.SWAP,
            )
            approval = Approval(request, record.mark(symbol) or ZERO)
            self._book(record, approval)
            return approval

    # -- post-trade ----------------------------------------------------------------------------

    def on_fill(self, bot: str, trade: Trade) -> list[Trip]:
        """Book one fill of the bot's order; the breakers it tripped (their scopes are HALTED
        before this returns)."""
        with self._lock:
            record = self._bot(bot)
            market = record.account.markets[trade.symbol]
            record.book.fill_order(trade.client_order_id or "", trade.amount)
            fee_quote = trade.fee if trade.fee_currency == market.quote else ZERO
            fee_base = trade.fee if trade.fee_currency == market.base else ZERO
            realized = record.book.realized
            closed = record.book.apply_fill(
                trade.symbol, trade.side, trade.amount, trade.price, fee_quote, fee_base, trade.at
            )
            self._settle_account(record, market, trade, record.book.realized - realized)
            record.account.set_mark(trade.symbol, trade.price)
            for done in closed:
                record.meters.record.add(done.pnl)
            if self.on_closed is not None:
                for done in closed:
                    self.on_closed(bot, done)
            trips = self._evaluate([record])
            if self.store is not None:
                self.store.save_fill(self._record(record), closed, self.clock.now(), trade)
            return trips

    def _settle_account(self, bot: _Bot, market: Market, trade: Trade, pnl: Decimal) -> None:
        totals = bot.account.totals
        if market.kind is MarketKind.SWAP:
            settle = market.settle or market.quote
            totals[settle] = totals.get(settle, ZERO) + pnl
            return
        sign = 1 if trade.side is BUY else -1
        base = trade.amount - (trade.fee if trade.fee_currency == market.base else ZERO)
        quote = trade.amount * trade.price
        quote_fee = trade.fee if trade.fee_currency == market.quote else ZERO
        totals[market.base] = totals.get(market.base, ZERO) + sign * base
        totals[market.quote] = totals.get(market.quote, ZERO) - sign * quote - quote_fee

    def _evaluate(self, bots: Iterable[_Bot]) -> list[Trip]:
        now = self.clock.now()
        trips: list[Trip] = []
        users: dict[str, _User] = {}
        for bot in bots:
            bot.meters.observe(bot.equity(), now)
            users[bot.user.name] = bot.user
            limits = bot.limits.breakers
            found, warnings = judge(
                bot.meters.readings(limits), bot.meters.warned, limits.warn_at_pct
            )
            self._warn(bot.scope, warnings)
            if found and self._effective(bot) is not HALTED:
                trips.append(self._trip(bot.scope, found[0], now))
        for user in users.values():
            user.meters.observe(sum((b.equity() for b in user.bots), ZERO))
            if self.store is not None:
                self.store.save_user(user.name, user.meters, now)
            readings = user.meters.readings(user.limits.max_portfolio_drawdown_pct)
            warn_at = min((b.limits.breakers.warn_at_pct for b in user.bots), default=HUNDRED)
            found, warnings = judge(readings, user.meters.warned, warn_at)
            scope = Scope.user(user.name)
            self._warn(scope, warnings)
            if found and self._states.get(scope) is not HALTED:
                trips.append(self._trip(scope, found[0], now))
        return trips

    def _warn(self, scope: Scope, warnings: list[Reading]) -> None:
        for reading in warnings:
            self._emit(
                EventName.RISK_BREAKER_WARNING,
                subject=str(scope),
                details=_reading_details(reading),
            )

    def _trip(self, scope: Scope, reading: Reading, now: datetime) -> Trip:
        cancel = self._set(scope, HALTED, f"breaker {reading.breaker}", "system")
        close: list[tuple[str, str, Decimal]] = []
        for bot in self._bots_in(scope):
            if bot.limits.close_positions_on_trip:
                close += [(bot.name, s, p.qty) for s, p in bot.book.positions.items() if p.qty]
        if self.store is not None:
            self.store.add_trip(
                TripRecord(scope, reading.breaker, reading.value, reading.limit, now)
            )
        self._emit(
            EventName.RISK_BREAKER_TRIPPED,
            subject=str(scope),
            details={**_reading_details(reading), "orders_to_cancel": len(cancel)},
        )
        return Trip(scope, reading, now, tuple(cancel), tuple(close))

    # -- trading states ------------------------------------------------------------------------

    def state(self, scope: Scope) -> TradingState:
        with self._lock:
            return self._states.get(scope, ACTIVE)

    def effective_state(self, bot: str) -> TradingState:
        with self._lock:
            return self._effective(self._bot(bot))

    def account_of(self, bot: str) -> str:
        with self._lock:
            return self._bot(bot).account.name

    def scopes_of(self, bot: str) -> tuple[Scope, Scope, Scope]:
        """The three scopes whose states apply to `bot`: global, its user, itself."""
        with self._lock:
            record = self._bot(bot)
            return GLOBAL, record.user_scope, record.scope

    def _effective(self, bot: _Bot) -> TradingState:
        states = self._states
        if not states:
            return ACTIVE
        active = ACTIVE
        return strictest(
            states.get(GLOBAL, active),
            states.get(bot.user_scope, active),
            states.get(bot.scope, active),
        )

    def _state_denial(self, bot: _Bot, state: TradingState) -> Denial:
        scopes = [GLOBAL, bot.user_scope, bot.scope]
        source = next(s for s in scopes if self._states.get(s, ACTIVE) is state)
        if state is HALTED:
            return Denial(
                Reason.HALTED,
                f"trading is HALTED for {source}; only cancels pass until a person resets it",
            )
        return Denial(
            Reason.REDUCING,
            f"{source} is REDUCING: only orders that shrink a position (with the bot's open "
            "orders on that side) pass",
        )

    def set_state(
        self, scope: Scope, state: TradingState, *, actor: str, reason: str
    ) -> list[tuple[str, OpenOrder]]:
        """Put `scope` into `state` at once (an emergency stop is HALTED); the open orders to
        cancel, by bot: all of them when halting, the ones that would grow a position when
        reducing. New orders are refused from the moment this returns."""
        with self._lock:
            if state is ACTIVE:
                raise ValueError("use reset() to make a scope ACTIVE again")
            return self._set(scope, state, reason, actor)

    def _set(
        self, scope: Scope, state: TradingState, reason: str, actor: str
    ) -> list[tuple[str, OpenOrder]]:
        previous = self._states.get(scope, ACTIVE)
        self._states[scope] = state
        if self.store is not None:
            self.store.save_state(scope, state, reason, actor, self.clock.now())
        cancel = []
        for bot in self._bots_in(scope):
            kept = set() if state is HALTED else _shrinking(bot.book)
            cancel += [(bot.name, o) for o in bot.book.orders.values() if id(o) not in kept]
        self._emit(
            EventName.RISK_STATE_CHANGED,
            actor=actor,
            subject=str(scope),
            details={
                "from": previous.value,
                "to": state.value,
                "reason": reason,
                "orders_to_cancel": len(cancel),
            },
        )
        return cancel

    def reset(self, scope: Scope, *, actor: str, reason: str) -> TradingState:
        """Make `scope` ACTIVE again and re-base its breakers at the current equity; the
        previous state. Audited with `actor` and `reason`."""
        if not reason.strip():
            raise ConfigError("risk reset: say why (--reason); it goes into the audit log")
        with self._lock:
            previous = self._states.pop(scope, ACTIVE)
            now = self.clock.now()
            for bot in self._bots_in(scope) if scope.kind is ScopeKind.BOT else ():
                bot.meters.rebase(now)
                if self.store is not None:
                    self.store.save_bot(self._record(bot), self.clock.now())
            if scope.kind is ScopeKind.USER and scope.name in self._users:
                user = self._users[scope.name]
                user.meters.rebase()
                if self.store is not None:
                    self.store.save_user(user.name, user.meters, now)
            if self.store is not None:
                self.store.reset(scope, actor, reason, now)
            self._emit(
                EventName.RISK_RESET,
                actor=actor,
                subject=str(scope),
                details={"from": previous.value, "reason": reason},
            )
            return previous

    def reload_states(self) -> None:
        """Pick up states another process changed (a `tradeguard risk halt` from the CLI)."""
        if self.store is None:
            return
        states = self.store.load_states()
        with self._lock:
            self._states = dict(states)

    # -- reading -------------------------------------------------------------------------------

    def bots(self) -> list[str]:
        with self._lock:
            return sorted(self._bots)

    def book(self, bot: str) -> BotBook:
        with self._lock:
            return self._bot(bot).book

    def readings(self, bot: str) -> list[Reading]:
        with self._lock:
            record = self._bot(bot)
            return record.meters.readings(record.limits.breakers)

    def equity(self, bot: str) -> Decimal:
        with self._lock:
            return self._bot(bot).equity()

    # -- internals -----------------------------------------------------------------------------

    def _bot(self, name: str) -> _Bot:
        record = self._bots.get(name)
        if record is None:
            raise ConfigError(f"risk: no bot {name!r} is registered")
        return record

    def _account(self, name: str) -> _Account:
        account = self._accounts.get(name)
        if account is None:
            raise ConfigError(f"risk: no account {name!r}; add it first")
        return account

    def _bots_in(self, scope: Scope) -> list[_Bot]:
        if scope.kind is ScopeKind.GLOBAL:
            return list(self._bots.values())
        if scope.kind is ScopeKind.USER:
            user = self._users.get(scope.name)
            return list(user.bots) if user else []
        bot = self._bots.get(scope.name)
        return [bot] if bot else []

    def _record(self, bot: _Bot) -> BotRecord:
        return BotRecord(
            name=bot.name,
            user=bot.user.name,
            account=bot.account.name,
            mode=bot.mode.value,
            book=bot.book,
            meters=bot.meters,
            capital=bot.limits.capital,
            breakers=bot.limits.breakers,
        )

    def _emit(
        self,
        name: EventName,
        *,
        subject: str,
        details: Mapping[str, Detail],
        actor: str = "system",
    ) -> None:
        self.events.emit(
            DomainEvent(name, self.clock.now(), actor=actor, subject=subject, details=details)
        )


def _shrinking(book: BotBook) -> set[int]:
    """The open orders (by id()) that only shrink positions even if all of them fill: on each
    symbol, the opposite-side orders, oldest first, while they fit inside the position."""
    room = {s: abs(p.qty) for s, p in book.positions.items() if p.qty}
    kept = set()
    for order in book.orders.values():
        qty = book.qty(order.symbol)
        if qty and (order.side is SELL) == (qty > 0) and order.remaining <= room[order.symbol]:
            room[order.symbol] -= order.remaining
            kept.add(id(order))
    return kept


def _reading_details(reading: Reading) -> dict[str, Detail]:
    return {
        "breaker": reading.breaker.value,
        "value": reading.value,
        "limit": reading.limit,
    }
