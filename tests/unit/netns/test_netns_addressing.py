"""The address plan: private, non-overlapping CIDRs and restart-safe pod IP allocation."""

from __future__ import annotations

import json
from ipaddress import IPv4Address, IPv4Interface

import pytest

from isthmus.netns.addressing import (
    NetworkConfig,
    NetworkConfigError,
    allocate_pod_ip,
    check_host_overlap,
    parse_ip_addr_json,
    validate_pod_ip,
)

# Trimmed `ip -j addr` output of a typical host.
HOST_ADDR_JSON = json.dumps(
    [
        {
            "ifname": "lo",
            "addr_info": [
                {"family": "inet", "local": "127.0.0.1", "prefixlen": 8},
                {"family": "inet6", "local": "::1", "prefixlen": 128},
            ],
        },
        {
            "ifname": "eth0",
            "addr_info": [{"family": "inet", "local": "10.44.3.9", "prefixlen": 24}],
        },
        {"ifname": "docker0", "addr_info": []},
    ]
)


def test_defaults() -> None:
    config = NetworkConfig()
    assert config.mesh == "isthmus"
    assert str(config.gateway) == "10.44.0.1"
    assert str(config.pod_interface(IPv4Address("10.44.0.7"))) == "10.44.0.7/16"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mesh": "is-thmus"}, "mesh name"),
        ({"pod_cidr": "8.8.0.0/16"}, "not a private range"),
        ({"service_cidr": "100.64.0.0/16"}, "not a private range"),
        ({"pod_cidr": "10.44.0.1/16"}, "not an IPv4 CIDR"),
        ({"pod_cidr": "fd00::/64"}, "only IPv4"),
        ({"pod_cidr": "10.44.0.0/30"}, "too small"),
        ({"pod_cidr": "10.0.0.0/8", "service_cidr": "10.96.0.0/16"}, "overlaps service_cidr"),
        ({"pod_cidr": "garbage"}, "pod_cidr 'garbage'"),
    ],
)
def test_invalid_config(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(NetworkConfigError, match=message):
        NetworkConfig(**kwargs)


def test_parse_ip_addr_json_keeps_ipv4() -> None:
    assert parse_ip_addr_json(HOST_ADDR_JSON) == [
        IPv4Interface("127.0.0.1/8"),
        IPv4Interface("10.44.3.9/24"),
    ]
    assert parse_ip_addr_json("") == []


def test_overlap_with_host_addresses_is_refused() -> None:
    host = parse_ip_addr_json(HOST_ADDR_JSON)
    with pytest.raises(NetworkConfigError, match=r"pod_cidr 10.44.0.0/16 overlaps 10.44.3.9/24"):
        check_host_overlap(NetworkConfig(), host)
    check_host_overlap(NetworkConfig(pod_cidr="10.45.0.0/16"), host)
    with pytest.raises(NetworkConfigError, match="service_cidr"):
        check_host_overlap(
            NetworkConfig(pod_cidr="10.45.0.0/16", service_cidr="10.0.0.0/8"),
            [IPv4Interface("10.200.0.5/32")],
        )


def test_allocation_skips_gateway_and_used_and_moves_on() -> None:
    config = NetworkConfig(pod_cidr="192.168.7.0/29", service_cidr="192.168.8.0/24")
    first = allocate_pod_ip(config, set())
    assert first == IPv4Address("192.168.7.2")
    assert allocate_pod_ip(config, {first}) == IPv4Address("192.168.7.3")
    # After a pod is removed its IP is not handed out again at once.
    assert allocate_pod_ip(config, set(), after=IPv4Address("192.168.7.3")) == IPv4Address(
        "192.168.7.4"
    )
    # Wraps around past the last host address.
    assert allocate_pod_ip(config, set(), after=IPv4Address("192.168.7.6")) == IPv4Address(
        "192.168.7.2"
    )
    every = {IPv4Address(f"192.168.7.{n}") for n in range(2, 7)}
    with pytest.raises(NetworkConfigError, match="full"):
        allocate_pod_ip(config, every)


@pytest.mark.parametrize(
    ("ip", "message"),
    [
        ("10.44.0.1", "gateway"),
        ("10.44.0.0", "not a host address"),
        ("10.44.255.255", "not a host address"),
        ("10.45.0.2", "not a host address"),
        ("10.44.0.9", "already in use"),
        ("nope", "not an IPv4 address"),
    ],
)
def test_requested_pod_ip_is_checked(ip: str, message: str) -> None:
    with pytest.raises(NetworkConfigError, match=message):
        validate_pod_ip(NetworkConfig(), ip, {IPv4Address("10.44.0.9")})
    assert validate_pod_ip(NetworkConfig(), "10.44.0.10", set()) == IPv4Address("10.44.0.10")
