"""Which DestinationRule applies to a host, and the traffic policy it gives a port/subset.

Selection, as Istio's PushContext does it (DRs with a workloadSelector are not applied:
outbound config is shared per namespace, and a selector would make it per workload):

1. Every DR host is made a FQDN relative to the DR's namespace: a name without a dot,
   `inventory-service` in `production`, is `inventory-service.production.svc.cluster.local`;
   a name with a dot (or a wildcard) is taken literally, as for VirtualService hosts.
2. Rules are taken oldest first (store revision, then name, then namespace). Each one goes
   into its namespace's *local* index when its exportTo is empty or holds `*`, `.` or its own
   namespace, and into its namespace's *exported* index unless it is private (exportTo `.`
   or only its own namespace); a private rule of the root namespace goes into a separate
   root-local index.
3. Within one index, rules for the same host are merged (Istio's enhanced merge): a rule is
   merged into every earlier entry for that host whose exportTo equals its own, or is a
   non-empty subset of its own; it becomes a separate entry as well when the last earlier
   entry could not take it (Istio's loop keeps only the last verdict). Merging appends
   the subsets whose names are new (the older rule keeps a duplicate name) and takes the
   top-level trafficPolicy only when the entry has none yet, so the oldest rule that has
   one wins; exportTo and the rest stay the oldest rule's.
4. Lookup for a host from a client namespace: the client namespace's local index (or the
   root-local index when the client is in the root namespace), then the service
   namespace's exported index, then the root namespace's exported index; entries from
   exported indexes count only if their exportTo is empty or holds `*` or the client
   namespace. In an index the exact host wins, else the most specific wildcard (`*.ns.svc...`
   over `*`). Of several entries for the host the last one applies, as in Istio's
   SidecarScope.

Policy for (port, subset), as Istio's MergeSubsetTrafficPolicy: the rule's top-level
policy, replaced *wholesale* by its portLevelSettings entry for the port (fields that entry
omits fall back to defaults, they are not inherited); then the subset's policy, itself
replaced by the subset's own portLevelSettings entry when one matches. The subset policy
overrides loadBalancer, connectionPool, outlierDetection and tls one block at a time (a
block is replaced whole, never merged field by field); when the subset's port-level entry
matched, all four blocks are taken from it, set or not.

The tcp_proxy of an outbound TCP chain reads the rule differently (Istio's
networkfilter.go): only the top-level connectionPool.tcp idleTimeout and
maxConnectionDuration, and a source-IP hash from the top-level consistentHash unless the
subset of a single destination sets a loadBalancer of its own (see `tcp_proxy_policy`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta

from isthmus.api.networking import (
    ConsistentHashLB,
    DestinationRule,
    Subset,
    TrafficPolicy,
    TrafficPolicy_PortTrafficPolicy,
)
from isthmus.model.hosts import resolve_config_host
from isthmus.model.snapshot import ConfigEntry, MeshConfig, MeshSnapshot

PUBLIC = "*"
PRIVATE = "."


@dataclass(frozen=True)
class MergedDestinationRule:
    """One or more DestinationRules for one host of one namespace, merged (Istio's
    ConsolidatedDestRule). `sources` are the (namespace, name) of the rules, oldest first."""

    host: str
    namespace: str
    name: str
    traffic_policy: TrafficPolicy | None
    subsets: tuple[Subset, ...]
    export_to: frozenset[str]
    sources: tuple[tuple[str, str], ...]

    def subset(self, name: str) -> Subset | None:
        return next((s for s in self.subsets if s.name == name), None)

    def merge(self, newer: MergedDestinationRule) -> MergedDestinationRule:
        """Add a newer rule: new subset names appended, policy only if none yet."""
        have = {s.name for s in self.subsets}
        added = tuple(s for s in newer.subsets if s.name not in have)
        return replace(
            self,
            subsets=self.subsets + added,
            traffic_policy=(
                self.traffic_policy if self.traffic_policy is not None else newer.traffic_policy
            ),
            sources=self.sources + newer.sources,
        )


@dataclass
class _HostRules:
    """Rules of one index by host, exact hosts apart from wildcards (`*.x`, `*`)."""

    specific: dict[str, list[MergedDestinationRule]] = field(default_factory=dict)
    wildcard: dict[str, list[MergedDestinationRule]] = field(default_factory=dict)

    def add(self, rule: MergedDestinationRule) -> None:
        by_host = self.wildcard if rule.host.startswith("*") else self.specific
        entries = by_host.setdefault(rule.host, [])
        append_separately = not entries
        for i, entry in enumerate(entries):
            if rule.export_to == entry.export_to or (
                entry.export_to and entry.export_to <= rule.export_to
            ):
                entries[i] = entry.merge(rule)
                append_separately = False
            else:
                append_separately = True
        if append_separately:
            entries.append(rule)

    def match(self, hostname: str) -> list[MergedDestinationRule] | None:
        """Istio's MostSpecificHostMatch: exact host first, then the longest wildcard."""
        if hostname.startswith("*"):
            if hostname in self.wildcard:
                return self.wildcard[hostname]
            needle = hostname[1:]
        else:
            if hostname in self.specific:
                return self.specific[hostname]
            needle = hostname
        best: str | None = None
        for pattern in self.wildcard:
            if needle.endswith(pattern[1:]) and (best is None or _more_specific(pattern, best)):
                best = pattern
        return self.wildcard[best] if best is not None else None


def _more_specific(a: str, b: str) -> bool:
    """Istio's host.MoreSpecific for two wildcards: longer first, then alphabetical."""
    return a < b if len(a) == len(b) else len(a) > len(b)


@dataclass(frozen=True)
class DestinationRuleIndex:
    """All DestinationRules of a mesh, indexed once for lookups from any namespace."""

    root_namespace: str
    namespace_local: Mapping[str, _HostRules]
    exported: Mapping[str, _HostRules]
    root_local: _HostRules

    @classmethod
    def build(
        cls,
        entries: Iterable[ConfigEntry[DestinationRule]],
        config: MeshConfig,
        known_hosts: Collection[str] = (),
    ) -> DestinationRuleIndex:
        local: dict[str, _HostRules] = {}
        exported: dict[str, _HostRules] = {}
        root_local = _HostRules()
        ordered = sorted(entries, key=lambda e: (e.created_revision, e.name, e.namespace))
        for entry in ordered:
            spec = entry.resource.spec
            if spec.workload_selector is not None:
                continue
            ns = entry.namespace
            rule = MergedDestinationRule(
                host=resolve_config_host(spec.host, ns, known_hosts, config.domain_suffix),
                namespace=ns,
                name=entry.name,
                traffic_policy=spec.traffic_policy,
                subsets=tuple(spec.subsets),
                export_to=frozenset(spec.export_to),
                sources=((ns, entry.name),),
            )
            export = rule.export_to
            if not export or export & {PUBLIC, PRIVATE, ns}:
                local.setdefault(ns, _HostRules()).add(rule)
            private_only = len(export) == 1 and export <= {PRIVATE, ns}
            if not private_only:
                exported.setdefault(ns, _HostRules()).add(rule)
            elif ns == config.root_namespace:
                root_local.add(rule)
        return cls(config.root_namespace, local, exported, root_local)

    @classmethod
    def of(cls, mesh: MeshSnapshot) -> DestinationRuleIndex:
        return cls.build(mesh.destination_rules, mesh.config, frozenset(mesh.services.by_host))

    def lookup(
        self, hostname: str, service_namespace: str, client_namespace: str
    ) -> MergedDestinationRule | None:
        """The rule a proxy in `client_namespace` applies to `hostname` (see module doc)."""
        if client_namespace != self.root_namespace:
            own = self.namespace_local.get(client_namespace)
            found = own.match(hostname) if own else None
        else:
            found = self.root_local.match(hostname)
        if found:
            return found[-1]
        for owner in (service_namespace, self.root_namespace):
            rules = self.exported.get(owner)
            matched = rules.match(hostname) if rules else None
            if matched is None:
                continue
            visible = [r for r in matched if _exported_to(r.export_to, client_namespace)]
            if visible:
                return visible[-1]
        return None


def _exported_to(export_to: frozenset[str], namespace: str) -> bool:
    return not export_to or PUBLIC in export_to or namespace in export_to


def port_traffic_policy(
    policy: TrafficPolicy | None, port: int
) -> tuple[TrafficPolicy | None, bool]:
    """The policy for `port`: its portLevelSettings entry if any (True), else `policy`."""
    if policy is None:
        return None, False
    entry = next(
        (p for p in policy.port_level_settings if p.port is not None and p.port.number == port),
        None,
    )
    if entry is None:
        return policy, False
    return _from_port_policy(entry), True


def _from_port_policy(entry: TrafficPolicy_PortTrafficPolicy) -> TrafficPolicy:
    return TrafficPolicy(
        load_balancer=entry.load_balancer,
        connection_pool=entry.connection_pool,
        outlier_detection=entry.outlier_detection,
        tls=entry.tls,
    )


def merge_subset_policy(
    policy: TrafficPolicy | None, subset_policy: TrafficPolicy | None, port: int
) -> TrafficPolicy | None:
    """Istio's MergeSubsetTrafficPolicy: subset (or its port entry) over the rule's policy."""
    base, _ = port_traffic_policy(policy, port)
    if subset_policy is None:
        return base
    override, wholesale = port_traffic_policy(subset_policy, port)
    if base is None or override is None:
        return override
    pick = {
        name: getattr(override, name)
        if wholesale or getattr(override, name) is not None
        else getattr(base, name)
        for name in ("load_balancer", "connection_pool", "outlier_detection", "tls")
    }
    return TrafficPolicy(**pick)


def effective_policy(
    rule: MergedDestinationRule | None, port: int, subset: str | None = None
) -> TrafficPolicy | None:
    """The traffic policy of the cluster for (port, subset) under `rule`."""
    if rule is None:
        return None
    if not subset:
        return port_traffic_policy(rule.traffic_policy, port)[0]
    found = rule.subset(subset)
    return merge_subset_policy(rule.traffic_policy, found.traffic_policy if found else None, port)


def route_consistent_hash(
    rule: MergedDestinationRule | None, port: int | None, subset: str | None
) -> ConsistentHashLB | None:
    """The consistentHash a route to (host, subset, port) hashes with, as Istio's
    HashForHTTPDestination picks it: subset port entry, subset, rule port entry, rule.

    `port` is the route destination's explicit port; None when it names none."""
    if rule is None:
        return None
    chosen = _hash_of(rule.traffic_policy)
    candidates = [_port_hash(rule.traffic_policy, port)]
    found = rule.subset(subset) if subset else None
    if found is not None:
        candidates += [_hash_of(found.traffic_policy), _port_hash(found.traffic_policy, port)]
    for candidate in candidates:
        if candidate is not None:
            chosen = candidate
    return chosen


def _hash_of(policy: TrafficPolicy | None) -> ConsistentHashLB | None:
    lb = policy.load_balancer if policy else None
    return lb.consistent_hash if lb else None


def _port_hash(policy: TrafficPolicy | None, port: int | None) -> ConsistentHashLB | None:
    if policy is None or port is None:
        return None
    for entry in policy.port_level_settings:
        if entry.port is not None and entry.port.number == port:
            return entry.load_balancer.consistent_hash if entry.load_balancer else None
    return None


@dataclass(frozen=True)
class TcpProxyPolicy:
    """What an outbound tcp_proxy takes from a DestinationRule (unset: Envoy's defaults,
    an idle timeout of 1h and no limit on a connection's duration)."""

    idle_timeout: timedelta | None = None
    max_connection_duration: timedelta | None = None
    hash_source_ip: bool = False


NO_TCP_PROXY_POLICY = TcpProxyPolicy()


def tcp_proxy_policy(rule: MergedDestinationRule | None, subset: str | None) -> TcpProxyPolicy:
    """Istio's buildOutboundNetworkFilters* and maybeSetHashPolicy (networkfilter.go) for
    the rule of a TCP route's first destination host. `subset` is the destination's subset
    when the route has a single destination, else None (Istio passes "" for weighted routes).

    Only the rule's top-level policy counts: portLevelSettings and subset policies never
    reach the tcp_proxy, except that a matching subset with a loadBalancer decides the hash
    (its consistentHash.useSourceIp; a simple balancer, no hash)."""
    if rule is None:
        return NO_TCP_PROXY_POLICY
    policy = rule.traffic_policy
    pool = policy.connection_pool if policy else None
    tcp = pool.tcp if pool else None
    hashing = _hash_of(policy)
    use_source_ip = bool(hashing and hashing.use_source_ip)
    found = rule.subset(subset) if subset else None
    if found is not None and found.traffic_policy is not None:
        balancer = found.traffic_policy.load_balancer
        if balancer is not None:
            chosen = balancer.consistent_hash
            use_source_ip = bool(chosen and chosen.use_source_ip)
    return TcpProxyPolicy(
        idle_timeout=tcp.idle_timeout if tcp else None,
        max_connection_duration=tcp.max_connection_duration if tcp else None,
        hash_source_ip=use_source_ip,
    )
