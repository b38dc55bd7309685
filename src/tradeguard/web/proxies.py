"""Which proxy headers to believe: only those added by a configured trusted proxy.

A client can send any `X-Forwarded-For` it likes, so the header is read only when the peer (the
TCP connection's other end) is in `trusted_proxies`, and then from the right: each trusted proxy
appends the address it saw, so the rightmost address that is not a trusted proxy is the client.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from functools import lru_cache

__all__ = ["TrustedProxies", "trusted_proxies"]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_MAX_HOPS = 32  # more addresses than this in one header is not a real proxy chain


class TrustedProxies:
    def __init__(self, networks: Sequence[str]) -> None:
        self.networks: tuple[_Network, ...] = tuple(
            ipaddress.ip_network(n, strict=False) for n in networks
        )

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, address: str) -> bool:
        if not self.networks:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.networks)

    def client(self, peer: str, forwarded_for: str | None) -> str:
        """The client's address: the peer, or (behind trusted proxies) the rightmost
        forwarded address that is not one of them."""
        if not forwarded_for or not self.trusts(peer):
            return peer
        hops = [h.strip() for h in forwarded_for.split(",")[-_MAX_HOPS:]]
        for hop in reversed(hops):
            if not _is_address(hop):
                return peer  # a mangled header: trust nothing in it
            if not self.trusts(hop):
                return hop
        return hops[0] if hops else peer

    def https(self, scheme: str, peer: str, forwarded_proto: str | None) -> bool:
        """Whether the client's connection is TLS: ours, or the trusted proxy's."""
        if scheme in ("https", "wss"):
            return True
        if forwarded_proto is None or not self.trusts(peer):
            return False
        # The proxy closest to us appended last.
        return forwarded_proto.split(",")[-1].strip().lower() == "https"


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


@lru_cache(maxsize=8)
def _cached(networks: tuple[str, ...]) -> TrustedProxies:
    return TrustedProxies(networks)


def trusted_proxies(networks: Sequence[str]) -> TrustedProxies:
    """Parsed once per distinct list (settings are frozen; requests ask often)."""
    return _cached(tuple(networks))
