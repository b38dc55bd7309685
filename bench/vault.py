"""Vault costs: Argon2id unlock, one field decrypt, `vault.use()` of a credential, and the rewrap
of 100,000 data keys on SQLite and PostgreSQL, each beside a baseline measured in the same run.

- unlock: `Vault.unlock` of a password-mode user at the default Argon2id parameters (RFC 9106's
  second recommendation: 64 MiB, 3 passes, 4 lanes), median of several; beside it the bare KDF
  (`derive_key`) and the peer figure from /work/shared/BENCHMARKS.md.
- decrypt: one credential field (a 43-character API secret) with `tradeguard.crypto.decrypt` on
  an already parsed envelope, and with the parse; beside them the raw AES-256-GCM decrypt of
  `cryptography` with the same key, nonce and associated data (the floor). Median per call over
  batches of 100 calls; the three take turns batch by batch so noise falls on all alike.
- use: `with vault.use(id)` of an OKX credential (api_key, api_secret, passphrase) on SQLite,
  for a service-mode user (the data key is unwrapped with the master key on every use) and for
  an unlocked password-mode user (the data key sits in the session); beside them the crypto
  alone (unwrap + three decrypts), so the rest is the database.
- rewrap: `rewrap()` of N service-mode data keys (default 100,000) from master key version 1 to
  2, in batches of 1,000, on SQLite and on PostgreSQL (a fresh schema of the `test` database,
  dropped afterwards). The users are inserted directly (executemany, explicit ids: the id is in
  the wrapped key's associated data) with keys wrapped by `wrap_master`. Beside it the crypto
  alone (unwrap + wrap of every key in memory). A sample is then unwrapped with a keyring that
  holds only version 2, to show the rewrap really happened.

Targets: one field decrypt <= 10 us (median), the rewrap of 100,000 keys <= 10 s (per backend;
with --users N the time is scaled to 100,000). Prints one JSON object; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import sqlalchemy as sa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.engine import make_url

from _postgres import postgres_schema
from _report import emit  # bench/ is on sys.path: the scripts run from there
from tradeguard.core.events import MemorySink
from tradeguard.crypto import (
    DEFAULT_PARAMS,
    DataKey,
    Envelope,
    Keyring,
    decrypt,
    derive_key,
    encrypt,
    new_salt,
)
from tradeguard.secrets import Password, Secret
from tradeguard.store import DatabaseTarget, connect_check, create_engine, resolve_database, upgrade
from tradeguard.store.models import User
from tradeguard.vault import Vault, pending_rewrap, rewrap, schema_for
from tradeguard.vault.credentials import field_binding
from tradeguard.vault.wrapping import unwrap_master, wrap_master

users = cast(sa.Table, User.__table__)

POSTGRES_URL = os.environ.get(
    "TG_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
# /work/shared/BENCHMARKS.md, "Security primitives" (measured on this machine kind).
PEER_ARGON2ID_MS = 204
TARGET_DECRYPT_US = 10.0
TARGET_REWRAP_100K_S = 10.0
REWRAP_BATCH = 1000


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _median_p99(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _sqlite_target(directory: Path) -> DatabaseTarget:
    return resolve_database(None, directory, production=False)


def _opened(target: DatabaseTarget) -> sa.Engine:
    engine = create_engine(target)
    connect_check(engine, target)
    upgrade(engine, target)
    return engine


def _okx_fields() -> dict[str, Secret]:
    values = {
        "api_key": f"okx-{secrets.token_urlsafe(12)}",
        "api_secret": secrets.token_urlsafe(32),
        "passphrase": secrets.token_urlsafe(12),
    }
    return {spec.name: spec.parse(values[spec.name]) for spec in schema_for("okx").fields}


# -- unlock ------------------------------------------------------------------------------------


def bench_unlock(vault: Vault, rounds: int) -> dict[str, Any]:
    password = secrets.token_urlsafe(18)
    vault.add_user("bench-password", "password", Password(password))
    unlock_ms, kdf_ms = [], []
    salt = new_salt()
    for i in range(rounds):
        start = time.perf_counter()
        vault.unlock("bench-password", Password(password))
        unlock_ms.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        derive_key(Password(password), salt, DEFAULT_PARAMS).wipe()
        kdf_ms.append((time.perf_counter() - start) * 1000)
        say(f"unlock: {i + 1}/{rounds} ({unlock_ms[-1]:.0f} ms)")
    return {
        "params": DEFAULT_PARAMS.describe(),
        "rounds": rounds,
        "unlock_median_ms": round(statistics.median(unlock_ms), 1),
        "unlock_min_ms": round(min(unlock_ms), 1),
        "baseline_derive_key_median_ms": round(statistics.median(kdf_ms), 1),
        "peer_reference_ms": PEER_ARGON2ID_MS,
        "peer_reference": "Argon2id 64 MiB, t=3, p=4 (RFC 9106 second recommendation), "
        "/work/shared/BENCHMARKS.md",
    }


# -- one field ---------------------------------------------------------------------------------


def bench_decrypt(calls: int, batch: int = 100) -> dict[str, Any]:
    spec = next(s for s in schema_for("okx").fields if s.name == "api_secret")
    dek = DataKey.generate()
    binding = field_binding("user:1", "3f2c9a1e-0000-4c1b-9d2e-0a1b2c3d4e5f", "api_secret")
    plaintext = secrets.token_urlsafe(32).encode()
    blob = encrypt(dek, plaintext, binding, key_version=1)
    envelope = Envelope.parse(blob)
    with dek.reveal() as view:
        raw = AESGCM(view.tobytes())
    aad = binding.associated_data(envelope.format_version, envelope.key_version)
    nonce, sealed = envelope.nonce, envelope.sealed

    def raw_aesgcm() -> list[Any]:
        return [raw.decrypt(nonce, sealed, aad) for _ in range(batch)]

    def ours() -> list[Any]:
        return [decrypt(dek, envelope, binding, spec.type) for _ in range(batch)]

    def ours_with_parse() -> list[Any]:
        return [decrypt(dek, Envelope.parse(blob), binding, spec.type) for _ in range(batch)]

    variants: dict[str, Callable[[], list[Any]]] = {
        "raw_aesgcm": raw_aesgcm,
        "decrypt": ours,
        "parse_and_decrypt": ours_with_parse,
    }
    per_call: dict[str, list[float]] = {name: [] for name in variants}
    rounds = max(1, calls // batch)
    for r in range(rounds):
        for name, fn in variants.items():
            start = time.perf_counter_ns()
            results = fn()
            per_call[name].append((time.perf_counter_ns() - start) / batch / 1000)
            for result in results:  # outside the timing: wiping is not decrypting
                if isinstance(result, Secret):
                    result.wipe()
        if (r + 1) % max(1, rounds // 5) == 0:
            say(f"decrypt: round {r + 1}/{rounds}")
    out: dict[str, Any] = {"calls_per_variant": rounds * batch, "plaintext_bytes": len(plaintext)}
    for name, values in per_call.items():
        median, p99 = _median_p99(values)
        out[f"{name}_median_us"] = round(median, 2)
        out[f"{name}_p99_us"] = round(p99, 2)
    out["decrypt_vs_raw"] = round(out["decrypt_median_us"] / out["raw_aesgcm_median_us"], 2)
    dek.wipe()
    return out


# -- use() -------------------------------------------------------------------------------------


def _time_uses(vault: Vault, credential_id: str, uses: int) -> list[float]:
    times = []
    for _ in range(uses):
        start = time.perf_counter_ns()
        with vault.use(credential_id):
            pass
        times.append((time.perf_counter_ns() - start) / 1000)
    return times


def bench_use(vault: Vault, uses: int) -> dict[str, Any]:
    vault.add_user("bench-service", "service")
    service = vault.add_credential("bench-service", "okx", "okx-main", _okx_fields())
    password_mode = vault.add_credential("bench-password", "okx", "okx-main", _okx_fields())
    say(f"use: {uses} uses of each credential")
    service_us = _time_uses(vault, service.id, uses)
    session_us = _time_uses(vault, password_mode.id, uses)

    # The crypto alone: unwrap the data key, decrypt the three fields.
    with vault.engine.connect() as conn:
        user = vault.user("bench-service")
        stored: dict[str, bytes] = dict(
            conn.execute(
                sa.text("SELECT field, ciphertext FROM credential_fields WHERE credential_id = :c"),
                {"c": service.id},
            ).all()
        )
    specs = schema_for("okx").fields
    crypto_us = []
    for _ in range(uses):
        start = time.perf_counter_ns()
        dek = unwrap_master(user.wrapped_dek, user.id, user.name, vault.keyring, 1)
        opened = [
            decrypt(dek, Envelope.parse(stored[s.name]), field_binding(user.owner, service.id,
                    s.name), s.type)
            for s in specs
        ]  # fmt: skip
        crypto_us.append((time.perf_counter_ns() - start) / 1000)
        dek.wipe()
        for secret in opened:
            secret.wipe()
    service_median, service_p99 = _median_p99(service_us)
    session_median, session_p99 = _median_p99(session_us)
    return {
        "backend": "sqlite",
        "venue": "okx",
        "fields": len(specs),
        "uses": uses,
        "service_mode_median_us": round(service_median, 1),
        "service_mode_p99_us": round(service_p99, 1),
        "password_mode_session_median_us": round(session_median, 1),
        "password_mode_session_p99_us": round(session_p99, 1),
        "baseline_crypto_only_median_us": round(statistics.median(crypto_us), 1),
    }


# -- rewrap ------------------------------------------------------------------------------------


def _insert_users(engine: sa.Engine, keyring: Keyring, n: int, label: str) -> None:
    now = datetime.now(UTC)
    chunk = 10_000
    with engine.begin() as conn:
        for first in range(1, n + 1, chunk):
            rows = []
            for user_id in range(first, min(first + chunk, n + 1)):
                dek = DataKey.generate()
                wrapped, version = wrap_master(dek, user_id, keyring)
                dek.wipe()
                rows.append(
                    {"id": user_id, "name": f"bench-{user_id:07d}", "created_at": now,
                     "vault_mode": "service", "wrapped_dek": wrapped, "dek_version": 1,
                     "encryption_key_version": version}
                )  # fmt: skip
            conn.execute(users.insert(), rows)
            say(f"rewrap {label}: created {min(first + chunk - 1, n)}/{n} users")


def _crypto_floor_s(engine: sa.Engine, keyring: Keyring, sample: int) -> tuple[float, int]:
    """Unwrap + wrap of `sample` stored keys in memory: seconds, and how many."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(users.c.id, users.c.name, users.c.wrapped_dek).limit(sample)
        ).all()
    start = time.perf_counter()
    for user_id, name, wrapped in rows:
        with unwrap_master(wrapped, user_id, name, keyring, 1) as dek:
            wrap_master(dek, user_id, keyring)
    return time.perf_counter() - start, len(rows)


def bench_rewrap(target: DatabaseTarget, n: int, label: str) -> dict[str, Any]:
    engine = _opened(target)
    v1, v2 = DataKey.generate(), DataKey.generate()
    try:
        start = time.perf_counter()
        _insert_users(engine, Keyring({1: v1}, 1, "bench v1"), n, label)
        setup_s = time.perf_counter() - start

        both = Keyring({1: v1, 2: v2}, 2, "bench v1+v2")
        vault = Vault(engine, both, events=MemorySink())
        floor_s, floor_n = _crypto_floor_s(engine, both, min(n, 20_000))
        assert pending_rewrap(vault) == n
        done = 0
        step = max(1, n // 10)

        def progress(count: int) -> None:
            nonlocal done
            before, done = done, done + count
            if before // step != done // step or done == n:
                say(f"rewrap {label}: {done}/{n}")

        start = time.perf_counter()
        result = rewrap(vault, batch_size=REWRAP_BATCH, progress=progress)
        rewrap_s = time.perf_counter() - start
        if result.rewrapped != n or result.failed or pending_rewrap(vault):
            raise RuntimeError(f"rewrap left work undone: {result}")

        # A keyring without version 1 opens a sample: the keys really moved.
        only_v2 = Keyring({2: v2}, 2, "bench v2 only")
        ids = random.Random(7).sample(range(1, n + 1), min(n, 500))
        with engine.connect() as conn:
            sample = conn.execute(
                sa.select(users.c.id, users.c.name, users.c.wrapped_dek).where(users.c.id.in_(ids))
            ).all()
        for user_id, name, wrapped in sample:
            unwrap_master(wrapped, user_id, name, only_v2, 2).wipe()

        per_100k = rewrap_s * 100_000 / n
        return {
            "backend": target.backend,
            "keys": n,
            "batch_size": REWRAP_BATCH,
            "setup_insert_s": round(setup_s, 2),
            "rewrap_s": round(rewrap_s, 2),
            "rewrap_keys_per_s": round(n / rewrap_s),
            "rewrap_per_100k_s": round(per_100k, 2),
            "baseline_crypto_only_s": round(floor_s * n / floor_n, 2),
            "verified_with_v2_only_keyring": len(sample),
        }
    finally:
        engine.dispose()
        v1.wipe()
        v2.wipe()


def bench_rewrap_postgres(base: str, n: int) -> dict[str, Any]:
    try:
        with postgres_schema(base) as (target, _):
            return bench_rewrap(target, n, "postgresql")
    except sa.exc.OperationalError as e:
        reason = str(e.orig or e).strip().splitlines()[0]
        host = make_url(base).host
        say(f"rewrap postgresql: skipped, {host} unreachable")
        return {"backend": "postgresql", "skipped": f"PostgreSQL at {host} unreachable: {reason}"}


# -- main --------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000, help="data keys to rewrap")
    parser.add_argument("--skip-postgres", action="store_true", help="rewrap on SQLite only")
    parser.add_argument("--postgres-url", default=POSTGRES_URL)
    parser.add_argument("--unlocks", type=int, default=5, help="Argon2id unlocks to time")
    parser.add_argument("--decrypts", type=int, default=50_000, help="decrypts per variant")
    parser.add_argument("--uses", type=int, default=2000, help="vault.use() calls per user")
    args = parser.parse_args()
    if args.users < 1:
        parser.error("--users must be at least 1")

    with tempfile.TemporaryDirectory() as tmp:
        engine = _opened(_sqlite_target(Path(tmp)))
        keyring = Keyring({1: DataKey.generate()}, 1, "bench")
        vault = Vault(engine, keyring, events=MemorySink())
        try:
            unlock = bench_unlock(vault, args.unlocks)
            decrypt_field = bench_decrypt(args.decrypts)
            use = bench_use(vault, args.uses)
        finally:
            vault.sessions.close_all()
            keyring.wipe()
            engine.dispose()

    with tempfile.TemporaryDirectory() as tmp:
        rewrap_sqlite = bench_rewrap(_sqlite_target(Path(tmp)), args.users, "sqlite")
    if args.skip_postgres:
        rewrap_postgres: dict[str, Any] = {"backend": "postgresql", "skipped": "--skip-postgres"}
    else:
        rewrap_postgres = bench_rewrap_postgres(args.postgres_url, args.users)

    postgres_s = rewrap_postgres.get("rewrap_per_100k_s")
    result = {
        "benchmark": "vault",
        "clock": "wall time (perf_counter); medians",
        "unlock_argon2id": unlock,
        "decrypt_field": decrypt_field,
        "use_okx_credential": use,
        "rewrap_sqlite": rewrap_sqlite,
        "rewrap_postgresql": rewrap_postgres,
        "targets": {
            "decrypt_field_median_us_max": TARGET_DECRYPT_US,
            "rewrap_100k_keys_s_max": TARGET_REWRAP_100K_S,
        },
        "met": {
            "decrypt_field": decrypt_field["decrypt_median_us"] <= TARGET_DECRYPT_US,
            "rewrap_sqlite": rewrap_sqlite["rewrap_per_100k_s"] <= TARGET_REWRAP_100K_S,
            "rewrap_postgresql": None if postgres_s is None else postgres_s <= TARGET_REWRAP_100K_S,
        },
    }
    emit(result)


if __name__ == "__main__":
    main()
