"""DestinationRule checks: traffic policy rules (TLS included) as Istio's webhook applies
them, and "not supported yet" for workloadSelector."""

from __future__ import annotations

from isthmus.api import names
from isthmus.api.checks_common import (
    NOT_SUPPORTED,
    check_duration,
    check_export_to,
    check_labels,
    check_non_negative,
    check_port,
    check_range,
)
from isthmus.api.checks_locality import check_locality_lb_setting
from isthmus.api.errors import FieldPath, Problems
from isthmus.api.networking import (
    ClientTLSSettings,
    ConnectionPoolSettings,
    DestinationRule,
    H2UpgradePolicy,
    LoadBalancerSettings,
    OutlierDetection,
    SimpleLB,
    TLSMode,
    TrafficPolicy,
    TrafficPolicy_PortTrafficPolicy,
)

DEPRECATED_CONSECUTIVE_ERRORS = (
    "Istio ignores this deprecated field: use consecutive5xxErrors (or consecutiveGatewayErrors)"
)


def check_destination_rule(rule: DestinationRule, problems: Problems) -> None:
    spec = rule.spec
    path = FieldPath("spec")
    if spec.host == "":
        problems.add(path.field("host"), "must not be empty")
    else:
        problem = names.wildcard_domain_error(spec.host)
        if problem:
            problems.add(path.field("host"), problem)
    if spec.traffic_policy is not None:
        _check_traffic_policy(problems, path.field("trafficPolicy"), spec.traffic_policy)
    seen: set[str] = set()
    for position, subset in enumerate(spec.subsets):
        here = path.field("subsets").index(position)
        problem = names.istio_label_error("subset name", subset.name)
        if problem:
            problems.add(here.field("name"), problem)
        elif subset.name in seen:
            problems.add(here.field("name"), f'duplicate subset name "{subset.name}"')
        seen.add(subset.name)
        check_labels(problems, here.field("labels"), subset.labels)
        if subset.traffic_policy is not None:
            _check_traffic_policy(problems, here.field("trafficPolicy"), subset.traffic_policy)
    if spec.workload_selector is not None:
        problems.add(path.field("workloadSelector"), NOT_SUPPORTED)
    check_export_to(problems, path.field("exportTo"), rule.metadata.namespace or "", spec.export_to)


def _check_traffic_policy(problems: Problems, path: FieldPath, policy: TrafficPolicy) -> None:
    if (
        policy.load_balancer is None
        and policy.connection_pool is None
        and policy.outlier_detection is None
        and policy.tls is None
        and not policy.port_level_settings
    ):
        problems.add(path, "traffic policy must set at least one field")
        return
    _check_policy_parts(
        problems,
        path,
        policy.load_balancer,
        policy.connection_pool,
        policy.outlier_detection,
        policy.tls,
    )
    for position, port_policy in enumerate(policy.port_level_settings):
        _check_port_policy(problems, path.field("portLevelSettings").index(position), port_policy)


def _check_port_policy(
    problems: Problems, path: FieldPath, policy: TrafficPolicy_PortTrafficPolicy
) -> None:
    if policy.port is None:
        problems.add(path.field("port"), "is required")
    else:
        check_port(problems, path.field("port").field("number"), policy.port.number)
    if (
        policy.load_balancer is None
        and policy.connection_pool is None
        and policy.outlier_detection is None
        and policy.tls is None
    ):
        problems.add(path, "port traffic policy must set at least one field besides port")
        return
    _check_policy_parts(
        problems,
        path,
        policy.load_balancer,
        policy.connection_pool,
        policy.outlier_detection,
        policy.tls,
    )


def _check_policy_parts(
    problems: Problems,
    path: FieldPath,
    load_balancer: LoadBalancerSettings | None,
    connection_pool: ConnectionPoolSettings | None,
    outlier_detection: OutlierDetection | None,
    tls: ClientTLSSettings | None,
) -> None:
    if load_balancer is not None:
        _check_load_balancer(problems, path.field("loadBalancer"), load_balancer)
    if connection_pool is not None:
        _check_connection_pool(problems, path.field("connectionPool"), connection_pool)
    if outlier_detection is not None:
        _check_outlier_detection(problems, path.field("outlierDetection"), outlier_detection)
    if tls is not None:
        _check_tls(problems, path.field("tls"), tls)


def _check_tls(problems: Problems, path: FieldPath, tls: ClientTLSSettings) -> None:
    """Istio's validateTLS: MUTUAL needs a client certificate and key; ISTIO_MUTUAL uses
    the mesh's certificates, so it takes no files; paths must be absolute."""
    files = {
        "clientCertificate": tls.client_certificate,
        "privateKey": tls.private_key,
        "caCertificates": tls.ca_certificates,
    }
    if tls.mode is TLSMode.ISTIO_MUTUAL:
        for name, value in files.items():
            if value:
                problems.add(path.field(name), "cannot be set with mode ISTIO_MUTUAL")
        return
    if tls.mode is TLSMode.MUTUAL:
        for name in ("clientCertificate", "privateKey"):
            if not files[name]:
                problems.add(path.field(name), "required with mode MUTUAL")
    for name, value in files.items():
        if value and not value.startswith("/"):
            problems.add(path.field(name), "must be an absolute file path")
    if tls.insecure_skip_verify and (tls.ca_certificates or tls.subject_alt_names):
        problems.add(
            path.field("insecureSkipVerify"),
            "cannot be set with caCertificates or subjectAltNames",
        )


def _check_load_balancer(
    problems: Problems, path: FieldPath, settings: LoadBalancerSettings
) -> None:
    hashing = settings.consistent_hash
    if settings.simple is not None and hashing is not None:
        problems.add(path, "set only one of simple and consistentHash")
    _check_warmup(problems, path, settings)
    if settings.locality_lb_setting is not None:
        check_locality_lb_setting(
            problems, path.field("localityLbSetting"), settings.locality_lb_setting
        )
    if hashing is None:
        return
    here = path.field("consistentHash")
    keys = [
        name
        for name, value in (
            ("httpHeaderName", hashing.http_header_name),
            ("httpCookie", hashing.http_cookie),
            ("useSourceIp", hashing.use_source_ip),
            ("httpQueryParameterName", hashing.http_query_parameter_name),
        )
        if value is not None
    ]
    if len(keys) != 1:
        found = f" (found {', '.join(keys)})" if keys else ""
        problems.add(
            here,
            "set exactly one of httpHeaderName, httpCookie, useSourceIp and "
            f"httpQueryParameterName{found}",
        )
    if hashing.http_header_name is not None:
        problem = names.header_name_error(hashing.http_header_name)
        if problem:
            problems.add(here.field("httpHeaderName"), problem)
    if hashing.http_query_parameter_name == "":
        problems.add(here.field("httpQueryParameterName"), "must not be empty")
    cookie = hashing.http_cookie
    if cookie is not None:
        if not cookie.name:
            problems.add(here.field("httpCookie").field("name"), "must not be empty")
        check_duration(problems, here.field("httpCookie").field("ttl"), cookie.ttl, zero_ok=True)


# The load balancers Envoy has slow start for (Istio sets it only on these; unset means
# LEAST_REQUEST).
_WARMUP_POLICIES = (
    None,
    SimpleLB.UNSPECIFIED,
    SimpleLB.ROUND_ROBIN,
    SimpleLB.LEAST_REQUEST,
    SimpleLB.LEAST_CONN,
)


def _check_warmup(problems: Problems, path: FieldPath, settings: LoadBalancerSettings) -> None:
    """Istio's rules (webhook and CRD): duration at least 1ms, minimumPercent 0..100,
    aggression above 0. Stricter than Istio, where it would ignore them: warmup and
    warmupDurationSecs together, and either with a balancer that has no slow start."""
    warmup = settings.warmup
    if warmup is not None:
        here = path.field("warmup")
        check_duration(problems, here.field("duration"), warmup.duration)
        check_range(problems, here.field("minimumPercent"), warmup.minimum_percent, 0, 100)
        if warmup.aggression is not None and warmup.aggression <= 0:
            problems.add(here.field("aggression"), "must be greater than 0")
    check_duration(problems, path.field("warmupDurationSecs"), settings.warmup_duration_secs)
    if warmup is not None and settings.warmup_duration_secs is not None:
        problems.add(
            path.field("warmupDurationSecs"),
            "set only one of warmup and warmupDurationSecs (deprecated; Istio would ignore it)",
        )
    name = "warmup" if warmup is not None else "warmupDurationSecs"
    if warmup is None and settings.warmup_duration_secs is None:
        return
    if settings.consistent_hash is not None:
        problems.add(path.field(name), "has no effect with consistentHash (no slow start)")
    elif settings.simple not in _WARMUP_POLICIES:
        problems.add(
            path.field(name),
            f"has no effect with simple {settings.simple}: slow start needs ROUND_ROBIN, "
            "LEAST_REQUEST or LEAST_CONN",
        )


def _check_connection_pool(
    problems: Problems, path: FieldPath, pool: ConnectionPoolSettings
) -> None:
    if pool.tcp is None and pool.http is None:
        problems.add(path, "connection pool must set tcp, http or both")
        return
    tcp = pool.tcp
    if tcp is not None:
        here = path.field("tcp")
        check_non_negative(problems, here.field("maxConnections"), tcp.max_connections)
        check_duration(problems, here.field("connectTimeout"), tcp.connect_timeout)
        check_duration(problems, here.field("maxConnectionDuration"), tcp.max_connection_duration)
        check_duration(problems, here.field("idleTimeout"), tcp.idle_timeout, zero_ok=True)
        if tcp.tcp_keepalive is not None:
            keepalive = here.field("tcpKeepalive")
            check_duration(problems, keepalive.field("time"), tcp.tcp_keepalive.time)
            check_duration(problems, keepalive.field("interval"), tcp.tcp_keepalive.interval)
    http = pool.http
    if http is not None:
        here = path.field("http")
        for field, value in (
            ("http1MaxPendingRequests", http.http1_max_pending_requests),
            ("http2MaxRequests", http.http2_max_requests),
            ("maxRequestsPerConnection", http.max_requests_per_connection),
            ("maxRetries", http.max_retries),
            ("maxConcurrentStreams", http.max_concurrent_streams),
        ):
            check_non_negative(problems, here.field(field), value)
        check_duration(problems, here.field("idleTimeout"), http.idle_timeout)
        if http.h2_upgrade_policy == H2UpgradePolicy.UPGRADE and http.use_client_protocol:
            problems.add(here, "useClientProtocol must not be true when h2UpgradePolicy is UPGRADE")


def _check_outlier_detection(
    problems: Problems, path: FieldPath, outlier: OutlierDetection
) -> None:
    check_duration(problems, path.field("interval"), outlier.interval)
    check_duration(problems, path.field("baseEjectionTime"), outlier.base_ejection_time)
    if outlier.consecutive_errors is not None:
        # Deprecated in Istio and ignored by its translation; its webhook only warns
        # (validateOutlierDetection). Accepted, it would promise an ejection Envoy never does.
        problems.add(path.field("consecutiveErrors"), DEPRECATED_CONSECUTIVE_ERRORS)
    check_range(problems, path.field("maxEjectionPercent"), outlier.max_ejection_percent, 0, 100)
    check_range(problems, path.field("minHealthPercent"), outlier.min_health_percent, 0, 100)
    if not outlier.split_external_local_origin_errors and outlier.consecutive_local_origin_failures:
        problems.add(
            path.field("consecutiveLocalOriginFailures"),
            "takes effect only with splitExternalLocalOriginErrors: true",
        )
