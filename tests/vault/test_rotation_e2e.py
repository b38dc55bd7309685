"""Master key rotation end to end, on SQLite and PostgreSQL.

The operator's path, with real processes: a keyring file is created and rotated, `tradeguard
vault rewrap` runs as a child process and is killed with SIGKILL halfway through (some data keys
under the new version, some under the old, one batch probably uncommitted), every credential
still decrypts, a second rewrap finishes the job, the old version is retired, and a keyring that
no longer holds the old version still opens all 1,000 credentials with their original values.

The rewrap is made slow enough to catch halfway by small batches (one commit per two data
keys), never by sleeping or faking: the kill is a real SIGKILL of a real `tradeguard` process.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import pytest
import sqlalchemy as sa
from tests.conftest import CliRunner, audit_key_env

from tradeguard.config import load_settings
from tradeguard.core.errors import VaultError
from tradeguard.core.events import EventName, MemorySink
from tradeguard.crypto import DataKey, Keyring
from tradeguard.secrets import Secret
from tradeguard.store import DatabaseTarget, create_engine, resolve_database, upgrade
from tradeguard.store.models import User, VaultState
from tradeguard.vault import (
    RewrapResult,
    Vault,
    pending_rewrap,
    retire_below,
    rewrap,
    schema_for,
)
from tradeguard.vault import rotation as rotation_module
from tradeguard.vault.master import (
    FILE_VARIABLE,
    init_keyring_file,
    load_master_keyring,
    rotate_keyring_file,
)
from tradeguard.vault.wrapping import wrap_master

users = cast(sa.Table, User.__table__)
vault_state = cast(sa.Table, VaultState.__table__)

USERS = 200
CREDENTIALS_PER_USER = 5  # 1,000 credentials, 3,000 encrypted fields
KILL_BATCH = 2  # 100 committed batches: a window of a few hundred ms to kill the rewrap in
CHILD_TIMEOUT_S = 120

Expected = dict[str, dict[str, str]]  # credential id -> field -> value


@dataclass
class Stage:
    """One database, one keyring file, and the environment a `tradeguard` child needs."""

    target: DatabaseTarget
    engine: sa.Engine
    keyring_file: Path
    data_dir: Path
    cwd: Path
    monkeypatch: pytest.MonkeyPatch

    def keyring(self) -> Keyring:
        """The master keyring exactly as a command loads it (TRADEGUARD_MASTER_KEY_FILE)."""
        return load_master_keyring(load_settings())

    def vault(self, keyring: Keyring | None = None) -> Vault:
        return Vault(self.engine, keyring or self.keyring(), events=MemorySink())

    def child_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEGUARD_")}
        env.update(
            {
                "COLUMNS": "200",
                "NO_COLOR": "1",
                "TRADEGUARD_DATA_DIR": str(self.data_dir),
                FILE_VARIABLE: str(self.keyring_file),
                **audit_key_env(self.data_dir),
            }
        )
        if self.target.backend == "postgresql":
            url = self.target.url.render_as_string(hide_password=False)
            env["TRADEGUARD_DATABASE_URL"] = url
        return env

    def rewrap_process(self, batch_size: int, log: Path) -> subprocess.Popen[bytes]:
        """`tradeguard vault rewrap` in a child process, its output in `log`."""
        with log.open("wb") as sink:
            return subprocess.Popen(
                [sys.executable, "-m", "tradeguard", "vault", "rewrap",
                 "--batch-size", str(batch_size)],
                cwd=self.cwd,
                env=self.child_env(),
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )  # fmt: skip

    def versions(self) -> dict[int | None, int]:
        """How many users each master key version wraps."""
        query = sa.select(users.c.encryption_key_version, sa.func.count()).group_by(
            users.c.encryption_key_version
        )
        with self.engine.connect() as conn:
            return dict(conn.execute(query).all())

    def on_version(self, version: int) -> int:
        query = sa.select(sa.func.count()).where(users.c.encryption_key_version == version)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def min_master_version(self) -> int:
        with self.engine.connect() as conn:
            query = sa.select(vault_state.c.min_master_key_version)
            return int(conn.execute(query).scalar_one())


@pytest.fixture
def stage(
    db_target: DatabaseTarget,
    tmp_path: Path,
    clean_environment: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Stage]:
    keyring_file = tmp_path / "master.keyring"
    init_keyring_file(keyring_file)
    monkeypatch.setenv(FILE_VARIABLE, str(keyring_file))
    engine = create_engine(db_target)
    upgrade(engine, db_target)
    data_dir = db_target.sqlite_file().parent if db_target.backend == "sqlite" else tmp_path
    try:
        yield Stage(db_target, engine, keyring_file, data_dir, clean_environment, monkeypatch)
    finally:
        engine.dispose()


def _populate(vault: Vault, n_users: int, per_user: int) -> Expected:
    """`n_users` service-mode users with `per_user` OKX credentials each (three fields)."""
    schema = schema_for("okx")
    expected: Expected = {}
    for u in range(n_users):
        name = f"user-{u:03d}"
        vault.add_user(name, "service")
        for c in range(per_user):
            values = {
                "api_key": f"okx-{secrets.token_urlsafe(12)}",
                "api_secret": secrets.token_urlsafe(32),
                "passphrase": secrets.token_urlsafe(12),
            }
            fields = {spec.name: spec.parse(values[spec.name]) for spec in schema.fields}
            info = vault.add_credential(name, "okx", f"okx-{c}", fields)
            expected[info.id] = values
    return expected


def _assert_all_decrypt(vault: Vault, count: int) -> None:
    rows = vault.verify()
    assert len(rows) == count
    failed = [(r.credential.id, r.status, r.detail) for r in rows if r.status != "ok"]
    assert failed == []


def _assert_same_values(vault: Vault, expected: Expected) -> None:
    """Not just decrypting: every field still holds the value that was stored."""
    for credential_id, values in expected.items():
        with vault.use(credential_id) as used:
            assert sorted(used) == sorted(values)
            for field, value in values.items():
                assert used[field] == Secret(value), (credential_id, field)


def _output(log: Path) -> str:
    return log.read_text(errors="replace")[-4000:]


def _kill_midway(stage: Stage, proc: subprocess.Popen[bytes], log: Path, total: int) -> int:
    """Poll the users table and SIGKILL the rewrap once half of the keys are rewrapped;
    the count seen just before the kill."""
    threshold = math.ceil(total / 2)
    deadline = time.monotonic() + CHILD_TIMEOUT_S
    while True:
        done = stage.on_version(2)
        if done >= threshold:
            proc.kill()
            break
        if proc.poll() is not None:
            pytest.fail(
                f"the rewrap exited ({proc.returncode}) before it could be interrupted, with "
                f"{done}/{total} keys rewrapped:\n{_output(log)}"
            )
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the rewrap made no progress in {CHILD_TIMEOUT_S} s:\n{_output(log)}")
        time.sleep(0.001)
    proc.wait(timeout=CHILD_TIMEOUT_S)
    return done


def test_a_rewrap_killed_halfway_loses_nothing_and_a_second_run_finishes_it(stage: Stage) -> None:
    expected = _populate(stage.vault(), USERS, CREDENTIALS_PER_USER)
    assert len(expected) == 1000
    assert stage.versions() == {1: USERS}

    assert rotate_keyring_file(stage.keyring_file) == 2
    assert stage.keyring_file.stat().st_mode & 0o777 == 0o600
    both = stage.keyring()
    assert (both.versions, both.primary) == ([1, 2], 2)
    vault = stage.vault(both)
    assert pending_rewrap(vault) == USERS

    log = stage.keyring_file.with_name("rewrap-1.log")
    proc = stage.rewrap_process(KILL_BATCH, log)
    seen = _kill_midway(stage, proc, log, USERS)
    assert proc.returncode == -signal.SIGKILL, (
        f"the rewrap was not killed (exit {proc.returncode}):\n{_output(log)}"
    )
    done = stage.on_version(2)
    assert USERS / 2 <= seen <= done < USERS, (seen, done)
    assert stage.versions() == {1: USERS - done, 2: done}
    assert pending_rewrap(vault) == USERS - done

    # Interrupted: every credential decrypts, whichever version wraps its user's key.
    _assert_all_decrypt(vault, 1000)

    # Resumed (in this process): only the keys still under version 1 are rewrapped.
    result = rewrap(vault, batch_size=50)
    assert (result.primary, result.rewrapped, result.failed) == (2, USERS - done, [])
    assert pending_rewrap(vault) == 0
    assert stage.versions() == {2: USERS}
    assert isinstance(vault.events, MemorySink)
    assert EventName.VAULT_DEKS_REWRAPPED.value in vault.events.names()

    assert retire_below(vault, 2) == 2
    assert stage.min_master_version() == 2
    with stage.engine.connect() as conn:
        old = sa.select(sa.func.count()).where(users.c.encryption_key_version < 2)
        assert conn.execute(old).scalar_one() == 0
    _assert_all_decrypt(vault, 1000)

    # The operator deletes version 1 from the keyring: nothing needs it any more.
    document = json.loads(stage.keyring_file.read_text())
    del document["keys"]["1"]
    only_new = stage.keyring_file.with_name("master-v2-only.keyring")
    fd = os.open(only_new, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(document, f)
    stage.monkeypatch.setenv(FILE_VARIABLE, str(only_new))
    v2_only = stage.keyring()
    assert (v2_only.versions, v2_only.primary) == ([2], 2)
    fresh = stage.vault(v2_only)
    _assert_all_decrypt(fresh, 1000)
    _assert_same_values(fresh, expected)


def test_retire_is_refused_while_a_data_key_still_uses_an_old_version(
    stage: Stage, cli: CliRunner
) -> None:
    _populate(stage.vault(), 3, 1)
    assert rotate_keyring_file(stage.keyring_file) == 2
    vault = stage.vault()
    late = vault.add_user("late-user", "service")  # created after the rotation
    assert late.encryption_key_version == 2
    assert stage.versions() == {1: 3, 2: 1}

    with pytest.raises(VaultError) as refused:
        retire_below(vault, 2)
    message = refused.value.message
    assert "3 data key(s) or second-factor secret(s) still use a master key version below 2" in (
        message
    )
    assert "run `tradeguard vault rewrap` first" in message
    assert stage.min_master_version() == 1

    run = cli("vault", "master-key", "retire", "--below", "2", env=stage.child_env())
    assert run.code == 2, run.output
    assert "run `tradeguard vault rewrap` first" in run.stderr
    assert stage.min_master_version() == 1
    assert stage.versions() == {1: 3, 2: 1}
    _assert_all_decrypt(vault, 3)

    # Never retire the primary itself either.
    with pytest.raises(VaultError, match="the primary version is 2"):
        retire_below(vault, 3)

    assert rewrap(vault).rewrapped == 3
    assert retire_below(vault, 2) == 2
    _assert_all_decrypt(vault, 3)


# -- several rewraps at once -------------------------------------------------------------------


@contextmanager
def _writes_held(stage: Stage) -> Iterator[sa.Connection]:
    """Hold off writes to `users` (another writer is busy), reads still allowed."""
    with stage.engine.connect() as conn:
        if stage.target.backend == "sqlite":
            # Any write takes SQLite's one write lock until the transaction ends.
            same = vault_state.c.min_master_key_version
            conn.execute(vault_state.update().values(min_master_key_version=same))
        else:
            conn.execute(sa.text("LOCK TABLE users IN SHARE MODE"))
        try:
            yield conn
        finally:
            conn.rollback()


def _has_open(pid: int, path: Path) -> bool:
    wanted = os.path.realpath(path)
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(fd) == wanted:
                return True
        except OSError:
            continue
    return False


def _until_both_wait(
    stage: Stage, gate: sa.Connection, procs: list[subprocess.Popen[bytes]]
) -> None:
    """Return once both rewraps are held at their first write (or have given up on it)."""
    start = time.monotonic()
    deadline = start + CHILD_TIMEOUT_S
    opened: dict[int, float] = {}
    gate_pid = None
    if stage.target.backend == "postgresql":
        gate_pid = gate.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
    while time.monotonic() < deadline:
        if all(p.poll() is not None for p in procs):
            return
        if stage.target.backend == "postgresql":
            # Asked on another connection: pg_stat_activity is a snapshot per transaction.
            with stage.engine.connect() as conn:
                blocked = conn.execute(
                    sa.text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE :gate = ANY(pg_blocking_pids(pid))"
                    ),
                    {"gate": gate_pid},
                ).scalar_one()
            if blocked >= len(procs):
                return
        else:
            # SQLite cannot say who waits for its lock: each child gets a second and a half
            # after opening the database, which takes it milliseconds to reach its first write.
            now = time.monotonic()
            for p in procs:
                if p.pid not in opened and _has_open(p.pid, stage.target.sqlite_file()):
                    opened[p.pid] = now
            if len(opened) == len(procs) and now - max(opened.values()) >= 1.5:
                return
            if not Path("/proc/self/fd").is_dir() and now - start >= 4:
                return  # no /proc to look in: a fixed wait instead
        time.sleep(0.01)
    pytest.fail("the two rewraps never reached their first write")


def test_two_rewraps_at_once_leave_every_key_on_the_new_version(
    stage: Stage,
) -> None:
    expected = _populate(stage.vault(), USERS, 1)
    assert rotate_keyring_file(stage.keyring_file) == 2
    logs = [stage.keyring_file.with_name(f"rewrap-{i}.log") for i in (1, 2)]
    # Both start while the table is busy, so both read the same first batch and then race
    # for it: the harshest overlap, every time.
    with _writes_held(stage) as gate:
        procs = [stage.rewrap_process(5, log) for log in logs]
        try:
            _until_both_wait(stage, gate, procs)
        except BaseException:
            for p in procs:
                p.kill()
            raise
    for p in procs:
        p.wait(timeout=CHILD_TIMEOUT_S)
    for p, log in zip(procs, logs, strict=True):
        assert p.returncode == 0, _output(log)
        assert "Rewrapped" in log.read_text()
    assert stage.versions() == {2: USERS}
    vault = stage.vault()
    assert pending_rewrap(vault) == 0
    _assert_all_decrypt(vault, USERS)
    _assert_same_values(vault, expected)


@pytest.mark.postgres
def test_a_rewrap_counts_only_the_keys_it_rewrapped_itself(
    postgres_schema_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two rewraps race for the same rows: the compare-and-swap lets one win each row, and the
    loser must not report (nor log as an event) keys it did not rewrap."""
    target = resolve_database(Secret(postgres_schema_url), tmp_path, production=False)
    keyring_file = tmp_path / "master.keyring"
    init_keyring_file(keyring_file)
    monkeypatch.setenv(FILE_VARIABLE, str(keyring_file))
    engine, rival_engine = create_engine(target), create_engine(target)
    try:
        upgrade(engine, target)
        first = Vault(engine, load_master_keyring(load_settings()), events=MemorySink())
        for i in range(20):
            first.add_user(f"user-{i:02d}", "service")
        rotate_keyring_file(keyring_file)
        mine = Vault(engine, load_master_keyring(load_settings()), events=MemorySink())
        rival = Vault(rival_engine, load_master_keyring(load_settings()), events=MemorySink())

        # The rival (its own connection, like another process) rewraps everything and
        # commits while our first batch is between its SELECT and its UPDATE.
        rival_results: list[RewrapResult] = []
        racing = True

        def wrap_after_the_rival(dek: DataKey, user_id: int, keyring: Keyring) -> tuple[bytes, int]:
            nonlocal racing
            if racing:
                racing = False
                rival_results.append(rewrap(rival))
            return wrap_master(dek, user_id, keyring)

        monkeypatch.setattr(rotation_module, "wrap_master", wrap_after_the_rival)
        result = rewrap(mine, batch_size=100)
        assert [r.rewrapped for r in rival_results] == [20]
        with engine.connect() as conn:
            count = sa.select(sa.func.count()).where(users.c.encryption_key_version == 2)
            assert conn.execute(count).scalar_one() == 20
        assert result.rewrapped == 0  # every row it read had been rewrapped by the rival
    finally:
        engine.dispose()
        rival_engine.dispose()


# -- nothing is ever wrapped under a retired version ---------------------------------------------


def test_a_keyring_pointing_at_a_retired_version_cannot_rewrap_down_to_it(
    stage: Stage,
) -> None:
    expected = _populate(stage.vault(), 5, 1)
    rotate_keyring_file(stage.keyring_file)
    vault = stage.vault()
    rewrap(vault)
    assert retire_below(vault, 2) == 2

    # The same keys, but "primary" still (or again) names version 1: a hand-edited or stale
    # keyring from a secret manager.
    document = json.loads(stage.keyring_file.read_text())
    document["primary"] = 1
    stale_file = stage.keyring_file.with_name("stale.keyring")
    fd = os.open(stale_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(document, f)
    stage.monkeypatch.setenv(FILE_VARIABLE, str(stale_file))
    stale = stage.vault()
    assert stale.keyring.primary == 1
    with suppress(VaultError):  # refusing is right; so is finding nothing to do
        rewrap(stale)
    assert stage.versions() == {2: 5}
    _assert_same_values(vault, expected)


def test_a_process_with_the_pre_rotation_keyring_cannot_add_a_user_under_a_retired_version(
    stage: Stage,
) -> None:
    _populate(stage.vault(), 2, 1)
    before_rotation = stage.vault()  # a long-running process: its keyring is loaded once
    rotate_keyring_file(stage.keyring_file)
    vault = stage.vault()
    rewrap(vault)
    retire_below(vault, 2)

    with suppress(VaultError):
        before_rotation.add_user("late-user", "service")
    assert stage.versions() == {2: 2}  # no user under the retired version 1
