"""The kind registry: served apiVersions, scope, and what unknown kinds read like."""

from __future__ import annotations

import pytest

from isthmus.api.core import Deployment, Namespace
from isthmus.api.networking import VirtualService
from isthmus.api.registry import KINDS, UnknownKindError, lookup, resolve_kind_name


@pytest.mark.parametrize(
    "api_version",
    ["networking.istio.io/v1", "networking.istio.io/v1beta1", "networking.istio.io/v1alpha3"],
)
def test_networking_kinds_are_served_by_every_networking_version(api_version: str) -> None:
    for kind in ("VirtualService", "DestinationRule", "ServiceEntry", "WorkloadEntry"):
        info = lookup(api_version, kind)
        assert info.kind == kind and info.namespaced
        assert info.preferred_api_version == "networking.istio.io/v1"
    assert lookup(api_version, "VirtualService").model is VirtualService


def test_kubernetes_kinds() -> None:
    assert lookup("v1", "Namespace").model is Namespace
    assert not lookup("v1", "Namespace").namespaced
    assert lookup("v1", "Service").namespaced
    assert lookup("v1", "ServiceAccount").namespaced
    assert lookup("apps/v1", "Deployment").model is Deployment


@pytest.mark.parametrize(
    ("api_version", "kind", "message"),
    [
        (
            "networking.istio.io/v1alpha3",
            "EnvoyFilter",
            "kind EnvoyFilter (networking.istio.io/v1alpha3) is not supported yet",
        ),
        (
            "gateway.networking.k8s.io/v1",
            "Gateway",
            "kind Gateway (gateway.networking.k8s.io/v1) is not supported yet",
        ),
        (
            "networking.istio.io/v1alpha3",
            "EnvoyFilter",
            "kind EnvoyFilter (networking.istio.io/v1alpha3) is not supported yet",
        ),
        (
            "networking.istio.io/v1",
            "WorkloadGroup",
            "kind WorkloadGroup (networking.istio.io/v1) is not supported yet",
        ),
        (
            "networking.istio.io/v1beta1",
            "ProxyConfig",
            "kind ProxyConfig (networking.istio.io/v1beta1) is not supported yet",
        ),
        (
            "telemetry.istio.io/v1beta1",
            "Telemetry",
            "kind Telemetry is not served by apiVersion telemetry.istio.io/v1beta1; "
            "use one of telemetry.istio.io/v1, telemetry.istio.io/v1alpha1",
        ),
        (
            "extensions.istio.io/v1alpha1",
            "WasmPlugin",
            "kind WasmPlugin (extensions.istio.io/v1alpha1) is not supported yet",
        ),
        (
            "security.istio.io/v1alpha1",
            "RequestAuthentication",
            "kind RequestAuthentication is not served by apiVersion security.istio.io/v1alpha1; "
            "use one of security.istio.io/v1, security.istio.io/v1beta1",
        ),
        ("apps/v1", "Service", "kind Service is not served by apiVersion apps/v1; use v1"),
        ("v1", "Deployment", "kind Deployment is not served by apiVersion v1; use apps/v1"),
        (
            "security.istio.io/v1",
            "Gateway",
            "kind Gateway is not served by apiVersion security.istio.io/v1; use one of "
            "networking.istio.io/v1, networking.istio.io/v1beta1, networking.istio.io/v1alpha3",
        ),
        (
            "v1",
            "Pod",
            "unknown kind Pod (v1); isthmus accepts AuthorizationPolicy, Deployment, "
            "DestinationRule, Gateway, Namespace, PeerAuthentication, RequestAuthentication, "
            "Secret, Service, ServiceAccount, ServiceEntry, Sidecar, Telemetry, VirtualService, "
            "WorkloadEntry",
        ),
    ],
)
def test_unknown_and_unsupported_kinds_explain_themselves(
    api_version: str, kind: str, message: str
) -> None:
    with pytest.raises(UnknownKindError) as raised:
        lookup(api_version, kind)

    assert str(raised.value) == message


@pytest.mark.parametrize(
    ("typed", "kind"),
    [
        ("vs", "VirtualService"),
        ("VirtualService", "VirtualService"),
        ("virtualservices", "VirtualService"),
        ("virtualservices.networking.istio.io", "VirtualService"),
        ("dr", "DestinationRule"),
        ("se", "ServiceEntry"),
        ("we", "WorkloadEntry"),
        ("sidecars", "Sidecar"),
        ("sidecar", "Sidecar"),
        ("ns", "Namespace"),
        ("svc", "Service"),
        ("sa", "ServiceAccount"),
        ("deploy", "Deployment"),
        ("deployments.apps", "Deployment"),
    ],
)
def test_kind_names_as_typed_on_a_command_line(typed: str, kind: str) -> None:
    info = resolve_kind_name(typed)
    assert info is not None and info.kind == kind


def test_unknown_kind_names_resolve_to_nothing() -> None:
    assert resolve_kind_name("envoyfilter") is None
    assert set(KINDS) == {
        "VirtualService", "DestinationRule", "ServiceEntry", "WorkloadEntry", "Gateway",
        "Namespace", "Service", "ServiceAccount", "Deployment",
        "PeerAuthentication", "AuthorizationPolicy", "RequestAuthentication", "Telemetry",
        "Sidecar", "Secret",
    }  # fmt: skip
