"""Who a request comes from, for the per-client limits (pure, no I/O).

The client is the TLS peer, unless the peer is one of the configured trusted proxies: then
it is the address those proxies saw, read from X-Forwarded-For right to left (each proxy
appends the address it was connected from), skipping the trusted proxies themselves. What a
client writes into X-Forwarded-For is never believed: it sits left of the first entry a
trusted proxy wrote, and the walk stops there.

IPv6 clients are keyed by their /64: one host usually holds a whole /64 and could otherwise
take a new address for every request. IPv4-mapped IPv6 addresses count as IPv4.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

__all__ = ["Networks", "client_address", "limit_key", "parse_networks"]

Address = IPv4Address | IPv6Address
Networks = tuple[IPv4Network | IPv6Network, ...]


def parse_networks(text: str) -> Networks:
    """``"10.0.0.5, 192.168.0.0/24, fd00::/8"`` → networks; ValueError for a bad entry."""
    networks = []
    for entry in text.split(","):
        entry = entry.strip()
        if entry:
            try:
                networks.append(ip_network(entry, strict=False))
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network") from None
    return tuple(networks)


def _address(text: str) -> Address | None:
    """An address as proxies write it: bare, ``[v6]``, ``[v6]:port`` or ``v4:port``."""
    text = text.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        found = ip_address(text)
    except ValueError:
        return None
    if isinstance(found, IPv6Address) and found.ipv4_mapped is not None:
        return found.ipv4_mapped
    return found


def _trusted(address: Address, trusted: Networks) -> bool:
    return any(address in network for network in trusted)


def client_address(peer: str, forwarded_for: Iterable[str], trusted: Networks) -> str:
    """The client's address: ``peer`` (the TLS peer), or when it is a trusted proxy the
    rightmost X-Forwarded-For entry (of all the headers' values, in order) that is not."""
    current = _address(peer)
    if current is None:
        return peer  # not an IP (a Unix socket in a test): the peer is all there is
    if not trusted or not _trusted(current, trusted):
        return str(current)
    entries = [part for value in forwarded_for for part in value.split(",")]
    for entry in reversed(entries):
        hop = _address(entry)
        if hop is None:
            break  # unreadable: keep the last address a trusted proxy vouched for
        current = hop
        if not _trusted(hop, trusted):
            break
    return str(current)


def limit_key(address: str) -> str:
    """The key the client's limits are counted under: the IPv4 address, or the IPv6 /64."""
    found = _address(address)
    if found is None:
        return address
    if isinstance(found, IPv6Address):
        return str(IPv6Network((int(found) >> 64 << 64, 64)))
    return str(found)
