"""Secrets as types (`Secret` and its kinds) and log redaction (`redact`)."""

from tradeguard.secrets.kinds import (
    ApiKey,
    ApiSecret,
    Mnemonic,
    Passphrase,
    Password,
    PrivateKey,
    Token,
)
from tradeguard.secrets.secret import Secret

__all__ = [
    "ApiKey",
    "ApiSecret",
    "Mnemonic",
    "Passphrase",
    "Password",
    "PrivateKey",
    "Secret",
    "Token",
]
