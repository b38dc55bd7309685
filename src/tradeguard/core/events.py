"""Domain events: the one vocabulary of security-relevant things that happened.

Services emit events through an `EventSink`; the audit log (tradeguard.audit) is the sink that
makes them durable and tamper-evident, and until it is plugged in, `LogSink` logs them. Events
carry ids, names and counts, never secret values.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

__all__ = ["Detail", "DomainEvent", "EventName", "EventSink", "LogSink", "MemorySink"]

log = logging.getLogger("tradeguard.events")


class EventName(StrEnum):
    """Every event name, dotted: `area.thing.past_tense`."""

    VAULT_USER_ADDED = "vault.user.added"
    VAULT_CREDENTIAL_ADDED = "vault.credential.added"
    VAULT_CREDENTIAL_USED = "vault.credential.used"
    VAULT_CREDENTIAL_ROTATED = "vault.credential.rotated"
    VAULT_CREDENTIAL_REMOVED = "vault.credential.removed"
    VAULT_UNLOCKED = "vault.unlocked"
    VAULT_LOCKED = "vault.locked"
    VAULT_UNLOCK_FAILED = "vault.unlock.failed"
    VAULT_PASSWORD_CHANGED = "vault.password.changed"  # noqa: S105 - an event name
    VAULT_KDF_UPGRADED = "vault.kdf.upgraded"
    VAULT_MASTER_KEY_ROTATED = "vault.master_key.rotated"
    VAULT_MASTER_KEY_RETIRED = "vault.master_key.retired"
    VAULT_DEKS_REWRAPPED = "vault.deks.rewrapped"
    VAULT_DEK_ROTATED = "vault.dek.rotated"
    VAULT_VERIFIED = "vault.verified"
    VAULT_CREDENTIAL_BLOCKED = "vault.credential.blocked"
    VAULT_CREDENTIAL_UNBLOCKED = "vault.credential.unblocked"
    VENUE_KEY_CHECKED = "venue.key.checked"
    VENUE_KEY_REFUSED = "venue.key.refused"
    VENUE_KEY_WIDENED = "venue.key.widened"  # an alert: a stored key can now move funds
    RISK_BOT_REGISTERED = "risk.bot.registered"
    RISK_STATE_CHANGED = "risk.state.changed"  # a halt, an emergency stop, reducing-only
    RISK_BREAKER_WARNING = "risk.breaker.warning"  # 80% of a limit
    RISK_BREAKER_TRIPPED = "risk.breaker.tripped"  # an alert: a bot or user is halted
    RISK_RESET = "risk.reset"
    RISK_ORDERS_CANCELED = "risk.orders.canceled"
    BOT_PROMOTED = "bot.promoted"
    BOT_PROMOTION_REFUSED = "bot.promotion.refused"
    BOT_CREATED = "bot.created"
    BOT_REMOVED = "bot.removed"
    BOT_START_REQUESTED = "bot.start.requested"  # who asked (the supervisor logs bot.started)
    BOT_STOP_REQUESTED = "bot.stop.requested"
    BOT_STARTED = "bot.started"
    BOT_STOPPED = "bot.stopped"
    BOT_CRASHED = "bot.crashed"
    BOT_CRASH_LOOP = "bot.crash_loop"  # an alert: restarts gave up, the bot is halted
    BOT_PACKAGE_INSTALLED = "bot.package.installed"
    BOT_PACKAGE_REFUSED = "bot.package.refused"
    ORDER_INTENT = "order.intent"  # durable before the order is sent
    ORDER_CANCEL = "order.cancel"
    ORDER_RECONCILED = "order.reconciled"  # what a restart found at the venue
    GATEWAY_AUTH_FAILED = "gateway.auth.failed"
    GATEWAY_VIOLATION = "gateway.violation"  # a bot sent garbage until it was cut off
    AUTH_USER_CREATED = "auth.user.created"
    AUTH_ROLE_CHANGED = "auth.role.changed"
    AUTH_USER_DISABLED = "auth.user.disabled"
    AUTH_USER_ENABLED = "auth.user.enabled"
    AUTH_SETUP_TOKEN_USED = "auth.setup_token.used"  # noqa: S105 - an event name
    AUTH_LOGIN_SUCCEEDED = "auth.login.succeeded"
    AUTH_LOGIN_FAILED = "auth.login.failed"
    AUTH_NEW_IP = "auth.ip.new"  # first login or order from an address for this user
    AUTH_LOGOUT = "auth.logout"
    AUTH_LOGOUT_ALL = "auth.logout.all"
    AUTH_REFRESH_REUSED = "auth.refresh.reused"  # an alert: a stolen refresh token, probably
    AUTH_SECOND_FACTOR_ENABLED = "auth.2fa.enabled"
    AUTH_SECOND_FACTOR_DISABLED = "auth.2fa.disabled"
    AUTH_SECOND_FACTOR_FAILED = "auth.2fa.failed"
    AUTH_BACKUP_CODE_USED = "auth.backup_code.used"
    AUTH_BACKUP_CODES_ISSUED = "auth.backup_codes.issued"
    AUTH_PASSWORD_CHANGED = "auth.password.changed"  # noqa: S105 - an event name
    AUTH_PASSWORD_RESET_REQUESTED = "auth.password.reset_requested"  # noqa: S105
    AUTH_PASSWORD_RESET = "auth.password.reset"  # noqa: S105 - an event name
    AUTH_EMAIL_CHANGED = "auth.email.changed"
    AUDIT_PRUNED = "audit.pruned"
    AUDIT_KEY_ROTATED = "audit.key.rotated"


# Money and quantities are Decimal (the audit log writes them as strings, never as floats);
# nesting is allowed for structured details such as an order intent.
Detail = str | int | bool | Decimal | None | Sequence["Detail"] | Mapping[str, "Detail"]


@dataclass(frozen=True)
class DomainEvent:
    name: EventName
    at: datetime
    actor: str | None = None  # who did it: `user:42`, `operator` (the CLI), `system`
    subject: str | None = None  # what it was done to: a credential id, `user:42`
    details: Mapping[str, Detail] = field(default_factory=dict)
    ip: str | None = None  # where the request came from, when it came over the network


class EventSink(Protocol):
    def emit(self, event: DomainEvent) -> None: ...


class LogSink:
    """Events as log lines (redacted like every log line)."""

    def emit(self, event: DomainEvent) -> None:
        details = " ".join(f"{k}={v}" for k, v in sorted(event.details.items()))
        log.info(
            "event %s actor=%s subject=%s %s",
            event.name.value,
            event.actor or "-",
            event.subject or "-",
            details,
        )


class MemorySink:
    """Events kept in a list, for tests and for callers that batch them."""

    def __init__(self) -> None:
        self.events: list[DomainEvent] = []

    def emit(self, event: DomainEvent) -> None:
        self.events.append(event)

    def names(self) -> list[str]:
        return [e.name.value for e in self.events]
