"""Backtest throughput: the SMA crossover bot (fast 10 / slow 30, long-only, next-bar-open fills,
no fees) over 1,000,000 bars in tradeguard's backtest engine, beside backtrader 1.9.78 and a
plain-Python loop run in the same invocation on the same bars, with their trade lists compared.

Data: the six `*_BTC-5m.csv` files of /work/shared/data/candles (found as
`<repo>/../shared/data/candles`), in name order, chained end to end: each file is rescaled to
start where the previous one ended (factor = the previous file's last close / this file's first
open, Decimal, 28 digits; every scaled price quantized to 8 decimal places, half-even), and the
chain is repeated, rescaled the same way each time, until there are `--bars` bars. Volumes are
kept as they are (quantized to 8 places). Timestamps start at the first file's first bar and go
on in 5-minute steps, so the repetitions join without gaps. The prices stay on a 1e-8 grid (the
first file, ADA/BTC, sets the level: ~5e-5 BTC, a few thousand ticks), which is what makes the
two averages exactly equal at some bars and the arithmetic of the averages matter.

The rule, the same in every engine (that of examples/sma_cross/bot.py). For bar i (0-based),
once there are `slow` closes (i >= slow - 1): `above_i = avg_fast > avg_slow`, the averages of
the last `fast` and the last `slow` closes up to and including bar i, compared exactly (the
plain loop and the backtrader strategy compare `sum_fast * slow > sum_slow * fast` on integer
closes, price * 10**8; the bot divides Decimals, exact at these sizes). Bar i is a cross when
i >= slow (the first full window only sets `above`) and `above_i != above_{i-1}`: so a cross up
is avg_fast > avg_slow after avg_fast <= avg_slow, and a cross down is avg_fast <= avg_slow after
avg_fast > avg_slow (an exact touch from above ends the trade). On a cross up when flat: buy;
on a cross down when long: sell everything. A market order placed on bar i fills at bar i+1's
open; one placed on the last bar never fills. A trade is (entry bar index, exit bar index), the
indexes of the two fill bars; a position still open at the end is not a trade.

Engines, each in its own process (a fresh interpreter: `--child`), so that each one's peak RSS
(`resource.getrusage(RUSAGE_SELF).ru_maxrss`) is its own. On Linux a process's ru_maxrss keeps
the high-water mark of the process it was exec'd from, so this one stays small: the bars are
built by another child, into a temporary directory of int64 columns (and a CSV of the prefix
for backtrader), and no engine is imported here.
- plain_loop: one `for` over the integer closes with running window sums (exact), all bars.
  Timed: the loop alone (the columns are read before).
- backtrader: `Cerebro(stdstats=False)`, `GenericCSVData` of the prefix (`--peer-bars`, default
  100,000: backtrader runs ~10k bars/s), a `Strategy` whose `next()` keeps the same exact
  integer sums (close * 10**8, rounded back from backtrader's float), market orders (filled at
  the next open by backtrader's default broker, checked against the bars), size 1, cash 1e9, no
  commission. `bars_per_second` counts from the strategy's construction (after the feed's
  preload) to the end of `run()`, `bars_per_second_with_preload` the whole `run()`.
- tradeguard: `tradeguard.backtest.Backtest(<the Bot class of examples/sma_cross/bot.py>,
  spec).run(candles)`, what `run_backtest` does, in this process (no sandbox), with
  params {fast: 10, slow: 30, fraction: "0.25"}, capital 1 BTC, a paper venue without fees or
  slippage, and no breakers (`run_backtest` takes no user limits, and the user's portfolio
  drawdown breaker would halt the bot part way: `tradeguard_spec`), over all bars. The candles
  are streamed: `Candle`s made from the int columns as the engine reads them (it reads them
  twice: once for the market's price tick, once to run). Timed: loading the bot class and the
  run; `candles_seconds` is one pass of making the candles alone, for scale.

trades_agree compares the lists on the prefix (the first --peer-bars bars: trades whose exit
fill is inside it), pair by pair, and tradeguard with the plain loop over all bars.
Target: tradeguard >= 500,000 bars/s at 1,000,000 bars (`met`); peak RSS of that run under
300 MB (`memory_met`). Prints one JSON object; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.util
import io
import json
import os
import pstats
import resource
import subprocess
import sys
import tempfile
import time
from array import array
from collections.abc import Iterator, Sequence
from decimal import ROUND_HALF_EVEN, Context, Decimal
from itertools import chain
from pathlib import Path
from typing import Any

from _report import emit  # bench/ is on sys.path: the scripts run from there

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
CANDLES = SHARED / "data" / "candles"
PATTERN = "*_BTC-5m.csv"
SOURCE_FILES = 6
BOT_DIR = ROOT / "examples" / "sma_cross"
SYMBOL, TIMEFRAME = "ETH/BTC", "5m"
FAST, SLOW = 10, 30
PARAMS: dict[str, Any] = {"fast": FAST, "slow": SLOW, "fraction": "0.25"}
SCALE = 10**8  # prices and volumes as integers: 8 decimal places
STEP_MS = 5 * 60_000
COLUMNS = ("open", "high", "low", "close", "volume")
TARGET_BARS_PER_S = 500_000
TARGET_PEAK_RSS_MB = 300
# Quoted, not measured here: /work/shared/BENCHMARKS.md, "Backtests" (same machine kind).
QUOTED = {
    "source": "/work/shared/BENCHMARKS.md, Backtests (quoted, not measured in this run)",
    "plain_loop_exact_bars_per_s": 1_370_000,
    "backtrader_bars_per_s": 10_000,
    "backtrader_bars_per_s_with_preload": 5_600,
}

Trade = tuple[int, int]


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _progress(text: str) -> None:
    print(f"backtest: {text}", file=sys.stderr, flush=True)


# -- the bars ----------------------------------------------------------------------------------


def source_files() -> list[Path]:
    if not CANDLES.is_dir():
        raise SystemExit(
            f"bench/backtest.py: the candle files are not there: {CANDLES} does not exist "
            f"(expected the shared data next to the repository, {SHARED})"
        )
    files = sorted(CANDLES.glob(PATTERN))
    if len(files) != SOURCE_FILES:
        raise SystemExit(
            f"bench/backtest.py: expected {SOURCE_FILES} files {PATTERN} in {CANDLES}, "
            f"found {len(files)}: {[f.name for f in files]}"
        )
    return files


def _read_source(path: Path) -> tuple[int, list[tuple[Decimal, ...]]]:
    """(first timestamp, rows of open, high, low, close, volume as Decimal)."""
    rows: list[tuple[Decimal, ...]] = []
    first_ts = -1
    with path.open() as f:
        header = f.readline().strip().split(",")
        if header != ["timestamp_ms", *COLUMNS]:
            raise SystemExit(f"bench/backtest.py: {path}: unexpected header {header}")
        for line in f:
            fields = line.strip().split(",")
            if first_ts < 0:
                first_ts = int(fields[0])
            rows.append(tuple(Decimal(x) for x in fields[1:6]))
    if not rows:
        raise SystemExit(f"bench/backtest.py: {path} has no rows")
    return first_ts, rows


def build_bars(bars: int) -> tuple[int, dict[str, array[int]], dict[str, int]]:
    """The chained, rescaled, repeated bars (module docstring) as int64 columns, price * 10**8.
    Returns (first timestamp in ms, the columns, the source files and their row counts)."""
    files = source_files()
    sources = [_read_source(path) for path in files]
    t0 = sources[0][0]
    ctx = Context(prec=28, rounding=ROUND_HALF_EVEN)
    tick = Decimal("1e-8")
    cols: dict[str, array[int]] = {name: array("q") for name in COLUMNS}
    o_col, h_col, l_col, c_col, v_col = (cols[name] for name in COLUMNS)
    mul, quantize = ctx.multiply, Decimal.quantize
    previous_close: Decimal | None = None
    while len(c_col) < bars:
        for _, rows in sources:
            left = bars - len(c_col)
            if left <= 0:
                break
            first_open = rows[0][0]
            factor = (
                Decimal(1) if previous_close is None else ctx.divide(previous_close, first_open)
            )
            last = Decimal(0)
            for o, h, lo, c, v in rows[:left]:
                scaled = [quantize(mul(p, factor), tick, context=ctx) for p in (o, h, lo, c)]
                o_col.append(int(scaled[0].scaleb(8)))
                h_col.append(int(scaled[1].scaleb(8)))
                l_col.append(int(scaled[2].scaleb(8)))
                c_col.append(int(scaled[3].scaleb(8)))
                v_col.append(int(quantize(v, tick, context=ctx).scaleb(8)))
                last = scaled[3]
            previous_close = last
    if min(l_col) <= 0:
        raise SystemExit("bench/backtest.py: a rescaled price fell to zero on the 1e-8 grid")
    return t0, cols, {f.name: len(rows) for f, (_, rows) in zip(files, sources, strict=True)}


def _text(value: int) -> str:
    return f"{value // SCALE}.{value % SCALE:08d}"


def write_bars(out: Path, bars: int, peer_bars: int) -> dict[str, Any]:
    """Build the bars into `out`: one int64 file per column, meta.json, prefix.csv."""
    began = time.perf_counter()
    t0, cols, sources = build_bars(bars)
    built = time.perf_counter() - began
    for name, col in cols.items():
        with (out / f"{name}.i64").open("wb") as f:
            col.tofile(f)
    with (out / "prefix.csv").open("w") as f:
        f.write("datetime,open,high,low,close,volume\n")
        o, h, lo, c, v = (cols[name] for name in COLUMNS)
        t0_s = t0 // 1000
        for i in range(min(peer_bars, bars)):
            f.write(
                f"{t0_s + i * 300},{_text(o[i])},{_text(h[i])},{_text(lo[i])},"
                f"{_text(c[i])},{_text(v[i])}\n"
            )
    closes = cols["close"]
    meta = {
        "bars": len(closes),
        "t0_ms": t0,
        "sources": sources,
        "repetitions": round(len(closes) / sum(sources.values()), 2),
        "first_close": _text(closes[0]),
        "last_close": _text(closes[-1]),
        "min_close": _text(min(closes)),
        "max_close": _text(max(closes)),
        "build_seconds": round(built, 2),
    }
    (out / "meta.json").write_text(json.dumps(meta))
    return meta


def read_bars(data: Path, bars: int, names: Sequence[str] = COLUMNS) -> dict[str, array[int]]:
    cols: dict[str, array[int]] = {}
    for name in names:
        col: array[int] = array("q")
        with (data / f"{name}.i64").open("rb") as f:
            col.fromfile(f, bars)
        cols[name] = col
    return cols


# -- engine 1: the plain loop ------------------------------------------------------------------


def sma_cross_trades(
    opens: Sequence[int], closes: Sequence[int], fast: int = FAST, slow: int = SLOW
) -> tuple[list[Trade], int]:
    """The rule of the module docstring over integer prices: (trades, profit in price units of
    1e-8 for one unit held, entry and exit at the fill bars' opens)."""
    n = len(closes)
    trades: list[Trade] = []
    pnl = 0
    if n <= slow:
        return trades, pnl
    fast_sum = sum(closes[slow - fast : slow])
    slow_sum = sum(closes[:slow])
    was_above = fast_sum * slow > slow_sum * fast  # the first full window: bar slow - 1
    entry = -1  # the entry fill bar while long
    last = n - 1
    i = slow
    for c, c_fast, c_slow in zip(closes[slow:], closes[slow - fast :], closes, strict=False):
        fast_sum += c - c_fast
        slow_sum += c - c_slow
        above = fast_sum * slow > slow_sum * fast
        if above is not was_above:
            was_above = above
            if i < last:  # a signal on the last bar never fills
                if above:
                    if entry < 0:
                        entry = i + 1
                elif entry >= 0:
                    trades.append((entry, i + 1))
                    pnl += opens[i + 1] - opens[entry]
                    entry = -1
        i += 1
    return trades, pnl


def exact_touches(closes: Sequence[int], fast: int = FAST, slow: int = SLOW) -> int:
    """Bars (from the first full window) where the two averages are exactly equal."""
    fast_sum = sum(closes[slow - 1 - fast : slow - 1])
    slow_sum = sum(closes[: slow - 1])
    touches = 0
    for c, c_fast, c_slow in zip(
        closes[slow - 1 :], closes[slow - 1 - fast :], chain((0,), closes), strict=False
    ):
        fast_sum += c - c_fast
        slow_sum += c - c_slow
        touches += fast_sum * slow == slow_sum * fast
    return touches


def child_plain(data: Path, bars: int, peer_bars: int) -> dict[str, Any]:
    cols = read_bars(data, bars, ("open", "close"))
    opens, closes = cols["open"], cols["close"]
    began = time.perf_counter()
    trades, pnl = sma_cross_trades(opens, closes)
    seconds = time.perf_counter() - began
    # the prefix directly (untimed): the same as the full run's trades that end inside it
    prefix, _ = sma_cross_trades(opens[:peer_bars], closes[:peer_bars])
    if prefix != [t for t in trades if t[1] < peer_bars]:
        raise RuntimeError("plain loop: the prefix run disagrees with the full run cut short")
    return {
        "bars": len(closes),
        "seconds": round(seconds, 3),
        "bars_per_second": round(len(closes) / seconds),
        "trades": len(trades),
        "pnl_ticks_per_unit": pnl,
        "exact_touch_bars": exact_touches(closes),  # untimed: where summation order would matter
        "peak_rss_mb": _peak_rss_mb(),
        "trade_list": trades,
        "prefix_trade_list": prefix,
    }


# -- engine 2: backtrader ----------------------------------------------------------------------


def child_backtrader(data: Path, peer_bars: int) -> dict[str, Any]:
    import backtrader as bt

    opens = read_bars(data, peer_bars, ("open",))["open"]
    clock: dict[str, float] = {}

    class SmaCrossExact(bt.Strategy):  # type: ignore[misc]
        """The rule of the module docstring with exact integer window sums in next()."""

        params = (("fast", FAST), ("slow", SLOW))

        def __init__(self) -> None:
            clock["preloaded"] = time.perf_counter()  # the feed is loaded before strategies
            self.closes: list[int] = []
            self.fast_sum = self.slow_sum = 0
            self.was_above: bool | None = None
            self.signal = -1  # the bar of the order in flight
            self.entry = -1
            self.trades: list[Trade] = []
            self.wrong_fills: list[str] = []

        def next(self) -> None:
            fast, slow = self.p.fast, self.p.slow
            c = round(self.data.close[0] * SCALE)  # exact: the CSV held 8 decimal places
            closes = self.closes
            closes.append(c)
            n = len(closes)
            self.fast_sum += c - (closes[n - 1 - fast] if n > fast else 0)
            self.slow_sum += c - (closes[n - 1 - slow] if n > slow else 0)
            if n < slow:
                return
            above = self.fast_sum * slow > self.slow_sum * fast
            crossed = self.was_above is not None and above != self.was_above
            self.was_above = above
            if not crossed:
                return
            if above and not self.position:
                self.signal = n - 1
                self.buy(size=1)
            elif not above and self.position:
                self.signal = n - 1
                self.sell(size=1)

        def notify_order(self, order: Any) -> None:
            if order.status in (order.Submitted, order.Accepted):
                return
            if order.status != order.Completed:
                self.wrong_fills.append(f"order {order.ref} {order.getstatusname()}")
                return
            bar = self.signal + 1
            if round(order.executed.price * SCALE) != opens[bar]:
                self.wrong_fills.append(
                    f"bar {bar}: filled at {order.executed.price}, open {opens[bar] / SCALE}"
                )
            if order.isbuy():
                self.entry = bar
            else:
                self.trades.append((self.entry, bar))
                self.entry = -1

    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(
        bt.feeds.GenericCSVData(
            dataname=str(data / "prefix.csv"),
            dtformat=1,  # unix seconds
            openinterest=-1,
            timeframe=bt.TimeFrame.Minutes,
            compression=5,
        )
    )
    cerebro.addstrategy(SmaCrossExact)
    cerebro.broker.setcash(1e9)
    cerebro.broker.setcommission(commission=0.0)
    began = time.perf_counter()
    strategy = cerebro.run()[0]
    ended = time.perf_counter()
    if strategy.wrong_fills:
        raise RuntimeError(f"backtrader: unexpected fills: {strategy.wrong_fills[:5]}")
    bars = len(strategy.data)
    return {
        "version": bt.__version__,
        "bars": bars,
        "seconds": round(ended - clock["preloaded"], 3),
        "seconds_with_preload": round(ended - began, 3),
        "bars_per_second": round(bars / (ended - clock["preloaded"])),
        "bars_per_second_with_preload": round(bars / (ended - began)),
        "trades": len(strategy.trades),
        "peak_rss_mb": _peak_rss_mb(),
        "setup": "Cerebro(stdstats=False), GenericCSVData (preload, runonce), size 1, cash 1e9",
        "trade_list": strategy.trades,
    }


# -- engine 3: tradeguard ----------------------------------------------------------------------


def tradeguard_available() -> str | None:
    """None when tradeguard.backtest can run, else why not."""
    if not (ROOT / "src" / "tradeguard" / "backtest" / "__init__.py").exists():
        return "src/tradeguard/backtest does not exist yet"
    return None


class CandleColumns(Sequence[Any]):
    """The bars as `tradeguard.marketdata.candles.Candle`s, made as they are read from the int
    columns (streamed: 1,000,000 Candles of 5 Decimals each would be ~600 MB). Prices are on a
    grid of a few thousand ticks, so their Decimals are made once and shared; volumes are made
    per candle."""

    def __init__(self, cols: dict[str, array[int]], t0_ms: int) -> None:
        from tradeguard.marketdata.candles import Candle

        self._candle = Candle
        self._cols = cols
        self._t0 = t0_ms
        self._prices: dict[int, Decimal] = {}

    def __len__(self) -> int:
        return len(self._cols["close"])

    def _price(self, value: int) -> Decimal:
        price = self._prices.get(value)
        if price is None:
            price = self._prices[value] = Decimal(value).scaleb(-8)
        return price

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(index)
        o, h, lo, c, v = (self._cols[name][index] for name in COLUMNS)
        price = self._price
        return self._candle(
            self._t0 + index * STEP_MS,
            price(o),
            price(h),
            price(lo),
            price(c),
            Decimal(v).scaleb(-8),
        )

    def __iter__(self) -> Iterator[Any]:
        candle, price, prices = self._candle, self._price, self._prices
        ts = self._t0
        for o, h, lo, c, v in zip(*(self._cols[name] for name in COLUMNS), strict=True):
            yield candle(
                ts,
                prices.get(o) or price(o),
                prices.get(h) or price(h),
                prices.get(lo) or price(lo),
                prices.get(c) or price(c),
                Decimal(v).scaleb(-8),
            )
            ts += STEP_MS


def tradeguard_spec() -> Any:
    """What the bot runs with: capital 1 BTC, no notional caps, no breakers (the bot's and the
    user's portfolio drawdown breaker: the strategy loses ~40% over the million bars, and a halt
    would end the trade list early; the point here is the engine's speed and that it makes the
    same trades), no blocked volatility zones, no submit rate a 5-minute bar could reach, and a
    paper venue without fees or slippage."""
    from tradeguard.backtest import BacktestSpec
    from tradeguard.marketdata.candles import Timeframe
    from tradeguard.risk.limits import BotLimits, Breakers, UserLimits
    from tradeguard.venues.paper.config import PaperConfig

    limits = BotLimits(
        capital=Decimal(1),
        symbols=frozenset({SYMBOL}),
        max_submits_per_minute=10**6,
        blocked_zones=frozenset(),
        breakers=Breakers(
            max_consecutive_losses=None, max_daily_loss_pct=None, max_drawdown_pct=None
        ),
    )
    return BacktestSpec(
        name=BOT_DIR.name,
        symbol=SYMBOL,
        timeframe=Timeframe.parse(TIMEFRAME),
        limits=limits,
        params=PARAMS,
        paper=PaperConfig(
            maker_fee_bps=Decimal(0), taker_fee_bps=Decimal(0), slippage_bps=Decimal(0)
        ),
        user_limits=UserLimits(max_portfolio_drawdown_pct=None),
    )


def child_tradeguard(data: Path, bars: int, profile: bool = False) -> dict[str, Any]:
    import asyncio

    from tradeguard.backtest import Backtest
    from tradeguard.bots.sdk.runner import load_bot_class

    meta = json.loads((data / "meta.json").read_text())
    candles = CandleColumns(read_bars(data, bars), meta["t0_ms"])
    # what making the Candles alone costs (the engine's figure includes it: they are streamed)
    began = time.perf_counter()
    for _ in candles:
        pass
    candles_seconds = time.perf_counter() - began
    spec = tradeguard_spec()
    with tempfile.TemporaryDirectory(prefix="tg-bench-backtest-state-") as state:
        # run_backtest(BOT_DIR, ...) without its user_limits: the same two steps it takes
        profiler = cProfile.Profile() if profile else None
        began = time.perf_counter()
        if profiler:
            profiler.enable()
        bot_class = load_bot_class(BOT_DIR)
        recorder = asyncio.run(Backtest(bot_class, spec, state_dir=Path(state)).run(candles))
        if profiler:
            profiler.disable()
        seconds = time.perf_counter() - began
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(30)
        print(out.getvalue(), file=sys.stderr)
    if recorder.error:
        raise RuntimeError(f"tradeguard backtest stopped: {recorder.error}")
    trades = [(t.entry_index, t.exit_index) for t in recorder.round_trips]
    return {
        "bars": len(candles),
        "seconds": round(seconds, 3),
        "bars_per_second": round(len(candles) / seconds),
        "trades": len(trades),
        "fills": len(recorder.fills),
        "refused": len(recorder.refusals),
        "risk_events": len(recorder.risk_events),
        "trading_state_at_end": recorder.trading_state,
        "peak_rss_mb": _peak_rss_mb(),
        "candles_seconds": round(candles_seconds, 3),
        "setup": "Backtest(examples/sma_cross).run in this process (what run_backtest does; "
        "no sandbox), candles streamed from int columns (made inside the timed run: "
        "candles_seconds is one pass of making them alone), fees and slippage 0, capital "
        "1 BTC, fraction 0.25, no breakers",
        "trade_list": trades,
    }


# -- the parent --------------------------------------------------------------------------------


def _run_child(kind: str, args: argparse.Namespace, data: Path) -> dict[str, Any]:
    argv = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        kind,
        "--data",
        str(data),
        "--bars",
        str(args.bars),
        "--peer-bars",
        str(args.peer_bars),
        *(["--profile"] if args.profile and kind == "tradeguard" else []),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    lines = done.stderr.splitlines(keepends=True)
    if len(lines) > 40 and not args.profile:  # e.g. a bot logging every refused order
        sys.stderr.write(f"[{kind}: {len(lines) - 40} lines of stderr left out]\n")
    sys.stderr.writelines(lines if args.profile else lines[-40:])
    if done.returncode != 0:
        raise SystemExit(f"bench/backtest.py: the {kind} child failed (exit {done.returncode})")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _first_difference(a: Sequence[Trade], b: Sequence[Trade]) -> dict[str, Any] | None:
    for k, (x, y) in enumerate(zip(a, b, strict=False)):
        if tuple(x) != tuple(y):
            return {"trade": k, "one": list(x), "other": list(y)}
    if len(a) != len(b):
        return {"trade": min(len(a), len(b)), "counts": [len(a), len(b)]}
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=1_000_000, help="bars to backtest")
    parser.add_argument(
        "--peer-bars",
        type=int,
        default=100_000,
        help="the prefix backtrader runs on, and on which all trade lists are compared",
    )
    parser.add_argument("--skip-backtrader", action="store_true")
    parser.add_argument("--skip-tradeguard", action="store_true")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="cProfile tradeguard's run to stderr (slows it: its figures are then not comparable)",
    )
    parser.add_argument("--child", choices=("build", "plain", "backtrader", "tradeguard"))
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bars <= SLOW:
        parser.error(f"--bars must be more than {SLOW}")
    args.peer_bars = max(SLOW + 1, min(args.peer_bars, args.bars))

    if args.child:
        data = args.data
        if args.child == "build":
            out: dict[str, Any] = write_bars(data, args.bars, args.peer_bars)
            out["peak_rss_mb"] = _peak_rss_mb()
        elif args.child == "plain":
            out = child_plain(data, args.bars, args.peer_bars)
        elif args.child == "backtrader":
            out = child_backtrader(data, args.peer_bars)
        else:
            out = child_tradeguard(data, args.bars, args.profile)
        print(json.dumps(out))
        return

    source_files()  # fail early and clearly
    began = time.perf_counter()
    load_at_start = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory(prefix="tg-bench-backtest-") as tmp:
        data = Path(tmp)
        _progress(f"building {args.bars:,} bars")
        meta = _run_child("build", args, data)
        _progress(f"plain loop over {args.bars:,} bars")
        plain = _run_child("plain", args, data)

        if args.skip_backtrader:
            backtrader: dict[str, Any] = {"skipped": "--skip-backtrader"}
        else:
            # find_spec, not import: this process stays small (module docstring)
            if importlib.util.find_spec("backtrader") is None:
                backtrader = {"skipped": "backtrader is not installed (pip install '.[bench]')"}
            else:
                _progress(f"backtrader over {args.peer_bars:,} bars")
                backtrader = _run_child("backtrader", args, data)

        why_not = "--skip-tradeguard" if args.skip_tradeguard else tradeguard_available()
        if why_not:
            tradeguard: dict[str, Any] = {"skipped": why_not}
        else:
            _progress(f"tradeguard over {args.bars:,} bars")
            tradeguard = _run_child("tradeguard", args, data)

    prefix = args.peer_bars
    lists: dict[str, list[Trade]] = {"plain_loop": [tuple(t) for t in plain["prefix_trade_list"]]}
    for name, figures in (("backtrader", backtrader), ("tradeguard", tradeguard)):
        if "trade_list" in figures:
            lists[name] = [tuple(t) for t in figures["trade_list"] if t[1] < prefix]
    agree: dict[str, Any] = {"prefix_bars": prefix}
    differences: dict[str, Any] = {}
    names = list(lists)
    for k, one in enumerate(names):
        for other in names[k + 1 :]:
            key = f"{one}_vs_{other}"
            diff = _first_difference(lists[one], lists[other])
            agree[key] = diff is None
            if diff:
                differences[key] = diff
    if "trade_list" in tradeguard:
        diff = _first_difference(
            [tuple(t) for t in plain["trade_list"]], [tuple(t) for t in tradeguard["trade_list"]]
        )
        agree["plain_loop_vs_tradeguard_all_bars"] = diff is None
        if diff:
            differences["plain_loop_vs_tradeguard_all_bars"] = diff
    for figures in (plain, backtrader, tradeguard):
        figures.pop("trade_list", None)
        figures.pop("prefix_trade_list", None)

    bars_per_s = tradeguard.get("bars_per_second")
    ratios = {  # measured in this run: comparable where absolute figures across runs are not
        f"tradeguard_vs_{name}": round(bars_per_s / figures["bars_per_second"], 4)
        for name, figures in (("plain_loop", plain), ("backtrader", backtrader))
        if bars_per_s and "bars_per_second" in figures
    }
    result = {
        "benchmark": "backtest",
        "strategy": {
            "bot": "examples/sma_cross",
            "fast": FAST,
            "slow": SLOW,
            "fills": "market, next bar's open",
            "long_only": True,
            "fees": 0,
            "rule": "above = avg_fast > avg_slow (exact); buy on a change to above when flat, "
            "sell on a change to not above when long; the first full window sets `above` only",
        },
        "bars": meta["bars"],
        "data": meta,
        "tradeguard": tradeguard,
        "plain_loop": plain,
        "backtrader": backtrader,
        "speed_ratios": ratios,
        "trades_on_prefix": {name: len(trades) for name, trades in lists.items()},
        "trades_agree": agree,
        **({"trade_differences": differences} if differences else {}),
        "peer_quoted": QUOTED,
        "target": {"bars_per_second": TARGET_BARS_PER_S, "peak_rss_mb": TARGET_PEAK_RSS_MB},
        "met": bars_per_s is not None and bars_per_s >= TARGET_BARS_PER_S,
        "memory_met": "peak_rss_mb" in tradeguard
        and tradeguard["peak_rss_mb"] < TARGET_PEAK_RSS_MB,
        "load_avg_1m_at_start": load_at_start,
        "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
        "runtime_s": round(time.perf_counter() - began, 1),
    }
    emit(result)


if __name__ == "__main__":
    main()
