"""`GuardedVenue`: one venue account whose every order passes the risk engine.

    guard = GuardedVenue(engine, venue, account="paper:alice", journal=store, audit=log)
    order = await guard.submit("sma-eth", intent)      # RiskDenied, or the venue's order
    trips = await guard.on_trades(trades)               # fills -> breakers -> cancels/closes
    canceled = await halt(engine, [guard], Scope.bot("sma-eth"), actor=..., reason=...)

This is the risk half of the order path; the gateway puts bot authentication in front of it.
An approved order is written to the journal (so a halt from another process finds it) and its
intent to the audit log, durably, before it is sent; it stays booked until the venue says it
ended. A halt sets the
state first (new orders are refused from then on), waits for orders already on their way to the
venue, then cancels every open order of the halted bots: when it returns, nothing of theirs is
open and nothing new can be accepted.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from decimal import Decimal

from tradeguard.audit import AuditLog
from tradeguard.core.errors import OrderNotFound, OrderOutcomeUnknown, VenueError
from tradeguard.core.events import EventName
from tradeguard.risk.book import ZERO, OpenOrder
from tradeguard.risk.decisions import Denial, Reason, RiskDenied
from tradeguard.risk.engine import RiskEngine, Trip
from tradeguard.risk.intents import OrderIntent
from tradeguard.risk.states import Scope, TradingState
from tradeguard.risk.store import SqlRiskStore, StoredOrder
from tradeguard.venues.client_ids import new_client_order_id
from tradeguard.venues.protocol import Venue
from tradeguard.venues.types import MarketKind, Order, OrderRequest, Trade

__all__ = ["GuardedVenue", "halt"]

log = logging.getLogger("tradeguard.risk")


class GuardedVenue:
    def __init__(
        self,
        engine: RiskEngine,
        venue: Venue,
        *,
        account: str,
        journal: SqlRiskStore | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        self.engine = engine
        self.venue = venue
        self.account = account
        self.journal = journal
        self.audit = audit
        self._owner: dict[str, str] = {}  # client order id -> bot
        self._sending: Counter[str] = Counter()  # bot -> orders on their way to the venue
        self._sent = asyncio.Condition()

    # -- orders --------------------------------------------------------------------------------

    async def submit(self, bot: str, intent: OrderIntent | OrderRequest) -> Order:
        """Check, journal and send one order; `RiskDenied` with the reason code if refused."""
        if self.journal is not None:
            self.engine.reload_states()  # a halt from another process counts from here on
        decision = self.engine.pre_trade(bot, intent)
        if isinstance(decision, Denial):
            raise RiskDenied(decision)
        request = decision.request
        cid = request.client_order_id
        self._owner[cid] = bot
        self._sending[bot] += 1
        try:
            if self.journal is not None:
                await self.journal.record_order_async(
                    StoredOrder(cid, bot, self.account, request.symbol), self.engine.clock.now()
                )
                # Journaled first, then the states read again: a halt that the journal read
                # missed is seen here, before anything is sent.
                self.engine.reload_states()
                state = self.engine.effective_state(bot)
                if state is not TradingState.ACTIVE and state is not TradingState.REDUCING:
                    raise RiskDenied(Denial(Reason.HALTED, f"bot {bot} was halted just now"))
            if self.audit is not None:
                await self.audit.append_async(
                    EventName.ORDER_INTENT,
                    actor=f"bot:{bot}",
                    subject=cid,
                    details=_intent_details(self.account, request),
                )
            order = await self.venue.create_order(request)
        except OrderOutcomeUnknown:
            raise  # stays booked: it may be open at the venue until reconciled
        except BaseException:
            await self._ended(bot, cid)
            raise
        finally:
            async with self._sent:
                self._sending[bot] -= 1
                self._sent.notify_all()
        if order.status.is_final and order.filled == 0:
            await self._ended(bot, cid)
        return order

    async def cancel(self, bot: str, symbol: str, client_order_id: str) -> Order | None:
        """Cancel one of the bot's orders: always allowed, whatever the trading state. None if
        the venue no longer has it open."""
        if self._owner.get(client_order_id) != bot:
            raise OrderNotFound(f"bot {bot} has no order {client_order_id!r}", venue=self.account)
        try:
            order = await self.venue.cancel_order(symbol, client_order_id=client_order_id)
        except OrderNotFound:
            order = None
        await self._ended(bot, client_order_id)
        return order

    def owner(self, client_order_id: str) -> str | None:
        """The bot whose open order this is, if it is one of ours."""
        return self._owner.get(client_order_id)

    async def _ended(self, bot: str, cid: str) -> None:
        self.engine.order_ended(bot, cid)
        self._owner.pop(cid, None)
        if self.journal is not None:
            await self.journal.forget_order_async(cid)

    # -- restarts ------------------------------------------------------------------------------

    async def reconcile(self, bots: Iterable[str]) -> list[Order]:
        """After a restart, before these bots may trade: look up every journaled order of
        theirs on this account at the venue, book the ones still open, apply the fills the
        ledger has not seen, and forget the orders that ended or never arrived. A venue that
        cannot answer raises: the bots stay closed rather than trade on a guessed book."""
        if self.journal is None:
            return []
        markets = await self.venue.load_markets()
        found: list[Order] = []
        for stored in self.journal.orders(bots):
            if stored.account != self.account:
                continue
            try:
                order = await self.venue.fetch_order(
                    stored.symbol, client_order_id=stored.client_order_id
                )
            except OrderNotFound:
                self.journal.forget_order(stored.client_order_id)
                await self._reconciled(stored.bot, stored.client_order_id, "never reached")
                continue
            await self._adopt(self.journal, stored.bot, order, markets[stored.symbol].kind)
            found.append(order)
        if found:
            # Booking the missed fills moved the engine's cash as well; the venue's balance
            # already holds them. The venue is the authority on what the account has.
            self.engine.set_balance(self.account, await self.venue.fetch_balance())
        return found

    async def _adopt(self, journal: SqlRiskStore, bot: str, order: Order, kind: MarketKind) -> None:
        cid = order.client_order_id or ""
        trades = [
            t for t in await self.venue.fetch_my_trades(order.symbol) if t.client_order_id == cid
        ]
        booked = journal.booked_fills(self.account, (t.trade_id for t in trades))
        remaining = order.amount - sum((t.amount for t in trades if t.trade_id in booked), ZERO)
        price = order.price or order.average or order.stop_price or ZERO
        self.engine.restore_order(
            bot, OpenOrder(cid, order.symbol, kind, order.side, remaining, price, order.reduce_only)
        )
        self._owner[cid] = bot
        await self.on_trades([t for t in trades if t.trade_id not in booked])
        if order.status.is_final and cid in self.engine.book(bot).orders:
            await self._ended(bot, cid)
        await self._reconciled(bot, cid, order.status.value, filled=order.filled)

    async def _reconciled(self, bot: str, cid: str, found: str, **details: Decimal) -> None:
        log.info("reconciled order %s of bot %s on %s: %s", cid, bot, self.account, found)
        if self.audit is not None:
            await self.audit.append_async(
                EventName.ORDER_RECONCILED,
                actor="system",
                subject=cid,
                details={"bot": bot, "account": self.account, "found": found, **details},
            )

    # -- fills and marks -----------------------------------------------------------------------

    async def on_trades(self, trades: Iterable[Trade]) -> list[Trip]:
        """Book fills of our orders (others are ignored, and so is a fill the ledger already
        holds: a venue may report one twice), run the breakers and act on trips."""
        trades = list(trades)
        if self.journal is not None and trades:
            booked = self.journal.booked_fills(self.account, (t.trade_id for t in trades))
            trades = [t for t in trades if t.trade_id not in booked]
        trips: list[Trip] = []
        for trade in trades:
            bot = self._owner.get(trade.client_order_id or "")
            if bot is None:
                continue
            trips += self.engine.on_fill(bot, trade)
            if trade.client_order_id not in self.engine.book(bot).orders:
                self._owner.pop(trade.client_order_id or "", None)
                if self.journal is not None:
                    await self.journal.forget_order_async(trade.client_order_id or "")
        await self.act_on(trips)
        return trips

    async def on_close(self, symbol: str, close: Decimal) -> list[Trip]:
        """A closed candle's close price: zones, marks and the equity breakers."""
        trips = self.engine.on_close(self.account, symbol, close)
        await self.act_on(trips)
        return trips

    async def act_on(self, trips: Sequence[Trip]) -> None:
        """What a trip asks for: cancel the halted bots' orders, close positions if asked."""
        for trip in trips:
            await self.cancel_all(trip.scope)
            for bot, symbol, _qty in trip.close:
                if self.engine.account_of(bot) != self.account:
                    continue  # another guard's account closes it
                approval = self.engine.closing_order(bot, symbol, new_client_order_id())
                if approval is None:
                    continue
                cid = approval.request.client_order_id
                self._owner[cid] = bot
                try:
                    await self.venue.create_order(approval.request)
                except VenueError as error:
                    await self._ended(bot, cid)
                    log.error("could not close %s of bot %s after a trip: %s", symbol, bot, error)

    # -- halting -------------------------------------------------------------------------------

    async def cancel_all(self, scope: Scope) -> list[Order]:
        """Wait for the scope's orders on their way to the venue, then cancel every open order
        of its bots on this account; the orders canceled."""
        bots = {b for b in self.engine.bots() if scope in self.engine.scopes_of(b)}
        async with self._sent:
            await self._sent.wait_for(lambda: not any(self._sending[b] for b in bots))
        mine = [
            (bot, order)
            for cid, bot in list(self._owner.items())
            if bot in bots and (order := self.engine.book(bot).orders.get(cid)) is not None
        ]
        # all at once: an emergency stop is as slow as its slowest cancel, not their sum
        results = await asyncio.gather(
            *(self.cancel(bot, order.symbol, order.client_order_id) for bot, order in mine)
        )
        return [order for order in results if order is not None]


def _intent_details(account: str, request: OrderRequest) -> dict[str, str | bool | Decimal]:
    details: dict[str, str | bool | Decimal] = {
        "account": account,
        "symbol": request.symbol,
        "side": request.side.value,
        "type": request.type.value,
        "amount": request.amount,
        "time_in_force": request.time_in_force.value,
        "reduce_only": request.reduce_only,
    }
    if request.price is not None:
        details["price"] = request.price
    if request.stop_price is not None:
        details["stop_price"] = request.stop_price
    return details


async def halt(
    engine: RiskEngine,
    guards: Iterable[GuardedVenue],
    scope: Scope,
    *,
    actor: str,
    reason: str,
) -> list[Order]:
    """The emergency stop: `scope` HALTED, then every open order of its bots canceled on every
    guarded account. When this returns, no order of theirs is open or can be accepted."""
    engine.set_state(scope, TradingState.HALTED, actor=actor, reason=reason)
    canceled: list[Order] = []
    for guard in guards:
        canceled += await guard.cancel_all(scope)
    return canceled
