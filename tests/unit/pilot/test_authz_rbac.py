"""AuthorizationPolicy -> Envoy RBAC filters, case by case against Istio's builder output."""

from __future__ import annotations

from typing import Any

import pytest
from _authz import SEED_POLICY, config, policies, policy

from isthmus.pilot.authz.rbac import http_rbac_filters, network_rbac_filters

SEED_NAME = "ns[production]-policy[inventory-authz]-rule[0]"
P0 = "ns[production]-policy[p]-rule[0]"
P1 = "ns[production]-policy[p]-rule[1]"
ALLOW_PREFIX = "istio_dry_run_allow_"

# --- expected Envoy JSON, spelled as Istio's generator builds it ----------------------


def all_of(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"and_rules": {"rules": list(rules)}}


def one_of(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"or_rules": {"rules": list(rules)}}


def none_of(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"not_rule": one_of(*rules)}


def all_ids(*ids: dict[str, Any]) -> dict[str, Any]:
    return {"and_ids": {"ids": list(ids)}}


def one_of_ids(*ids: dict[str, Any]) -> dict[str, Any]:
    return {"or_ids": {"ids": list(ids)}}


def none_of_ids(*ids: dict[str, Any]) -> dict[str, Any]:
    return {"not_id": one_of_ids(*ids)}


def peer(**match: Any) -> dict[str, Any]:
    return {"authenticated": {"principal_name": match}}


def regex(pattern: str) -> dict[str, Any]:
    return {"safe_regex": {"regex": pattern}}


def header(name: str, **match: Any) -> dict[str, Any]:
    if match == {"present_match": True}:
        return {"header": {"name": name, "present_match": True}}
    return {"header": {"name": name, "string_match": match}}


def url_path(**match: Any) -> dict[str, Any]:
    return {"url_path": {"path": match}}


def cidr(address: str, length: int) -> dict[str, Any]:
    return {"address_prefix": address, "prefix_len": length}


ANY = {"any": True}


def http_configs(text: str, trust_domain: str = "cluster.local", **kw: Any) -> list[dict[str, Any]]:
    return [config(f) for f in http_rbac_filters(policies(text), trust_domain, **kw)]


def tcp_configs(text: str, trust_domain: str = "cluster.local") -> list[dict[str, Any]]:
    return [config(f) for f in network_rbac_filters(policies(text), trust_domain)]


def only_policy(configs: list[dict[str, Any]], name: str = P0) -> dict[str, Any]:
    (only,) = configs
    policy_map: dict[str, Any] = only["rules"]["policies"]
    assert list(policy_map) == [name]
    return dict(policy_map[name])


# --- the seed -------------------------------------------------------------------------


def test_seed_policy_is_one_allow_filter_for_the_two_callers() -> None:
    (http_filter,) = http_rbac_filters(policies(SEED_POLICY), "cluster.local")

    assert http_filter.name == "envoy.filters.http.rbac"
    assert config(http_filter) == {
        "rules": {
            "policies": {
                SEED_NAME: {
                    "permissions": [
                        all_of(
                            one_of(header(":method", exact="GET")),
                            one_of(url_path(prefix="/items/"), url_path(exact="/items")),
                        )
                    ],
                    "principals": [
                        all_ids(
                            one_of_ids(
                                peer(exact="spiffe://cluster.local/ns/production/sa/order-service"),
                                peer(exact="spiffe://cluster.local/ns/production/sa/cart-service"),
                            )
                        )
                    ],
                }
            }
        },
        "shadow_rules_stat_prefix": ALLOW_PREFIX,
    }


def test_seed_policy_on_tcp_allows_nothing() -> None:
    """Its only rule needs HTTP (methods, paths): Istio drops it, leaving an empty ALLOW."""
    (tcp_filter,) = network_rbac_filters(policies(SEED_POLICY), "cluster.local")

    assert tcp_filter.name == "envoy.filters.network.rbac"
    assert config(tcp_filter) == {
        "rules": {},
        "stat_prefix": "tcp.",
        "shadow_rules_stat_prefix": ALLOW_PREFIX,
    }


# --- actions, empty policies, dry-run ----------------------------------------------------


def test_one_filter_per_action_in_istio_order_audit_deny_allow() -> None:
    text = (
        policy("rules: [{to: [{operation: {paths: [/a]}}]}]", "allow")
        + "---\n"
        + policy("action: AUDIT\nrules: [{}]", "audit")
        + "---\n"
        + policy("action: DENY\nrules: [{to: [{operation: {paths: [/admin]}}]}]", "deny")
    )

    configs = http_configs(text)

    assert [c["rules"].get("action", "ALLOW") for c in configs] == ["LOG", "DENY", "ALLOW"]
    assert [list(c["rules"]["policies"]) for c in configs] == [
        ["ns[production]-policy[audit]-rule[0]"],
        ["ns[production]-policy[deny]-rule[0]"],
        ["ns[production]-policy[allow]-rule[0]"],
    ]
    assert [c["rules"].get("action", "ALLOW") for c in tcp_configs(text)] == [
        "LOG",
        "DENY",
        "ALLOW",
    ]


def test_no_policies_no_filters() -> None:
    assert http_rbac_filters([], "cluster.local") == []
    assert network_rbac_filters([], "cluster.local") == []


def test_deny_alone_gives_no_allow_filter() -> None:
    configs = http_configs(policy("action: DENY\nrules: [{}]"))

    assert [c["rules"]["action"] for c in configs] == ["DENY"]


def test_empty_spec_allows_nothing() -> None:
    matched = only_policy(http_configs(policy("{}")))

    assert matched == {"permissions": [{"not_rule": ANY}], "principals": [{"not_id": ANY}]}


def test_one_empty_rule_allows_everything() -> None:
    matched = only_policy(http_configs(policy("rules: [{}]")))

    assert matched == {"permissions": [all_of(ANY)], "principals": [all_ids(ANY)]}


def test_rules_of_several_policies_share_one_filter() -> None:
    text = policy("rules: [{}, {}]", "a") + "---\n" + policy("{}", "b", "istio-system")

    (only,) = http_configs(text)

    assert sorted(only["rules"]["policies"]) == [
        "ns[istio-system]-policy[b]-rule[0]",
        "ns[production]-policy[a]-rule[0]",
        "ns[production]-policy[a]-rule[1]",
    ]


DRY_RUN = '  annotations: {istio.io/dry-run: "true"}\n'


def test_dry_run_policy_goes_to_shadow_rules_only() -> None:
    text = policy("rules: [{}]", extra_meta=DRY_RUN)

    for configs in (http_configs(text), tcp_configs(text)):
        (only,) = configs
        assert "rules" not in only
        assert list(only["shadow_rules"]["policies"]) == [P0]
        assert only["shadow_rules_stat_prefix"] == ALLOW_PREFIX


def test_dry_run_and_enforced_policies_of_one_action_share_a_filter() -> None:
    text = (
        policy("action: DENY\nrules: [{}]", "trial", extra_meta=DRY_RUN)
        + "---\n"
        + policy("action: DENY\nrules: [{}]", "enforced")
    )

    (only,) = http_configs(text)

    assert only["rules"]["action"] == "DENY"
    assert list(only["rules"]["policies"]) == ["ns[production]-policy[enforced]-rule[0]"]
    assert only["shadow_rules"]["action"] == "DENY"
    assert list(only["shadow_rules"]["policies"]) == ["ns[production]-policy[trial]-rule[0]"]
    assert only["shadow_rules_stat_prefix"] == "istio_dry_run_deny_"


def test_dry_run_false_is_enforced() -> None:
    text = policy("rules: [{}]", extra_meta='  annotations: {istio.io/dry-run: "false"}\n')

    (only,) = http_configs(text)

    assert "shadow_rules" not in only and list(only["rules"]["policies"]) == [P0]


# --- sources (principals) ---------------------------------------------------------------

SOURCE_CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "principal-forms": (
        "principals: [cluster.local/ns/a/sa/b, 'cluster.local/ns/a/*', '*/ns/a/sa/b', '*']",
        one_of_ids(
            peer(exact="spiffe://cluster.local/ns/a/sa/b"),
            peer(prefix="spiffe://cluster.local/ns/a/"),
            peer(**regex("spiffe://.*/ns/a/sa/b")),
            peer(**regex(".+")),
        ),
    ),
    "principal-suffix-is-quoted": (
        "principals: ['*.local/ns/a+b/sa/c']",
        one_of_ids(peer(**regex(r"spiffe://.*\.local/ns/a\+b/sa/c"))),
    ),
    "not-principals": (
        "notPrincipals: [cluster.local/ns/a/sa/b]",
        none_of_ids(peer(exact="spiffe://cluster.local/ns/a/sa/b")),
    ),
    "namespaces": (
        "namespaces: [production, 'team-*', '*']",
        one_of_ids(
            peer(**regex(".*/ns/production/.*")),
            peer(**regex(".*/ns/team-.*/.*")),
            peer(**regex(".*/ns/.*/.*")),
        ),
    ),
    "not-namespaces": (
        "notNamespaces: [kube.system]",
        none_of_ids(peer(**regex(r".*/ns/kube\.system/.*"))),
    ),
    "service-accounts": (
        "serviceAccounts: [order-service, other/cart]",
        one_of_ids(
            peer(**regex("spiffe://.+/ns/production/(.+/|)sa/order-service(/.+)?")),
            peer(**regex("spiffe://.+/ns/other/(.+/|)sa/cart(/.+)?")),
        ),
    ),
    "ip-blocks-are-the-direct-peer": (
        "ipBlocks: [10.1.2.3/16, 10.0.0.1, '2001:db8::1']",
        one_of_ids(
            {"direct_remote_ip": cidr("10.1.2.3", 16)},
            {"direct_remote_ip": cidr("10.0.0.1", 32)},
            {"direct_remote_ip": cidr("2001:db8::1", 128)},
        ),
    ),
    "remote-ip-blocks-are-the-original-client": (
        "notRemoteIpBlocks: [192.0.2.0/24]",
        none_of_ids({"remote_ip": cidr("192.0.2.0", 24)}),
    ),
}


@pytest.mark.parametrize("case", sorted(SOURCE_CASES))
def test_source_fields(case: str) -> None:
    source, expected = SOURCE_CASES[case]

    matched = only_policy(http_configs(policy(f"rules: [{{from: [{{source: {{{source}}}}}]}}]")))

    assert matched["principals"] == [all_ids(expected)]
    assert matched["permissions"] == [all_of(ANY)]


def test_source_fields_in_istio_order_and_from_entries_ored() -> None:
    text = policy("""
rules:
- from:
  - source: {ipBlocks: [10.0.0.1], namespaces: [a], principals: [td/ns/a/sa/b]}
  - source: {remoteIpBlocks: [10.0.0.2]}
""")

    matched = only_policy(http_configs(text))

    assert matched["principals"] == [
        all_ids(
            one_of_ids(peer(exact="spiffe://td/ns/a/sa/b")),
            one_of_ids(peer(**regex(".*/ns/a/.*"))),
            one_of_ids({"direct_remote_ip": cidr("10.0.0.1", 32)}),
        ),
        all_ids(one_of_ids({"remote_ip": cidr("10.0.0.2", 32)})),
    ]


# --- operations (permissions) -------------------------------------------------------------

HOST = ":authority"
OPERATION_CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "methods": (
        "methods: [GET, 'P*', '*T', '*']",
        one_of(
            header(":method", exact="GET"),
            header(":method", prefix="P"),
            header(":method", suffix="T"),
            header(":method", present_match=True),
        ),
    ),
    "not-methods": ("notMethods: [DELETE]", none_of(header(":method", exact="DELETE"))),
    "paths": (
        "paths: [/items, '/items/*', '*.json', '*']",
        one_of(
            url_path(exact="/items"),
            url_path(prefix="/items/"),
            url_path(suffix=".json"),
            url_path(**regex(".+")),
        ),
    ),
    "not-paths": ("notPaths: ['/admin*']", none_of(url_path(prefix="/admin"))),
    "path-templates": (
        "paths: ['/items/{*}/reviews/{**}']",
        one_of(
            {
                "uri_template": {
                    "name": "uri-template",
                    "typed_config": {
                        "@type": "type.googleapis.com/"
                        "envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig",
                        "path_template": "/items/*/reviews/**",
                    },
                }
            }
        ),
    ),
    # Hosts match the :authority as sent, case-insensitively. `host` and `host:port` are
    # different values: Istio matches literally, so policies list `host:*` for ports.
    "hosts": (
        "hosts: [Inventory.Production, 'inventory:*', '*.svc.cluster.local', '*']",
        one_of(
            header(HOST, exact="Inventory.Production", ignore_case=True),
            header(HOST, prefix="inventory:", ignore_case=True),
            header(HOST, suffix=".svc.cluster.local", ignore_case=True),
            header(HOST, present_match=True),
        ),
    ),
    "not-hosts": (
        "notHosts: [admin.example.com]",
        none_of(header(HOST, exact="admin.example.com", ignore_case=True)),
    ),
    "ports": (
        "ports: ['8080', '9090']",
        one_of({"destination_port": 8080}, {"destination_port": 9090}),
    ),
    "not-ports": ("notPorts: ['15020']", none_of({"destination_port": 15020})),
}


@pytest.mark.parametrize("case", sorted(OPERATION_CASES))
def test_operation_fields(case: str) -> None:
    operation, expected = OPERATION_CASES[case]

    matched = only_policy(
        http_configs(policy(f"rules: [{{to: [{{operation: {{{operation}}}}}]}}]"))
    )

    assert matched["permissions"] == [all_of(expected)]
    assert matched["principals"] == [all_ids(ANY)]


def test_operation_fields_in_istio_order_and_to_entries_ored() -> None:
    text = policy("""
rules:
- to:
  - operation: {ports: ['80'], paths: [/a], methods: [GET], hosts: [a.com]}
  - operation: {notPorts: ['81']}
""")

    matched = only_policy(http_configs(text))

    assert matched["permissions"] == [
        all_of(
            one_of(header(HOST, exact="a.com", ignore_case=True)),
            one_of(header(":method", exact="GET")),
            one_of(url_path(exact="/a")),
            one_of({"destination_port": 80}),
        ),
        all_of(none_of({"destination_port": 81})),
    ]


# --- when conditions ------------------------------------------------------------------------

WHEN_CASES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "request-header": (
        "{key: 'request.headers[X-User]', values: ['admin*'], notValues: ['*']}",
        "principals",
        all_ids(
            one_of_ids(header("X-User", prefix="admin")),
            none_of_ids(header("X-User", present_match=True)),
        ),
    ),
    "source-ip": (
        "{key: source.ip, values: [10.0.0.0/8]}",
        "principals",
        all_ids(one_of_ids({"direct_remote_ip": cidr("10.0.0.0", 8)})),
    ),
    "remote-ip": (
        "{key: remote.ip, values: [192.0.2.7]}",
        "principals",
        all_ids(one_of_ids({"remote_ip": cidr("192.0.2.7", 32)})),
    ),
    "source-namespace": (
        "{key: source.namespace, notValues: [legacy]}",
        "principals",
        all_ids(none_of_ids(peer(**regex(".*/ns/legacy/.*")))),
    ),
    "source-principal": (
        "{key: source.principal, values: [cluster.local/ns/a/sa/b]}",
        "principals",
        all_ids(one_of_ids(peer(exact="spiffe://cluster.local/ns/a/sa/b"))),
    ),
    "source-service-account": (
        "{key: source.serviceAccount, values: [b]}",
        "principals",
        all_ids(one_of_ids(peer(**regex("spiffe://.+/ns/production/(.+/|)sa/b(/.+)?")))),
    ),
    "destination-ip": (
        "{key: destination.ip, values: [10.44.0.7]}",
        "permissions",
        all_of(one_of({"destination_ip": cidr("10.44.0.7", 32)})),
    ),
    "destination-port": (
        "{key: destination.port, notValues: ['15090']}",
        "permissions",
        all_of(none_of({"destination_port": 15090})),
    ),
    "connection-sni": (
        "{key: connection.sni, values: ['*.example.com', 'api.*', exact.com, '*']}",
        "permissions",
        all_of(
            one_of(
                {"requested_server_name": {"suffix": ".example.com"}},
                {"requested_server_name": {"prefix": "api."}},
                {"requested_server_name": {"exact": "exact.com"}},
                {"requested_server_name": regex(".+")},
            )
        ),
    ),
}


@pytest.mark.parametrize("case", sorted(WHEN_CASES))
def test_when_conditions(case: str) -> None:
    condition, half, expected = WHEN_CASES[case]

    matched = only_policy(http_configs(policy(f"rules: [{{when: [{condition}]}}]")))

    anything = {"permissions": [all_of(ANY)], "principals": [all_ids(ANY)]}
    assert matched == {**anything, half: [expected]}


def test_when_conditions_join_every_from_and_to() -> None:
    text = policy("""
rules:
- from: [{source: {namespaces: [a]}}, {source: {namespaces: [b]}}]
  to: [{operation: {paths: [/x]}}, {operation: {paths: [/y]}}]
  when: [{key: destination.port, values: ['80']}, {key: source.ip, values: [10.0.0.1]}]
""")

    matched = only_policy(http_configs(text))

    port = one_of({"destination_port": 80})
    source_ip = one_of_ids({"direct_remote_ip": cidr("10.0.0.1", 32)})
    assert matched["permissions"] == [
        all_of(one_of(url_path(exact="/x")), port),
        all_of(one_of(url_path(exact="/y")), port),
    ]
    assert matched["principals"] == [
        all_ids(one_of_ids(peer(**regex(".*/ns/a/.*"))), source_ip),
        all_ids(one_of_ids(peer(**regex(".*/ns/b/.*"))), source_ip),
    ]


# --- trust domains --------------------------------------------------------------------------

TRUST_DOMAIN_TEXT = policy("""
rules:
- from:
  - source:
      principals: [cluster.local/ns/a/sa/b, other.td/ns/a/sa/b, '*/ns/a/sa/b', sa/b]
      notPrincipals: [cluster.local/ns/x/sa/y]
  when: [{key: source.principal, values: [cluster.local/ns/c/sa/d]}]
""")


def test_cluster_local_principals_follow_the_mesh_trust_domain() -> None:
    matched = only_policy(http_configs(TRUST_DOMAIN_TEXT, "example.org"))

    assert matched["principals"] == [
        all_ids(
            one_of_ids(
                peer(exact="spiffe://example.org/ns/a/sa/b"),
                peer(exact="spiffe://other.td/ns/a/sa/b"),  # a foreign trust domain stays
                peer(**regex("spiffe://.*/ns/a/sa/b")),  # any trust domain
                peer(exact="spiffe://sa/b"),  # not an identity of the 5-part form
            ),
            none_of_ids(peer(exact="spiffe://example.org/ns/x/sa/y")),
            one_of_ids(peer(exact="spiffe://example.org/ns/c/sa/d")),
        )
    ]


def test_default_trust_domain_keeps_principals_as_written() -> None:
    matched = only_policy(http_configs(TRUST_DOMAIN_TEXT))

    first = matched["principals"][0]["and_ids"]["ids"][0]
    assert first["or_ids"]["ids"][0] == peer(exact="spiffe://cluster.local/ns/a/sa/b")


def test_trust_domain_aliases_expand_a_principal() -> None:
    text = policy("rules: [{from: [{source: {principals: [old.td/ns/a/sa/b]}}]}]")

    matched = only_policy(http_configs(text, "new.td", trust_domain_aliases=["old.td"]))

    assert matched["principals"] == [
        all_ids(
            one_of_ids(
                peer(exact="spiffe://new.td/ns/a/sa/b"),
                peer(exact="spiffe://old.td/ns/a/sa/b"),
            )
        )
    ]


# --- TCP: HTTP-only attributes ----------------------------------------------------------------


def test_tcp_allow_drops_each_rule_that_needs_http() -> None:
    text = policy("""
rules:
- to: [{operation: {ports: ['5432'], methods: [GET]}}]
- to: [{operation: {ports: ['5432']}}]
- when: [{key: 'request.headers[x-a]', values: [b]}]
- from: [{source: {namespaces: [a]}}]
  to: [{operation: {notHosts: [a.com]}}]
""")

    (only,) = tcp_configs(text)

    assert only["rules"]["policies"] == {
        P1: {
            "permissions": [all_of(one_of({"destination_port": 5432}))],
            "principals": [all_ids(ANY)],
        }
    }
    (http,) = http_configs(text)
    assert len(http["rules"]["policies"]) == 4


def test_tcp_deny_keeps_only_the_tcp_attributes_and_so_denies_more() -> None:
    text = policy("""
action: DENY
rules:
- from: [{source: {namespaces: [legacy]}}]
  to: [{operation: {ports: ['5432'], methods: [DELETE], notPaths: [/ok]}}]
- to: [{operation: {paths: [/admin]}}]
  when: [{key: 'request.headers[x-a]', values: [b]}]
""")

    (only,) = tcp_configs(text)

    assert only["rules"] == {
        "action": "DENY",
        "policies": {
            P0: {
                "permissions": [all_of(one_of({"destination_port": 5432}))],
                "principals": [all_ids(one_of_ids(peer(**regex(".*/ns/legacy/.*"))))],
            },
            # Nothing of this rule can be seen on TCP: it denies every connection.
            P1: {"permissions": [all_of(ANY)], "principals": [all_ids(ANY)]},
        },
    }


def test_tcp_audit_ignores_http_attributes_like_deny() -> None:
    text = policy("action: AUDIT\nrules: [{to: [{operation: {methods: [GET]}}]}]")

    (only,) = tcp_configs(text)

    assert only["rules"]["action"] == "LOG"
    assert only["rules"]["policies"][P0]["permissions"] == [all_of(ANY)]
