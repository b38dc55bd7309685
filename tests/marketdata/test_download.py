"""download_candles against the Binance simulator on loopback, through the real ccxt: paged,
checked, resumable after an interruption (no duplicate, no gap, a torn line repaired), the open
candle never stored, progress reported."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.sims.binance import BinanceSim, binance_sim

from tradeguard.core.clock import ManualClock
from tradeguard.core.errors import MarketDataError
from tradeguard.marketdata import Candle, Timeframe, load_sample, read_candles, write_candles
from tradeguard.marketdata.download import DownloadResult, ProgressCallback, download_candles
from tradeguard.marketdata.exchanges import ccxt_exchange

SAMPLE = load_sample("ETH_BTC-5m.csv").candles  # 5,760 real candles, no gaps
M5 = 300_000
FIRST = SAMPLE[0].ts_ms
END = SAMPLE[-1].ts_ms + M5  # the close of the last candle


def clock_at(ms: int) -> ManualClock:
    return ManualClock(datetime.fromtimestamp(ms / 1000, UTC))


@pytest.fixture
def sim() -> BinanceSim:
    sim = BinanceSim()
    sim.set_candles("ETHUSDT", "5m", SAMPLE)
    return sim


@pytest.fixture
def url(sim: BinanceSim) -> Iterator[str]:
    with binance_sim(sim) as base_url:
        yield base_url


def download(
    url: str,
    dest: Path,
    *,
    since: int = FIRST,
    until: int | None = None,
    now: int = END,
    progress: ProgressCallback | None = None,
) -> DownloadResult:
    async def run() -> DownloadResult:
        exchange = ccxt_exchange("binance", api_url=url)
        try:
            return await download_candles(
                exchange, "ETH/USDT", "5m", since, until, dest, progress, clock=clock_at(now)
            )
        finally:
            await exchange.close()

    return asyncio.run(run())


def test_a_full_download_pages_through_and_stores_every_candle(
    url: str, sim: BinanceSim, tmp_path: Path
) -> None:
    dest = tmp_path / "ETH_USDT-5m.csv"
    seen: list[tuple[int, int]] = []
    result = download(url, dest, progress=lambda done, total: seen.append((done, total)))
    assert result.added == result.rows == 5760
    assert (result.first_ms, result.last_ms) == (FIRST, SAMPLE[-1].ts_ms)
    assert not result.resumed
    assert result.gaps == 0
    assert read_candles(dest).candles == SAMPLE  # exact values, valid file
    assert sum(1 for _, p in sim.requests if p == "/api/v3/klines") == 6  # 1000 a page
    # progress: from 0, rising, to the end
    assert seen[0] == (0, 5760)
    assert seen[-1] == (5760, 5760)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert len(seen) >= 7  # the start, each page, the end


def test_the_open_candle_and_candles_after_until_are_not_stored(url: str, tmp_path: Path) -> None:
    dest = tmp_path / "a-5m.csv"
    now = FIRST + 100 * M5 + 60_000  # candle 100 is open
    result = download(url, dest, now=now)
    assert result.rows == 100
    assert result.last_ms == FIRST + 99 * M5
    until = FIRST + 50 * M5
    dest2 = tmp_path / "b-5m.csv"
    assert download(url, dest2, until=until).last_ms == until - M5


class Interrupted(Exception):
    pass


def test_an_interrupted_download_resumes_without_duplicate_or_gap(url: str, tmp_path: Path) -> None:
    dest = tmp_path / "ETH_USDT-5m.csv"
    pages = 0

    def stop_after_two_pages(done: int, total: int) -> None:
        nonlocal pages
        pages += 1
        if pages == 3:  # the first call reports the start, then one per page
            raise Interrupted

    with pytest.raises(Interrupted):
        download(url, dest, progress=stop_after_two_pages)
    assert len(read_candles(dest).candles) == 2000
    with dest.open("ab") as f:  # and the next append was torn mid-line
        f.write(b"1516160100000,0.1,0.1")

    seen: list[tuple[int, int]] = []
    result = download(url, dest, progress=lambda d, t: seen.append((d, t)))
    assert result.resumed
    assert result.repaired_bytes == len(b"1516160100000,0.1,0.1")
    assert result.added == 3760
    assert result.rows == 5760
    assert read_candles(dest).candles == SAMPLE  # strict read: no duplicate, no gap
    assert seen[0] == (2000, 5760)  # progress starts where the file ended

    again = download(url, dest)  # nothing new: nothing added
    assert (again.added, again.rows) == (0, 5760)


def test_an_earlier_since_fetches_the_missing_start(url: str, tmp_path: Path) -> None:
    dest = tmp_path / "ETH_USDT-5m.csv"
    write_candles(dest, SAMPLE[1000:1200], Timeframe.parse("5m"))
    result = download(url, dest, until=FIRST + 1500 * M5)
    assert result.resumed
    assert result.added == 1300
    assert read_candles(dest).candles == SAMPLE[:1500]


def test_an_invalid_existing_file_stops_before_any_request(
    url: str, sim: BinanceSim, tmp_path: Path
) -> None:
    dest = tmp_path / "ETH_USDT-5m.csv"
    write_candles(dest, SAMPLE[:10], Timeframe.parse("5m"))
    dest.write_text(dest.read_text().replace(str(SAMPLE[5].ts_ms), str(SAMPLE[3].ts_ms)))
    with pytest.raises(MarketDataError, match=r"ETH_USDT-5m.csv: line 7: duplicate timestamp"):
        download(url, dest)
    assert ("GET", "/api/v3/klines") not in sim.requests


def test_gaps_at_the_venue_are_stored_and_counted(
    url: str, sim: BinanceSim, tmp_path: Path
) -> None:
    holes: list[Candle] = [c for i, c in enumerate(SAMPLE[:300]) if i not in (10, 11, 250)]
    sim.set_candles("ETHUSDT", "5m", holes)
    dest = tmp_path / "ETH_USDT-5m.csv"
    result = download(url, dest, until=FIRST + 300 * M5)
    assert result.gaps == 2
    assert result.rows == 297
    assert read_candles(dest, fill_gaps="keep").missing == 3


def test_a_flaky_network_costs_retries_not_data(url: str, sim: BinanceSim, tmp_path: Path) -> None:
    dest = tmp_path / "ETH_USDT-5m.csv"

    async def run() -> DownloadResult:
        exchange = ccxt_exchange("binance", api_url=url)
        slept: list[float] = []

        async def sleep(seconds: float) -> None:
            slept.append(seconds)

        try:
            await exchange.load_markets()
            sim.fail_next(2)
            result = await download_candles(
                exchange,
                "ETH/USDT",
                "5m",
                FIRST,
                FIRST + 1500 * M5,
                dest,
                clock=clock_at(END),
                sleep=sleep,
            )
            assert slept == [1.0, 2.0]
            return result
        finally:
            await exchange.close()

    assert asyncio.run(run()).rows == 1500
    assert read_candles(dest).candles == SAMPLE[:1500]


def test_bad_ranges_are_refused(url: str, tmp_path: Path) -> None:
    with pytest.raises(MarketDataError, match="nothing to download"):
        download(url, tmp_path / "a-5m.csv", since=END + 10 * M5, now=END)
    with pytest.raises(MarketDataError, match="nothing to download"):
        download(url, tmp_path / "a-5m.csv", since=FIRST + M5, until=FIRST)
    with pytest.raises(MarketDataError, match=r"stored as \.csv"):
        download(url, tmp_path / "a-5m.parquet")
