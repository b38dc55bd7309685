"""`tradeguard data` through the real command: download from the Binance simulator on loopback
(progress, resume, private files), list, check, and one-line errors for bad input."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import CliRunner
from tests.sims.binance import BinanceSim, binance_sim

from tradeguard.marketdata import Timeframe, load_sample, read_candles, sample_path, write_candles

SAMPLE = load_sample("ETH_BTC-5m.csv").candles  # 2018-01-10 04:55 to 2018-01-30 04:50 UTC
DOWNLOAD = ("data", "download", "--venue", "binance", "--symbol", "ETH/USDT", "--timeframe", "5m")


@pytest.fixture
def sim() -> BinanceSim:
    sim = BinanceSim()
    sim.set_candles("ETHUSDT", "5m", SAMPLE)
    return sim


@pytest.fixture
def tg(cli: CliRunner, sim: BinanceSim, tmp_path: Path) -> Iterator[CliRunner]:
    with binance_sim(sim) as url:
        cli.env.update(
            {
                "TRADEGUARD_DATA_DIR": str(tmp_path / "data"),
                "TRADEGUARD_VENUE_API_URLS": json.dumps({"binance": url}),
            }
        )
        yield cli


def stored(tmp_path: Path) -> Path:
    return tmp_path / "data" / "candles" / "binance" / "ETH_USDT-5m.csv"


def test_download_stores_a_private_valid_file_and_shows_progress(
    tg: CliRunner, tmp_path: Path
) -> None:
    run = tg(*DOWNLOAD, "--since", "2018-01-10", "--until", "2018-01-20")
    assert run.code == 0, run.output
    path = stored(tmp_path)
    candles = read_candles(path).candles
    assert candles == SAMPLE[: len(candles)]
    assert candles[-1].at.isoformat() == "2018-01-19T23:55:00+00:00"
    assert "downloaded ETH/USDT 5m on binance: 2,821 new candle(s), 2,821 in all" in run.stdout
    assert "downloading ETH/USDT 5m" in run.stderr  # the progress bar
    assert "2880/2880" in run.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for directory in (path.parent, path.parent.parent, tmp_path / "data"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def test_download_resumes_after_the_files_last_candle(
    tg: CliRunner, sim: BinanceSim, tmp_path: Path
) -> None:
    path = stored(tmp_path)
    assert tg(*DOWNLOAD, "--since", "2018-01-10", "--until", "2018-01-15").code == 0
    first = len(read_candles(path).candles)
    with path.open("ab") as f:
        f.write(b"151601")  # a torn write from an interrupted run
    run = tg(*DOWNLOAD, "--since", "2018-01-10")
    assert run.code == 0, run.output
    assert "note: cut off a partial last line (6 bytes)" in run.stderr
    assert f"extended ETH/USDT 5m on binance: {5760 - first:,} new candle(s), 5,760 in all" in (
        run.stdout
    )
    assert read_candles(path).candles == SAMPLE


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--venue", "kraken", "--symbol", "ETH/USDT", "--timeframe", "5m"),
            "error: unknown venue 'kraken'; choose one of: binance, binanceusdm",
        ),
        (
            ("--venue", "binance", "--symbol", "eth/usdt", "--timeframe", "5m"),
            "is not BASE/QUOTE or BASE/QUOTE:SETTLE in capitals, e.g. BTC/USDT or "
            "BTC/USDT:USDT (did you mean ETH/USDT?)",
        ),
        (
            ("--venue", "binance", "--symbol", "ETHUSDT", "--timeframe", "5m"),
            "error: --symbol 'ETHUSDT' is not BASE/QUOTE",
        ),
        (
            ("--venue", "binance", "--symbol", "ETH/USDT", "--timeframe", "5x"),
            "error: --timeframe: timeframe '5x' is not a number and a unit",
        ),
        (
            ("--venue", "binance", "--symbol", "ETH/USDT", "--timeframe", "7m"),
            "error: binance has no 7m candles; choose one of: 1s, 1m, 3m",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tg: CliRunner, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    run = tg("data", "download", *args, "--since", "2018-01-10")
    assert run.code == 2, run.output
    assert message in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "data").exists()  # bad input changes nothing


@pytest.mark.parametrize(
    ("since", "until", "message"),
    [
        ("2999-01-01", None, "--since 2999-01-01 00:00 UTC is in the future; give a past date"),
        ("2018-01-20", "2018-01-10", "is not before --until 2018-01-10 00:00 UTC"),
        ("last tuesday", None, "--since must be a duration such as 90d or 12h, or a date"),
        ("2018-01-10", "soon", "--until must be a duration such as 90d or 12h, or a date"),
    ],
)
def test_bad_dates_are_one_line_and_exit_2(
    tg: CliRunner, tmp_path: Path, since: str, until: str | None, message: str
) -> None:
    extra = ("--until", until) if until else ()
    run = tg(*DOWNLOAD, "--since", since, *extra)
    assert run.code == 2, run.output
    assert message in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "data").exists()


def test_an_unknown_market_at_the_venue_is_one_line(tg: CliRunner) -> None:
    run = tg(*DOWNLOAD[:5], "DOGE/USDT", "--timeframe", "5m", "--since", "2018-01-10")
    assert run.code == 2, run.output
    assert "error: binance has no market DOGE/USDT; check the symbol" in run.stderr


def test_list_shows_stored_files_and_the_samples_with_gaps(tg: CliRunner, tmp_path: Path) -> None:
    assert tg(*DOWNLOAD, "--since", "2018-01-10", "--until", "2018-01-11").code == 0
    run = tg("data", "list")
    assert run.code == 0, run.output
    lines = run.stdout.splitlines()
    row = next(line for line in lines if "binance" in line and "ETH/USDT" in line)
    assert "5m" in row
    assert "2018-01-10 04:55" in row
    assert "2018-01-10 23:55" in row
    assert "229" in row
    samples = [line for line in lines if "sample" in line]
    assert len(samples) == 4
    assert any("XRP/ETH" in s and "6 (6 missing)" in s for s in samples)
    assert any("ETH/BTC" in s and "5,760" in s and "none" in s for s in samples)
    assert f"downloads: {tmp_path / 'data' / 'candles'}" in run.stdout


def test_list_without_a_data_dir_shows_the_samples_and_creates_nothing(
    cli: CliRunner, tmp_path: Path
) -> None:
    run = cli("data", "list", env={"TRADEGUARD_DATA_DIR": str(tmp_path / "none")})
    assert run.code == 0, run.output
    assert sum("sample" in line for line in run.stdout.splitlines()) == 4
    assert not (tmp_path / "none").exists()


def test_list_flags_an_invalid_stored_file(cli: CliRunner, tmp_path: Path) -> None:
    venue_dir = tmp_path / "data" / "candles" / "binance"
    write_candles(venue_dir / "BTC_USDT-1h.csv", [], Timeframe.parse("1h"))
    (tmp_path / "data").chmod(0o700)
    bad = venue_dir / "BTC_USDT-1h.csv"
    bad.write_text(bad.read_text() + "1704067200000,1,0.5,0.9,1,1\n")
    run = cli("data", "list", env={"TRADEGUARD_DATA_DIR": str(tmp_path / "data")})
    assert run.code == 1
    assert "invalid" in run.stdout
    assert f"invalid: {bad}: line 2: low 0.9 is above high 0.5" in run.stderr


def test_check_reports_a_valid_file_its_gaps_and_a_bad_one(cli: CliRunner, tmp_path: Path) -> None:
    run = cli("data", "check", str(sample_path("ETH_BTC-5m.csv")))
    assert run.code == 0, run.output
    assert "valid, 5,760 candle(s) of 5m from 2018-01-10 04:55 UTC to 2018-01-30 04:50 UTC" in (
        run.stdout
    )
    gappy = str(sample_path("XRP_ETH-5m.csv"))
    strict = cli("data", "check", gappy)
    assert strict.code == 2
    assert "XRP_ETH-5m.csv: line 289: gap: 1 candle(s) of 5m missing" in strict.stderr
    kept = cli("data", "check", gappy, "--fill-gaps", "keep")
    assert kept.code == 0, kept.output
    assert "6 gap(s), 6 candle(s) missing, left as they are" in kept.stdout
    assert "line 289: 1 missing after 2019-10-11 23:50 UTC" in kept.stdout
    flat = cli("data", "check", gappy, "--fill-gaps", "flat")
    assert "6 flat candle(s) inserted" in flat.stdout
    assert cli("data", "check", gappy, "--fill-gaps", "zero").code == 2
    missing = cli("data", "check", str(tmp_path / "nope-1h.csv"))
    assert missing.code == 2
    assert "no such file" in missing.stderr
