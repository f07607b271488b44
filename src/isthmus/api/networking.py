"""networking.istio.io kinds: VirtualService, DestinationRule, ServiceEntry, WorkloadEntry.

Field names follow Istio's protos (snake_case here, camelCase in YAML). Semantic checks
that Istio's admission webhook performs live in `validation`.
"""

from __future__ import annotations

from enum import StrEnum
from types import MappingProxyType
from typing import Annotated, Literal

from pydantic import Field, Strict

from isthmus.api.base import Duration, Int32, IstioModel, Resource, UInt32, UInt64

NETWORKING_API_VERSIONS = (
    "networking.istio.io/v1",
    "networking.istio.io/v1beta1",
    "networking.istio.io/v1alpha3",
)


class StringMatch(IstioModel):
    """Exactly one of exact, prefix, regex (Istio's oneof)."""

    exact: str | None = None
    prefix: str | None = None
    regex: str | None = None


class Percent(IstioModel):
    value: float = 0.0


class PortSelector(IstioModel):
    number: UInt32


class Destination(IstioModel):
    host: str
    subset: str | None = None
    port: PortSelector | None = None


class Headers_HeaderOperations(IstioModel):
    set: dict[str, str] = Field(default_factory=dict)
    add: dict[str, str] = Field(default_factory=dict)
    remove: list[str] = Field(default_factory=list)


class Headers(IstioModel):
    request: Headers_HeaderOperations | None = None
    response: Headers_HeaderOperations | None = None


class HTTPMatchRequest(IstioModel):
    not_supported_fields = frozenset({"statPrefix"})

    name: str | None = None
    uri: StringMatch | None = None
    scheme: StringMatch | None = None
    method: StringMatch | None = None
    authority: StringMatch | None = None
    headers: dict[str, StringMatch] = Field(default_factory=dict)
    port: UInt32 | None = None
    source_labels: dict[str, str] = Field(default_factory=dict)
    gateways: list[str] = Field(default_factory=list)
    query_params: dict[str, StringMatch] = Field(default_factory=dict)
    ignore_uri_case: bool = False
    without_headers: dict[str, StringMatch] = Field(default_factory=dict)
    source_namespace: str | None = None


class HTTPRouteDestination(IstioModel):
    destination: Destination
    weight: Int32 | None = None
    headers: Headers | None = None


class HTTPRedirect(IstioModel):
    not_supported_fields = frozenset({"prefixRewrite"})

    uri: str | None = None
    authority: str | None = None
    port: UInt32 | None = None
    derive_port: Literal["FROM_PROTOCOL_DEFAULT", "FROM_REQUEST_PORT"] | None = None
    scheme: str | None = None
    redirect_code: UInt32 | None = None


class RegexRewrite(IstioModel):
    match: str
    rewrite: str


class HTTPRewrite(IstioModel):
    uri: str | None = None
    authority: str | None = None
    uri_regex_rewrite: RegexRewrite | None = None


class HTTPRetry(IstioModel):
    not_supported_fields = frozenset({"retryIgnorePreviousHosts", "backoff"})

    attempts: Int32 = 0
    per_try_timeout: Duration | None = None
    retry_on: str | None = None
    retry_remote_localities: bool | None = None


class HTTPFaultInjection_Delay(IstioModel):
    fixed_delay: Duration | None = None
    exponential_delay: Duration | None = None
    percentage: Percent | None = None
    percent: Int32 | None = None


class HTTPFaultInjection_Abort(IstioModel):
    removed_fields = MappingProxyType({"percent": "use percentage: {value: N}"})

    http_status: Int32 | None = None
    grpc_status: str | None = None
    http2_error: str | None = None
    percentage: Percent | None = None


class HTTPFaultInjection(IstioModel):
    delay: HTTPFaultInjection_Delay | None = None
    abort: HTTPFaultInjection_Abort | None = None


class HTTPMirrorPolicy(IstioModel):
    destination: Destination
    percentage: Percent | None = None


class UnmatchedPreflights(StrEnum):
    UNSPECIFIED = "UNSPECIFIED"
    FORWARD = "FORWARD"
    IGNORE = "IGNORE"


class CorsPolicy(IstioModel):
    """`allowOrigin` is Istio's deprecated list of exact origins (`allowOrigins` wins)."""

    allow_origins: list[StringMatch] = Field(default_factory=list)
    allow_origin: list[str] = Field(default_factory=list)
    allow_methods: list[str] = Field(default_factory=list)
    allow_headers: list[str] = Field(default_factory=list)
    expose_headers: list[str] = Field(default_factory=list)
    max_age: Duration | None = None
    allow_credentials: bool | None = None
    unmatched_preflights: Annotated[UnmatchedPreflights, Strict(False)] | None = None


class HTTPDirectResponse(IstioModel):
    """`body` is Istio's HTTPBody oneof as a mapping: `{string: text}` or `{bytes: base64}`
    (validation enforces exactly one of the two keys)."""

    status: UInt32
    body: dict[str, str] | None = None


class HTTPRoute(IstioModel):
    removed_fields = MappingProxyType(
        {
            "websocketUpgrade": "WebSocket upgrades work on every HTTP route without it; "
            "delete the field",
            "appendHeaders": "use headers.request.add",
            "appendRequestHeaders": "use headers.request.add",
            "removeRequestHeaders": "use headers.request.remove",
            "appendResponseHeaders": "use headers.response.add",
            "removeResponseHeaders": "use headers.response.remove",
        }
    )

    name: str | None = None
    match: list[HTTPMatchRequest] = Field(default_factory=list)
    route: list[HTTPRouteDestination] = Field(default_factory=list)
    redirect: HTTPRedirect | None = None
    direct_response: HTTPDirectResponse | None = None
    delegate: dict[str, str] | None = None
    rewrite: HTTPRewrite | None = None
    timeout: Duration | None = None
    retries: HTTPRetry | None = None
    fault: HTTPFaultInjection | None = None
    mirror: Destination | None = None
    mirrors: list[HTTPMirrorPolicy] = Field(default_factory=list)
    mirror_percentage: Percent | None = None
    mirror_percent: UInt32 | None = None
    cors_policy: CorsPolicy | None = None
    headers: Headers | None = None


class L4MatchAttributes(IstioModel):
    not_supported_fields = frozenset({"sourceSubnet"})

    destination_subnets: list[str] = Field(default_factory=list)
    port: UInt32 | None = None
    source_labels: dict[str, str] = Field(default_factory=dict)
    gateways: list[str] = Field(default_factory=list)
    source_namespace: str | None = None


class RouteDestination(IstioModel):
    destination: Destination
    weight: Int32 | None = None


class TCPRoute(IstioModel):
    match: list[L4MatchAttributes] = Field(default_factory=list)
    route: list[RouteDestination] = Field(default_factory=list)


class TLSMatchAttributes(IstioModel):
    sni_hosts: list[str]
    destination_subnets: list[str] = Field(default_factory=list)
    port: UInt32 | None = None
    source_labels: dict[str, str] = Field(default_factory=dict)
    gateways: list[str] = Field(default_factory=list)
    source_namespace: str | None = None


class TLSRoute(IstioModel):
    match: list[TLSMatchAttributes]
    route: list[RouteDestination] = Field(default_factory=list)


class VirtualServiceSpec(IstioModel):
    hosts: list[str] = Field(default_factory=list)
    gateways: list[str] = Field(default_factory=list)
    http: list[HTTPRoute] = Field(default_factory=list)
    tls: list[TLSRoute] = Field(default_factory=list)
    tcp: list[TCPRoute] = Field(default_factory=list)
    export_to: list[str] = Field(default_factory=list)


class VirtualService(Resource):
    spec: VirtualServiceSpec


# --- DestinationRule ---------------------------------------------------------------


class SimpleLB(StrEnum):
    UNSPECIFIED = "UNSPECIFIED"
    LEAST_CONN = "LEAST_CONN"
    RANDOM = "RANDOM"
    PASSTHROUGH = "PASSTHROUGH"
    ROUND_ROBIN = "ROUND_ROBIN"
    LEAST_REQUEST = "LEAST_REQUEST"


class HTTPCookie(IstioModel):
    not_supported_fields = frozenset({"attributes"})

    name: str
    path: str | None = None
    ttl: Duration | None = None


class ConsistentHashLB(IstioModel):
    """Session affinity; exactly one hash key (Istio's oneof hash_key)."""

    not_supported_fields = frozenset({"ringHash", "maglev"})

    http_header_name: str | None = None
    http_cookie: HTTPCookie | None = None
    use_source_ip: bool | None = None
    http_query_parameter_name: str | None = None
    minimum_ring_size: UInt64 | None = None


class LocalityLoadBalancerSetting_Distribute(IstioModel):
    """Traffic from proxies in locality `from` split over the localities of `to` by weight
    (localities `region/zone/subzone`, a trailing `*` matches any)."""

    from_: str = ""
    to: dict[str, UInt32] = Field(default_factory=dict)


class LocalityLoadBalancerSetting_Failover(IstioModel):
    """From proxies in region `from`, fail over to region `to` before any other region."""

    from_: str = ""
    to: str = ""


class LocalityLoadBalancerSetting(IstioModel):
    """Locality-aware load balancing (also MeshConfig's localityLbSetting)."""

    distribute: list[LocalityLoadBalancerSetting_Distribute] = Field(default_factory=list)
    failover: list[LocalityLoadBalancerSetting_Failover] = Field(default_factory=list)
    failover_priority: list[str] = Field(default_factory=list)
    enabled: bool | None = None


class WarmupConfiguration(IstioModel):
    """Envoy's slow start for new endpoints (ROUND_ROBIN and LEAST_REQUEST only)."""

    duration: Duration
    minimum_percent: float | None = None
    aggression: float | None = None


class LoadBalancerSettings(IstioModel):
    """Either `simple` or `consistentHash` (Istio's oneof lb_policy)."""

    not_supported_fields = frozenset({"zoneAwareLbSetting"})

    simple: Annotated[SimpleLB, Strict(False)] | None = None
    consistent_hash: ConsistentHashLB | None = None
    locality_lb_setting: LocalityLoadBalancerSetting | None = None
    warmup_duration_secs: Duration | None = None
    warmup: WarmupConfiguration | None = None


class TCPKeepalive(IstioModel):
    probes: UInt32 | None = None
    time: Duration | None = None
    interval: Duration | None = None


class ConnectionPoolSettings_TCPSettings(IstioModel):
    max_connections: Int32 | None = None
    connect_timeout: Duration | None = None
    tcp_keepalive: TCPKeepalive | None = None
    max_connection_duration: Duration | None = None
    idle_timeout: Duration | None = None


class H2UpgradePolicy(StrEnum):
    DEFAULT = "DEFAULT"
    DO_NOT_UPGRADE = "DO_NOT_UPGRADE"
    UPGRADE = "UPGRADE"


class ConnectionPoolSettings_HTTPSettings(IstioModel):
    not_supported_fields = frozenset({"http2KeepAlive"})

    http1_max_pending_requests: Int32 | None = None
    http2_max_requests: Int32 | None = None
    max_requests_per_connection: Int32 | None = None
    max_retries: Int32 | None = None
    idle_timeout: Duration | None = None
    h2_upgrade_policy: Annotated[H2UpgradePolicy, Strict(False)] | None = None
    use_client_protocol: bool | None = None
    max_concurrent_streams: Int32 | None = None


class ConnectionPoolSettings(IstioModel):
    tcp: ConnectionPoolSettings_TCPSettings | None = None
    http: ConnectionPoolSettings_HTTPSettings | None = None


class OutlierDetection(IstioModel):
    not_supported_fields = frozenset({"outlierDetectionHttpErrorCodes"})

    consecutive_5xx_errors: UInt32 | None = None
    consecutive_gateway_errors: UInt32 | None = None
    consecutive_errors: Int32 | None = None
    split_external_local_origin_errors: bool | None = None
    consecutive_local_origin_failures: UInt32 | None = None
    interval: Duration | None = None
    base_ejection_time: Duration | None = None
    max_ejection_percent: Int32 | None = None
    min_health_percent: Int32 | None = None


class TLSMode(StrEnum):
    DISABLE = "DISABLE"
    SIMPLE = "SIMPLE"
    MUTUAL = "MUTUAL"
    ISTIO_MUTUAL = "ISTIO_MUTUAL"


class ClientTLSSettings(IstioModel):
    """Upstream TLS. Certificate files are read by the sidecar's Envoy (uid 1337), as
    Istio reads files mounted into the proxy; Kubernetes secrets (credentialName) and
    CRLs are not supported yet."""

    not_supported_fields = frozenset({"credentialName", "caCrl"})

    mode: Annotated[TLSMode, Strict(False)] = TLSMode.DISABLE
    client_certificate: str | None = None
    private_key: str | None = None
    ca_certificates: str | None = None
    subject_alt_names: list[str] = Field(default_factory=list)
    sni: str | None = None
    insecure_skip_verify: bool | None = None


class TrafficPolicy_PortTrafficPolicy(IstioModel):
    port: PortSelector | None = None
    load_balancer: LoadBalancerSettings | None = None
    connection_pool: ConnectionPoolSettings | None = None
    outlier_detection: OutlierDetection | None = None
    tls: ClientTLSSettings | None = None


class TrafficPolicy(IstioModel):
    not_supported_fields = frozenset({"tunnel", "proxyProtocol", "retryBudget"})

    load_balancer: LoadBalancerSettings | None = None
    connection_pool: ConnectionPoolSettings | None = None
    outlier_detection: OutlierDetection | None = None
    tls: ClientTLSSettings | None = None
    port_level_settings: list[TrafficPolicy_PortTrafficPolicy] = Field(default_factory=list)


class Subset(IstioModel):
    name: str
    labels: dict[str, str] = Field(default_factory=dict)
    traffic_policy: TrafficPolicy | None = None


class WorkloadSelector(IstioModel):
    """istio.type.v1beta1.WorkloadSelector (DestinationRule and the security kinds)."""

    match_labels: dict[str, str] = Field(default_factory=dict)


class ServiceEntryWorkloadSelector(IstioModel):
    """networking's WorkloadSelector, as ServiceEntry uses it: plain `labels`."""

    labels: dict[str, str] = Field(default_factory=dict)


class DestinationRuleSpec(IstioModel):
    host: str
    traffic_policy: TrafficPolicy | None = None
    subsets: list[Subset] = Field(default_factory=list)
    export_to: list[str] = Field(default_factory=list)
    workload_selector: WorkloadSelector | None = None


class DestinationRule(Resource):
    spec: DestinationRuleSpec


# --- ServiceEntry / WorkloadEntry -------------------------------------------------


class ServicePort(IstioModel):
    number: UInt32
    protocol: str | None = None
    name: str
    target_port: UInt32 | None = None


class WorkloadEntrySpec(IstioModel):
    address: str | None = None
    ports: dict[str, UInt32] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    network: str | None = None
    locality: str | None = None
    weight: UInt32 | None = None
    service_account: str | None = None


class ServiceEntryLocation(StrEnum):
    MESH_EXTERNAL = "MESH_EXTERNAL"
    MESH_INTERNAL = "MESH_INTERNAL"


class ServiceEntryResolution(StrEnum):
    NONE = "NONE"
    STATIC = "STATIC"
    DNS = "DNS"
    DNS_ROUND_ROBIN = "DNS_ROUND_ROBIN"
    DYNAMIC_DNS = "DYNAMIC_DNS"


class ServiceEntrySpec(IstioModel):
    hosts: list[str] = Field(default_factory=list)
    addresses: list[str] = Field(default_factory=list)
    ports: list[ServicePort] = Field(default_factory=list)
    location: Annotated[ServiceEntryLocation, Strict(False)] = ServiceEntryLocation.MESH_EXTERNAL
    resolution: Annotated[ServiceEntryResolution, Strict(False)] = ServiceEntryResolution.NONE
    endpoints: list[WorkloadEntrySpec] = Field(default_factory=list)
    workload_selector: ServiceEntryWorkloadSelector | None = None
    export_to: list[str] = Field(default_factory=list)
    subject_alt_names: list[str] = Field(default_factory=list)


class ServiceEntry(Resource):
    spec: ServiceEntrySpec


class WorkloadEntry(Resource):
    """Registers a workload (an endpoint) outside the runtime; Kubernetes Services and
    ServiceEntry workloadSelectors select it by labels, as in Istio."""

    spec: WorkloadEntrySpec
