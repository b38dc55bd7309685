"""Whether a host name or address is this machine's loopback: where plain text may travel."""

from __future__ import annotations

import ipaddress

__all__ = ["is_loopback_host"]


def is_loopback_host(host: str | None) -> bool:
    """`localhost`, or a loopback address (127.0.0.0/8, ::1, bracketed or not). Any other
    name may resolve to anything, so it is not."""
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
