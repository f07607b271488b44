"""Envoy's RBAC decision for requests, over the filters pilot generates from policies."""

from __future__ import annotations

from typing import Any

import pytest
from _authz import SEED_POLICY, policies, policy
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)

from isthmus.pilot.authz.evaluate import Decision, Request, evaluate
from isthmus.pilot.authz.rbac import http_rbac_filters, network_rbac_filters

ORDER = "spiffe://cluster.local/ns/production/sa/order-service"
CART = "spiffe://cluster.local/ns/production/sa/cart-service"
PAYMENT = "spiffe://cluster.local/ns/production/sa/payment-service"
STAGING = "spiffe://cluster.local/ns/staging/sa/order-service"
SEED_NAME = "ns[production]-policy[inventory-authz]-rule[0]"
P0 = "ns[production]-policy[p]-rule[0]"


def http(text: str, trust_domain: str = "cluster.local", **request: Any) -> Decision:
    return evaluate(http_rbac_filters(policies(text), trust_domain), Request(**request))


def tcp(text: str, **request: Any) -> Decision:
    return evaluate(network_rbac_filters(policies(text), "cluster.local"), Request(**request))


@pytest.mark.parametrize(
    ("request_", "decision"),
    [
        ({"source_principal": ORDER, "path": "/items"}, Decision(True, 0, SEED_NAME)),
        ({"source_principal": CART, "path": "/items/42?page=2"}, Decision(True, 0, SEED_NAME)),
        ({"source_principal": ORDER, "path": "/items#top"}, Decision(True, 0, SEED_NAME)),
        ({"source_principal": ORDER, "path": "/items", "method": "POST"}, Decision(False, 0)),
        ({"source_principal": ORDER, "path": "/itemsx"}, Decision(False, 0)),
        ({"source_principal": ORDER, "path": "/admin"}, Decision(False, 0)),
        ({"source_principal": PAYMENT, "path": "/items"}, Decision(False, 0)),
        ({"source_principal": None, "path": "/items"}, Decision(False, 0)),  # no mTLS
    ],
)
def test_seed_policy(request_: dict[str, Any], decision: Decision) -> None:
    assert http(SEED_POLICY, **request_) == decision


def test_seed_policy_under_another_trust_domain_follows_it() -> None:
    moved = ORDER.replace("cluster.local", "example.org")

    assert http(SEED_POLICY, "example.org", source_principal=moved, path="/items").allowed
    assert not http(SEED_POLICY, "example.org", source_principal=ORDER, path="/items").allowed


def test_seed_policy_on_tcp_denies_every_connection() -> None:
    assert tcp(SEED_POLICY, source_principal=ORDER) == Decision(False, 0)


DENY_AND_ALLOW = (
    policy("action: DENY\nrules: [{to: [{operation: {paths: ['/admin*']}}]}]", "deny-admin")
    + "---\n"
    + policy("rules: [{from: [{source: {namespaces: [production]}}]}]", "from-production")
)
DENY_NAME = "ns[production]-policy[deny-admin]-rule[0]"
ALLOW_NAME = "ns[production]-policy[from-production]-rule[0]"


@pytest.mark.parametrize(
    ("principal", "path", "decision"),
    [
        (ORDER, "/admin/users", Decision(False, 0, DENY_NAME)),
        (ORDER, "/items", Decision(True, 1, ALLOW_NAME)),
        (STAGING, "/items", Decision(False, 1)),
        (STAGING, "/admin", Decision(False, 0, DENY_NAME)),
    ],
)
def test_deny_wins_over_allow(principal: str, path: str, decision: Decision) -> None:
    assert http(DENY_AND_ALLOW, source_principal=principal, path=path) == decision


def test_allow_nothing_and_allow_all() -> None:
    assert http(policy("{}"), source_principal=ORDER) == Decision(False, 0)
    assert http(policy("rules: [{}]")) == Decision(True, 0, P0)


def test_no_policies_allow_everything() -> None:
    assert evaluate([], Request()) == Decision(True)


def test_dry_run_never_decides_and_audit_only_records() -> None:
    dry_run = policy("{}", extra_meta='  annotations: {istio.io/dry-run: "true"}\n')
    audit = policy("action: AUDIT\nrules: [{to: [{operation: {methods: [GET]}}]}]")

    assert http(dry_run) == Decision(True)
    assert http(audit) == Decision(True, audited=(P0,))
    assert http(audit, method="POST") == Decision(True)


@pytest.mark.parametrize(
    ("hosts", "host", "allowed"),
    [
        ("[inventory.production]", "Inventory.PRODUCTION", True),
        ("[inventory.production]", "inventory.production:8080", False),
        ("[inventory.production, 'inventory.production:*']", "inventory.production:8080", True),
        ("['*.svc.cluster.local']", "inventory.production.svc.cluster.local", True),
        ("['*.svc.cluster.local']", "inventory.production.svc.cluster.local:8080", False),
        ("['inventory*']", "INVENTORY:8080", True),
        ("['*']", "anything", True),
        ("['*']", "", False),  # no :authority at all
    ],
)
def test_hosts_match_the_authority_as_sent_ignoring_case(
    hosts: str, host: str, allowed: bool
) -> None:
    text = policy(f"rules: [{{to: [{{operation: {{hosts: {hosts}}}}}]}}]")

    assert http(text, host=host).allowed is allowed


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/items/42/reviews", True),
        ("/items/42/reviews?sort=new", True),
        ("/items/42/7/reviews", False),
        ("/items//reviews", False),
        ("/files/", True),
        ("/files/a/b.txt", True),
        ("/file", False),
    ],
)
def test_path_templates(path: str, allowed: bool) -> None:
    text = policy("rules: [{to: [{operation: {paths: ['/items/{*}/reviews', '/files/{**}']}}]}]")

    assert http(text, path=path).allowed is allowed


def test_not_fields_negate() -> None:
    text = policy(
        "rules: [{from: [{source: {notNamespaces: [staging]}}],"
        " to: [{operation: {notPaths: ['/admin*'], notMethods: [DELETE]}}]}]"
    )

    assert http(text, source_principal=ORDER, path="/items").allowed
    assert not http(text, source_principal=ORDER, path="/admin").allowed
    assert not http(text, source_principal=ORDER, method="DELETE").allowed
    assert not http(text, source_principal=STAGING).allowed
    # Envoy: without mTLS no identity matches, so "not from staging" holds for plaintext.
    assert http(text).allowed


def test_connection_attributes() -> None:
    text = policy("""
rules:
- from: [{source: {ipBlocks: [10.44.0.0/16], notRemoteIpBlocks: [192.0.2.0/24]}}]
  when:
  - {key: destination.port, values: ['8080']}
  - {key: connection.sni, values: ['*.example.com']}
  - {key: destination.ip, values: [10.44.0.7]}
""")
    fine: dict[str, Any] = {
        "source_ip": "10.44.3.2",
        "destination_port": 8080,
        "sni": "api.example.com",
        "destination_ip": "10.44.0.7",
    }

    assert http(text, **fine).allowed
    assert tcp(text, **fine).allowed
    changes: list[dict[str, Any]] = [
        {"source_ip": "10.45.0.1"},
        {"remote_ip": "192.0.2.9"},
        {"destination_port": 8081},
        {"sni": ""},
        {"destination_ip": "10.44.0.8"},
        {"source_ip": "2001:db8::1"},
    ]
    for change in changes:
        assert not http(text, **{**fine, **change}).allowed, change


def test_request_headers() -> None:
    text = policy("rules: [{when: [{key: 'request.headers[X-User]', values: ['admin-*']}]}]")

    assert http(text, headers={"x-user": "admin-bob"}).allowed
    assert not http(text, headers={"x-user": "bob"}).allowed
    assert not http(text).allowed
    assert not tcp(text, headers={"x-user": "admin-bob"}).allowed  # rule dropped on TCP


def test_tcp_deny_with_http_fields_denies_every_connection() -> None:
    text = policy("action: DENY\nrules: [{to: [{operation: {methods: [DELETE]}}]}]")

    assert http(text, method="GET").allowed
    assert tcp(text) == Decision(False, 0, P0)


def test_tcp_allow_by_port() -> None:
    text = policy("rules: [{to: [{operation: {ports: ['5432']}}]}]")

    assert tcp(text, destination_port=5432) == Decision(True, 0, P0)
    assert tcp(text, destination_port=5433) == Decision(False, 0)


def test_service_accounts() -> None:
    text = policy("rules: [{from: [{source: {serviceAccounts: [order-service, staging/cart]}}]}]")

    assert http(text, source_principal=ORDER).allowed
    assert http(text, source_principal="spiffe://td/ns/staging/sa/cart").allowed
    assert not http(text, source_principal=CART).allowed
    assert not http(text, source_principal=ORDER + "-v2").allowed


def test_first_matching_policy_in_name_order_is_reported() -> None:
    text = policy("rules: [{}]", "b") + "---\n" + policy("rules: [{}]", "a")

    assert http(text).policy == "ns[production]-policy[a]-rule[0]"


def test_non_rbac_filters_are_refused() -> None:
    with pytest.raises(ValueError, match="not an RBAC filter"):
        evaluate([hcm.HttpFilter(name="envoy.filters.http.router")], Request())
