"""Istio's traffic.sidecar.istio.io/* annotations -> CaptureConfig, including bad values."""

from __future__ import annotations

from ipaddress import IPv4Network

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from isthmus.netns.capture import (
    EXCLUDE_INBOUND_PORTS,
    EXCLUDE_OUTBOUND_IP_RANGES,
    EXCLUDE_OUTBOUND_PORTS,
    INCLUDE_INBOUND_PORTS,
    INCLUDE_OUTBOUND_IP_RANGES,
    CaptureConfig,
    capture_config_from_annotations,
    render_rules,
)

ANNOTATIONS = [
    INCLUDE_INBOUND_PORTS,
    EXCLUDE_INBOUND_PORTS,
    INCLUDE_OUTBOUND_IP_RANGES,
    EXCLUDE_OUTBOUND_IP_RANGES,
    EXCLUDE_OUTBOUND_PORTS,
]


def test_defaults_capture_everything_like_istio() -> None:
    config = capture_config_from_annotations({}, [8080])
    assert config == CaptureConfig()
    assert config.include_inbound_ports == "*"
    assert config.include_outbound_ip_ranges == "*"
    assert (config.proxy_uid, config.proxy_gid) == (1337, 1337)


def test_values_are_parsed_trimmed_and_deduplicated() -> None:
    config = capture_config_from_annotations(
        {
            INCLUDE_INBOUND_PORTS: " 8080 , 9090,8080",
            EXCLUDE_INBOUND_PORTS: "8443",
            INCLUDE_OUTBOUND_IP_RANGES: "10.96.0.0/16, 10.44.0.0/16",
            EXCLUDE_OUTBOUND_IP_RANGES: "192.168.0.0/16,10.1.2.3",
            EXCLUDE_OUTBOUND_PORTS: "3306,9090",
        },
        chain_prefix="MESH2",
    )
    assert config.chain_prefix == "MESH2"
    assert config.include_inbound_ports == (8080, 9090)
    assert config.exclude_inbound_ports == (8443,)
    assert config.include_outbound_ip_ranges == (
        IPv4Network("10.96.0.0/16"),
        IPv4Network("10.44.0.0/16"),
    )
    assert config.exclude_outbound_ip_ranges == (
        IPv4Network("192.168.0.0/16"),
        IPv4Network("10.1.2.3/32"),
    )
    assert config.exclude_outbound_ports == (3306, 9090)


def test_empty_include_means_no_capture_in_that_direction() -> None:
    config = capture_config_from_annotations(
        {INCLUDE_INBOUND_PORTS: "", INCLUDE_OUTBOUND_IP_RANGES: " "}
    )
    assert config.include_inbound_ports == ()
    assert config.include_outbound_ip_ranges == ()
    rules = render_rules(config)
    assert "PREROUTING -p tcp -j" not in rules
    assert "-j ISTHMUS_REDIRECT" not in rules


def test_ipv6_ranges_are_accepted_and_ignored() -> None:
    config = capture_config_from_annotations({EXCLUDE_OUTBOUND_IP_RANGES: "fd00::/8,10.0.0.0/8"})
    assert config.exclude_outbound_ip_ranges == (IPv4Network("10.0.0.0/8"),)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (EXCLUDE_OUTBOUND_PORTS, "http", "'http' is not a port number"),
        (EXCLUDE_OUTBOUND_PORTS, "0", "'0' is not a port number"),
        (EXCLUDE_OUTBOUND_PORTS, "65536", "'65536' is not a port number"),
        (EXCLUDE_OUTBOUND_PORTS, "-1", "'-1' is not a port number"),
        (EXCLUDE_OUTBOUND_PORTS, "80,,443", "has an empty item"),
        (EXCLUDE_OUTBOUND_PORTS, "*", "'*' is not allowed here"),
        (EXCLUDE_INBOUND_PORTS, "*", "'*' is not allowed here"),
        (INCLUDE_INBOUND_PORTS, "80;443", "'80;443' is not a port number"),
        (INCLUDE_INBOUND_PORTS, "15006", "port 15006 is the sidecar's own"),
        (INCLUDE_OUTBOUND_IP_RANGES, "10.0.0.0/33", "'10.0.0.0/33' is not a CIDR"),
        (INCLUDE_OUTBOUND_IP_RANGES, "10.0.0.1/8", "'10.0.0.1/8' is not a CIDR"),
        (EXCLUDE_OUTBOUND_IP_RANGES, "*", "'*' is not allowed here"),
        (EXCLUDE_OUTBOUND_IP_RANGES, "example.com", "'example.com' is not a CIDR"),
    ],
)
def test_bad_values_name_the_annotation(key: str, value: str, message: str) -> None:
    with pytest.raises(ValueError, match="^" + key.replace(".", r"\.")) as caught:
        capture_config_from_annotations({key: value})
    assert message in str(caught.value)


def test_container_port_owned_by_the_sidecar_is_rejected() -> None:
    with pytest.raises(ValueError, match="container port 15021 is reserved for the sidecar"):
        capture_config_from_annotations({}, [8080, 15021])


def test_capture_config_rejects_bad_fields() -> None:
    with pytest.raises(ValueError, match="chain prefix"):
        CaptureConfig(chain_prefix="bad-prefix")
    with pytest.raises(ValueError, match="out of range"):
        CaptureConfig(exclude_outbound_ports=(70000,))


@given(key=st.sampled_from(ANNOTATIONS), value=st.text(max_size=40))
# "\u00b9" (superscript one) is a digit to str.isdigit, but not to int()
@example(key="traffic.sidecar.istio.io/includeInboundPorts", value="\u00b9")
def test_any_annotation_text_parses_or_names_the_annotation(key: str, value: str) -> None:
    try:
        config = capture_config_from_annotations({key: value})
    except ValueError as exc:
        assert str(exc).startswith(key)
        assert "\n" not in str(exc)  # one line: values are quoted with repr
    else:
        rules = render_rules(config)
        assert rules.startswith("# isthmus") and rules.endswith("COMMIT\n")
