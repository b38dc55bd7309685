"""The one exception hierarchy of tradeguard.

Every error a person can cause (bad settings, wrong permissions, a database from the future) is a
`TradeguardError`. Its message is one line that names what failed and says what to do, and it
never contains a secret: messages are built from names, paths and modes, never from values.
Entry points print the message and exit with `exit_code` (2: bad input or configuration).
"""

from __future__ import annotations

__all__ = [
    "AccountDisabled",
    "AuthError",
    "ConfigError",
    "Conflict",
    "CredentialBlocked",
    "DataDirError",
    "DatabaseUrlError",
    "Forbidden",
    "InsecurePermissionsError",
    "InsufficientFunds",
    "IntegrityError",
    "InvalidCode",
    "InvalidOrder",
    "KeyPermissionRefused",
    "LoginFailed",
    "MalformedReply",
    "MarketDataError",
    "NotFound",
    "OrderNotFound",
    "OrderOutcomeUnknown",
    "RateLimited",
    "SchemaTooNewError",
    "SecondFactorRequired",
    "SecretFileError",
    "SecretValueError",
    "SecretWipedError",
    "ServiceUnavailable",
    "StorageError",
    "Throttled",
    "TokenInvalid",
    "TradeguardError",
    "UnknownCredential",
    "UnknownUser",
    "UnlockThrottled",
    "UnsafeProductionSetting",
    "VaultError",
    "VaultIntegrityError",
    "VaultLocked",
    "VenueAuthFailed",
    "VenueError",
    "VenueRejected",
    "VenueUnavailable",
    "WeakPassword",
    "WrongPassword",
]


class TradeguardError(Exception):
    """Base of every error tradeguard raises on purpose."""

    exit_code: int = 2

    def __init__(self, message: str) -> None:
        if "\n" in message:
            raise ValueError("TradeguardError messages are one line")
        super().__init__(message)
        self.message = message


class ConfigError(TradeguardError):
    """A setting is missing, malformed or not allowed here."""


class UnsafeProductionSetting(ConfigError):
    """A setting that is fine for development was given with TRADEGUARD_ENV=production."""


class InsecurePermissionsError(ConfigError):
    """A file or directory that holds secrets is readable by someone else."""


class SecretFileError(ConfigError):
    """A TRADEGUARD_<NAME>_FILE cannot be used (missing, unreadable, wrong owner or mode)."""


class DataDirError(ConfigError):
    """The data directory cannot be created or used."""


class DatabaseUrlError(ConfigError):
    """TRADEGUARD_DATABASE_URL is malformed, unsupported or unsafe."""


class StorageError(TradeguardError):
    """The database cannot be opened or migrated."""


class SchemaTooNewError(StorageError):
    """The database was written by a newer tradeguard than this one."""


class SecretValueError(TradeguardError, ValueError):
    """A value given as a secret has the wrong shape; the message never quotes the value."""


class SecretWipedError(TradeguardError):
    """A secret was used after `wipe()`."""

    exit_code = 1


class IntegrityError(TradeguardError):
    """A ciphertext failed to decrypt: tampered, truncated, moved, or under an unknown key.

    One error for every cause, on purpose: which check failed is not told to an attacker.
    """

    exit_code = 1


class VaultError(TradeguardError):
    """The vault refused an operation; the message says which and what to do."""


class VaultIntegrityError(IntegrityError):
    """A stored credential field failed to decrypt. Names the credential and field, never the
    cause (tampered, truncated, moved, unknown key version all look the same)."""


class VaultLocked(VaultError):
    """A password-mode user's vault is locked (never unlocked, timed out, or locked)."""

    exit_code = 1


class WrongPassword(VaultError):
    """The vault password is wrong, or the user does not exist (one error for both)."""

    exit_code = 1


class UnlockThrottled(VaultError):
    """Too many failed unlocks: wait `retry_after` seconds before trying again."""

    exit_code = 1

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)


class UnknownUser(VaultError):
    """No user by that name."""


class UnknownCredential(VaultError):
    """No credential by that id or name."""


class CredentialBlocked(VaultError):
    """A credential was blocked from trading (its key gained withdraw or transfer rights, or an
    operator blocked it). Nothing trades with it until a person checks the key and unblocks it."""

    exit_code = 1


# -- venues ------------------------------------------------------------------------------------


class VenueError(TradeguardError):
    """A venue refused, failed or answered nonsense. Carries the venue's name and, where the
    venue gave one, its own error code; the message quotes the venue's text (never a key)."""

    exit_code = 1

    def __init__(self, message: str, *, venue: str, code: str | None = None) -> None:
        super().__init__(message)
        self.venue = venue
        self.code = code


class InvalidOrder(VenueError):
    """Refused before sending: unknown symbol, a size or price outside the market's limits."""

    exit_code = 2


class VenueRejected(VenueError):
    """The venue answered and said no. Definitive: the order does not exist at the venue."""


class InsufficientFunds(VenueRejected):
    """The venue (or the paper venue) rejected an order for lack of balance or margin."""


class OrderNotFound(VenueError):
    """No such order at the venue (by venue id or client order id)."""


class VenueAuthFailed(VenueError):
    """The venue refused the key or the signature (revoked, wrong secret, IP not allowed)."""


class VenueUnavailable(VenueError):
    """No usable answer: timeout, connection refused, 5xx. For a write, the outcome is unknown."""


class RateLimited(VenueUnavailable):
    """The venue said slow down (HTTP 429 / 418, Bybit 10006). `retry_after` is in seconds."""

    def __init__(
        self, message: str, *, venue: str, code: str | None = None, retry_after: float | None
    ) -> None:
        super().__init__(message, venue=venue, code=code)
        self.retry_after = retry_after


class MalformedReply(VenueError):
    """The venue answered with something we cannot parse or that breaks its own contract."""


class OrderOutcomeUnknown(VenueError):
    """An order was sent and neither its acceptance nor its absence could be confirmed. The
    order stays in flight under its client order id until reconciliation finds it."""

    def __init__(self, message: str, *, venue: str, client_order_id: str) -> None:
        super().__init__(message, venue=venue)
        self.client_order_id = client_order_id


class KeyPermissionRefused(VenueError):
    """A venue key can do more than trade (withdraw, transfer), or cannot trade at all."""

    exit_code = 2


class MarketDataError(TradeguardError):
    """A candle file or feed is unusable: gaps, duplicates, disorder, NaNs, a wrong header."""


# -- accounts and the API ----------------------------------------------------------------------


class AuthError(TradeguardError):
    """An account, login, session or permission check refused. `status` is the HTTP status the
    API answers with; messages never say whether an account exists."""

    exit_code = 1
    status: int = 400


class WeakPassword(AuthError):
    """A new password breaks the policy (length, strength, a known or breached password).
    The message says which rule and how to pick a better one; it never quotes the password."""

    status = 422


class LoginFailed(AuthError):
    """Wrong name, wrong password or no such account: one error, one message, for all three."""

    status = 401


class AccountDisabled(LoginFailed):
    """Kept as a `LoginFailed`: a disabled account answers like a wrong password."""


class Throttled(AuthError):
    """Too many attempts or requests; `retry_after` is whole seconds (the Retry-After header)."""

    status = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)


class SecondFactorRequired(AuthError):
    """The action needs a current TOTP or backup code (login, or a sensitive action)."""

    status = 401


class InvalidCode(AuthError):
    """A TOTP or backup code is wrong, already used, or replayed."""

    status = 401


class TokenInvalid(AuthError):
    """An access, refresh, reset or WebSocket token is malformed, expired, revoked or reused."""

    status = 401


class Forbidden(AuthError):
    """Authenticated, but this role or owner may not do that."""

    status = 403


class NotFound(AuthError):
    """No such object for this user (also what another user's object looks like)."""

    status = 404


class Conflict(AuthError):
    """The request clashes with the current state (a taken name or email, 2FA already on)."""

    status = 409


class ServiceUnavailable(AuthError):
    """A service a security check depends on (Redis, the breach check) cannot be reached, and
    that check fails closed: try again later."""

    status = 503
