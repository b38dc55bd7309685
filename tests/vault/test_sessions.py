"""Unlock sessions: where a password-mode user's data key lives, and when it is zeroed."""

from __future__ import annotations

import resource
from pathlib import Path

import pytest

from tradeguard.core.clock import ManualClock
from tradeguard.core.errors import SecretWipedError, VaultLocked
from tradeguard.crypto import DataKey
from tradeguard.vault import UnlockSessions

IDLE = 60.0
ABSOLUTE = 300.0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def sessions(clock: ManualClock) -> UnlockSessions:
    return UnlockSessions(clock, IDLE, ABSOLUTE)


def _locked(sessions: UnlockSessions, user_id: int, name: str = "alice") -> VaultLocked:
    with pytest.raises(VaultLocked) as caught:
        sessions.key(user_id, name)
    return caught.value


@pytest.mark.parametrize(
    ("idle", "absolute"),
    [(0, 60), (-1, 60), (61, 60), (0, 0)],
)
def test_timeouts_must_be_positive_and_idle_at_most_absolute(idle: float, absolute: float) -> None:
    with pytest.raises(ValueError, match=r"need 0 < idle timeout <= absolute timeout"):
        UnlockSessions(ManualClock(), idle, absolute)


def test_equal_timeouts_are_allowed_and_the_defaults_are_sane() -> None:
    UnlockSessions(ManualClock(), 60, 60)
    clock = ManualClock()
    sessions = UnlockSessions(clock)
    sessions.open(1, DataKey.generate())
    clock.advance(14 * 60)
    assert sessions.is_open(1)
    clock.advance(60)
    assert not sessions.is_open(1)  # 15 minutes idle by default


def test_a_user_without_a_session_is_locked_with_how_to_unlock(sessions: UnlockSessions) -> None:
    error = _locked(sessions, 7, "alice")
    assert error.message == (
        "the vault of user alice is locked (password mode): it opens with alice's vault "
        "password, which commands that need it ask for"
    )
    assert error.exit_code == 1
    assert not sessions.is_open(7)


def test_open_gives_the_same_key_back_until_it_ends(sessions: UnlockSessions) -> None:
    key = DataKey.generate()
    sessions.open(1, key)
    assert sessions.is_open(1)
    assert sessions.key(1, "alice") is key
    assert not key.wiped
    assert not sessions.is_open(2)
    _locked(sessions, 2, "bob")


def test_each_use_refreshes_the_idle_timer(sessions: UnlockSessions, clock: ManualClock) -> None:
    key = DataKey.generate()
    sessions.open(1, key)
    for _ in range(4):  # 4 * 59 s > idle: alive only because each key() restarts the timer
        clock.advance(IDLE - 1)
        assert sessions.key(1, "alice") is key
    clock.advance(IDLE - 0.5)
    assert sessions.is_open(1)
    clock.advance(0.5)  # exactly the idle timeout since the last use
    _locked(sessions, 1)
    assert key.wiped
    assert not sessions.is_open(1)


def test_is_open_does_not_count_as_a_use(sessions: UnlockSessions, clock: ManualClock) -> None:
    key = DataKey.generate()
    sessions.open(1, key)
    clock.advance(IDLE - 1)
    assert sessions.is_open(1)
    clock.advance(1)
    assert not sessions.is_open(1)
    _locked(sessions, 1)
    assert key.wiped


def test_the_absolute_timeout_ends_a_session_even_in_use(
    sessions: UnlockSessions, clock: ManualClock
) -> None:
    key = DataKey.generate()
    sessions.open(1, key)
    elapsed = 0.0
    while elapsed + 10 < ABSOLUTE:
        clock.advance(10)
        elapsed += 10
        assert sessions.key(1, "alice") is key
    clock.advance(ABSOLUTE - elapsed)
    _locked(sessions, 1)
    assert key.wiped
    with pytest.raises(SecretWipedError), key.reveal():
        pass


def test_close_ends_one_session_and_zeroes_its_key(sessions: UnlockSessions) -> None:
    mine, theirs = DataKey.generate(), DataKey.generate()
    sessions.open(1, mine)
    sessions.open(2, theirs)
    assert sessions.close(1) is True
    assert mine.wiped
    _locked(sessions, 1)
    assert sessions.close(1) is False
    assert sessions.close(99) is False
    assert sessions.key(2, "bob") is theirs
    assert not theirs.wiped


def test_close_all_zeroes_every_key(sessions: UnlockSessions) -> None:
    keys = {uid: DataKey.generate() for uid in (1, 2, 3)}
    for uid, key in keys.items():
        sessions.open(uid, key)
    sessions.close_all()
    assert all(key.wiped for key in keys.values())
    for uid in keys:
        assert not sessions.is_open(uid)
    sessions.close_all()  # nothing open: nothing to do


def test_sweep_ends_only_the_expired_sessions(sessions: UnlockSessions, clock: ManualClock) -> None:
    idle, busy, young = DataKey.generate(), DataKey.generate(), DataKey.generate()
    sessions.open(1, idle)
    sessions.open(2, busy)
    assert sessions.sweep() == []
    clock.advance(IDLE / 2)
    sessions.key(2, "busy")
    sessions.open(3, young)
    clock.advance(IDLE / 2)  # 1 idle for IDLE, 2 and 3 for IDLE / 2
    assert sessions.sweep() == [1]
    assert idle.wiped
    assert not busy.wiped
    assert not young.wiped
    assert sessions.key(2, "busy") is busy
    assert sessions.sweep() == []
    clock.advance(ABSOLUTE)
    assert sorted(sessions.sweep()) == [2, 3]
    assert busy.wiped
    assert young.wiped


def test_reopening_replaces_the_key_and_zeroes_the_old_one(
    sessions: UnlockSessions, clock: ManualClock
) -> None:
    old, new = DataKey.generate(), DataKey.generate()
    sessions.open(1, old)
    clock.advance(ABSOLUTE - 1)
    sessions.open(1, new)
    assert old.wiped
    assert sessions.key(1, "alice") is new
    clock.advance(IDLE - 1)  # past the first session's absolute timeout: the clock restarted
    assert sessions.key(1, "alice") is new
    assert not new.wiped


def _locked_kib() -> int:
    """What the kernel says this process has mlocked (VmLck, in KiB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmLck:"):
            return int(line.split()[1])
    pytest.skip("no VmLck in /proc/self/status on this system")


@pytest.mark.skipif(
    resource.getrlimit(resource.RLIMIT_MEMLOCK)[0] == 0, reason="RLIMIT_MEMLOCK is 0 here"
)
def test_an_open_session_keeps_its_key_mlocked_and_closing_unlocks_it(
    sessions: UnlockSessions,
) -> None:
    before = _locked_kib()
    sessions.open(1, DataKey.generate())
    assert _locked_kib() > before  # the page holding the key is locked in RAM (no swap)
    sessions.close(1)
    assert _locked_kib() == before
