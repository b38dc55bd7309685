"""Audit log costs: durable appends (one at a time and under group commit), `verify` over a
million entries, and inclusion proofs, on SQLite and PostgreSQL, each beside a baseline measured
in the same run.

- appends, one caller: `AuditLog.append` called sequentially by one thread, each call returning
  once its entry is committed; with window=0 and with the default group-commit window (2 ms: a
  lone caller should not pay it, the writer waits only while other callers are inside append).
- appends, 64 callers: 64 threads calling `append`, and 64 asyncio tasks awaiting
  `append_async` (when `AuditLog` has it), default window: the writer commits what arrives
  together in one transaction.
- baseline: the same rows (read back from the log just written) inserted with the bare driver
  (sqlite3 with the engine's pragmas: WAL, synchronous=FULL, secure_delete; psycopg), one row
  per transaction and 64 rows per transaction: what the disk and the database allow.
- verify: `verify()` of a log of 1,000,000 entries (--quick: 20,000) with its defaults (here
  one worker process per CPU: this process runs no other thread at that point), then with
  processes=1 (what a multi-threaded caller such as the server gets); wall time, and the CPU
  time of this process and its workers per entry. The log is built once through `AuditLog`
  (asyncio tasks, or threads, with a 50 ms window so batches are large),
  and the SQLite file and its keyring are kept under bench/results/.cache/ keyed by
  CACHE_VERSION and the size, so reruns skip the build (whose time is reported with the cache
  state). On PostgreSQL the same log is copied (COPY) into a fresh schema of the `test`
  database, dropped afterwards.
- inclusion proofs: for 1,000 random seqs of that log, `proofs.inclusion()` (the whole request:
  connection, latest head, entry, proof) and `merkle.inclusion_proof()` over one `DbSource`
  (the proof alone); median and p99. Every proof is checked against the signed head, untimed.

Targets: 64 concurrent appenders >= 20,000 appends/s (set for SQLite, applied to PostgreSQL
too); verify >= 500,000 entries/s. Figures without a target of their own are held against a
peer figure from /work/shared/BENCHMARKS.md (one caller: the gateway prototype's fsync per audit
record, sequential, 3.2k/s) or against our own bound (a whole inclusion-proof request: median
<= 10 ms, p99 <= 50 ms), named in each figure. Prints one JSON object; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from sqlalchemy.engine import make_url

from _postgres import postgres_schema
from _report import emit  # bench/ is on sys.path: the scripts run from there
from tradeguard.audit import AuditKeys, AuditLog, AuditOptions, tables, verify
from tradeguard.audit.entry import leaf_data
from tradeguard.audit.keys import entry_mac
from tradeguard.audit.merkle import inclusion_proof, leaf_hash, verify_inclusion
from tradeguard.audit.proofs import DbSource, check_proof, inclusion
from tradeguard.core.events import EventName
from tradeguard.crypto.keyring import parse_keyring
from tradeguard.crypto.keyring_file import init_keyring_file
from tradeguard.secrets.files import read_secret_file
from tradeguard.store import DatabaseTarget, connect_check, create_engine, resolve_database, upgrade
from tradeguard.store.engine import SQLITE_BUSY_TIMEOUT_MS

POSTGRES_URL = os.environ.get(
    "TG_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
RESULTS = Path(__file__).parent / "results"
CACHE_VERSION = "2"  # bump when the entry format or the schema changes what a log looks like
EVENT = EventName.VAULT_CREDENTIAL_USED
CALLERS = 64
BUILD_WINDOW_S = 0.05
COLUMNS = ("seq", "ts", "event", "actor", "subject", "ip", "details", "leaf_hash", "key_version",
           "mac")  # fmt: skip

TARGET_GROUP_COMMIT_PER_S = 20_000
TARGET_VERIFY_PER_S = 500_000
TARGET_PROOF_MEDIAN_MS = 10.0
TARGET_PROOF_P99_MS = 50.0
# /work/shared/BENCHMARKS.md, "Order path" (measured on this machine kind): a stdlib gateway
# prototype writing a SHA-256 chained audit record per order, fsync per record.
PEER_FSYNC_SEQUENTIAL_PER_S = 3_200
PEER_FSYNC_PIPELINED_PER_S = 4_600
PEER = {
    "gateway_fsync_per_audit_record_sequential_per_s": PEER_FSYNC_SEQUENTIAL_PER_S,
    "gateway_fsync_per_audit_record_pipelined_per_s": PEER_FSYNC_PIPELINED_PER_S,
    "tamper_evident_history_tree_per_s_per_core_2009": 1_750,
    "source": "/work/shared/BENCHMARKS.md (gateway: measured on this machine kind; history "
    "tree: Crosby & Wallach, USENIX Security 2009)",
}
SEQUENTIAL_TARGET_SOURCE = (
    "peer: gateway prototype, fsync per audit record, sequential (BENCHMARKS.md)"
)

console = Console(stderr=True)


def say(message: str) -> None:
    console.print(message, highlight=False)


def _median_p99(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )


# -- stores and keys -------------------------------------------------------------------------


def new_keyring_file(path: Path) -> Path:
    init_keyring_file(path)
    return path


def load_keys(path: Path) -> AuditKeys:
    keyring = parse_keyring(read_secret_file("TRADEGUARD_AUDIT_KEY_FILE", path), "bench")
    try:
        return AuditKeys(keyring)
    finally:
        keyring.wipe()


def opened(target: DatabaseTarget) -> sa.Engine:
    engine = create_engine(target)
    connect_check(engine, target)
    upgrade(engine, target)
    return engine


def private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def postgres_unreachable(base: str) -> str | None:
    url = make_url(base)
    try:
        libpq = url.set(drivername="postgresql").render_as_string(hide_password=False)
        psycopg.connect(libpq, connect_timeout=3).close()
    except psycopg.OperationalError as e:
        return f"PostgreSQL at {url.host} unreachable: {str(e).strip().splitlines()[0]}"
    return None


# -- appends -----------------------------------------------------------------------------------


def _details(caller: int, i: int) -> dict[str, object]:
    return {"caller": caller, "i": i, "venue": "binance"}


def _append(log: AuditLog, caller: int, i: int) -> int:
    return log.append(
        EVENT, actor=f"user:{caller}", subject=f"cred-{caller}", details=_details(caller, i)
    )


def _figure(appends: int, seconds: float, target: int, source: str) -> dict[str, Any]:
    rate = appends / seconds
    return {
        "appends": appends,
        "seconds": round(seconds, 3),
        "appends_per_s": round(rate),
        "target_per_s": target,
        "target_source": source,
        "meets_target": rate >= target,
    }


def bench_sequential(engine: sa.Engine, keys: AuditKeys, n: int, window: float) -> dict[str, Any]:
    latencies = []
    with AuditLog(engine, keys, options=AuditOptions(window=window)) as log:
        for i in range(min(20, n)):  # warm up: connection, statement caches
            _append(log, -1, i)
        start = time.perf_counter()
        for i in range(n):
            before = time.perf_counter_ns()
            _append(log, 0, i)
            latencies.append((time.perf_counter_ns() - before) / 1000)
        seconds = time.perf_counter() - start
    median, p99 = _median_p99(latencies)
    return {
        "window_s": window,
        **_figure(n, seconds, PEER_FSYNC_SEQUENTIAL_PER_S, SEQUENTIAL_TARGET_SOURCE),
        "latency_median_us": round(median),
        "latency_p99_us": round(p99),
    }


def bench_threads(engine: sa.Engine, keys: AuditKeys, per_caller: int) -> dict[str, Any]:
    barrier = threading.Barrier(CALLERS + 1)
    errors: list[BaseException] = []
    seqs: list[int] = []
    lock = threading.Lock()

    def caller(number: int) -> None:
        barrier.wait()
        try:
            got = [_append(log, number, i) for i in range(per_caller)]
        except BaseException as e:  # noqa: BLE001 - re-raised by the main thread
            errors.append(e)
            return
        with lock:
            seqs.extend(got)

    with AuditLog(engine, keys) as log:
        _append(log, -1, 0)
        threads = [threading.Thread(target=caller, args=(c,)) for c in range(CALLERS)]
        for thread in threads:
            thread.start()
        barrier.wait()
        start = time.perf_counter()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - start
    if errors:
        raise errors[0]
    _check_dense(seqs)
    return {
        "callers": CALLERS,
        "window_s": AuditOptions().window,
        **_figure(len(seqs), seconds, TARGET_GROUP_COMMIT_PER_S, "brief: >= 20,000/s"),
    }


def bench_asyncio(engine: sa.Engine, keys: AuditKeys, per_caller: int) -> dict[str, Any]:
    if not hasattr(AuditLog, "append_async"):
        return {"skipped": "AuditLog has no append_async"}

    async def caller(log: AuditLog, number: int) -> list[int]:
        return [
            await log.append_async(
                EVENT, actor=f"user:{number}", subject=f"cred-{number}",
                details=_details(number, i),
            )
            for i in range(per_caller)
        ]  # fmt: skip

    async def run(log: AuditLog) -> tuple[list[int], float]:
        start = time.perf_counter()
        done = await asyncio.gather(*(caller(log, c) for c in range(CALLERS)))
        return [seq for got in done for seq in got], time.perf_counter() - start

    with AuditLog(engine, keys) as log:
        _append(log, -1, 0)
        seqs, seconds = asyncio.run(run(log))
    _check_dense(seqs)
    return {
        "callers": CALLERS,
        "window_s": AuditOptions().window,
        **_figure(len(seqs), seconds, TARGET_GROUP_COMMIT_PER_S, "brief: >= 20,000/s"),
    }


def _check_dense(seqs: list[int]) -> None:
    ordered = sorted(seqs)
    if ordered != list(range(ordered[0], ordered[0] + len(ordered))):
        raise RuntimeError("the seqs returned by append are not distinct and dense")


# -- baselines ---------------------------------------------------------------------------------


def _rows(engine: sa.Engine, n: int) -> list[tuple[Any, ...]]:
    e = tables.entries
    with engine.connect() as conn:
        found = conn.execute(sa.select(*(e.c[c] for c in COLUMNS)).order_by(e.c.seq).limit(n))
        return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in found]


def _rates(
    one: Callable[[tuple[Any, ...]], None],
    many: Callable[[list[tuple[Any, ...]]], None],
    rows: list[tuple[Any, ...]],
) -> dict[str, Any]:
    half = len(rows) // 2
    start = time.perf_counter()
    for row in rows[:half]:
        one(row)
    one_s = time.perf_counter() - start
    batched = rows[half:]
    start = time.perf_counter()
    for first in range(0, len(batched), CALLERS):
        many(batched[first : first + CALLERS])
    many_s = time.perf_counter() - start
    return {
        "rows": len(rows),
        "one_row_per_commit_per_s": round(half / one_s),
        "rows_64_per_commit_per_s": round(len(batched) / many_s),
    }


_DDL = (
    "CREATE TABLE raw_audit (seq BIGINT PRIMARY KEY, ts BIGINT NOT NULL, event VARCHAR(64) NOT "
    "NULL, actor VARCHAR(64), subject VARCHAR(256), ip VARCHAR(45), details TEXT NOT NULL, "
    "leaf_hash {blob} NOT NULL, key_version INTEGER NOT NULL, mac {blob} NOT NULL)"
)


def baseline_sqlite(directory: Path, rows: list[tuple[Any, ...]]) -> dict[str, Any]:
    """Bare sqlite3, the engine's pragmas, a table like audit_log: INSERT + COMMIT."""
    conn = sqlite3.connect(directory / "raw.db", isolation_level=None)
    pragmas = [
        f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}",
        "PRAGMA journal_mode = WAL",
        "PRAGMA synchronous = FULL",
        "PRAGMA secure_delete = ON",
    ]
    try:
        for pragma in pragmas:
            conn.execute(pragma)
        conn.execute(_DDL.format(blob="BLOB"))
        insert = f"INSERT INTO raw_audit VALUES ({', '.join('?' * len(COLUMNS))})"  # noqa: S608

        def one(row: tuple[Any, ...]) -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(insert, row)
            conn.execute("COMMIT")

        def many(batch: list[tuple[Any, ...]]) -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(insert, batch)
            conn.execute("COMMIT")

        return {"driver": "sqlite3", "pragmas": pragmas, **_rates(one, many, rows)}
    finally:
        conn.close()


def baseline_postgres(libpq_url: str, rows: list[tuple[Any, ...]]) -> dict[str, Any]:
    """Bare psycopg, a table like audit_log: INSERT + COMMIT."""
    with psycopg.connect(libpq_url) as conn:
        conn.execute(_DDL.format(blob="BYTEA"))
        conn.commit()
        insert = f"INSERT INTO raw_audit VALUES ({', '.join(['%s'] * len(COLUMNS))})"  # noqa: S608

        def one(row: tuple[Any, ...]) -> None:
            conn.execute(insert, row)
            conn.commit()

        def many(batch: list[tuple[Any, ...]]) -> None:
            with conn.cursor() as cursor:
                cursor.executemany(insert, batch)
            conn.commit()

        return {"driver": "psycopg", **_rates(one, many, rows)}


def bench_appends(
    engine: sa.Engine, keys: AuditKeys, sizes: argparse.Namespace, label: str
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    say(f"{label}: {sizes.sequential} sequential appends, window 0")
    out["one_caller_window_0"] = bench_sequential(engine, keys, sizes.sequential, 0.0)
    say(f"{label}: {sizes.sequential} sequential appends, default window")
    out["one_caller_default_window"] = bench_sequential(
        engine, keys, sizes.sequential, AuditOptions().window
    )
    say(f"{label}: {CALLERS} threads x {sizes.per_caller} appends")
    out["threads_64"] = bench_threads(engine, keys, sizes.per_caller)
    say(f"{label}: {CALLERS} asyncio tasks x {sizes.per_caller} appends")
    out["asyncio_64"] = bench_asyncio(engine, keys, sizes.per_caller)
    report = verify(engine, keys)
    if not report.ok:
        raise RuntimeError(f"{label}: the log written by the append benchmarks does not verify")
    out["log_verified_entries"] = report.entries
    return out


# -- the large log -----------------------------------------------------------------------------


def _build(engine: sa.Engine, keys: AuditKeys, n: int) -> dict[str, Any]:
    """Append `n` entries through AuditLog, in large group commits, with a progress bar."""
    use_async = hasattr(AuditLog, "append_async")
    callers = 1024 if use_async else 256
    done = 0
    options = AuditOptions(window=BUILD_WINDOW_S)
    start = time.perf_counter()
    with _progress() as progress, AuditLog(engine, keys, options=options) as log:
        task = progress.add_task(f"building a log of {n:,} entries", total=n, rate="")

        def tick() -> None:
            elapsed = time.perf_counter() - start
            rate = f"{done / elapsed:,.0f}/s" if elapsed > 0 else ""
            progress.update(task, completed=done, rate=rate)

        if use_async:

            async def caller(number: int) -> None:
                nonlocal done
                for i in range(number, n, callers):
                    await log.append_async(
                        EVENT, actor=f"user:{number % 97}", subject=f"cred-{number % 13}",
                        details=_details(number, i),
                    )  # fmt: skip
                    done += 1

            async def ticker(stop: asyncio.Event) -> None:
                while not stop.is_set():
                    tick()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), 0.25)

            async def run() -> None:
                stop = asyncio.Event()
                ticking = asyncio.create_task(ticker(stop))
                await asyncio.gather(*(caller(c) for c in range(callers)))
                stop.set()
                await ticking

            asyncio.run(run())
        else:
            lock = threading.Lock()

            def thread_caller(number: int) -> None:
                nonlocal done
                for i in range(number, n, callers):
                    _append(log, number, i)
                    with lock:
                        done += 1

            threads = [threading.Thread(target=thread_caller, args=(c,)) for c in range(callers)]
            for thread in threads:
                thread.start()
            while any(t.is_alive() for t in threads):
                tick()
                time.sleep(0.25)
        tick()
    seconds = time.perf_counter() - start
    return {
        "entries": n,
        "via": f"AuditLog.{'append_async' if use_async else 'append'}, {callers} callers, "
        f"window {BUILD_WINDOW_S} s",
        "seconds": round(seconds, 1),
        "appends_per_s": round(n / seconds),
    }


def large_log(cache: Path | None, n: int) -> tuple[Path, AuditKeys, dict[str, Any]]:
    """The data directory of a SQLite log of `n` entries (cached when `cache` is given), its
    keys, and how it was built."""
    if cache is None:
        directory = private_dir(Path(tempfile.mkdtemp(prefix="tg-audit-bench-")))
    else:
        directory = private_dir(cache) / f"audit-v{CACHE_VERSION}-{n}"
        stamp = directory / "build.json"
        if stamp.exists():
            build = json.loads(stamp.read_text())
            build["cache"] = f"reused {directory}"
            return directory, load_keys(directory / "audit.keyring"), build
        shutil.rmtree(directory, ignore_errors=True)
        private_dir(directory)
    keys = load_keys(new_keyring_file(directory / "audit.keyring"))
    engine = opened(resolve_database(None, directory, production=False))
    try:
        build = _build(engine, keys, n)
    finally:
        engine.dispose()
    if cache is not None:
        (directory / "build.json").write_text(json.dumps(build))
        build["cache"] = f"built now, kept in {directory}"
    else:
        build["cache"] = "none (temporary)"
    return directory, keys, build


def copy_to_postgres(source: sa.Engine, libpq_url: str) -> float:
    """Copy the log (entries, nodes, heads, state, instance id) into a migrated PG schema."""
    start = time.perf_counter()
    with source.connect() as src, psycopg.connect(libpq_url) as dst:
        instance = tables.instance_id(src)
        dst.execute("UPDATE instance SET instance_id = %s", (instance,))
        dst.execute("DELETE FROM audit_state")
        for table in ("audit_state", "audit_tree_heads", "audit_nodes", "audit_log"):
            raw = src.exec_driver_sql(f"SELECT * FROM {table}")  # noqa: S608
            names = ", ".join(raw.keys())
            with dst.cursor().copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in raw:
                    copy.write_row(row)
        dst.commit()
        dst.execute("ANALYZE")
    return time.perf_counter() - start


def _timed_verify(
    engine: sa.Engine, keys: AuditKeys, processes: int | None, label: str
) -> dict[str, Any]:
    """One `verify`: wall time, and CPU time of this process and its (reaped) workers."""
    before = os.times()
    start = time.perf_counter()
    report = verify(engine, keys, processes=processes)
    seconds = time.perf_counter() - start
    after = os.times()
    if not report.ok:
        raise RuntimeError(f"{label}: the large log does not verify: {report.findings[:3]}")
    cpu = sum(after[i] - before[i] for i in range(4))  # user, system, children's user, system
    return {
        "entries": report.entries,
        "heads_checked": report.heads,
        "processes": report.processes,
        "seconds": round(seconds, 2),
        "entries_per_s": round(report.entries / seconds),
        "cpu_s": round(cpu, 2),
        "cpu_us_per_entry": round(cpu / max(report.entries, 1) * 1e6, 2),
    }


def bench_verify(engine: sa.Engine, keys: AuditKeys, label: str) -> dict[str, Any]:
    say(f"{label}: verify")
    figure = _timed_verify(engine, keys, None, label)
    say(f"{label}: verify in this process alone (as a multi-threaded caller, the server, gets)")
    alone = _timed_verify(engine, keys, 1, label)
    return {
        **figure,
        "target_per_s": TARGET_VERIFY_PER_S,
        "target_source": "brief: >= 500,000/s",
        "meets_target": figure["entries_per_s"] >= TARGET_VERIFY_PER_S,
        "one_process": alone,
    }


def bench_proofs(engine: sa.Engine, keys: AuditKeys, count: int, label: str) -> dict[str, Any]:
    with engine.connect() as conn:
        size = int(conn.execute(sa.select(sa.func.max(tables.tree_heads.c.size))).scalar_one())
    seqs = random.Random(11).sample(range(size), min(count, size))
    say(f"{label}: {len(seqs)} inclusion proofs in a tree of {size:,}")
    request_ms, proof_ms, documents = [], [], []
    e, h = tables.entries, tables.tree_heads
    with engine.connect() as conn:
        source = DbSource(conn)
        root = bytes(conn.execute(sa.select(h.c.root).where(h.c.size == size)).scalar_one())
        leaves = dict(
            conn.execute(sa.select(e.c.seq, e.c.leaf_hash).where(e.c.seq.in_(seqs))).all()
        )
        for seq in seqs:  # the two take turns, so noise falls on both alike
            start = time.perf_counter_ns()
            documents.append(inclusion(engine, keys, seq))
            request_ms.append((time.perf_counter_ns() - start) / 1e6)
            start = time.perf_counter_ns()
            proof = inclusion_proof(source, seq, size)
            proof_ms.append((time.perf_counter_ns() - start) / 1e6)
            verify_inclusion(seq, size, bytes(leaves[seq]), proof, root)
    for document in documents:  # untimed: every proof checks out against the signed head
        check_proof(document, keys)
    request_median, request_p99 = _median_p99(request_ms)
    proof_median, proof_p99 = _median_p99(proof_ms)
    return {
        "tree_size": size,
        "proofs": len(seqs),
        "proofs_checked": len(documents),
        "request_median_ms": round(request_median, 3),
        "request_p99_ms": round(request_p99, 3),
        "proof_only_median_ms": round(proof_median, 3),
        "proof_only_p99_ms": round(proof_p99, 3),
        "target_median_ms": TARGET_PROOF_MEDIAN_MS,
        "target_p99_ms": TARGET_PROOF_P99_MS,
        "target_source": "ours: an interactive request (`audit proof`, the web API)",
        "meets_target": request_median <= TARGET_PROOF_MEDIAN_MS
        and request_p99 <= TARGET_PROOF_P99_MS,
    }


def _scan_floor(rows: Iterator[tuple[Any, ...]], keys: AuditKeys) -> dict[str, Any]:
    """What any Python verifier pays per entry: fetch it, hash its leaf, check its MAC."""
    mac_key = keys.mac_key(keys.primary)
    count = 0
    start = time.perf_counter()
    for seq, ts, event, actor, subject, ip, details, stored, _version, mac in rows:
        leaf = leaf_hash(leaf_data(seq, ts, event, actor, subject, ip, details))
        if leaf != stored or entry_mac(mac_key, seq, leaf) != mac:
            raise RuntimeError(f"entry {seq} does not check out")
        count += 1
    return {"entries": count, "seconds": time.perf_counter() - start}


def _fetch_only(rows: Iterator[tuple[Any, ...]]) -> dict[str, Any]:
    start = time.perf_counter()
    count = sum(1 for _ in rows)
    return {"entries": count, "seconds": time.perf_counter() - start}


_SCAN = f"SELECT {', '.join(COLUMNS)} FROM audit_log ORDER BY seq"  # noqa: S608


def baseline_scan_sqlite(directory: Path, keys: AuditKeys) -> dict[str, Any]:
    def rows() -> Iterator[tuple[Any, ...]]:
        uri = f"file:{directory / 'tradeguard.db'}?mode=ro"
        conn = sqlite3.connect(uri, uri=True)
        try:
            yield from conn.execute(_SCAN)
        finally:
            conn.close()

    return _floor_figures("sqlite3", _fetch_only(rows()), _scan_floor(rows(), keys))


def baseline_scan_postgres(libpq_url: str, keys: AuditKeys) -> dict[str, Any]:
    def rows() -> Iterator[tuple[Any, ...]]:
        with psycopg.connect(libpq_url) as conn, conn.cursor(name="scan") as cursor:
            cursor.itersize = 10_000
            cursor.execute(_SCAN)
            yield from cursor

    return _floor_figures("psycopg", _fetch_only(rows()), _scan_floor(rows(), keys))


def _floor_figures(driver: str, fetch: dict[str, Any], hashed: dict[str, Any]) -> dict[str, Any]:
    return {
        "driver": driver,
        "entries": hashed["entries"],
        "fetch_only_per_s": round(fetch["entries"] / fetch["seconds"]),
        "fetch_hash_mac_per_s": round(hashed["entries"] / hashed["seconds"]),
    }


# -- main --------------------------------------------------------------------------------------


def run_sqlite(sizes: argparse.Namespace, large: Path, keys: AuditKeys) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        directory = private_dir(Path(tmp) / "data")
        append_keys = load_keys(new_keyring_file(Path(tmp) / "audit.keyring"))
        engine = opened(resolve_database(None, directory, production=False))
        try:
            out["appends"] = bench_appends(engine, append_keys, sizes, "sqlite")
            rows = _rows(engine, sizes.baseline)
        finally:
            engine.dispose()
        say(f"sqlite: baseline, {len(rows)} raw inserts")
        out["baseline_raw_inserts"] = baseline_sqlite(Path(tmp), rows)
    engine = opened(resolve_database(None, large, production=False))
    try:
        out["verify"] = bench_verify(engine, keys, "sqlite")
        say("sqlite: baseline, a bare scan of the large log")
        out["verify"]["baseline_bare_scan"] = baseline_scan_sqlite(large, keys)
        out["inclusion_proof"] = bench_proofs(engine, keys, sizes.proofs, "sqlite")
    finally:
        engine.dispose()
    return out


def run_postgres(
    sizes: argparse.Namespace, base: str, large: Path, keys: AuditKeys
) -> dict[str, Any]:
    reason = postgres_unreachable(base)
    if reason is not None:
        say(f"postgresql: skipped, {reason}")
        return {"skipped": reason}
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, postgres_schema(base) as (target, libpq):
        append_keys = load_keys(new_keyring_file(Path(tmp) / "audit.keyring"))
        engine = opened(target)
        try:
            out["appends"] = bench_appends(engine, append_keys, sizes, "postgresql")
            rows = _rows(engine, sizes.baseline)
        finally:
            engine.dispose()
        say(f"postgresql: baseline, {len(rows)} raw inserts")
        out["baseline_raw_inserts"] = baseline_postgres(libpq, rows)
    with postgres_schema(base) as (target, libpq):
        engine = opened(target)
        source = create_engine(resolve_database(None, large, production=False))
        try:
            say("postgresql: copying the large log")
            copy_s = copy_to_postgres(source, libpq)
            out["verify"] = {**bench_verify(engine, keys, "postgresql"), "copy_in_s": round(copy_s)}
            say("postgresql: baseline, a bare scan of the large log")
            out["verify"]["baseline_bare_scan"] = baseline_scan_postgres(libpq, keys)
            out["inclusion_proof"] = bench_proofs(engine, keys, sizes.proofs, "postgresql")
        finally:
            source.dispose()
            engine.dispose()
    return out


def _met(backends: dict[str, dict[str, Any]]) -> dict[str, bool | None]:
    met: dict[str, bool | None] = {}
    for name, figures in backends.items():
        appends = figures.get("appends", {})
        for key in ("one_caller_window_0", "one_caller_default_window", "threads_64",
                    "asyncio_64"):  # fmt: skip
            met[f"{name}_{key}"] = appends.get(key, {}).get("meets_target")
        for key in ("verify", "inclusion_proof"):
            met[f"{name}_{key}"] = figures.get(key, {}).get("meets_target")
    return met


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (the smoke test)")
    parser.add_argument("--skip-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--postgres-url", default=POSTGRES_URL)
    parser.add_argument("--entries", type=int, help="size of the verify/proof log")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        help="where the large log is kept between runs (default: bench/results/.cache, or "
        "none with --quick)",
    )
    parser.add_argument("--no-cache", action="store_true", help="always build the large log")
    args = parser.parse_args()
    sizes = argparse.Namespace(
        sequential=100 if args.quick else 2_000,
        per_caller=10 if args.quick else 300,
        baseline=400 if args.quick else 4_000,
        proofs=200 if args.quick else 1_000,
        entries=args.entries or (20_000 if args.quick else 1_000_000),
    )
    cache = None
    if not args.no_cache:
        cache = args.cache_dir or (None if args.quick else RESULTS / ".cache")

    started = time.perf_counter()
    large, keys, build = large_log(cache, sizes.entries)
    try:
        backends: dict[str, dict[str, Any]] = {"sqlite": run_sqlite(sizes, large, keys)}
        if args.skip_postgres:
            backends["postgresql"] = {"skipped": "--skip-postgres"}
        else:
            backends["postgresql"] = run_postgres(sizes, args.postgres_url, large, keys)
    finally:
        if cache is None:
            shutil.rmtree(large, ignore_errors=True)

    emit(
        {
            "benchmark": "audit",
            "mode": "quick" if args.quick else "full",
            "clock": "wall time (perf_counter); appends are durable (returned once committed)",
            "large_log_build": build,
            **backends,
            "peer": PEER,
            "met": _met(backends),
            "run_s": round(time.perf_counter() - started, 1),
        }
    )


if __name__ == "__main__":
    sys.exit(main())
