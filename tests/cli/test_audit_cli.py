"""`tradeguard audit` through the real command: verify, tampering and rollback, proofs, export,
tail, sign, prune and the audit key.

Every command starting a Python process costs over a second, so the log all tests start from is
made once per module (a user added, a credential added, then removed: three entries, three signed
tree heads, one per command) and each test works on its own copy of that home directory. Keys
are made at run time; the repository holds none.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import CliRunner, Run, audit_key_env

from tradeguard.audit import AUDIT_KEY
from tradeguard.audit.entry import from_micros
from tradeguard.crypto import MINIMUM_PARAMS
from tradeguard.vault.master import FILE_VARIABLE, init_keyring_file

BASE_EVENTS = ["vault.user.added", "vault.credential.added", "vault.credential.removed"]


@dataclass(frozen=True)
class Home:
    """A tradeguard home: data dir, master and audit keyrings, and a runner set up for them."""

    root: Path
    tg: CliRunner

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def db(self) -> Path:
        return self.data / "tradeguard.db"

    @property
    def checkpoints(self) -> Path:
        return self.data / "audit-checkpoints.jsonl"

    @property
    def master_key(self) -> Path:
        return self.root / "master.keyring"

    @property
    def audit_key(self) -> Path:
        return self.root / "audit.keyring"

    def ok(self, *args: str, input: str = "") -> Run:
        run = self.tg(*args, input=input)
        assert run.code == 0, f"{args}: exit {run.code}\n{run.output}"
        return run


def add_credential(home: Home, name: str) -> None:
    """A paper-venue credential (no fields): one `vault.credential.added` entry."""
    options = ("--user", "svc", "--venue", "paper", "--name", name, "--stdin-json")
    home.ok("vault", "add", *options, input="{}")


def home_env(root: Path) -> dict[str, str]:
    return {
        "TRADEGUARD_DATA_DIR": str(root / "data"),
        FILE_VARIABLE: str(root / "master.keyring"),
        "TRADEGUARD_VAULT_KDF_MEMORY_KIB": str(MINIMUM_PARAMS.memory_kib),
        "TRADEGUARD_VAULT_KDF_ITERATIONS": str(MINIMUM_PARAMS.iterations),
        "TRADEGUARD_VAULT_KDF_LANES": str(MINIMUM_PARAMS.lanes),
        **audit_key_env(root),
    }


@pytest.fixture(scope="module")
def base_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The starting log, made once: three vault commands, three entries, three tree heads."""
    root = tmp_path_factory.mktemp("audit-base")
    (root / "cwd").mkdir()
    init_keyring_file(root / "master.keyring")
    home = Home(root, CliRunner(root / "cwd", {**home_env(root), "XDG_DATA_HOME": str(root)}))
    home.ok("users", "add", "svc", "--vault-mode", "service")
    add_credential(home, "p1")
    home.ok("vault", "remove", "p1", "--user", "svc", "--yes")
    return root


@pytest.fixture
def home(base_home: Path, clean_environment: Path, tmp_path: Path) -> Home:
    """A private copy of the starting home (modes kept: the data dir 0700, keyrings 0600)."""
    root = tmp_path / "home"
    shutil.copytree(base_home, root, ignore=shutil.ignore_patterns("cwd"))
    return Home(root, CliRunner(clean_environment, home_env(root)))


# -- helpers -----------------------------------------------------------------------------------


def error_line(run: Run, code: int) -> str:
    """The one line a refused command prints: `error: what failed; what to do`."""
    assert run.code == code, run.output
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


def dump(db: Path) -> list[str]:
    with closing(sqlite3.connect(db)) as conn:
        return list(conn.iterdump())


def query(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql).fetchall()


def sqlite_copy(source: Path, target: Path) -> None:
    """A consistent copy through SQLite's backup API (whatever sits in the WAL included)."""
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


def checkpoint_lines(home: Home) -> list[dict[str, Any]]:
    return [json.loads(line) for line in home.checkpoints.read_text().splitlines()]


def canonical(document: object) -> str:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def b64_leaf_hash(line: str) -> str:
    return base64.b64encode(hashlib.sha256(b"\x00" + line.encode()).digest()).decode()


def table_rows(text: str) -> Iterator[list[str]]:
    """The body rows of a rich table, as lists of stripped cells."""
    for line in text.splitlines():
        if line.startswith("│"):
            yield [cell.strip() for cell in line.strip("│").split("│")]


# A command that appended and then died before closing its log (so before its final tree head).
_APPEND_AND_DIE = """
import os
from tradeguard.audit import load_audit_keys
from tradeguard.ops.audit_log import open_audit_log
from tradeguard.cli.settings import cli_settings
from tradeguard.ops.store import open_store
from tradeguard.core.events import EventName

settings = cli_settings()
keys = load_audit_keys(settings)
store = open_store(settings)
log = open_audit_log(settings, store.engine, keys)
print(log.append(EventName.VAULT_VERIFIED, actor="operator", details={"ok": 0}), flush=True)
os._exit(0)
"""


# -- verify --------------------------------------------------------------------------------------


def test_verify_says_intact_with_the_entry_count_and_checks_the_checkpoints(home: Home) -> None:
    assert len(checkpoint_lines(home)) == 3  # every command signed a head on closing its log
    plain = home.ok("audit", "verify")
    assert plain.stdout.startswith("audit log intact: 3 entries, 3 signed tree head(s); root ")
    against = home.ok("audit", "verify", "--against", str(home.checkpoints))
    assert f"3 checkpoint(s) from {home.checkpoints}" in against.stdout
    assert against.stdout.split("root ")[1] == plain.stdout.split("root ")[1]


def test_a_modified_entry_is_named_with_its_seq_and_verify_changes_nothing(home: Home) -> None:
    with closing(sqlite3.connect(home.db)) as conn:
        conn.execute("DROP TRIGGER audit_log_no_update")
        conn.execute(
            "UPDATE audit_log SET details = ? WHERE seq = 1",
            ('{"name":"p1","venue":"binance"}',),
        )
        conn.commit()
    before, checkpoints = dump(home.db), home.checkpoints.read_bytes()

    run = home.tg("audit", "verify")

    assert run.code == 1, run.output
    assert "audit log intact" not in run.stdout
    assert "audit log DAMAGED: modified at seq 1: entry 1 was modified" in run.stderr
    assert dump(home.db) == before
    assert home.checkpoints.read_bytes() == checkpoints


def test_a_rollback_is_caught_only_against_the_checkpoint_file(home: Home, tmp_path: Path) -> None:
    backup = tmp_path / "backup.db"
    sqlite_copy(home.db, backup)
    add_credential(home, "p2")
    assert checkpoint_lines(home)[-1]["tree_size"] == 4
    sqlite_copy(backup, home.db)  # the database goes back; the checkpoint file does not

    alone = home.tg("audit", "verify")
    assert alone.code == 0, alone.output  # documented: the database alone cannot tell
    assert "audit log intact: 3 entries" in alone.stdout

    against = home.tg("audit", "verify", "--against", str(home.checkpoints))
    assert against.code == 1, against.output
    assert "audit log DAMAGED: truncated at seq 3:" in against.stderr
    assert f"a signed tree head in {home.checkpoints} line 4 covers 4 entries" in against.stderr
    assert "rolled back" in against.stderr


# -- proofs --------------------------------------------------------------------------------------


def test_proofs_check_offline_and_a_changed_one_does_not(home: Home, tmp_path: Path) -> None:
    proved = home.ok("audit", "prove", "1")
    document = json.loads(proved.stdout)
    assert (document["kind"], document["seq"]) == ("inclusion", 1)
    assert document["entry"]["event"] == "vault.credential.added"
    assert document["tree_head"]["tree_size"] == 3
    proof = tmp_path / "proof.json"
    proof.write_text(proved.stdout)
    held = home.ok("audit", "check-proof", str(proof))
    assert held.stdout.startswith("proof holds: inclusion in the tree head of size 3 signed ")
    assert held.stdout.rstrip().endswith("by audit key version 1")

    changed_entry = copy.deepcopy(document)
    changed_entry["entry"]["details"]["venue"] = "binance"
    flipped = copy.deepcopy(document)
    raw = bytearray(base64.b64decode(flipped["proof"][0]))
    raw[0] ^= 1
    flipped["proof"][0] = base64.b64encode(bytes(raw)).decode()
    for bad, expected in (
        (changed_entry, '"entry" does not hash to "leaf_hash": the entry was changed'),
        (flipped, "does not lead to the given root"),
    ):
        proof.write_text(json.dumps(bad))
        line = error_line(home.tg("audit", "check-proof", str(proof)), 1)
        assert expected in line
        assert "proof holds" not in line

    consistency = home.ok("audit", "consistency", "1")
    assert json.loads(consistency.stdout)["old_size"] == 1
    piped = home.ok("audit", "check-proof", "-", input=consistency.stdout)
    assert piped.stdout.startswith("proof holds: consistency in the tree head of size 3 ")

    beyond = error_line(home.tg("audit", "prove", "99"), 2)
    assert "there is no entry 99" in beyond


def test_check_proof_of_a_missing_file_is_an_error_line(home: Home, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-proof.json"
    run = home.tg("audit", "check-proof", str(missing))
    assert run.code != 0
    assert "Traceback" not in run.stderr
    assert "(a bug)" not in run.stderr
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("error: ")
    assert str(missing) in lines[0]


# -- reading -------------------------------------------------------------------------------------


def test_export_lines_are_the_leaf_data_and_filter_by_time(home: Home) -> None:
    lines = home.ok("audit", "export").stdout.splitlines()
    entries = [json.loads(line) for line in lines]
    assert [e["seq"] for e in entries] == [0, 1, 2]
    assert [e["event"] for e in entries] == BASE_EVENTS
    assert [canonical(e) for e in entries] == lines  # each line is canonical JSON

    proof = json.loads(home.ok("audit", "prove", "2").stdout)
    assert b64_leaf_hash(lines[2]) == proof["leaf_hash"]
    assert proof["entry"] == entries[2]

    # --since is inclusive, --until exclusive: exactly entry 1.
    since = from_micros(entries[1]["ts"]).isoformat()
    until = from_micros(entries[2]["ts"]).isoformat()
    middle = home.ok("audit", "export", "--since", since, "--until", until)
    assert middle.stdout.splitlines() == lines[1:2]

    line = error_line(home.tg("audit", "export", "--since", "last tuesday"), 2)
    assert "--since must be a duration such as 90d or 12h, or a date" in line


def test_tail_shows_the_newest_entries(home: Home) -> None:
    run = home.ok("audit", "tail", "-n", "2")
    assert [(row[0], row[2]) for row in table_rows(run.stdout)] == [
        ("1", "vault.credential.added"),
        ("2", "vault.credential.removed"),
    ]
    assert "vault.user.added" not in run.stdout


# -- writing -------------------------------------------------------------------------------------


def test_prune_under_the_retention_minimum_is_refused_and_deletes_nothing(home: Home) -> None:
    before = dump(home.db)
    line = error_line(home.tg("audit", "prune", "--before", "1d"), 2)
    assert "refusing to prune entries newer than 90 days" in line
    assert "TRADEGUARD_AUDIT_RETENTION_DAYS" in line
    assert query(home.db, "SELECT count(*) FROM audit_log") == [(3,)]
    assert dump(home.db) == before


def test_sign_signs_entries_left_without_a_head_then_has_nothing_to_do(home: Home) -> None:
    died = subprocess.run(
        [sys.executable, "-c", _APPEND_AND_DIE],
        cwd=home.tg.cwd,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("TRADEGUARD_")},
            **home.tg.env,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (died.returncode, died.stdout) == (0, "3\n"), died.stderr
    assert len(checkpoint_lines(home)) == 3  # entry 3 is in no signed head yet

    signed = home.ok("audit", "sign")
    assert signed.stdout.startswith("signed tree head: size 4, root ")
    root = signed.stdout.split("root ")[1].strip()
    last = checkpoint_lines(home)[-1]
    assert last["tree_size"] == 4
    assert base64.b64decode(last["root_hash"]).hex() == root

    again = home.ok("audit", "sign")
    assert again.stdout.strip() == "no new entries since the last signed tree head"
    assert len(checkpoint_lines(home)) == 4


# -- the key -------------------------------------------------------------------------------------


def test_key_init_rotate_and_public(home: Home, tmp_path: Path) -> None:
    fresh = tmp_path / "keys" / "audit.keyring"
    fresh.parent.mkdir(mode=0o700)
    created = home.ok("audit", "key", "init", "--file", str(fresh))
    assert created.stdout.startswith(f"Created {fresh} (0600). Set {AUDIT_KEY.file_variable}=")
    assert fresh.stat().st_mode & 0o777 == 0o600
    kept = fresh.read_bytes()
    line = error_line(home.tg("audit", "key", "init", "--file", str(fresh)), 2)
    assert "already exists" in line
    assert "never overwrites" in line
    assert fresh.read_bytes() == kept

    rotated = home.ok("audit", "key", "rotate")
    assert f"Added audit key version 2 to {home.audit_key} as primary" in rotated.stdout
    public = json.loads(home.ok("audit", "key", "public").stdout)
    assert sorted(public) == ["1", "2"]
    assert public["1"] != public["2"]
    # the rotation itself is the first entry under the new version
    assert query(home.db, "SELECT event, key_version FROM audit_log WHERE seq = 3") == [
        ("audit.key.rotated", 2)
    ]
    assert [c["public_key"] for c in checkpoint_lines(home)] == [public["1"]] * 3 + [public["2"]]

    add_credential(home, "p2")
    verified = home.ok("audit", "verify", "--against", str(home.checkpoints))
    assert "audit log intact: 5 entries, 5 signed tree head(s), 5 checkpoint(s)" in verified.stdout
    assert query(home.db, "SELECT seq, key_version FROM audit_log ORDER BY seq") == [
        (0, 1),
        (1, 1),
        (2, 1),
        (3, 2),
        (4, 2),
    ]
    newest = checkpoint_lines(home)[-1]
    assert (newest["tree_size"], newest["key_version"]) == (5, 2)
    assert newest["public_key"] == public["2"]


def test_a_change_without_an_audit_key_is_refused_before_any_write(
    cli: CliRunner, home: Home, tmp_path: Path
) -> None:
    data = tmp_path / "no-audit-key"
    env = {"TRADEGUARD_DATA_DIR": str(data), FILE_VARIABLE: str(home.master_key)}
    line = error_line(cli("users", "add", "svc", "--vault-mode", "service", env=env), 2)
    assert "no audit key is configured" in line
    assert "tradeguard audit key init --file PATH" in line
    assert not data.exists()


def test_reading_commands_never_create_a_database(cli: CliRunner, tmp_path: Path) -> None:
    """A mistyped data directory must not read as an empty, intact log."""
    data = tmp_path / "typo"
    env = {"TRADEGUARD_DATA_DIR": str(data), **audit_key_env(tmp_path)}
    for args in (("audit", "verify"), ("audit", "export"), ("audit", "prove", "0")):
        line = error_line(cli(*args, env=env), 2)
        assert "there is no tradeguard database" in line
        assert "TRADEGUARD_DATA_DIR" in line
    assert not data.exists()


def test_an_outside_auditor_checks_proofs_with_the_public_keys_alone(
    home: Home, cli: CliRunner, tmp_path: Path
) -> None:
    """No keyring, no database: only the published public keys and the proofs."""
    published = tmp_path / "audit-public-keys.json"
    published.write_text(home.ok("audit", "key", "public").stdout)
    proof = tmp_path / "proof.json"
    proof.write_text(home.ok("audit", "prove", "2").stdout)
    consistency = tmp_path / "consistency.json"
    consistency.write_text(home.ok("audit", "consistency", "1").stdout)
    auditor = {"TRADEGUARD_DATA_DIR": str(tmp_path / "auditor")}  # no key of any kind
    for document in (proof, consistency):
        held = cli(
            "audit", "check-proof", str(document), "--public-keys", str(published), env=auditor
        )
        assert held.code == 0, held.output
        assert held.stdout.startswith("proof holds: ")
    assert "it extends the tree of size 1 with root" in held.stdout

    # The public key a proof carries is not trusted: another installation's keys refuse it.
    other = tmp_path / "other"
    other.mkdir(mode=0o700)
    env = {**auditor, **audit_key_env(other)}
    elsewhere = tmp_path / "other-public-keys.json"
    elsewhere.write_text(cli("audit", "key", "public", env=env).stdout)
    refused = cli("audit", "check-proof", str(proof), "--public-keys", str(elsewhere), env=auditor)
    assert error_line(refused, 1).endswith("is not signed by this audit key")
    assert not (tmp_path / "auditor").exists()
