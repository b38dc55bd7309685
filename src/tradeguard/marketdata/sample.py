"""The candle files bundled with tradeguard (`marketdata/sample/`; its README.md gives their
provenance): real exchange candles from the Freqtrade project's public test data."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from tradeguard.core.errors import MarketDataError
from tradeguard.marketdata.files import SUFFIXES, CandleFile, GapPolicy, read_candles

__all__ = ["list_samples", "load_sample", "sample_path"]


def _directory() -> Path:
    folder = resources.files("tradeguard.marketdata").joinpath("sample")
    if not isinstance(folder, Path):
        raise MarketDataError(
            "the bundled sample candles are not on the file system (tradeguard is installed "
            "as a zip); install it as a regular package"
        )
    return folder


def list_samples() -> list[str]:
    """The bundled files' names, sorted: `ETH_BTC-5m.csv`, ..."""
    return sorted(p.name for p in _directory().iterdir() if p.suffix in SUFFIXES)


def sample_path(name: str) -> Path:
    """The path of a bundled file by name; unknown names raise `MarketDataError`."""
    if name not in list_samples():
        raise MarketDataError(
            f"no bundled sample {name!r}; the samples are: {', '.join(list_samples())}"
        )
    return _directory() / name


def load_sample(name: str, *, fill_gaps: GapPolicy = "error") -> CandleFile:
    """Read and validate a bundled file (see `read_candles`)."""
    return read_candles(sample_path(name), fill_gaps=fill_gaps)
