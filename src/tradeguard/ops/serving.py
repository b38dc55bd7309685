"""Whether the API may be served as configured: the checks `tradeguard serve` runs before it
listens, and `doctor` reports as rows."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from tradeguard.config import Settings
from tradeguard.core.errors import ConfigError, InsecurePermissionsError
from tradeguard.core.hosts import is_loopback_host
from tradeguard.core.permissions import exposure_problem

__all__ = ["check_setup", "tls_options"]


def check_setup(settings: Settings, host: str) -> None:
    """Refuse a setup that would serve logins in clear text to the network."""
    https = settings.public_url.startswith("https://")
    if settings.production and not https:
        raise ConfigError(
            f"TRADEGUARD_PUBLIC_URL is {settings.public_url}, but production needs https://: "
            "set it to the https:// address users reach (TLS here or at a reverse proxy)"
        )
    tls_here = settings.tls_cert_file is not None or settings.tls_key_file is not None
    if not is_loopback_host(host) and not tls_here and not settings.trusted_proxies:
        raise ConfigError(
            f"refusing to serve plain HTTP on {host}: passwords and tokens would cross the "
            "network in clear. Set TRADEGUARD_TLS_CERT_FILE and TRADEGUARD_TLS_KEY_FILE, or put "
            "a TLS reverse proxy in front and list its address in TRADEGUARD_TRUSTED_PROXIES, or "
            "bind 127.0.0.1"
        )


def tls_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's TLS options, after checking the files: both or neither, the key private."""
    cert, key = settings.tls_cert_file, settings.tls_key_file
    if cert is None and key is None:
        return {}
    if cert is None or key is None:
        raise ConfigError(
            "set both TRADEGUARD_TLS_CERT_FILE and TRADEGUARD_TLS_KEY_FILE (or neither, behind "
            "a TLS reverse proxy)"
        )
    _check_readable("TRADEGUARD_TLS_CERT_FILE", cert)
    _check_readable("TRADEGUARD_TLS_KEY_FILE", key)
    problem = exposure_problem(key, os.stat(key), "file")
    if problem:
        raise InsecurePermissionsError(f"TRADEGUARD_TLS_KEY_FILE: {problem}")
    return {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}


def _check_readable(variable: str, path: Path) -> None:
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        raise ConfigError(
            f"{variable}: cannot read {path} ({e.strerror}); check the path"
        ) from None
    if not stat.S_ISREG(mode):
        raise ConfigError(f"{variable}: {path} is not a regular file")
