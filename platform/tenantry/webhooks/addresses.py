"""Where a webhook may go: the URL rules and the address check against SSRF.

An endpoint URL is the tenant's input, and the worker POSTs to it from inside our
network, so the URL must never reach what only we can reach: loopback, private and
link-local networks, carrier-grade NAT, multicast, reserved ranges and the cloud
metadata services. The check runs twice: on create/update (a 422 the tenant can act
on), and at every connection against the addresses the name resolves to *then*,
pinning the connection to an address that passed, so a DNS answer that changes after
the check (rebinding) cannot get through. `WEBHOOK_ALLOW_PRIVATE_NETWORKS=true` lifts
the address rule (development and tests); production refuses to start with it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from tenantry.config import Settings
from tenantry.kit.http import MAX_URL_LENGTH

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Metadata services that are not already in a refused range (169.254.169.254 is
# link-local, fd00:ec2::254 unique-local, 100.100.100.200 CGNAT): named anyway, and
# Azure's wire server, which is a public address.
METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",
        "169.254.170.2",
        "fd00:ec2::254",
        "100.100.100.200",
        "168.63.129.16",
    )
)
CGNAT = ipaddress.ip_network("100.64.0.0/10")
NAT64 = ipaddress.ip_network("64:ff9b::/96")
RESOLVE_TIMEOUT_SECONDS = 5.0


class AddressRefused(Exception):
    """The URL, or an address its host resolves to, may not receive webhooks."""


def refusal(address: IPAddress) -> str | None:
    """Why this address is refused, or None when it is a public unicast address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is None and address.teredo is not None:
            embedded = address.teredo[1]
        if embedded is not None:
            reason = refusal(embedded)
            return None if reason is None else f"{reason} (embedded in {address})"
    if address in METADATA:
        return "a cloud metadata address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_unspecified:
        return "the unspecified address"
    if isinstance(address, ipaddress.IPv4Address) and address in CGNAT:
        return "a carrier-grade NAT address"
    if address.is_private:
        return "a private address"
    if address.is_reserved or not address.is_global:
        return "a reserved address"
    return None


class Resolver(Protocol):
    async def resolve(self, host: str, port: int) -> list[str]: ...


class SystemResolver:
    """The operating system's resolver (getaddrinfo in a thread), bounded in time."""

    async def resolve(self, host: str, port: int) -> list[str]:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(RESOLVE_TIMEOUT_SECONDS):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass
class _Holder:
    resolver: Resolver


# Looked up on every use, so tests can answer DNS themselves (a rebinding case).
current = _Holder(SystemResolver())


@dataclass(frozen=True)
class Target:
    """A URL's parts, and the address a connection to it must use."""

    scheme: str
    host: str
    port: int
    address: str

    def pinned_url(self, url: str) -> str:
        """The URL with its host replaced by the checked address (Host and SNI keep the
        name): the connection goes exactly where the check looked."""
        parts = urlsplit(url)
        literal = f"[{self.address}]" if ":" in self.address else self.address
        return parts._replace(netloc=f"{literal}:{self.port}").geturl()

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == default else f"{name}:{self.port}"


def check_syntax(settings: Settings, url: str) -> tuple[str, str, int]:
    """Scheme, host and port of an acceptable URL; AddressRefused says what is wrong."""
    if len(url) > MAX_URL_LENGTH:
        raise AddressRefused(f"The URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise AddressRefused("The URL is not valid") from None
    allowed = ("https",) if settings.is_production else ("https", "http")
    if parts.scheme not in allowed:
        raise AddressRefused(f"The URL must use {' or '.join(allowed)}")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise AddressRefused("The URL must not contain a user name or password")
    host = parts.hostname
    if not host:
        raise AddressRefused("The URL has no host")
    if parts.fragment:
        raise AddressRefused("The URL must not have a fragment")
    if any(ord(c) < 33 for c in url):
        raise AddressRefused("The URL must not contain spaces or control characters")
    return parts.scheme, host, port or (443 if parts.scheme == "https" else 80)


async def resolve_target(settings: Settings, url: str) -> Target:
    """Check the URL and every address its host resolves to now; the first one to use.

    Every address must pass, not just one: a name with one public and one private
    answer could otherwise be steered to the private one.
    """
    scheme, host, port = check_syntax(settings, url)
    addresses = await _addresses(host, port)
    if not settings.webhook_allow_private_networks:
        for text in addresses:
            reason = refusal(ipaddress.ip_address(text.split("%")[0]))
            if reason is not None:
                raise AddressRefused(f"The host {host} resolves to {reason}, which is refused")
    return Target(scheme=scheme, host=host, port=port, address=addresses[0])


async def _addresses(host: str, port: int) -> list[str]:
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    try:
        found = await current.resolver.resolve(host, port)
    except (OSError, TimeoutError, UnicodeError):
        found = []
    if not found:
        raise AddressRefused(f"The host {host} does not resolve")
    return found
