"""Known-answer tests: vectors nobody here wrote, pushed through our own envelope and KDF code.

* NIST CAVP AES-GCM (`cryptography_vectors`: gcmEncryptExtIV256.rsp, gcmDecrypt256.rsp);
* Wycheproof AES-GCM (../shared/vectors/wycheproof/aes_gcm_test.json), including its modified
  tags that must be refused;
* Argon2id from `cryptography_vectors` KDF/argon2id.txt (RFC 9106 section 5.3 and argon2 CLI).

Only the subset our envelope supports is used: AES-256, 96-bit IV, 128-bit tag. Encryption goes
through `_encrypt_with_nonce` (the real encryption with the nonce as a parameter), decryption
through `Envelope.parse` and `decrypt_with_aad` on envelope bytes built from the vector.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cryptography_vectors
import pytest
from argon2.low_level import (  # type: ignore[attr-defined]  # lib: the documented core() use
    ARGON2_VERSION,
    Type,
    core,
    ffi,
    hash_secret_raw,
    lib,
)

from tradeguard.core.errors import IntegrityError
from tradeguard.crypto.envelope import (
    FORMAT_VERSION,
    TAG_SIZE,
    Envelope,
    _encrypt_with_nonce,
    decrypt_with_aad,
)
from tradeguard.crypto.kdf import KdfParams, derive_key
from tradeguard.crypto.keys import DataKey
from tradeguard.secrets import Secret

KEY_VERSION = 7  # any valid version: the vectors know nothing of our header
NIST_GCM_DIR = "ciphers/AES/GCM"
WYCHEPROOF_GCM = (
    Path(__file__).resolve().parents[2].parent / "shared" / "vectors" / "wycheproof"
) / "aes_gcm_test.json"
# RFC 9106 section 5.3, the Argon2id tag, copied from the RFC to cross-check the vector file.
RFC9106_ARGON2ID_TAG = bytes.fromhex(
    "0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659"
)


def _read_vector(name: str) -> str:
    with cryptography_vectors.open_vector_file(name, "r") as f:
        text: str = f.read()
    return text


def _revealed(secret: Secret) -> bytes:
    with secret.reveal() as view:
        return view.tobytes()


# -- NIST CAVP AES-GCM -----------------------------------------------------------------------


@dataclass(frozen=True)
class GcmCase:
    id: str
    key: bytes
    iv: bytes
    aad: bytes
    plaintext: bytes | None  # None: the vector is marked FAIL
    ciphertext: bytes
    tag: bytes


def parse_rsp(text: str) -> list[dict[str, str]]:
    """A CAVP .rsp file as records: each `Count = n` block plus the `[Name = value]` headers
    in force for it; a bare `FAIL` line becomes the key "FAIL"."""
    headers: dict[str, str] = {}
    records: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            name, _, value = line[1:-1].partition("=")
            headers[name.strip()] = value.strip()
            current = None
            continue
        if line == "FAIL":
            assert current is not None, "FAIL outside a record"
            current["FAIL"] = ""
            continue
        name, sep, value = line.partition("=")
        assert sep, f"unexpected line in .rsp file: {line!r}"
        name, value = name.strip(), value.strip()
        if name == "Count":
            current = {**headers, "Count": value}
            records.append(current)
        else:
            assert current is not None, f"{name} outside a record"
            current[name] = value
    return records


def nist_cases(filename: str) -> list[GcmCase]:
    cases = []
    for r in parse_rsp(_read_vector(f"{NIST_GCM_DIR}/{filename}")):
        if (r["Keylen"], r["IVlen"], r["Taglen"]) != ("256", "96", "128"):
            continue
        case = GcmCase(
            id=f"PT{r['PTlen']}-AAD{r['AADlen']}-{r['Count']}",
            key=bytes.fromhex(r["Key"]),
            iv=bytes.fromhex(r["IV"]),
            aad=bytes.fromhex(r["AAD"]),
            plaintext=None if "FAIL" in r else bytes.fromhex(r["PT"]),
            ciphertext=bytes.fromhex(r["CT"]),
            tag=bytes.fromhex(r["Tag"]),
        )
        assert (len(case.key), len(case.iv), len(case.tag)) == (32, 12, TAG_SIZE)
        cases.append(case)
    return cases


NIST_ENCRYPT = nist_cases("gcmEncryptExtIV256.rsp")
NIST_DECRYPT = nist_cases("gcmDecrypt256.rsp")


def test_the_nist_subset_is_what_we_expect() -> None:
    # 5 PT lengths x 5 AAD lengths x 15 counts per file; a parser that silently found nothing
    # (or everything) would make the parametrized tests below vacuous.
    assert len(NIST_ENCRYPT) == 375
    assert len(NIST_DECRYPT) == 375
    failing = [c for c in NIST_DECRYPT if c.plaintext is None]
    assert 0 < len(failing) < len(NIST_DECRYPT)
    assert any(c.plaintext == b"" for c in NIST_ENCRYPT)
    assert any(c.aad == b"" for c in NIST_ENCRYPT)


@pytest.mark.parametrize("case", NIST_ENCRYPT, ids=lambda c: c.id)
def test_nist_encrypt(case: GcmCase) -> None:
    assert case.plaintext is not None
    data = _encrypt_with_nonce(DataKey(case.key), case.plaintext, case.aad, KEY_VERSION, case.iv)
    envelope = Envelope.parse(data)
    assert (envelope.format_version, envelope.key_version) == (FORMAT_VERSION, KEY_VERSION)
    assert envelope.nonce == case.iv
    assert envelope.sealed[:-TAG_SIZE] == case.ciphertext
    assert envelope.sealed[-TAG_SIZE:] == case.tag
    assert _revealed(decrypt_with_aad(DataKey(case.key), envelope, case.aad)) == case.plaintext


@pytest.mark.parametrize("case", NIST_DECRYPT, ids=lambda c: c.id)
def test_nist_decrypt(case: GcmCase) -> None:
    data = Envelope(FORMAT_VERSION, KEY_VERSION, case.iv, case.ciphertext + case.tag).to_bytes()
    envelope = Envelope.parse(data)
    if case.plaintext is None:
        with pytest.raises(IntegrityError):
            decrypt_with_aad(DataKey(case.key), envelope, case.aad)
    else:
        plaintext: Secret = decrypt_with_aad(DataKey(case.key), envelope, case.aad)
        assert _revealed(plaintext) == case.plaintext


# -- Wycheproof AES-GCM ----------------------------------------------------------------------


def wycheproof_cases() -> list[Any]:
    if not WYCHEPROOF_GCM.is_file():
        reason = f"Wycheproof vectors not found at {WYCHEPROOF_GCM} (../shared/ is missing)"
        return [pytest.param(None, marks=pytest.mark.skip(reason=reason), id="missing")]
    document = json.loads(WYCHEPROOF_GCM.read_text(encoding="utf-8"))
    cases = []
    for group in document["testGroups"]:
        if (group["keySize"], group["ivSize"], group["tagSize"]) != (256, 96, 128):
            continue
        for test in group["tests"]:
            label = f"tc{test['tcId']}-{test['result']}"
            cases.append(pytest.param(test, id=label))
    return cases


WYCHEPROOF = wycheproof_cases()


def test_the_wycheproof_subset_has_valid_and_invalid_cases() -> None:
    if not WYCHEPROOF_GCM.is_file():
        pytest.skip(f"Wycheproof vectors not found at {WYCHEPROOF_GCM}")
    results = [p.values[0]["result"] for p in WYCHEPROOF]
    assert results.count("valid") >= 30
    assert results.count("invalid") >= 20
    assert set(results) <= {"valid", "invalid"}  # no "acceptable" in this subset


@pytest.mark.parametrize("test", WYCHEPROOF)
def test_wycheproof(test: dict[str, Any]) -> None:
    key, iv, aad, msg, ct, tag = (
        bytes.fromhex(test[name]) for name in ("key", "iv", "aad", "msg", "ct", "tag")
    )
    data = Envelope(FORMAT_VERSION, KEY_VERSION, iv, ct + tag).to_bytes()
    envelope = Envelope.parse(data)
    if test["result"] == "valid":
        assert _encrypt_with_nonce(DataKey(key), msg, aad, KEY_VERSION, iv) == data
        assert _revealed(decrypt_with_aad(DataKey(key), envelope, aad)) == msg
    else:
        assert test["result"] == "invalid", test["comment"]
        with pytest.raises(IntegrityError):
            decrypt_with_aad(DataKey(key), envelope, aad)


# -- Argon2id --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Argon2Case:
    id: str
    length: int
    lanes: int
    iterations: int
    memory_kib: int
    password: bytes
    salt: bytes
    secret: bytes
    ad: bytes
    output: bytes

    @property
    def fits_derive_key(self) -> bool:
        """derive_key takes a password, a 16-byte salt and parameters, and gives 32 bytes."""
        return not self.secret and not self.ad and len(self.salt) == 16 and self.length == 32


def argon2id_cases() -> list[Argon2Case]:
    records: list[dict[str, str]] = []
    for raw in _read_vector("KDF/argon2id.txt").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, value = line.partition("=")
        name, value = name.strip(), value.strip()
        if name == "COUNT":
            records.append({})
        records[-1][name] = value
    return [
        Argon2Case(
            id=f"count{r['COUNT']}",
            length=int(r["length"]),
            lanes=int(r["lanes"]),
            iterations=int(r["iter"]),
            memory_kib=int(r["memcost"]),
            password=bytes.fromhex(r.get("pass", "")),
            salt=bytes.fromhex(r["salt"]),
            secret=bytes.fromhex(r.get("secret", "")),
            ad=bytes.fromhex(r.get("ad", "")),
            output=bytes.fromhex(r["output"]),
        )
        for r in records
    ]


ARGON2ID = argon2id_cases()


def _argon2id_full(case: Argon2Case) -> bytes:
    """argon2-cffi's direct binding of argon2_ctx: the only way to pass a secret and AD."""
    out = ffi.new("uint8_t[]", case.length)
    pwd, salt, secret, ad = (
        ffi.new("uint8_t[]", value) if value else ffi.NULL
        for value in (case.password, case.salt, case.secret, case.ad)
    )
    ctx = ffi.new(
        "argon2_context *",
        {
            "out": out,
            "outlen": case.length,
            "pwd": pwd,
            "pwdlen": len(case.password),
            "salt": salt,
            "saltlen": len(case.salt),
            "secret": secret,
            "secretlen": len(case.secret),
            "ad": ad,
            "adlen": len(case.ad),
            "t_cost": case.iterations,
            "m_cost": case.memory_kib,
            "lanes": case.lanes,
            "threads": case.lanes,
            "version": ARGON2_VERSION,
            "allocate_cbk": ffi.NULL,
            "free_cbk": ffi.NULL,
            "flags": lib.ARGON2_DEFAULT_FLAGS,
        },
    )
    assert core(ctx, Type.ID.value) == lib.ARGON2_OK
    return bytes(ffi.buffer(out, case.length))


def test_the_argon2id_file_holds_the_rfc_9106_vector() -> None:
    rfc = [c for c in ARGON2ID if c.secret and c.ad]
    assert [c.output for c in rfc] == [RFC9106_ARGON2ID_TAG]
    assert any(c.fits_derive_key for c in ARGON2ID)


@pytest.mark.parametrize("case", ARGON2ID, ids=lambda c: c.id)
def test_argon2_cffi_matches_every_argon2id_vector(case: Argon2Case) -> None:
    """The library under derive_key computes RFC 9106 Argon2id (version 0x13) correctly."""
    assert ARGON2_VERSION == 0x13
    assert _argon2id_full(case) == case.output
    if not case.secret and not case.ad:
        raw = hash_secret_raw(
            secret=case.password,
            salt=case.salt,
            time_cost=case.iterations,
            memory_cost=case.memory_kib,
            parallelism=case.lanes,
            hash_len=case.length,
            type=Type.ID,
        )
        assert raw == case.output


@pytest.mark.parametrize("case", [c for c in ARGON2ID if c.fits_derive_key], ids=lambda c: c.id)
def test_derive_key_matches_argon2id_vectors(case: Argon2Case) -> None:
    params = KdfParams(case.memory_kib, case.iterations, case.lanes)
    key = derive_key(Secret(case.password), case.salt, params)
    assert isinstance(key, DataKey)
    assert key == DataKey(case.output)
