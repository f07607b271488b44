"""Sidecar: Istio's validation (ValidateSidecar), one line naming file, document and field
path per problem, and "not supported yet" for what isthmus does not enforce."""

from __future__ import annotations

import pytest
from _apihelp import document, load, load_errors

from isthmus.api.mesh_config import MeshConfigError, parse_mesh_config
from isthmus.api.sidecar import OutboundTrafficPolicyMode, Sidecar
from isthmus.model.snapshot import MeshConfig

SC = "app.yaml:1 Sidecar production/reviews: "


def sidecar(spec: str, api_version: str = "networking.istio.io/v1") -> str:
    return document("Sidecar", spec, api_version=api_version)


@pytest.mark.parametrize(
    "api_version",
    ["networking.istio.io/v1", "networking.istio.io/v1beta1", "networking.istio.io/v1alpha3"],
)
def test_the_istio_docs_namespace_default_loads(api_version: str) -> None:
    text = sidecar(
        """
        workloadSelector: {labels: {app: reviews}}
        egress:
        - port: {number: 9080, protocol: HTTP, name: http}
          hosts: ["./ratings.production.svc.cluster.local"]
        - hosts: ["./*", "istio-system/*", "*/*.example.com", "~/*"]
          captureMode: IPTABLES
        outboundTrafficPolicy: {mode: ALLOW_ANY}
        """,
        api_version,
    )
    (loaded,) = load(text)
    resource = loaded.resource
    assert isinstance(resource, Sidecar)
    assert resource.spec.egress[0].port is not None
    assert resource.spec.egress[0].port.number == 9080
    assert resource.spec.outbound_traffic_policy is not None
    assert resource.spec.outbound_traffic_policy.mode is OutboundTrafficPolicyMode.ALLOW_ANY


def test_an_empty_egress_protocol_is_sniffing_as_istios_validate_protocol() -> None:
    (loaded,) = load(sidecar("egress: [{port: {number: 8080, protocol: ''}, hosts: ['./*']}]"))
    assert isinstance(loaded.resource, Sidecar)


def test_an_empty_outbound_traffic_policy_is_registry_only_as_the_protos_zero_value() -> None:
    (loaded,) = load(sidecar("outboundTrafficPolicy: {}"))
    assert isinstance(loaded.resource, Sidecar)
    policy = loaded.resource.spec.outbound_traffic_policy
    assert policy is not None and policy.mode is OutboundTrafficPolicyMode.REGISTRY_ONLY


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ("{}", "spec: empty configuration provided: set egress or outboundTrafficPolicy"),
        ("egress: [{}]", "spec.egress[0].hosts: egress listener must contain at least one host"),
        (
            "egress: [{hosts: [reviews]}]",
            'spec.egress[0].hosts[0]: "reviews" must be of the form namespace/dnsName',
        ),
        (
            "egress: [{hosts: [Bad_NS/*]}]",
            'spec.egress[0].hosts[0]: namespace of "Bad_NS/*": "Bad_NS" is not a valid name: use '
            "at most 63 lower-case letters, digits and '-', starting and ending with a letter "
            "or digit",
        ),
        (
            "egress: [{hosts: ['./*.*']}]",
            'spec.egress[0].hosts[0]: host of "./*.*": ',
        ),
        (
            "egress: [{hosts: ['./*']}, {port: {number: 80}, hosts: ['./*']}]",
            "spec.egress[0]: the egress listener with empty port should be the last listener",
        ),
        (
            "egress:\n- {port: {number: 80}, hosts: ['./*']}\n"
            "- {port: {number: 80}, hosts: ['./*']}",
            "spec.egress[1].port.number: duplicate egress port 80",
        ),
        (
            "egress: [{port: {number: 80, protocol: SMTP}, hosts: ['./*']}]",
            'spec.egress[0].port.protocol: unknown protocol "SMTP"',
        ),
        (
            "egress: [{port: {number: 80, targetPort: 81}, hosts: ['./*']}]",
            "spec.egress[0].port.targetPort: targetPort has no impact on Sidecars",
        ),
        (
            "egress: [{port: {number: 70000}, hosts: ['./*']}]",
            "spec.egress[0].port.number: port number 70000 must be between 1 and 65535",
        ),
        (
            "workloadSelector: {labels: {}}\negress: [{hosts: ['./*']}]",
            "spec.workloadSelector.labels: workloadSelector labels is required",
        ),
        (
            "outboundTrafficPolicy: {mode: DENY_ALL}",
            "spec.outboundTrafficPolicy.mode: must be one of REGISTRY_ONLY, ALLOW_ANY "
            '(got "DENY_ALL")',
        ),
        # Refused: what isthmus does not enforce, each naming its field.
        ("ingress: [{port: {number: 80}}]", "spec.ingress: not supported yet"),
        (
            "inboundConnectionPool: {tcp: {maxConnections: 1}}",
            "spec.inboundConnectionPool: not supported yet",
        ),
        (
            "egress: [{bind: 127.0.0.2, port: {number: 80}, hosts: ['./*']}]",
            "spec.egress[0].bind: not supported yet",
        ),
        (
            "egress: [{captureMode: NONE, port: {number: 80}, hosts: ['./*']}]",
            "spec.egress[0].captureMode: captureMode NONE is not supported yet",
        ),
        (
            "egress: [{port: {number: 0}, hosts: ['./*']}]",
            "spec.egress[0].port.number: unix domain socket listeners are not supported yet",
        ),
        (
            "egress: [{port: {number: 3128, protocol: HTTP_PROXY}, hosts: ['./*']}]",
            "spec.egress[0].port.protocol: HTTP_PROXY egress listeners are not supported yet",
        ),
        (
            "outboundTrafficPolicy: {mode: ALLOW_ANY, egressProxy: {host: proxy.example.com}}",
            "spec.outboundTrafficPolicy.egressProxy: not supported yet",
        ),
    ],
)
def test_invalid_sidecars_give_one_line_naming_the_field(spec: str, error: str) -> None:
    (line,) = load_errors(sidecar(spec))
    assert line.startswith(SC + error), line


def test_mesh_config_sets_the_mesh_wide_outbound_traffic_policy() -> None:
    assert MeshConfig().outbound_traffic_policy == "ALLOW_ANY"
    file = parse_mesh_config("outboundTrafficPolicy: {mode: REGISTRY_ONLY}", "mesh.yaml")
    assert MeshConfig().with_file(file).outbound_traffic_policy == "REGISTRY_ONLY"
    # An empty policy leaves the mesh's default, as Istio merges the file onto it.
    file = parse_mesh_config("outboundTrafficPolicy: {}", "mesh.yaml")
    assert MeshConfig().with_file(file).outbound_traffic_policy == "ALLOW_ANY"
    with pytest.raises(MeshConfigError) as raised:
        parse_mesh_config("outboundTrafficPolicy: {mode: NOPE}", "mesh.yaml")
    assert str(raised.value).startswith("mesh.yaml: outboundTrafficPolicy.mode: must be one of")
