"""Vetting venue keys through the vault, against the Binance simulator: a key that can move
funds is never stored; a stored key that widens is blocked, nothing trades with it, and only a
fresh check at the venue unblocks it."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
from tests.sims.binance import BinanceSim, binance_sim

from tradeguard.config import Settings
from tradeguard.core.errors import ConfigError, CredentialBlocked, KeyPermissionRefused
from tradeguard.core.events import EventName, MemorySink
from tradeguard.secrets import Password, Secret
from tradeguard.vault import CredentialInfo, Vault
from tradeguard.vault.schemas import schema_for
from tradeguard.venues import MarketKind, OrderRequest, OrderType, Side, new_client_order_id
from tradeguard.venues.connect import ccxt_venue_for
from tradeguard.venues.keycheck import KeyVerdict
from tradeguard.venues.vetting import (
    add_checked_credential,
    recheck_all,
    recheck_credential,
    unblock_credential,
)


@dataclass
class Setup:
    sim: BinanceSim
    settings: Settings
    vault: Vault
    events: MemorySink

    def new_key(self, **permissions: bool) -> tuple[str, dict[str, Secret]]:
        api_key, secret = secrets.token_hex(16), secrets.token_hex(32)
        self.sim.add_key(api_key, secret, **permissions)
        values = {"api_key": api_key, "api_secret": secret}
        schema = schema_for("binance")
        return api_key, {f.name: f.parse(values[f.name]) for f in schema.fields}

    def add(
        self, name: str, fields: dict[str, Secret], needs: frozenset[MarketKind] | None = None
    ) -> tuple[CredentialInfo, KeyVerdict]:
        return asyncio.run(
            add_checked_credential(
                self.vault, self.settings, user="svc", venue="binance", name=name,
                fields=fields, needs=needs,
            )
        )  # fmt: skip

    def names(self, event: EventName) -> list[object]:
        return [e.details.get("venue") for e in self.events.events if e.name is event]


@pytest.fixture
def bn(vault: Vault, events: MemorySink, tmp_path: Path) -> Iterator[Setup]:
    vault.add_user("svc", "service")
    sim = BinanceSim()
    sim.deposit("main", "USDT", Decimal(10_000))
    with binance_sim(sim) as url:
        settings = Settings(data_dir=tmp_path / "data", venue_api_urls={"binance": url})
        yield Setup(sim, settings, vault, events)


def test_a_trade_only_key_is_stored_with_its_check(bn: Setup) -> None:
    _, fields = bn.new_key(ip_restrict=True)
    info, verdict = bn.add("binance-main", fields)
    assert verdict.accepted
    assert verdict.warnings == ()
    assert info.permissions is not None
    assert info.permissions["can_withdraw"] is False
    assert info.permissions_checked_at is not None
    assert not info.blocked
    assert bn.names(EventName.VENUE_KEY_CHECKED) == ["binance"]


def test_no_ip_allow_list_is_stored_with_a_warning(bn: Setup) -> None:
    _, fields = bn.new_key()
    _, verdict = bn.add("binance-main", fields)
    assert verdict.accepted
    assert any("IP" in w for w in verdict.warnings)


@pytest.mark.parametrize(
    ("permission", "flag"),
    [
        ("withdrawals", "enableWithdrawals"),
        ("internal_transfer", "enableInternalTransfer"),
        ("universal_transfer", "permitsUniversalTransfer"),
    ],
)
def test_a_key_that_can_move_funds_is_refused_and_never_stored(
    bn: Setup, permission: str, flag: str
) -> None:
    _, fields = bn.new_key(**{permission: True})
    with pytest.raises(KeyPermissionRefused, match=flag) as caught:
        bn.add("binance-main", fields)
    assert "untick Enable Withdrawals" in caught.value.message
    assert bn.vault.credentials() == []
    assert bn.names(EventName.VENUE_KEY_REFUSED) == ["binance"]


def test_a_spot_only_key_is_refused_for_futures_trading(bn: Setup) -> None:
    _, fields = bn.new_key(spot=True, futures=False)
    with pytest.raises(KeyPermissionRefused, match="cannot trade swap markets"):
        bn.add("binance-futures", fields, needs=frozenset({MarketKind.SWAP}))
    assert bn.vault.credentials() == []


def _trade(bn: Setup, credential_id: str) -> None:
    async def go() -> None:
        venue = ccxt_venue_for(bn.vault, bn.settings, credential_id)
        try:
            await venue.create_order(
                OrderRequest(new_client_order_id(), "BTC/USDT", Side.BUY, OrderType.LIMIT,
                             Decimal("0.01"), Decimal(29_000))
            )  # fmt: skip
        finally:
            await venue.close()

    asyncio.run(go())


def test_a_binance_key_serves_spot_and_futures_and_nothing_else(bn: Setup) -> None:
    _, fields = bn.new_key(ip_restrict=True)
    info, _ = bn.add("binance-main", fields)
    assert ccxt_venue_for(bn.vault, bn.settings, info.id).name == "binance"
    assert ccxt_venue_for(bn.vault, bn.settings, info.id, venue="binanceusdm").name == "binanceusdm"
    with pytest.raises(ConfigError, match="cannot trade on bybit"):
        ccxt_venue_for(bn.vault, bn.settings, info.id, venue="bybit")


def test_a_key_whose_permissions_widen_is_blocked_until_a_person_fixes_it(bn: Setup) -> None:
    api_key, fields = bn.new_key(ip_restrict=True)
    info, _ = bn.add("binance-main", fields)
    _trade(bn, info.id)  # trades while trade-only
    assert len(bn.sim.order_requests) == 1

    bn.sim.set_key_permissions(api_key, withdrawals=True)
    outcome = asyncio.run(recheck_credential(bn.vault, bn.settings, info.id))
    assert outcome.newly_blocked
    assert outcome.credential.blocked
    assert "enableWithdrawals" in (outcome.credential.blocked_reason or "")
    assert bn.names(EventName.VENUE_KEY_WIDENED) == ["binance"]

    with pytest.raises(CredentialBlocked, match="tradeguard vault unblock"):
        _trade(bn, info.id)
    assert len(bn.sim.order_requests) == 1  # nothing more reached the venue

    again = asyncio.run(recheck_credential(bn.vault, bn.settings, info.id))
    assert not again.newly_blocked  # one alert per incident
    assert bn.names(EventName.VENUE_KEY_WIDENED) == ["binance"]

    with pytest.raises(KeyPermissionRefused, match="enableWithdrawals"):
        asyncio.run(unblock_credential(bn.vault, bn.settings, info.id))
    assert bn.vault.credential(info.id).blocked

    bn.sim.set_key_permissions(api_key, withdrawals=False)
    assert not asyncio.run(unblock_credential(bn.vault, bn.settings, info.id)).blocked
    _trade(bn, info.id)
    assert len(bn.sim.order_requests) == 2
    assert [e.name for e in bn.events.events][-1] is EventName.VAULT_CREDENTIAL_UNBLOCKED


def test_an_unreachable_venue_neither_blocks_nor_unblocks(bn: Setup, tmp_path: Path) -> None:
    _, fields = bn.new_key(ip_restrict=True)
    info, _ = bn.add("binance-main", fields)
    bn.vault.block_credential(info.id, "an operator's block")
    gone = Settings(data_dir=tmp_path / "data", venue_api_urls={"binance": "http://127.0.0.1:9"})
    [outcome] = asyncio.run(recheck_all(bn.vault, gone))
    assert outcome.verdict is None
    assert outcome.error
    with pytest.raises(KeyPermissionRefused, match="could not be asked"):
        asyncio.run(unblock_credential(bn.vault, gone, info.id))
    assert bn.vault.credential(info.id).blocked_reason == "an operator's block"


def test_a_locked_vault_leaves_its_keys_unchecked_and_the_others_are_still_checked(
    bn: Setup,
) -> None:
    password = Password(secrets.token_urlsafe(18))
    bn.vault.add_user("alice", "password", password)
    bn.vault.unlock("alice", password)
    _, alices_fields = bn.new_key(ip_restrict=True)
    asyncio.run(
        add_checked_credential(
            bn.vault, bn.settings, user="alice", venue="binance", name="alices",
            fields=alices_fields,
        )
    )  # fmt: skip
    bn.vault.lock("alice")
    _, fields = bn.new_key(ip_restrict=True)
    bn.add("binance-main", fields)
    outcomes = {o.credential.name: o for o in asyncio.run(recheck_all(bn.vault, bn.settings))}
    assert outcomes["alices"].verdict is None
    assert "locked" in (outcomes["alices"].error or "")
    assert outcomes["binance-main"].verdict is not None
