"""A mesh's address plan: pod and service CIDRs, the gateway, and pod IP allocation.

Pure: the checks against the root namespace take its addresses as input (network.py reads
them with `ip -j addr`, read only). Mesh addresses must be private (RFC 1918) and must not
collide with anything the host already uses, so a mesh can never shadow a real network.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Set
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, ip_interface, ip_network

from isthmus.netns.names import validate_mesh_name

RFC1918 = (
    IPv4Network("10.0.0.0/8"),
    IPv4Network("172.16.0.0/12"),
    IPv4Network("192.168.0.0/16"),
)
# A pod CIDR needs room for the network, gateway, broadcast and at least one pod.
_POD_PREFIX_MAX = 29


class NetworkConfigError(ValueError):
    """A mesh network setting is unusable; the message names the setting."""


def _private_network(field: str, value: str) -> IPv4Network:
    try:
        network = ip_network(value, strict=True)
    except ValueError as exc:
        raise NetworkConfigError(f"{field} {value!r} is not an IPv4 CIDR: {exc}") from None
    if not isinstance(network, IPv4Network):
        raise NetworkConfigError(f"{field} {value!r}: only IPv4 is supported")
    if not any(network.subnet_of(private) for private in RFC1918):
        raise NetworkConfigError(
            f"{field} {value!r} is not a private range (10/8, 172.16/12 or 192.168/16)"
        )
    return network


@dataclass(frozen=True)
class NetworkConfig:
    """The mesh name and its address plan; invalid values raise NetworkConfigError."""

    mesh: str = "isthmus"
    pod_cidr: str = "10.44.0.0/16"
    service_cidr: str = "10.96.0.0/16"

    def __post_init__(self) -> None:
        try:
            validate_mesh_name(self.mesh)
        except ValueError as exc:
            raise NetworkConfigError(str(exc)) from None
        pods = _private_network("pod_cidr", self.pod_cidr)
        services = _private_network("service_cidr", self.service_cidr)
        if pods.prefixlen > _POD_PREFIX_MAX:
            raise NetworkConfigError(f"pod_cidr {self.pod_cidr!r} is too small (at most /29)")
        if pods.overlaps(services):
            raise NetworkConfigError(
                f"pod_cidr {self.pod_cidr!r} overlaps service_cidr {self.service_cidr!r}"
            )

    @property
    def pod_network(self) -> IPv4Network:
        return IPv4Network(self.pod_cidr)

    @property
    def service_network(self) -> IPv4Network:
        return IPv4Network(self.service_cidr)

    @property
    def gateway(self) -> IPv4Address:
        """The bridge's address: the pod CIDR's first host address."""
        return self.pod_network.network_address + 1

    def pod_interface(self, ip: IPv4Address) -> IPv4Interface:
        """A pod address with the pod CIDR's prefix length, as configured on eth0."""
        return IPv4Interface(f"{ip}/{self.pod_network.prefixlen}")


def parse_ip_addr_json(text: str) -> list[IPv4Interface]:
    """The IPv4 addresses in `ip -j addr` output."""
    found: list[IPv4Interface] = []
    for link in json.loads(text or "[]"):
        for info in link.get("addr_info", []):
            if info.get("family") == "inet":
                iface = ip_interface(f"{info['local']}/{info['prefixlen']}")
                assert isinstance(iface, IPv4Interface)
                found.append(iface)
    return found


def check_host_overlap(config: NetworkConfig, host_addresses: Iterable[IPv4Interface]) -> None:
    """Raise NetworkConfigError if a root-namespace address lies in or around a mesh CIDR."""
    for field, network in (
        ("pod_cidr", config.pod_network),
        ("service_cidr", config.service_network),
    ):
        for address in host_addresses:
            if address.network.overlaps(network):
                raise NetworkConfigError(
                    f"{field} {network} overlaps {address.with_prefixlen}, an address already "
                    "configured on this host; choose another private range"
                )


def validate_pod_ip(config: NetworkConfig, ip: str, used: Set[IPv4Address]) -> IPv4Address:
    """A requested pod IP, if it is a free host address of the pod CIDR other than the gateway."""
    try:
        address = IPv4Address(ip)
    except ValueError:
        raise NetworkConfigError(f"pod IP {ip!r} is not an IPv4 address") from None
    network = config.pod_network
    if address not in network or address in (
        network.network_address,
        network.broadcast_address,
    ):
        raise NetworkConfigError(f"pod IP {ip} is not a host address of pod_cidr {network}")
    if address == config.gateway:
        raise NetworkConfigError(f"pod IP {ip} is the mesh gateway")
    if address in used:
        raise NetworkConfigError(f"pod IP {ip} is already in use")
    return address


def allocate_pod_ip(
    config: NetworkConfig, used: Set[IPv4Address], after: IPv4Address | None = None
) -> IPv4Address:
    """The next free pod address after `after` (wrapping), so a freed IP is not reused at once.

    `used` comes from the namespaces that exist, which keeps allocation correct across
    restarts without a state file.
    """
    network = config.pod_network
    first = int(config.gateway) + 1
    last = int(network.broadcast_address) - 1
    size = last - first + 1
    if size <= 0:
        raise NetworkConfigError(f"pod_cidr {network} has no room for pods")
    start = int(after) + 1 if after is not None and first <= int(after) <= last else first
    for step in range(size):
        candidate = IPv4Address(first + (start - first + step) % size)
        if candidate not in used:
            return candidate
    raise NetworkConfigError(f"pod_cidr {network} is full ({size} pods)")
