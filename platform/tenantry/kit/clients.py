"""Who is calling: the client's IP behind trusted proxies, and the key a limit counts it by."""

from __future__ import annotations

import ipaddress
import logging
from functools import lru_cache

from starlette.requests import Request

from tenantry.config import Settings

logger = logging.getLogger("tenantry.clients")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=16)
def _trusted(entries: tuple[str, ...]) -> tuple[bool, tuple[Network, ...]]:
    """(trust everyone, networks) from TRUSTED_PROXIES: IPs, CIDRs or `*`."""
    networks = []
    for entry in entries:
        if entry == "*":
            return True, ()
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            logger.warning("ignoring TRUSTED_PROXIES entry %r: not an IP or CIDR", entry)
    return False, tuple(networks)


def _is_trusted(host: str, trust_all: bool, networks: tuple[Network, ...]) -> bool:
    if trust_all:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in network for network in networks)


def client_ip(request: Request) -> str | None:
    """The socket's peer, unless that peer is a proxy trusted by TRUSTED_PROXIES: then
    the nearest untrusted hop of X-Forwarded-For. A client can prepend anything to
    that header, so only hops added by trusted proxies (read from the right) count.

    Idempotent with uvicorn's proxy_headers (which `tenantry serve` enables for the
    same list): after uvicorn has rewritten the peer, the peer is no longer trusted.
    """
    peer = request.client.host if request.client else None
    settings: Settings = request.app.state.settings
    if peer is None or not settings.trusted_proxies:
        return peer
    trust_all, networks = _trusted(tuple(settings.trusted_proxies))
    if not _is_trusted(peer, trust_all, networks):
        return peer
    hops = [
        hop.strip()
        for header in request.headers.getlist("x-forwarded-for")
        for hop in header.split(",")
        if hop.strip()
    ]
    for hop in reversed(hops):
        if not _is_trusted(hop, trust_all, networks):
            return hop
    return hops[0] if hops else peer


def ip_key(ip: str | None) -> str:
    """IPv4 as is; IPv6 by its /64, which one client usually owns whole."""
    if not ip:
        return "unknown"
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip[:64].replace("{", "").replace("}", "")
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return f"{ipaddress.IPv6Network((address, 64), strict=False).network_address}/64"
    return str(address)
