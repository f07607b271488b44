"""The agent of a gateway pod (`--router`): Istio's router node id, node metadata without
inbound ports and with INTERCEPTION_MODE NONE, the published ports and the host's
namespace for pilot, and Envoy as root."""

from __future__ import annotations

import json

import pytest

from isthmus.agent.bootstrap import sidecar_bootstrap
from isthmus.agent.identity import ProxyIdentity
from isthmus.agent.options import OptionsError, parse_options
from isthmus.api.published_ports import PublishedPort

POD = [
    *("--pod", "istio-ingressgateway-5d8c-x2k8q", "--namespace", "istio-system"),
    *("--ip", "10.44.0.9", "--workload", "istio-ingressgateway"),
    *("--labels", json.dumps({"app": "istio-ingressgateway", "istio": "ingressgateway"})),
    *("--service-account", "istio-ingressgateway-service-account"),
    *("--xds-socket", "/run/isthmus/xds.sock", "--workdir", "/run/isthmus/m/gw"),
]
NODE_ID = (
    "router~10.44.0.9~istio-ingressgateway-5d8c-x2k8q.istio-system~istio-system.svc.cluster.local"
)


def test_a_router_is_named_as_istio_names_a_gateway() -> None:
    options = parse_options([*POD, "--router"], environ={})
    assert options.identity.router
    assert options.identity.node_id == NODE_ID
    assert options.identity.service_cluster == "istio-ingressgateway.istio-system"


def test_router_metadata_has_no_inbound_ports_and_no_interception() -> None:
    metadata = parse_options([*POD, "--router"], environ={}).identity.node_metadata()
    assert metadata == {
        "NAME": "istio-ingressgateway-5d8c-x2k8q",
        "NAMESPACE": "istio-system",
        "LABELS": {"app": "istio-ingressgateway", "istio": "ingressgateway"},
        "SERVICE_ACCOUNT": "istio-ingressgateway-service-account",
        "WORKLOAD_NAME": "istio-ingressgateway",
        "INSTANCE_IPS": "10.44.0.9",
        "INTERCEPTION_MODE": "NONE",
    }


def test_published_ports_and_the_host_netns_reach_pilot_in_the_bootstrap() -> None:
    options = parse_options(
        [
            *(*POD, "--router", "--publish", "8443:443", "--publish", "8080:80"),
            *("--host-netns", "/tmp/mesh/run/host-netns", "--token-file", "/run/t"),
        ],
        environ={},
    )
    identity = options.identity
    assert identity.published_ports == (PublishedPort(8080, 80), PublishedPort(8443, 443))
    node = sidecar_bootstrap(identity, "/run/xds.sock", sds_socket="/run/sds.sock")["node"]
    assert node["id"] == NODE_ID
    assert node["metadata"]["PUBLISHED_PORTS"] == "8080:80,8443:443"
    assert node["metadata"]["HOST_NETNS"] == "/tmp/mesh/run/host-netns"
    assert node["metadata"]["INTERCEPTION_MODE"] == "NONE"
    assert node["metadata"]["SDS"] == "true"  # mutual TLS as for a sidecar
    assert "INBOUND_PORTS" not in node["metadata"]


def test_a_routers_envoy_runs_as_the_agents_user() -> None:
    assert not parse_options([*POD, "--router"], environ={}).switch_user
    assert parse_options(POD, environ={}).switch_user


def test_a_sidecar_is_unchanged() -> None:
    identity = parse_options([*POD, "--inbound-ports", "8080"], environ={}).identity
    assert identity.node_id.startswith("sidecar~10.44.0.9~")
    assert identity.node_metadata()["INBOUND_PORTS"] == "8080"
    assert "INTERCEPTION_MODE" not in identity.node_metadata()
    assert "PUBLISHED_PORTS" not in identity.node_metadata()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--publish", "8080:80", "--host-netns", "/h"], "--publish needs --router"),
        (["--router", "--publish", "8080:80"], "--publish needs --host-netns"),
        (["--router", "--host-netns", "/h"], "--host-netns is used only with --publish"),
        (["--router", "--inbound-ports", "8080"], "--inbound-ports: a router has none"),
        (["--router", "--http-proxy-port", "15080"], "--http-proxy-port: a router has no"),
        (
            ["--router", "--publish", "8080", "--host-netns", "/h"],
            "--publish '8080' is not HOSTPORT:PORT",
        ),
        (
            ["--router", "--publish", "8080:80", "--publish", "8080:443", "--host-netns", "/h"],
            "--publish host port 8080 is published twice",
        ),
    ],
)
def test_refused_flags(flags: list[str], message: str) -> None:
    with pytest.raises(OptionsError, match=message):
        parse_options([*POD, *flags], environ={})


def test_the_host_netns_is_made_absolute() -> None:
    options = parse_options(
        [*POD, "--router", "--publish", "8080:80", "--host-netns", "run/host-netns"],
        environ={},
    )
    assert options.identity.host_netns is not None
    assert options.identity.host_netns.startswith("/")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"published_ports": (PublishedPort(8080, 80),)}, "only a router"),
        ({"router": True, "inbound_ports": (8080,)}, "a router has no inbound ports"),
        (
            {"router": True, "published_ports": (PublishedPort(8080, 80),)},
            "need the host's network namespace",
        ),
        (
            {
                "router": True,
                "published_ports": (PublishedPort(8080, 80),),
                "host_netns": "relative",
            },
            "must be an absolute path",
        ),
    ],
)
def test_identity_refuses_what_pilot_could_not_use(
    changes: dict[str, object], message: str
) -> None:
    fields: dict[str, object] = {
        "pod": "gw-1",
        "namespace": "istio-system",
        "ip": "10.44.0.7",
        "labels": {},
        "service_account": "gw",
        "workload": "gw",
        "inbound_ports": (),
        **changes,
    }
    with pytest.raises(ValueError, match=message):
        ProxyIdentity(**fields)  # type: ignore[arg-type]
