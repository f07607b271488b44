"""The HttpConnectionManager network filter for outbound and inbound HTTP chains.

Filter chain order (as Istio's sidecar): telemetry (peer metadata, gRPC message counts)
-> authentication and authorization (inbound) -> fault -> CORS (outbound) -> router. Each
extra filter costs per request, so nothing else is added unless a feature needs it: Istio
puts the CORS filter in every connection manager, but only outbound (RDS) routes can
carry a VirtualService's corsPolicy, so inbound ones go without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.core.v3 import config_source_pb2
from envoy.config.listener.v3 import listener_components_pb2 as lc
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.http.cors.v3 import cors_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)
from google.protobuf import wrappers_pb2

from isthmus.pilot.envoy.cors import CORS_FILTER
from isthmus.pilot.envoy.fault import FAULT_FILTER
from isthmus.pilot.envoy.path_normalization import apply_path_normalization
from isthmus.pilot.envoy.typed import pack

HCM_FILTER = "envoy.filters.network.http_connection_manager"


@dataclass(frozen=True)
class HcmTelemetry:
    """What a connection manager records (pilot.telemetry builds it): access logs (stats
    and file), filters that gather what they log (before authorization and faults), and
    the tracing settings."""

    access_logs: Sequence[accesslog_pb2.AccessLog] = ()
    filters: Sequence[hcm.HttpFilter] = ()
    tracing: hcm.HttpConnectionManager.Tracing | None = None


NO_TELEMETRY = HcmTelemetry()


def ads_config_source() -> config_source_pb2.ConfigSource:
    return config_source_pb2.ConfigSource(
        ads=config_source_pb2.AggregatedConfigSource(),
        resource_api_version=config_source_pb2.V3,
    )


def _http_filters(first: Sequence[hcm.HttpFilter], cors: bool) -> list[hcm.HttpFilter]:
    """The per-route policies' filters (empty: each route brings its own config)."""
    policies = [hcm.HttpFilter(name=FAULT_FILTER, typed_config=pack(fault_pb2.HTTPFault()))]
    if cors:
        policies.append(hcm.HttpFilter(name=CORS_FILTER, typed_config=pack(cors_pb2.Cors())))
    return [
        *first,
        *policies,
        hcm.HttpFilter(name="envoy.filters.http.router", typed_config=pack(router_pb2.Router())),
    ]


def _base(
    stat_prefix: str,
    first_filters: Sequence[hcm.HttpFilter] = (),
    telemetry: HcmTelemetry = NO_TELEMETRY,
    *,
    cors: bool = False,
) -> hcm.HttpConnectionManager:
    manager = hcm.HttpConnectionManager(
        stat_prefix=stat_prefix,
        codec_type=hcm.HttpConnectionManager.AUTO,
        http_filters=_http_filters([*telemetry.filters, *first_filters], cors),
        access_log=list(telemetry.access_logs),
        use_remote_address=wrappers_pb2.BoolValue(value=False),
        normalize_path=wrappers_pb2.BoolValue(value=True),
        path_with_escaped_slashes_action=hcm.HttpConnectionManager.KEEP_UNCHANGED,
        upgrade_configs=[hcm.HttpConnectionManager.UpgradeConfig(upgrade_type="websocket")],
        # Keep the app's x-request-id so traces and logs correlate across hops.
        preserve_external_request_id=True,
    )
    if telemetry.tracing is not None:
        manager.tracing.CopyFrom(telemetry.tracing)
    return manager


def rds_connection_manager(
    stat_prefix: str, route_config_name: str, telemetry: HcmTelemetry = NO_TELEMETRY
) -> lc.Filter:
    manager = _base(stat_prefix, telemetry=telemetry, cors=True)
    manager.rds.config_source.CopyFrom(ads_config_source())
    manager.rds.route_config_name = route_config_name
    return lc.Filter(name=HCM_FILTER, typed_config=pack(manager))


def inline_connection_manager(
    stat_prefix: str,
    route_config: route_pb2.RouteConfiguration,
    first_filters: Sequence[hcm.HttpFilter] = (),
    peer_certificate: bool = False,
    path_normalization: str = "BASE",
    access_logs: Sequence[accesslog_pb2.AccessLog] = (),
    telemetry: HcmTelemetry = NO_TELEMETRY,
) -> lc.Filter:
    """An inbound HCM. `first_filters` (authorization) run before the fault filter and the
    router. With `peer_certificate` (an mTLS chain) the verified peer identity is passed
    to the app in x-forwarded-client-cert, as Istio's inbound does; otherwise any such
    header a client sent is removed, so an app never sees one it could mistake for
    proof."""
    manager = _base(stat_prefix, first_filters, telemetry)
    manager.route_config.CopyFrom(route_config)
    manager.access_log.extend(access_logs)
    apply_path_normalization(manager, path_normalization)
    if peer_certificate:
        manager.forward_client_cert_details = hcm.HttpConnectionManager.APPEND_FORWARD
        details = manager.set_current_client_cert_details
        details.subject.value = True
        details.uri = True
        details.dns = True
    else:
        manager.forward_client_cert_details = hcm.HttpConnectionManager.SANITIZE
    return lc.Filter(name=HCM_FILTER, typed_config=pack(manager))
