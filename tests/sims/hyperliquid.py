"""A Hyperliquid perpetuals venue on loopback, for the real ccxt client to talk to.

`POST /info` answers the read queries ccxt sends (markets, balances, orders, fills, roles);
`POST /exchange` takes signed L1 actions (`order`, `cancel`, `cancelByCloid`, `setReferrer`)
and the one user-signed action ccxt sends on its own (`approveBuilderFee`).

Signatures are checked the way Hyperliquid checks them. An L1 action is rebuilt in the venue's
field order (prices and sizes in canonical form), msgpack-serialized with the serializer ccxt
vendors, followed by the nonce (8 bytes, big-endian), the vault flag and an optional
`expiresAfter`; its keccak hash is the `connectionId` of a phantom agent
`{source: "b" (testnet) | "a" (mainnet), connectionId}`, signed as EIP-712 typed data in the
domain `Exchange`/`1`/chainId 1337/zero address. The venue does not learn who signed from the
request: it recovers the signer from the signature. A master signs for itself; an approved,
unexpired API wallet (agent) signs for its master. Any other signer gets
"User or API Wallet 0x... does not exist." (so a wrong key, or a body changed after signing,
is refused: the recovered address is some stranger). Note what follows, as on Hyperliquid:
an agent of another master is *not* refused; its orders land on that other master's account,
whatever `walletAddress` the client was configured with.

Nonces are per signer: inside (T - 2 days, T + 1 day) of the sim clock, never reused, and
above the smallest of the signer's 100 highest nonces once it has 100.

The book is a mark price per coin with no other traders: a marketable order (IOC, or a GTC
whose limit reaches the mark) fills in full at the mark as taker; a resting order fills at its
limit, as maker, when `set_price` moves the mark through it. Margin is cross, one leverage for
all coins; fees are simple taker/maker rates on notional. The account is in the sim's memory
only; everything happens under one lock, so tests may poke the sim from their own thread.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, ClassVar

from ccxt.static_dependencies.msgpack import packb  # the exact bytes ccxt hashes
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.crypto import keccak
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from tests.sims.server import serve

__all__ = ["Fill", "HyperliquidSim", "Order", "hyperliquid_sim"]

DAY_MS = 86_400_000
NONCE_PAST_MS = 2 * DAY_MS
NONCE_FUTURE_MS = DAY_MS
NONCES_KEPT = 100
MIN_ORDER_VALUE = Decimal(10)
ZERO_ADDRESS = "0x" + "00" * 20
SPOT_ASSET_OFFSET = 10_000

_EIP712_DOMAIN = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]

# user-signed actions: (primary type, fields); the action carries every field by name.
_USER_SIGNED: dict[str, tuple[str, list[dict[str, str]]]] = {
    "approveBuilderFee": (
        "HyperliquidTransaction:ApproveBuilderFee",
        [
            {"name": "hyperliquidChain", "type": "string"},
            {"name": "maxFeeRate", "type": "string"},
            {"name": "builder", "type": "address"},
            {"name": "nonce", "type": "uint64"},
        ],
    ),
}


class Refused(Exception):
    """An action the venue answers with `{"status": "err", "response": message}`."""


@dataclass
class Coin:
    name: str
    asset: int
    sz_decimals: int
    max_leverage: int
    mark: Decimal


@dataclass
class Order:
    oid: int
    user: str
    coin: str
    is_buy: bool
    limit_px: Decimal
    orig_sz: Decimal
    sz: Decimal  # remaining
    tif: str
    reduce_only: bool
    cloid: str | None
    timestamp: int
    status: str = "open"
    status_timestamp: int = 0
    builder: dict[str, Any] | None = None
    filled_sz: Decimal = Decimal(0)
    filled_ntl: Decimal = Decimal(0)


@dataclass
class Fill:
    user: str
    coin: str
    px: Decimal
    sz: Decimal
    is_buy: bool
    time: int
    start_position: Decimal
    direction: str
    closed_pnl: Decimal
    oid: int
    tid: int
    crossed: bool
    fee: Decimal
    cloid: str | None
    builder_fee: Decimal | None


@dataclass
class Position:
    szi: Decimal = Decimal(0)
    entry_px: Decimal = Decimal(0)


@dataclass
class Agent:
    master: str
    name: str | None
    valid_until_ms: int | None


@dataclass
class Master:
    address: str
    usdc: Decimal = Decimal(0)  # perp cash: deposits + realized pnl - fees
    positions: dict[str, Position] = field(default_factory=dict)
    builder_approvals: dict[str, Decimal] = field(default_factory=dict)  # builder -> max rate
    referrer: str | None = None


@dataclass
class _Fault:
    kind: str  # "status" or "hold"
    remaining: int
    status: int = 0
    match: str | None = None  # an info type or an action type; None matches any request
    hold_s: float = 0.0


def _lower(address: str) -> str:
    return address.lower()


def _wire(value: Decimal) -> str:
    """A number as Hyperliquid's wire format has it: no exponent, no trailing zeros."""
    text = format(value.normalize(), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _out(value: Decimal) -> str:
    """A number as Hyperliquid's info replies print it ("2000.0", "0.01")."""
    text = _wire(value)
    return text if "." in text else text + ".0"


def _decimal(text: Any, what: str) -> Decimal:
    try:
        value = Decimal(str(text))
    except InvalidOperation:
        raise Refused(f"Invalid {what}: {text!r}") from None
    if not value.is_finite():
        raise Refused(f"Invalid {what}: {text!r}")
    return value


def _canonical_order_wire(order: dict[str, Any]) -> dict[str, Any]:
    """The venue's own field order and number form for one order, as its serializer would emit."""
    kind = order["t"]
    if "limit" in kind:
        order_type: dict[str, Any] = {"limit": {"tif": kind["limit"]["tif"]}}
    else:
        trigger = kind["trigger"]
        order_type = {
            "trigger": {
                "isMarket": trigger["isMarket"],
                "triggerPx": _wire(_decimal(trigger["triggerPx"], "trigger price")),
                "tpsl": trigger["tpsl"],
            }
        }
    wire: dict[str, Any] = {
        "a": order["a"],
        "b": order["b"],
        "p": _wire(_decimal(order["p"], "price")),
        "s": _wire(_decimal(order["s"], "size")),
        "r": order["r"],
        "t": order_type,
    }
    if order.get("c") is not None:
        wire["c"] = order["c"]
    return wire


def canonical_action(action: dict[str, Any]) -> dict[str, Any]:
    """Rebuild a known L1 action in the venue's field order; unknown types pass as received.

    A client that sends keys in another order, or "2000.0" where the venue writes "2000", signed
    other bytes than the venue hashes: the signature then recovers a stranger, as on Hyperliquid.
    """
    kind = action.get("type")
    try:
        if kind == "order":
            rebuilt: dict[str, Any] = {
                "type": "order",
                "orders": [_canonical_order_wire(o) for o in action["orders"]],
                "grouping": action["grouping"],
            }
            if action.get("builder") is not None:
                rebuilt["builder"] = {
                    "b": _lower(action["builder"]["b"]),
                    "f": action["builder"]["f"],
                }
            return rebuilt
        if kind == "cancel":
            return {
                "type": "cancel",
                "cancels": [{"a": c["a"], "o": c["o"]} for c in action["cancels"]],
            }
        if kind == "cancelByCloid":
            return {
                "type": "cancelByCloid",
                "cancels": [{"asset": c["asset"], "cloid": c["cloid"]} for c in action["cancels"]],
            }
        if kind == "setReferrer":
            return {"type": "setReferrer", "code": action["code"]}
    except (KeyError, TypeError) as exc:
        raise Refused(f"Failed to deserialize the JSON body into the target type: {exc}") from None
    return action


def action_hash(
    action: dict[str, Any], vault_address: str | None, nonce: int, expires_after: int | None
) -> bytes:
    data = packb(action) + nonce.to_bytes(8, "big")
    if vault_address is None:
        data += b"\x00"
    else:
        data += b"\x01" + bytes.fromhex(vault_address.removeprefix("0x"))
    if expires_after is not None:
        data += b"\x00" + expires_after.to_bytes(8, "big")
    return keccak(data)


def _recover(typed: dict[str, Any], signature: Any) -> str:
    try:
        vrs = (int(signature["v"]), int(signature["r"], 16), int(signature["s"], 16))
        signer = Account.recover_message(encode_typed_data(full_message=typed), vrs=vrs)
    except Exception as exc:  # noqa: BLE001 - any malformed signature is one refusal
        raise Refused(f"Invalid signature: {type(exc).__name__}") from None
    return _lower(signer)


def recover_l1_signer(
    action: dict[str, Any],
    nonce: int,
    signature: Any,
    *,
    testnet: bool,
    vault_address: str | None = None,
    expires_after: int | None = None,
) -> str:
    connection_id = action_hash(action, vault_address, nonce, expires_after)
    typed = {
        "domain": {
            "name": "Exchange",
            "version": "1",
            "chainId": 1337,
            "verifyingContract": ZERO_ADDRESS,
        },
        "types": {
            "EIP712Domain": _EIP712_DOMAIN,
            "Agent": [
                {"name": "source", "type": "string"},
                {"name": "connectionId", "type": "bytes32"},
            ],
        },
        "primaryType": "Agent",
        "message": {"source": "b" if testnet else "a", "connectionId": connection_id},
    }
    return _recover(typed, signature)


def recover_user_signed_signer(action: dict[str, Any], signature: Any) -> str:
    primary, fields = _USER_SIGNED[action["type"]]
    try:
        chain_id = int(action["signatureChainId"], 16)
        message = {f["name"]: action[f["name"]] for f in fields}
    except (KeyError, TypeError, ValueError) as exc:
        raise Refused(f"Failed to deserialize the JSON body into the target type: {exc}") from None
    typed = {
        "domain": {
            "name": "HyperliquidSignTransaction",
            "version": "1",
            "chainId": chain_id,
            "verifyingContract": ZERO_ADDRESS,
        },
        "types": {"EIP712Domain": _EIP712_DOMAIN, primary: fields},
        "primaryType": primary,
        "message": message,
    }
    return _recover(typed, signature)


class HyperliquidSim:
    """State and HTTP app of one simulated Hyperliquid (perps, cross margin, USDC)."""

    def __init__(
        self,
        *,
        testnet: bool = True,
        leverage: int = 10,
        taker_fee: Decimal | str = "0.00045",
        maker_fee: Decimal | str = "0.00015",
        clock: Callable[[], int] | None = None,
    ) -> None:
        self.testnet = testnet
        self.leverage = Decimal(leverage)
        self.taker_fee = Decimal(taker_fee)
        self.maker_fee = Decimal(maker_fee)
        self.clock: Callable[[], int] = clock or (lambda: int(time.time() * 1000))
        self.coins: dict[str, Coin] = {}
        self.masters: dict[str, Master] = {}
        self.agents: dict[str, Agent] = {}
        self.sub_accounts: dict[str, str] = {}  # sub-account -> its master (userRole only)
        self.vaults: set[str] = set()  # vault addresses (userRole only)
        self.orders: dict[int, Order] = {}
        self.fills: list[Fill] = []
        # every order action that passed the signature and nonce checks, in arrival order:
        # {"signer", "user", "nonce", "action"}; a test counts these to prove no duplicate
        self.order_actions: list[dict[str, Any]] = []
        # every /exchange body received, verified or not: {"action", "nonce", "reply"}
        self.exchange_requests: list[dict[str, Any]] = []
        self.info_requests: list[dict[str, Any]] = []
        self._nonces: dict[str, list[int]] = {}
        self._oids = itertools.count(1_000_001)
        self._tids = itertools.count(1)
        self._faults: list[_Fault] = []
        self._lock = threading.RLock()
        self._released = threading.Event()
        self.add_coin("BTC", sz_decimals=5, max_leverage=40, price="60000")
        self.add_coin("ETH", sz_decimals=4, max_leverage=25, price="2000")
        self.app = Starlette(
            routes=[
                Route("/info", self._info_endpoint, methods=["POST"]),
                Route("/exchange", self._exchange_endpoint, methods=["POST"]),
            ]
        )

    # ----------------------------------------------------------------- set-up by tests

    def add_coin(
        self, name: str, *, sz_decimals: int, max_leverage: int, price: Decimal | str
    ) -> Coin:
        with self._lock:
            coin = Coin(name, len(self.coins), sz_decimals, max_leverage, Decimal(price))
            self.coins[name] = coin
            return coin

    def fund(self, master: str, usdc: Decimal | str | int) -> None:
        """Deposit USDC into `master`'s perp account (creating the account)."""
        with self._lock:
            account = self.masters.setdefault(_lower(master), Master(_lower(master)))
            account.usdc += Decimal(usdc)

    def approve_agent(
        self,
        master: str,
        agent_address: str,
        name: str | None = None,
        valid_until_ms: int | None = None,
    ) -> None:
        """What an `approveAgent` action signed by the master does: `agent_address` may sign
        for `master` (until `valid_until_ms` on the sim clock, if given). A named agent replaces
        the master's earlier agent of that name, as on Hyperliquid."""
        with self._lock:
            if _lower(master) not in self.masters:
                raise ValueError(f"fund {master} before approving agents for it")
            if _lower(agent_address) in self.masters:
                raise ValueError(f"{agent_address} is a user, not an API wallet")
            if name is not None:
                for address, agent in list(self.agents.items()):
                    if agent.master == _lower(master) and agent.name == name:
                        del self.agents[address]
            self.agents[_lower(agent_address)] = Agent(_lower(master), name, valid_until_ms)

    def add_sub_account(self, master: str, sub_account: str) -> None:
        """Register a sub-account of `master`; only `userRole` knows it (trading for a
        sub-account or vault, `vaultAddress`, is not simulated)."""
        with self._lock:
            self.sub_accounts[_lower(sub_account)] = _lower(master)

    def add_vault(self, vault_address: str) -> None:
        """Register a vault address; only `userRole` knows it."""
        with self._lock:
            self.vaults.add(_lower(vault_address))

    def revoke_agent(self, agent_address: str) -> None:
        with self._lock:
            self.agents.pop(_lower(agent_address), None)

    def set_price(self, coin: str, price: Decimal | str | int) -> None:
        """Move `coin`'s mark; resting orders it crosses fill at their limit, as maker."""
        with self._lock:
            mark = Decimal(price)
            self.coins[coin].mark = mark
            for order in sorted(self.orders.values(), key=lambda o: o.oid):
                if order.status != "open" or order.coin != coin:
                    continue
                crosses = order.limit_px >= mark if order.is_buy else order.limit_px <= mark
                if crosses:
                    self._fill(order, order.limit_px, crossed=False)

    def position(self, master: str, coin: str) -> Position:
        with self._lock:
            account = self.masters[_lower(master)]
            return account.positions.get(coin, Position())

    def open_orders(self, master: str) -> list[Order]:
        with self._lock:
            return [
                o for o in self.orders.values() if o.user == _lower(master) and o.status == "open"
            ]

    # ----------------------------------------------------------------- faults

    def fail_next(self, n: int = 1, status: int = 500, *, match: str | None = None) -> None:
        """Answer the next `n` requests (of info or action type `match`) with HTTP `status`
        and a plain-text body, without processing them."""
        with self._lock:
            self._faults.append(_Fault("status", n, status=status, match=match))

    def rate_limit_next(self, n: int = 1, *, match: str | None = None) -> None:
        """Answer the next `n` requests (of type `match`) with HTTP 429, unprocessed."""
        self.fail_next(n, 429, match=match)

    def drop_reply_after_accept(self, n: int = 1, *, hold_s: float = 30.0) -> None:
        """Process the next `n` order actions (the orders exist), then hold each reply for
        `hold_s` seconds, or until the sim shuts down: longer than the client's timeout."""
        with self._lock:
            self._faults.append(_Fault("hold", n, match="order", hold_s=hold_s))

    def release_held_replies(self) -> None:
        self._released.set()

    def _take_fault(self, kind: str, request_type: str | None) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.kind != kind or fault.remaining <= 0:
                    continue
                if fault.match is not None and fault.match != request_type:
                    continue
                fault.remaining -= 1
                return fault
            return None

    async def _hold(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._released.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    # ----------------------------------------------------------------- HTTP

    async def _read_json(self, request: Request) -> Any:
        try:
            return json.loads(await request.body())
        except ValueError:
            return None

    async def _info_endpoint(self, request: Request) -> Response:
        body = await self._read_json(request)
        info_type = body.get("type") if isinstance(body, dict) else None
        fault = self._take_fault("status", info_type)
        if fault is not None:
            return PlainTextResponse("simulated failure", status_code=fault.status)
        if not isinstance(body, dict):
            return PlainTextResponse(
                "Failed to deserialize the JSON body into the target type", status_code=422
            )
        with self._lock:
            self.info_requests.append(body)
            handler = self._INFO.get(str(info_type))
            if handler is None:
                return PlainTextResponse(
                    f"Failed to deserialize the JSON body into the target type: "
                    f"unknown variant `{info_type}`",
                    status_code=422,
                )
            return JSONResponse(handler(self, body))

    async def _exchange_endpoint(self, request: Request) -> Response:
        body = await self._read_json(request)
        action = body.get("action") if isinstance(body, dict) else None
        action_type = action.get("type") if isinstance(action, dict) else None
        fault = self._take_fault("status", action_type)
        if fault is not None:
            return PlainTextResponse("simulated failure", status_code=fault.status)
        if not isinstance(body, dict) or not isinstance(action, dict):
            return PlainTextResponse(
                "Failed to deserialize the JSON body into the target type", status_code=422
            )
        with self._lock:
            try:
                reply: Any = {"status": "ok", "response": self._exchange(body, action)}
            except Refused as refusal:
                reply = {"status": "err", "response": str(refusal)}
            except (KeyError, TypeError, ValueError) as exc:
                return PlainTextResponse(
                    f"Failed to deserialize the JSON body into the target type: {exc!r}",
                    status_code=422,
                )
            self.exchange_requests.append(
                {"action": action, "nonce": body.get("nonce"), "reply": reply}
            )
        if action_type == "order" and reply["status"] == "ok":
            hold = self._take_fault("hold", action_type)
            if hold is not None:
                await self._hold(hold.hold_s)
        return JSONResponse(reply)

    # ----------------------------------------------------------------- /exchange

    def _exchange(self, body: dict[str, Any], action: dict[str, Any]) -> dict[str, Any]:
        nonce = body.get("nonce")
        if not isinstance(nonce, int) or isinstance(nonce, bool) or nonce < 0:
            raise Refused("Failed to deserialize the JSON body into the target type: nonce")
        kind = action.get("type")
        if kind in _USER_SIGNED:
            if action.get("nonce") != nonce:
                raise Refused("Invalid nonce: action nonce differs from request nonce")
            signer = recover_user_signed_signer(action, body.get("signature"))
            user = self._user_signed_account(signer, action)
        else:
            vault = body.get("vaultAddress")
            expires_after = body.get("expiresAfter")
            canonical = canonical_action(action)
            signer = recover_l1_signer(
                canonical,
                nonce,
                body.get("signature"),
                testnet=self.testnet,
                vault_address=vault,
                expires_after=expires_after,
            )
            user = self._account_for(signer)
            if vault is not None:
                raise Refused("Vault and sub-account actions are not simulated.")
            if expires_after is not None and expires_after < self.clock():
                raise Refused(f"Action expired at {expires_after}.")
        self._use_nonce(signer, nonce)
        if kind == "order":
            self.order_actions.append(
                {"signer": signer, "user": user, "nonce": nonce, "action": action}
            )
            return {"type": "order", "data": {"statuses": self._place_orders(user, action)}}
        if kind == "cancel":
            statuses = [self._cancel(user, c["a"], oid=c["o"]) for c in action["cancels"]]
            return {"type": "cancel", "data": {"statuses": statuses}}
        if kind == "cancelByCloid":
            statuses = [self._cancel(user, c["asset"], cloid=c["cloid"]) for c in action["cancels"]]
            return {"type": "cancel", "data": {"statuses": statuses}}
        if kind == "setReferrer":
            self.masters[user].referrer = str(action["code"])
            return {"type": "default"}
        if kind == "approveBuilderFee":
            rate = _decimal(str(action["maxFeeRate"]).rstrip("%"), "fee rate") / 100
            self.masters[user].builder_approvals[_lower(action["builder"])] = rate
            return {"type": "default"}
        raise Refused(f"Action type {kind!r} is not simulated.")

    def _account_for(self, signer: str) -> str:
        """The master an L1 signer acts for: itself, or the master of an unexpired agent."""
        if signer in self.masters:
            return signer
        agent = self.agents.get(signer)
        if agent is not None and (
            agent.valid_until_ms is None or agent.valid_until_ms > self.clock()
        ):
            return agent.master
        raise Refused(f"User or API Wallet {signer} does not exist.")

    def _user_signed_account(self, signer: str, action: dict[str, Any]) -> str:
        expected_chain = "Testnet" if self.testnet else "Mainnet"
        if action.get("hyperliquidChain") != expected_chain:
            raise Refused(f"Invalid hyperliquidChain: {action.get('hyperliquidChain')}")
        if signer not in self.masters:  # agents may not sign user-signed actions
            raise Refused(f"Must deposit before performing actions. User: {signer}")
        return signer

    def _use_nonce(self, signer: str, nonce: int) -> None:
        now = self.clock()
        if not now - NONCE_PAST_MS < nonce < now + NONCE_FUTURE_MS:
            raise Refused(f"Invalid nonce: {nonce} is outside the allowed time window of {now}")
        used = self._nonces.setdefault(signer, [])
        if nonce in used:
            raise Refused("Invalid nonce: duplicate nonce")
        if len(used) >= NONCES_KEPT and nonce < used[0]:
            raise Refused("Invalid nonce: nonce too low")
        used.append(nonce)
        used.sort()
        del used[:-NONCES_KEPT]

    # ----------------------------------------------------------------- orders and book

    def _coin_for(self, asset: Any) -> Coin:
        for coin in self.coins.values():
            if coin.asset == asset:
                return coin
        if isinstance(asset, int) and asset >= SPOT_ASSET_OFFSET:
            raise Refused("Spot trading is not simulated.")
        raise Refused(f"Invalid asset: {asset}")

    def _place_orders(self, user: str, action: dict[str, Any]) -> list[dict[str, Any]]:
        if action.get("grouping") != "na":
            raise Refused(f"Grouping {action.get('grouping')!r} is not simulated.")
        builder = action.get("builder")
        if builder is not None:
            approved = self.masters[user].builder_approvals.get(_lower(builder["b"]))
            if approved is None or Decimal(builder["f"]) / 100_000 > approved:
                raise Refused("Builder fee has not been approved.")
        statuses = []
        for wire in action["orders"]:
            try:
                statuses.append(self._place_order(user, wire, builder))
            except Refused as refusal:
                statuses.append({"error": str(refusal)})
        return statuses

    def _place_order(
        self, user: str, wire: dict[str, Any], builder: dict[str, Any] | None
    ) -> dict[str, Any]:
        coin = self._coin_for(wire["a"])
        asset = f" asset={coin.asset}"
        if "limit" not in wire["t"]:
            raise Refused("Trigger orders are not simulated." + asset)
        tif = wire["t"]["limit"]["tif"]
        if tif not in ("Gtc", "Ioc", "Alo"):
            raise Refused(f"Invalid TIF {tif!r}." + asset)
        px = _decimal(wire["p"], "price")
        sz = _decimal(wire["s"], "size")
        cloid = wire.get("c")
        if cloid is not None and not _is_cloid(cloid):
            raise Refused(f"Invalid cloid {cloid!r}: expected 0x and 32 hex digits." + asset)
        if sz == 0:
            raise Refused("Order has zero size." + asset)
        if sz < 0 or -sz.as_tuple().exponent > coin.sz_decimals:  # type: ignore[operator]
            raise Refused("Order has invalid size." + asset)
        if px <= 0 or not _valid_price(px, coin.sz_decimals):
            raise Refused("Price must be divisible by tick size." + asset)
        is_buy = bool(wire["b"])
        reduce_only = bool(wire["r"])
        account = self.masters[user]
        position = account.positions.get(coin.name, Position())
        if reduce_only and (position.szi == 0 or (position.szi > 0) == is_buy):
            raise Refused("Reduce only order would increase position." + asset)
        if not reduce_only and sz * px < MIN_ORDER_VALUE:
            raise Refused("Order must have minimum value of $10." + asset)
        marketable = px >= coin.mark if is_buy else px <= coin.mark
        if tif == "Alo" and marketable:
            raise Refused(
                "Post only order would have immediately matched, "
                f"bbo was {_out(coin.mark)}@{_out(coin.mark)}." + asset
            )
        if tif == "Ioc" and not marketable:
            raise Refused("Order could not immediately match against any resting orders." + asset)
        if not reduce_only and sz * px / self.leverage > self._available_margin(user):
            raise Refused("Insufficient margin to place order." + asset)
        now = self.clock()
        order = Order(
            oid=next(self._oids),
            user=user,
            coin=coin.name,
            is_buy=is_buy,
            limit_px=px,
            orig_sz=sz,
            sz=sz,
            tif=tif,
            reduce_only=reduce_only,
            cloid=cloid,
            timestamp=now,
            status_timestamp=now,
            builder=builder,
        )
        self.orders[order.oid] = order
        ids: dict[str, Any] = {"oid": order.oid}
        if cloid is not None:
            ids["cloid"] = cloid
        if marketable:
            self._fill(order, coin.mark, crossed=True)
            avg = order.filled_ntl / order.filled_sz
            return {"filled": {"totalSz": _wire(order.filled_sz), "avgPx": _wire(avg), **ids}}
        return {"resting": ids}

    def _cancel(self, user: str, asset: Any, *, oid: Any = None, cloid: Any = None) -> Any:
        coin = self._coin_for(asset)
        for order in self.orders.values():
            if order.user != user or order.coin != coin.name or order.status != "open":
                continue
            if (oid is not None and order.oid == oid) or (
                cloid is not None and order.cloid == cloid
            ):
                order.status = "canceled"
                order.status_timestamp = self.clock()
                return "success"
        return {"error": f"Order was never placed, already canceled, or filled. asset={coin.asset}"}

    def _fill(self, order: Order, px: Decimal, *, crossed: bool) -> None:
        account = self.masters[order.user]
        position = account.positions.setdefault(order.coin, Position())
        sz = order.sz
        if order.reduce_only:
            sz = min(sz, abs(position.szi))
            if sz == 0 or (position.szi > 0) == order.is_buy:
                order.status = "reduceOnlyCanceled"
                order.status_timestamp = self.clock()
                return
        start = position.szi
        signed = sz if order.is_buy else -sz
        closed_pnl = Decimal(0)
        if start == 0 or (start > 0) == order.is_buy:
            direction = "Open Long" if order.is_buy else "Open Short"
            new = start + signed
            position.entry_px = (abs(start) * position.entry_px + sz * px) / abs(new)
        else:
            closing = min(sz, abs(start))
            closed_pnl = closing * (px - position.entry_px) * (1 if start > 0 else -1)
            new = start + signed
            if new == 0:
                direction = "Close Long" if start > 0 else "Close Short"
                position.entry_px = Decimal(0)
            elif (new > 0) != (start > 0):
                direction = "Long > Short" if start > 0 else "Short > Long"
                position.entry_px = px
            else:
                direction = "Close Long" if start > 0 else "Close Short"
        position.szi = new
        notional = sz * px
        fee = _round6(notional * (self.taker_fee if crossed else self.maker_fee))
        builder_fee = None
        if order.builder is not None:
            builder_fee = _round6(notional * Decimal(order.builder["f"]) / 100_000)
        account.usdc += closed_pnl - fee - (builder_fee or 0)
        now = self.clock()
        self.fills.append(
            Fill(
                user=order.user,
                coin=order.coin,
                px=px,
                sz=sz,
                is_buy=order.is_buy,
                time=now,
                start_position=start,
                direction=direction,
                closed_pnl=closed_pnl,
                oid=order.oid,
                tid=next(self._tids),
                crossed=crossed,
                fee=fee,
                cloid=order.cloid,
                builder_fee=builder_fee,
            )
        )
        order.filled_sz += sz
        order.filled_ntl += notional
        order.sz -= sz
        order.status = "filled" if order.sz == 0 else "open"
        if order.tif == "Ioc" and order.sz > 0:
            order.status = "canceled"
        order.status_timestamp = now

    # ----------------------------------------------------------------- margin

    def _unrealized(self, account: Master) -> Decimal:
        return sum(
            (p.szi * (self.coins[c].mark - p.entry_px) for c, p in account.positions.items()),
            Decimal(0),
        )

    def _position_margin(self, account: Master) -> Decimal:
        return sum(
            (abs(p.szi) * self.coins[c].mark / self.leverage for c, p in account.positions.items()),
            Decimal(0),
        )

    def _order_margin(self, user: str) -> Decimal:
        return sum(
            (
                o.sz * o.limit_px / self.leverage
                for o in self.orders.values()
                if o.user == user and o.status == "open" and not o.reduce_only
            ),
            Decimal(0),
        )

    def _available_margin(self, user: str) -> Decimal:
        account = self.masters[user]
        value = account.usdc + self._unrealized(account)
        return value - self._position_margin(account) - self._order_margin(user)

    # ----------------------------------------------------------------- /info

    def _info_meta(self, body: dict[str, Any]) -> Any:
        return {
            "universe": [
                {"name": c.name, "szDecimals": c.sz_decimals, "maxLeverage": c.max_leverage}
                for c in self.coins.values()
            ]
        }

    def _asset_ctx(self, coin: Coin) -> dict[str, Any]:
        mark = _out(coin.mark)
        return {
            "funding": "0.0",
            "openInterest": "0.0",
            "prevDayPx": mark,
            "dayNtlVlm": "0.0",
            "premium": "0.0",
            "oraclePx": mark,
            "markPx": mark,
            "midPx": mark,
            "impactPxs": [mark, mark],
            "dayBaseVlm": "0.0",
        }

    def _info_meta_and_ctxs(self, body: dict[str, Any]) -> Any:
        if body.get("dex"):
            return [{"universe": []}, []]
        return [self._info_meta(body), [self._asset_ctx(c) for c in self.coins.values()]]

    def _info_spot_meta(self, body: dict[str, Any]) -> Any:
        return {
            "tokens": [
                {
                    "name": "USDC",
                    "szDecimals": 8,
                    "weiDecimals": 8,
                    "index": 0,
                    "tokenId": "0x" + "00" * 16,
                    "isCanonical": True,
                    "evmContract": None,
                    "fullName": None,
                },
                {
                    "name": "PURR",
                    "szDecimals": 0,
                    "weiDecimals": 5,
                    "index": 1,
                    "tokenId": "0x" + "00" * 15 + "01",
                    "isCanonical": True,
                    "evmContract": None,
                    "fullName": None,
                },
            ],
            "universe": [{"name": "PURR/USDC", "tokens": [1, 0], "index": 0, "isCanonical": True}],
        }

    def _info_spot_meta_and_ctxs(self, body: dict[str, Any]) -> Any:
        ctx = {
            "coin": "PURR/USDC",
            "dayNtlVlm": "0.0",
            "markPx": "0.2",
            "midPx": "0.2",
            "prevDayPx": "0.2",
            "circulatingSupply": "0.0",
        }
        return [self._info_spot_meta(body), [ctx]]

    def _info_perp_dexs(self, body: dict[str, Any]) -> Any:
        return [None]

    def _user(self, body: dict[str, Any]) -> str:
        return _lower(str(body.get("user", "")))

    def _info_user_role(self, body: dict[str, Any]) -> Any:
        user = self._user(body)
        if user in self.masters:
            return {"role": "user"}
        agent = self.agents.get(user)
        if agent is not None:
            return {"role": "agent", "data": {"user": agent.master}}
        if user in self.sub_accounts:
            return {"role": "subAccount", "data": {"master": self.sub_accounts[user]}}
        if user in self.vaults:
            return {"role": "vault"}
        return {"role": "missing"}

    def _info_user_abstraction(self, body: dict[str, Any]) -> Any:
        return "disabled"

    def _info_clearinghouse_state(self, body: dict[str, Any]) -> Any:
        account = self.masters.get(self._user(body), Master(self._user(body)))
        positions = []
        total_ntl = Decimal(0)
        for name, p in account.positions.items():
            if p.szi == 0:
                continue
            mark = self.coins[name].mark
            value = abs(p.szi) * mark
            total_ntl += value
            upnl = p.szi * (mark - p.entry_px)
            margin = value / self.leverage
            positions.append(
                {
                    "type": "oneWay",
                    "position": {
                        "coin": name,
                        "szi": _out(p.szi),
                        "leverage": {"type": "cross", "value": int(self.leverage)},
                        "entryPx": _out(p.entry_px),
                        "positionValue": _out(_round6(value)),
                        "unrealizedPnl": _out(_round6(upnl)),
                        "returnOnEquity": _out(_round6(upnl / margin)),
                        "liquidationPx": None,
                        "marginUsed": _out(_round6(margin)),
                        "maxLeverage": self.coins[name].max_leverage,
                        "cumFunding": {"allTime": "0.0", "sinceOpen": "0.0", "sinceChange": "0.0"},
                    },
                }
            )
        value = account.usdc + self._unrealized(account)
        margin_used = self._position_margin(account)
        raw_usd = value - sum(
            (p.szi * self.coins[c].mark for c, p in account.positions.items()), Decimal(0)
        )
        summary = {
            "accountValue": _out(_round6(value)),
            "totalNtlPos": _out(_round6(total_ntl)),
            "totalRawUsd": _out(_round6(raw_usd)),
            "totalMarginUsed": _out(_round6(margin_used)),
        }
        withdrawable = max(Decimal(0), value - margin_used - self._order_margin(account.address))
        return {
            "marginSummary": summary,
            "crossMarginSummary": dict(summary),
            "crossMaintenanceMarginUsed": _out(_round6(margin_used / 2)),
            "withdrawable": _out(_round6(withdrawable)),
            "assetPositions": positions,
            "time": self.clock(),
        }

    def _info_spot_clearinghouse_state(self, body: dict[str, Any]) -> Any:
        return {"balances": []}

    def _order_json(self, order: Order, *, frontend: bool) -> dict[str, Any]:
        data: dict[str, Any] = {
            "coin": order.coin,
            "side": "B" if order.is_buy else "A",
            "limitPx": _out(order.limit_px),
            "sz": _out(order.sz),
            "oid": order.oid,
            "timestamp": order.timestamp,
            "origSz": _out(order.orig_sz),
        }
        if order.cloid is not None:
            data["cloid"] = order.cloid
        if frontend:
            data.update(
                {
                    "triggerCondition": "N/A",
                    "isTrigger": False,
                    "triggerPx": "0.0",
                    "children": [],
                    "isPositionTpsl": False,
                    "reduceOnly": order.reduce_only,
                    "orderType": "Limit",
                    "tif": order.tif,
                }
            )
        return data

    def _info_open_orders(self, body: dict[str, Any]) -> Any:
        frontend = body["type"] == "frontendOpenOrders"
        user = self._user(body)
        return [
            self._order_json(o, frontend=frontend)
            for o in sorted(self.orders.values(), key=lambda o: -o.oid)
            if o.user == user and o.status == "open"
        ]

    def _info_order_status(self, body: dict[str, Any]) -> Any:
        user = self._user(body)
        wanted = body.get("oid")
        for order in self.orders.values():
            if order.user != user:
                continue
            if order.oid == wanted or (isinstance(wanted, str) and order.cloid == wanted.lower()):
                return {
                    "status": "order",
                    "order": {
                        "order": self._order_json(order, frontend=True),
                        "status": order.status,
                        "statusTimestamp": order.status_timestamp,
                    },
                }
        return {"status": "unknownOid"}

    def _fill_json(self, fill: Fill) -> dict[str, Any]:
        data: dict[str, Any] = {
            "coin": fill.coin,
            "px": _out(fill.px),
            "sz": _out(fill.sz),
            "side": "B" if fill.is_buy else "A",
            "time": fill.time,
            "startPosition": _out(fill.start_position),
            "dir": fill.direction,
            "closedPnl": _out(_round6(fill.closed_pnl)),
            "hash": "0x" + keccak(f"{fill.tid}:{fill.oid}".encode()).hex(),
            "oid": fill.oid,
            "crossed": fill.crossed,
            "fee": _out(fill.fee),
            "tid": fill.tid,
            "feeToken": "USDC",
        }
        if fill.cloid is not None:
            data["cloid"] = fill.cloid
        if fill.builder_fee is not None:
            data["builderFee"] = _out(fill.builder_fee)
        return data

    def _info_user_fills(self, body: dict[str, Any]) -> Any:
        user = self._user(body)
        start = body.get("startTime", 0) if body["type"] == "userFillsByTime" else 0
        end = body.get("endTime")
        return [
            self._fill_json(f)
            for f in reversed(self.fills)
            if f.user == user and f.time >= start and (end is None or f.time <= end)
        ][:2000]

    def _info_candle_snapshot(self, body: dict[str, Any]) -> Any:
        req = body.get("req", {})
        coin = self.coins.get(str(req.get("coin")))
        if coin is None:
            return []
        now = self.clock()
        start = now - now % 60_000
        px = _out(coin.mark)
        return [
            {
                "t": start,
                "T": start + 59_999,
                "s": coin.name,
                "i": req.get("interval", "1m"),
                "o": px,
                "c": px,
                "h": px,
                "l": px,
                "v": "0.0",
                "n": 0,
            }
        ]

    def _info_all_mids(self, body: dict[str, Any]) -> Any:
        return {c.name: _out(c.mark) for c in self.coins.values()}

    _INFO: ClassVar[dict[str, Callable[[HyperliquidSim, dict[str, Any]], Any]]] = {
        "meta": _info_meta,
        "metaAndAssetCtxs": _info_meta_and_ctxs,
        "spotMeta": _info_spot_meta,
        "spotMetaAndAssetCtxs": _info_spot_meta_and_ctxs,
        "perpDexs": _info_perp_dexs,
        "userRole": _info_user_role,
        "userAbstraction": _info_user_abstraction,
        "clearinghouseState": _info_clearinghouse_state,
        "spotClearinghouseState": _info_spot_clearinghouse_state,
        "openOrders": _info_open_orders,
        "frontendOpenOrders": _info_open_orders,
        "orderStatus": _info_order_status,
        "userFills": _info_user_fills,
        "userFillsByTime": _info_user_fills,
        "candleSnapshot": _info_candle_snapshot,
        "allMids": _info_all_mids,
    }


def _round6(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP)


def _is_cloid(value: Any) -> bool:
    if not isinstance(value, str) or len(value) != 34 or not value.startswith("0x"):
        return False
    try:
        int(value[2:], 16)
    except ValueError:
        return False
    return value == value.lower()


def _valid_price(px: Decimal, sz_decimals: int) -> bool:
    """Hyperliquid perps: at most 5 significant figures (integers always pass) and at most
    6 - szDecimals decimal places."""
    digits = px.normalize().as_tuple()
    decimals = max(0, -int(digits.exponent))
    if decimals > 6 - sz_decimals:
        return False
    if px == px.to_integral_value():
        return True
    return len(digits.digits) <= 5


@contextmanager
def hyperliquid_sim(sim: HyperliquidSim) -> Iterator[str]:
    """Serve `sim` on loopback; yields the base URL to hand to `ccxt_exchange(api_url=...)`."""
    with serve(sim.app) as base_url:
        try:
            yield base_url
        finally:
            sim.release_held_replies()
