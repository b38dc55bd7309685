"""`tradeguard data`: download candles from a venue, list stored and bundled candle files, check
any candle file.

Downloads go to `<data dir>/candles/<venue>/<BASE_QUOTE[_SETTLE]>-<timeframe>.csv` (e.g.
`candles/binance/BTC_USDT-1h.csv`, `candles/binanceusdm/BTC_USDT_USDT-1h.csv`) and resume
where the file ends. docs/market-data.md describes the formats and the checks.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from rich.table import Table

from tradeguard.cli.console import err, out
from tradeguard.cli.inputs import BadInput, parse_time
from tradeguard.cli.settings import cli_settings
from tradeguard.config import check_data_dir, ensure_data_dir
from tradeguard.core.errors import MarketDataError
from tradeguard.marketdata import (
    CandleFile,
    GapPolicy,
    Timeframe,
    candle_path,
    list_samples,
    read_candles,
    sample_path,
)
from tradeguard.marketdata.files import SUFFIXES, format_ms, parse_file_name

if TYPE_CHECKING:  # ccxt takes a second to import: only `data download` loads it
    import ccxt.async_support as ccxt_async

    from tradeguard.marketdata.download import DownloadResult

__all__ = ["app"]

app = typer.Typer(help="Market data: download, list and check candle files.", no_args_is_help=True)

_SYMBOL = re.compile(r"[A-Z0-9]+/[A-Z0-9]+(?::[A-Z0-9]+)?")


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _check_symbol(symbol: str) -> None:
    if not _SYMBOL.fullmatch(symbol):
        hint = f" (did you mean {symbol.upper()}?)" if _SYMBOL.fullmatch(symbol.upper()) else ""
        raise BadInput(
            f"--symbol {symbol!r} is not BASE/QUOTE or BASE/QUOTE:SETTLE in capitals, e.g. "
            f"BTC/USDT or BTC/USDT:USDT{hint}"
        )


# -- download ----------------------------------------------------------------------------------


@app.command("download")
def download(
    venue: Annotated[str, typer.Option("--venue", help="binance, binanceusdm, bybit, ...")],
    symbol: Annotated[str, typer.Option("--symbol", help="BTC/USDT, or BTC/USDT:USDT.")],
    timeframe: Annotated[str, typer.Option("--timeframe", help="1m, 5m, 1h, 1d, ...")],
    since: Annotated[str, typer.Option("--since", help="First candle: 2024-01-01 (UTC) or 90d.")],
    until: Annotated[
        str | None, typer.Option("--until", help="Stop before this time (default: now).")
    ] = None,
) -> None:
    """Download closed candles into the data directory; run again to resume or extend."""
    from tradeguard.marketdata.exchanges import CCXT_VENUES, ccxt_exchange

    settings = cli_settings()
    if venue not in CCXT_VENUES:
        raise BadInput(f"unknown venue {venue!r}; choose one of: {', '.join(sorted(CCXT_VENUES))}")
    _check_symbol(symbol)
    try:
        tf = Timeframe.parse(timeframe)
    except ValueError as e:
        raise BadInput(f"--timeframe: {e}") from None
    now = datetime.now(UTC)
    start = parse_time(since, "--since", now)
    end = parse_time(until, "--until", now) if until is not None else None
    if start >= now:
        raise BadInput(f"--since {start:%Y-%m-%d %H:%M} UTC is in the future; give a past date")
    if end is not None and start >= end:
        raise BadInput(
            f"--since {start:%Y-%m-%d %H:%M} UTC is not before --until {end:%Y-%m-%d %H:%M} UTC; "
            "give a --since earlier than --until"
        )
    dest = candle_path(settings.data_dir, venue, symbol, tf)
    exchange = ccxt_exchange(
        venue, api_url=settings.venue_api_urls.get(venue), testnet=venue in settings.venue_testnet
    )

    async def run() -> DownloadResult:
        try:
            if tf.text not in (exchange.timeframes or {}):
                raise BadInput(
                    f"{venue} has no {tf} candles; choose one of: {', '.join(exchange.timeframes)}"
                )
            ensure_data_dir(settings)
            return await _download(exchange, symbol, tf, _ms(start), end, dest)
        finally:
            await exchange.close()

    _report(venue, symbol, tf, asyncio.run(run()))


async def _download(
    exchange: ccxt_async.Exchange,
    symbol: str,
    tf: Timeframe,
    since_ms: int,
    end: datetime | None,
    dest: Path,
) -> DownloadResult:
    from tradeguard.marketdata.download import download_candles

    columns = (*Progress.get_default_columns()[:1], BarColumn(), MofNCompleteColumn(),
               TimeRemainingColumn())  # fmt: skip
    with Progress(*columns, console=err, transient=False) as bar:
        task = bar.add_task(f"downloading {symbol} {tf}", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        until_ms = None if end is None else _ms(end)
        return await download_candles(exchange, symbol, tf, since_ms, until_ms, dest, progress)


def _report(venue: str, symbol: str, tf: Timeframe, result: DownloadResult) -> None:
    if result.repaired_bytes:
        err.print(
            f"note: cut off a partial last line ({result.repaired_bytes} bytes) left by an "
            "interrupted download",
            markup=False,
        )
    if result.rows == 0:
        out.print(f"{venue} has no {symbol} {tf} candles in that range; nothing stored.")
        return
    span = f"{format_ms(result.first_ms or 0)} to {format_ms(result.last_ms or 0)}"
    verb = "extended" if result.resumed else "downloaded"
    out.print(
        f"{verb} {symbol} {tf} on {venue}: {result.added:,} new candle(s), {result.rows:,} in "
        f"all, {span}; {result.path}",
        markup=False,
    )
    if result.gaps:
        err.print(
            f"warning: {result.gaps} gap(s) where {venue} has no candles; reading the file "
            "fails on them unless you choose a gap policy (see: tradeguard data check)",
            markup=False,
        )


# -- list --------------------------------------------------------------------------------------


def _stored_files(data_dir: Path) -> list[tuple[str, Path]]:
    root = data_dir / "candles"
    if not check_data_dir(data_dir) or not root.is_dir():
        return []
    return [
        (venue_dir.name, path)
        for venue_dir in sorted(p for p in root.iterdir() if p.is_dir())
        for path in sorted(venue_dir.iterdir())
        if path.suffix in SUFFIXES and not path.name.startswith(".")
    ]


@app.command("list")
def list_command() -> None:
    """Show the stored candle files and the bundled samples."""
    settings = cli_settings()
    files = [
        *_stored_files(settings.data_dir),
        *(("sample", sample_path(n)) for n in list_samples()),
    ]
    table = Table("source", "symbol", "timeframe", "first (UTC)", "last (UTC)", "rows", "gaps")
    problems: list[str] = []
    for source, path in files:
        symbol, named_tf = parse_file_name(path.name)
        try:
            loaded = read_candles(path, fill_gaps="keep")
        except MarketDataError as e:
            table.add_row(source, symbol or path.name, str(named_tf or "?"), "", "", "", "invalid")
            problems.append(e.message)
            continue
        first = format_ms(loaded.candles[0].ts_ms).removesuffix(" UTC") if loaded.candles else ""
        last = format_ms(loaded.candles[-1].ts_ms).removesuffix(" UTC") if loaded.candles else ""
        gaps = f"{len(loaded.gaps)} ({loaded.missing} missing)" if loaded.gaps else "none"
        table.add_row(
            source,
            symbol or path.name,
            str(loaded.timeframe),
            first,
            last,
            f"{len(loaded.candles):,}",
            gaps,
        )
    out.print(table)
    out.print(f"downloads: {settings.data_dir / 'candles'}", markup=False)
    for problem in problems:
        err.print(f"invalid: {problem}", markup=False)
    if problems:
        raise typer.Exit(1)


# -- check -------------------------------------------------------------------------------------


_POLICIES: dict[str, GapPolicy] = {"error": "error", "keep": "keep", "flat": "flat"}


@app.command("check")
def check(
    file: Annotated[Path, typer.Argument(help="A .csv or .parquet candle file.")],
    timeframe: Annotated[
        str | None,
        typer.Option("--timeframe", help="Default: from the file name, else the common step."),
    ] = None,
    fill_gaps: Annotated[
        str,
        typer.Option(
            "--fill-gaps",
            help="error: a gap fails the check; keep: report gaps; flat: report what filling "
            "them with flat candles would insert.",
        ),
    ] = "error",
) -> None:
    """Validate a candle file: header, numbers, high/low, order, duplicates, gaps."""
    if fill_gaps not in _POLICIES:
        raise BadInput(f"--fill-gaps is error, keep or flat, not {fill_gaps!r}")
    policy: GapPolicy = _POLICIES[fill_gaps]
    try:
        tf = Timeframe.parse(timeframe) if timeframe is not None else None
    except ValueError as e:
        raise BadInput(f"--timeframe: {e}") from None
    loaded = read_candles(file, timeframe=tf, fill_gaps=policy)
    _describe(loaded)


def _describe(loaded: CandleFile) -> None:
    if not loaded.candles:
        out.print(f"{loaded.path}: valid, no candles ({loaded.timeframe})", markup=False)
        return
    out.print(
        f"{loaded.path}: valid, {len(loaded.candles):,} candle(s) of {loaded.timeframe} from "
        f"{format_ms(loaded.candles[0].ts_ms)} to {format_ms(loaded.candles[-1].ts_ms)}",
        markup=False,
    )
    if not loaded.gaps:
        out.print("no gaps", markup=False)
        return
    action = f"{loaded.filled} flat candle(s) inserted" if loaded.filled else "left as they are"
    out.print(f"{len(loaded.gaps)} gap(s), {loaded.missing} candle(s) missing, {action}:")
    for gap in loaded.gaps:
        out.print(
            f"  line {gap.line}: {gap.missing} missing after {format_ms(gap.after_ms)}",
            markup=False,
        )
