"""The canary test: secret values marked with a unique string go through every vault command and
the in-process `use()` path, with debug logging on; the marker must come out nowhere.

Nowhere means: no standard output or error of any command, no log line, no exception text, and
no byte of any file the run leaves behind (the SQLite database and its -wal included).
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import traceback
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pytest
from eth_account import Account
from tests.conftest import Capture, CliRunner, Run, audit_key_env
from tests.sims.binance import BinanceSim, binance_sim
from tests.sims.hyperliquid import HyperliquidSim, hyperliquid_sim
from tests.vault.conftest import (
    parse_fields,
    revealed,
    rsa_pem,
    token,
)

from tradeguard.core.errors import VaultIntegrityError, WrongPassword
from tradeguard.crypto import MINIMUM_PARAMS, parse_keyring
from tradeguard.secrets import Password
from tradeguard.secrets.files import read_secret_file
from tradeguard.store import create_engine, resolve_database, upgrade
from tradeguard.vault import Vault
from tradeguard.vault.master import FILE_VARIABLE, init_keyring_file

log = logging.getLogger("tradeguard.gateway")


@dataclass
class Canaries:
    """A marker for text fields, one for hex-only fields, and every full value made with them."""

    text: str = field(default_factory=lambda: "CANARY" + secrets.token_hex(8))
    hex: str = field(default_factory=lambda: secrets.token_hex(8))
    values: list[str] = field(default_factory=list)

    def word(self) -> str:
        """An API key, secret or passphrase: printable, no spaces, the marker in the middle."""
        return self.keep(f"{token(4)}{self.text}{token(8)}")

    def hex_key(self) -> str:
        return self.keep(f"{secrets.token_hex(8)}{self.hex}{secrets.token_hex(16)}")

    def address(self) -> str:
        # The masked form shows 0x, four digits and the last four: the marker sits in between.
        return self.keep(f"0x{secrets.token_hex(4)}{self.hex}{secrets.token_hex(8)}")

    def pem(self) -> str:
        begin, rest = rsa_pem().split("\n", 1)
        return self.keep(f"{begin}\n{self.text}\n{rest}")

    def key_id(self) -> str:
        return self.keep(str(uuid.uuid4()))

    def password(self) -> str:
        return self.keep(f"pw-{self.text}-{token(6)}")

    def keep(self, value: str) -> str:
        self.values.append(value)
        return value

    def forms(self) -> set[str]:
        """Every spelling that would mean a leak: the markers, and each value raw, percent-
        encoded, base64 and hex."""
        found = {self.text, self.hex, self.hex.upper()}
        for value in self.values:
            raw = value.encode()
            found |= {value, quote(value, safe=""), raw.hex(), raw.hex().upper()}
            for b64 in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
                found.add(b64.decode().rstrip("="))
        return found

    def leaks_in_text(self, text: str) -> list[str]:
        return sorted(f for f in self.forms() if f in text)

    def leaks_in_bytes(self, data: bytes) -> list[str]:
        return sorted(f for f in self.forms() if f.encode() in data)


@pytest.fixture
def canaries() -> Canaries:
    return Canaries()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def tg(clean_environment: Path, home: Path) -> CliRunner:
    env = {
        "TRADEGUARD_DATA_DIR": str(home / "data"),
        "TRADEGUARD_LOG_LEVEL": "DEBUG",
        "TRADEGUARD_VAULT_KDF_MEMORY_KIB": str(MINIMUM_PARAMS.memory_kib),
        "TRADEGUARD_VAULT_KDF_ITERATIONS": str(MINIMUM_PARAMS.iterations),
        "TRADEGUARD_VAULT_KDF_LANES": str(MINIMUM_PARAMS.lanes),
        **audit_key_env(home),
    }
    return CliRunner(clean_environment, env)


class Session:
    """Runs commands, keeps every output, and checks each one worked as expected."""

    def __init__(self, tg: CliRunner) -> None:
        self.tg = tg
        self.runs: list[Run] = []

    def __call__(self, *args: str, input: str = "", code: int = 0) -> Run:
        run = self.tg(*args, input=input)
        self.runs.append(run)
        assert run.code == code, f"{args}: exit {run.code}\n{run.output}"
        return run

    def ok(self, *args: str, expect: str, input: str = "") -> Run:
        run = self(*args, input=input)
        assert expect in run.stdout, f"{args}: {expect!r} not in\n{run.stdout}"
        return run

    @property
    def output(self) -> str:
        return "\n".join(run.output for run in self.runs)


def lines(*values: str) -> str:
    return "".join(f"{v}\n" for v in values)


def every_file(root: Path) -> Iterator[Path]:
    return (p for p in sorted(root.rglob("*")) if p.is_file())


@dataclass
class Venues:
    binance: BinanceSim
    hyperliquid: HyperliquidSim


@pytest.fixture
def venues(tg: CliRunner) -> Iterator[Venues]:
    """Both venue simulators, and the CLI pointed at them: `vault add` asks the venue about
    every key, so the canaries travel through the key checks too."""
    found = Venues(BinanceSim(), HyperliquidSim())
    with binance_sim(found.binance) as binance, hyperliquid_sim(found.hyperliquid) as hl:
        tg.env["TRADEGUARD_VENUE_API_URLS"] = json.dumps({"binance": binance, "hyperliquid": hl})
        tg.env["TRADEGUARD_VENUE_TESTNET"] = '["hyperliquid"]'
        yield found


def test_no_secret_value_comes_out_anywhere(
    tg: CliRunner, home: Path, canaries: Canaries, capture: Capture, venues: Venues
) -> None:
    c = canaries
    keyring_file = home / "keyring.json"
    run = Session(tg)
    run.ok("vault", "master-key", "init", "--file", str(keyring_file), expect="mode 0600")
    tg.env[FILE_VARIABLE] = str(keyring_file)

    # -- users and credentials: JSON on stdin, and one prompt line per value ------------------
    alice_pw, alice_new_pw = c.password(), c.password()
    run.ok("users", "add", "svc", "--vault-mode", "service", expect="Added user svc")
    run.ok("users", "add", "alice", "--vault-mode", "password", input=lines(alice_pw),
           expect="Added user alice")  # fmt: skip
    binance = {"api_key": c.word(), "api_secret": c.word()}
    venues.binance.add_key(binance["api_key"], binance["api_secret"])
    run.ok("vault", "add", "--user", "svc", "--venue", "binance", "--name", "binance-main",
           "--stdin-json", input=json.dumps(binance), expect="Stored svc/binance-main")  # fmt: skip
    hyperliquid = {"agent_private_key": c.hex_key(), "account_address": c.address()}
    agent = Account.from_key(hyperliquid["agent_private_key"]).address
    venues.hyperliquid.fund(hyperliquid["account_address"], 1_000)
    venues.hyperliquid.approve_agent(hyperliquid["account_address"], agent)
    run.ok("vault", "add", "--user", "svc", "--venue", "hyperliquid", "--name", "hl-main",
           input=lines(*hyperliquid.values()), expect="Stored svc/hl-main")  # fmt: skip
    withdrawing = {"api_key": c.word(), "api_secret": c.word()}
    venues.binance.add_key(withdrawing["api_key"], withdrawing["api_secret"], withdrawals=True)
    refused = run("vault", "add", "--user", "svc", "--venue", "binance", "--name", "wide",
                  "--stdin-json", input=json.dumps(withdrawing), code=2)  # fmt: skip
    assert "binance key refused: it can move funds off the account" in refused.stderr
    kalshi = {"key_id": c.key_id(), "private_key": c.pem()}
    run.ok("vault", "add", "--user", "svc", "--venue", "kalshi", "--name", "kalshi-main",
           "--stdin-json", input=json.dumps(kalshi), expect="Stored svc/kalshi-main")  # fmt: skip
    polymarket = {
        "signer_private_key": c.hex_key(),
        "funder_address": c.address(),
        "api_key": c.word(),
        "api_secret": c.word(),
        "api_passphrase": c.word(),
    }
    run.ok("vault", "add", "--user", "svc", "--venue", "polymarket", "--name", "poly-main",
           "--stdin-json", input=json.dumps(polymarket), expect="Stored svc/poly-main")  # fmt: skip
    okx = {"api_key": c.word(), "api_secret": c.word(), "passphrase": c.word()}
    run.ok("vault", "add", "--user", "alice", "--venue", "okx", "--name", "okx-main",
           input=lines(alice_pw, *okx.values()), expect="Stored alice/okx-main")  # fmt: skip

    # -- refused input says what is wrong, never what was typed -------------------------------
    spaced = json.dumps({"api_key": f"x {c.word()}", "api_secret": c.word()})
    bad = run("vault", "add", "--user", "svc", "--venue", "binance", "--name", "bad",
              "--stdin-json", input=spaced, code=2)  # fmt: skip
    assert "api_key: an API key is 8 to 512 printable characters" in bad.stderr
    broken = run("vault", "add", "--user", "svc", "--venue", "binance", "--name", "bad",
                 "--stdin-json", input=json.dumps(binance)[:-3], code=2)  # fmt: skip
    assert "--stdin-json: not valid JSON" in broken.stderr

    # -- reading ------------------------------------------------------------------------------
    listed = run.ok("vault", "list", expect="binance-main")
    for name in ("hl-main", "kalshi-main", "poly-main", "okx-main"):
        assert name in listed.stdout
    shown = run.ok("vault", "show", "poly-main", "--user", "svc", expect="venue:      polymarket")
    assert f"funder_address: {polymarket['funder_address'][:6]}…" in shown.stdout
    run.ok("vault", "check-keys", "binance-main", expect="trade-only")
    venues.binance.set_key_permissions(binance["api_key"], withdrawals=True)
    run("vault", "check-keys", code=1)
    run.ok("vault", "show", "binance-main", expect="key check:  BLOCKED")
    venues.binance.set_key_permissions(binance["api_key"], withdrawals=False)
    run.ok("vault", "unblock", "binance-main", expect="Unblocked svc/binance-main")
    run.ok("vault", "verify", expect="4 ok, 1 locked, 0 integrity error")
    run.ok("vault", "verify", "--unlock", "alice", input=lines(alice_pw),
           expect="5 ok, 0 locked, 0 integrity error")  # fmt: skip

    # -- rotation of credentials and keys -----------------------------------------------------
    binance_new = {"api_key": c.word(), "api_secret": c.word()}
    run.ok("vault", "rotate-credential", "binance-main", "--user", "svc", "--stdin-json",
           input=json.dumps(binance_new), expect="Rotated svc/binance-main")  # fmt: skip
    okx_new = {"api_key": c.word(), "api_secret": c.word(), "passphrase": c.word()}
    run.ok("vault", "rotate-credential", "okx-main", "--user", "alice",
           input=lines(alice_pw, *okx_new.values()), expect="Rotated alice/okx-main")  # fmt: skip
    run.ok("vault", "master-key", "rotate", expect="Added master key version 2")
    run.ok("vault", "rewrap", expect="Rewrapped 1 data key(s) under master key version 2.")
    run.ok("vault", "master-key", "retire", "--below", "2", expect="below 2 are retired")
    run.ok("vault", "rotate-dek", "--user", "svc", expect="now has data key version 2")
    run.ok("vault", "rotate-dek", "--user", "alice", input=lines(alice_pw),
           expect="now has data key version 2")  # fmt: skip
    run.ok("vault", "change-password", "--user", "alice", input=lines(alice_pw, alice_new_pw),
           expect="Changed the vault password of alice")  # fmt: skip
    wrong = run("vault", "verify", "--unlock", "alice", input=lines(c.password()), code=1)
    assert "error: wrong vault password for 'alice', or no such user" in wrong.stderr
    run.ok("vault", "verify", "--unlock", "alice", input=lines(alice_new_pw),
           expect="5 ok, 0 locked, 0 integrity error")  # fmt: skip
    run.ok("vault", "remove", "binance-main", "--user", "svc", "--yes",
           expect="Removed svc/binance-main")  # fmt: skip

    assert " DEBUG " in run.output  # debug logging was on
    # every change went to the audit log, whose export is checked for canaries with the rest
    run.ok("audit", "export", expect='"event":"vault.credential.added"')
    run.ok("audit", "verify", expect="audit log intact")

    # -- in process: use() with debug logging, SQL statements and their parameters included ---
    errors: list[BaseException] = []
    sql_logger = logging.getLogger("sqlalchemy.engine")
    sql_level = sql_logger.level
    sql_logger.setLevel(logging.DEBUG)
    target = resolve_database(None, home / "data", production=False)
    engine = create_engine(target)
    try:
        upgrade(engine, target)
        with read_secret_file(FILE_VARIABLE, keyring_file) as text:
            keyring = parse_keyring(text, "the test keyring")
        vault = Vault(engine, keyring, kdf_params=MINIMUM_PARAMS)  # events go to the log
        with pytest.raises(WrongPassword) as wrong_pw:
            vault.unlock("alice", Password(c.password()))
        errors.append(wrong_pw.value)
        vault.unlock("alice", Password(alice_new_pw))
        bybit = {"api_key": c.word(), "api_secret": c.word()}
        vault.add_credential("svc", "bybit", "bybit-main", parse_fields("bybit", bybit))
        with pytest.raises(ValueError, match="an API key is 8 to 512") as refused:
            parse_fields("binance", {"api_key": f"a b {c.word()}"})
        errors.append(refused.value)

        # What went in through the commands comes out, through every rotation above.
        expected = {"hl-main": hyperliquid, "kalshi-main": kalshi, "poly-main": polymarket,
                    "okx-main": okx_new, "bybit-main": bybit}  # fmt: skip
        credentials = vault.credentials()
        assert sorted(i.name for i in credentials) == sorted(expected)
        for info in credentials:
            with vault.use(info.id) as used:
                assert {name: revealed(used[name]) for name in used} == expected[info.name]
                log.info("using %r", used)
                for name in used:
                    log.debug("field %s is %s", name, used[name])
                    with used[name].reveal_text() as value:
                        log.debug("signing payload %s", value)
                        log.info(f"inline {value}")  # the careless way, on purpose
                        try:
                            raise ConnectionError(f"venue rejected {value}")
                        except ConnectionError:
                            log.exception("request failed")
        vault.flush_usage()
        assert {r.status for r in vault.verify()} == {"ok"}

        poly = next(i for i in credentials if i.name == "poly-main")
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "UPDATE credential_fields SET ciphertext = ? WHERE credential_id = ?",
                (b"\x01" + bytes(60), poly.id),
            )
        with pytest.raises(VaultIntegrityError) as tampered, vault.use(poly.id):
            pass
        errors.append(tampered.value)
        assert "integrity error" in {r.status for r in vault.verify()}

        # The files while connections are open, the -wal with them.
        wal = target.sqlite_path.with_name(target.sqlite_path.name + "-wal")  # type: ignore[union-attr]
        assert wal.exists()
        open_files = {p: p.read_bytes() for p in every_file(home)}
    finally:
        engine.dispose()
        sql_logger.setLevel(sql_level)

    # -- nothing leaked -----------------------------------------------------------------------
    assert "signing payload [REDACTED:" in capture.text  # the values did go through the log
    assert "INSERT INTO credential_fields" in capture.text  # and so did the SQL
    assert "event vault.credential.used" in capture.text
    assert c.leaks_in_text(run.output) == []
    assert c.leaks_in_text(capture.text) == []
    for error in errors:
        assert c.leaks_in_text("".join(traceback.format_exception(error))) == []
    files = {**open_files, **{p: p.read_bytes() for p in every_file(home)}}
    assert target.sqlite_path in files
    assert wal in files
    for path, data in files.items():
        assert c.leaks_in_bytes(data) == [], path
    assert len(c.values) >= 25


def test_a_keyring_file_others_can_read_is_refused(tg: CliRunner, home: Path) -> None:
    keyring_file = home / "keyring.json"
    init_keyring_file(keyring_file)
    keyring_file.chmod(0o640)
    run = tg("vault", "list", env={FILE_VARIABLE: str(keyring_file)})
    assert run.code == 2, run.output
    assert f"run: chmod 600 {keyring_file}" in run.stderr
    assert run.stderr.startswith("error: TRADEGUARD_MASTER_KEY_FILE:")
    assert not (home / "data").exists()  # refused before the store was touched


def test_stdin_json_works_for_a_password_mode_user(
    tg: CliRunner, home: Path, canaries: Canaries, venues: Venues
) -> None:
    keyring_file = home / "keyring.json"
    init_keyring_file(keyring_file)
    tg.env[FILE_VARIABLE] = str(keyring_file)
    password = canaries.password()
    assert tg("users", "add", "alice", "--vault-mode", "password", input=lines(password)).code == 0
    key = {"api_key": canaries.word(), "api_secret": canaries.word()}
    venues.binance.add_key(key["api_key"], key["api_secret"])
    fields = json.dumps(key)
    add = ("vault", "add", "--user", "alice", "--venue", "binance", "--name", "b", "--stdin-json")
    run = tg(*add, input=f"{password}\n{fields}")  # the password line first, then the JSON
    assert run.code == 0, run.stderr
    assert canaries.leaks_in_text(run.output) == []


def test_vault_add_checks_its_options_before_asking_for_a_secret(tg: CliRunner, home: Path) -> None:
    keyring_file = home / "keyring.json"
    init_keyring_file(keyring_file)
    tg.env[FILE_VARIABLE] = str(keyring_file)
    assert tg("users", "add", "svc", "--vault-mode", "service").code == 0
    bad = tg("vault", "add", "--user", "svc", "--venue", "binance", "--name", "b",
             "--trade", "options")  # fmt: skip
    assert bad.code == 2
    assert "give spot, swap or spot,swap" in bad.stderr
    fields = json.dumps({"api_key": token(12), "api_secret": token(24), "passphrase": token(8)})
    okx = tg("vault", "add", "--user", "svc", "--venue", "okx", "--name", "okx-main",
             "--stdin-json", input=fields)  # fmt: skip
    assert okx.code == 0, okx.stderr
    assert "cannot ask okx what this key may do" in okx.stdout
    assert "unchecked" in tg("vault", "list").stdout
