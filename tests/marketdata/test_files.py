"""Candle files: every bad input names the file, the line and the problem; values are exact;
gaps are an error unless a policy says what to do; writes are atomic; Parquet round-trips."""

from __future__ import annotations

import stat
import sys
import tomllib
from decimal import Decimal
from pathlib import Path

import pytest

from tradeguard.core.errors import MarketDataError
from tradeguard.marketdata import (
    Candle,
    Timeframe,
    append_candles,
    candle_file_name,
    candle_path,
    list_samples,
    load_sample,
    read_candles,
    sample_path,
    write_candles,
)
from tradeguard.marketdata.files import CSV_HEADER, parse_file_name, repair_torn_tail

ROOT = Path(__file__).parents[2]
T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
M5 = 300_000


def row(ts: int, o: str = "1.0", h: str = "1.2", low: str = "0.9", c: str = "1.1") -> str:
    return f"{ts},{o},{h},{low},{c},10.5"


def write(tmp_path: Path, *lines: str, name: str = "BTC_USDT-5m.csv") -> Path:
    path = tmp_path / name
    path.write_text("".join(line + "\n" for line in lines))
    return path


def good_rows(n: int = 4) -> list[str]:
    return [row(T0 + i * M5) for i in range(n)]


def test_a_valid_csv_reads_exactly_without_floats(tmp_path: Path) -> None:
    path = write(tmp_path, CSV_HEADER, "1704067200000,0.1,0.30000000000000004,0.1,0.2,1e-8")
    loaded = read_candles(path)
    assert loaded.timeframe == Timeframe.parse("5m")
    (candle,) = loaded.candles
    assert candle.high == Decimal("0.30000000000000004")
    assert candle.open == Decimal("0.1")  # not 0.1000000000000000055511151231257827
    assert candle.volume == Decimal("1e-8")
    assert loaded.gaps == ()


@pytest.mark.parametrize(
    ("lines", "line", "problem"),
    [
        (["timestamp,open,high,low,close,volume"], 1, "the header is"),
        ([CSV_HEADER, row(T0), "1704067500000,1,2,0.5,1"], 3, "5 column(s), expected 6"),
        ([CSV_HEADER, row(T0), "1704067500000,1,2,0.5,1,1,1"], 3, "7 column(s)"),
        ([CSV_HEADER, row(T0), ""], 3, "1 column(s)"),
        ([CSV_HEADER, "2024-01-01,1,2,0.5,1,1"], 2, "timestamp_ms '2024-01-01' is not a whole"),
        ([CSV_HEADER, row(T0), row(T0 + M5, o="abc")], 3, "open 'abc' is not a number"),
        ([CSV_HEADER, row(T0), row(T0 + M5, h="1,5")], 3, "7 column(s)"),
        ([CSV_HEADER, row(T0, c="NaN")], 2, "close is NaN"),
        ([CSV_HEADER, row(T0, h="inf")], 2, "high is inf"),
        ([CSV_HEADER, row(T0, h="Infinity")], 2, "high is Infinity"),
        ([CSV_HEADER, row(T0, low="-0.5")], 2, "low -0.5 is negative"),
        ([CSV_HEADER, "1704067200000,1,2,0.5,1,-3"], 2, "volume -3 is negative"),
        ([CSV_HEADER, "-5,1,2,0.5,1,3"], 2, "timestamp_ms -5 is negative"),
        ([CSV_HEADER, row(T0, h="1.05")], 2, "high 1.05 is below open 1.0 or close 1.1"),
        ([CSV_HEADER, row(T0, low="1.05")], 2, "low 1.05 is above open 1.0 or close 1.1"),
        ([CSV_HEADER, row(T0, h="0.5", low="2")], 2, "low 2 is above high 0.5"),
        ([CSV_HEADER, row(T0), row(T0 + M5), row(T0 + M5)], 4, "duplicate timestamp"),
        (
            [CSV_HEADER, row(T0 + M5), row(T0 + 2 * M5), row(T0)],
            4,
            "is before the one on line 3",
        ),
        ([CSV_HEADER, row(T0), row(T0 + 7 * 60_000)], 3, "is not a multiple of the 5m"),
        ([CSV_HEADER, row(T0), row(T0 + 3 * M5)], 3, "gap: 2 candle(s) of 5m missing"),
    ],
)
def test_each_bad_input_names_file_line_and_problem(
    tmp_path: Path, lines: list[str], line: int, problem: str
) -> None:
    path = write(tmp_path, *lines)
    with pytest.raises(MarketDataError) as raised:
        read_candles(path)
    message = raised.value.message
    assert message.startswith(f"{path}: line {line}: "), message
    assert problem in message


def test_a_duplicate_names_both_lines(tmp_path: Path) -> None:
    path = write(tmp_path, CSV_HEADER, row(T0), row(T0 + M5), row(T0 + M5))
    with pytest.raises(
        MarketDataError, match=r"line 4: duplicate timestamp \d+ \(also on line 3\)"
    ):
        read_candles(path)


def test_a_cut_off_last_line_is_refused_not_read_short(tmp_path: Path) -> None:
    path = tmp_path / "BTC_USDT-5m.csv"
    path.write_text(f"{CSV_HEADER}\n{row(T0)}\n{T0 + M5},1.0,1.2,0.9,1.1,10")  # volume cut
    with pytest.raises(MarketDataError, match=r"line 3: no newline at the end"):
        read_candles(path)


def test_empty_file_and_wrong_suffix_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "BTC_USDT-5m.csv").write_text("")
    with pytest.raises(MarketDataError, match="line 1: empty file"):
        read_candles(tmp_path / "BTC_USDT-5m.csv")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(MarketDataError, match=r"ends in \.csv or \.parquet"):
        read_candles(tmp_path / "x.json")
    with pytest.raises(MarketDataError, match="no such file"):
        read_candles(tmp_path / "nope-1h.csv")


def test_crlf_line_endings_are_read(tmp_path: Path) -> None:
    path = tmp_path / "BTC_USDT-5m.csv"
    path.write_bytes(f"{CSV_HEADER}\r\n{row(T0)}\r\n".encode())
    assert len(read_candles(path).candles) == 1


def test_the_timeframe_comes_from_the_caller_the_name_or_the_most_common_step(
    tmp_path: Path,
) -> None:
    lines = [CSV_HEADER, row(T0), row(T0 + 3_600_000), row(T0 + 7_200_000)]
    assert read_candles(write(tmp_path, *lines, name="a.csv")).timeframe.text == "1h"
    assert read_candles(write(tmp_path, *lines, name="X_Y-1h.csv")).timeframe.text == "1h"
    # the caller's 30m makes the hour steps gaps
    with pytest.raises(MarketDataError, match="gap: 1 candle"):
        read_candles(tmp_path / "a.csv", timeframe="30m")
    # the file name says 5m, the steps say 1h: not silently accepted
    with pytest.raises(MarketDataError, match="gap: 11 candle"):
        read_candles(write(tmp_path, *lines, name="X_Y-5m.csv"))


def test_a_timeframe_that_cannot_be_told_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(MarketDataError, match="cannot tell the timeframe"):
        read_candles(write(tmp_path, CSV_HEADER, row(T0), name="a.csv"))
    seconds = [CSV_HEADER, row(1_704_067_200), row(1_704_067_500)]
    with pytest.raises(MarketDataError, match="in seconds, not milliseconds"):
        read_candles(write(tmp_path, *seconds, name="b.csv"))


def test_gaps_flat_fill_reports_what_it_inserted(tmp_path: Path) -> None:
    path = write(tmp_path, CSV_HEADER, row(T0), row(T0 + M5), row(T0 + 4 * M5), row(T0 + 6 * M5))
    loaded = read_candles(path, fill_gaps="flat")
    assert [c.ts_ms for c in loaded.candles] == [T0 + i * M5 for i in range(7)]
    assert loaded.filled == 3
    assert [(g.after_ms, g.missing, g.line) for g in loaded.gaps] == [
        (T0 + M5, 2, 4),
        (T0 + 4 * M5, 1, 5),
    ]
    flat = loaded.candles[2]
    assert flat == Candle(T0 + 2 * M5, *[Decimal("1.1")] * 4, Decimal(0))
    kept = read_candles(path, fill_gaps="keep")
    assert len(kept.candles) == 4
    assert kept.filled == 0
    assert kept.missing == 3


def test_an_unknown_gap_policy_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, CSV_HEADER, *good_rows())
    with pytest.raises(ValueError, match="fill_gaps"):
        read_candles(path, fill_gaps="zero")  # type: ignore[arg-type]


def test_write_is_atomic_private_and_reads_back(tmp_path: Path) -> None:
    candles = list(read_candles(write(tmp_path, CSV_HEADER, *good_rows(5))).candles)
    dest = tmp_path / "store" / "bin" / "BTC_USDT-5m.csv"
    write_candles(dest, candles, Timeframe.parse("5m"))
    assert read_candles(dest).candles == tuple(candles)
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    assert stat.S_IMODE(dest.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(dest.parent.parent.stat().st_mode) == 0o700
    assert sorted(p.name for p in dest.parent.iterdir()) == ["BTC_USDT-5m.csv"]  # no temp left


def test_write_refuses_bad_sequences_and_leaves_the_old_file(tmp_path: Path) -> None:
    candles = list(read_candles(write(tmp_path, CSV_HEADER, *good_rows(3))).candles)
    dest = tmp_path / "out-5m.csv"
    write_candles(dest, candles, Timeframe.parse("5m"))
    before = dest.read_bytes()
    with pytest.raises(MarketDataError, match="not after the previous"):
        write_candles(dest, [candles[1], candles[0]], Timeframe.parse("5m"))
    with pytest.raises(MarketDataError, match="not after the previous"):
        write_candles(dest, [candles[0], candles[0]], Timeframe.parse("5m"))
    bad = Candle(T0 + 9 * M5, Decimal(2), Decimal(1), Decimal(1), Decimal(1), Decimal(1))
    with pytest.raises(MarketDataError, match="below open"):
        write_candles(dest, [*candles, bad], Timeframe.parse("5m"))
    assert dest.read_bytes() == before


def test_append_continues_a_file_and_checks_the_boundary(tmp_path: Path) -> None:
    candles = list(read_candles(write(tmp_path, CSV_HEADER, *good_rows(6))).candles)
    dest = tmp_path / "out-5m.csv"
    tf = Timeframe.parse("5m")
    write_candles(dest, candles[:3], tf)
    with pytest.raises(MarketDataError, match="not after the previous"):
        append_candles(dest, candles[2:], tf, after_ms=candles[2].ts_ms)
    append_candles(dest, candles[3:], tf, after_ms=candles[2].ts_ms)
    assert read_candles(dest).candles == tuple(candles)


def test_a_torn_tail_is_cut_to_the_last_whole_line(tmp_path: Path) -> None:
    path = write(tmp_path, CSV_HEADER, *good_rows(2))
    whole = path.read_bytes()
    with path.open("ab") as f:
        f.write(b"1704067800000,1.0,1.")
    assert repair_torn_tail(path) == len(b"1704067800000,1.0,1.")
    assert path.read_bytes() == whole
    assert repair_torn_tail(path) == 0


def test_parquet_round_trip_is_exact(tmp_path: Path) -> None:
    candles = load_sample("XRP_USDT_PERP-1h.csv").candles
    dest = tmp_path / "XRP_USDT_USDT-1h.parquet"
    write_candles(dest, candles, Timeframe.parse("1h"))
    assert read_candles(dest).candles == candles


def test_parquet_with_float_columns_reads_via_their_text(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "timestamp_ms": [T0, T0 + M5],
            "open": [0.1, 0.2],
            "high": [0.3, 0.3],
            "low": [0.1, 0.1],
            "close": [0.2, 0.2],
            "volume": [5.0, 1e-05],
        }
    )
    path = tmp_path / "a-5m.parquet"
    pq.write_table(table, path)
    loaded = read_candles(path).candles
    assert loaded[0].open == Decimal("0.1")
    assert loaded[1].volume == Decimal("0.00001")


@pytest.mark.parametrize(
    ("column", "values", "problem"),
    [
        ("close", [0.2, float("nan")], "row 2: close is nan"),
        ("high", [0.3, 0.15], "row 2: high 0.15 is below open 0.2"),
        ("volume", [1.0, -1.0], "row 2: volume -1.0 is negative"),
    ],
)
def test_bad_parquet_names_the_row(
    tmp_path: Path, column: str, values: list[float], problem: str
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    data: dict[str, list[float] | list[int]] = {
        "timestamp_ms": [T0, T0 + M5],
        "open": [0.1, 0.2],
        "high": [0.3, 0.3],
        "low": [0.1, 0.1],
        "close": [0.2, 0.2],
        "volume": [5.0, 1.0],
    }
    data[column] = values
    path = tmp_path / "a-5m.parquet"
    pq.write_table(pa.table(data), path)
    with pytest.raises(MarketDataError) as raised:
        read_candles(path)
    assert raised.value.message == f"{path}: {problem}" or problem in raised.value.message


def test_parquet_with_wrong_columns_or_garbage(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "a-5m.parquet"
    pq.write_table(pa.table({"date": [1], "open": [1.0]}), path)
    with pytest.raises(MarketDataError, match="the columns are date, open; they must be"):
        read_candles(path)
    path.write_bytes(b"not parquet at all")
    with pytest.raises(MarketDataError, match="not a readable Parquet file"):
        read_candles(path)


def test_without_pyarrow_parquet_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    (tmp_path / "a-5m.parquet").write_bytes(b"x")
    with pytest.raises(MarketDataError, match=r"pip install 'tradeguard\[parquet\]'"):
        read_candles(tmp_path / "a-5m.parquet")


def test_file_names_and_places() -> None:
    tf = Timeframe.parse("1h")
    assert candle_file_name("BTC/USDT", tf) == "BTC_USDT-1h.csv"
    assert candle_file_name("BTC/USDT:USDT", tf) == "BTC_USDT_USDT-1h.csv"
    for bad in ("btc/usdt", "BTCUSDT", "BTC/USDT:USDT-250328", "../X/Y"):
        with pytest.raises(MarketDataError, match="is not BASE/QUOTE"):
            candle_file_name(bad, tf)
    assert parse_file_name("BTC_USDT_USDT-1h.csv") == ("BTC/USDT:USDT", tf)
    assert parse_file_name("XRP_USDT_PERP-1h.csv") == ("XRP/USDT:USDT", tf)
    assert parse_file_name("ETH_BTC-5m.parquet") == ("ETH/BTC", Timeframe.parse("5m"))
    assert parse_file_name("notes.csv") == (None, None)
    data = Path("/d")
    assert candle_path(data, "binance", "BTC/USDT", tf) == Path(
        "/d/candles/binance/BTC_USDT-1h.csv"
    )
    with pytest.raises(MarketDataError, match="venue name"):
        candle_path(data, "../etc", "BTC/USDT", tf)


# -- the bundled sample ------------------------------------------------------------------------

CLEAN_SAMPLES = {
    "ETH_BTC-5m.csv": 5760,
    "XRP_USDT_PERP-1h.csv": 100,
    "XRP_USDT_PERP-5m.csv": 1999,
}


def test_the_bundled_samples_are_listed() -> None:
    assert list_samples() == sorted([*CLEAN_SAMPLES, "XRP_ETH-5m.csv"])
    assert (sample_path("ETH_BTC-5m.csv").parent / "README.md").is_file()
    with pytest.raises(MarketDataError, match=r"no bundled sample 'NOPE\.csv'; the samples are"):
        sample_path("NOPE.csv")


@pytest.mark.parametrize(("name", "rows"), sorted(CLEAN_SAMPLES.items()))
def test_clean_samples_pass_strict_validation(name: str, rows: int) -> None:
    loaded = load_sample(name)
    assert len(loaded.candles) == rows
    assert loaded.gaps == ()


def test_the_gappy_sample_fails_strictly_and_its_six_gaps_are_reported() -> None:
    with pytest.raises(MarketDataError, match=r"XRP_ETH-5m.csv: line 289: gap: 1 candle"):
        load_sample("XRP_ETH-5m.csv")
    filled = load_sample("XRP_ETH-5m.csv", fill_gaps="flat")
    assert [g.line for g in filled.gaps] == [289, 311, 315, 579, 659, 698]
    assert filled.filled == 6
    assert len(filled.candles) == 706 + 6


def test_the_samples_are_verbatim_copies_of_the_shared_data() -> None:
    shared = Path("/work/shared/data/candles")
    if not shared.is_dir():
        pytest.skip("the shared data set is not on this machine")
    for name in list_samples():
        assert sample_path(name).read_bytes() == (shared / name).read_bytes()


def test_every_sample_file_is_in_the_package_data() -> None:
    """A file the wheel would leave out passes here and fails for users: check the globs."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = config["tool"]["setuptools"]["package-data"]["tradeguard"]
    package = ROOT / "src" / "tradeguard"
    covered = {p for pattern in globs for p in package.glob(pattern)}
    folder = package / "marketdata" / "sample"
    assert set(folder.iterdir()) - {folder / "__pycache__"} <= covered
