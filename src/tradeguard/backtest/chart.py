"""The equity chart: equity over time above its drawdown from the running peak, as a PNG.

Drawn with matplotlib's Agg backend (no display, no GUI toolkit), in the trusted process: a bot
never runs plotting code. A long curve is thinned to at most `MAX_POINTS` points before drawing,
keeping each bucket's lowest and highest value so no drawdown disappears from the picture.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["MAX_POINTS", "save_equity_chart", "thin"]

MAX_POINTS = 4000


def thin(
    times_ms: Sequence[int], values: Sequence[float], limit: int = MAX_POINTS
) -> tuple[list[int], list[float]]:
    """At most about `limit` points: each bucket keeps its lowest and highest point, in time
    order (the shape of the curve, peaks and troughs included, survives)."""
    if len(times_ms) != len(values):
        raise ValueError("a chart needs one value per time")
    if len(values) <= limit:
        return list(times_ms), list(values)
    size = -(-len(values) // (limit // 2))
    out_t: list[int] = []
    out_v: list[float] = []
    for start in range(0, len(values), size):
        bucket = range(start, min(start + size, len(values)))
        low = min(bucket, key=values.__getitem__)
        high = max(bucket, key=values.__getitem__)
        for i in sorted({low, high}):
            out_t.append(times_ms[i])
            out_v.append(values[i])
    return out_t, out_v


def _drawdowns(values: Sequence[float]) -> list[float]:
    # Only for the picture: the reported maximum comes from risk.metrics, in Decimal.
    peak = float("-inf")
    out = []
    for value in values:
        peak = max(peak, value)
        out.append(0.0 if peak <= 0 else (value - peak) / peak * 100)
    return out


def save_equity_chart(
    path: Path, times_ms: Sequence[int], equity: Sequence[float], *, title: str, currency: str
) -> Path:
    """Write the chart of `equity` (one value per time, UTC milliseconds) to `path` (PNG,
    created 0600 like everything tradeguard writes for a user); returns `path`."""
    if not equity:
        raise ValueError("no equity to chart")
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    times, values = thin(times_ms, equity)
    when = [datetime.fromtimestamp(t / 1000, UTC) for t in times]
    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(10, 6), sharex=True, height_ratios=(3, 1), layout="constrained"
    )
    try:
        top.plot(when, values, color="#1f5fa8", linewidth=1)
        top.set_title(title)
        top.set_ylabel(f"equity ({currency})")
        top.grid(alpha=0.3)
        drawdown = _drawdowns(values)
        bottom.fill_between(when, drawdown, 0, color="#b33a3a", alpha=0.5, linewidth=0)
        bottom.set_ylabel("drawdown %")
        bottom.grid(alpha=0.3)
        figure.autofmt_xdate()
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            figure.savefig(out, format="png", dpi=100)
        tmp.replace(path)
    finally:
        plt.close(figure)
    return path
