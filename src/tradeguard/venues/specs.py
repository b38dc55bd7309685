"""What differs between the ccxt venues: how a credential becomes ccxt config, how the key's
permissions are asked for, and how an order is looked up by its client order id.

Everything else (markets, orders, balances, errors, retries) is common code in `ccxt_venue`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import ccxt.async_support as ccxt_async

from tradeguard.core.errors import ConfigError, MalformedReply, OrderNotFound
from tradeguard.secrets import Secret
from tradeguard.venues.keycheck import (
    ParsedKey,
    binance_permissions,
    bybit_permissions,
    hyperliquid_permissions,
)
from tradeguard.venues.types import MarketKind

__all__ = ["SPECS", "CredentialFields", "VenueSpec", "spec_for"]


def _text(secret: Secret) -> str:
    """ccxt takes keys as `str`. Python cannot wipe a `str`: the copy lives in the short-lived
    exchange object of one call and is dropped with it (docs/security.md says so)."""
    with secret.reveal() as view:
        return bytes(view).decode("ascii")


class CredentialFields(Protocol):
    """A credential's fields by name: a `UsedCredential`, or a mapping before it is stored."""

    def __getitem__(self, field: str) -> Secret: ...


@dataclass(frozen=True)
class VenueSpec:
    name: str  # tradeguard's venue name
    credential_venue: str  # the vault schema the credential is stored under
    kinds: frozenset[MarketKind]  # what it trades
    options: Mapping[str, Any]  # ccxt options this venue needs
    has: Mapping[str, bool] = field(default_factory=dict)  # ccxt features to switch off
    price_significant_digits: int | None = None

    def ccxt_config(self, fields: CredentialFields) -> dict[str, Any]:
        return {"apiKey": _text(fields["api_key"]), "secret": _text(fields["api_secret"])}

    async def key_permissions(
        self, exchange: ccxt_async.Exchange, fields: CredentialFields
    ) -> ParsedKey:
        raise NotImplementedError

    async def order_by_client_id(
        self, exchange: ccxt_async.Exchange, symbol: str, client_order_id: str
    ) -> Mapping[str, Any]:
        return await exchange.fetch_order(None, symbol, {"clientOrderId": client_order_id})  # type: ignore[no-any-return]

    def client_id_params(self, client_order_id: str) -> dict[str, Any]:
        return {"clientOrderId": client_order_id}

    def open_order_scopes(self, settles: frozenset[str]) -> list[dict[str, Any]]:
        """The ccxt params that together cover every market's open orders (one call each)."""
        return [{}]


class _Binance(VenueSpec):
    async def key_permissions(
        self, exchange: ccxt_async.Exchange, fields: CredentialFields
    ) -> ParsedKey:
        return binance_permissions(await exchange.sapi_get_account_apirestrictions())

    async def order_by_client_id(
        self, exchange: ccxt_async.Exchange, symbol: str, client_order_id: str
    ) -> Mapping[str, Any]:
        params = {"origClientOrderId": client_order_id}
        return await exchange.fetch_order(None, symbol, params)  # type: ignore[no-any-return]


class _Bybit(VenueSpec):
    async def key_permissions(
        self, exchange: ccxt_async.Exchange, fields: CredentialFields
    ) -> ParsedKey:
        reply = await exchange.private_get_v5_user_query_api()
        result = reply.get("result") if isinstance(reply, dict) else None
        return bybit_permissions(result)

    async def order_by_client_id(
        self, exchange: ccxt_async.Exchange, symbol: str, client_order_id: str
    ) -> Mapping[str, Any]:
        market = exchange.market(symbol)
        request = {
            "category": "linear" if market["swap"] else "spot",
            "symbol": market["id"],
            "orderLinkId": client_order_id,
        }
        for endpoint in (
            exchange.private_get_v5_order_realtime,
            exchange.private_get_v5_order_history,
        ):
            reply = await endpoint(request)
            rows = ((reply or {}).get("result") or {}).get("list")
            if not isinstance(rows, list):
                raise MalformedReply("bybit order query reply has no result.list", venue=self.name)
            if rows:
                return exchange.parse_order(rows[0], market)  # type: ignore[no-any-return]
        raise OrderNotFound(f"bybit has no order with client id {client_order_id}", venue=self.name)

    def open_order_scopes(self, settles: frozenset[str]) -> list[dict[str, Any]]:
        # Bybit answers one category per call, and linear only per settle coin.
        scopes: list[dict[str, Any]] = [{"type": "spot"}]
        scopes += [{"type": "swap", "subType": "linear", "settleCoin": s} for s in sorted(settles)]
        return scopes


class _Hyperliquid(VenueSpec):
    def ccxt_config(self, fields: CredentialFields) -> dict[str, Any]:
        return {
            "walletAddress": _text(fields["account_address"]),
            "privateKey": _text(fields["agent_private_key"]),
        }

    async def key_permissions(
        self, exchange: ccxt_async.Exchange, fields: CredentialFields
    ) -> ParsedKey:
        from eth_account import Account  # ~0.7 s to import; only this check needs it

        signer = Account.from_key(_text(fields["agent_private_key"])).address
        account = _text(fields["account_address"])
        reply = await exchange.public_post_info({"type": "userRole", "user": signer})
        return hyperliquid_permissions(reply, account)


# load_markets makes one public call per venue: no currencies (a signed call on Binance), no
# margin pairs, only the market types tradeguard trades there.
_BINANCE = {
    "fetchCurrencies": False,
    "fetchMargins": False,
    "warnOnFetchOpenOrdersWithoutSymbol": False,  # all markets is what we ask for
}
SPECS: Mapping[str, VenueSpec] = {
    "binance": _Binance(
        "binance",
        "binance",
        frozenset({MarketKind.SPOT}),
        {**_BINANCE, "defaultType": "spot", "fetchMarkets": {"types": ["spot"]}},
    ),
    "binanceusdm": _Binance(
        "binanceusdm",
        "binance",
        frozenset({MarketKind.SWAP}),
        {**_BINANCE, "defaultType": "future", "fetchMarkets": {"types": ["linear"]}},
    ),
    "bybit": _Bybit(
        "bybit",
        "bybit",
        frozenset({MarketKind.SPOT, MarketKind.SWAP}),
        {
            "fetchMarkets": {"types": ["spot", "linear"]},
            # unified trading accounts only: ccxt skips its account-type probe
            "enableUnifiedAccount": True,
            "enableUnifiedMargin": False,
            # fetch_order by id reads the last 500 orders; ours are recent, the warning is moot
            "fetchOrder": {"acknowledged": True},
        },
        has={"fetchCurrencies": False},
    ),
    "hyperliquid": _Hyperliquid(
        "hyperliquid",
        "hyperliquid",
        frozenset({MarketKind.SWAP}),
        # ccxt would otherwise set a referral code and approve and charge its own builder fee
        # on every order: money out of the user's account that nobody asked for.
        {"defaultType": "swap", "refSet": True, "builderFee": False},
        price_significant_digits=5,  # and at most 6 - szDecimals decimals: ccxt's tick
    ),
}


def spec_for(venue: str) -> VenueSpec:
    try:
        return SPECS[venue]
    except KeyError:
        raise ConfigError(
            f"{venue!r} is not a ccxt venue tradeguard trades on; choose one of: "
            f"{', '.join(sorted(SPECS))} (or paper)"
        ) from None
