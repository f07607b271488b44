"""Which DestinationRule applies from which namespace, and the policy it yields."""

from __future__ import annotations

from datetime import timedelta

from _build import mesh_from_yaml

from isthmus.api.networking import (
    ConnectionPoolSettings_TCPSettings,
    OutlierDetection,
    SimpleLB,
    TrafficPolicy,
)
from isthmus.pilot.destination_rule import (
    NO_TCP_PROXY_POLICY,
    DestinationRuleIndex,
    MergedDestinationRule,
    TcpProxyPolicy,
    effective_policy,
    route_consistent_hash,
    tcp_proxy_policy,
)

INVENTORY = "inventory-service.production.svc.cluster.local"

SERVICES = """
apiVersion: v1
kind: Service
metadata: {name: inventory-service, namespace: production}
spec: {ports: [{name: http, port: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: production}
spec: {ports: [{name: http, port: 8080}]}
"""


def dr(name: str, namespace: str, host: str, body: str = "") -> str:
    return f"""
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  host: "{host}"
{body}"""


def lb(simple: str) -> str:
    return f"  trafficPolicy: {{loadBalancer: {{simple: {simple}}}}}\n"


def rule_for(yaml_text: str, client: str, host: str = INVENTORY) -> MergedDestinationRule | None:
    mesh, _ = mesh_from_yaml(yaml_text)
    service = mesh.services.get(host)
    assert service is not None
    return DestinationRuleIndex.of(mesh).lookup(host, service.namespace, client)


def simple_of(rule: MergedDestinationRule | None) -> SimpleLB | None:
    assert rule is not None and rule.traffic_policy is not None
    assert rule.traffic_policy.load_balancer is not None
    return rule.traffic_policy.load_balancer.simple


# --- selection ---------------------------------------------------------------------


def test_short_host_resolves_in_the_rules_namespace() -> None:
    text = SERVICES + dr("inventory-service", "production", "inventory-service", lb("RANDOM"))
    rule = rule_for(text, "production")
    assert rule is not None and rule.host == INVENTORY
    # The same short name written in another namespace means a host there.
    elsewhere = SERVICES + dr("inventory-service", "shop", "inventory-service", lb("RANDOM"))
    assert rule_for(elsewhere, "shop") is None


def test_client_namespace_rule_wins_over_service_namespace_rule() -> None:
    text = (
        SERVICES
        + dr("inventory", "production", INVENTORY, lb("RANDOM"))
        + dr("inventory", "shop", INVENTORY, lb("ROUND_ROBIN"))
    )
    assert simple_of(rule_for(text, "shop")) == SimpleLB.ROUND_ROBIN
    assert simple_of(rule_for(text, "production")) == SimpleLB.RANDOM
    assert simple_of(rule_for(text, "billing")) == SimpleLB.RANDOM


def test_service_namespace_then_root_namespace() -> None:
    root = dr("everything", "istio-system", "*.local", lb("LEAST_REQUEST"))
    service_ns = dr("inventory", "production", "inventory-service", lb("RANDOM"))
    assert simple_of(rule_for(SERVICES + root + service_ns, "shop")) == SimpleLB.RANDOM
    assert simple_of(rule_for(SERVICES + root, "shop")) == SimpleLB.LEAST_REQUEST


def test_export_to_limits_who_sees_a_rule() -> None:
    private = dr("inv", "production", "inventory-service", lb("RANDOM") + '  exportTo: ["."]\n')
    assert simple_of(rule_for(SERVICES + private, "production")) == SimpleLB.RANDOM
    assert rule_for(SERVICES + private, "shop") is None

    to_shop = dr("inv", "production", "inventory-service", lb("RANDOM") + "  exportTo: [shop]\n")
    assert simple_of(rule_for(SERVICES + to_shop, "shop")) == SimpleLB.RANDOM
    assert rule_for(SERVICES + to_shop, "billing") is None
    # A rule exported only elsewhere is not even local to its own namespace.
    assert rule_for(SERVICES + to_shop, "production") is None

    nobody = dr("inv", "production", "inventory-service", lb("RANDOM") + '  exportTo: ["~"]\n')
    assert rule_for(SERVICES + nobody, "shop") is None


def test_private_root_namespace_rule_applies_to_root_namespace_proxies_only() -> None:
    text = SERVICES + dr("root", "istio-system", "*", lb("RANDOM") + '  exportTo: ["."]\n')
    assert simple_of(rule_for(text, "istio-system")) == SimpleLB.RANDOM
    assert rule_for(text, "shop") is None


def test_exact_host_beats_wildcards_and_longer_wildcard_beats_shorter() -> None:
    wildcards = dr("all", "production", "*", lb("RANDOM")) + dr(
        "ns", "production", "*.production.svc.cluster.local", lb("ROUND_ROBIN")
    )
    assert simple_of(rule_for(SERVICES + wildcards, "production")) == SimpleLB.ROUND_ROBIN
    exact = dr("inv", "production", "inventory-service", lb("LEAST_CONN"))
    assert simple_of(rule_for(SERVICES + wildcards + exact, "production")) == SimpleLB.LEAST_CONN


def test_rules_for_one_host_merge_oldest_first() -> None:
    older = dr(
        "a",
        "production",
        "inventory-service",
        "  subsets:\n"
        "    - {name: v1, labels: {version: v1}}\n"
        "    - {name: v2, labels: {version: v2}}\n",
    )
    newer = dr(
        "b",
        "production",
        "inventory-service",
        lb("RANDOM") + "  subsets:\n"
        "    - {name: v2, labels: {version: other}}\n"
        "    - {name: v3, labels: {version: v3}}\n",
    )
    newest = dr("c", "production", "inventory-service", lb("ROUND_ROBIN"))
    rule = rule_for(SERVICES + older + newer + newest, "production")
    assert rule is not None
    assert [s.name for s in rule.subsets] == ["v1", "v2", "v3"]
    v2 = rule.subset("v2")
    assert v2 is not None and v2.labels == {"version": "v2"}  # the older rule's subset
    # Top-level policy: the oldest rule that has one (a has none, b does, c is too late).
    assert simple_of(rule) == SimpleLB.RANDOM
    assert rule.sources == (("production", "a"), ("production", "b"), ("production", "c"))
    assert rule.name == "a"


def test_rules_with_different_export_to_stay_apart() -> None:
    public = dr("public", "production", "inventory-service", lb("RANDOM"))
    private = dr(
        "private", "production", "inventory-service", lb("ROUND_ROBIN") + '  exportTo: ["."]\n'
    )
    text = SERVICES + public + private
    # In its own namespace both apply separately and the later one wins, as in Istio.
    assert simple_of(rule_for(text, "production")) == SimpleLB.ROUND_ROBIN
    assert simple_of(rule_for(text, "shop")) == SimpleLB.RANDOM


def test_rules_with_a_workload_selector_are_not_applied() -> None:
    selective = dr(
        "selective",
        "production",
        "inventory-service",
        lb("RANDOM") + "  workloadSelector: {matchLabels: {app: order}}\n",
    )
    assert rule_for(SERVICES + selective, "production") is None


# --- effective policy ----------------------------------------------------------------

MERGE = dr(
    "inv",
    "production",
    "inventory-service",
    """  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    connectionPool: {tcp: {maxConnections: 10}}
    outlierDetection: {consecutive5xxErrors: 3}
    portLevelSettings:
      - port: {number: 9090}
        loadBalancer: {simple: RANDOM}
  subsets:
    - name: v1
      labels: {version: v1}
    - name: v2
      labels: {version: v2}
      trafficPolicy:
        connectionPool: {tcp: {connectTimeout: 1s}}
        portLevelSettings:
          - port: {number: 9090}
            outlierDetection: {consecutiveGatewayErrors: 2}
""",
)


def merged_rule() -> MergedDestinationRule:
    rule = rule_for(SERVICES + MERGE, "production")
    assert rule is not None
    return rule


def blocks(
    policy: TrafficPolicy | None,
) -> tuple[SimpleLB | None, ConnectionPoolSettings_TCPSettings | None, OutlierDetection | None]:
    assert policy is not None
    simple = policy.load_balancer.simple if policy.load_balancer else None
    pool = policy.connection_pool.tcp if policy.connection_pool else None
    outlier = policy.outlier_detection
    return simple, pool, outlier


def test_port_level_settings_replace_the_whole_policy_for_that_port() -> None:
    simple, pool, outlier = blocks(effective_policy(merged_rule(), 9090))
    assert simple == SimpleLB.RANDOM
    assert pool is None and outlier is None  # not inherited from the top level


def test_top_level_policy_applies_to_other_ports() -> None:
    simple, pool, outlier = blocks(effective_policy(merged_rule(), 8080))
    assert simple == SimpleLB.ROUND_ROBIN
    assert pool is not None and pool.max_connections == 10
    assert outlier is not None and outlier.consecutive_5xx_errors == 3


def test_subset_without_policy_takes_the_rules_policy() -> None:
    assert effective_policy(merged_rule(), 8080, "v1") == effective_policy(merged_rule(), 8080)


def test_subset_policy_replaces_blocks_it_sets_and_inherits_the_rest() -> None:
    simple, pool, outlier = blocks(effective_policy(merged_rule(), 8080, "v2"))
    assert simple == SimpleLB.ROUND_ROBIN
    assert outlier is not None and outlier.consecutive_5xx_errors == 3
    # The connectionPool block is replaced whole: maxConnections is not kept.
    assert pool is not None and pool.max_connections is None
    assert pool.connect_timeout == timedelta(seconds=1)


def test_subset_port_level_settings_replace_all_four_blocks() -> None:
    policy = effective_policy(merged_rule(), 9090, "v2")
    simple, pool, outlier = blocks(policy)
    assert simple is None and pool is None
    assert outlier is not None and outlier.consecutive_gateway_errors == 2


def test_no_rule_means_no_policy() -> None:
    assert effective_policy(None, 8080) is None
    assert effective_policy(None, 8080, "v1") is None


# --- consistent hash for routes --------------------------------------------------------

HASHES = dr(
    "inv",
    "production",
    "inventory-service",
    """  trafficPolicy:
    loadBalancer: {consistentHash: {httpHeaderName: x-top}}
    portLevelSettings:
      - port: {number: 9090}
        loadBalancer: {consistentHash: {httpHeaderName: x-port}}
  subsets:
    - name: plain
      labels: {version: v1}
    - name: hashed
      labels: {version: v2}
      trafficPolicy:
        loadBalancer: {consistentHash: {httpHeaderName: x-subset}}
        portLevelSettings:
          - port: {number: 9090}
            loadBalancer: {consistentHash: {httpHeaderName: x-subset-port}}
""",
)


def header_for(port: int | None, subset: str | None) -> str | None:
    rule = rule_for(SERVICES + HASHES, "production")
    found = route_consistent_hash(rule, port, subset)
    return found.http_header_name if found else None


def test_route_hash_prefers_subset_port_then_subset_then_port_then_rule() -> None:
    assert header_for(None, None) == "x-top"
    assert header_for(9090, None) == "x-port"
    assert header_for(9090, "plain") == "x-port"
    assert header_for(8080, "hashed") == "x-subset"
    assert header_for(9090, "hashed") == "x-subset-port"
    # Port-level settings count only when the route names its destination port.
    assert header_for(None, "plain") == "x-top"


def test_route_hash_without_rule_is_none() -> None:
    assert route_consistent_hash(None, 8080, None) is None


# --- what the tcp_proxy of a TCP route takes ----------------------------------------------

TCP_PROXY = dr(
    "inv",
    "production",
    "inventory-service",
    """  trafficPolicy:
    loadBalancer: {consistentHash: {useSourceIp: true}}
    connectionPool: {tcp: {idleTimeout: 30s, maxConnectionDuration: 1h}}
    portLevelSettings:
      - port: {number: 8080}
        loadBalancer: {simple: ROUND_ROBIN}
        connectionPool: {tcp: {idleTimeout: 5s, maxConnectionDuration: 1m}}
  subsets:
    - name: plain
      labels: {version: v1}
      trafficPolicy: {connectionPool: {tcp: {idleTimeout: 1s}}}
    - name: simple
      labels: {version: v2}
      trafficPolicy: {loadBalancer: {simple: RANDOM}}
    - name: header
      labels: {version: v3}
      trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x-user}}}
""",
)


def tcp_policy(subset: str | None, rules: str = TCP_PROXY) -> TcpProxyPolicy:
    return tcp_proxy_policy(rule_for(SERVICES + rules, "production"), subset)


def test_tcp_proxy_takes_the_top_level_timeouts_only() -> None:
    """Istio reads GetTrafficPolicy().GetConnectionPool().GetTcp(): neither the port's
    entry nor the subset's connectionPool reaches the tcp_proxy."""
    for subset in (None, "plain", "simple", "missing"):
        policy = tcp_policy(subset)
        assert policy.idle_timeout == timedelta(seconds=30)
        assert policy.max_connection_duration == timedelta(hours=1)


def test_tcp_proxy_hash_is_the_rules_unless_the_subset_has_a_load_balancer() -> None:
    assert tcp_policy(None).hash_source_ip
    assert tcp_policy("plain").hash_source_ip  # no loadBalancer of its own
    assert tcp_policy("missing").hash_source_ip
    assert not tcp_policy("simple").hash_source_ip  # a simple balancer: no hash
    assert not tcp_policy("header").hash_source_ip  # hashes by something else


def test_tcp_proxy_hash_from_a_subset_alone() -> None:
    rules = dr(
        "inv",
        "production",
        "inventory-service",
        """  subsets:
    - name: sticky
      labels: {version: v1}
      trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true}}}
""",
    )
    assert tcp_policy("sticky", rules) == TcpProxyPolicy(hash_source_ip=True)
    assert tcp_policy(None, rules) == NO_TCP_PROXY_POLICY


def test_tcp_proxy_without_rule_gets_envoys_defaults() -> None:
    assert tcp_proxy_policy(None, "v1") == NO_TCP_PROXY_POLICY
