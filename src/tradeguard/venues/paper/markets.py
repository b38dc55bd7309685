"""A `Market` for a symbol the paper venue trades, built from the candles it will see."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from tradeguard.marketdata.candles import Candle
from tradeguard.venues.types import Market, MarketKind

__all__ = ["DEFAULT_AMOUNT_STEP", "market_from_candles"]

DEFAULT_AMOUNT_STEP = Decimal("1e-8")


def _decimals(value: Decimal) -> int:
    exponent = value.as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def market_from_candles(
    symbol: str,
    candles: Iterable[Candle],
    *,
    amount_step: Decimal = DEFAULT_AMOUNT_STEP,
    min_notional: Decimal | None = None,
) -> Market:
    """A spot market for `symbol` (`BASE/QUOTE`) whose price tick is the finest the data shows.

    The tick is 10^-d, where d is the most decimal places among the candles' open, high, low
    and close (trailing zeros in the data count: `0.10000000` means a 1e-8 tick). The amount
    step and the minimum amount are `amount_step` (1e-8 unless given); no other limits, except
    `min_notional` if given. Perpetual symbols (`BASE/QUOTE:SETTLE`) are refused: the paper
    venue trades spot markets only.
    """
    base, slash, quote = symbol.partition("/")
    if not slash or not base or not quote or ":" in quote or "/" in quote:
        raise ValueError(
            f"paper market {symbol!r}: a spot symbol is BASE/QUOTE, e.g. ETH/BTC "
            "(the paper venue does not simulate perpetuals yet)"
        )
    places = 0
    seen = False
    for candle in candles:
        seen = True
        for price in (candle.open, candle.high, candle.low, candle.close):
            places = max(places, _decimals(price))
    if not seen:
        raise ValueError(f"paper market {symbol}: no candles to take the price tick from")
    if amount_step <= 0:
        raise ValueError("the amount step is positive")
    return Market(
        symbol=symbol,
        venue_symbol=base + quote,
        base=base,
        quote=quote,
        kind=MarketKind.SPOT,
        price_tick=Decimal(1).scaleb(-places),
        amount_step=amount_step,
        min_amount=amount_step,
        min_notional=min_notional,
    )
