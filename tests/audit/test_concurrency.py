"""Concurrent appenders: one log, one dense sequence, one tree, whoever writes.

* Four processes (each its own interpreter, engine and `AuditLog`) append 5,000 entries each to
  one database, SQLite (a file) and PostgreSQL (a fresh schema), released together so their
  transactions really interleave. Each process appends from 4 threads of its own (so its writer
  group-commits too): one caller per process takes 43 s on SQLite and 79 s on PostgreSQL on this
  2-vCPU machine, too slow for the suite. Afterwards the log holds exactly 20,000 entries, seqs
  0..19999, every (process, i) exactly once at the seq its `append` returned, and `verify` is clean,
  against the checkpoint file the four shared as well: every stored and published tree head
  is consistent with the one tree.
* Sixteen threads on one `AuditLog` with the default group-commit window: the seqs `append`
  returned are distinct and dense, and each is the entry that thread wrote.
* A log opened (the pepper version read, maybe recorded) while another connection appends.

The audit key is shared the way real processes share it: a keyring file written in the test's
tmp directory, read by every child.

Run as a script (`python test_concurrency.py worker ...`) this file is the child appender.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tradeguard.audit import AuditKeys, AuditLog, AuditOptions, tables, verify
from tradeguard.core.events import EventName
from tradeguard.crypto.keyring import parse_keyring
from tradeguard.crypto.keyring_file import init_keyring_file
from tradeguard.secrets import Secret
from tradeguard.secrets.files import read_secret_file
from tradeguard.store import DatabaseTarget, create_engine, resolve_database, upgrade

PROCESSES = 4
PER_PROCESS = 5_000
THREADS = 16
PER_THREAD = 250
CHILD_THREADS = 4  # per process: each process's own appends are group-committed too
CHILD_TIMEOUT_S = 240
EVENT = EventName.VAULT_CREDENTIAL_USED


def load_keys(path: Path) -> AuditKeys:
    """The audit keys from a keyring file, as every process reads them."""
    keyring = parse_keyring(read_secret_file("TRADEGUARD_AUDIT_KEY_FILE", path), "test")
    try:
        return AuditKeys(keyring)
    finally:
        keyring.wipe()


def target_for(database: str, scratch: Path) -> DatabaseTarget:
    """`database` is a PostgreSQL URL or the data directory of a SQLite file."""
    if database.startswith("postgresql"):
        return resolve_database(Secret(database), scratch, production=False)
    return resolve_database(None, Path(database), production=False)


# -- the child ---------------------------------------------------------------------------------


def worker(database: str, keyring: Path, checkpoints: Path, process: int, count: int) -> None:
    """Open a log, say "ready", wait for "go" on stdin, append `count` entries from
    `CHILD_THREADS` threads; print the seq each append returned, by i."""
    target = target_for(database, checkpoints.parent)
    engine = create_engine(target)
    log = AuditLog(engine, load_keys(keyring), options=AuditOptions(checkpoint_file=checkpoints))
    seqs = [-1] * count

    def appender(first: int) -> None:
        for i in range(first, count, CHILD_THREADS):
            seqs[i] = log.append(
                EVENT,
                actor=f"process:{process}",
                subject=f"cred-{process}",
                details={"process": process, "i": i},
            )

    try:
        print("ready", flush=True)
        if sys.stdin.readline().strip() != "go":
            raise SystemExit("the parent did not say go")
        start = time.perf_counter()
        with ThreadPoolExecutor(CHILD_THREADS) as pool:
            for done in [pool.submit(appender, t) for t in range(CHILD_THREADS)]:
                done.result()
        elapsed = time.perf_counter() - start
    finally:
        log.close()
        engine.dispose()
    print(json.dumps({"process": process, "seqs": seqs, "seconds": elapsed}), flush=True)


# -- helpers -----------------------------------------------------------------------------------


@pytest.fixture
def keyring_file(tmp_path: Path) -> Path:
    path = tmp_path / "audit.keyring"
    init_keyring_file(path)
    return path


def run_processes(database: str, keyring: Path, checkpoints: Path) -> list[dict[str, Any]]:
    """Start the children, release them together once all are ready, collect what they print."""
    children = [
        subprocess.Popen(
            [sys.executable, __file__, "worker", database, str(keyring), str(checkpoints),
             str(p), str(PER_PROCESS)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for p in range(PROCESSES)
    ]  # fmt: skip
    try:
        for child in children:
            assert child.stdout is not None
            line = child.stdout.readline()
            if line.strip() != "ready":
                _, err = child.communicate(timeout=30)
                pytest.fail(f"child did not start: {line!r}\n{err}")
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        results = []
        for child in children:
            out, err = child.communicate(timeout=CHILD_TIMEOUT_S)
            assert child.returncode == 0, err
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()


def check_log(
    engine: sa.Engine,
    keys: AuditKeys,
    checkpoints: Path,
    written: dict[tuple[int, int], int],
) -> None:
    """The log holds exactly `written` ((writer, i) -> seq), dense from 0, and verifies."""
    total = len(written)
    e = tables.entries
    with engine.connect() as conn:
        rows = conn.execute(sa.select(e.c.seq, e.c.details).order_by(e.c.seq)).all()
        state = conn.execute(sa.select(tables.state)).one()
        head_sizes = conn.execute(sa.select(tables.tree_heads.c.size)).scalars().all()
    assert len(rows) == total
    assert [seq for seq, _ in rows] == list(range(total))
    stored = {}
    for seq, details in rows:
        document = json.loads(details)
        stored[(document["process"], document["i"])] = seq
    assert len(stored) == total  # every (writer, i) exactly once ...
    assert stored == written  # ... at the seq its append() returned
    assert state.size == total
    assert state.last_head_size == total  # the last close() signed the whole log
    assert max(head_sizes) == total

    report = verify(engine, keys)
    assert report.ok, report.findings
    assert (report.size, report.entries, report.heads) == (total, total, len(head_sizes))

    published = [json.loads(line) for line in checkpoints.read_text().splitlines()]
    sizes = Counter(head["tree_size"] for head in published)
    assert sizes
    assert max(sizes) == total
    assert set(sizes) <= set(head_sizes)  # every published head is one of the stored heads
    assert all(n == 1 for n in sizes.values())  # each size signed (and published) once
    report = verify(engine, keys, against=checkpoints)
    assert report.ok, report.findings
    assert report.checkpoints == len(published)


# -- the tests ---------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """What the children are given: the SQLite data directory, or a fresh schema's URL."""
    if request.param == "sqlite":
        data_dir = tmp_path / "data"
        data_dir.mkdir(mode=0o700)
        return str(data_dir)
    return str(request.getfixturevalue("postgres_schema_url"))


def test_four_processes_append_one_dense_verifiable_log(
    database: str, keyring_file: Path, tmp_path: Path
) -> None:
    target = target_for(database, tmp_path)
    engine = create_engine(target)
    try:
        upgrade(engine, target)
        checkpoints = tmp_path / "checkpoints.jsonl"
        results = run_processes(database, keyring_file, checkpoints)
        written = {
            (result["process"], i): seq
            for result in results
            for i, seq in enumerate(result["seqs"])
        }
        assert sorted(written.values()) == list(range(PROCESSES * PER_PROCESS))
        check_log(engine, load_keys(keyring_file), checkpoints, written)
    finally:
        engine.dispose()


def test_sixteen_threads_get_distinct_dense_seqs(
    database: str, keyring_file: Path, tmp_path: Path
) -> None:
    target = target_for(database, tmp_path)
    engine = create_engine(target)
    upgrade(engine, target)
    keys = load_keys(keyring_file)
    checkpoints = tmp_path / "checkpoints.jsonl"
    written: dict[tuple[int, int], int] = {}
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(THREADS)
    log = AuditLog(engine, keys, options=AuditOptions(window=0.002, checkpoint_file=checkpoints))

    def appender(thread: int) -> None:
        try:
            start.wait()
            for i in range(PER_THREAD):
                seq = log.append(
                    EVENT, actor=f"thread:{thread}", details={"process": thread, "i": i}
                )
                with lock:
                    written[(thread, i)] = seq
        except BaseException as e:  # noqa: BLE001 - reported by the test thread
            errors.append(e)

    threads = [threading.Thread(target=appender, args=(t,)) for t in range(THREADS)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        log.close()
        assert not errors
        seqs = list(written.values())
        assert len(seqs) == len(set(seqs)) == THREADS * PER_THREAD
        assert sorted(seqs) == list(range(THREADS * PER_THREAD))
        check_log(engine, keys, checkpoints, written)
    finally:
        log.close()
        engine.dispose()


def test_a_log_opens_while_another_process_appends(
    database: str, keyring_file: Path, tmp_path: Path
) -> None:
    """A CLI command (or a second server) opening the log while a server appends to it.

    The appender has its own engine: another connection, which is what another process is to
    the database's locks. (Opening once recorded the pepper version in a deferred SQLite
    transaction that read, then wrote: 'database is locked' most of the time.)"""
    target = target_for(database, tmp_path)
    engine = create_engine(target)
    upgrade(engine, target)
    keys = load_keys(keyring_file)
    appender_engine = create_engine(target)
    appender = AuditLog(appender_engine, keys, options=AuditOptions(window=0))
    stop = threading.Event()
    appended = threading.Semaphore(0)

    def append_until_stopped() -> None:
        i = 0
        while not stop.is_set():
            appender.append(EVENT, details={"process": -1, "i": i})
            appended.release()
            i += 1

    thread = threading.Thread(target=append_until_stopped)
    thread.start()
    failures: list[str] = []
    try:
        for _ in range(20):
            assert appended.acquire(timeout=30)  # the appender is busy right now
            try:
                with AuditLog(engine, keys, options=AuditOptions(window=0)) as log:
                    log.append(EVENT, details={"process": -2, "i": 0})
            except Exception as e:  # noqa: BLE001 - counted, then reported
                failures.append(f"{type(e).__name__}: {str(e).splitlines()[0]}")
    finally:
        stop.set()
        thread.join(timeout=60)
        appender.close()
        appender_engine.dispose()
    try:
        assert not failures, f"{len(failures)} of 20 opens failed, e.g. {failures[0]}"
        report = verify(engine, keys)
        assert report.ok, report.findings
    finally:
        engine.dispose()


if __name__ == "__main__" and sys.argv[1:2] == ["worker"]:
    database_arg, keyring_arg, checkpoints_arg, process_arg, count_arg = sys.argv[2:7]
    worker(database_arg, Path(keyring_arg), Path(checkpoints_arg), int(process_arg), int(count_arg))
