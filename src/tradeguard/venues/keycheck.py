"""Is this venue key trade-only? The venue's own answer, judged.

tradeguard is non-custodial: it trades with keys that must not be able to move funds off the
venue. ccxt has no unified call for a key's permissions, so each venue's endpoint is read here:

- Binance `GET /sapi/v1/account/apiRestrictions`: refuse `enableWithdrawals`,
  `enableInternalTransfer`, `permitsUniversalTransfer`; spot needs
  `enableSpotAndMarginTrading`, USDⓈ-M needs `enableFutures`.
- Bybit `GET /v5/user/query-api`: refuse `Withdraw`, `AccountTransfer`, `SubMemberTransfer`,
  `SubMemberTransferList` under `permissions.Wallet`; a `readOnly` key cannot trade.
- Hyperliquid `POST /info {"type": "userRole"}` for the signer: only an `agent` (API wallet)
  whose master is the declared account; `user` means the main wallet's own key, which can
  withdraw.

`judge` turns the parsed permissions into a verdict: refusals (each names the permission and says
how to make a trade-only key on that venue) and warnings (no IP allow-list, expiry soon).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tradeguard.core.errors import KeyPermissionRefused, MalformedReply
from tradeguard.venues.types import KeyPermissions, MarketKind

__all__ = [
    "KeyVerdict",
    "ParsedKey",
    "binance_permissions",
    "bybit_permissions",
    "hyperliquid_permissions",
    "judge",
]

EXPIRY_WARNING = timedelta(days=14)

HOW_TO = {
    "binance": (
        "in Binance, API Management: edit the key's restrictions, untick Enable Withdrawals, "
        "Enable Internal Transfer and Permits Universal Transfer, tick only Enable Spot & Margin "
        "Trading (and Enable Futures for USDⓈ-M), restrict access to trusted IPs, then add it "
        "again"
    ),
    "binanceusdm": (
        "in Binance, API Management: edit the key's restrictions, untick Enable Withdrawals, "
        "Enable Internal Transfer and Permits Universal Transfer, tick only Enable Futures, "
        "restrict access to trusted IPs, then add it again"
    ),
    "bybit": (
        "in Bybit, API Management: create a System-generated key with Read-Write, tick only "
        "Orders and Positions (Contract) and Trade (Spot), leave every Assets/Wallet box "
        "(Withdrawal, Transfer, Sub-account transfer) unticked, bind it to your IPs, then add "
        "it again"
    ),
    "hyperliquid": (
        "on Hyperliquid, More > API: generate an API wallet (agent), authorize it for your "
        "account, and add the API wallet's private key with your main account address; never "
        "give tradeguard the main wallet's own key"
    ),
}

_BYBIT_FUND_MOVERS = ("Withdraw", "AccountTransfer", "SubMemberTransfer", "SubMemberTransferList")


@dataclass(frozen=True)
class ParsedKey:
    """A venue's answer, parsed: the permissions, the venue's own names of the fund-moving
    permissions that are on (for the message), and any venue-specific reason it cannot trade."""

    permissions: KeyPermissions
    fund_movers: tuple[str, ...] = ()
    problem: str | None = None


@dataclass(frozen=True)
class KeyVerdict:
    venue: str
    permissions: KeyPermissions
    refusals: tuple[str, ...]
    warnings: tuple[str, ...]

    @property
    def accepted(self) -> bool:
        return not self.refusals

    def raise_if_refused(self) -> None:
        if self.refusals:
            how = HOW_TO.get(self.venue, "create a key that can only trade, then add it again")
            raise KeyPermissionRefused(
                f"{self.venue} key refused: {'; '.join(self.refusals)}. To fix it: {how}",
                venue=self.venue,
            )


def judge(venue: str, parsed: ParsedKey, needs: frozenset[MarketKind], now: datetime) -> KeyVerdict:
    """The verdict on a key: refused if it can move funds or cannot trade what is needed."""
    permissions = parsed.permissions
    refusals: list[str] = []
    warnings: list[str] = []
    if permissions.moves_funds:
        names = ", ".join(parsed.fund_movers) or "withdraw or transfer"
        refusals.append(f"it can move funds off the account ({names})")
    if parsed.problem:
        refusals.append(parsed.problem)
    elif not permissions.can_trade:
        refusals.append("it cannot trade (read-only)")
    else:
        missing = sorted(kind.value for kind in needs - permissions.trade_kinds)
        if missing:
            refusals.append(f"it cannot trade {' or '.join(missing)} markets, which are needed")
    if permissions.ip_restricted is False:
        warnings.append("it is not restricted to your IP addresses; add an IP allow-list")
    if permissions.expires_at is not None:
        if permissions.expires_at <= now:
            refusals.append(f"it expired at {permissions.expires_at.isoformat()}")
        elif permissions.expires_at - now < EXPIRY_WARNING:
            warnings.append(f"it expires at {permissions.expires_at.isoformat()}; renew it")
    return KeyVerdict(venue, permissions, tuple(refusals), tuple(warnings))


# -- Binance -----------------------------------------------------------------------------------

_BINANCE_FLAGS = (
    "ipRestrict",
    "enableReading",
    "enableSpotAndMarginTrading",
    "enableWithdrawals",
    "enableInternalTransfer",
    "enableMargin",
    "enableFutures",
    "permitsUniversalTransfer",
    "enableVanillaOptions",
    "enablePortfolioMarginTrading",
)


def binance_permissions(reply: object) -> ParsedKey:
    """Parse `apiRestrictions`; returns the permissions and the fund-moving flags that are on."""
    data = _mapping(reply, "binance", "apiRestrictions")
    flags = {name: _flag(data, name, "binance") for name in _BINANCE_FLAGS if name in data}
    for required in ("enableWithdrawals", "enableSpotAndMarginTrading", "ipRestrict"):
        if required not in flags:
            raise MalformedReply(
                f"binance apiRestrictions reply has no {required}; cannot judge the key",
                venue="binance",
            )
    kinds = set()
    if flags.get("enableSpotAndMarginTrading"):
        kinds.add(MarketKind.SPOT)
    if flags.get("enableFutures"):
        kinds.add(MarketKind.SWAP)
    movers = tuple(
        name
        for name in ("enableWithdrawals", "enableInternalTransfer", "permitsUniversalTransfer")
        if flags.get(name)
    )
    expires = data.get("tradingAuthorityExpirationTime")
    permissions = KeyPermissions(
        can_read=flags.get("enableReading", True),
        can_trade=bool(kinds),
        can_withdraw=flags["enableWithdrawals"],
        can_transfer=bool(
            flags.get("enableInternalTransfer") or flags.get("permitsUniversalTransfer")
        ),
        ip_restricted=flags["ipRestrict"],
        expires_at=_ms_time(expires, "binance") if expires else None,
        trade_kinds=frozenset(kinds),
        raw=flags,
    )
    return ParsedKey(permissions, movers)


# -- Bybit -------------------------------------------------------------------------------------


def bybit_permissions(reply: object) -> ParsedKey:
    """Parse the `result` of `/v5/user/query-api`."""
    data = _mapping(reply, "bybit", "query-api")
    perms = _mapping(data.get("permissions"), "bybit", "query-api permissions")
    granted: dict[str, list[str]] = {}
    for group, values in perms.items():
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise MalformedReply(
                f"bybit query-api permissions.{group} is not a list of names", venue="bybit"
            )
        granted[str(group)] = list(values)
    read_only = data.get("readOnly")
    if read_only not in (0, 1):
        raise MalformedReply("bybit query-api readOnly is not 0 or 1", venue="bybit")
    wallet = granted.get("Wallet", [])
    movers = tuple(f"Wallet.{name}" for name in _BYBIT_FUND_MOVERS if name in wallet)
    kinds = set()
    if not read_only:
        if "SpotTrade" in granted.get("Spot", []):
            kinds.add(MarketKind.SPOT)
        if "Order" in granted.get("ContractTrade", []):
            kinds.add(MarketKind.SWAP)
    ips = data.get("ips") or []
    if not isinstance(ips, list):
        raise MalformedReply("bybit query-api ips is not a list", venue="bybit")
    expired_at = data.get("expiredAt")
    permissions = KeyPermissions(
        can_read=True,
        can_trade=bool(kinds),
        can_withdraw="Withdraw" in wallet,
        can_transfer=any(name in wallet for name in _BYBIT_FUND_MOVERS if name != "Withdraw"),
        ip_restricted=bool(ips) and "*" not in ips,
        expires_at=_iso_time(expired_at, "bybit") if expired_at else None,
        trade_kinds=frozenset(kinds),
        raw={"readOnly": read_only, "permissions": granted, "ips": ips, "expiredAt": expired_at},
    )
    return ParsedKey(permissions, movers)


# -- Hyperliquid -------------------------------------------------------------------------------


def hyperliquid_permissions(reply: object, account: str) -> ParsedKey:
    """Parse a `userRole` reply for the signer's address against the declared account."""
    data = _mapping(reply, "hyperliquid", "userRole")
    role = data.get("role")
    master: str | None = None
    if role == "agent":
        user = _mapping(data.get("data"), "hyperliquid", "userRole data").get("user")
        if not isinstance(user, str):
            raise MalformedReply("hyperliquid userRole agent names no master", venue="hyperliquid")
        master = user
    ours = master is not None and master.lower() == account.lower()
    main_key = role == "user"
    permissions = KeyPermissions(
        can_read=True,
        can_trade=ours,
        can_withdraw=main_key,  # the main wallet's own key can withdraw; an API wallet cannot
        can_transfer=main_key,
        ip_restricted=None,  # Hyperliquid has no IP allow-lists
        expires_at=None,
        trade_kinds=frozenset({MarketKind.SPOT, MarketKind.SWAP}) if ours else frozenset(),
        raw={"role": role, "agent_of_declared_account": ours},  # no address: kept encrypted
    )
    problem = None
    if main_key:
        movers: tuple[str, ...] = ("it is the main wallet's own key, role user",)
    else:
        movers = ()
        if role == "agent" and not ours:
            problem = "it is an API wallet of a different account than the one given"
        elif role != "agent":
            problem = f"it is not an authorized API wallet (role {role})"
    return ParsedKey(permissions, movers, problem)


# -- parsing helpers ---------------------------------------------------------------------------


def _mapping(value: object, venue: str, what: str) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise MalformedReply(f"{venue} {what} reply is not a JSON object", venue=venue)
    return value


def _flag(data: Mapping[str, object], name: str, venue: str) -> bool:
    value = data[name]
    if not isinstance(value, bool):
        raise MalformedReply(f"{venue} reply field {name} is not true or false", venue=venue)
    return value


def _ms_time(value: object, venue: str) -> datetime:
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        raise MalformedReply(f"{venue} reply has a time that is not milliseconds", venue=venue)
    return datetime.fromtimestamp(int(value) / 1000, UTC)


def _iso_time(value: object, venue: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise MalformedReply(
            f"{venue} reply has a time that is not ISO 8601", venue=venue
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
