"""The server's background rewrap moves everything under an old master key version, and does
nothing when nothing is behind."""

from __future__ import annotations

import sqlalchemy as sa
from tests.conftest import Capture
from tests.vault.conftest import Users

from tradeguard.crypto import DataKey, Keyring
from tradeguard.ops.rewrap_job import BackgroundRewrap
from tradeguard.vault import Vault, pending_rewrap
from tradeguard.vault.users import users as users_table


def test_nothing_behind_starts_nothing(vault: Vault, users: Users) -> None:
    users.service("alice")
    job = BackgroundRewrap(vault)
    assert job.start() == 0
    job.join()


def test_keys_under_an_old_version_move_while_the_server_runs(
    vault: Vault, users: Users, keyring: Keyring, capture: Capture
) -> None:
    for n in range(25):
        users.service(f"user{n}")
    rotated = Keyring({1: keyring.get(1), 2: DataKey.generate()}, 2, "test")
    served = Vault(vault.engine, rotated, clock=vault.clock, events=vault.events)
    job = BackgroundRewrap(served)
    assert job.start() == 25
    job.join(timeout=60)
    assert pending_rewrap(served) == 0
    with vault.engine.connect() as conn:
        versions = set(conn.execute(sa.select(users_table.c.encryption_key_version)).scalars())
    assert versions == {2}
    messages = [r.getMessage() for r in capture.records if r.name == "tradeguard.ops.rewrap_job"]
    assert any("25 data key(s)" in m and "version 2" in m for m in messages), messages


def test_a_stop_between_batches_leaves_the_rest_for_the_next_start(
    vault: Vault, users: Users, keyring: Keyring
) -> None:
    for n in range(5):
        users.service(f"user{n}")
    rotated = Keyring({1: keyring.get(1), 2: DataKey.generate()}, 2, "test")
    served = Vault(vault.engine, rotated, clock=vault.clock, events=vault.events)
    job = BackgroundRewrap(served, batch_size=1)
    job._stopping.set()  # shutdown asked for before the first batch ends
    job.start()
    job.join(timeout=60)
    assert pending_rewrap(served) == 4  # the batch in hand committed, nothing more
    again = BackgroundRewrap(served, batch_size=1)
    again.start()
    again.join(timeout=60)
    assert pending_rewrap(served) == 0
