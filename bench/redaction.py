"""Log redaction cost: the full logging pipeline with tradeguard's redactor, without it, and with
a naive redactor (one combined regex of every pattern, applied to every line), in one run.

The pipeline is the stdlib one tradeguard uses: a logger, a formatter with a timestamp, and a
FileHandler writing every record to a file on disk. Time is process CPU time (user + system),
summed over many short rounds in which the three pipelines take turns, so that noise from
neighbours on a shared machine falls on all three alike.

Two streams of 1,000,000 lines each, both with about 2% carrying a secret (the positive lines
of tests/data/redaction/corpus.jsonl, filled with freshly generated secrets):
- representative: 80% routine lines of a trading service and its libraries, 18% the corpus's
  hard negatives (hashes, ids, tx hashes, public keys, prose); the targets apply to this one;
- adversarial: 98% hard negatives, the worst case, reported beside it.

`--python-guard` measures the redactor as it runs where the C guard was not built.

Targets (issue 2): redactor throughput >= 5x the naive baseline, and the redactor adds <= 30%
to the cost of plain logging. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

if "--python-guard" in sys.argv:  # before tradeguard is imported: as on a host with no compiler
    sys.modules["tradeguard.secrets._guard"] = None  # type: ignore[assignment]

from tests.fakes import Fakes, fill  # noqa: E402 - after the path is set

from _report import emit  # noqa: E402 - bench/ is on sys.path: the scripts run from there
from tradeguard.secrets import guards, redact  # noqa: E402

CORPUS = ROOT / "tests" / "data" / "redaction" / "corpus.jsonl"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# What a trading service and its libraries log all day (tradeguard, ccxt, httpx, uvicorn,
# sqlalchemy, alembic, asyncio): ids, prices, timestamps, URLs, SQL.
ROUTINE_LINES = [
    "order accepted client_order_id=tg-{i:08d} symbol=BTC/USDT side=buy qty=0.0{d} price=6432{d}.5",
    "fill order=tg-{i:08d} qty=0.0{d} price=6431{d}.25 fee=0.0000{d} BNB liquidity=maker",
    "order tg-{i:08d} cancelled by bot sma-cross-{d} after 30 s unfilled",
    "risk check passed bot=sma-cross-{d} notional=1234.{d}0 limit=5000 open_orders={d}",
    "risk: order tg-{i:08d} denied reason=MAX_NOTIONAL value=5200.{d} limit=5000",
    "candle BTC/USDT 5m o=64210.{d} h=64300.0 l=64190.5 c=6425{d}.0 v=12.{d}",
    "position BTC/USDT qty=0.0{d} entry=64012.{d} mark=6425{d}.0 upnl=2.{d}1",
    "breaker status bot=sma-cross-{d} daily_loss=1.{d}% max_daily_loss=5% drawdown=3.{d}%",
    "strategy signal: fast SMA crossed above slow SMA at 64250.{d}, entering long",
    "gateway: bot 3f2c9a1e-{i:04d}-4c1b-9d2e-0a1b2c3d4e5f connected, 3 orders in flight",
    "bot 3f2c9a1e-{i:04d}-4c1b-9d2e-0a1b2c3d4e5f heartbeat rss=41.{d} MB cpu=0.{d}%",
    "audit appended seq={i} event=order.intent subject=tg-{i:08d}",
    "vault: credential binance-main used by bot sma-cross-{d} (3 fields)",
    '127.0.0.1:5{d}312 - "GET /api/bots/{i}/orders?limit=50 HTTP/1.1" 200',
    '127.0.0.1:5{d}312 - "POST /api/bots/{i}/stop HTTP/1.1" 202',
    "HTTP Request: GET https://api.binance.com/api/v3/klines?symbol=BTCUSDT&interval=1m "
    '"HTTP/1.1 200 OK"',
    "binance GET https://api.binance.com/api/v3/exchangeInfo 200 in 8{d} ms",
    "SELECT orders.id, orders.client_order_id, orders.status FROM orders WHERE orders.bot_id = ?",
    "[generated in 0.000{d}1s] ('tg-{i:08d}', 'BTC/USDT', 'buy', '0.0{d}')",
    "INSERT INTO fills (order_id, qty, price, fee, ts) VALUES (?, ?, ?, ?, ?)",
    "Running upgrade 000{d} -> 000{d}, add fills table",
    "Executing <Task pending name='bot-{d}' coro=<Supervisor.watch()>> took 0.10{d} seconds",
    "websocket ticket issued for user {d}, expires in 30 s",
    "user {d} logged in from 203.0.113.{d} (known address)",
    "scheduler: daily permission check for 4 credentials finished in 1.{d} s",
]


def _corpus_lines(label: str, seeds: int) -> list[tuple[str, list[str]]]:
    out = []
    for raw in CORPUS.read_text().splitlines():
        entry = json.loads(raw)
        if entry["label"] != label:
            continue
        for seed in range(seeds):
            out.append(fill(entry["input"], Fakes(seed=seed)))
    return out


Pool = tuple[list[str], list[list[str]]]


def build_pool(size: int, secret_fraction: float, hard_fraction: float) -> Pool:
    """`size` lines: `secret_fraction` with secrets, `hard_fraction` hard negatives, the rest
    routine; and the secret values of each line."""
    rng = random.Random(20261122)
    positives = _corpus_lines("positive", seeds=3)
    hard_negatives = [text for text, _ in _corpus_lines("negative", seeds=3)]
    lines, secrets = [], []
    for i in range(size):
        draw = rng.random()
        if draw < secret_fraction:
            text, values = rng.choice(positives)
        elif draw < secret_fraction + hard_fraction:
            text, values = rng.choice(hard_negatives), []
        else:
            text, values = rng.choice(ROUTINE_LINES).format(i=i, d=i % 10), []
        lines.append(text)
        secrets.append(values)
    return lines, secrets


# -- the three pipelines -----------------------------------------------------------------------

NAIVE = re.compile(
    "|".join(
        [
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----",
            r"\bbearer\s+[A-Za-z0-9\-._~+/]+=*",
            r"\bbasic\s+[A-Za-z0-9+/]+=*",
            r"\beyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*",
            r"://[^\s:/@]*:[^\s@/]+@",
            r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_-]+",
            r"xox[abposre]-[A-Za-z0-9-]+",
            r"\d{8,10}:[A-Za-z0-9_-]{35}",
            r"(?:AKIA|ASIA)[0-9A-Z]{16}",
            r"(?:key|secret|priv|seed|signer)[\w.-]*[\"']?\s*[:=]?\s*[\"']?(?:0x)?[0-9a-f]{64}",
            r"\b(?:[a-z]{3,8} ){11,23}[a-z]{3,8}\b",
            r"[\w.-]*(?:key|secret|token|passw|passphrase|pwd|signature|auth|cookie)[\w.-]*"
            r"[\"']?\s*[:=]\s*[\"']?[^\s&\"',;)\]}]+",
        ]
    ),
    re.I | re.S,
)


def naive_redact(text: str) -> str:
    return NAIVE.sub("[REDACTED]", text)


_original_handle = logging.Logger.handle


def _naive_handle(self: logging.Logger, record: logging.LogRecord) -> Any:
    record.msg = naive_redact(record.getMessage())
    record.args = None
    return _original_handle(self, record)


def use(pipeline: str) -> None:
    redact.uninstall()
    if pipeline == "filter":
        redact.install()
    elif pipeline == "naive":
        logging.Logger.handle = _naive_handle  # type: ignore[method-assign]


def _logger(path: Path) -> logging.Logger:
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    return logging.getLogger("tradeguard.gateway")


def measure(log: logging.Logger, pool: list[str], total: int, label: str) -> dict[str, float]:
    """Lines per CPU-second of each pipeline over `total` lines."""
    pipelines = ("plain", "filter", "naive")
    seconds = dict.fromkeys(pipelines, 0.0)
    rounds = max(1, total // len(pool))
    for r in range(rounds):
        for name in pipelines[r % 3 :] + pipelines[: r % 3]:  # rotate the order each round
            use(name)
            start = time.process_time()
            for line in pool:
                log.info("%s", line)
            seconds[name] += time.process_time() - start
        if (r + 1) % 10 == 0 or r + 1 == rounds:
            print(f"{label}: round {r + 1}/{rounds}", file=sys.stderr)
    use("plain")
    return {name: rounds * len(pool) / s for name, s in seconds.items()}


def leaks(pool: list[str], secrets: list[list[str]], fn: Callable[[str], str]) -> int:
    return sum(value in fn(line) for line, vs in zip(pool, secrets, strict=True) for value in vs)


def run_stream(
    log: logging.Logger, args: argparse.Namespace, hard: float, label: str
) -> dict[str, Any]:
    pool, secrets = build_pool(min(args.pool, args.lines), args.secret_fraction, hard)
    rates = measure(log, pool, args.lines, label)
    overhead = rates["plain"] / rates["filter"] - 1
    vs_naive = rates["filter"] / rates["naive"]
    return {
        "lines_per_pipeline": (args.lines // len(pool)) * len(pool),
        "mix": {
            "secret": round(sum(bool(v) for v in secrets) / len(pool), 4),
            "hard_negative": hard,
            "routine": round(1 - hard - args.secret_fraction, 4),
        },
        "plain_lines_per_s": round(rates["plain"]),
        "filter_lines_per_s": round(rates["filter"]),
        "naive_lines_per_s": round(rates["naive"]),
        "filter_vs_naive": round(vs_naive, 2),
        "filter_overhead_pct": round(100 * overhead, 1),
        "secret_values_in_pool": sum(len(v) for v in secrets),
        "secret_values_leaked_filter": leaks(pool, secrets, redact.redact_text),
        "secret_values_leaked_naive": leaks(pool, secrets, naive_redact),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000, help="lines per pipeline")
    parser.add_argument("--pool", type=int, default=10_000, help="distinct lines, cycled")
    parser.add_argument("--secret-fraction", type=float, default=0.02)
    parser.add_argument(
        "--python-guard", action="store_true", help="without the C guard (a host with no compiler)"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        log = _logger(Path(tmp) / "bench.log")
        representative = run_stream(log, args, 0.18, "representative")
        adversarial = run_stream(log, args, 1 - args.secret_fraction, "adversarial")
    result = {
        "benchmark": "redaction",
        "pipeline": "logger -> Formatter(asctime levelname name message) -> FileHandler",
        "guard": "c" if guards.ACCELERATED else "python",
        "clock": "process CPU time (user+system), pipelines interleaved in rounds",
        "representative": representative,
        "adversarial": adversarial,
        "targets": {"filter_vs_naive_min": 5.0, "filter_overhead_pct_max": 30.0},
        "met": {
            "filter_vs_naive": representative["filter_vs_naive"] >= 5.0,
            "filter_overhead": representative["filter_overhead_pct"] <= 30.0,
            "no_leaks": representative["secret_values_leaked_filter"] == 0
            and adversarial["secret_values_leaked_filter"] == 0,
        },
    }
    emit(result)


if __name__ == "__main__":
    main()
