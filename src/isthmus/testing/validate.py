"""Ask the real Envoy whether configuration is acceptable (`envoy --mode validate`).

Pilot's output arrives over xDS, but `--mode validate` reads only a bootstrap. So a
bundle of xDS resources is folded into an equivalent static bootstrap first: RDS
references become inline route configurations, EDS clusters become STATIC clusters
holding their ClusterLoadAssignment, SDS references name static secrets. Whatever the
bundle does not contain stays a reference (Envoy accepts an unresolved reference; the
one it crashes on, SDS over ADS, is redirected), and routes and endpoints nobody
references are wrapped so they are still checked. One envoy process per check, ~50 ms.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import config_source_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2 as http_options_pb2
from google.protobuf.message import Message

from isthmus.pilot import resources
from isthmus.pilot.resources import Snapshot
from isthmus.testing.envoy import envoy_path
from isthmus.testing.protojson import message_to_dict, walk

_HCM = hcm_pb2.HttpConnectionManager.DESCRIPTOR.full_name
_SDS_SECRET_CONFIG = secret_pb2.SdsSecretConfig.DESCRIPTOR.full_name
_VALIDATION_NODE = "isthmus-validate"
# Synthetic listeners sit on pipe paths no real listener uses, so they never collide.
_SYNTHETIC_PIPE_DIR = "/isthmus-validate"
_SDS_CLUSTER = "isthmus-validate-sds"
_ZIPKIN_CLUSTER = "zipkin"
_HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
_TIMEOUT_S = 30.0
_LOG_PREFIX = re.compile(r"^(\[[^\]]*\])+ \[[^\]]*\] ")

_M = TypeVar("_M", bound=Message)


class EnvoyRejected(Exception):
    """Envoy refused the configuration; `message` is Envoy's own reason."""

    def __init__(self, message: str, output: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.output = output


class EnvoyCrashed(EnvoyRejected):
    """Envoy died on a signal while reading the configuration (an Envoy bug)."""


def validate_resources(
    listeners: Iterable[listener_pb2.Listener] = (),
    clusters: Iterable[cluster_pb2.Cluster] = (),
    routes: Iterable[route_pb2.RouteConfiguration] = (),
    endpoints: Iterable[endpoint_pb2.ClusterLoadAssignment] = (),
    secrets: Iterable[secret_pb2.Secret] = (),
    *,
    check_route_clusters: bool = False,
) -> None:
    """Raise `EnvoyRejected` unless Envoy accepts this bundle of xDS resources.

    `check_route_clusters` makes every route that names a cluster missing from the
    bundle an error; by default routes are checked as Envoy checks them over RDS,
    where a missing cluster is allowed.
    """
    bootstrap = validation_bootstrap(
        listeners=listeners,
        clusters=clusters,
        routes=routes,
        endpoints=endpoints,
        secrets=secrets,
        check_route_clusters=check_route_clusters,
    )
    validate_bootstrap(bootstrap)


def validate_snapshot(snapshot: Snapshot, *, check_route_clusters: bool = False) -> None:
    """Raise `EnvoyRejected` unless Envoy accepts everything one proxy's snapshot holds."""

    def of_type(type_url: str, message_type: type[_M]) -> list[_M]:
        unpacked = []
        for resource in snapshot.of_type(type_url).values():
            message = message_type()
            if not resource.any.Unpack(message):
                raise TypeError(f"{resource.name} is not a {type_url}")
            unpacked.append(message)
        return unpacked

    validate_resources(
        listeners=of_type(resources.LISTENER, listener_pb2.Listener),
        clusters=of_type(resources.CLUSTER, cluster_pb2.Cluster),
        routes=of_type(resources.ROUTE, route_pb2.RouteConfiguration),
        endpoints=of_type(resources.ENDPOINT, endpoint_pb2.ClusterLoadAssignment),
        secrets=of_type(resources.SECRET, secret_pb2.Secret),
        check_route_clusters=check_route_clusters,
    )


def validate_bootstrap(bootstrap: Mapping[str, Any] | bootstrap_pb2.Bootstrap) -> None:
    """Raise `EnvoyRejected` unless Envoy accepts `bootstrap` (JSON dict or message)."""
    if isinstance(bootstrap, bootstrap_pb2.Bootstrap):
        document: Mapping[str, Any] = message_to_dict(bootstrap)
    else:
        document = bootstrap
    with tempfile.TemporaryDirectory(prefix="isthmus-validate-") as workdir:
        path = Path(workdir) / "bootstrap.json"
        path.write_text(_json(document))
        _run_envoy_validate(path)


def validation_bootstrap(
    listeners: Iterable[listener_pb2.Listener] = (),
    clusters: Iterable[cluster_pb2.Cluster] = (),
    routes: Iterable[route_pb2.RouteConfiguration] = (),
    endpoints: Iterable[endpoint_pb2.ClusterLoadAssignment] = (),
    secrets: Iterable[secret_pb2.Secret] = (),
    *,
    check_route_clusters: bool = False,
) -> bootstrap_pb2.Bootstrap:
    """Fold xDS resources into the static bootstrap `validate_resources` checks.

    Exposed so a failing validation can be reproduced by hand with the same file.
    """
    secrets = list(secrets)
    bundle = _Bundle(
        routes={route.name: route for route in routes},
        endpoints={assignment.cluster_name: assignment for assignment in endpoints},
        secret_names={secret.name for secret in secrets},
        check_route_clusters=check_route_clusters,
    )
    bootstrap = bootstrap_pb2.Bootstrap()
    bootstrap.node.id = _VALIDATION_NODE
    bootstrap.node.cluster = _VALIDATION_NODE
    address = bootstrap.admin.address.socket_address
    address.address = "127.0.0.1"
    address.port_value = 0
    static = bootstrap.static_resources
    for listener in listeners:
        static.listeners.append(bundle.resolve_listener(listener))
    for cluster in clusters:
        static.clusters.append(bundle.resolve_cluster(cluster))
    for secret in secrets:
        resolved = _copy(secret)
        walk(resolved, bundle.resolve_secret_reference)
        static.secrets.append(resolved)
    # Resources nobody referenced are still checked, each in a wrapper of its own.
    for index, route in enumerate(bundle.unused_routes()):
        static.listeners.append(bundle.route_listener(index, route))
    for assignment in bundle.unused_endpoints():
        static.clusters.append(
            _static_cluster(f"isthmus-validate-eds|{assignment.cluster_name}", assignment)
        )
    if bundle.needs_sds_cluster:
        static.clusters.append(_sds_cluster())
    if not any(c.name == _ZIPKIN_CLUSTER for c in static.clusters):
        # The sidecar bootstrap's span relay, which pilot's Zipkin tracers name.
        static.clusters.append(_zipkin_cluster())
    return bootstrap


@dataclass
class _Bundle:
    """The resources being folded together, and which of them were referenced."""

    routes: dict[str, route_pb2.RouteConfiguration]
    endpoints: dict[str, endpoint_pb2.ClusterLoadAssignment]
    secret_names: set[str]
    check_route_clusters: bool
    used_routes: set[str] = field(default_factory=set)
    used_endpoints: set[str] = field(default_factory=set)
    needs_sds_cluster: bool = False

    def resolve_listener(self, listener: listener_pb2.Listener) -> listener_pb2.Listener:
        resolved = _copy(listener)
        walk(resolved, self._resolve_listener_part)
        return resolved

    def resolve_cluster(self, cluster: cluster_pb2.Cluster) -> cluster_pb2.Cluster:
        resolved = _copy(cluster)
        if resolved.WhichOneof("cluster_discovery_type") == "type" and (
            resolved.type == cluster_pb2.Cluster.EDS
        ):
            service_name = resolved.eds_cluster_config.service_name or resolved.name
            assignment = endpoint_pb2.ClusterLoadAssignment(cluster_name=resolved.name)
            if service_name in self.endpoints:
                self.used_endpoints.add(service_name)
                assignment.CopyFrom(self.endpoints[service_name])
                assignment.cluster_name = resolved.name
            resolved.ClearField("eds_cluster_config")
            resolved.type = cluster_pb2.Cluster.STATIC
            resolved.load_assignment.CopyFrom(assignment)
        walk(resolved, self.resolve_secret_reference)
        return resolved

    def resolve_secret_reference(self, message: Message) -> None:
        """Point an SDS reference at the static secret of that name, if bundled.

        An unbundled secret fetched over ADS from a static resource crashes Envoy
        (envoyproxy/envoy#15517, also in validate mode), so such a reference is
        pointed at a gRPC SDS cluster of its own instead; validation never connects.
        """
        if message.DESCRIPTOR.full_name != _SDS_SECRET_CONFIG:
            return
        assert isinstance(message, secret_pb2.SdsSecretConfig)
        if message.name in self.secret_names:
            message.ClearField("sds_config")
        elif message.sds_config.WhichOneof("config_source_specifier") == "ads":
            self.needs_sds_cluster = True
            source = message.sds_config.api_config_source
            source.api_type = config_source_pb2.ApiConfigSource.GRPC
            source.transport_api_version = config_source_pb2.V3
            source.grpc_services.add().envoy_grpc.cluster_name = _SDS_CLUSTER

    def unused_routes(self) -> list[route_pb2.RouteConfiguration]:
        return [route for name, route in self.routes.items() if name not in self.used_routes]

    def unused_endpoints(self) -> list[endpoint_pb2.ClusterLoadAssignment]:
        return [
            assignment
            for name, assignment in self.endpoints.items()
            if name not in self.used_endpoints
        ]

    def route_listener(
        self, index: int, route: route_pb2.RouteConfiguration
    ) -> listener_pb2.Listener:
        """A listener whose only job is to carry `route` into the check."""
        manager = hcm_pb2.HttpConnectionManager(stat_prefix=f"isthmus_validate_{index}")
        manager.route_config.CopyFrom(self._inline_route(route))
        router = manager.http_filters.add(name="envoy.filters.http.router")
        router.typed_config.Pack(router_pb2.Router())
        listener = listener_pb2.Listener(name=f"isthmus-validate-route|{route.name}")
        listener.address.pipe.path = f"{_SYNTHETIC_PIPE_DIR}/route-{index}"
        network_filter = listener.filter_chains.add().filters.add(
            name="envoy.filters.network.http_connection_manager"
        )
        network_filter.typed_config.Pack(manager)
        walk(listener, self.resolve_secret_reference)
        return listener

    def _resolve_listener_part(self, message: Message) -> None:
        self.resolve_secret_reference(message)
        if message.DESCRIPTOR.full_name != _HCM:
            return
        assert isinstance(message, hcm_pb2.HttpConnectionManager)
        if message.WhichOneof("route_specifier") != "rds":
            return
        route = self.routes.get(message.rds.route_config_name)
        if route is None:
            return
        self.used_routes.add(route.name)
        message.route_config.CopyFrom(self._inline_route(route))

    def _inline_route(self, route: route_pb2.RouteConfiguration) -> route_pb2.RouteConfiguration:
        inline = _copy(route)
        # Over RDS Envoy does not insist that routed clusters exist; inline it would.
        if not inline.HasField("validate_clusters"):
            inline.validate_clusters.value = self.check_route_clusters
        return inline


def _static_cluster(
    name: str, assignment: endpoint_pb2.ClusterLoadAssignment
) -> cluster_pb2.Cluster:
    cluster = cluster_pb2.Cluster(name=name, type=cluster_pb2.Cluster.STATIC)
    cluster.connect_timeout.FromMilliseconds(1000)
    cluster.load_assignment.CopyFrom(assignment)
    cluster.load_assignment.cluster_name = name
    return cluster


def _sds_cluster() -> cluster_pb2.Cluster:
    assignment = endpoint_pb2.ClusterLoadAssignment()
    endpoint = assignment.endpoints.add().lb_endpoints.add().endpoint
    endpoint.address.pipe.path = f"{_SYNTHETIC_PIPE_DIR}/sds"
    cluster = _static_cluster(_SDS_CLUSTER, assignment)
    options = http_options_pb2.HttpProtocolOptions()
    options.explicit_http_config.http2_protocol_options.SetInParent()
    cluster.typed_extension_protocol_options[_HTTP_PROTOCOL_OPTIONS].Pack(options)
    return cluster


def _zipkin_cluster() -> cluster_pb2.Cluster:
    assignment = endpoint_pb2.ClusterLoadAssignment()
    endpoint = assignment.endpoints.add().lb_endpoints.add().endpoint
    endpoint.address.pipe.path = f"{_SYNTHETIC_PIPE_DIR}/zipkin"
    return _static_cluster(_ZIPKIN_CLUSTER, assignment)


def _copy(message: _M) -> _M:
    duplicate: _M = type(message)()
    duplicate.CopyFrom(message)
    return duplicate


def _json(document: Mapping[str, Any]) -> str:
    return json.dumps(document, indent=1, sort_keys=True)


def _run_envoy_validate(path: Path) -> None:
    command = [
        str(envoy_path()),
        "--mode",
        "validate",
        "-c",
        str(path),
        "--use-dynamic-base-id",
        "--log-level",
        "warning",
    ]
    completed = subprocess.run(
        command, capture_output=True, text=True, timeout=_TIMEOUT_S, check=False
    )
    if completed.returncode == 0:
        return
    output = (completed.stderr + completed.stdout).strip()
    if completed.returncode < 0:
        crash = signal.Signals(-completed.returncode).name
        raise EnvoyCrashed(f"envoy crashed with {crash} while validating", output)
    raise EnvoyRejected(_reason(output, path), output)


def _reason(output: str, path: Path) -> str:
    """Envoy's own explanation: the last critical message, without log prefix or file."""
    lines = output.splitlines()
    critical = [
        index
        for index, line in enumerate(lines)
        if "[critical]" in line and "[backtrace]" not in line
    ]
    if not critical:
        return output or "envoy --mode validate failed without output"
    first = critical[-1]
    message = [_LOG_PREFIX.sub("", lines[first])]
    # A message may continue over lines that carry no log prefix of their own.
    message += [line for line in lines[first + 1 :] if not _LOG_PREFIX.match(line)]
    text = "\n".join(message).strip()
    return text.removeprefix(f"error initializing configuration '{path}': ")
