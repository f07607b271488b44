"""Kind spellings the CLI accepts, as kubectl does."""

from __future__ import annotations

import pytest

from isthmus.api.registry import KINDS
from isthmus.cli.kinds import UnknownKind, group_of, resolve_kind, resource_name, resource_of


@pytest.mark.parametrize(
    ("spelling", "kind"),
    [
        ("VirtualService", "VirtualService"),
        ("virtualservice", "VirtualService"),
        ("virtualservices", "VirtualService"),
        ("vs", "VirtualService"),
        ("VS", "VirtualService"),
        ("virtualservices.networking.istio.io", "VirtualService"),
        ("dr", "DestinationRule"),
        ("destinationrules", "DestinationRule"),
        ("se", "ServiceEntry"),
        ("serviceentries", "ServiceEntry"),
        ("we", "WorkloadEntry"),
        ("svc", "Service"),
        ("services", "Service"),
        ("deploy", "Deployment"),
        ("deployments.apps", "Deployment"),
        ("ns", "Namespace"),
        ("sa", "ServiceAccount"),
    ],
)
def test_every_kubectl_spelling_resolves(spelling: str, kind: str) -> None:
    assert resolve_kind(spelling).kind == kind


def test_spellings_are_unambiguous() -> None:
    seen: dict[str, str] = {}
    for info in KINDS.values():
        for spelling in (info.kind.lower(), info.plural, *info.short_names):
            assert seen.setdefault(spelling, info.kind) == info.kind, spelling


def test_unknown_kind_lists_the_known_ones() -> None:
    with pytest.raises(UnknownKind, match=r'unknown resource type "pods"; known types: .*vs'):
        resolve_kind("pods")
    with pytest.raises(UnknownKind):
        resolve_kind("envoyfilters")  # known to Istio, not served by isthmus yet


def test_namespace_is_cluster_scoped() -> None:
    assert not resolve_kind("ns").namespaced
    assert resolve_kind("vs").namespaced


@pytest.mark.parametrize(
    ("api_version", "kind", "expected"),
    [
        ("networking.istio.io/v1", "VirtualService", "virtualservice.networking.istio.io"),
        ("apps/v1", "Deployment", "deployment.apps"),
        ("v1", "Service", "service"),
        ("", "Namespace", "namespace"),
    ],
)
def test_resource_names_match_kubectl(api_version: str, kind: str, expected: str) -> None:
    assert resource_name(kind, group_of(api_version)) == expected


def test_resource_of_a_kind_uses_its_preferred_group() -> None:
    assert resource_of(resolve_kind("dr")) == "destinationrule.networking.istio.io"
    assert resource_of(resolve_kind("ns")) == "namespace"
