"""`tradeguard backtest BOT --data FILE [--from DATE] [--to DATE]`: a bot's code over stored
candles, in the bot sandbox, on the same risk engine and paper venue as paper trading.

BOT is a bot folder (bot.py + bot.toml) or the name of a created bot (`bots create`), whose
virtualenv holds its vetted packages. Results land in `--out` (default
`backtests/<bot>-<UTC time>`): report.json, trades.csv, fills.csv, equity.csv, equity.png and
the bot's log. Exit status: 0 done, 1 the bot raised (partial results saved), 2 bad input.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from rich.table import Table

from tradeguard.backtest.chart import save_equity_chart
from tradeguard.bots.backtests import BacktestJob, BacktestOutcome, run_backtest_job
from tradeguard.bots.registry import find_bot
from tradeguard.bots.venvs import site_packages
from tradeguard.cli.console import err, out
from tradeguard.cli.inputs import BadInput, parse_time
from tradeguard.cli.settings import cli_settings
from tradeguard.config import Settings
from tradeguard.marketdata.sample import sample_path
from tradeguard.ops.store import open_store
from tradeguard.secrets.redact import redact_text
from tradeguard.venues.paper.config import PaperConfig

__all__ = ["backtest"]

_TAIL = 15


def _data_path(text: str) -> Path:
    if text.startswith("sample:"):
        return sample_path(text.removeprefix("sample:"))
    path = Path(text)
    if not path.is_file():
        raise BadInput(f"--data {text}: no such file; give a candle file (.csv or .parquet)")
    return path


def _has_requirements(folder: Path) -> bool:
    path = folder / "requirements.txt"
    if not path.is_file():
        return False
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return any(lines)


def _bot_code(settings: Settings, bot: str) -> tuple[Path, Path | None]:
    """(code dir, site-packages or None) of a bot folder or a created bot's name."""
    folder = Path(bot)
    if folder.is_dir():
        if not (folder / "bot.py").is_file():
            raise BadInput(f"{folder} has no bot.py: a bot folder holds bot.py and bot.toml")
        if _has_requirements(folder):
            raise BadInput(
                f"{folder}/requirements.txt asks for packages, which are installed only through "
                f"the package policy: `tradeguard bots create --from {folder}`, then "
                "`tradeguard backtest <its name> --data ...`"
            )
        return folder, None
    store = open_store(settings)
    try:
        info = find_bot(store.engine, bot)
    finally:
        store.engine.dispose()
    paths = info.paths(settings)
    return paths.code, site_packages(paths.venv)


def _costs(fee_bps: str | None, slippage_bps: str | None) -> None:
    """Refuse bad costs here, before a sandbox starts: decimal numbers of bps, 0 to 1000."""
    values: dict[str, Decimal] = {}
    for option, text in (("--fee-bps", fee_bps), ("--slippage-bps", slippage_bps)):
        if text is None:
            continue
        try:
            values[option] = Decimal(text)
        except InvalidOperation:
            raise BadInput(f"{option} must be a number of basis points, e.g. 10") from None
    fee = values.get("--fee-bps", Decimal(0))
    PaperConfig(
        maker_fee_bps=fee,
        taker_fee_bps=fee,
        slippage_bps=values.get("--slippage-bps", Decimal(0)),
    )  # ConfigError (exit 2) names a value out of range


def _ms(text: str | None, option: str) -> int | None:
    if text is None:
        return None
    return int(parse_time(text, option, datetime.now(UTC)).timestamp() * 1000)


def _run(settings: Settings, job: BacktestJob) -> BacktestOutcome:
    columns = (*Progress.get_default_columns()[:1], BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeRemainingColumn(), console=err, transient=True) as bar:
        task = bar.add_task("backtest", total=None)

        def moved(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        return run_backtest_job(settings, job, progress=moved)


def _number(value: Any, places: int = 2, suffix: str = "") -> str:
    if value is None:
        return "n/a"
    return f"{Decimal(value):,.{places}f}{suffix}"


def _summary(summary: dict[str, Any]) -> Table:
    r = summary["report"]
    quote = summary["quote"]
    table = Table(
        title=f"backtest of {summary['bot']} on {summary['symbol']} {summary['timeframe']}"
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    first = datetime.fromtimestamp(r["first_ms"] / 1000, UTC) if r["first_ms"] else None
    last = datetime.fromtimestamp(r["last_ms"] / 1000, UTC) if r["last_ms"] else None
    rows = [
        (
            "candles",
            f"{r['candles']:,}"
            + (f" ({first:%Y-%m-%d} to {last:%Y-%m-%d})" if first and last else ""),
        ),
        ("start equity", f"{_number(r['start_equity'], 8)} {quote}"),
        ("end equity", f"{_number(r['end_equity'], 8)} {quote}"),
        ("net PnL", f"{_number(r['net'], 8)} {quote} ({_number(r['return_pct'], 2, ' %')})"),
        ("closed trades", f"{r['trades']} ({r['wins']} won, {r['losses']} lost)"),
        ("win rate", _number(r["win_rate_pct"], 1, " %")),
        ("profit factor", _number(r["profit_factor"], 2)),
        ("max drawdown (marked)", _number(r["max_drawdown_pct"], 2, " %")),
        ("max drawdown (closed trades)", _number(r["closed_drawdown_pct"], 2, " %")),
        ("Sharpe (daily, annualized)", _number(r["sharpe"], 2)),
        ("fills / refused orders", f"{r['fills']} / {r['refused']}"),
        ("open position at the end", r["open_position"]),
        ("trading state at the end", r["trading_state"]),
    ]
    for name, value in rows:
        table.add_row(name, str(value))
    return table


def _trades(summary: dict[str, Any]) -> Table:
    table = Table(title=f"last closed trades (of {len(summary['round_trips'])})")
    for name in ("opened", "closed", "candles held", "pnl"):
        table.add_column(name, justify="right" if name != "opened" else "left")
    for entry, exit_, opened, closed, pnl in summary["round_trips"][-_TAIL:]:
        table.add_row(
            f"{datetime.fromtimestamp(opened / 1000, UTC):%Y-%m-%d %H:%M}",
            f"{datetime.fromtimestamp(closed / 1000, UTC):%Y-%m-%d %H:%M}",
            str(exit_ - entry),
            pnl,
        )
    return table


def _show(summary: dict[str, Any], out_dir: Path) -> None:
    out.print(_summary(summary))
    if summary["round_trips"]:
        out.print(_trades(summary))
    for index, name, details in summary["risk_events"]:
        what = details.get("breaker", "")
        out.print(f"risk: {name} {what} at candle {index}: {details}", markup=False)
    gate = summary["report"]["promotion_failures"]
    verdict = "would pass" if not gate else "would not pass: " + "; ".join(gate)
    out.print(f"Promotion gate on these trades: {verdict}", markup=False)
    times, values = summary["chart"]
    if values:
        chart = save_equity_chart(
            out_dir / "equity.png",
            times,
            values,
            title=f"{summary['bot']} on {summary['symbol']}: equity",
            currency=summary["quote"],
        )
        out.print(f"Equity chart: {chart}", markup=False)
    out.print(f"Results: {out_dir} (report.json, trades.csv, fills.csv, equity.csv)", markup=False)


def backtest(
    bot: Annotated[str, typer.Argument(help="A bot folder (bot.py, bot.toml) or a bot's name.")],
    data: Annotated[
        str, typer.Option("--data", help="Candle file (ETH_BTC-5m.csv) or sample:NAME.")
    ],
    start: Annotated[
        str | None, typer.Option("--from", help="First candle: 2024-01-01 (UTC) or 90d.")
    ] = None,
    end: Annotated[str | None, typer.Option("--to", help="Stop before this time.")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="A new results dir.")] = None,
    symbol: Annotated[
        str | None, typer.Option(help="The file's market, if its name does not say.")
    ] = None,
    fill_gaps: Annotated[
        str,
        typer.Option(help="Missing candles: error (default), flat (repeat the close) or keep."),
    ] = "error",
    no_breakers: Annotated[
        bool, typer.Option("--no-breakers", help="Circuit breakers off (checks still apply).")
    ] = False,
    fee_bps: Annotated[str | None, typer.Option(help="Maker and taker fee, bps.")] = None,
    slippage_bps: Annotated[str | None, typer.Option(help="Taker slippage, bps.")] = None,
) -> None:
    """Backtest a bot on stored candles, in its sandbox, through the real risk engine."""
    if fill_gaps not in ("error", "flat", "keep"):
        raise BadInput("--fill-gaps is error, flat or keep")
    _costs(fee_bps, slippage_bps)
    settings = cli_settings()
    code, site = _bot_code(settings, bot)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = out_dir or Path("backtests") / f"{code.resolve().name}-{stamp}"
    job = BacktestJob(
        bot_dir=code,
        data=_data_path(data),
        out=target,
        site=site,
        symbol=symbol,
        from_ms=_ms(start, "--from"),
        to_ms=_ms(end, "--to"),
        fill_gaps=fill_gaps,
        no_breakers=no_breakers,
        fee_bps=fee_bps,
        slippage_bps=slippage_bps,
    )
    if settings.sandbox == "off":
        err.print("TRADEGUARD_SANDBOX=off: the bot's code runs without the sandbox", markup=False)
    outcome = _run(settings, job)
    if outcome.error is not None and outcome.summary is None:
        err.print(f"backtest: {outcome.error['message']}", markup=False)
        raise typer.Exit(2 if outcome.error["kind"] in ("data", "config") else 1)
    if outcome.summary is None:
        tail = outcome.log.read_text().splitlines()[-20:] if outcome.log.is_file() else []
        err.print("\n".join(tail), markup=False)
        err.print(f"backtest: the worker ended with status {outcome.exit_code}", markup=False)
        raise typer.Exit(1)
    _show(outcome.summary, target)
    if outcome.summary.get("error"):
        err.print(redact_text(str(outcome.summary["error"])), markup=False)
        err.print("backtest: the bot raised; results up to that candle are saved", markup=False)
        raise typer.Exit(1)
