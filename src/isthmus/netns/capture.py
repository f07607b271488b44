"""istio-init's traffic capture as iptables-restore text for a pod's nat table. Pure.

Semantics follow Istio's `istio-iptables` (REDIRECT mode, IPv4):

- inbound: TCP arriving on the pod's ports (or all ports, `*`, minus the excluded ones and
  the proxy's own ports) is redirected to Envoy's inbound listener, 15006;
- outbound: TCP the pod sends is redirected to Envoy's outbound listener, 15001, except
  traffic of the proxy (uid/gid 1337), traffic to 127.0.0.1, excluded ports and excluded
  CIDRs, and, when include ranges are given, traffic outside them;
- the proxy talking to its own pod IP over `lo` (an app calling its own service through
  the mesh) goes to the inbound listener, while the app reaching itself by pod IP is left
  alone; Envoy's inbound passthrough, bound to 127.0.0.6, is never captured again.

Applied with iptables-restore (no --noflush) the text replaces the pod's whole nat table
in one atomic commit, which makes applying it idempotent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Literal, TypeVar

PROXY_UID = 1337
PROXY_GID = 1337
OUTBOUND_CAPTURE_PORT = 15001
INBOUND_CAPTURE_PORT = 15006
# Envoy admin, the capture listeners, agent metrics, readiness and Envoy stats are the
# proxy's own and are never captured inbound (Istio excludes 15090, 15021 and 15020 the same way).
PROXY_PORTS = (15000, 15001, 15006, 15020, 15021, 15090)
INBOUND_PASSTHROUGH_SOURCE = "127.0.0.6/32"
LOOPBACK_HOST = "127.0.0.1/32"
_LOOPBACK = IPv4Network("127.0.0.0/8")

ANNOTATION_PREFIX = "traffic.sidecar.istio.io/"
INCLUDE_OUTBOUND_IP_RANGES = ANNOTATION_PREFIX + "includeOutboundIPRanges"
EXCLUDE_OUTBOUND_IP_RANGES = ANNOTATION_PREFIX + "excludeOutboundIPRanges"
EXCLUDE_OUTBOUND_PORTS = ANNOTATION_PREFIX + "excludeOutboundPorts"
INCLUDE_INBOUND_PORTS = ANNOTATION_PREFIX + "includeInboundPorts"
EXCLUDE_INBOUND_PORTS = ANNOTATION_PREFIX + "excludeInboundPorts"

_CHAIN_PREFIX = re.compile(r"^[A-Z][A-Z0-9_]{0,15}$")

_T = TypeVar("_T")
Ports = tuple[int, ...]
Ranges = tuple[IPv4Network, ...]


@dataclass(frozen=True)
class CaptureConfig:
    """What istio-init captures in one pod. `"*"` means all ports / all addresses."""

    chain_prefix: str = "ISTHMUS"
    proxy_uid: int = PROXY_UID
    proxy_gid: int = PROXY_GID
    outbound_capture_port: int = OUTBOUND_CAPTURE_PORT
    inbound_capture_port: int = INBOUND_CAPTURE_PORT
    include_inbound_ports: Ports | Literal["*"] = "*"
    exclude_inbound_ports: Ports = ()
    include_outbound_ip_ranges: Ranges | Literal["*"] = "*"
    exclude_outbound_ip_ranges: Ranges = ()
    exclude_outbound_ports: Ports = ()

    def __post_init__(self) -> None:
        if not _CHAIN_PREFIX.match(self.chain_prefix):
            raise ValueError(f"chain prefix {self.chain_prefix!r} must be 1-16 of A-Z, 0-9 and '_'")
        ports = [self.outbound_capture_port, self.inbound_capture_port]
        for group in (self.include_inbound_ports, self.exclude_inbound_ports):
            ports += list(group) if isinstance(group, tuple) else []
        for port in [*ports, *self.exclude_outbound_ports]:
            if not 1 <= port <= 65535:
                raise ValueError(f"port {port} is out of range 1-65535")
        for ident in (self.proxy_uid, self.proxy_gid):
            if ident < 0:
                raise ValueError(f"proxy uid/gid {ident} is negative")

    @property
    def chains(self) -> dict[str, str]:
        """The chain names, keyed by their Istio role."""
        return {
            role: f"{self.chain_prefix}_{role}"
            for role in ("INBOUND", "REDIRECT", "IN_REDIRECT", "OUTPUT")
        }


def render_rules(config: CaptureConfig) -> str:
    """The pod's nat table as iptables-restore input."""
    chains = config.chains
    lines = [
        f"# isthmus capture rules (istio-init semantics), chains {config.chain_prefix}_*",
        "*nat",
        ":PREROUTING ACCEPT [0:0]",
        ":INPUT ACCEPT [0:0]",
        ":OUTPUT ACCEPT [0:0]",
        ":POSTROUTING ACCEPT [0:0]",
        *(f":{chain} - [0:0]" for chain in chains.values()),
        f"-A {chains['REDIRECT']} -p tcp -j REDIRECT --to-ports {config.outbound_capture_port}",
        f"-A {chains['IN_REDIRECT']} -p tcp -j REDIRECT --to-ports {config.inbound_capture_port}",
        *_inbound_rules(config),
        *_outbound_rules(config),
        "COMMIT",
    ]
    return "\n".join(lines) + "\n"


def _inbound_rules(config: CaptureConfig) -> list[str]:
    chains = config.chains
    include = config.include_inbound_ports
    if isinstance(include, tuple) and not include:
        return []
    rules = [f"-A PREROUTING -p tcp -j {chains['INBOUND']}"]
    if not isinstance(include, tuple):
        for port in _unique([*PROXY_PORTS, *config.exclude_inbound_ports]):
            rules.append(f"-A {chains['INBOUND']} -p tcp --dport {port} -j RETURN")
        rules.append(f"-A {chains['INBOUND']} -p tcp -j {chains['IN_REDIRECT']}")
    else:
        for port in _unique(include):
            rules.append(f"-A {chains['INBOUND']} -p tcp --dport {port} -j {chains['IN_REDIRECT']}")
    return rules


def _outbound_rules(config: CaptureConfig) -> list[str]:
    output = config.chains["OUTPUT"]
    include = config.include_outbound_ip_ranges
    rules = [f"-A OUTPUT -p tcp -j {output}"]
    rules += [f"-A {output} -p tcp --dport {p} -j RETURN" for p in config.exclude_outbound_ports]
    rules.append(f"-A {output} -o lo -s {INBOUND_PASSTHROUGH_SOURCE} -j RETURN")
    # An explicitly included loopback range means "capture the app's own loopback calls too".
    includes_loopback = isinstance(include, tuple) and any(n.overlaps(_LOOPBACK) for n in include)
    for owner, ident in (("--uid-owner", config.proxy_uid), ("--gid-owner", config.proxy_gid)):
        rules.append(
            f"-A {output} -o lo ! -d {LOOPBACK_HOST} -p tcp -m owner {owner} {ident}"
            f" -j {config.chains['IN_REDIRECT']}"
        )
        if not includes_loopback:
            rules.append(f"-A {output} -o lo -m owner ! {owner} {ident} -j RETURN")
        rules.append(f"-A {output} -m owner {owner} {ident} -j RETURN")
    rules.append(f"-A {output} -d {LOOPBACK_HOST} -j RETURN")
    rules += [f"-A {output} -d {net} -j RETURN" for net in config.exclude_outbound_ip_ranges]
    redirect = config.chains["REDIRECT"]
    if not isinstance(include, tuple):
        rules.append(f"-A {output} -j {redirect}")
    else:
        rules += [f"-A {output} -d {net} -j {redirect}" for net in include]
    return rules


def _unique(ports: Iterable[int]) -> list[int]:
    return list(dict.fromkeys(ports))


def capture_config_from_annotations(
    annotations: Mapping[str, str],
    container_ports: Sequence[int] = (),
    *,
    chain_prefix: str = "ISTHMUS",
) -> CaptureConfig:
    """A pod's CaptureConfig from Istio's `traffic.sidecar.istio.io/*` annotations.

    As in Istio (since 1.3) inbound capture defaults to all ports (`*`); container ports
    are checked not to collide with the proxy's ports, which capture would shadow. Bad
    values raise ValueError naming the annotation.
    """
    for port in container_ports:
        if port in PROXY_PORTS:
            raise ValueError(
                f"container port {port} is reserved for the sidecar "
                f"({', '.join(map(str, PROXY_PORTS))})"
            )
    include_inbound = _ports(annotations, INCLUDE_INBOUND_PORTS, default="*", wildcard=True)
    if isinstance(include_inbound, tuple):
        for port in include_inbound:
            if port in PROXY_PORTS:
                raise ValueError(
                    f"{INCLUDE_INBOUND_PORTS}: port {port} is the sidecar's own and can "
                    "not be captured"
                )
    return CaptureConfig(
        chain_prefix=chain_prefix,
        include_inbound_ports=include_inbound,
        exclude_inbound_ports=_fixed(_ports(annotations, EXCLUDE_INBOUND_PORTS)),
        include_outbound_ip_ranges=_ranges(
            annotations, INCLUDE_OUTBOUND_IP_RANGES, default="*", wildcard=True
        ),
        exclude_outbound_ip_ranges=_fixed(_ranges(annotations, EXCLUDE_OUTBOUND_IP_RANGES)),
        exclude_outbound_ports=_fixed(_ports(annotations, EXCLUDE_OUTBOUND_PORTS)),
    )


def _fixed(value: tuple[_T, ...] | Literal["*"]) -> tuple[_T, ...]:
    assert isinstance(value, tuple)  # only annotations that allow "*" can return "*"
    return value


def _items(annotations: Mapping[str, str], key: str, default: str) -> list[str] | Literal["*"]:
    raw = annotations.get(key, default).strip()
    if raw == "*":
        return "*"
    items = [item.strip() for item in raw.split(",")]
    if items == [""]:
        return []
    if "" in items:
        raise ValueError(f"{key}: {raw!r} has an empty item; use a comma-separated list")
    return items


def _ports(
    annotations: Mapping[str, str], key: str, *, default: str = "", wildcard: bool = False
) -> Ports | Literal["*"]:
    items = _items(annotations, key, default)
    if items == "*":
        if not wildcard:
            raise ValueError(f"{key}: '*' is not allowed here; list the ports")
        return "*"
    ports: list[int] = []
    for item in items:
        if not (item.isascii() and item.isdigit()) or not 1 <= int(item) <= 65535:
            raise ValueError(f"{key}: {item!r} is not a port number (1-65535)")
        ports.append(int(item))
    return tuple(_unique(ports))


def _ranges(
    annotations: Mapping[str, str], key: str, *, default: str = "", wildcard: bool = False
) -> Ranges | Literal["*"]:
    items = _items(annotations, key, default)
    if items == "*":
        if not wildcard:
            raise ValueError(f"{key}: '*' is not allowed here; list the CIDRs")
        return "*"
    ranges: list[IPv4Network] = []
    for item in items:
        try:
            network = ip_network(item, strict=True)
        except ValueError as exc:
            raise ValueError(f"{key}: {item!r} is not a CIDR ({exc})") from None
        # Pods are IPv4-only (IPv6 is disabled in pod namespaces): IPv6 ranges match nothing.
        if not isinstance(network, IPv6Network):
            ranges.append(network)
    return tuple(dict.fromkeys(ranges))
