"""A service's addresses as Istio keeps them: an IP, or a CIDR block.

Istio's ServiceEntry conversion (serviceentry/conversion.go convertServices) makes one
service per (host, address); an address is an IP, or a CIDR block, where a /32 (/128)
block is its one IP. isthmus keeps a host's addresses together on its Service, in this
normalized form: an IP as written, a block as `network/prefix`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence


def normalized(address: str) -> str | None:
    """`address` as a service address: an IP, or `network/prefix` for a wider block; a
    /32 or /128 block is its IP. None when it is neither (validation refuses those)."""
    try:
        if "/" not in address:
            return str(ipaddress.ip_address(address))
        network = ipaddress.ip_network(address, strict=False)
    except ValueError:
        return None
    if network.num_addresses == 1:
        return str(network.network_address)
    return str(network)


def normalized_all(addresses: Iterable[str]) -> tuple[str, ...]:
    """Every valid address of `addresses`, normalized, each once, in order."""
    out: list[str] = []
    for raw in addresses:
        address = normalized(raw)
        if address is not None and address not in out:
            out.append(address)
    return tuple(out)


def is_cidr(address: str) -> bool:
    """A block of more than one address (normalized addresses only)."""
    return "/" in address


def within(address: str, subnets: Sequence[str]) -> bool:
    """Whether every destination of `address` (an IP, or a whole block) lies in one of
    `subnets`; addresses of another IP version never do."""
    network = ipaddress.ip_network(address, strict=False)
    for subnet in subnets:
        other = ipaddress.ip_network(subnet, strict=False)
        if other.version == network.version and network.subnet_of(other):  # type: ignore[arg-type]
            return True
    return False
