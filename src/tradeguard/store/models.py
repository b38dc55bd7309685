"""SQLAlchemy models. Every schema change comes with an Alembic migration in migrations/."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "AuditEntry",
    "AuditNode",
    "AuditPrune",
    "AuditState",
    "AuditTreeHead",
    "AuthSession",
    "BackupCode",
    "Base",
    "Credential",
    "CredentialField",
    "DecimalText",
    "Instance",
    "OneTimeToken",
    "PaperAccount",
    "PaperBalance",
    "PaperMark",
    "PaperOrder",
    "PaperTrade",
    "RefreshToken",
    "UnlockThrottle",
    "User",
    "UserAddress",
    "UtcDateTime",
    "VaultState",
]

# Deterministic constraint names, so migrations can name what they alter on both databases.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on SQLite (no time zones) too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware UTC datetime (the clock gives one)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime from the database, got {type(value).__name__}")
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Instance(Base):
    """This installation: one row, written by the first migration.

    The id ties backups, audit checkpoints and alerts to the installation they came from.
    """

    __tablename__ = "instance"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[str] = mapped_column(String(36), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    created_by_version: Mapped[str] = mapped_column(String(64))


class User(Base):
    """A person (or service account) whose credentials the vault holds.

    `wrapped_dek` is the user's data key, encrypted under the master key (`service` mode, key
    version in `encryption_key_version`) or under a key derived from the vault password
    (`password` mode, with the Argon2id salt and parameters beside it). `dek_version` counts
    DEK rotations; every credential field names the DEK version that encrypted it.
    """

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("vault_mode IN ('service', 'password')", name="vault_mode"),
        CheckConstraint("role IN ('admin', 'trader', 'viewer')", name="role"),
        CheckConstraint(
            "(vault_mode = 'service' AND encryption_key_version IS NOT NULL AND kdf_salt IS NULL)"
            " OR (vault_mode = 'password' AND encryption_key_version IS NULL"
            " AND kdf_salt IS NOT NULL AND kdf_memory_kib IS NOT NULL"
            " AND kdf_iterations IS NOT NULL AND kdf_lanes IS NOT NULL)",
            name="wrapping",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    vault_mode: Mapped[str] = mapped_column(String(16))
    wrapped_dek: Mapped[bytes] = mapped_column(LargeBinary)
    dek_version: Mapped[int] = mapped_column(Integer)
    encryption_key_version: Mapped[int | None] = mapped_column(Integer, index=True)
    kdf_salt: Mapped[bytes | None] = mapped_column(LargeBinary)
    kdf_memory_kib: Mapped[int | None] = mapped_column(Integer)
    kdf_iterations: Mapped[int | None] = mapped_column(Integer)
    kdf_lanes: Mapped[int | None] = mapped_column(Integer)
    # Login (auth/): a user without a password hash cannot log in (a vault-only user made by
    # `users add`). The TOTP secret is an envelope under the master keyring (key version beside
    # it); `totp_last_step` is the last time step accepted, so a code is never taken twice.
    role: Mapped[str] = mapped_column(String(16), server_default="trader")
    email: Mapped[str | None] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(256))
    password_changed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    totp_secret: Mapped[bytes | None] = mapped_column(LargeBinary)
    totp_key_version: Mapped[int | None] = mapped_column(Integer)
    totp_enabled_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    disabled_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class AuthSession(Base):
    """A login: one refresh-token family. Revoking it ends every token it issued."""

    __tablename__ = "auth_sessions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())  # the absolute timeout
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    revoked_reason: Mapped[str | None] = mapped_column(String(32))
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(256))


class RefreshToken(Base):
    """A refresh token, by the SHA-256 of its value. `used_at` set: rotated; shown again, the
    whole family (session) is revoked."""

    __tablename__ = "auth_refresh_tokens"

    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("auth_sessions.id", ondelete="CASCADE"), index=True
    )
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class BackupCode(Base):
    """A single-use second-factor backup code, by its hash; burned (`used_at`) on use."""

    __tablename__ = "auth_backup_codes"
    __table_args__ = (UniqueConstraint("user_id", "code_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class OneTimeToken(Base):
    """A single-use token (password reset, WebSocket ticket, first-admin setup), by the SHA-256
    of its value; consumed by one conditional UPDATE, so two requests cannot both use it."""

    __tablename__ = "auth_one_time_tokens"
    __table_args__ = (CheckConstraint("purpose IN ('reset', 'ws', 'setup')", name="purpose"),)

    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(8))
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    bound_to: Mapped[str | None] = mapped_column(String(64))  # the client IP of a ticket
    # The login session a ticket belongs to: the stream it opens ends with that session.
    session_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    consumed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class UserAddress(Base):
    """Where a user logs in and trades from: first and last seen, and how often."""

    __tablename__ = "auth_user_addresses"
    __table_args__ = (CheckConstraint("kind IN ('login', 'trade')", name="kind"),)

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    ip: Mapped[str] = mapped_column(String(45), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    first_seen: Mapped[datetime] = mapped_column(UtcDateTime())
    last_seen: Mapped[datetime] = mapped_column(UtcDateTime())
    count: Mapped[int] = mapped_column(Integer)


class Credential(Base):
    """A venue credential: its fields live encrypted in `credential_fields`.

    `display` holds masked public identifiers only (`ABC…xyz`), for lists and audit entries.
    """

    __tablename__ = "credentials"
    __table_args__ = (UniqueConstraint("user_id", "name", name="uq_credentials_user_id_name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    venue: Mapped[str] = mapped_column(String(32))
    display: Mapped[str] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    rotated_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # The venue's answer to "what can this key do?", as JSON without secrets; see venues/keycheck.
    permissions: Mapped[str | None] = mapped_column(Text())
    permissions_checked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    key_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # Set when a check finds the key can move funds (or an operator blocks it): nothing trades
    # with a blocked credential until a person unblocks it.
    blocked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    blocked_reason: Mapped[str | None] = mapped_column(String(512))


class CredentialField(Base):
    """One encrypted field of a credential, bound (AAD) to its user, credential and name."""

    __tablename__ = "credential_fields"

    credential_id: Mapped[str] = mapped_column(
        ForeignKey("credentials.id", ondelete="CASCADE"), primary_key=True
    )
    field: Mapped[str] = mapped_column(String(64), primary_key=True)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    dek_version: Mapped[int] = mapped_column(Integer)


class VaultState(Base):
    """One row: the lowest master-key version still allowed to decrypt (raised by retire)."""

    __tablename__ = "vault_state"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    min_master_key_version: Mapped[int] = mapped_column(Integer)


class UnlockThrottle(Base):
    """Failed vault unlocks per user name, known or not (so throttling tells nothing)."""

    __tablename__ = "vault_unlock_throttle"

    subject: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    last_failure_at: Mapped[datetime] = mapped_column(UtcDateTime())


# -- audit log ---------------------------------------------------------------------------------
# Append-only: the migration adds triggers that abort UPDATE and DELETE on these tables (DELETE
# only below a recorded prune boundary). Times are integer microseconds since the Unix epoch,
# UTC: exact, the same on both databases, and what the Merkle leaves commit to.


class AuditEntry(Base):
    """One audit entry; `leaf_hash` is its RFC 6962 leaf, `mac` binds it to its seq (keyed)."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    ts: Mapped[int] = mapped_column(BigInteger)
    event: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str | None] = mapped_column(String(64))
    subject: Mapped[str | None] = mapped_column(String(256))
    ip: Mapped[str | None] = mapped_column(String(45))
    details: Mapped[str] = mapped_column(Text)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary)
    key_version: Mapped[int] = mapped_column(Integer)
    mac: Mapped[bytes] = mapped_column(LargeBinary)


class AuditState(Base):
    """One row: the tree as the appenders left it (size, compact range, root), the last signed
    head, and the audit-key version whose pepper hashes actors. Appenders lock this row, which
    is what makes concurrent appends one sequence. `verify` never trusts it."""

    __tablename__ = "audit_state"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    frontier: Mapped[bytes] = mapped_column(LargeBinary)
    root: Mapped[bytes] = mapped_column(LargeBinary)
    last_head_size: Mapped[int] = mapped_column(BigInteger)
    last_head_ts: Mapped[int] = mapped_column(BigInteger)
    pepper_version: Mapped[int | None] = mapped_column(Integer)


class AuditNode(Base):
    """Hashes of complete subtrees of 256 leaves and more, so a proof reads O(log n) rows."""

    __tablename__ = "audit_nodes"

    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary)


class AuditTreeHead(Base):
    """A signed tree head: Ed25519 over (instance, size, root, time); one per tree size."""

    __tablename__ = "audit_tree_heads"

    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    ts: Mapped[int] = mapped_column(BigInteger)
    root: Mapped[bytes] = mapped_column(LargeBinary)
    key_version: Mapped[int] = mapped_column(Integer)
    signature: Mapped[bytes] = mapped_column(LargeBinary)


class AuditPrune(Base):
    """A retention prune: entries below `first_seq` were deleted; the signed compact range of
    [0, first_seq) lets verification go on from there."""

    __tablename__ = "audit_prunes"

    first_seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    ts: Mapped[int] = mapped_column(BigInteger)
    frontier: Mapped[bytes] = mapped_column(LargeBinary)
    key_version: Mapped[int] = mapped_column(Integer)
    signature: Mapped[bytes] = mapped_column(LargeBinary)


# -- paper venue -------------------------------------------------------------------------------
# The built-in paper venue's accounts, balances, orders, fills and last candles. Money and
# quantities are Decimal strings (`DecimalText`): exact on SQLite (whose NUMERIC is a float) and
# on PostgreSQL alike.


class DecimalText(TypeDecorator[Decimal]):
    """Finite Decimals in, the same Decimals out, stored as their text: exact everywhere."""

    impl = Text()
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, Decimal) or not value.is_finite():
            raise ValueError(f"expected a finite Decimal, got {type(value).__name__}")
        return str(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return Decimal(value)


class PaperAccount(Base):
    """One paper account per paper credential or account name. `order_seq` and `trade_seq` are
    the last numbers handed out: venue order and trade ids derive from them, so a replay gives
    the same ids. `starting_balances` (JSON, Decimal strings) is what the account opened with."""

    __tablename__ = "paper_accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    starting_balances: Mapped[str] = mapped_column(Text())
    order_seq: Mapped[int] = mapped_column(BigInteger)
    trade_seq: Mapped[int] = mapped_column(BigInteger)


class PaperBalance(Base):
    """Free and used (held by open orders) per currency of a paper account."""

    __tablename__ = "paper_balances"

    account_id: Mapped[int] = mapped_column(
        ForeignKey("paper_accounts.id", ondelete="CASCADE"), primary_key=True
    )
    currency: Mapped[str] = mapped_column(String(32), primary_key=True)
    free: Mapped[Decimal] = mapped_column(DecimalText())
    used: Mapped[Decimal] = mapped_column(DecimalText())


class PaperOrder(Base):
    """An order of a paper account. `locked` of `lock_currency` is what it holds while open;
    `fresh` is true until the first candle after its arrival was processed; `triggered` is set
    when a stop order's stop price traded."""

    __tablename__ = "paper_orders"
    __table_args__ = (
        UniqueConstraint(
            "account_id", "venue_order_id", name="uq_paper_orders_account_id_venue_order_id"
        ),
        UniqueConstraint(
            "account_id", "client_order_id", name="uq_paper_orders_account_id_client_order_id"
        ),
        CheckConstraint("side IN ('buy', 'sell')", name="side"),
        CheckConstraint(
            "status IN ('open', 'filled', 'canceled', 'rejected', 'expired')", name="status"
        ),
    )

    account_id: Mapped[int] = mapped_column(
        ForeignKey("paper_accounts.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    venue_order_id: Mapped[str] = mapped_column(String(32))
    client_order_id: Mapped[str] = mapped_column(String(64))
    symbol: Mapped[str] = mapped_column(String(64))
    side: Mapped[str] = mapped_column(String(8))
    type: Mapped[str] = mapped_column(String(16))
    time_in_force: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16))
    amount: Mapped[Decimal] = mapped_column(DecimalText())
    filled: Mapped[Decimal] = mapped_column(DecimalText())
    price: Mapped[Decimal | None] = mapped_column(DecimalText())
    stop_price: Mapped[Decimal | None] = mapped_column(DecimalText())
    average: Mapped[Decimal | None] = mapped_column(DecimalText())
    fee: Mapped[Decimal] = mapped_column(DecimalText())
    fee_currency: Mapped[str | None] = mapped_column(String(32))
    locked: Mapped[Decimal] = mapped_column(DecimalText())
    lock_currency: Mapped[str] = mapped_column(String(32))
    reduce_only: Mapped[bool] = mapped_column(Boolean)
    triggered: Mapped[bool] = mapped_column(Boolean)
    fresh: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class PaperTrade(Base):
    """One fill of a paper order."""

    __tablename__ = "paper_trades"

    account_id: Mapped[int] = mapped_column(
        ForeignKey("paper_accounts.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    trade_id: Mapped[str] = mapped_column(String(32))
    venue_order_id: Mapped[str] = mapped_column(String(32))
    client_order_id: Mapped[str] = mapped_column(String(64))
    symbol: Mapped[str] = mapped_column(String(64))
    side: Mapped[str] = mapped_column(String(8))
    price: Mapped[Decimal] = mapped_column(DecimalText())
    amount: Mapped[Decimal] = mapped_column(DecimalText())
    fee: Mapped[Decimal] = mapped_column(DecimalText())
    fee_currency: Mapped[str] = mapped_column(String(32))
    liquidity: Mapped[str] = mapped_column(String(8))
    at: Mapped[datetime] = mapped_column(UtcDateTime())


class PaperMark(Base):
    """The last candle a paper account processed per symbol: its last price, and the point a
    restarted venue continues from."""

    __tablename__ = "paper_marks"

    account_id: Mapped[int] = mapped_column(
        ForeignKey("paper_accounts.id", ondelete="CASCADE"), primary_key=True
    )
    symbol: Mapped[str] = mapped_column(String(64), primary_key=True)
    ts_ms: Mapped[int] = mapped_column(BigInteger)
    open: Mapped[Decimal] = mapped_column(DecimalText())
    high: Mapped[Decimal] = mapped_column(DecimalText())
    low: Mapped[Decimal] = mapped_column(DecimalText())
    close: Mapped[Decimal] = mapped_column(DecimalText())
    volume: Mapped[Decimal] = mapped_column(DecimalText())


# The risk engine: trading states per scope, breaker trips, each bot's book and breaker meters,
# and every closed trade (the paper record the promotion gate reads).


class RiskState(Base):
    """A scope (`global`, `user:NAME`, `bot:NAME`) that is not ACTIVE; a reset deletes it."""

    __tablename__ = "risk_states"
    __table_args__ = (CheckConstraint("state IN ('REDUCING', 'HALTED')", name="state"),)

    scope: Mapped[str] = mapped_column(String(80), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(200))
    actor: Mapped[str] = mapped_column(String(256))
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime())


class RiskTrip(Base):
    __tablename__ = "risk_trips"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(80), index=True)
    breaker: Mapped[str] = mapped_column(String(32))
    value: Mapped[Decimal] = mapped_column(DecimalText())
    limit: Mapped[Decimal] = mapped_column(DecimalText())
    tripped_at: Mapped[datetime] = mapped_column(UtcDateTime())
    reset_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    reset_by: Mapped[str | None] = mapped_column(String(256))
    reset_reason: Mapped[str | None] = mapped_column(String(200))


class RiskBot(Base):
    """A bot the risk engine holds to limits: its user, account and mode, and its book and
    breaker meters as JSON (Decimal strings), rewritten after every fill."""

    __tablename__ = "risk_bots"
    __table_args__ = (CheckConstraint("mode IN ('paper', 'live')", name="mode"),)

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_name: Mapped[str] = mapped_column(String(64))
    account: Mapped[str] = mapped_column(String(128))
    mode: Mapped[str] = mapped_column(String(8))
    capital: Mapped[Decimal] = mapped_column(DecimalText())
    book: Mapped[str] = mapped_column(Text())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    promoted_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class RiskUser(Base):
    """A user's portfolio breaker meters (equity peak) as JSON: a restart keeps the peak."""

    __tablename__ = "risk_users"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    meters: Mapped[str] = mapped_column(Text())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class RiskTrade(Base):
    """A closed trade (flat to flat) of a bot, in the mode it was traded in."""

    __tablename__ = "risk_trades"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    bot: Mapped[str] = mapped_column(String(64), index=True)
    mode: Mapped[str] = mapped_column(String(8))
    symbol: Mapped[str] = mapped_column(String(64))
    pnl: Mapped[Decimal] = mapped_column(DecimalText())
    opened_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    closed_at: Mapped[datetime] = mapped_column(UtcDateTime())


class RiskOrder(Base):
    """An order the risk engine approved, stored before it is sent and deleted when it ends:
    what an emergency stop from another process cancels at the venue."""

    __tablename__ = "risk_orders"

    client_order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    bot: Mapped[str] = mapped_column(String(64), index=True)
    account: Mapped[str] = mapped_column(String(128))
    symbol: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class RiskFill(Base):
    """Every fill booked to a bot (the ledger): a restart applies only fills not yet here, so a
    reconciliation never books one twice. Written in the transaction that saves the book."""

    __tablename__ = "risk_fills"

    account: Mapped[str] = mapped_column(String(128), primary_key=True)
    trade_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    client_order_id: Mapped[str] = mapped_column(String(64), index=True)
    bot: Mapped[str] = mapped_column(String(64), index=True)
    symbol: Mapped[str] = mapped_column(String(64))
    side: Mapped[str] = mapped_column(String(4))
    amount: Mapped[Decimal] = mapped_column(DecimalText())
    price: Mapped[Decimal] = mapped_column(DecimalText())
    fee: Mapped[Decimal] = mapped_column(DecimalText())
    fee_currency: Mapped[str] = mapped_column(String(32))
    filled_at: Mapped[datetime] = mapped_column(UtcDateTime())


class BotRow(Base):
    """A bot: its UUID (state dir, logs), its unique name (its id in the risk engine), whose it
    is, which connection it trades on, and where its code was copied from."""

    __tablename__ = "bots"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    user_name: Mapped[str] = mapped_column(String(64), index=True)
    connection: Mapped[str] = mapped_column(String(64))
    mode: Mapped[str] = mapped_column(String(8))
    source: Mapped[str] = mapped_column(Text())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
