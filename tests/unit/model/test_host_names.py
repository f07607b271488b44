"""Host names as Kubernetes and Istio resolve them."""

from __future__ import annotations

import pytest

from isthmus.model.hosts import (
    host_matches,
    kubernetes_alt_names,
    resolve_short_name,
    service_fqdn,
)


def test_service_fqdn() -> None:
    assert service_fqdn("inventory-service", "production") == (
        "inventory-service.production.svc.cluster.local"
    )
    assert service_fqdn("a", "b", "mesh.example") == "a.b.svc.mesh.example"


@pytest.mark.parametrize(
    ("host", "resolved"),
    [
        ("inventory-service", "inventory-service.production.svc.cluster.local"),
        # Istio resolves only dot-less names; anything with a dot is taken literally.
        ("inventory-service.shop", "inventory-service.shop"),
        ("inventory-service.shop.svc.cluster.local", "inventory-service.shop.svc.cluster.local"),
        ("*.example.com", "*.example.com"),
        ("*", "*"),
        ("api.example.com", "api.example.com"),
    ],
)
def test_short_names_are_relative_to_the_config_namespace(host: str, resolved: str) -> None:
    assert resolve_short_name(host, "production") == resolved


def test_short_names_use_the_domain_suffix() -> None:
    assert resolve_short_name("a", "b", "mesh.example") == "a.b.svc.mesh.example"


@pytest.mark.parametrize(
    ("pattern", "hostname", "matches"),
    [
        ("*", "anything.example.com", True),
        ("*.production.svc.cluster.local", "a.production.svc.cluster.local", True),
        ("*.production.svc.cluster.local", "a.shop.svc.cluster.local", False),
        ("*.example.com", "example.com", False),
        ("*.example.com", "a.b.example.com", True),
        ("a.example.com", "a.example.com", True),
        ("a.example.com", "b.example.com", False),
    ],
)
def test_host_matches(pattern: str, hostname: str, matches: bool) -> None:
    assert host_matches(pattern, hostname) is matches


def test_alternative_names_from_the_same_namespace() -> None:
    assert kubernetes_alt_names(
        "inventory-service.production.svc.cluster.local", "production", "production"
    ) == [
        "inventory-service.production.svc.cluster.local",
        "inventory-service.production.svc",
        "inventory-service.production",
        "inventory-service",
    ]


def test_no_bare_name_from_another_namespace() -> None:
    names = kubernetes_alt_names(
        "inventory-service.production.svc.cluster.local", "production", "shop"
    )
    assert "inventory-service" not in names
    assert "inventory-service.production" in names


def test_non_kubernetes_hosts_have_only_their_own_name() -> None:
    assert kubernetes_alt_names("api.example.com", "production", "production") == [
        "api.example.com"
    ]
    assert kubernetes_alt_names("a.b.svc.other.domain", "b", "b") == ["a.b.svc.other.domain"]
