"""ProxyIdentity refuses what would not survive the trip through the node id and metadata."""

from __future__ import annotations

import pytest

from isthmus.agent.identity import ProxyIdentity


def make(**changes: object) -> ProxyIdentity:
    fields: dict[str, object] = {
        "pod": "web-1",
        "namespace": "default",
        "ip": "10.44.0.7",
        "labels": {"app": "web"},
        "service_account": "web",
        "workload": "web",
        "inbound_ports": (8080,),
    }
    fields.update(changes)
    return ProxyIdentity(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"ip": "10.44.0"}, "not an IP address"),
        ({"pod": ""}, "pod must not be empty"),
        ({"pod": "a~b"}, "must not contain '~'"),
        ({"namespace": "a.b"}, "must not contain '.'"),
        ({"service_account": "a b"}, "whitespace"),
        ({"inbound_ports": (0,)}, "inbound port 0 is out of range"),
        ({"http_proxy_port": 70000}, "http proxy port 70000 is out of range"),
        ({"labels": {"app": 1}}, "keys and values must be strings"),
    ],
)
def test_refuses(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make(**changes)


def test_keeps_its_own_copy_of_the_labels() -> None:
    labels = {"app": "web"}
    pod = make(labels=labels)
    labels["app"] = "changed"
    assert pod.node_metadata()["LABELS"] == {"app": "web"}


def test_metadata_values_are_strings_as_istio_sends_them() -> None:
    pod = make(inbound_ports=(9090, 8080, 8080), http_proxy_port=15080)
    assert pod.node_metadata() == {
        "NAME": "web-1",
        "NAMESPACE": "default",
        "LABELS": {"app": "web"},
        "SERVICE_ACCOUNT": "web",
        "WORKLOAD_NAME": "web",
        "INSTANCE_IPS": "10.44.0.7",
        "INBOUND_PORTS": "8080,9090",
        "PROXY_HTTP_PORT": "15080",
    }
    assert pod.node_id == "sidecar~10.44.0.7~web-1.default~default.svc.cluster.local"
