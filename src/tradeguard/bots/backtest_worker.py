"""The backtest's process, inside the bot sandbox (`tradeguard.bots.backtests` starts it):

    python -I -m tradeguard.bots.backtest_worker --bot-dir DIR --data FILE --out DIR \
        --report-fd N --policy JSON [--site DIR] [--symbol S] [--from MS] [--to MS] ...

It confines itself first (the same `confine.apply` as a bot process), then reads and checks the
candle file and the bot's `bot.toml`, and only then imports the bot's code: the bot runs in
this process, on the engine of `tradeguard.backtest`, for speed. The bot's output (print, logs)
goes to stderr; this process's own messages go, one JSON object per line, to the descriptor
`--report-fd`, which the bot has no reason to know about:

    {"type": "progress", "done": 10000, "total": 57600}
    {"type": "done", "ok": true}                  # or ok false: the bot raised, see report.json
    {"type": "error", "kind": "data" | "config", "message": "..."}

Files written to `--out`: report.json, trades.csv, fills.csv, equity.csv, and the bot's state dir.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import dataclasses
import json
import logging
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from tradeguard.backtest import Backtest, BacktestSpec, Recorder
from tradeguard.backtest.chart import thin
from tradeguard.bots.manifest import load_manifest
from tradeguard.bots.sdk import confine
from tradeguard.bots.sdk.runner import load_bot_class
from tradeguard.core.errors import ConfigError, MarketDataError
from tradeguard.marketdata.candles import Candle, Timeframe
from tradeguard.marketdata.files import parse_file_name, read_candles
from tradeguard.risk.limits import Breakers, UserLimits
from tradeguard.secrets.tracebacks import format_exception
from tradeguard.venues.paper.config import PaperConfig

__all__ = ["main"]

EXIT_BOT_FAILED = 1
EXIT_BAD_INPUT = 2


class _Reporter:
    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def send(self, message: dict[str, Any]) -> None:
        self._stream.write(json.dumps(message) + "\n")
        self._stream.flush()

    def progress(self, done: int, total: int) -> None:
        self.send({"type": "progress", "done": done, "total": total})


def _args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tradeguard.bots.backtest_worker")
    parser.add_argument("--bot-dir", required=True, type=Path)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--report-fd", required=True, type=int)
    parser.add_argument("--policy", default="{}")
    parser.add_argument("--site", type=Path, help="the bot's own site-packages, if it has one")
    parser.add_argument("--symbol")
    parser.add_argument("--from-ms", type=int)
    parser.add_argument("--to-ms", type=int)
    parser.add_argument("--fill-gaps", default="error", choices=("error", "flat", "keep"))
    parser.add_argument("--no-breakers", action="store_true")
    parser.add_argument("--fee-bps")
    parser.add_argument("--slippage-bps")
    return parser.parse_args(argv)


def _window(candles: Sequence[Candle], args: argparse.Namespace) -> list[Candle]:
    start = args.from_ms if args.from_ms is not None else -(2**63)
    end = args.to_ms if args.to_ms is not None else 2**63
    chosen = [c for c in candles if start <= c.ts_ms < end]
    if not chosen:
        raise MarketDataError(
            f"{args.data}: no candles between the --from and --to you gave (the file holds "
            f"{len(candles)} candles); widen the window"
        )
    return chosen


def _spec(args: argparse.Namespace, candles_symbol: str | None) -> BacktestSpec:
    manifest = load_manifest(args.bot_dir)
    symbol = args.symbol or candles_symbol
    if symbol is None:
        raise ConfigError(
            f"{args.data}: the file name does not say its market (e.g. ETH_BTC-5m.csv); "
            "pass --symbol"
        )
    if symbol not in manifest.symbols:
        raise ConfigError(
            f"{args.data} holds {symbol}, which is not one of the bot's symbols "
            f"({', '.join(manifest.symbols)} in bot.toml)"
        )
    limits, user_limits = manifest.limits, UserLimits()
    if args.no_breakers:
        off = Breakers(max_consecutive_losses=None, max_daily_loss_pct=None, max_drawdown_pct=None)
        limits = dataclasses.replace(limits, breakers=off)
        user_limits = UserLimits(max_portfolio_drawdown_pct=None)
    defaults = PaperConfig()
    paper = PaperConfig(
        maker_fee_bps=Decimal(args.fee_bps) if args.fee_bps else defaults.maker_fee_bps,
        taker_fee_bps=Decimal(args.fee_bps) if args.fee_bps else defaults.taker_fee_bps,
        slippage_bps=Decimal(args.slippage_bps) if args.slippage_bps else defaults.slippage_bps,
    )
    return BacktestSpec(
        name=manifest.name,
        symbol=symbol,
        timeframe=Timeframe.parse(manifest.timeframe),
        limits=limits,
        params=manifest.params,
        paper=paper,
        user_limits=user_limits,
    )


def _write_csv(path: Path, header: Sequence[str], rows: Any) -> None:
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(rows)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


def _save(out: Path, recorder: Recorder, spec: BacktestSpec, data: Path) -> None:
    report = recorder.report()
    _write_csv(
        out / "trades.csv",
        ("entry_index", "exit_index", "opened", "closed", "pnl"),
        (
            (t.entry_index, t.exit_index, _iso(t.opened_ms), _iso(t.closed_ms), t.pnl)
            for t in recorder.round_trips
        ),
    )
    _write_csv(
        out / "fills.csv",
        ("index", "time", "side", "amount", "price", "fee"),
        ((f.index, _iso(f.ts_ms), f.side, f.amount, f.price, f.fee) for f in recorder.fills),
    )
    _write_csv(out / "equity.csv", ("time", "equity"), recorder.equity_rows())
    times, values = thin(list(recorder.times), [float(e) for e in recorder.equity])
    summary = {
        "bot": spec.name,
        "symbol": spec.symbol,
        "timeframe": spec.timeframe.text,
        "data": str(data),
        "quote": spec.symbol.split("/")[1],
        "report": report.as_json(),
        "round_trips": [
            [t.entry_index, t.exit_index, t.opened_ms, t.closed_ms, str(t.pnl)]
            for t in recorder.round_trips
        ],
        "refusals": [list(r) for r in recorder.refusals[:100]],
        "risk_events": [[i, name, details] for i, name, details in recorder.risk_events],
        "chart": [times, values],
        "error": recorder.error,
    }
    (out / "report.json").write_text(json.dumps(summary, default=str))


def _run(args: argparse.Namespace, reporter: _Reporter) -> int:
    try:
        loaded = read_candles(args.data, fill_gaps=args.fill_gaps)
        candles = _window(loaded.candles, args)
        spec = _spec(args, parse_file_name(args.data.name)[0])
    except (MarketDataError, ConfigError) as error:
        kind = "data" if isinstance(error, MarketDataError) else "config"
        reporter.send({"type": "error", "kind": kind, "message": str(error)})
        return EXIT_BAD_INPUT
    if args.site is not None:
        sys.path.append(str(args.site))  # after tradeguard's own: the engine keeps its versions
    state = args.out / "state"
    state.mkdir(exist_ok=True)
    try:
        bot_class = load_bot_class(args.bot_dir)
    except SystemExit as error:  # the loader's own verdict: no Bot subclass, or several
        reporter.send({"type": "error", "kind": "bot", "message": str(error.code)})
        return EXIT_BOT_FAILED
    except Exception as error:  # noqa: BLE001 - the bot's module may raise anything on import
        reporter.send({"type": "error", "kind": "bot", "message": format_exception(error)})
        return EXIT_BOT_FAILED
    backtest = Backtest(bot_class, spec, state_dir=state, progress=reporter.progress)
    recorder = asyncio.run(backtest.run(candles))
    _save(args.out, recorder, spec, args.data)
    reporter.send({"type": "done", "ok": recorder.error is None})
    return EXIT_BOT_FAILED if recorder.error else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _args(argv)
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    reporter = _Reporter(os.fdopen(args.report_fd, "w", closefd=True))
    # Whatever the bot prints is a log line, not a message of ours.
    sys.stdout = sys.stderr
    confine.apply(json.loads(args.policy))
    return _run(args, reporter)


if __name__ == "__main__":
    sys.exit(main())
