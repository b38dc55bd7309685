"""What the WebSocket sends one user: their bots' status, orders, fills and alerts.

Each `poll()` reads the store and returns the messages the socket has not sent yet:

- `bot`: a bot's status.json (through bots.control), when it changed;
- `order`: an open order (a `risk_orders` row) of one of the user's bots, once;
- `fill`: a fill booked to one of the user's bots (`risk_fills`) after the socket opened;
- `alert`: an audit entry with an alert's name whose actor is this user (the log stores the
  actor hashed: we ask the log for the hash) or whose subject is this user or one of their bots.

A socket keeps a small cursor: the open orders it has sent (those rows are deleted when an order
ends, so the set stays as small as the open orders), the fills of the last few minutes it has
sent (a venue's fill time can run behind our booking), and the last audit sequence number.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa

from tradeguard.audit import tables as audit_tables
from tradeguard.audit.entry import from_micros
from tradeguard.auth.accounts import Account
from tradeguard.bots.control import read_status
from tradeguard.bots.registry import BotInfo, list_bots
from tradeguard.core.events import EventName
from tradeguard.risk.ledger import owned_bots
from tradeguard.store.models import RiskFill, RiskOrder
from tradeguard.web.context import AppContext

__all__ = ["ALERTS", "UserStream"]

Message = dict[str, Any]

ALERTS = frozenset(
    {
        EventName.RISK_BREAKER_TRIPPED,
        EventName.RISK_BREAKER_WARNING,
        EventName.RISK_STATE_CHANGED,
        EventName.BOT_CRASHED,
        EventName.BOT_CRASH_LOOP,
        EventName.VENUE_KEY_WIDENED,
        EventName.AUTH_REFRESH_REUSED,
        EventName.AUTH_NEW_IP,
        EventName.AUTH_SECOND_FACTOR_FAILED,
    }
)
FILL_LOOKBACK = timedelta(minutes=10)
MAX_ROWS = 500  # a poll sends at most this many of each kind; the rest come next time

_orders = cast(sa.Table, RiskOrder.__table__)
_fills = cast(sa.Table, RiskFill.__table__)
_entries = audit_tables.entries


@dataclass
class _Cursor:
    statuses: dict[str, Any] = field(default_factory=dict)
    orders: set[str] = field(default_factory=set)
    fills: dict[tuple[str, str], datetime] = field(default_factory=dict)
    audit_seq: int = 0


class UserStream:
    def __init__(self, ctx: AppContext, account: Account, session_id: str) -> None:
        self.ctx = ctx
        self.account = account
        self.session_id = session_id
        self.cursor = _Cursor()
        self._actor = ctx.audit.actor(account.owner)

    def open(self) -> list[Message]:
        """The first messages: every bot's status and every open order. Fills and alerts
        from before the socket opened are not replayed."""
        bots = self._bots()
        with self.ctx.engine.connect() as conn:
            top = conn.execute(sa.select(sa.func.max(_entries.c.seq))).scalar()
            self.cursor.audit_seq = int(top or 0)
            for fill in self._recent_fills(conn, bots):
                self.cursor.fills[(fill.account, fill.trade_id)] = fill.filled_at
        return self._bot_messages(bots) + self._order_messages(bots)

    def poll(self) -> list[Message] | None:
        """New messages, or None when the login session that opened the socket has ended
        (logout, expiry, a password change, a disabled account...): the socket closes."""
        if not self.ctx.accounts.session_still_live(self.account.id, self.session_id):
            return None
        bots = self._bots()
        return (
            self._bot_messages(bots)
            + self._order_messages(bots)
            + self._fill_messages(bots)
            + self._alert_messages(bots)
        )

    def _bots(self) -> list[BotInfo]:
        """The user's bots, less any whose name another user also claims (risk.ledger's
        namesake rule, as the orders route applies it)."""
        with self.ctx.engine.connect() as conn:
            owned = owned_bots(conn, self.account.name)
        return [b for b in list_bots(self.ctx.engine, self.account.name) if b.name in owned]

    def _bot_messages(self, bots: list[BotInfo]) -> list[Message]:
        messages = []
        for bot in bots:
            status = read_status(self.ctx.settings, bot)
            if self.cursor.statuses.get(bot.name) != status:
                self.cursor.statuses[bot.name] = status
                messages.append({"type": "bot", "bot": bot.name, "mode": bot.mode, **_json(status)})
        return messages

    def _order_messages(self, bots: list[BotInfo]) -> list[Message]:
        if not bots:
            return []
        with self.ctx.engine.connect() as conn:
            rows = conn.execute(
                sa.select(_orders)
                .where(_orders.c.bot.in_(_names(bots)))
                .order_by(_orders.c.created_at)
                .limit(MAX_ROWS)
            ).all()
        open_ids = {r.client_order_id for r in rows}
        new = [r for r in rows if r.client_order_id not in self.cursor.orders]
        self.cursor.orders = open_ids  # ended orders drop out, keeping the set small
        return [
            {
                "type": "order",
                "bot": r.bot,
                "client_order_id": r.client_order_id,
                "symbol": r.symbol,
                "created_at": r.created_at.isoformat(),
            }
            for r in new
        ]

    def _recent_fills(self, conn: sa.Connection, bots: list[BotInfo]) -> list[Any]:
        if not bots:
            return []
        since = self.ctx.clock.now() - FILL_LOOKBACK
        return list(
            conn.execute(
                sa.select(_fills)
                .where(_fills.c.bot.in_(_names(bots)), _fills.c.filled_at >= since)
                .order_by(_fills.c.filled_at)
                .limit(MAX_ROWS)
            ).all()
        )

    def _fill_messages(self, bots: list[BotInfo]) -> list[Message]:
        with self.ctx.engine.connect() as conn:
            rows = self._recent_fills(conn, bots)
        seen = self.cursor.fills
        new = [r for r in rows if (r.account, r.trade_id) not in seen]
        for r in new:
            seen[(r.account, r.trade_id)] = r.filled_at
        horizon = self.ctx.clock.now() - FILL_LOOKBACK
        self.cursor.fills = {k: at for k, at in seen.items() if at >= horizon}
        return [_fill(r) for r in new]

    def _alert_messages(self, bots: list[BotInfo]) -> list[Message]:
        # What alerts name. Risk events name scopes: `user:<name>`, `bot:<name>`. The others
        # name the user as `user:<id>`, a crashed bot by its id, a widened key by its
        # credential id. Each kind is matched by its own vocabulary, so a user named "42" gets
        # no alert meant for user id 42.
        scopes = [f"user:{self.account.name}"] + [f"bot:{b.name}" for b in bots]
        ids = [self.account.owner] + [b.id for b in bots]
        ids += [c.id for c in self.ctx.vault.credentials(self.account.name)]
        risk = [e.value for e in ALERTS if e.value.startswith("risk.")]
        with self.ctx.engine.connect() as conn:
            # The top first: an entry appended while we read is left for the next poll.
            top = int(conn.execute(sa.select(sa.func.max(_entries.c.seq))).scalar() or 0)
            rows = conn.execute(
                sa.select(_entries)
                .where(
                    _entries.c.seq > self.cursor.audit_seq,
                    _entries.c.seq <= top,
                    _entries.c.event.in_([e.value for e in ALERTS]),
                    sa.or_(
                        _entries.c.actor == self._actor,
                        sa.and_(_entries.c.event.in_(risk), _entries.c.subject.in_(scopes)),
                        sa.and_(_entries.c.event.not_in(risk), _entries.c.subject.in_(ids)),
                    ),
                )
                .order_by(_entries.c.seq)
                .limit(MAX_ROWS)
            ).all()
        # Past the entries that are not ours too, so the next poll starts where this one ended.
        self.cursor.audit_seq = int(rows[-1].seq) if len(rows) == MAX_ROWS else top
        return [_alert(r) for r in rows]


def _names(bots: Iterable[BotInfo]) -> list[str]:
    return [b.name for b in bots]


def _json(value: Any) -> dict[str, Any]:
    """A status as plain JSON (status.json is written with `default=str`)."""
    return {"status": json.loads(json.dumps(value, default=str))}


def _fill(r: Any) -> Message:
    return {
        "type": "fill",
        "bot": r.bot,
        "client_order_id": r.client_order_id,
        "trade_id": r.trade_id,
        "symbol": r.symbol,
        "side": r.side,
        "amount": str(r.amount),
        "price": str(r.price),
        "fee": str(r.fee),
        "fee_currency": r.fee_currency,
        "filled_at": r.filled_at.isoformat(),
    }


def _alert(r: Any) -> Message:
    return {
        "type": "alert",
        "seq": int(r.seq),
        "event": r.event,
        "at": from_micros(r.ts).isoformat(),
        "subject": r.subject,
        "details": json.loads(r.details),
    }
