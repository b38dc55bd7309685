"""Judging venue keys from the venues' own permission replies (the reply shapes of Binance's
apiRestrictions, Bybit's query-api and Hyperliquid's userRole)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tradeguard.core.errors import KeyPermissionRefused, MalformedReply
from tradeguard.venues.keycheck import (
    binance_permissions,
    bybit_permissions,
    hyperliquid_permissions,
    judge,
)
from tradeguard.venues.types import MarketKind

NOW = datetime(2026, 11, 22, tzinfo=UTC)
SPOT = frozenset({MarketKind.SPOT})
SWAP = frozenset({MarketKind.SWAP})


def binance_reply(**changes: object) -> dict[str, object]:
    reply: dict[str, object] = {
        "ipRestrict": True,
        "createTime": 1_700_000_000_000,
        "enableReading": True,
        "enableSpotAndMarginTrading": True,
        "enableWithdrawals": False,
        "enableInternalTransfer": False,
        "enableMargin": False,
        "enableFutures": False,
        "permitsUniversalTransfer": False,
        "enableVanillaOptions": False,
        "enablePortfolioMarginTrading": False,
    }
    reply.update(changes)
    return reply


def bybit_reply(**changes: object) -> dict[str, object]:
    reply: dict[str, object] = {
        "id": "1",
        "readOnly": 0,
        "secret": "",
        "permissions": {
            "ContractTrade": ["Order", "Position"],
            "Spot": ["SpotTrade"],
            "Wallet": [],
            "Options": [],
            "Derivatives": [],
        },
        "ips": ["203.0.113.7"],
        "expiredAt": "2027-06-01T00:00:00Z",
    }
    reply.update(changes)
    return reply


def test_a_trade_only_binance_key_is_accepted() -> None:
    verdict = judge("binance", binance_permissions(binance_reply()), SPOT, NOW)
    assert verdict.accepted
    assert verdict.warnings == ()
    verdict.raise_if_refused()


@pytest.mark.parametrize(
    "flag", ["enableWithdrawals", "enableInternalTransfer", "permitsUniversalTransfer"]
)
def test_a_binance_key_that_moves_funds_is_refused_naming_the_flag(flag: str) -> None:
    verdict = judge("binance", binance_permissions(binance_reply(**{flag: True})), SPOT, NOW)
    assert not verdict.accepted
    with pytest.raises(KeyPermissionRefused, match=flag) as caught:
        verdict.raise_if_refused()
    assert "API Management" in caught.value.message  # says how to make a trade-only key


def test_binance_needs_the_trading_permission_the_bot_uses() -> None:
    spot_only = binance_permissions(binance_reply())
    verdict = judge("binanceusdm", spot_only, SWAP, NOW)
    assert verdict.refusals == ("it cannot trade swap markets, which are needed",)
    futures = binance_permissions(binance_reply(enableFutures=True))
    assert judge("binanceusdm", futures, SWAP, NOW).accepted


def test_binance_without_ip_restriction_is_a_warning_and_expiry_is_recorded() -> None:
    expires = int((NOW + timedelta(days=3)).timestamp() * 1000)
    parsed = binance_permissions(
        binance_reply(ipRestrict=False, tradingAuthorityExpirationTime=expires)
    )
    verdict = judge("binance", parsed, SPOT, NOW)
    assert verdict.accepted
    assert any("IP" in w for w in verdict.warnings)
    assert any("expires" in w for w in verdict.warnings)
    assert parsed.permissions.expires_at == NOW + timedelta(days=3)


def test_an_expired_key_is_refused() -> None:
    parsed = bybit_permissions(bybit_reply(expiredAt="2026-11-01T00:00:00Z"))
    assert "expired" in judge("bybit", parsed, SPOT, NOW).refusals[0]


def test_a_trade_only_bybit_key_is_accepted() -> None:
    parsed = bybit_permissions(bybit_reply())
    assert parsed.permissions.trade_kinds == {MarketKind.SPOT, MarketKind.SWAP}
    assert parsed.permissions.ip_restricted
    assert judge("bybit", parsed, SPOT | SWAP, NOW).accepted


@pytest.mark.parametrize(
    "wallet", ["Withdraw", "AccountTransfer", "SubMemberTransfer", "SubMemberTransferList"]
)
def test_a_bybit_key_with_a_wallet_permission_is_refused(wallet: str) -> None:
    reply = bybit_reply()
    reply["permissions"] = {"Spot": ["SpotTrade"], "Wallet": [wallet]}
    verdict = judge("bybit", bybit_permissions(reply), SPOT, NOW)
    with pytest.raises(KeyPermissionRefused, match=f"Wallet.{wallet}"):
        verdict.raise_if_refused()


def test_a_read_only_bybit_key_is_useless_and_refused() -> None:
    verdict = judge("bybit", bybit_permissions(bybit_reply(readOnly=1)), SPOT, NOW)
    assert verdict.refusals == ("it cannot trade (read-only)",)


def test_bybit_unrestricted_ips_warn() -> None:
    verdict = judge("bybit", bybit_permissions(bybit_reply(ips=["*"])), SPOT, NOW)
    assert verdict.accepted
    assert any("IP" in w for w in verdict.warnings)


ACCOUNT = "0x" + "ab" * 20
OTHER = "0x" + "cd" * 20


def test_a_hyperliquid_agent_of_the_declared_account_is_accepted() -> None:
    reply = {"role": "agent", "data": {"user": ACCOUNT.upper().replace("0X", "0x")}}
    verdict = judge("hyperliquid", hyperliquid_permissions(reply, ACCOUNT), SWAP, NOW)
    assert verdict.accepted
    assert verdict.warnings == ()  # Hyperliquid has no IP allow-lists to warn about


def test_the_hyperliquid_main_wallet_key_is_refused() -> None:
    verdict = judge("hyperliquid", hyperliquid_permissions({"role": "user"}, ACCOUNT), SWAP, NOW)
    with pytest.raises(KeyPermissionRefused, match="main wallet") as caught:
        verdict.raise_if_refused()
    assert "API wallet" in caught.value.message


@pytest.mark.parametrize(
    ("reply", "says"),
    [
        ({"role": "agent", "data": {"user": OTHER}}, "different account"),
        ({"role": "missing"}, "not an authorized API wallet"),
        ({"role": "vault"}, "not an authorized API wallet"),
    ],
)
def test_other_hyperliquid_roles_are_refused(reply: dict[str, object], says: str) -> None:
    verdict = judge("hyperliquid", hyperliquid_permissions(reply, ACCOUNT), SWAP, NOW)
    assert not verdict.accepted
    assert says in verdict.refusals[0]


@pytest.mark.parametrize(
    ("parse", "reply"),
    [
        (binance_permissions, ["not", "an", "object"]),
        (binance_permissions, {"ipRestrict": True}),
        (binance_permissions, binance_reply(enableWithdrawals="false")),
        (bybit_permissions, bybit_reply(permissions={"Wallet": "Withdraw"})),
        (bybit_permissions, bybit_reply(readOnly=None)),
        (bybit_permissions, bybit_reply(expiredAt="soon")),
    ],
)
def test_a_malformed_reply_is_never_read_as_permission(parse: object, reply: object) -> None:
    with pytest.raises(MalformedReply):
        parse(reply)  # type: ignore[operator]
