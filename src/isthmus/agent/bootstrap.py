"""The sidecar's Envoy bootstrap: who it is, where its control plane is, and nothing else.

Everything a sidecar routes arrives over one ADS stream (state of the world) from the
unix socket the agent names; the bootstrap only adds what must exist before the
control plane answers: the admin API on loopback, the `xds-grpc` cluster, and, as
Istio's 15090, a Prometheus listener that forwards /stats/prometheus to the admin API.
With mutual TLS on, the `sds-grpc` cluster to the agent's SDS socket too, and the node
metadata `SDS: "true"` that tells pilot this proxy can be given TLS configuration.
With tracing on, the `zipkin` cluster pilot's Zipkin tracer reports to (HTTP/1.1 to the
agent's ZIPKIN socket, which the agent splices to isthmusd's collector) and the node
metadata `ZIPKIN: "true"`: Envoy refuses a tracer whose cluster is missing, so pilot
may configure one only for proxies that say they have it.
Pure: builds a JSON-ready dict, touches no file.
"""

from __future__ import annotations

from typing import Any

from isthmus.agent.identity import ProxyIdentity
from isthmus.api.limits import MAX_PROGRAM_SIZE

XDS_CLUSTER = "xds-grpc"
SDS_CLUSTER = "sds-grpc"
SDS_METADATA = "SDS"
ZIPKIN_CLUSTER = "zipkin"
ZIPKIN_METADATA = "ZIPKIN"
STATS_CLUSTER = "prometheus_stats"
STATS_LISTENER = "prometheus_stats"
STATS_PATH = "/stats/prometheus"
LOOPBACK = "127.0.0.1"
ADMIN_PORT = 15000
STATS_PORT = 15090

_HCM = (
    "type.googleapis.com/"
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
)
_ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
_HTTP_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
# Reconnect to the control plane quickly: it is local, and a restarted isthmusd should
# see its sidecars again within seconds (Envoy's own default backs off to 30 s).
_XDS_RETRY = {"retry_back_off": {"base_interval": "0.5s", "max_interval": "5s"}}


def sidecar_bootstrap(
    identity: ProxyIdentity,
    xds_socket: str,
    admin_port: int = ADMIN_PORT,
    stats_port: int = STATS_PORT,
    *,
    stats_address: str = "0.0.0.0",
    sds_socket: str | None = None,
    zipkin_socket: str | None = None,
) -> dict[str, Any]:
    """Bootstrap of a sidecar configured only over ADS on the unix socket `xds_socket`.

    The initial fetch never times out (as in Istio): Envoy stays un-ready until the
    control plane has sent clusters and listeners, so readiness means "configured".
    `sds_socket` (mutual TLS on) is where the agent serves the workload certificate;
    `zipkin_socket` (tracing on) is where the agent takes Envoy's spans.
    """
    ads_source = {"ads": {}, "initial_fetch_timeout": "0s", "resource_api_version": "V3"}
    metadata = identity.node_metadata()
    clusters = [_grpc_cluster(XDS_CLUSTER, xds_socket), _stats_cluster(admin_port)]
    if sds_socket is not None:
        metadata[SDS_METADATA] = "true"
        clusters.append(sds_cluster(sds_socket))
    if zipkin_socket is not None:
        metadata[ZIPKIN_METADATA] = "true"
        clusters.append(zipkin_cluster(zipkin_socket))
    return {
        "node": {
            "id": identity.node_id,
            "cluster": identity.service_cluster,
            "metadata": metadata,
        },
        "admin": {"address": _socket_address(LOOPBACK, admin_port)},
        "dynamic_resources": {
            "ads_config": {
                "api_type": "GRPC",
                "transport_api_version": "V3",
                "set_node_on_first_message_only": True,
                "grpc_services": [
                    {"envoy_grpc": {"cluster_name": XDS_CLUSTER, "retry_policy": _XDS_RETRY}}
                ],
            },
            "cds_config": ads_source,
            "lds_config": ads_source,
        },
        "static_resources": {
            "listeners": [_stats_listener(stats_address, stats_port)],
            "clusters": clusters,
        },
        "layered_runtime": {
            "layers": [
                # As Istio's bootstrap: RE2 programs up to the size api validation allows.
                {
                    "name": "global config",
                    # As Istio's bootstrap: a URL fragment is stripped before routing and
                    # authorization (CVE-2021-39156), not refused with 400.
                    "static_layer": {
                        "re2.max_program_size.error_level": MAX_PROGRAM_SIZE,
                        "envoy.reloadable_features.http_reject_path_with_fragment": False,
                    },
                },
                {"name": "admin", "admin_layer": {}},
            ]
        },
    }


def _socket_address(address: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": address, "port_value": port}}


def _assignment(cluster: str, address: dict[str, Any]) -> dict[str, Any]:
    return {
        "cluster_name": cluster,
        "endpoints": [{"lb_endpoints": [{"endpoint": {"address": address}}]}],
    }


def sds_cluster(sds_socket: str) -> dict[str, Any]:
    """The `sds-grpc` cluster pilot's SDS secret configs name: the agent's SDS socket."""
    return _grpc_cluster(SDS_CLUSTER, sds_socket)


def zipkin_cluster(zipkin_socket: str) -> dict[str, Any]:
    """The `zipkin` cluster of one unix socket, plain HTTP/1.1 (Envoy's HTTP_JSON reporter)."""
    return {
        "name": ZIPKIN_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": _assignment(ZIPKIN_CLUSTER, {"pipe": {"path": zipkin_socket}}),
    }


def _grpc_cluster(name: str, socket_path: str) -> dict[str, Any]:
    """An HTTP/2 (gRPC) cluster of one unix socket."""
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "typed_extension_protocol_options": {
            _HTTP_OPTIONS: {
                "@type": f"type.googleapis.com/{_HTTP_OPTIONS}",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        },
        "load_assignment": _assignment(name, {"pipe": {"path": socket_path}}),
    }


def _stats_cluster(admin_port: int) -> dict[str, Any]:
    return {
        "name": STATS_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "0.25s",
        "load_assignment": _assignment(STATS_CLUSTER, _socket_address(LOOPBACK, admin_port)),
    }


def _stats_listener(address: str, port: int) -> dict[str, Any]:
    """Only /stats/prometheus is forwarded; the rest of the admin API stays on loopback."""
    manager = {
        "@type": _HCM,
        "stat_prefix": "stats",
        "route_config": {
            "virtual_hosts": [
                {
                    "name": "backend",
                    "domains": ["*"],
                    "routes": [
                        {"match": {"prefix": STATS_PATH}, "route": {"cluster": STATS_CLUSTER}}
                    ],
                }
            ]
        },
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": _ROUTER}}],
    }
    return {
        "name": STATS_LISTENER,
        "address": _socket_address(address, port),
        "filter_chains": [
            {
                "filters": [
                    {
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": manager,
                    }
                ]
            }
        ],
    }
