"""The vault: encrypted venue credentials, per-user data keys, unlock sessions, rotation."""

from tradeguard.vault.credentials import CredentialInfo, UsedCredential
from tradeguard.vault.rotation import RewrapResult, pending_rewrap, retire_below, rewrap, rotate_dek
from tradeguard.vault.schemas import VENUES, FieldSpec, VenueSchema, schema_for
from tradeguard.vault.service import Vault, VerifyRow
from tradeguard.vault.sessions import UnlockSessions
from tradeguard.vault.users import UserInfo, VaultMode

__all__ = [
    "VENUES",
    "CredentialInfo",
    "FieldSpec",
    "RewrapResult",
    "UnlockSessions",
    "UsedCredential",
    "UserInfo",
    "Vault",
    "VaultMode",
    "VenueSchema",
    "VerifyRow",
    "pending_rewrap",
    "retire_below",
    "rewrap",
    "rotate_dek",
    "schema_for",
]
