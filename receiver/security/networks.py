"""
IP addresses and networks: allow-lists, trusted proxies, the client behind them.

Pure: no I/O. Shared by the settings' validation and the handshake policy.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import TypeAlias

from receiver.errors import ConfigError

Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network
Address: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """Parse CIDRs (or single addresses).

    Raises:
        ConfigError: A value is not an address or network.
    """
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ConfigError(f"not an IP network: {value!r}") from None
    return tuple(networks)


def parse_address(value: str) -> Address | None:
    """An IP address from a peer or a forwarded-for entry (``[v6]:port``, ``v4:port``), else None."""
    text = value.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def within(address: Address, networks: Sequence[Network]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


def client_address(peer: str | None, forwarded_for: str | None, trusted_proxies: Sequence[Network]) -> Address | None:
    """The client's address: the peer's, or from ``X-Forwarded-For`` when the peer is a trusted proxy.

    Walks the forwarded list from the right, skipping trusted proxies; the first
    address not a trusted proxy is the client. An entry that does not parse
    ends the walk with None (unknown: refused by an allow-list).
    """
    address = parse_address(peer) if peer else None
    if address is None or not forwarded_for or not within(address, trusted_proxies):
        return address
    for entry in reversed(forwarded_for.split(",")):
        hop = parse_address(entry)
        if hop is None:
            return None
        address = hop
        if not within(hop, trusted_proxies):
            return hop
    return address
