"""`verify`'s report on intact and damaged logs and on bad checkpoint files; what `append` lets
in (and refuses, writing nothing); the canonical leaf data; actor hashing; proofs, including
after a prune.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
import secrets
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.audit.conftest import AuditStore
from tests.fakes import Fakes

from tradeguard.audit import (
    AuditInputError,
    AuditKeys,
    AuditLog,
    AuditOptions,
    CheckpointError,
    TreeHead,
    blocks,
    tables,
    verify,
)
from tradeguard.audit.entry import Entry
from tradeguard.audit.heads import append_checkpoint, origin_of
from tradeguard.audit.merkle import ProofError, leaf_hash
from tradeguard.audit.proofs import ProofRequestError, check_proof, consistency, inclusion
from tradeguard.audit.reading import entries_from
from tradeguard.audit.retention import prune
from tradeguard.core.events import EventName
from tradeguard.crypto import DataKey, Keyring
from tradeguard.secrets import Secret

USED = EventName.VAULT_CREDENTIAL_USED
HEAD_EVERY = 10


def fill(store: AuditStore, n: int, *, start: int = 0, **options: Any) -> None:
    """`n` entries from one log, closed (so a final head covers them)."""
    options.setdefault("head_every", HEAD_EVERY)
    with store.log(**options) as log:
        for i in range(start, start + n):
            log.append(
                USED,
                actor=f"user:{i % 3}",
                subject=f"credential:{i}",
                ip=f"10.0.0.{i % 250 + 1}",
                details={"n": i, "venue": "binance"},
            )
            store.clock.advance(1)


def all_rows(engine: sa.Engine, table: sa.Table = tables.entries) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(table)))


def db_head_sizes(engine: sa.Engine) -> list[int]:
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(sa.text("SELECT size FROM audit_tree_heads ORDER BY 1"))]


def checkpoint_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def origin(engine: sa.Engine) -> str:
    with engine.connect() as conn:
        return origin_of(tables.instance_id(conn))


def first(report: Any) -> tuple[str, int | None]:
    assert not report.ok, "verify found nothing"
    return report.findings[0].kind, report.findings[0].seq


def unlock(conn: sa.Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("ALTER TABLE audit_log DISABLE TRIGGER USER")
    else:
        conn.exec_driver_sql("DROP TRIGGER audit_log_no_update")


# -- the report on an intact log ---------------------------------------------------------------


def test_intact_log_report(audit_store: AuditStore) -> None:
    fill(audit_store, 35)
    heads = db_head_sizes(audit_store.engine)
    lines = checkpoint_lines(audit_store.checkpoints)
    assert heads == [line["tree_size"] for line in lines]
    assert heads[-1] == 35
    report = verify(audit_store.engine, audit_store.keys)
    assert report.ok, report.findings
    assert (report.size, report.first_seq, report.entries) == (35, 0, 35)
    assert (report.heads, report.checkpoints) == (len(heads), 0)
    report = verify(audit_store.engine, audit_store.keys, against=audit_store.checkpoints)
    assert report.ok, report.findings
    assert (report.heads, report.checkpoints) == (len(heads), len(lines))
    assert report.root == base64.b64decode(lines[-1]["root_hash"])


def test_empty_log_verifies(audit_store: AuditStore) -> None:
    report = verify(audit_store.engine, audit_store.keys)
    assert report.ok
    assert (report.size, report.heads) == (0, 0)
    assert report.root == hashlib.sha256(b"").digest()


def test_heads_come_every_head_every_entries(audit_store: AuditStore) -> None:
    """Not on every batch once head_interval has passed since the last head (the writer once
    took its emptied queue for 'the head timer fired': a head at size 1 on the first append)."""
    with audit_store.log(head_every=HEAD_EVERY) as log:
        for _ in range(25):
            log.append(USED)  # the clock stands still: no head is due by time
    assert db_head_sizes(audit_store.engine) == [10, 20, 25]


def test_a_head_comes_head_interval_after_an_entry_while_entries_keep_arriving(
    audit_store: AuditStore,
) -> None:
    """Fewer than head_every entries, arriving steadily: the time rule still signs them."""
    with audit_store.log(head_every=1000, head_interval=60) as log:
        for _ in range(7):
            log.append(USED)
            audit_store.clock.advance(10)  # the 7th entry comes 60 s after the 1st
        assert db_head_sizes(audit_store.engine) == [7]
        log.append(USED)
    assert db_head_sizes(audit_store.engine) == [7, 8]  # and the close signs the rest


def test_a_head_comes_head_interval_after_an_entry_when_nothing_follows(
    audit_store: AuditStore,
) -> None:
    """The writer wakes for the deadline itself: an idle log does not leave entries unsigned."""
    interval = 0.2  # real seconds the writer sleeps at most before it looks at the clock again
    with audit_store.log(head_every=1000, head_interval=interval) as log:
        log.append(USED)
        log.append(USED)
        assert db_head_sizes(audit_store.engine) == []
        audit_store.clock.advance(interval)
        deadline = time.monotonic() + 10
        while not db_head_sizes(audit_store.engine) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert db_head_sizes(audit_store.engine) == [2]


# -- damage named by the report ----------------------------------------------------------------


def test_garbage_details_is_modified(audit_store: AuditStore) -> None:
    fill(audit_store, 25)
    with audit_store.engine.begin() as conn:
        unlock(conn)
        conn.execute(sa.text("UPDATE audit_log SET details = 'not json {' WHERE seq = 13"))
    assert first(verify(audit_store.engine, audit_store.keys)) == ("modified", 13)


@pytest.mark.parametrize("column", ["event", "actor", "subject", "ip", "details"])
@pytest.mark.parametrize("processes", [1, 2])
def test_text_that_is_not_utf8_is_modified(
    audit_store: AuditStore, column: str, processes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite keeps any bytes in a text column, and its driver refuses to read them back as
    text: verify names the entry instead of failing with the driver's decode error (and so
    does an entry next to it, which classifying the damage reads). PostgreSQL refuses such
    text on the way in."""
    if audit_store.target.backend != "sqlite":
        pytest.skip("PostgreSQL stores only valid UTF-8")
    fill(audit_store, 25)
    monkeypatch.setattr(blocks, "BLOCK_BITS", 3)
    with audit_store.engine.begin() as conn:
        unlock(conn)
        conn.exec_driver_sql(
            f"UPDATE audit_log SET {column} = CAST(x'7b22ff22c37d' AS TEXT) WHERE seq IN (13, 14)"  # noqa: S608
        )
    report = verify(audit_store.engine, audit_store.keys, processes=processes)
    assert first(report) == ("modified", 13), report.findings[0].message


def test_entry_appended_after_the_last_head_is_checked_by_its_mac(audit_store: AuditStore) -> None:
    fill(audit_store, 12)
    log = audit_store.log(head_every=1000)
    assert log.append(USED, details={"n": 12}) == 12  # no head covers it yet
    with audit_store.engine.begin() as conn:
        unlock(conn)
        conn.execute(sa.text("UPDATE audit_log SET mac = :m WHERE seq = 12"), {"m": bytes(32)})
    assert first(verify(audit_store.engine, audit_store.keys)) == ("modified", 12)


class Versions:
    """Audit keys made from one set of seeds, with any subset of the versions."""

    def __init__(self, *versions: int) -> None:
        self.seeds = {v: DataKey.generate() for v in versions}
        self.made: list[AuditKeys] = []

    def keys(self, *versions: int) -> AuditKeys:
        keyring = Keyring(
            {v: self.seeds[v] for v in versions}, versions[-1], f"versions {versions}"
        )
        self.made.append(AuditKeys(keyring))
        return self.made[-1]

    def wipe(self) -> None:
        for seed in self.seeds.values():
            seed.wipe()


@pytest.fixture
def versions() -> Iterator[Versions]:
    made = Versions(1, 2)
    try:
        yield made
    finally:
        made.wipe()


def log_with(store: AuditStore, keys: AuditKeys, n: int, start: int) -> None:
    options = AuditOptions(head_every=HEAD_EVERY, window=0.0, checkpoint_file=store.checkpoints)
    with AuditLog(store.engine, keys, clock=store.clock, options=options) as log:
        for i in range(start, start + n):
            log.append(USED, details={"n": i})


def test_missing_key_names_the_version(audit_store: AuditStore, versions: Versions) -> None:
    log_with(audit_store, versions.keys(1, 2), 15, 0)  # written with version 2 (primary)
    report = verify(audit_store.engine, versions.keys(1))
    assert first(report)[0] == "missing key"
    assert "version 2" in report.findings[0].message
    assert verify(audit_store.engine, versions.keys(1, 2)).ok


def rotated(store: AuditStore, versions: Versions) -> None:
    """15 entries under audit key version 1, then 15 under version 2 (rotated)."""
    log_with(store, versions.keys(1), 15, 0)
    log_with(store, versions.keys(1, 2), 15, 15)


def test_actor_hashes_stay_comparable_across_a_key_rotation(
    audit_store: AuditStore, versions: Versions
) -> None:
    """The pepper is the version that was primary at the first append, for good."""
    options = AuditOptions(window=0.0, checkpoint_file=audit_store.checkpoints)
    hashes = []
    for keys in (versions.keys(1), versions.keys(1, 2)):
        with AuditLog(audit_store.engine, keys, clock=audit_store.clock, options=options) as log:
            seq = log.append(USED, actor="user:42")
            hashes.append(log.actor("user:42"))
        assert stored_entry(audit_store.engine, seq).actor == hashes[-1]
    assert hashes[0] == hashes[1]
    other = Versions(1)
    try:  # another audit key, another pepper: the hash is not the id under a public function
        assert other.keys(1).pepper(1).digest(b"user:42").hex() != hashes[0]
    finally:
        other.wipe()


@pytest.mark.parametrize("processes", [1, 2])
def test_log_verifies_after_a_key_rotation(
    audit_store: AuditStore, versions: Versions, processes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Entries under two key versions in one block (verify once raised AssertionError): in
    blocks of 8, so one holds seqs 8 to 15, checked by this process or by workers."""
    rotated(audit_store, versions)
    monkeypatch.setattr(blocks, "BLOCK_BITS", 3)
    report = verify(
        audit_store.engine,
        versions.keys(1, 2),
        against=audit_store.checkpoints,
        processes=processes,
    )
    assert report.ok, report.findings
    assert (report.size, report.processes) == (30, processes)


@pytest.mark.parametrize("processes", [1, 2])
def test_missing_key_after_a_rotation(
    audit_store: AuditStore, versions: Versions, processes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rotated(audit_store, versions)
    monkeypatch.setattr(blocks, "BLOCK_BITS", 3)
    only_old = verify(audit_store.engine, versions.keys(1), processes=processes)
    assert first(only_old)[0] == "missing key"
    assert "version 2" in only_old.findings[0].message
    assert only_old.findings[0].seq is not None
    assert only_old.findings[0].seq > 15
    only_new = verify(audit_store.engine, versions.keys(2), processes=processes)
    assert first(only_new)[0] == "missing key"
    assert "version 1" in only_new.findings[0].message
    assert only_new.findings[0].seq is not None
    assert only_new.findings[0].seq <= 15


# -- checkpoint files --------------------------------------------------------------------------


def test_checkpoint_with_a_bad_signature(audit_store: AuditStore) -> None:
    fill(audit_store, 35)
    lines = audit_store.checkpoints.read_text().splitlines()
    target = len(lines) // 2
    document = json.loads(lines[target])
    signature = bytearray(base64.b64decode(document["signature"]))
    signature[7] ^= 0x01
    document["signature"] = base64.b64encode(signature).decode()
    lines[target] = json.dumps(document, sort_keys=True)
    audit_store.checkpoints.write_text("\n".join(lines) + "\n")
    report = verify(audit_store.engine, audit_store.keys, against=audit_store.checkpoints)
    assert first(report) == ("bad signature", document["tree_size"])
    assert f"line {target + 1}" in report.findings[0].message


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("this is not json", "line 2"),
        ("[1, 2]", "not a JSON object"),
        ('{"origin": "x"}', "tree_size"),
        ("REMOVE:signature", "signature"),
        ("REMOVE:root_hash", "root_hash"),
        ("REPLACE:tree_size=-1", "tree_size"),
        ("REPLACE:tree_size=true", "tree_size"),
        ('REPLACE:root_hash="abc"', "root_hash"),
        ('REPLACE:signature="AAAA"', "signature"),
        ("REPLACE:origin=null", "origin"),
    ],
)
def test_malformed_checkpoint_line(audit_store: AuditStore, line: str, reason: str) -> None:
    fill(audit_store, 25)
    lines = audit_store.checkpoints.read_text().splitlines()
    if line.startswith(("REMOVE:", "REPLACE:")):
        document = json.loads(lines[1])
        if line.startswith("REMOVE:"):
            del document[line.removeprefix("REMOVE:")]
        else:
            name, value = line.removeprefix("REPLACE:").split("=", 1)
            document[name] = json.loads(value)
        line = json.dumps(document)
    lines[1] = line
    audit_store.checkpoints.write_text("\n".join(lines) + "\n")
    with pytest.raises(CheckpointError, match="line 2") as raised:
        verify(audit_store.engine, audit_store.keys, against=audit_store.checkpoints)
    assert reason in str(raised.value)
    assert str(audit_store.checkpoints) in str(raised.value)


def test_missing_checkpoint_file(audit_store: AuditStore, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="cannot read"):
        verify(audit_store.engine, audit_store.keys, against=tmp_path / "nowhere.jsonl")


def published(store: AuditStore, path: Path, size: int, root: bytes, where: str = "") -> None:
    """A validly signed head (the audit key's) in a checkpoint file of its own."""
    head = TreeHead.sign(store.keys, where or origin(store.engine), size, root, 1_800_000_000)
    append_checkpoint(path, head, store.keys)


def test_signed_head_beyond_the_log_is_truncated(audit_store: AuditStore, tmp_path: Path) -> None:
    fill(audit_store, 25)
    path = tmp_path / "published.jsonl"
    published(audit_store, path, 40, secrets.token_bytes(32))
    report = verify(audit_store.engine, audit_store.keys, against=path)
    assert first(report) == ("truncated", 25)
    assert "40" in report.findings[0].message


def test_signed_head_with_another_root_is_forked(audit_store: AuditStore, tmp_path: Path) -> None:
    """Among the published heads, one at a size the log has reached but with another root: the
    fork is located after the last published head that still matches."""
    fill(audit_store, 25)
    sizes = [line["tree_size"] for line in checkpoint_lines(audit_store.checkpoints)]
    size = next(s for s in range(24, 0, -1) if s not in sizes)
    path = tmp_path / "published.jsonl"
    path.write_bytes(audit_store.checkpoints.read_bytes())
    published(audit_store, path, size, secrets.token_bytes(32))
    report = verify(audit_store.engine, audit_store.keys, against=path)
    assert first(report) == ("forked", max(s for s in sizes if s < size))
    assert f"at size {size}" in report.findings[0].message


def test_signed_head_of_another_log_is_forked(audit_store: AuditStore, tmp_path: Path) -> None:
    fill(audit_store, 25)
    path = tmp_path / "published.jsonl"
    published(audit_store, path, 20, secrets.token_bytes(32), "tradeguard.audit/another")
    report = verify(audit_store.engine, audit_store.keys, against=path)
    assert first(report) == ("forked", 20)
    assert "another log" in report.findings[0].message


# -- what append refuses -----------------------------------------------------------------------


class Opaque:
    pass


BAD_INPUT: dict[str, dict[str, Any]] = {
    "unknown event": {"event": "vault.credential.stolen"},
    "empty event": {"event": ""},
    "float": {"details": {"price": 1.5}},
    "float in a list": {"details": {"prices": [1, 2.5]}},
    "Secret": {"details": {"key": Secret("not for the log")}},
    "bytes": {"details": {"raw": b"\x00\x01"}},
    "bytearray": {"details": {"raw": bytearray(b"\x00\x01")}},
    "object": {"details": {"thing": Opaque()}},
    "set": {"details": {"ids": {1, 2}}},
    "NaN Decimal": {"details": {"qty": Decimal("NaN")}},
    "infinite Decimal": {"details": {"qty": Decimal("-Infinity")}},
    "upper-case key": {"details": {"Venue": "x"}},
    "key with a dash": {"details": {"a-b": 1}},
    "key with a space": {"details": {"a b": 1}},
    "empty key": {"details": {"": 1}},
    "key starting with a digit": {"details": {"1a": 1}},
    "long key": {"details": {"k" * 65: 1}},
    "integer key": {"details": {1: "x"}},
    "nested bad key": {"details": {"a": {"B": 1}}},
    "too deep (mappings)": {"details": {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}},
    "too deep (lists)": {"details": {"a": [[[[[1]]]]]}},
    "long string": {"details": {"note": "x" * 4097}},
    "large details": {"details": {f"k{i}": "x" * 4000 for i in range(20)}},
    "subject with spaces": {"subject": "user 42"},
    "empty subject": {"subject": ""},
    "subject with a quote": {"subject": 'user"42'},
    "long subject": {"subject": "u" * 257},
    "not an ip": {"ip": "localhost"},
    "ip out of range": {"ip": "999.1.1.1"},
    "ip network": {"ip": "10.0.0.0/8"},
    "naive time": {"at": datetime(2026, 1, 1)},
    # Once raised as AttributeError / UnicodeEncodeError / ValueError, or (a lone surrogate in
    # details) accepted and then failed in the writer, with every entry of its group commit:
    "details not a mapping": {"details": ["a", "list"]},
    "actor with a lone surrogate": {"actor": "user:\ud800"},
    "integer longer than 4300 digits": {"details": {"n": 10**5000}},
    "details with a lone surrogate": {"details": {"note": "\ud800"}},
}


@pytest.fixture
def open_log(audit_store: AuditStore) -> AuditLog:
    log = audit_store.log()
    assert log.append(USED) == 0
    return log


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_refused_and_nothing_written(
    audit_store: AuditStore, open_log: AuditLog, case: str
) -> None:
    arguments = {"event": USED, **BAD_INPUT[case]}
    with pytest.raises(AuditInputError):
        open_log.append(**arguments)
    assert len(all_rows(audit_store.engine)) == 1
    assert open_log.append(USED) == 1  # and the log goes on


def test_ip_zone_id_cannot_break_the_leaf(audit_store: AuditStore, open_log: AuditLog) -> None:
    """Any text may follow an IPv6 zone's `%`: refused, or stored so that the leaf stays
    canonical JSON (a quote once made the genuine entry fail verify as 'modified')."""
    try:
        seq = open_log.append(USED, ip='fe80::1%x"y')
    except AuditInputError:
        return
    open_log.close()
    entry = stored_entry(audit_store.engine, seq)
    assert entry.leaf_data() == canonical(entry)
    assert verify(audit_store.engine, audit_store.keys).ok


# -- what append keeps: redacted details, hashed actors, canonical leaves -----------------------


def stored_entry(engine: sa.Engine, seq: int) -> Entry:
    with engine.connect() as conn:
        r = conn.execute(sa.select(tables.entries).where(tables.entries.c.seq == seq)).one()
    return Entry(r.seq, r.ts, r.event, r.actor, r.subject, r.ip, r.details)


def canonical(entry: Entry) -> bytes:
    return json.dumps(
        entry.as_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode()


def generated_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def test_details_strings_pass_the_redactor(audit_store: AuditStore, open_log: AuditLog) -> None:
    fakes = Fakes(secrets.randbits(32))
    aws = fakes.aws_access_key_id()
    pem = generated_pem()
    seq = open_log.append(
        USED,
        details={
            "note": f"rotated key {aws} for the desk",
            "pem": pem,
            "nested": {"items": [f"id={aws}", "plain"]},
        },
    )
    details = stored_entry(audit_store.engine, seq).details
    assert aws not in details
    body = "".join(pem.splitlines()[1:-1])
    assert body[:40] not in details
    assert "BEGIN" not in details
    stored = json.loads(details)
    assert stored["note"].startswith("rotated key [REDACTED:")
    assert stored["pem"].startswith("[REDACTED:")
    assert stored["nested"]["items"][0].startswith("id=[REDACTED:")
    assert stored["nested"]["items"][1] == "plain"


def test_actor_is_stored_as_a_keyed_hash(audit_store: AuditStore, open_log: AuditLog) -> None:
    seqs = [open_log.append(USED, actor=a) for a in ("user:42", "user:42", "user:43")]
    rows = [stored_entry(audit_store.engine, s) for s in seqs]
    for row in rows:
        assert row.actor is not None
        assert re.fullmatch(r"[0-9a-f]{64}", row.actor)
        assert "user:4" not in canonical(row).decode()
    assert rows[0].actor == rows[1].actor == open_log.actor("user:42")
    assert rows[2].actor != rows[0].actor
    assert rows[0].actor != hashlib.sha256(b"user:42").hexdigest()  # keyed, not a plain hash
    with audit_store.engine.connect() as conn:
        found = conn.execute(
            sa.select(tables.entries.c.seq).where(
                tables.entries.c.actor == open_log.actor("user:42")
            )
        ).scalars()
        assert list(found) == seqs[:2]


TEXT = st.text(max_size=30)
KEYS = st.from_regex(r"[a-z][a-z0-9_.]{0,20}", fullmatch=True)
SUBJECTS = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9:._@/+=-]{0,60}", fullmatch=True)
LEAVES: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**18), 10**18),
    st.decimals(allow_nan=False, allow_infinity=False, places=4),
    TEXT,
)
DETAILS = st.dictionaries(
    KEYS,
    st.recursive(
        LEAVES,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.dictionaries(
                st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True), inner, max_size=3
            ),
        ),
        max_leaves=8,
    ),
    max_size=5,
)


def test_leaf_data_is_the_canonical_json_of_the_entry(
    audit_store: AuditStore, open_log: AuditLog
) -> None:
    postgres = audit_store.target.backend == "postgresql"

    @settings(
        max_examples=25 if postgres else 80,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.nested_given],
    )
    @given(
        event=st.sampled_from(list(EventName)),
        actor=st.one_of(st.none(), st.text(min_size=1, max_size=30)),
        subject=st.one_of(
            st.none(), st.from_regex(r"[A-Za-z0-9][A-Za-z0-9:._@/+=-]{0,60}", fullmatch=True)
        ),
        ip=st.one_of(st.none(), st.ip_addresses().map(str)),
        details=DETAILS,
    )
    def check(
        event: EventName,
        actor: str | None,
        subject: str | None,
        ip: str | None,
        details: dict[str, Any],
    ) -> None:
        seq = open_log.append(event, actor=actor, subject=subject, ip=ip, details=details)
        entry = stored_entry(audit_store.engine, seq)
        assert entry.leaf_data() == canonical(entry)
        with audit_store.engine.connect() as conn:
            stored_leaf = conn.execute(
                sa.select(tables.entries.c.leaf_hash).where(tables.entries.c.seq == seq)
            ).scalar_one()
        assert bytes(stored_leaf) == hashlib.sha256(b"\x00" + canonical(entry)).digest()
        assert json.loads(canonical(entry))["details"] == json.loads(entry.details)

    check()
    open_log.close()
    assert verify(audit_store.engine, audit_store.keys).ok


# -- proofs ------------------------------------------------------------------------------------


def append_many(log: AuditLog, n: int, threads: int = 8, **fields: Any) -> None:
    """Append `n` entries from several threads (group commits: fast)."""

    def work(part: int) -> None:
        for i in range(part, n, threads):
            log.append(USED, details={"n": i}, **fields)

    workers = [threading.Thread(target=work, args=(p,)) for p in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


@pytest.fixture
def proved(audit_store: AuditStore) -> AuditStore:
    """300 entries (so stored subtree nodes exist), a final head over all of them."""
    with audit_store.log(head_every=100) as log:
        append_many(log, 300)
    return audit_store


INCLUDED = (0, 1, 7, 100, 255, 256, 257, 298, 299)


def test_inclusion_proofs_check(proved: AuditStore) -> None:
    with proved.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(tables.nodes)).scalar_one() > 0
    for seq in INCLUDED:
        document = inclusion(proved.engine, proved.keys, seq)
        head = check_proof(json.loads(json.dumps(document)), proved.keys)
        assert head.size == 300
        assert document["entry"]["seq"] == seq
        assert base64.b64decode(document["leaf_hash"]) == leaf_hash(canonical_doc(document))


def canonical_doc(document: dict[str, Any]) -> bytes:
    return json.dumps(
        document["entry"], sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode()


def test_consistency_proofs_check(proved: AuditStore) -> None:
    for old in (1, 2, 99, 100, 255, 256, 257, 299, 300):
        document = consistency(proved.engine, proved.keys, old)
        head = check_proof(json.loads(json.dumps(document)), proved.keys)
        assert head.size == 300


def flipped(text: str) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[0] ^= 0x80
    return base64.b64encode(raw).decode()


def tampered_inclusion(document: dict[str, Any], how: str) -> dict[str, Any]:
    doc = copy.deepcopy(document)
    if how == "proof byte":
        doc["proof"][len(doc["proof"]) // 2] = flipped(doc["proof"][len(doc["proof"]) // 2])
    elif how == "proof item dropped":
        doc["proof"].pop()
    elif how == "proof item added":
        doc["proof"].append(doc["proof"][0])
    elif how == "seq":
        doc["seq"] += 1
    elif how == "leaf hash":
        doc["leaf_hash"] = flipped(doc["leaf_hash"])
    elif how == "head size":
        doc["tree_head"]["tree_size"] += 1
    elif how == "head root":
        doc["tree_head"]["root_hash"] = flipped(doc["tree_head"]["root_hash"])
    elif how == "head signature":
        doc["tree_head"]["signature"] = flipped(doc["tree_head"]["signature"])
    elif how == "kind":
        doc["kind"] = "consistency"
    elif how == "seq not a number":
        doc["seq"] = "7"
    elif how == "proof not base64":
        doc["proof"][0] = "not base64!"
    return doc


INCLUSION_TAMPERING = (
    "proof byte",
    "proof item dropped",
    "proof item added",
    "seq",
    "leaf hash",
    "head size",
    "head root",
    "head signature",
    "kind",
    "seq not a number",
    "proof not base64",
)


def refused(document: dict[str, Any], keys: AuditKeys) -> bool:
    try:
        check_proof(document, keys)
    except ProofError:
        return True
    return False


def test_tampered_inclusion_proof_is_refused(proved: AuditStore) -> None:
    for seq in (7, 256, 298):
        document = inclusion(proved.engine, proved.keys, seq)
        assert not refused(document, proved.keys)
        accepted = [
            how
            for how in INCLUSION_TAMPERING
            if not refused(tampered_inclusion(document, how), proved.keys)
        ]
        assert accepted == [], f"entry {seq}: tampered proofs that still check"


def test_inclusion_proof_with_a_rewritten_entry_is_refused(proved: AuditStore) -> None:
    """The entry in the document must hash to its leaf: a proof of one leaf cannot vouch for
    another entry's text."""
    document = inclusion(proved.engine, proved.keys, 7)
    document["entry"]["details"] = {"n": -1}  # every entry's n is >= 0
    with pytest.raises(ProofError):
        check_proof(document, proved.keys)


def tampered_consistency(document: dict[str, Any], how: str) -> dict[str, Any]:
    doc = copy.deepcopy(document)
    if how == "proof byte":
        doc["proof"][0] = flipped(doc["proof"][0])
    elif how == "old size":
        doc["old_size"] += 1
    elif how == "old root":
        doc["old_root"] = flipped(doc["old_root"])
    elif how == "head size":
        doc["tree_head"]["tree_size"] -= 1
    elif how == "proof item dropped":
        doc["proof"].pop()
    elif how == "kind":
        doc["kind"] = "inclusion"
    return doc


CONSISTENCY_TAMPERING = (
    "proof byte",
    "old size",
    "old root",
    "head size",
    "proof item dropped",
    "kind",
)


def test_tampered_consistency_proof_is_refused(proved: AuditStore) -> None:
    for old in (3, 100, 257):
        document = consistency(proved.engine, proved.keys, old)
        assert not refused(document, proved.keys)
        accepted = [
            how
            for how in CONSISTENCY_TAMPERING
            if not refused(tampered_consistency(document, how), proved.keys)
        ]
        assert accepted == [], f"old size {old}: tampered proofs that still check"


def test_proof_needs_a_signed_head(audit_store: AuditStore) -> None:
    with pytest.raises(ProofRequestError, match="no signed tree head"):
        consistency(audit_store.engine, audit_store.keys, 1)
    fill(audit_store, 12)
    log = audit_store.log(head_every=1000)
    assert log.append(USED) == 12  # after the final head of the first log: not covered yet
    with pytest.raises(ProofRequestError, match="no signed tree head covers 13"):
        inclusion(audit_store.engine, audit_store.keys, 12)
    with pytest.raises(ProofRequestError, match="no entry 13"):
        inclusion(audit_store.engine, audit_store.keys, 13)
    assert check_proof(inclusion(audit_store.engine, audit_store.keys, 11), audit_store.keys)
    log.sign_head()
    assert check_proof(inclusion(audit_store.engine, audit_store.keys, 12), audit_store.keys)


def pruned_store(store: AuditStore, old: int, new: int) -> None:
    """`old` entries 200 days old and `new` current ones, all under a final head; the old ones
    pruned."""
    now = store.clock.now()
    with store.log(head_every=100) as log:
        append_many(log, old, at=now - timedelta(days=200))
        append_many(log, new)
    result = prune(
        store.engine, store.keys, before=now - timedelta(days=100), now=now, minimum_days=90
    )
    assert (result.first_seq, result.deleted) == (old, old)
    assert verify(store.engine, store.keys, against=store.checkpoints).ok


def test_proofs_after_a_prune(audit_store: AuditStore) -> None:
    store = audit_store
    pruned_store(store, 256, 64)
    for seq in (256, 257, 280, 300, 319):
        document = inclusion(store.engine, store.keys, seq)
        assert check_proof(document, store.keys).size == 320
    for seq in (0, 1, 100, 255):
        with pytest.raises(ProofRequestError, match=f"no entry {seq}"):
            inclusion(store.engine, store.keys, seq)
    for old in (256, 257, 300, 320):
        assert check_proof(consistency(store.engine, store.keys, old), store.keys).size == 320
    with pytest.raises(ProofRequestError, match="pruned"):
        consistency(store.engine, store.keys, 100)


def test_proofs_after_an_unaligned_prune(audit_store: AuditStore) -> None:
    """After a prune at 280, proofs of entries 288-319 need the subtree [256, 288), which
    straddles the boundary: it comes from the prune's frontier nodes and the kept leaves."""
    store = audit_store
    pruned_store(store, 280, 40)
    for seq in (280, 281, 287):  # their proofs take [256, 272) and [272, 280) whole
        assert check_proof(inclusion(store.engine, store.keys, seq), store.keys).size == 320
    for seq in (288, 300, 319):
        assert check_proof(inclusion(store.engine, store.keys, seq), store.keys).size == 320


def test_proof_documents_are_plain_json(proved: AuditStore) -> None:
    document = inclusion(proved.engine, proved.keys, 5)
    assert json.loads(json.dumps(document)) == document
    assert document["tree_head"]["public_key"] == proved.keys.public_key_text(1)
    assert datetime.fromisoformat(document["tree_head"]["timestamp"]).tzinfo == UTC


def test_text_that_is_not_utf8_is_shown_by_export_tail_and_the_api(audit_store: AuditStore) -> None:
    """The reading path (`audit export`, `audit tail`, GET /api/audit) shows such a row with
    U+FFFD instead of failing on it; verify (above) names it as modified."""
    if audit_store.target.backend != "sqlite":
        pytest.skip("PostgreSQL stores only valid UTF-8")
    fill(audit_store, 5)
    with audit_store.engine.begin() as conn:
        unlock(conn)
        conn.exec_driver_sql(
            "UPDATE audit_log SET subject = CAST(x'62ff6f74' AS TEXT) WHERE seq = 3"
        )
    with audit_store.engine.connect() as conn:
        page = entries_from(conn, 0, 10)
        assert [e.seq for e in page] == [0, 1, 2, 3, 4]
        assert page[3].subject == "b\ufffdot"
        json.dumps([e.subject for e in page], ensure_ascii=False).encode("utf-8")
        # the connection reads text strictly again afterwards
        assert conn.exec_driver_sql("SELECT 'ok'").scalar() == "ok"
        with pytest.raises(sa.exc.OperationalError):
            conn.exec_driver_sql("SELECT subject FROM audit_log WHERE seq = 3").scalar()
