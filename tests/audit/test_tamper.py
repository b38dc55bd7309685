"""The tamper suite: an attacker with write access to the database edits the audit log behind the
application's back, and `verify` must say what was done and where.

One log is built per module on SQLite with the real `AuditLog` (320 varied entries, a tree head
every 50), with backups of the store taken at many sizes on the way, plus forks of it: logs that
share a prefix with it and then go their own way, written by the real `AuditLog` with the same
audit key into the same installation (an insider who holds the key). Every Hypothesis example
starts from a pristine copy (SQLite: the backup API into an in-memory database; PostgreSQL: the
saved rows put back into the test's schema), applies one attack through raw SQL with the
append-only triggers out of the way, as someone with database access would, and checks the first
finding: its kind and its seq. More than 1,000 examples on SQLite, about 120 on PostgreSQL.

The attacker can recompute the unkeyed leaf hash of anything, but cannot make an entry MAC or
sign a tree head (no audit key), except in the fork attack.
"""

from __future__ import annotations

import itertools
import json
import random
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.audit.conftest import AuditStore, new_keys

from tradeguard.audit import AuditKeys, AuditLog, AuditOptions, VerifyReport, blocks, tables, verify
from tradeguard.audit.entry import leaf_data
from tradeguard.audit.merkle import EMPTY_ROOT, leaf_hash
from tradeguard.core.clock import ManualClock
from tradeguard.core.events import EventName
from tradeguard.store import create_engine, resolve_database, upgrade

SIZE = 320  # entries in the original log
HEAD_EVERY = 50
FORK_EXTRA = 40  # a fork is this much longer than the original, so every head of it is checked
# Backups taken on the way (rollback attacks, fork points): around heads and the stored node.
SNAPSHOT_SIZES: tuple[int, ...] = (1, 2, 7, 49, 50, 51, 77, 99, 100, 101, 150, 163, 199, 200)
SNAPSHOT_SIZES += (255, 256, 257, 300, 301, 318, 319)
FORK_POINTS = (0, 1, 49, 50, 101, 256, 300, 319)
EVENTS = [e.value for e in EventName]
# Tables in the order rows go back in (and, reversed, come out).
TABLES = ("instance", "audit_state", "audit_prunes", "audit_tree_heads", "audit_nodes", "audit_log")
AUDIT_TABLES = ("audit_log", "audit_tree_heads", "audit_nodes", "audit_prunes")
TABLE_OBJECTS = {
    t.name: t
    for t in (
        tables.instance,
        tables.state,
        tables.prunes,
        tables.tree_heads,
        tables.nodes,
        tables.entries,
    )
}
LEAF_COLUMNS = ("ts", "event", "actor", "subject", "ip", "details")
COLUMNS = (*LEAF_COLUMNS, "leaf_hash", "mac")
# Hypothesis examples per attack: (SQLite, PostgreSQL).
EXAMPLES: dict[str, tuple[int, int]] = {
    "modify": (260, 24),
    "delete": (110, 12),
    "delete_renumber": (110, 12),
    "insert_end": (70, 8),
    "insert_middle": (110, 12),
    "replay": (80, 8),
    "swap": (130, 12),
    "truncate": (110, 12),
    "fork": (60, 10),
    "rollback": (60, 10),
}
assert sum(n for n, _ in EXAMPLES.values()) - EXAMPLES["fork"][0] >= 1000  # fork has ~40 cases


# -- the original log, its snapshots and forks (built once per module) -----------------------


def _sqlite_copy(source: Path, target: sa.Engine) -> None:
    """Overwrite `target`'s database with the file `source` (the SQLite backup API)."""
    raw = target.raw_connection()
    src = sqlite3.connect(source)
    try:
        src.backup(raw.driver_connection)  # type: ignore[arg-type]
    finally:
        src.close()
        raw.close()


def _sqlite_copy_from(source: sqlite3.Connection, target: sa.Engine) -> None:
    """Overwrite `target`'s database with the open database `source`."""
    raw = target.raw_connection()
    try:
        source.backup(raw.driver_connection)  # type: ignore[arg-type]
    finally:
        raw.close()


def _sqlite_save(engine: sa.Engine, path: Path) -> None:
    """Copy `engine`'s database to the file `path` (the SQLite backup API)."""
    raw = engine.raw_connection()
    dst = sqlite3.connect(path)
    try:
        raw.driver_connection.backup(dst)  # type: ignore[union-attr]
    finally:
        dst.close()
        raw.close()


def _memory_engine(conn: sqlite3.Connection) -> sa.Engine:
    """An engine on one in-memory SQLite connection that begins its transactions itself, as the
    application's engine does (SQLAlchemy's recipe for pysqlite)."""
    engine = sa.create_engine("sqlite://", creator=lambda: conn, poolclass=sa.StaticPool)
    sa.event.listen(engine, "begin", lambda c: c.exec_driver_sql("BEGIN"))
    return engine


def _memory() -> sqlite3.Connection:
    return sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)


def _sqlite_engine(directory: Path) -> sa.Engine:
    directory.mkdir(mode=0o700)
    return create_engine(resolve_database(None, directory, production=False))


def _details(rng: random.Random, i: int, tag: str) -> dict[str, object]:
    """Varied details: unicode, Decimals, nesting, bools, None, lists."""
    details: dict[str, object] = {"n": i, "tag": tag}
    if rng.random() < 0.5:
        details["venue"] = rng.choice(["binance", "kraken", "coinbase", "bybit"])
    if rng.random() < 0.3:
        details["note"] = rng.choice(["ok", "réessai", "注文", "ℵ→∞", 'quote " and \\', "🙂", ""])
    if rng.random() < 0.3:
        details["amount"] = Decimal(rng.randint(-(10**9), 10**9)) / Decimal(10 ** rng.randint(0, 8))
    if rng.random() < 0.2:
        details["order"] = {"side": rng.choice(["buy", "sell"]), "legs": [1, 2, {"x": None}]}
    if rng.random() < 0.2:
        details["flag"] = rng.random() < 0.5
    return details


def _entry_args(rng: random.Random, i: int, tag: str) -> dict[str, Any]:
    ip = rng.choice([None, f"10.0.{rng.randint(0, 255)}.{rng.randint(1, 254)}", "2001:db8::1"])
    return {
        "event": rng.choice(EVENTS),
        "actor": rng.choice([None, "operator", "system", f"user:{rng.randint(1, 9)}"]),
        "subject": rng.choice([None, f"user:{rng.randint(1, 99)}", f"credential:{rng.random()}"]),
        "ip": ip,
        "details": _details(rng, i, tag),
    }


@dataclass
class Lab:
    """The original log and its variants, as SQLite files, plus what the attacks need to know."""

    keys: AuditKeys
    checkpoints: Path  # every head the original log published: kept off the host
    heads: list[int]  # sizes of the original log's signed heads
    files: dict[str, Path]  # "a" (the original), "snap_<m>", "fork_<f>"
    entries: list[dict[str, Any]]  # the original rows, in seq order
    _rows: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)
    _pristine: dict[str, sqlite3.Connection] = field(default_factory=dict)

    def pristine(self, name: str) -> sqlite3.Connection:
        """One variant, loaded once into memory (never written: copies are made from it)."""
        if name not in self._pristine:
            conn = _memory()
            src = sqlite3.connect(self.files[name])
            try:
                src.backup(conn)
            finally:
                src.close()
            self._pristine[name] = conn
        return self._pristine[name]

    def close(self) -> None:
        for conn in self._pristine.values():
            conn.close()

    def rows(self, name: str) -> dict[str, list[dict[str, Any]]]:
        """Every row of every table of one variant (to put back on PostgreSQL)."""
        if name not in self._rows:
            engine = sa.create_engine(f"sqlite:///{self.files[name]}")
            try:
                with engine.connect() as conn:
                    self._rows[name] = {
                        t: [dict(r._mapping) for r in conn.execute(sa.select(TABLE_OBJECTS[t]))]
                        for t in TABLES
                    }
            finally:
                engine.dispose()
        return self._rows[name]


def _append_all(log: AuditLog, jobs: list[dict[str, Any]], threads: int = 8) -> None:
    """Append from several threads, so the writer commits them in groups (fast)."""
    chunks = [jobs[i::threads] for i in range(threads)]

    def work(chunk: list[dict[str, Any]]) -> None:
        for job in chunk:
            log.append(**job)

    workers = [threading.Thread(target=work, args=(chunk,)) for chunk in chunks]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def _build_lab(directory: Path) -> Lab:
    rng = random.Random(20260101)
    keys = new_keys()
    clock = ManualClock()
    checkpoints = directory / "checkpoints.jsonl"
    engine = _sqlite_engine(directory / "work")
    files: dict[str, Path] = {}

    def save(name: str) -> None:
        files[name] = directory / f"{name}.db"
        _sqlite_save(engine, files[name])

    try:
        upgrade(engine, resolve_database(None, directory / "work", production=False))
        save("snap_0")
        options = AuditOptions(head_every=HEAD_EVERY, window=0.0, checkpoint_file=checkpoints)
        log = AuditLog(engine, keys, clock=clock, options=options)
        for i in range(SIZE):
            clock.advance(rng.choice([0, 0, 0.5, 1, 2]))
            assert log.append(**_entry_args(rng, i, "a")) == i
            if i + 1 in SNAPSHOT_SIZES:
                save(f"snap_{i + 1}")
        log.close()
        save("a")
        for point in FORK_POINTS:
            _sqlite_copy(files[f"snap_{point}"], engine)
            fork_options = AuditOptions(
                head_every=HEAD_EVERY, window=0.0, checkpoint_file=directory / f"fork_{point}.jsonl"
            )
            with AuditLog(engine, keys, clock=clock, options=fork_options) as fork:
                jobs = [_entry_args(rng, i, "fork") for i in range(point, SIZE + FORK_EXTRA)]
                _append_all(fork, jobs)
            save(f"fork_{point}")
    finally:
        engine.dispose()
    heads = [json.loads(line)["tree_size"] for line in checkpoints.read_text().splitlines()]
    entries = _rows_of(files["a"], "SELECT * FROM audit_log ORDER BY seq")
    assert [e["seq"] for e in entries] == list(range(SIZE))
    return Lab(keys, checkpoints, heads, files, entries)


def _rows_of(path: Path, query: str) -> list[dict[str, Any]]:
    conn = sqlite3.connect(path)
    try:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute(query)]
    finally:
        conn.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = _build_lab(tmp_path_factory.mktemp("tamper-lab"))
    try:
        yield lab
    finally:
        lab.close()


# -- a pristine copy per example ---------------------------------------------------------------


class Bench:
    """Hands out pristine copies of the lab's variants on the test's database.

    SQLite: one in-memory database per test, overwritten from the variant (backup API) for
    every example. PostgreSQL: the test's schema, its rows replaced by the variant's.
    """

    def __init__(self, store: AuditStore, lab: Lab, tmp: Path) -> None:
        self.lab = lab
        self.tmp = tmp
        self.backend = store.target.backend
        self.counter = itertools.count()
        self.saved: set[str] = set()
        self.memory: sqlite3.Connection | None = None
        self.copies: list[sa.Engine] = []
        if self.backend == "sqlite":
            self.memory = _memory()
            self.engine = _memory_engine(self.memory)
        else:
            self.engine = store.engine
            with self.engine.begin() as conn:
                unlock(conn)

    def fresh(self, name: str) -> sa.Engine:
        if self.memory is not None:
            self.lab.pristine(name).backup(self.memory)
            return self.engine
        with self.engine.begin() as conn:
            self._save_pg(conn, name)
            for table in reversed(TABLES):
                conn.exec_driver_sql(f"DELETE FROM {table}")  # noqa: S608
            for table in TABLES:
                conn.exec_driver_sql(f"INSERT INTO {table} SELECT * FROM {name}__{table}")  # noqa: S608
        return self.engine

    def reopenable(self, engine: sa.Engine) -> sa.Engine:
        """`engine`'s database where worker processes can open it too: on SQLite a copy of
        the in-memory database in a file of its own (disposed with the bench), on PostgreSQL
        the test's schema itself."""
        if self.memory is None:
            return engine
        directory = self.tmp / f"copy-{next(self.counter)}"
        copy = _sqlite_engine(directory)
        _sqlite_copy_from(self.memory, copy)
        self.copies.append(copy)
        return copy

    def _save_pg(self, conn: sa.Connection, name: str) -> None:
        """The variant's rows, once per test, in tables of the test's schema named after it."""
        if name in self.saved:
            return
        rows = self.lab.rows(name)
        for table in reversed(TABLES):
            conn.exec_driver_sql(f"DELETE FROM {table}")  # noqa: S608
        for table in TABLES:
            if rows[table]:
                conn.execute(sa.insert(TABLE_OBJECTS[table]), rows[table])
            conn.exec_driver_sql(f"CREATE TABLE {name}__{table} AS SELECT * FROM {table}")  # noqa: S608
        self.saved.add(name)

    def close(self) -> None:
        for copy in self.copies:
            copy.dispose()
        if self.memory is not None:
            self.engine.dispose()
            self.memory.close()


@pytest.fixture
def bench(audit_store: AuditStore, lab: Lab, tmp_path: Path) -> Iterator[Bench]:
    bench = Bench(audit_store, lab, tmp_path)
    try:
        yield bench
    finally:
        bench.close()


def unlock(conn: sa.Connection) -> None:
    """What an attacker who owns the database does first: the append-only triggers go."""
    for table in AUDIT_TABLES:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        else:
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_no_update")
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_no_delete")


def renumber(conn: sa.Connection, start: int, by: int) -> None:
    """seq += by for every row at or after `start` (through negatives: the key stays unique)."""
    conn.execute(sa.text("UPDATE audit_log SET seq = -seq - 1 WHERE seq >= :s"), {"s": start})
    conn.execute(sa.text("UPDATE audit_log SET seq = -seq - 1 + :by WHERE seq < 0"), {"by": by})


def set_seq(conn: sa.Connection, old: int, new: int) -> None:
    conn.execute(
        sa.text("UPDATE audit_log SET seq = :new WHERE seq = :old"), {"new": new, "old": old}
    )


def insert_row(conn: sa.Connection, row: dict[str, Any]) -> None:
    conn.execute(
        sa.text(
            "INSERT INTO audit_log (seq, ts, event, actor, subject, ip, details, leaf_hash, "
            "key_version, mac) VALUES (:seq, :ts, :event, :actor, :subject, :ip, :details, "
            ":leaf_hash, :key_version, :mac)"
        ),
        row,
    )


def leaf_of(row: dict[str, Any]) -> bytes:
    return leaf_hash(
        leaf_data(
            row["seq"],
            row["ts"],
            row["event"],
            row["actor"],
            row["subject"],
            row["ip"],
            row["details"],
        )
    )


# -- the attacks -------------------------------------------------------------------------------

HEX64 = st.binary(min_size=32, max_size=32).map(bytes.hex)
SUBJECTS = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9:._@/+=-]{0,40}", fullmatch=True)
IPS = st.ip_addresses().map(str)
DETAIL_VALUES = st.one_of(st.integers(), st.text(max_size=20), st.booleans(), st.none())
DETAILS = st.dictionaries(
    st.from_regex(r"[a-z][a-z0-9_.]{0,10}", fullmatch=True), DETAIL_VALUES, max_size=4
).map(lambda d: json.dumps(d, sort_keys=True, separators=(",", ":"), ensure_ascii=False))


def _text(size: int) -> st.SearchStrategy[str]:
    """Anything an attacker can store in a text column (PostgreSQL takes no NUL)."""
    return st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=size)


# What an attacker writes into an entry's columns: plausible values, and anything at all.
VALUES: dict[str, st.SearchStrategy[Any]] = {
    "ts": st.one_of(st.integers(0, 2**62), st.integers(-(2**63), 2**63 - 1)),
    "event": st.one_of(st.sampled_from(EVENTS), _text(64)),
    "actor": st.one_of(st.none(), HEX64, _text(64)),
    "subject": st.one_of(st.none(), SUBJECTS, _text(256)),
    "ip": st.one_of(st.none(), IPS, _text(45)),
    "details": st.one_of(DETAILS, _text(200)),
    "leaf_hash": st.binary(min_size=32, max_size=32),
    "mac": st.one_of(st.binary(min_size=32, max_size=32), st.binary(max_size=40)),
}


@dataclass
class Expect:
    engine: sa.Engine
    kind: str
    seq: int
    against: Path | None = None


def forged_row(lab: Lab, data: st.DataObject, seq: int) -> dict[str, Any]:
    """A row the attacker makes up: plausible columns, a right or random leaf, a random MAC."""
    row: dict[str, Any] = {c: data.draw(VALUES[c], label=c) for c in LEAF_COLUMNS}
    row.update(seq=seq, key_version=lab.keys.primary, mac=secrets.token_bytes(32))
    row["leaf_hash"] = leaf_of(row) if data.draw(st.booleans()) else secrets.token_bytes(32)
    return row


def against(lab: Lab, data: st.DataObject) -> Path | None:
    return data.draw(st.sampled_from([None, lab.checkpoints]), label="against")


def attack_modify(bench: Bench, data: st.DataObject) -> Expect:
    lab = bench.lab
    seq = data.draw(st.integers(0, SIZE - 1), label="seq")
    column = data.draw(st.sampled_from(COLUMNS), label="column")
    original = lab.entries[seq]
    value = data.draw(VALUES[column].filter(lambda v: v != original[column]), label="value")
    rehash = column in LEAF_COLUMNS and data.draw(st.booleans(), label="recompute leaf_hash")
    engine = bench.fresh("a")
    with engine.begin() as conn:
        unlock(conn)
        conn.execute(
            sa.text(f"UPDATE audit_log SET {column} = :v WHERE seq = :s"),  # noqa: S608
            {"v": value, "s": seq},
        )
        if rehash:
            conn.execute(
                sa.text("UPDATE audit_log SET leaf_hash = :h WHERE seq = :s"),
                {"h": leaf_of({**original, column: value}), "s": seq},
            )
    return Expect(engine, "modified", seq, against(lab, data))


def attack_delete(bench: Bench, data: st.DataObject) -> Expect:
    seq = data.draw(st.integers(0, SIZE - 2), label="seq")  # the last one: see truncate
    engine = bench.fresh("a")
    with engine.begin() as conn:
        unlock(conn)
        conn.execute(sa.text("DELETE FROM audit_log WHERE seq = :s"), {"s": seq})
    return Expect(engine, "deleted", seq, against(bench.lab, data))


def attack_delete_renumber(bench: Bench, data: st.DataObject) -> Expect:
    seq = data.draw(st.integers(0, SIZE - 2), label="seq")
    engine = bench.fresh("a")
    with engine.begin() as conn:
        unlock(conn)
        conn.execute(sa.text("DELETE FROM audit_log WHERE seq = :s"), {"s": seq})
        renumber(conn, seq + 1, -1)
    return Expect(engine, "deleted", seq, against(bench.lab, data))


def attack_insert_end(bench: Bench, data: st.DataObject) -> Expect:
    row = forged_row(bench.lab, data, SIZE)
    engine = bench.fresh("a")
    with engine.begin() as conn:
        unlock(conn)
        insert_row(conn, row)
    return Expect(engine, "inserted", SIZE, against(bench.lab, data))


def attack_insert_middle(bench: Bench, data: st.DataObject) -> Expect:
    seq = data.draw(st.integers(0, SIZE - 1), label="seq")
    row = forged_row(bench.lab, data, seq)
    engine = bench.fresh("a")
    with engine.begin() as conn:
        unlock(conn)
        renumber(conn, seq, 1)
        insert_row(conn, row)
    return Expect(engine, "inserted", seq, against(bench.lab, data))


def attack_replay(bench: Bench, data: st.DataObject) -> Expect:
    """A genuine earlier entry (valid leaf and MAC, for its own seq) copied in again later."""
    seq = data.draw(st.integers(1, SIZE), label="seq")
    copied = data.draw(st.integers(0, seq - 1), label="copy of")
    engine = bench.fresh("a")
    with engine.begin() as conn:
        unlock(conn)
        if seq < SIZE:
            renumber(conn, seq, 1)
        insert_row(conn, {**bench.lab.entries[copied], "seq": seq})
    return Expect(engine, "inserted", seq, against(bench.lab, data))


def attack_swap(bench: Bench, data: st.DataObject) -> Expect:
    first, second = sorted(data.draw(st.sets(st.integers(0, SIZE - 1), min_size=2, max_size=2)))
    engine = bench.fresh("a")
    with engine.begin() as conn:
        unlock(conn)
        set_seq(conn, first, -1)
        set_seq(conn, second, first)
        set_seq(conn, -1, second)
    return Expect(engine, "reordered", first, against(bench.lab, data))


def attack_truncate(bench: Bench, data: st.DataObject) -> Expect:
    """Rows from k on go; covering up (state row and stored heads too) leaves only the checkpoint
    file to tell."""
    lab = bench.lab
    seq = data.draw(st.integers(0, max(lab.heads) - 1), label="from seq")
    cover_up = data.draw(st.booleans(), label="cover up")
    engine = bench.fresh("a")
    with engine.begin() as conn:
        unlock(conn)
        conn.execute(sa.text("DELETE FROM audit_log WHERE seq >= :s"), {"s": seq})
        if cover_up:
            conn.execute(sa.text("DELETE FROM audit_tree_heads WHERE size > :s"), {"s": seq})
            conn.execute(
                sa.text("UPDATE audit_state SET size = :s, last_head_size = :h"),
                {"s": seq, "h": max([h for h in lab.heads if h <= seq], default=0)},
            )
    return Expect(engine, "truncated", seq, lab.checkpoints if cover_up else against(lab, data))


def checkpoint_prefix(bench: Bench, data: st.DataObject, covering: int) -> Path:
    """The checkpoint file as shipped off the host up to some head after `covering`."""
    lab = bench.lab
    lines = lab.checkpoints.read_text().splitlines(keepends=True)
    needed = next(i for i, h in enumerate(lab.heads) if h > covering) + 1
    keep = data.draw(st.integers(needed, len(lines)), label="checkpoint lines")
    path = bench.tmp / f"checkpoints-{next(bench.counter)}.jsonl"
    path.write_text("".join(lines[:keep]))
    return path


def attack_rollback(bench: Bench, data: st.DataObject) -> Expect:
    """The store restored from a backup taken at size m, after more heads were published."""
    size = data.draw(st.sampled_from(SNAPSHOT_SIZES), label="backup size")
    path = checkpoint_prefix(bench, data, size)
    engine = bench.fresh(f"snap_{size}")
    assert verify(engine, bench.lab.keys).ok  # only the copy kept off the host can tell
    return Expect(engine, "truncated", size, path)


ATTACKS: dict[str, Callable[[Bench, st.DataObject], Expect]] = {
    "modify": attack_modify,
    "delete": attack_delete,
    "delete_renumber": attack_delete_renumber,
    "insert_end": attack_insert_end,
    "insert_middle": attack_insert_middle,
    "replay": attack_replay,
    "swap": attack_swap,
    "truncate": attack_truncate,
    "rollback": attack_rollback,
}
assert set(ATTACKS) | {"fork"} == set(EXAMPLES)


def examples(bench: Bench, attack: str) -> int:
    sqlite, postgres = EXAMPLES[attack]
    return sqlite if bench.backend == "sqlite" else postgres


def run_examples(bench: Bench, attack: str, check: Callable[[st.DataObject], None]) -> int:
    """Run `check` on Hypothesis examples; how many passed (fewer than asked only when the
    attack has fewer distinct cases than that)."""
    passed = 0

    @settings(
        max_examples=examples(bench, attack),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        nonlocal passed
        check(data)
        passed += 1

    run()
    asked = examples(bench, attack)
    assert passed >= min(asked, 30), f"only {passed} of {asked} examples ran"
    return passed


def first_finding(report: VerifyReport) -> tuple[str, int | None]:
    assert not report.ok, "the tampering went unnoticed"
    return report.findings[0].kind, report.findings[0].seq


# -- the tests ---------------------------------------------------------------------------------


def test_untouched_copies_verify(bench: Bench, monkeypatch: pytest.MonkeyPatch) -> None:
    lab = bench.lab
    for name in ("a", *(f"snap_{m}" for m in SNAPSHOT_SIZES), *(f"fork_{f}" for f in FORK_POINTS)):
        report = verify(bench.fresh(name), lab.keys)
        assert report.ok, (name, report.findings)
    with monkeypatch.context() as patch:
        patch.setattr(blocks, "BLOCK_BITS", 5)
        report = verify(bench.reopenable(bench.fresh("a")), lab.keys, processes=2)
        assert report.ok, report.findings
        assert (report.size, report.processes) == (SIZE, 2)
    engine = bench.fresh("a")
    report = verify(engine, lab.keys, against=lab.checkpoints)
    assert report.ok, report.findings
    assert (report.size, report.checkpoints) == (SIZE, len(lab.heads))
    assert report.heads == len(lab.heads)


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_attack_is_named_and_located(bench: Bench, attack: str) -> None:
    def check(data: st.DataObject) -> None:
        expect = ATTACKS[attack](bench, data)
        report = verify(expect.engine, bench.lab.keys, against=expect.against)
        assert first_finding(report) == (expect.kind, expect.seq), report.findings[0].message

    run_examples(bench, attack, check)


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_worker_processes_name_and_locate_every_attack(
    bench: Bench, attack: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same attacks, checked by two worker processes in blocks of 32 entries (ten blocks,
    heads and damage inside them and at their edges): the same first finding as one process."""
    monkeypatch.setattr(blocks, "BLOCK_BITS", 5)
    asked = max(4, examples(bench, attack) // 10)

    @settings(
        max_examples=asked,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        expect = ATTACKS[attack](bench, data)
        engine = bench.reopenable(expect.engine)
        report = verify(engine, bench.lab.keys, against=expect.against, processes=2)
        assert report.processes == 2
        assert first_finding(report) == (expect.kind, expect.seq), report.findings[0].message
        alone = verify(engine, bench.lab.keys, against=expect.against, processes=1)
        assert report.findings == alone.findings

    run()


def test_fork_is_named_and_located(bench: Bench) -> None:
    """An insider with the audit key replaces the log with a consistent one (valid MACs, heads
    re-signed) that shares the first `point` entries with the original: only the heads published
    off the host tell, and the fork is located at the last of them that still matches."""
    lab = bench.lab

    def check(data: st.DataObject) -> None:
        point = data.draw(st.sampled_from(FORK_POINTS), label="fork point")
        path = checkpoint_prefix(bench, data, point)
        engine = bench.fresh(f"fork_{point}")
        assert verify(engine, lab.keys).ok  # consistent in itself
        report = verify(engine, lab.keys, against=path)
        matched = max([h for h in lab.heads if h <= point], default=0)
        assert first_finding(report) == ("forked", matched), report.findings[0].message

    run_examples(bench, "fork", check)


def test_fork_from_the_first_entry_is_located_at_seq_0(audit_store: AuditStore) -> None:
    store = audit_store
    with store.log(head_every=HEAD_EVERY) as log:
        for i in range(120):
            log.append(EventName.VAULT_CREDENTIAL_USED, subject=f"user:{i}", details={"log": "a"})
            store.clock.advance(1)
    # The insider: triggers off, every audit row gone, the appenders' state reset, and another
    # history written with the same audit key (so the same origin and valid MACs and heads).
    with store.engine.begin() as conn:
        unlock(conn)
        for table in AUDIT_TABLES:
            conn.exec_driver_sql(f"DELETE FROM {table}")  # noqa: S608
        conn.execute(
            sa.text(
                "UPDATE audit_state SET size = 0, frontier = :f, root = :r, last_head_size = 0, "
                "last_head_ts = 0"
            ),
            {"f": b"", "r": EMPTY_ROOT},
        )
    other = store.checkpoints.with_name("other.jsonl")
    with store.log(head_every=HEAD_EVERY, checkpoint_file=other) as log:
        for i in range(120):
            log.append(EventName.VAULT_CREDENTIAL_USED, subject=f"user:{i}", details={"log": "b"})
            store.clock.advance(1)
    assert verify(store.engine, store.keys).ok
    report = verify(store.engine, store.keys, against=store.checkpoints)
    assert first_finding(report)[0] == "forked", report.findings[0].message
    assert first_finding(report) == ("forked", 0), report.findings[0].message


def test_delete_the_next_to_last_entry_and_renumber(bench: Bench) -> None:
    engine = bench.fresh("a")
    with engine.begin() as conn:
        unlock(conn)
        conn.execute(sa.text("DELETE FROM audit_log WHERE seq = :s"), {"s": SIZE - 2})
        renumber(conn, SIZE - 1, -1)
    report = verify(engine, bench.lab.keys)
    assert first_finding(report) == ("deleted", SIZE - 2), report.findings[0].message


@pytest.mark.parametrize("cover_up", [False, True])
def test_truncate_everything(bench: Bench, cover_up: bool) -> None:
    """No entry left (verify once raised AssertionError on a chunk with no rows)."""
    engine = bench.fresh("a")
    with engine.begin() as conn:
        unlock(conn)
        conn.exec_driver_sql("DELETE FROM audit_log")
        if cover_up:
            conn.exec_driver_sql("DELETE FROM audit_tree_heads")
            conn.exec_driver_sql("UPDATE audit_state SET size = 0, last_head_size = 0")
    report = verify(engine, bench.lab.keys, against=bench.lab.checkpoints)
    assert first_finding(report) == ("truncated", 0)


def test_delete_the_last_entry_is_a_truncation(bench: Bench) -> None:
    engine = bench.fresh("a")
    with engine.begin() as conn:
        unlock(conn)
        conn.execute(sa.text("DELETE FROM audit_log WHERE seq = :s"), {"s": SIZE - 1})
    assert first_finding(verify(engine, bench.lab.keys)) == ("truncated", SIZE - 1)


def test_rewritten_stored_subtree_hash_is_modified(bench: Bench) -> None:
    """The stored hashes proofs are made from are checked too: entries 0-255 are one node."""
    engine = bench.fresh("a")
    with engine.begin() as conn:
        unlock(conn)
        changed = conn.execute(
            sa.text("UPDATE audit_nodes SET hash = :h WHERE level = 8 AND idx = 0"),
            {"h": secrets.token_bytes(32)},
        )
        assert changed.rowcount == 1
    assert first_finding(verify(engine, bench.lab.keys)) == ("modified", 0)


@pytest.mark.parametrize("seq", [1, 200, 255, 256, 300])
def test_rewritten_entry_with_its_leaf_recomputed_is_located_at_the_entry(
    bench: Bench, seq: int
) -> None:
    """Inside the stored subtree of entries 0-255 too: the entry, not the subtree, is named."""
    original = bench.lab.entries[seq]
    engine = bench.fresh("a")
    with engine.begin() as conn:
        unlock(conn)
        conn.execute(
            sa.text("UPDATE audit_log SET ts = 0, leaf_hash = :h WHERE seq = :s"),
            {"s": seq, "h": leaf_of({**original, "ts": 0})},
        )
    assert first_finding(verify(engine, bench.lab.keys)) == ("modified", seq)


def test_tree_head_with_a_forged_signature(bench: Bench) -> None:
    engine = bench.fresh("a")
    size = bench.lab.heads[2]
    with engine.begin() as conn:
        unlock(conn)
        conn.execute(
            sa.text("UPDATE audit_tree_heads SET signature = :s WHERE size = :n"),
            {"s": secrets.token_bytes(64), "n": size},
        )
    assert first_finding(verify(engine, bench.lab.keys)) == ("bad signature", size)
