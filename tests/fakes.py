"""Seeded generators of fake secrets (and of look-alike non-secrets) for redaction tests.

Why this module exists: the repository must never contain a literal that looks like a real
secret (a pre-commit check greps diffs for private-key PEM blocks, AWS key ids, Slack tokens and
webhook paths). Tests therefore describe log lines as *templates* and every secret-shaped value
is produced here, at test time, from a seed. The same seed always yields the same values, so a
failing corpus line can be reproduced exactly.

Placeholder syntax understood by :func:`fill`::

    {{name}}                  a value from generator `name`
    {{name:label}}            same, for a generator without a parameter; `label` tells apart
                              several values of one generator in a line
    {{name:param}}            a generator that takes a parameter, e.g. {{mnemonic:12}},
                              {{pem:rsa}}, {{token_urlsafe:32}}, {{slack_token:xoxb}}
    {{name:param:label}}      the same with a label, e.g. {{hex:32:b}}
    {{~name...}}              force "not a secret" (a secret-shaped value in a harmless role)
    {{!name...}}              force "secret" (e.g. {{!uuid}} for OKX / Kalshi API keys)

A value is a function of the seed and the placeholder's text (without the ~ / ! flag): the same
placeholder text yields the same value wherever it occurs, so a corpus line's `input` and
`expected` templates can be filled independently and still agree on their shared parts, and
``{{hex64:a}}`` and ``{{hex64:b}}`` are two different values. Generator names are listed in
``GENERATORS``; each is either a secret (its values are returned by :func:`fill` so a test can
check none of them leaks) or a negative (hashes, ids, public keys: values that must survive).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import re
import string
import struct
import uuid as uuid_mod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from cryptography.x509.oid import NameOID
from mnemonic import Mnemonic

ALNUM = string.ascii_letters + string.digits
UPPER_ALNUM = string.ascii_uppercase + string.digits
URLSAFE = ALNUM + "-_"
# Passwords avoid URL / query / JSON delimiters so one value fits every log shape it is put in.
PASSWORD_CHARS = ALNUM + "!._~-"
BIP39_WORDS_TO_BYTES = {12: 16, 15: 20, 18: 24, 21: 28, 24: 32}
PEM_KINDS = ("rsa", "rsa-pkcs8", "ec", "ed25519", "pkcs8-encrypted", "openssh")
PUBLIC_KINDS = ("rsa", "ec", "ed25519")

_MNEMONIC = Mnemonic("english")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _pem_wrap(label: str, der: bytes, width: int = 64) -> str:
    body = base64.b64encode(der).decode()
    lines = [body[i : i + width] for i in range(0, len(body), width)]
    # The armour is assembled here, never written literally, so no source file holds it.
    dashes = "-" * 5
    return "\n".join([f"{dashes}BEGIN {label}{dashes}", *lines, f"{dashes}END {label}{dashes}"])


def _der(tag: int, body: bytes) -> bytes:
    """DER TLV; only what the encrypted PKCS#8 envelope below needs."""
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


_OID_PBES2 = bytes.fromhex("06092a864886f70d01050d")
_OID_PBKDF2 = bytes.fromhex("06092a864886f70d01050c")
_OID_HMAC_SHA256_WITH_NULL = bytes.fromhex("06082a864886f70d0209" + "0500")
_OID_AES256_CBC = bytes.fromhex("060960864801650304012a")


def _is_probable_prime(n: int, rng: random.Random) -> bool:
    if n < 4:
        return n in (2, 3)
    for p in (3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37):
        if n % p == 0:
            return n == p
    d, r = n - 1, 0
    while d % 2 == 0:
        d, r = d // 2, r + 1
    for _ in range(24):
        x = pow(rng.randrange(2, n - 1), d, n)
        if x in (1, n - 1):
            continue
        for _ in range(r - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _rsa_prime(rng: random.Random, bits: int, e: int) -> int:
    while True:
        # Top two bits set so p*q has exactly 2*bits bits.
        cand = rng.getrandbits(bits) | (3 << (bits - 2)) | 1
        if (cand - 1) % e and _is_probable_prime(cand, rng):
            return cand


def _deterministic_rsa(rng: random.Random, bits: int = 1024) -> rsa.RSAPrivateKey:
    """RSA from seeded primes: cryptography's own keygen cannot be seeded."""
    e = 65537
    p = _rsa_prime(rng, bits // 2, e)
    q = _rsa_prime(rng, bits // 2, e)
    while q == p:
        q = _rsa_prime(rng, bits // 2, e)
    d = pow(e, -1, (p - 1) * (q - 1))
    public = rsa.RSAPublicNumbers(e, p * q)
    numbers = rsa.RSAPrivateNumbers(
        p, q, d, d % (p - 1), d % (q - 1), rsa.rsa_crt_iqmp(p, q), public
    )
    return numbers.private_key()


@dataclass(frozen=True)
class Generator:
    """How one placeholder name is produced and whether its values are secrets."""

    make: Callable[[Fakes, str | None], str]
    secret: bool
    takes_param: bool = False


class Fakes:
    """Deterministic fake values; `Fakes(seed)` always produces the same sequence.

    Secret-shaped methods exist so tests exercise the redactor on the exact shapes it must catch;
    the negative methods (`git_sha`, `uuid`, `tx_hash`, ...) produce values that look random too
    but must *not* be redacted, which is what keeps the redactor's precision honest.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self._pem_cache: dict[str, str] = {}
        self._keys: dict[str, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey] = {}

    def derive(self, key: str) -> Fakes:
        """A child generator whose values depend only on (seed, key), not on call order."""
        digest = hashlib.sha256(f"{self.seed}\x00{key}".encode()).digest()
        return Fakes(int.from_bytes(digest[:8], "big"))

    # -- building blocks -------------------------------------------------------------------

    def _chars(self, alphabet: str, n: int) -> str:
        return "".join(self.rng.choice(alphabet) for _ in range(n))

    def _bytes(self, n: int) -> bytes:
        return self.rng.getrandbits(8 * n).to_bytes(n, "big") if n else b""

    def _digits(self, n: int) -> str:
        return str(self.rng.randint(1, 9)) + self._chars(string.digits, n - 1)

    # -- secrets -------------------------------------------------------------------------

    def hex64(self) -> str:
        """32-byte key as hex: EVM / Hyperliquid private keys, master keys, HMAC secrets."""
        return self._bytes(32).hex()

    def hex(self, n: int) -> str:
        """`n` lowercase hex chars: OKX-style 32-hex secrets, 130-hex EVM signatures."""
        return self._bytes((n + 1) // 2).hex()[:n]

    def api_key64(self) -> str:
        """Mixed-case alphanumeric exchange API key (Binance style, 64 chars)."""
        return self._chars(ALNUM, 64)

    def token_urlsafe(self, n: int) -> str:
        """Like `secrets.token_urlsafe(n)`: `n` random bytes, base64url, unpadded."""
        return _b64url(self._bytes(n))

    def b64(self, n: int) -> str:
        """`n` random bytes in standard base64 (HMAC / RSA-PSS signatures, session tokens)."""
        return base64.b64encode(self._bytes(n)).decode()

    def password(self) -> str:
        """A 14-20 char password made only of URL- and query-safe characters."""
        return self._chars(ALNUM, 1) + self._chars(PASSWORD_CHARS, self.rng.randint(13, 19))

    def jwt(self) -> str:
        """A structurally real HS256 JWT (header.payload.signature, base64url)."""
        header = {"alg": "HS256", "typ": "JWT"}
        iat = 1_714_000_000 + self.rng.randrange(10_000_000)
        payload = {"sub": f"user-{self.rng.randrange(10_000)}", "iat": iat, "exp": iat + 900}
        signing_input = ".".join(
            _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, payload)
        )
        sig = hmac.new(self._bytes(32), signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64url(sig)}"

    def basic_b64(self) -> str:
        """base64("user:password") as sent in `Authorization: Basic ...`."""
        user = "svc-" + self._chars(string.ascii_lowercase, 6)
        return base64.b64encode(f"{user}:{self.password()}".encode()).decode()

    def telegram_token(self) -> str:
        """Bot API token: 8-10 digit bot id, colon, 35 base64url chars."""
        bot_id = self._digits(self.rng.randint(8, 10))
        return f"{bot_id}:AA{self._chars(URLSAFE, 33)}"

    def slack_token(self, prefix: str) -> str:
        """Slack token with the given `xox?` prefix (assembled here, never stored literally)."""
        if not re.fullmatch(r"xox[abposr]", prefix):
            raise ValueError(f"not a Slack token prefix: {prefix!r}")
        parts = [self._digits(12), self._digits(13), self._chars(ALNUM, 24)]
        return "-".join([prefix, *parts])

    def slack_webhook_path(self) -> str:
        """The secret `T.../B.../xxxx` tail of an incoming-webhook URL."""
        team = "T" + self._chars(UPPER_ALNUM, 10)
        channel = "B" + self._chars(UPPER_ALNUM, 10)
        return f"{team}/{channel}/{self._chars(ALNUM, 24)}"

    def aws_access_key_id(self, prefix: str = "AKIA") -> str:
        """AWS access key id: long-term (AKIA) or STS session (ASIA) prefix + 16 base32 chars."""
        if prefix not in ("AKIA", "ASIA"):
            raise ValueError(f"not an AWS key id prefix: {prefix!r}")
        return prefix + self._chars(string.ascii_uppercase + "234567", 16)

    def aws_secret_key(self) -> str:
        """AWS secret access key: 40 chars of base64 alphabet."""
        return self._chars(ALNUM + "/+", 40)

    def mnemonic(self, words: int) -> str:
        """A BIP39 English mnemonic with a valid checksum (12, 15, 18, 21 or 24 words)."""
        if words not in BIP39_WORDS_TO_BYTES:
            raise ValueError(f"BIP39 mnemonics have 12-24 words in steps of 3, not {words}")
        return str(_MNEMONIC.to_mnemonic(self._bytes(BIP39_WORDS_TO_BYTES[words])))

    def pem_private_key(self, kind: str) -> str:
        """A private-key PEM block built at call time; cached per kind within this instance."""
        if kind not in PEM_KINDS:
            raise ValueError(f"unknown PEM kind {kind!r}; expected one of {PEM_KINDS}")
        if kind not in self._pem_cache:
            self._pem_cache[kind] = self._build_private_pem(kind)
        return self._pem_cache[kind]

    def pem_private_key_json(self, kind: str) -> str:
        """The PEM as it appears inside a JSON string: newlines escaped as backslash-n."""
        return self.pem_private_key(kind).replace("\n", "\\n")

    # -- negatives (look random, must survive redaction) --------------------------------

    def git_sha(self) -> str:
        """40-hex commit id, as in version banners and deploy logs."""
        return self._bytes(20).hex()

    def uuid(self) -> str:
        """UUID4 text: request ids, bot ids, key ids."""
        return str(uuid_mod.UUID(bytes=self._bytes(16), version=4))

    def tx_hash(self) -> str:
        """0x + 64 hex: an EVM transaction hash (same shape as a private key, not a secret)."""
        return "0x" + self._bytes(32).hex()

    def hash64(self) -> str:
        """64 hex without 0x: sha256 digests, txids, block hashes, order digests."""
        return self._bytes(32).hex()

    def eth_address(self) -> str:
        """0x + 40 hex: an EVM address (public)."""
        return "0x" + self._bytes(20).hex()

    def b64_image(self) -> str:
        """A small `data:image/png;base64,...` URI: long base64 that is not a credential."""
        png_signature = bytes.fromhex("89504e470d0a1a0a0000000d49484452")
        # 16 + 224 = 240 bytes, a multiple of 3, so the base64 has no `=` padding.
        return (
            "data:image/png;base64," + base64.b64encode(png_signature + self._bytes(224)).decode()
        )

    def order_id(self) -> str:
        """Exchange-assigned numeric order id."""
        return self._digits(self.rng.randint(10, 12))

    def client_order_id(self) -> str:
        """Client order id as tradeguard sets it (prefix + hex)."""
        return "tg-" + self._bytes(10).hex()

    def pem_public_key(self, kind: str) -> str:
        """SubjectPublicKeyInfo PEM for the same seeded key material (public, not secret)."""
        if kind not in PUBLIC_KINDS:
            raise ValueError(f"unknown public key kind {kind!r}; expected one of {PUBLIC_KINDS}")
        key = self._rsa() if kind == "rsa" else self._private_key(kind)
        der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return _pem_wrap("PUBLIC KEY", der)

    def pem_certificate(self) -> str:
        """A self-signed Ed25519 certificate; Ed25519 signing is deterministic, so is this."""
        key = self._ed25519()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tradeguard.local")])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(self.rng.getrandbits(63) + 1)
            .not_valid_before(datetime(2024, 1, 1, tzinfo=UTC))
            .not_valid_after(datetime(2026, 1, 1, tzinfo=UTC))
            .sign(key, None)
        )
        return cert.public_bytes(serialization.Encoding.PEM).decode().rstrip("\n")

    def ssh_public_key(self) -> str:
        """`ssh-ed25519 AAAA... comment` line, as logged when a deploy key is installed."""
        blob = (
            self._ed25519()
            .public_key()
            .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        )
        return blob.decode() + " deploy@tradeguard"

    # -- key material ------------------------------------------------------------------

    def _ed25519(self) -> ed25519.Ed25519PrivateKey:
        key = self._private_key("ed25519")
        assert isinstance(key, ed25519.Ed25519PrivateKey)
        return key

    def _private_key(self, kind: str) -> ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey:
        """Seeded Ed25519 / P-256 keys, built once per instance so public and private agree."""
        if kind == "rsa":
            raise AssertionError("RSA is built by _deterministic_rsa")
        if kind not in self._keys:
            if kind == "ed25519":
                self._keys[kind] = ed25519.Ed25519PrivateKey.from_private_bytes(self._bytes(32))
            else:
                scalar = self.rng.randrange(1, 2**255)
                self._keys[kind] = ec.derive_private_key(scalar, ec.SECP256R1())
        return self._keys[kind]

    def _rsa(self) -> rsa.RSAPrivateKey:
        return _deterministic_rsa(random.Random(self.rng.getrandbits(64)))

    def _build_private_pem(self, kind: str) -> str:
        enc = serialization.Encoding.PEM
        none = serialization.NoEncryption()
        traditional = serialization.PrivateFormat.TraditionalOpenSSL
        pkcs8 = serialization.PrivateFormat.PKCS8
        if kind == "rsa":
            return self._rsa().private_bytes(enc, traditional, none).decode().rstrip("\n")
        if kind == "rsa-pkcs8":
            return self._rsa().private_bytes(enc, pkcs8, none).decode().rstrip("\n")
        if kind == "ec":
            key = ec.derive_private_key(self.rng.randrange(1, 2**255), ec.SECP256R1())
            return key.private_bytes(enc, traditional, none).decode().rstrip("\n")
        if kind == "ed25519":
            return self._ed25519().private_bytes(enc, pkcs8, none).decode().rstrip("\n")
        if kind == "openssh":
            return self._openssh_private()
        return self._encrypted_pkcs8()

    def _openssh_private(self) -> str:
        """OpenSSH format; cryptography puts 4 random check bytes in it, we pin them."""
        raw = self._ed25519().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        data = bytearray(base64.b64decode(b"".join(raw.splitlines()[1:-1])))

        def skip_string(at: int) -> int:
            return at + 4 + int(struct.unpack(">I", data[at : at + 4])[0])

        offset = len(b"openssh-key-v1\x00")
        for _ in range(3):  # ciphername, kdfname, kdfoptions
            offset = skip_string(offset)
        offset = skip_string(offset + 4)  # nkeys, then the public key blob
        offset += 4  # length of the private section, which starts with the check bytes
        check = self._bytes(4)
        data[offset : offset + 8] = check + check
        return _pem_wrap("OPENSSH PRIVATE KEY", bytes(data), width=70)

    def _encrypted_pkcs8(self) -> str:
        """PBES2 (PBKDF2-SHA256 + AES-256-CBC) PKCS#8 with seeded salt and IV.

        cryptography draws salt and IV from the OS RNG, so the envelope is built by hand.
        """
        inner = self._ed25519().private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        salt, iv, iterations = self._bytes(16), self._bytes(16), 2048
        kdf = PBKDF2HMAC(hashes.SHA256(), 32, salt, iterations)
        # The passphrase is thrown away: only the envelope's shape matters to the redactor.
        aes_key = kdf.derive(self.password().encode())
        padder = padding.PKCS7(128).padder()
        padded = padder.update(inner) + padder.finalize()
        encryptor = Cipher(algorithms.AES(aes_key), modes.CBC(iv)).encryptor()
        ciphertext = encryptor.update(padded) + encryptor.finalize()
        seq, octets, integer = 0x30, 0x04, 0x02
        prf = _der(seq, _OID_HMAC_SHA256_WITH_NULL)
        kdf_params = _der(
            seq, _der(octets, salt) + _der(integer, iterations.to_bytes(2, "big")) + prf
        )
        scheme = _der(seq, _OID_AES256_CBC + _der(octets, iv))
        algorithm = _der(seq, _OID_PBES2 + _der(seq, _der(seq, _OID_PBKDF2 + kdf_params) + scheme))
        return _pem_wrap("ENCRYPTED PRIVATE KEY", _der(seq, algorithm + _der(octets, ciphertext)))


def _param(fn: Callable[[Fakes, str], str]) -> Generator:
    return Generator(lambda f, p: fn(f, str(p)), secret=True, takes_param=True)


def _plain(fn: Callable[[Fakes], str], *, secret: bool) -> Generator:
    return Generator(lambda f, _p: fn(f), secret=secret)


GENERATORS: dict[str, Generator] = {
    # secrets
    "hex64": _plain(Fakes.hex64, secret=True),
    "hex": _param(lambda f, p: f.hex(int(p))),
    "api_key64": _plain(Fakes.api_key64, secret=True),
    "token_urlsafe": _param(lambda f, p: f.token_urlsafe(int(p))),
    "b64": _param(lambda f, p: f.b64(int(p))),
    "password": _plain(Fakes.password, secret=True),
    "jwt": _plain(Fakes.jwt, secret=True),
    "basic_b64": _plain(Fakes.basic_b64, secret=True),
    "telegram_token": _plain(Fakes.telegram_token, secret=True),
    "slack_token": _param(Fakes.slack_token),
    "slack_webhook_path": _plain(Fakes.slack_webhook_path, secret=True),
    "aws_access_key_id": _param(Fakes.aws_access_key_id),
    "aws_secret_key": _plain(Fakes.aws_secret_key, secret=True),
    "mnemonic": _param(lambda f, p: f.mnemonic(int(p))),
    "pem": _param(Fakes.pem_private_key),
    "pem_json": _param(Fakes.pem_private_key_json),
    # negatives
    "git_sha": _plain(Fakes.git_sha, secret=False),
    "uuid": _plain(Fakes.uuid, secret=False),
    "tx_hash": _plain(Fakes.tx_hash, secret=False),
    "hash64": _plain(Fakes.hash64, secret=False),
    "eth_address": _plain(Fakes.eth_address, secret=False),
    "b64_image": _plain(Fakes.b64_image, secret=False),
    "order_id": _plain(Fakes.order_id, secret=False),
    "client_order_id": _plain(Fakes.client_order_id, secret=False),
    "pem_public": Generator(lambda f, p: f.pem_public_key(str(p)), secret=False, takes_param=True),
    "pem_cert": _plain(Fakes.pem_certificate, secret=False),
    "ssh_pubkey": _plain(Fakes.ssh_public_key, secret=False),
}

PLACEHOLDER = re.compile(r"\{\{([~!]?)([a-z][a-z0-9_]*)((?::[A-Za-z0-9_-]+)*)\}\}")


def _expand(match: re.Match[str], fakes: Fakes, secrets: list[str]) -> str:
    flag, name, rest = match.group(1), match.group(2), match.group(3)
    gen = GENERATORS.get(name)
    if gen is None:
        raise ValueError(f"unknown placeholder generator {name!r} in {match.group(0)!r}")
    fields = rest.split(":")[1:]
    max_fields = 2 if gen.takes_param else 1
    if len(fields) > max_fields or (gen.takes_param and not fields):
        raise ValueError(
            f"bad placeholder {match.group(0)!r}: {name} takes_param={gen.takes_param}"
        )
    param = fields[0] if gen.takes_param else None
    # Identity is the placeholder text minus its flag, hence stable across input/expected.
    value = gen.make(fakes.derive(name + rest), param)
    if flag == "!" or (gen.secret and flag != "~"):
        secrets.append(value)
    return value


def fill(template: str, fakes: Fakes) -> tuple[str, list[str]]:
    """Replace every placeholder in `template`; return the text and the secret values used.

    Negative generators (and `~`-flagged placeholders) are left out of the secret list because
    they are expected to appear verbatim in redacted output.
    """
    secrets: list[str] = []
    text = PLACEHOLDER.sub(lambda m: _expand(m, fakes, secrets), template)
    if "{{" in text:
        raise ValueError(f"unparsed placeholder left in template: {template!r}")
    return text, list(dict.fromkeys(secrets))
