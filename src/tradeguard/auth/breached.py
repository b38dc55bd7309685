"""Is a new password in a known data breach? Have I Been Pwned's range API, by k-anonymity.

The password's SHA-1 is computed here and only its first 5 hex digits leave the process
(`GET {base}/range/ABCDE`); the service answers with every breached hash suffix under that
prefix (hundreds), and the match is found locally. `Add-Padding: true` makes the service add
decoy suffixes with count 0, so the size of the answer does not narrow the prefix down either.
See https://haveibeenpwned.com/API/v3#SearchingPwnedPasswordsByRange.

When the service cannot be asked (down, slow, answering nonsense), `fail_closed` decides: refuse
the new password with a 503 (`BreachCheckUnavailable`), or log a warning and accept it. The
HTTP client ignores proxy variables and .netrc (`trust_env=False`): only the configured URL is
ever contacted, with nothing but the prefix.
"""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit

import httpx

from tradeguard.core.errors import ConfigError, ServiceUnavailable, WeakPassword
from tradeguard.core.hosts import is_loopback_host
from tradeguard.secrets import Password, Secret

__all__ = ["DEFAULT_BASE_URL", "BreachCheckUnavailable", "BreachedPasswords"]

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.pwnedpasswords.com"
_PREFIX_LEN = 5
_LINE = re.compile(r"([0-9A-F]{35}):([0-9]{1,12})")
# A real answer is ~40 KB (about 1,000 lines); a cap keeps a misbehaving endpoint from filling
# memory.
_MAX_BODY_BYTES = 1024 * 1024
_LOOPBACK_NAMES = ("localhost",)


class BreachCheckUnavailable(ServiceUnavailable):
    """The breached-password service could not be asked (timeout, network error, a non-200 or
    malformed answer); with `fail_closed`, a new password is refused (503) until it can."""


class BreachedPasswords:
    """Client for the Pwned Passwords range API at `base_url` (https, or http to loopback).

    Holds one HTTP connection pool: `close()` it, or use it as a context manager. `timeout`
    bounds each of connecting, sending and each wait for data, in seconds.
    """

    def __init__(
        self,
        base_url: str,
        *,
        fail_closed: bool,
        timeout: float = 3.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not timeout > 0:
            raise ValueError("timeout must be a positive number of seconds")
        self.base_url, self._host = _checked_base_url(base_url)
        self.fail_closed = fail_closed
        self.timeout = timeout
        self._client = httpx.Client(
            transport=transport,
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            trust_env=False,
            headers={"Add-Padding": "true", "User-Agent": "tradeguard"},
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def count(self, password: Password) -> int:
        """How many times the password appears in known breaches (0: not found).

        Raises `BreachCheckUnavailable` when the service cannot give an answer.
        """
        if not isinstance(password, Secret):
            raise TypeError("password must be a Password (a Secret), not a plain value")
        return max(self._count_digest(digest) for digest in _digests(password))

    def check(self, password: Password) -> None:
        """Raise `WeakPassword` if the password is in a known breach.

        If the service cannot answer: raise `BreachCheckUnavailable` when `fail_closed`, else log
        a warning and accept the password.
        """
        try:
            seen = self.count(password)
        except BreachCheckUnavailable as unavailable:
            if self.fail_closed:
                raise
            log.warning("accepting a new password unchecked: %s", unavailable.message)
            return
        if seen > 0:
            raise WeakPassword(
                f"this password has appeared in {seen} known data breaches; choose another"
            )

    def _count_digest(self, digest: str) -> int:
        prefix, suffix = digest[:_PREFIX_LEN], digest[_PREFIX_LEN:]
        found = _count_in(self._fetch_range(prefix), suffix)
        if found is None:
            raise self._unavailable("answered something that is not a range list")
        return found

    def _fetch_range(self, prefix: str) -> bytes:
        try:
            with self._client.stream("GET", f"{self.base_url}/range/{prefix}") as response:
                if response.status_code != 200:
                    raise self._unavailable(f"answered HTTP {response.status_code}")
                body = _read_capped(response)
        except httpx.TimeoutException:
            raise self._unavailable(f"did not answer within {self.timeout:g} s") from None
        except httpx.HTTPError as error:
            raise self._unavailable(f"could not be reached ({type(error).__name__})") from None
        if body is None:
            raise self._unavailable(f"answered more than {_MAX_BODY_BYTES} bytes")
        return body

    def _unavailable(self, what: str) -> BreachCheckUnavailable:
        return BreachCheckUnavailable(
            f"the check against known data breaches is unavailable: {self._host} {what}; "
            "try again later"
        )


def _read_capped(response: httpx.Response) -> bytes | None:
    """The body, or None when it is larger than any real answer."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > _MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _count_in(body: bytes, suffix: str) -> int | None:
    """The count on `suffix`'s line (0 when absent or a padding line), or None when the body is
    not a range list. An empty body is not one: a real answer always has hundreds of lines."""
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        return None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return None
    found = 0
    for line in lines:
        match = _LINE.fullmatch(line.upper())
        if match is None:
            return None
        if match.group(1) == suffix:
            found = int(match.group(2))
    return found


def _digests(password: Secret) -> list[str]:
    """Uppercase SHA-1 hex of each form the password has: as typed, and its NFKC text (the form
    auth.passwords hashes) when that differs. Both log in alike, so a breach of either counts."""
    with password.reveal() as view:
        digests = [hashlib.sha1(view, usedforsecurity=False).hexdigest().upper()]
        try:
            text: str | None = str(view, "utf-8")
        except UnicodeDecodeError:
            text = None  # not text: only the raw bytes can have been breached
    if text is not None:
        nfkc = unicodedata.normalize("NFKC", text).encode("utf-8")
        digest = hashlib.sha1(nfkc, usedforsecurity=False).hexdigest().upper()
        if digest not in digests:
            digests.append(digest)
    return digests


def _checked_base_url(url: str) -> tuple[str, str]:
    """(`url` without a trailing slash, its host) if it is fit to send prefixes to."""
    problem = _base_url_problem(url)
    if problem is not None:
        raise ConfigError(
            f"the breached-password service URL {problem}; use e.g. {DEFAULT_BASE_URL}"
        )
    host = urlsplit(url).hostname or ""
    return url.rstrip("/"), host


def _base_url_problem(url: str) -> str | None:
    if not isinstance(url, str) or not url.isprintable() or " " in url:
        return "must be one printable URL"
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http"):
        return "must start with https://"
    try:
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return "has a malformed port"
    if "?" in url or "#" in url:
        return "must not have a query or fragment"
    if "@" in parts.netloc:
        return "must not carry a user name or password"
    if not parts.hostname:
        return "has no host"
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        return "must use https (plain http is allowed only to 127.0.0.1, ::1 or localhost)"
    return None
