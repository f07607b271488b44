"""Incremental translation equals translation from scratch.

A ConfigGenerator keeps views across mesh versions while the fields they read are
unchanged (pilot.views). Random sequences of changes (Services, endpoints,
DestinationRules, VirtualServices, ServiceEntries, PeerAuthentications, Telemetry,
Sidecars) are
applied one at a time; after each, every proxy's snapshot from the long-lived generator
must be byte-equal to one from a fresh generator. Endpoints are in two zones and two
client proxies differ only in their zone, so that locality load balancing (which ranks
endpoints per proxy place) can not hand one of them the other's endpoints.
"""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from isthmus.api.core import Service
from isthmus.api.networking import DestinationRule, ServiceEntry, VirtualService, WorkloadEntry
from isthmus.api.security import PeerAuthentication
from isthmus.api.sidecar import Sidecar
from isthmus.api.telemetry import Telemetry
from isthmus.model.build import ConfigObject, build_snapshot
from isthmus.model.snapshot import MeshSnapshot
from isthmus.model.topology import Locality
from isthmus.model.types import Proxy
from isthmus.pilot.profile import ConfigGenerator, GeneratorError
from isthmus.pilot.resources import PUSH_ORDER, Snapshot

NAMESPACES = ("alpha", "beta")
APPS = ("a", "b", "c")
KINDS = {
    "Service": Service,
    "WorkloadEntry": WorkloadEntry,
    "DestinationRule": DestinationRule,
    "VirtualService": VirtualService,
    "ServiceEntry": ServiceEntry,
    "PeerAuthentication": PeerAuthentication,
    "Telemetry": Telemetry,
    "Sidecar": Sidecar,
}
PROXIES = (
    Proxy(
        id="sidecar~10.44.0.2~a-1.alpha~alpha.svc.cluster.local",
        namespace="alpha",
        ip="10.44.0.2",
        labels=(("app", "a"), ("version", "v1")),
        inbound_ports=(8080,),
        locality=Locality("r1", "zone-a"),
    ),
    Proxy(
        id="sidecar~10.44.0.3~b-1.beta~beta.svc.cluster.local",
        namespace="beta",
        ip="10.44.0.3",
        labels=(("app", "b"), ("version", "v2")),
        inbound_ports=(8080, 9090),
    ),
    Proxy(
        id="sidecar~10.44.0.4~client.alpha~alpha.svc.cluster.local",
        namespace="alpha",
        ip="10.44.0.4",
        labels=(("app", "client"),),
        locality=Locality("r1", "zone-b"),
    ),
    Proxy(
        id="sidecar~10.44.0.5~client-2.alpha~alpha.svc.cluster.local",
        namespace="alpha",
        ip="10.44.0.5",
        labels=(("app", "client"),),
        locality=Locality("r1", "zone-a"),
    ),
)


def _service(app: str, ns: str, variant: int) -> str:
    ports = {
        1: "[{name: http, port: 8080}]",
        2: "[{name: http, port: 8080}, {name: grpc, port: 9090}]",
        3: "[{name: tcp, port: 8080}]",
    }[variant]
    # A cluster IP gives the TCP variant its outbound listener (and tcp_proxy).
    address = f"10.96.{NAMESPACES.index(ns)}.{APPS.index(app) + 1}"
    return f"""
apiVersion: v1
kind: Service
metadata: {{name: {app}, namespace: {ns}}}
spec: {{selector: {{app: {app}}}, clusterIP: {address}, ports: {ports}}}
"""


def _workload_entry(app: str, ns: str, variant: int) -> str:
    version = "v1" if variant % 2 else "v2"
    account = "sa-one" if variant < 3 else "sa-two"
    sidecar = "'security.istio.io/tlsMode': istio," if variant != 2 else ""
    return f"""
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: {app}-we, namespace: {ns}}}
spec:
  address: 10.44.1.{variant + (10 if ns == "beta" else 0)}
  locality: r1/zone-{"a" if variant == 1 else "b"}
  serviceAccount: {account}
  labels: {{{sidecar} app: {app}, version: {version}}}
"""


def _destination_rule(app: str, ns: str, variant: int) -> str:
    policy = {
        1: "{loadBalancer: {warmup: {duration: 10s}, localityLbSetting: {distribute:"
        " [{from: r1/zone-a, to: {r1/zone-a: 60, r1/zone-b: 40}}]}}}",
        2: "{outlierDetection: {consecutive5xxErrors: 3},"
        " loadBalancer: {consistentHash: {useSourceIp: true}},"
        " connectionPool: {tcp: {idleTimeout: 30s}}}",
        3: "{connectionPool: {http: {http1MaxPendingRequests: 5},"
        " tcp: {maxConnectionDuration: 1h}}, tls: {mode: ISTIO_MUTUAL}}",
    }[variant]
    return f"""
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {app}, namespace: {ns}}}
spec:
  host: {app}
  trafficPolicy: {policy}
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - name: v2
    labels: {{version: v2}}
    trafficPolicy:
      loadBalancer: {{localityLbSetting: {{failoverPriority: [topology.kubernetes.io/zone]}}}}
"""


def _external_rule(app: str, ns: str, variant: int) -> str:
    """Locality load balancing of the ServiceEntries' endpoints (two zones; inline in DNS
    clusters). A wildcard host, so that it meets a ServiceEntry often."""
    policy = {
        1: "{outlierDetection: {consecutive5xxErrors: 3}}",
        2: "{outlierDetection: {consecutive5xxErrors: 3}, loadBalancer: {localityLbSetting:"
        " {failover: [{from: r1, to: r2}]}}}",
        3: "{loadBalancer: {localityLbSetting: {enabled: false}}}",
    }[variant]
    return f"""
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: ext-{app}, namespace: {ns}}}
spec: {{host: "*.example.com", trafficPolicy: {policy}}}
"""


def _virtual_service(app: str, ns: str, variant: int) -> str:
    routes = {
        1: f"[{{route: [{{destination: {{host: {app}}}}}]}}]",
        2: f"[{{route: [{{destination: {{host: {app}, subset: v1}}, weight: 90}},"
        f" {{destination: {{host: {app}, subset: v2}}, weight: 10}}], timeout: 2s}}]",
        3: f"[{{match: [{{headers: {{x-canary: {{exact: 'yes'}}}}}}],"
        f" route: [{{destination: {{host: {app}, subset: v2}}}}],"
        f" retries: {{attempts: 2, retryOn: 5xx}}}},"
        f" {{route: [{{destination: {{host: {app}, subset: v1}}}}]}}]",
    }[variant]
    # Variant 2 routes TCP too (the variant-3 Service's port): that tcp_proxy takes the
    # DestinationRule's settings for subset v1.
    tcp = (
        f", tcp: [{{route: [{{destination: {{host: {app}, subset: v1}}}}]}}]"
        if variant == 2
        else ""
    )
    return f"""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {app}, namespace: {ns}}}
spec: {{hosts: [{app}], http: {routes}{tcp}}}
"""


def _service_entry(app: str, ns: str, variant: int) -> str:
    """Variant 2 has two IP addresses, variant 3 a CIDR block too and a TCP port that
    meets the Services' 8080 (HTTP, or TCP with a VirtualService `tcp` rule)."""
    resolution = "DNS" if variant < 3 else "STATIC"
    where = f"{NAMESPACES.index(ns)}.{APPS.index(app) + 1}"
    addresses = {
        1: "[]",
        2: f"[192.168.{where}, 192.168.{where}9]",
        3: f"[192.168.{where}, 10.{where}.0/24]",
    }[variant]
    tcp = ", {number: 8080, name: tcp, protocol: TCP}" if variant == 3 else ""
    return f"""
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: ext-{app}, namespace: {ns}}}
spec:
  hosts: [{app}.example.com]
  addresses: {addresses}
  location: MESH_EXTERNAL
  resolution: {resolution}
  ports: [{{number: 443, name: tls, protocol: TLS}}{tcp}]
  endpoints:
  - {{address: 10.44.2.{variant}, locality: r1/zone-a}}
  - {{address: 10.44.3.{variant}, locality: r1/zone-b}}
"""


def _peer_authentication(app: str, ns: str, variant: int) -> str:
    mode = ("STRICT", "PERMISSIVE", "DISABLE")[variant - 1]
    return f"""
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {{name: default, namespace: {ns}}}
spec: {{mtls: {{mode: {mode}}}}}
"""


def _telemetry(app: str, ns: str, variant: int) -> str:
    spec = {
        1: "{accessLogging: [{disabled: true}]}",
        2: "{tracing: [{randomSamplingPercentage: 50}]}",
        3: f"{{selector: {{matchLabels: {{app: {app}}}}},"
        " metrics: [{providers: [{name: prometheus}],"
        " overrides: [{match: {metric: ALL_METRICS}, disabled: true}]}]}",
    }[variant]
    return f"""
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {{name: t-{app}, namespace: {ns}}}
spec: {spec}
"""


def _sidecar(app: str, ns: str, variant: int) -> str:
    """Istio docs' namespace default; a REGISTRY_ONLY one whose port-specific listeners
    make 8080 TCP and 9090 sniffed; one for workload `app` with a port-specific HTTP
    listener. Several per namespace: the oldest applies."""
    spec = {
        1: "{egress: [{hosts: ['./*', 'istio-system/*']}]}",
        2: "{egress: [{port: {number: 8080, protocol: TCP}, hosts: ['./*']},"
        " {port: {number: 9090}, hosts: ['*/*']}, {hosts: ['./*']}],"
        " outboundTrafficPolicy: {mode: REGISTRY_ONLY}}",
        3: f"{{workloadSelector: {{labels: {{app: {app}}}}},"
        " egress: [{port: {number: 8080, protocol: HTTP}, hosts: ['beta/*']},"
        " {hosts: ['~/*']}], outboundTrafficPolicy: {mode: REGISTRY_ONLY}}",
    }[variant]
    return f"""
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: sc-{app}, namespace: {ns}}}
spec: {spec}
"""


DOCUMENTS = {
    "Service": _service,
    "WorkloadEntry": _workload_entry,
    "DestinationRule": _destination_rule,
    "ExternalRule": _external_rule,
    "VirtualService": _virtual_service,
    "ServiceEntry": _service_entry,
    "PeerAuthentication": _peer_authentication,
    "Telemetry": _telemetry,
    "Sidecar": _sidecar,
}

# (kind, app, namespace, variant): variant 0 deletes the object, 1-3 create or replace it.
Change = tuple[str, str, str, int]
CHANGES = st.tuples(
    st.sampled_from(sorted(DOCUMENTS)),
    st.sampled_from(APPS),
    st.sampled_from(NAMESPACES),
    st.integers(min_value=0, max_value=3),
)


def _mesh(objects: dict[tuple[str, str, str], tuple[int, dict[str, Any]]]) -> MeshSnapshot:
    configs = [
        ConfigObject(KINDS[document["kind"]].model_validate(document), created_revision=revision)
        for revision, document in sorted(objects.values(), key=lambda item: item[0])
    ]
    return build_snapshot(configs)


def _translate(generator: ConfigGenerator, mesh: MeshSnapshot, proxy: Proxy) -> object:
    """The snapshot's bytes by type and name, or the error translation raised."""
    try:
        snapshot: Snapshot = generator.snapshot(mesh, proxy)
    except GeneratorError as exc:
        return f"error: {exc}"
    return {
        type_url: {
            name: (res.version, res.any.SerializeToString(deterministic=True))
            for name, res in snapshot.of_type(type_url).items()
        }
        for type_url in PUSH_ORDER
    }


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(CHANGES, min_size=1, max_size=14))
def test_incremental_snapshots_equal_snapshots_from_scratch(changes: list[Change]) -> None:
    generator = ConfigGenerator()
    objects: dict[tuple[str, str, str], tuple[int, dict[str, Any]]] = {}
    for revision, (kind, app, ns, variant) in enumerate(changes, start=1):
        key = (kind, app, ns)
        if variant == 0:
            objects.pop(key, None)
        else:
            document = yaml.safe_load(DOCUMENTS[kind](app, ns, variant))
            created = objects[key][0] if key in objects else revision
            objects[key] = (created, document)
        mesh = _mesh(objects)
        for proxy in PROXIES:
            incremental = _translate(generator, mesh, proxy)
            scratch = _translate(ConfigGenerator(), mesh, proxy)
            assert incremental == scratch, (proxy.id, changes[:revision])
