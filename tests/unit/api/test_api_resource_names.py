"""Kinds as a command line names them (kubectl's `resource[.version][.group]`), and the
apiVersion objects are shown in: the one named, else the kind's preferred version."""

from __future__ import annotations

import pytest

from isthmus.api import KINDS, UnservedVersionError, resolve_kind_name, resolve_resource

NET = "networking.istio.io"
SEC = "security.istio.io"
TEL = "telemetry.istio.io"


@pytest.mark.parametrize(
    ("typed", "kind", "api_version"),
    [
        ("vs", "VirtualService", None),
        ("virtualservices", "VirtualService", None),
        ("VirtualService", "VirtualService", None),
        ("virtualservices.networking.istio.io", "VirtualService", None),
        ("vs.networking.istio.io", "VirtualService", None),
        ("virtualservices.v1beta1.networking.istio.io", "VirtualService", f"{NET}/v1beta1"),
        ("VirtualServices.V1Alpha3.Networking.Istio.IO", "VirtualService", f"{NET}/v1alpha3"),
        ("virtualservices.v1.networking.istio.io", "VirtualService", f"{NET}/v1"),
        ("sidecars.v1beta1.networking.istio.io", "Sidecar", f"{NET}/v1beta1"),
        ("ap.v1beta1.security.istio.io", "AuthorizationPolicy", f"{SEC}/v1beta1"),
        ("authorizationpolicies.v1.security.istio.io", "AuthorizationPolicy", f"{SEC}/v1"),
        ("peerauthentications.security.istio.io", "PeerAuthentication", None),
        ("telemetries.v1alpha1.telemetry.istio.io", "Telemetry", f"{TEL}/v1alpha1"),
        ("telemetry", "Telemetry", None),
        ("deployments.apps", "Deployment", None),
        ("deployments.v1.apps", "Deployment", "apps/v1"),
        ("services.v1.", "Service", "v1"),
        ("svc", "Service", None),
    ],
)  # fmt: skip
def test_every_form_kubectl_accepts(typed: str, kind: str, api_version: str | None) -> None:
    ref = resolve_resource(typed)

    assert ref is not None
    assert ref.info.kind == kind
    assert ref.api_version == api_version
    assert ref.shown_api_version == (api_version or KINDS[kind].preferred_api_version)


@pytest.mark.parametrize(
    ("typed", "preferred"),
    [
        ("vs", "networking.istio.io/v1"),
        ("destinationrules", "networking.istio.io/v1"),
        ("se", "networking.istio.io/v1"),
        ("we", "networking.istio.io/v1"),
        ("sidecars", "networking.istio.io/v1"),
        ("pa", "security.istio.io/v1"),
        ("ap", "security.istio.io/v1"),
        ("ra", "security.istio.io/v1"),
        ("telemetries", "telemetry.istio.io/v1"),
        ("deploy", "apps/v1"),
        ("ns", "v1"),
    ],
)
def test_without_a_version_objects_show_in_the_preferred_one(typed: str, preferred: str) -> None:
    ref = resolve_resource(typed)

    assert ref is not None and ref.shown_api_version == preferred


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        (
            "virtualservices.v2.networking.istio.io",
            "kind VirtualService is not served by apiVersion networking.istio.io/v2 "
            "(virtualservices.v2.networking.istio.io); it serves networking.istio.io/v1, "
            "networking.istio.io/v1beta1, networking.istio.io/v1alpha3",
        ),
        (
            "telemetries.v1beta1.telemetry.istio.io",
            "kind Telemetry is not served by apiVersion telemetry.istio.io/v1beta1 "
            "(telemetries.v1beta1.telemetry.istio.io); it serves telemetry.istio.io/v1, "
            "telemetry.istio.io/v1alpha1",
        ),
        (
            "deployments.v1beta1.apps",
            "kind Deployment is not served by apiVersion apps/v1beta1 (deployments.v1beta1.apps); "
            "it serves apps/v1",
        ),
    ],
)
def test_a_version_the_kind_does_not_serve_is_refused(typed: str, message: str) -> None:
    with pytest.raises(UnservedVersionError) as raised:
        resolve_resource(typed)

    assert str(raised.value) == message
    assert resolve_kind_name(typed) is None


@pytest.mark.parametrize(
    "typed",
    [
        "widgets",
        "services.networking.istio.io",  # Service is a core kind, not an Istio one
        "virtualservices.security.istio.io",
        "virtualservices.networking",  # groups are matched whole, as kubectl does
        "virtualservices.v1",
        "vs.v1.security.istio.io",
    ],
)
def test_a_kind_in_another_group_or_an_unknown_one_is_nothing(typed: str) -> None:
    assert resolve_resource(typed) is None
    assert resolve_kind_name(typed) is None
