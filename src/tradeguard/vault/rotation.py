"""Key rotation without re-entering a single credential.

- Master key: `rotate` adds a primary version to the keyring (vault.master); `rewrap` moves every
  service-mode DEK to it in committed batches with a compare-and-swap on
  `encryption_key_version`, so it can be interrupted at any point (every row still decrypts,
  under the old version or the new) and resumed, also by several processes at once; then it
  moves every TOTP secret (vault.second_factor) the same way. `retire` then refuses the old
  versions for good.
- A user's DEK: `rotate_dek` re-encrypts that user's credential fields under a fresh DEK in one
  transaction (all or nothing).
- A vault password change rewraps the DEK only (Vault.change_password).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TypeVar, cast

import sqlalchemy as sa

from tradeguard.core.errors import IntegrityError, VaultError
from tradeguard.core.events import EventName
from tradeguard.crypto import DataKey, Envelope, decrypt
from tradeguard.crypto import encrypt as _encrypt
from tradeguard.secrets import Password
from tradeguard.store.models import Credential, CredentialField
from tradeguard.vault.credentials import field_binding
from tradeguard.vault.second_factor import open_totp_secret, seal_totp_secret
from tradeguard.vault.service import Vault, vault_state
from tradeguard.vault.unlock import new_password_wrapping
from tradeguard.vault.users import load_user, users
from tradeguard.vault.wrapping import unwrap_master, wrap_master

__all__ = ["RewrapResult", "pending_rewrap", "retire_below", "rewrap", "rotate_dek"]

_BUSY_RETRIES = 40
credentials = cast(sa.Table, Credential.__table__)
fields_table = cast(sa.Table, CredentialField.__table__)
Progress = Callable[[int], None]
T = TypeVar("T")


@dataclass(frozen=True)
class RewrapResult:
    primary: int
    rewrapped: int
    failed: list[str]  # user names whose DEK would not unwrap (restore them from a backup)
    second_factors: int = 0  # TOTP secrets moved to the primary version


def _stale(primary: int) -> sa.ColumnElement[bool]:
    return sa.and_(users.c.vault_mode == "service", users.c.encryption_key_version != primary)


def _stale_totp(primary: int) -> sa.ColumnElement[bool]:
    return sa.and_(users.c.totp_secret.is_not(None), users.c.totp_key_version != primary)


def pending_rewrap(vault: Vault) -> int:
    """How many service-mode DEKs and TOTP secrets are not yet under the primary master key
    version."""
    primary = vault.keyring.primary
    with vault.engine.connect() as conn:
        count = sa.select(sa.func.count()).select_from(users)
        return int(conn.execute(count.where(_stale(primary))).scalar_one()) + int(
            conn.execute(count.where(_stale_totp(primary))).scalar_one()
        )


def _rewrap_totp(vault: Vault) -> tuple[int, list[str]]:
    """Move every TOTP secret to the primary version (compare-and-swap on its key version).
    There is one per person at most: one transaction does them all."""
    primary = vault.keyring.primary
    done, failed = 0, []
    columns = (users.c.id, users.c.name, users.c.totp_secret, users.c.totp_key_version)
    with vault.engine.begin() as conn:
        vault.check_primary(conn)
        for user_id, name, sealed, old_version in conn.execute(
            sa.select(*columns).where(_stale_totp(primary))
        ).all():
            try:
                with open_totp_secret(sealed, user_id, vault.keyring) as secret:
                    resealed, _ = seal_totp_secret(secret, user_id, vault.keyring)
            except (IntegrityError, VaultError):
                failed.append(name)
                continue
            done += conn.execute(
                users.update()
                .where(users.c.id == user_id, users.c.totp_key_version == old_version)
                .values(totp_secret=resealed, totp_key_version=primary)
            ).rowcount
    return done, failed


def _rewrap_batch(vault: Vault, after_id: int, batch_size: int) -> tuple[int, int, list[str]]:
    """Rewrap up to `batch_size` stale DEKs with ids above `after_id`, in one transaction.
    Returns (last id seen, rows rewrapped, names that failed)."""
    primary = vault.keyring.primary
    columns = (users.c.id, users.c.name, users.c.wrapped_dek, users.c.encryption_key_version)
    query = (
        sa.select(*columns)
        .where(_stale(primary), users.c.id > after_id)
        .order_by(users.c.id)
        .limit(batch_size)
    )
    updates, failed, last = [], [], after_id
    with vault.engine.begin() as conn:
        vault.check_primary(conn)
        minimum = vault.min_master_version(conn)
        for user_id, name, wrapped, old_version in conn.execute(query):
            last = user_id
            try:
                with unwrap_master(wrapped, user_id, name, vault.keyring, minimum) as dek:
                    new_wrapped, _ = wrap_master(dek, user_id, vault.keyring)
            except IntegrityError:
                failed.append(name)
                continue
            updates.append({"uid": user_id, "old": old_version, "w": new_wrapped})
        if updates:
            conn.execute(
                users.update()
                .where(users.c.id == sa.bindparam("uid"))
                .where(users.c.encryption_key_version == sa.bindparam("old"))  # compare-and-swap
                .values(wrapped_dek=sa.bindparam("w"), encryption_key_version=primary),
                updates,
            )
            done = _swapped(conn, {u["uid"]: u["w"] for u in updates})
        else:
            done = 0
    return last, done, failed


def _swapped(conn: sa.Connection, ours: dict[int, bytes]) -> int:
    """How many rows now hold our wrapping: the compare-and-swap skipped the rows a concurrent
    rewrap got to first, and executemany's row count is not reliable on every driver."""
    rows = conn.execute(
        sa.select(users.c.id, users.c.wrapped_dek).where(users.c.id.in_(list(ours)))
    )
    return sum(wrapped == ours[user_id] for user_id, wrapped in rows)


def _busy(error: sa.exc.OperationalError) -> bool:
    return "database is locked" in str(error.orig)


def _retrying(step: Callable[[], T]) -> T:
    """A write step, retried while SQLite reports another writer: SQLite does not wait to turn
    a read transaction into a write one. A retry is safe: the step committed nothing, and its
    compare-and-swap skips rows another process rewrapped meanwhile."""
    for attempt in range(_BUSY_RETRIES):
        try:
            return step()
        except sa.exc.OperationalError as e:
            if not _busy(e) or attempt == _BUSY_RETRIES - 1:
                raise
            time.sleep(min(0.01 * 2**attempt, 0.5))
    raise AssertionError("unreachable")


def rewrap(
    vault: Vault, *, batch_size: int = 1000, progress: Progress | None = None
) -> RewrapResult:
    """Move every service-mode DEK to the primary master key version. Resumable."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    last, total, failed = 0, 0, []
    while True:
        last_seen, done, batch_failed = _retrying(partial(_rewrap_batch, vault, last, batch_size))
        if last_seen == last:
            break
        last, total = last_seen, total + done
        failed += batch_failed
        if progress:
            progress(done + len(batch_failed))
    second_factors, totp_failed = _retrying(partial(_rewrap_totp, vault))
    if progress and (second_factors or totp_failed):
        progress(second_factors + len(totp_failed))
    failed += [f"{name} (second factor)" for name in totp_failed]
    vault.emit(
        EventName.VAULT_DEKS_REWRAPPED,
        None,
        primary=vault.keyring.primary,
        rewrapped=total,
        second_factors=second_factors,
        failed=len(failed),
    )
    return RewrapResult(vault.keyring.primary, total, failed, second_factors)


def retire_below(vault: Vault, version: int) -> int:
    """Refuse master key versions below `version` from now on; the new minimum.

    Refused while any DEK is still wrapped under such a version (run `rewrap` first), and
    never lowers the minimum.
    """
    if version > vault.keyring.primary:
        raise VaultError(
            f"cannot retire versions below {version}: the primary version is "
            f"{vault.keyring.primary}, which would be retired too"
        )
    with vault.engine.begin() as conn:
        count = sa.select(sa.func.count()).select_from(users)
        still = (
            conn.execute(
                count.where(
                    users.c.vault_mode == "service", users.c.encryption_key_version < version
                )
            ).scalar_one()
            + conn.execute(
                count.where(users.c.totp_secret.is_not(None), users.c.totp_key_version < version)
            ).scalar_one()
        )
        if still:
            raise VaultError(
                f"{still} data key(s) or second-factor secret(s) still use a master key version "
                f"below {version}; run `tradeguard vault rewrap` first, then retire"
            )
        current = vault.min_master_version(conn)
        new_min = max(current, version)
        conn.execute(vault_state.update().values(min_master_key_version=new_min))
    vault.emit(EventName.VAULT_MASTER_KEY_RETIRED, None, min_version=new_min)
    return new_min


def _reencrypt_fields(
    conn: sa.Connection, owner: str, user_id: int, old: DataKey, new: DataKey, version: int
) -> int:
    rows = conn.execute(
        sa.select(fields_table.c.credential_id, fields_table.c.field, fields_table.c.ciphertext)
        .join(credentials, credentials.c.id == fields_table.c.credential_id)
        .where(credentials.c.user_id == user_id)
    ).all()
    updates = []
    for credential_id, field, ciphertext in rows:
        binding = field_binding(owner, credential_id, field)
        try:
            plain = decrypt(old, Envelope.parse(ciphertext), binding)
        except IntegrityError:
            raise VaultError(
                f"credential {credential_id} field {field} does not decrypt, so the data key "
                "cannot be rotated without losing it; run `tradeguard vault verify` and fix it"
            ) from None
        with plain, plain.reveal() as view:
            new_ct = _encrypt(new, view, binding, key_version=version)
        updates.append({"cid": credential_id, "f": field, "ct": new_ct})
    if updates:
        conn.execute(
            fields_table.update()
            .where(fields_table.c.credential_id == sa.bindparam("cid"))
            .where(fields_table.c.field == sa.bindparam("f"))
            .values(ciphertext=sa.bindparam("ct"), dek_version=version),
            updates,
        )
    return len(updates)


def rotate_dek(vault: Vault, user_name: str, password: Password | None = None) -> int:
    """Re-encrypt every credential field of the user under a fresh DEK; the new DEK version.

    A password-mode user must give their password: the new DEK is wrapped under it.
    """
    new = DataKey.generate()
    try:
        with vault.engine.begin() as conn:
            user = load_user(conn, user_name)
            version = user.dek_version + 1
            if user.vault_mode == "password":
                if password is None:
                    raise VaultError(f"user {user_name} is in password mode: give the password")
                _, old = vault.check_password(user_name, password)
                with old:
                    count = _reencrypt_fields(conn, user.owner, user.id, old, new, version)
                values = new_password_wrapping(new, user.id, password, vault.kdf_params)
            else:
                vault.check_primary(conn)
                with vault.user_dek(conn, user) as old:
                    count = _reencrypt_fields(conn, user.owner, user.id, old, new, version)
                wrapped, master_version = wrap_master(new, user.id, vault.keyring)
                values = {"wrapped_dek": wrapped, "encryption_key_version": master_version}
            conn.execute(
                users.update().where(users.c.id == user.id).values(dek_version=version, **values)
            )
    finally:
        new.wipe()
    vault.sessions.close(user.id)  # an open session holds the old DEK: unlock again
    vault.emit(EventName.VAULT_DEK_ROTATED, user.owner, dek_version=version, fields=count)
    return version
