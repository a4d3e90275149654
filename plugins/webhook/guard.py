"""Refusing webhook destinations inside the network (SSRF): every address a host resolves to is checked."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class Refused(Exception):
    """The destination is not public and not allow-listed; nothing was sent."""


@dataclass(frozen=True)
class AllowList:
    """``NUDGE_WEBHOOK_ALLOW``: host names and addresses/CIDRs that may be called although not public."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> AllowList:
        """:raises ValueError: naming the entry that is neither a host name nor an address/CIDR."""
        hosts, networks = set(), []
        for entry in (e.strip() for e in (text or "").split(",")):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            name = entry.lower().rstrip(".")
            if "/" in name or not all(part.replace("-", "").isalnum() for part in name.split(".")):
                raise ValueError(f"{entry!r} is neither a host name nor an address or CIDR (e.g. 10.0.0.0/8)")
            hosts.add(name)
        return cls(frozenset(hosts), tuple(networks))

    def allows(self, host: str, address: Address) -> bool:
        return host.lower().rstrip(".") in self.hosts or any(
            address in net for net in self.networks if net.version == address.version
        )


def is_public(address: Address) -> bool:
    """True for globally routable unicast addresses; IPv4 inside IPv6 (mapped, 6to4) is judged as IPv4."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None:
            return is_public(embedded)
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def resolve(host: str, port: int, allow: AllowList) -> list[str]:
    """Resolve *host* once and return its addresses; the caller connects to these, never to the name again.

    :raises Refused: when any address is neither public nor allow-listed (all must pass: DNS can mix them).
    :raises OSError: when the name does not resolve.
    """
    try:
        found = [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        found = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    addresses = list(dict.fromkeys(found))
    for address in addresses:
        if not is_public(address) and not allow.allows(host, address):
            shown = host if str(address) == host.strip("[]") else f"{host} ({address})"
            raise Refused(
                f"refusing to call {shown}: a private, loopback, link-local or otherwise non-public "
                "address; add it to NUDGE_WEBHOOK_ALLOW if this destination is intended"
            )
    return [str(a) for a in addresses]
