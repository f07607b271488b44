"""ServiceEntry and WorkloadEntry checks: hosts, ports, addresses and the rules that tie
endpoints to the resolution mode, as Istio's webhook applies them."""

from __future__ import annotations

from isthmus.api import names
from isthmus.api.checks_common import (
    NOT_SUPPORTED,
    check_export_to,
    check_labels,
    check_port,
    check_unique,
)
from isthmus.api.errors import FieldPath, Problems, short_repr
from isthmus.api.networking import (
    ServiceEntry,
    ServiceEntryResolution,
    ServiceEntrySpec,
    WorkloadEntry,
    WorkloadEntrySpec,
)

# Istio's protocol names, matched case-insensitively.
PROTOCOLS = frozenset(
    {"tcp", "udp", "grpc", "grpc-web", "http", "http_proxy", "http2", "https", "tls"}
    | {"mongo", "redis", "mysql"}
)
_HTTP_PROTOCOLS = frozenset({"http", "http2", "http_proxy", "grpc", "grpc-web"})
_TLS_PROTOCOLS = frozenset({"https", "tls"})
_UNIX_PREFIX = "unix://"


def check_service_entry(entry: ServiceEntry, problems: Problems) -> None:
    spec = entry.spec
    path = FieldPath("spec")
    resolution = spec.resolution
    if spec.workload_selector is not None:
        problems.add(path.field("workloadSelector"), NOT_SUPPORTED)
    if spec.subject_alt_names:
        problems.add(path.field("subjectAltNames"), NOT_SUPPORTED)
    _check_hosts(problems, path.field("hosts"), spec.hosts)
    for position, address in enumerate(spec.addresses):
        here = path.field("addresses").index(position)
        problem = names.ip_or_cidr_error(address)
        if problem:
            problems.add(here, problem)
        elif "/" in address and resolution not in (
            ServiceEntryResolution.NONE,
            ServiceEntryResolution.STATIC,
        ):
            problems.add(here, "CIDR addresses need resolution NONE or STATIC")
    port_names = _check_ports(problems, path.field("ports"), spec)
    endpoints_path = path.field("endpoints")
    if resolution == ServiceEntryResolution.DYNAMIC_DNS:
        problems.add(path.field("resolution"), NOT_SUPPORTED)
    elif resolution == ServiceEntryResolution.NONE:
        if spec.endpoints:
            problems.add(endpoints_path, "endpoints cannot be set when resolution is NONE")
    else:
        dns = resolution != ServiceEntryResolution.STATIC
        for position, endpoint in enumerate(spec.endpoints):
            here = endpoints_path.index(position)
            _check_endpoint(problems, here, endpoint, dns_names_ok=dns)
            _check_endpoint_port_names(problems, here.field("ports"), endpoint, port_names)
        if dns and not spec.endpoints:
            for position, host in enumerate(spec.hosts):
                if (
                    host != "*"
                    and names.wildcard_domain_error(host) is None
                    and names.fqdn_error(host)
                ):
                    problems.add(
                        path.field("hosts").index(position),
                        f"resolution {resolution.value} without endpoints needs host names "
                        "without wildcards",
                    )
        if resolution == ServiceEntryResolution.DNS_ROUND_ROBIN and len(spec.endpoints) > 1:
            problems.add(endpoints_path, "resolution DNS_ROUND_ROBIN allows at most one endpoint")
        if len(spec.hosts) > 1 and any(
            (port.protocol or "").lower() not in _HTTP_PROTOCOLS | _TLS_PROTOCOLS
            for port in spec.ports
        ):
            problems.add(
                path.field("hosts"),
                "several hosts need HTTP or TLS ports (plain TCP cannot tell them apart)",
            )
    check_export_to(
        problems,
        path.field("exportTo"),
        entry.metadata.namespace or "",
        spec.export_to,
        allow_none=True,
    )


def _check_hosts(problems: Problems, path: FieldPath, hosts: list[str]) -> None:
    if not hosts:
        problems.add(path, "at least one host is required")
    for position, host in enumerate(hosts):
        if host == "*":
            problems.add(path.index(position), 'host "*" is not allowed; name the hosts')
            continue
        problem = names.wildcard_domain_error(host)
        if problem:
            problems.add(path.index(position), problem)
    check_unique(problems, path, hosts, "host")


def _check_ports(problems: Problems, path: FieldPath, spec: ServiceEntrySpec) -> set[str]:
    """Numbers, names and protocols; returns the port names endpoints may refer to.

    Ports are optional, as in Istio: a ServiceEntry without ports names hosts (for
    VirtualService and DestinationRule host references, and DNS) but gets no listener or
    cluster, so its traffic is treated as traffic to an unknown destination."""
    for position, port in enumerate(spec.ports):
        here = path.index(position)
        check_port(problems, here.field("number"), port.number)
        problem = names.istio_label_error("port name", port.name)
        if problem:
            problems.add(here.field("name"), problem)
        if port.protocol is not None and port.protocol.lower() not in PROTOCOLS:
            problems.add(here.field("protocol"), f"unknown protocol {short_repr(port.protocol)}")
        check_port(problems, here.field("targetPort"), port.target_port)
    check_unique(problems, path, (port.name for port in spec.ports), "port name")
    check_unique(problems, path, (port.number for port in spec.ports), "port number")
    return {port.name for port in spec.ports}


def _check_endpoint(
    problems: Problems, path: FieldPath, endpoint: WorkloadEntrySpec, *, dns_names_ok: bool
) -> None:
    """Address (IP, or DNS name where resolution is DNS), port numbers, labels."""
    address = endpoint.address
    if not address:
        if not endpoint.network:  # with a network, its gateway would reach it (Istio)
            problems.add(path.field("address"), "is required")
    elif address.startswith(_UNIX_PREFIX):
        problems.add(path.field("address"), f"unix domain socket addresses are {NOT_SUPPORTED}")
    elif not names.is_ip_address(address):
        if not dns_names_ok:
            problems.add(path.field("address"), f"{short_repr(address)} is not an IP address")
        elif names.fqdn_error(address):
            problems.add(
                path.field("address"), f"{short_repr(address)} is not an IP address or DNS name"
            )
    for name, number in endpoint.ports.items():
        here = path.field("ports").key(name)
        problem = names.istio_label_error("port name", name)
        if problem:
            problems.add(here, problem)
        check_port(problems, here, number)
    check_labels(problems, path.field("labels"), endpoint.labels)
    if endpoint.service_account and names.dns1123_subdomain_error(endpoint.service_account):
        problems.add(path.field("serviceAccount"), "must be a service account name")


def _check_endpoint_port_names(
    problems: Problems, path: FieldPath, endpoint: WorkloadEntrySpec, port_names: set[str]
) -> None:
    for name in endpoint.ports:
        if name not in port_names:
            problems.add(path.key(name), "is not the name of one of the ServiceEntry's ports")


def check_workload_entry(entry: WorkloadEntry, problems: Problems) -> None:
    _check_endpoint(problems, FieldPath("spec"), entry.spec, dns_names_ok=True)
