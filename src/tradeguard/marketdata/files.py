"""Candle files: read and validate CSV and Parquet, write atomically, append for downloads.

A candle file holds one market at one timeframe, oldest first:

    timestamp_ms,open,high,low,close,volume
    1515560100000,0.0984,0.0994766,0.09828605,0.0994766,1820.544474

Reading is strict. Any of these stops with a `MarketDataError` naming the file, the line (CSV)
or row (Parquet) and the problem: a wrong header, a wrong column count, a value that is not a
plain decimal number, NaN or infinity, a negative value, a high below or a low above the other
prices, a duplicate or out-of-order timestamp, a step that is not a whole number of timeframes,
a missing newline at the end (the last line may be cut off), and a gap, unless the caller chose
a gap policy that says what to do with it. Nothing is guessed and nothing is dropped quietly.

CSV values become `Decimal` straight from their text (no float on the way). The timeframe comes
from the caller, else from the file name (`ETH_BTC-5m.csv`), else from the most common step.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import os
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

from tradeguard.core.errors import MarketDataError
from tradeguard.core.permissions import create_private_dir, open_private_file, write_fully
from tradeguard.marketdata.candles import Candle, Timeframe

__all__ = [
    "COLUMNS",
    "CSV_HEADER",
    "SUFFIXES",
    "CandleFile",
    "Gap",
    "GapPolicy",
    "append_candles",
    "candle_file_name",
    "candle_path",
    "check_sequence",
    "format_ms",
    "parse_file_name",
    "read_candles",
    "repair_torn_tail",
    "write_candles",
]

COLUMNS = ("timestamp_ms", "open", "high", "low", "close", "volume")
CSV_HEADER = ",".join(COLUMNS)
SUFFIXES = (".csv", ".parquet")

GapPolicy = Literal["error", "flat", "keep"]
"""What reading does about a gap: `error` (the default) stops; `flat` inserts flat candles at the
previous close with zero volume; `keep` leaves the gap. `flat` and `keep` list every gap in
`CandleFile.gaps`, so the caller can report them."""

_INTEGER = re.compile(r"-?[0-9]+")
_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?|-?\.[0-9]+")
_NOT_FINITE = {"nan", "-nan", "+nan", "inf", "-inf", "+inf", "infinity", "-infinity", "+infinity"}
_SYMBOL_PART = re.compile(r"[A-Z0-9]+")


@dataclass(frozen=True, slots=True)
class Gap:
    """Missing candles: `missing` of them after the candle that opened at `after_ms`; `line` is
    where the candle after the gap is (CSV line or Parquet row)."""

    after_ms: int
    missing: int
    line: int


@dataclass(frozen=True)
class CandleFile:
    """A file's candles (with flat ones inserted under `fill_gaps="flat"`), its timeframe and
    the gaps found."""

    path: Path
    timeframe: Timeframe
    candles: tuple[Candle, ...]
    gaps: tuple[Gap, ...] = ()
    filled: int = 0  # flat candles inserted

    @property
    def missing(self) -> int:
        return sum(g.missing for g in self.gaps)


def format_ms(ts_ms: int) -> str:
    """`2018-01-10 05:55 UTC` (seconds shown only when not zero)."""
    moment = datetime.fromtimestamp(ts_ms / 1000, UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC" if moment.second else "%Y-%m-%d %H:%M UTC")


# -- names and places --------------------------------------------------------------------------


def candle_file_name(symbol: str, timeframe: Timeframe, suffix: str = ".csv") -> str:
    """`BTC/USDT` -> `BTC_USDT-1h.csv`; a derivative `BTC/USDT:USDT` -> `BTC_USDT_USDT-1h.csv`
    (base, quote, settle: the name keeps everything the symbol says)."""
    match = re.fullmatch(r"([A-Z0-9]+)/([A-Z0-9]+)(?::([A-Z0-9]+))?", symbol)
    if not match:
        raise MarketDataError(
            f"symbol {symbol!r} is not BASE/QUOTE or BASE/QUOTE:SETTLE in capitals "
            "(e.g. BTC/USDT, BTC/USDT:USDT)"
        )
    return "_".join(p for p in match.groups() if p) + f"-{timeframe}{suffix}"


def parse_file_name(name: str) -> tuple[str | None, Timeframe | None]:
    """The symbol and timeframe a candle file's name gives, each None when it gives none.

    `ETH_BTC-5m.csv` -> (`ETH/BTC`, 5m); `BTC_USDT_USDT-1h.csv` -> (`BTC/USDT:USDT`, 1h);
    `XRP_USDT_PERP-1h.csv` (the bundled sample's spelling) -> (`XRP/USDT:USDT`, 1h).
    """
    stem = name
    for suffix in SUFFIXES:
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    symbol_text, _, timeframe_text = stem.rpartition("-")
    try:
        timeframe: Timeframe | None = Timeframe.parse(timeframe_text)
    except ValueError:
        return None, None
    parts = symbol_text.split("_")
    if not all(_SYMBOL_PART.fullmatch(p) for p in parts) or len(parts) not in (2, 3):
        return None, timeframe
    if len(parts) == 3 and parts[2] == "PERP":
        parts[2] = parts[1]  # a perpetual settled in its quote currency
    symbol = f"{parts[0]}/{parts[1]}" + (f":{parts[2]}" if len(parts) == 3 else "")
    return symbol, timeframe


def candle_path(data_dir: Path, venue: str, symbol: str, timeframe: Timeframe) -> Path:
    """Where downloads are stored: `<data_dir>/candles/<venue>/BTC_USDT-1h.csv`."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", venue):
        raise MarketDataError(f"venue name {venue!r} must be lowercase letters, digits and _")
    return data_dir / "candles" / venue / candle_file_name(symbol, timeframe)


# -- reading -----------------------------------------------------------------------------------


class _Where:
    """Builds `FILE: line N: problem` messages."""

    def __init__(self, path: Path, unit: str) -> None:
        self.path = path
        self.unit = unit

    def error(self, line: int | None, problem: str) -> MarketDataError:
        at = f" {self.unit} {line}:" if line is not None else ""
        return MarketDataError(f"{self.path}:{at} {problem}")


def read_candles(
    path: Path | str,
    *,
    timeframe: Timeframe | str | None = None,
    fill_gaps: GapPolicy = "error",
) -> CandleFile:
    """Read and validate a `.csv` or `.parquet` candle file; see the module docstring."""
    path = Path(path)
    tf = Timeframe.parse(timeframe) if isinstance(timeframe, str) else timeframe
    if fill_gaps not in ("error", "flat", "keep"):
        raise ValueError(f"fill_gaps must be 'error', 'flat' or 'keep', not {fill_gaps!r}")
    if path.suffix == ".csv":
        where = _Where(path, "line")
        rows = _read_csv(path, where)
    elif path.suffix == ".parquet":
        where = _Where(path, "row")
        rows = _read_parquet(path, where)
    else:
        raise MarketDataError(f"{path}: a candle file ends in .csv or .parquet")
    if tf is None:
        tf = _infer_timeframe(path, rows, where)
    candles, gaps = _check_rows(rows, tf, where, fill_gaps)
    filled = sum(g.missing for g in gaps) if fill_gaps == "flat" else 0
    return CandleFile(path, tf, tuple(candles), tuple(gaps), filled)


def _read_csv(path: Path, where: _Where) -> list[tuple[int, Candle]]:
    try:
        with path.open("r", encoding="utf-8", newline="") as f:
            text = f.read()
    except FileNotFoundError:
        raise MarketDataError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise where.error(None, "not UTF-8 text; a candle file is CSV or Parquet") from None
    except OSError as e:
        raise MarketDataError(f"{path}: cannot read ({e.strerror})") from None
    if not text:
        raise where.error(1, f"empty file; the first line must be the header {CSV_HEADER}")
    lines = text.split("\n")
    if lines[-1] != "":
        raise where.error(
            len(lines),
            "no newline at the end of the file, so the last line may be cut off (an "
            "interrupted write); if it is complete, add a newline",
        )
    lines.pop()
    lines = [line.removesuffix("\r") for line in lines]
    if lines[0].lstrip("\ufeff") != CSV_HEADER:
        raise where.error(1, f"the header is {lines[0][:80]!r}; it must be {CSV_HEADER}")
    rows: list[tuple[int, Candle]] = []
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split(",")
        if len(fields) != len(COLUMNS):
            raise where.error(
                number, f"{len(fields)} column(s), expected {len(COLUMNS)} ({CSV_HEADER})"
            )
        rows.append((number, _candle_from_text(fields, number, where)))
    return rows


def _candle_from_text(fields: Sequence[str], line: int, where: _Where) -> Candle:
    ts_text = fields[0].strip()
    if not _INTEGER.fullmatch(ts_text):
        raise where.error(line, f"timestamp_ms {ts_text[:40]!r} is not a whole number")
    ts = int(ts_text)
    if ts < 0:
        raise where.error(line, f"timestamp_ms {ts} is negative")
    values = [
        _decimal(name, text.strip(), line, where)
        for name, text in zip(COLUMNS[1:], fields[1:], strict=True)
    ]
    return _checked(Candle(ts, *values), line, where)


def _decimal(column: str, text: str, line: int, where: _Where) -> Decimal:
    if text.lower() in _NOT_FINITE:
        raise where.error(line, f"{column} is {text}; prices and volumes must be finite numbers")
    if not _NUMBER.fullmatch(text):
        raise where.error(line, f"{column} {text[:40]!r} is not a number")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise where.error(line, f"{column} {text[:40]!r} is not a number") from None
    if value < 0:
        raise where.error(line, f"{column} {text} is negative")
    return value


def _checked(candle: Candle, line: int, where: _Where) -> Candle:
    """Negative values and high/low that do not bound open and close are refused."""
    if candle.is_consistent():
        return candle
    for column in COLUMNS[1:]:
        if getattr(candle, column) < 0:
            raise where.error(line, f"{column} {getattr(candle, column)} is negative")
    if candle.low > candle.high:
        raise where.error(line, f"low {candle.low} is above high {candle.high}")
    if candle.high < max(candle.open, candle.close):
        raise where.error(
            line, f"high {candle.high} is below open {candle.open} or close {candle.close}"
        )
    raise where.error(line, f"low {candle.low} is above open {candle.open} or close {candle.close}")


def _read_parquet(path: Path, where: _Where) -> list[tuple[int, Candle]]:
    pq = _pyarrow_parquet()
    if not path.exists():
        raise MarketDataError(f"{path}: no such file")
    try:
        table = pq.read_table(path)
    except Exception as e:  # noqa: BLE001 - pyarrow raises many types for a broken file
        raise MarketDataError(f"{path}: not a readable Parquet file ({type(e).__name__})") from None
    if tuple(table.column_names) != COLUMNS:
        raise where.error(
            None, f"the columns are {', '.join(table.column_names)}; they must be {CSV_HEADER}"
        )
    columns = [table.column(name).to_pylist() for name in COLUMNS]
    rows: list[tuple[int, Candle]] = []
    for index, values in enumerate(zip(*columns, strict=True), start=1):
        rows.append((index, _candle_from_values(values, index, where)))
    return rows


def _candle_from_values(values: Sequence[Any], row: int, where: _Where) -> Candle:
    ts = values[0]
    if isinstance(ts, bool) or not isinstance(ts, int):
        raise where.error(row, f"timestamp_ms {ts!r} is not a whole number")
    if ts < 0:
        raise where.error(row, f"timestamp_ms {ts} is negative")
    decimals = []
    for column, value in zip(COLUMNS[1:], values[1:], strict=True):
        if value is None or isinstance(value, bool):
            raise where.error(row, f"{column} is missing")
        if isinstance(value, Decimal):
            if not value.is_finite():
                raise where.error(row, f"{column} is {value}; it must be a finite number")
            text = str(value)
        else:
            text = str(value)  # a float's shortest repr, the text a person would have written
        decimals.append(_decimal(column, text, row, where))
    return _checked(Candle(ts, *decimals), row, where)


def _pyarrow_parquet() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise MarketDataError(
            "Parquet candle files need pyarrow; run: pip install 'tradeguard[parquet]'"
        ) from None
    return pq


def _infer_timeframe(path: Path, rows: Sequence[tuple[int, Candle]], where: _Where) -> Timeframe:
    _, named = parse_file_name(path.name)
    if named is not None:
        return named
    steps = collections.Counter(b.ts_ms - a.ts_ms for (_, a), (_, b) in itertools.pairwise(rows))
    if not steps:
        raise where.error(
            None,
            "cannot tell the timeframe (fewer than two candles and no timeframe in the name); "
            "name the file like BTC_USDT-5m.csv or pass the timeframe",
        )
    step = steps.most_common(1)[0][0]
    for unit, size in (("w", 604_800_000), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000)):
        if step > 0 and step % size == 0 and step // size < 1000:
            return Timeframe.parse(f"{step // size}{unit}")
    raise where.error(
        None,
        f"the most common step, {step} ms, is not a timeframe (timestamps in seconds, not "
        "milliseconds?); name the file like BTC_USDT-5m.csv or pass the timeframe",
    )


def _check_rows(
    rows: Sequence[tuple[int, Candle]], timeframe: Timeframe, where: _Where, policy: GapPolicy
) -> tuple[list[Candle], list[Gap]]:
    candles: list[Candle] = []
    gaps: list[Gap] = []
    seen: dict[int, int] = {}
    previous: tuple[int, Candle] | None = None
    for line, candle in rows:
        if candle.ts_ms in seen:
            raise where.error(
                line,
                f"duplicate timestamp {candle.ts_ms} (also on {where.unit} {seen[candle.ts_ms]})",
            )
        seen[candle.ts_ms] = line
        if previous is not None:
            prev_line, prev = previous
            gap = _step_problem(prev, candle, timeframe, prev_line, line, where)
            if gap:
                if policy == "error":
                    raise where.error(
                        line,
                        f"gap: {gap} candle(s) of {timeframe} missing between "
                        f"{format_ms(prev.ts_ms)} and {format_ms(candle.ts_ms)}; fill them with "
                        "flat candles (fill_gaps='flat', --fill-gaps flat) or download again",
                    )
                gaps.append(Gap(prev.ts_ms, gap, line))
                if policy == "flat":
                    candles.extend(_flat(prev, gap, timeframe))
        candles.append(candle)
        previous = (line, candle)
    return candles, gaps


def _step_problem(
    prev: Candle, candle: Candle, timeframe: Timeframe, prev_line: int, line: int, where: _Where
) -> int:
    """The number of candles missing between two neighbours (0: none); raises on disorder."""
    step = candle.ts_ms - prev.ts_ms
    if step < 0:
        raise where.error(
            line,
            f"timestamp {candle.ts_ms} is before the one on {where.unit} {prev_line} "
            f"({prev.ts_ms}); candles must be sorted oldest first",
        )
    if step % timeframe.ms:
        raise where.error(
            line,
            f"step of {step} ms from {where.unit} {prev_line} is not a multiple of the "
            f"{timeframe} timeframe ({timeframe.ms} ms); is this the right timeframe?",
        )
    return step // timeframe.ms - 1


def _flat(prev: Candle, missing: int, timeframe: Timeframe) -> Iterable[Candle]:
    price = prev.close
    for k in range(1, missing + 1):
        yield Candle(prev.ts_ms + k * timeframe.ms, price, price, price, price, Decimal(0))


def check_sequence(
    candles: Sequence[Candle], timeframe: Timeframe, *, source: str, after_ms: int | None = None
) -> list[Gap]:
    """Validate candles about to be stored (a download page): each consistent, strictly after
    `after_ms` and its predecessor, steps a whole number of timeframes. Returns the gaps
    (`line` is the 1-based index in `candles`); raises `MarketDataError` naming `source`."""
    where = _Where(Path(source), "candle")
    gaps: list[Gap] = []
    prev_ts = after_ms
    for index, candle in enumerate(candles, start=1):
        _checked(candle, index, where)
        if prev_ts is not None:
            step = candle.ts_ms - prev_ts
            if step <= 0:
                raise where.error(
                    index,
                    f"timestamp {candle.ts_ms} is not after the previous candle's {prev_ts} "
                    "(a duplicate or out of order)",
                )
            if step % timeframe.ms:
                raise where.error(
                    index, f"step of {step} ms is not a multiple of the {timeframe} timeframe"
                )
            if step > timeframe.ms:
                gaps.append(Gap(prev_ts, step // timeframe.ms - 1, index))
        prev_ts = candle.ts_ms
    return gaps


# -- writing -----------------------------------------------------------------------------------


def _csv_lines(candles: Iterable[Candle]) -> str:
    return "".join(f"{c.ts_ms},{c.open},{c.high},{c.low},{c.close},{c.volume}\n" for c in candles)


def write_candles(path: Path | str, candles: Sequence[Candle], timeframe: Timeframe) -> None:
    """Write a whole file atomically (temp file, fsync, rename, fsync the directory): readers
    see the old file or the new one, never half of one. Candles are checked first
    (consistent, sorted, no duplicates, steps of `timeframe`); gaps are allowed."""
    path = Path(path)
    check_sequence(candles, timeframe, source=str(path))
    if path.suffix == ".csv":
        data = (CSV_HEADER + "\n" + _csv_lines(candles)).encode()
    elif path.suffix == ".parquet":
        data = _parquet_bytes(candles)
    else:
        raise MarketDataError(f"{path}: a candle file ends in .csv or .parquet")
    _ensure_dir(path.parent)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = open_private_file(temp)
    try:
        try:
            write_fully(fd, data)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise
    _fsync_dir(path.parent)


def append_candles(
    path: Path | str, candles: Sequence[Candle], timeframe: Timeframe, *, after_ms: int
) -> None:
    """Append candles to a CSV file whose last candle opened at `after_ms`, in one write,
    fsynced. The file must end with a newline (see `repair_torn_tail`)."""
    path = Path(path)
    if path.suffix != ".csv":
        raise MarketDataError(f"{path}: only CSV files can be appended to")
    check_sequence(candles, timeframe, source=str(path), after_ms=after_ms)
    if not candles:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
    try:
        write_fully(fd, _csv_lines(candles).encode())
    finally:
        os.close(fd)


def repair_torn_tail(path: Path) -> int:
    """Cut a partial last line (bytes after the last newline, left by an interrupted append)
    off a CSV file; returns how many bytes were removed (0: the file was whole)."""
    with path.open("rb+") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        chunk = min(size, 1 << 16)
        f.seek(size - chunk)
        tail = f.read(chunk)
        if tail.endswith(b"\n"):
            return 0
        cut = tail.rfind(b"\n")
        if cut < 0:
            raise MarketDataError(f"{path}: not a candle file (no complete line in its end)")
        keep = size - chunk + cut + 1
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
        return size - keep


def _parquet_bytes(candles: Sequence[Candle]) -> bytes:
    """Prices and volumes as text columns: exact, whatever their precision."""
    pq = _pyarrow_parquet()
    import pyarrow as pa

    table = pa.table(
        {
            "timestamp_ms": pa.array([c.ts_ms for c in candles], type=pa.int64()),
            **{
                name: pa.array([str(getattr(c, name)) for c in candles], type=pa.string())
                for name in COLUMNS[1:]
            },
        }
    )
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return bytes(sink.getvalue().to_pybytes())


def _ensure_dir(directory: Path) -> None:
    """Missing directories are created 0700, like the rest of the data directory."""
    if directory.is_dir():
        return
    missing = []
    current = directory
    while not current.exists():
        missing.append(current)
        current = current.parent
    for d in reversed(missing):
        create_private_dir(d)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
