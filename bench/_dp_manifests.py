"""What the bench applies: pods without sidecars for the direct and bare-Envoy scenarios,
the seed's inventory-service with sidecars and the seed's own DestinationRule and
VirtualService (verbatim: the bench's server *is* inventory-service in `production`), and
three services with sidecars but without any DestinationRule or VirtualService, which
separate what the mesh costs from what the seed's policies cost, one per mTLS mode of
their server workload: nomtls-service (a PeerAuthentication DISABLE: clients send it
plaintext), plain-service (no PeerAuthentication: PERMISSIVE, the default) and
strict-service (a PeerAuthentication STRICT).

For the telemetry scenarios, a client workload and a server workload of their own per
telemetry setting (Telemetry applies at the client per client workload and at the server
per server workload): tel-on (no Telemetry: the mesh's defaults, metrics, access logs and a
Zipkin tracer at 1%) and tel-off (a Telemetry selecting both by label turns all three
off), both PERMISSIVE like plain-service; with `breakdown`, the six other combinations:
all but one on (tel-nomet, tel-nolog, tel-notrace) and only one on (tel-met, tel-log,
tel-trace).

One server workload per mode, not one workload whose policy is switched between slices:
a switch changes the server sidecar's listener (Envoy drains the old filter chains and
closes their connections) and, for DISABLE, the client's endpoints, so every slice would
start with a push and new connections, and the rotation would no longer compare steady
states.

Every server runs `dp serve` (1 KB answers); every client pod only sleeps, the bench runs
its load generator inside the client's namespace.
"""

from __future__ import annotations

from dataclasses import dataclass

from isthmus.demo.seed import SEED_YAML

NAMESPACE = "production"
SERVICE = "inventory-service"
APP_PORT = 8080
DIRECT_SERVER = "direct-server"
DIRECT_CLIENT = "direct-client"
MESH_SERVERS = ("inventory-v1", "inventory-v2")
MESH_CLIENT = "order-service"
PROXY_CONFIG = "proxy.istio.io/config"


@dataclass(frozen=True)
class ModeServer:
    """A service with one sidecar-injected server pod and no DestinationRule or
    VirtualService; its PeerAuthentication mode (None: no policy, i.e. PERMISSIVE)."""

    service: str
    deployment: str
    mode: str | None


# Sidecars, but no DestinationRule or VirtualService; one per mTLS mode.
MTLS_OFF = ModeServer("nomtls-service", "nomtls-v1", "DISABLE")
PERMISSIVE = ModeServer("plain-service", "plain-v1", None)
STRICT = ModeServer("strict-service", "strict-v1", "STRICT")
MODE_SERVERS = (MTLS_OFF, PERMISSIVE, STRICT)

# What a Telemetry can turn off, per workload.
METRICS, ACCESS_LOG, TRACING = "metrics", "access log", "tracer"
TELEMETRY_LABEL = "bench-telemetry"


@dataclass(frozen=True)
class TelemetryPath:
    """A client workload calling a service of its own (one server workload), both
    labelled `bench-telemetry: <key>`; a Telemetry selecting that label turns `off` off
    on both sides (none when `off` is empty: the mesh's defaults)."""

    key: str
    off: frozenset[str]

    @property
    def client(self) -> str:
        return f"{self.key}-client"

    @property
    def server(self) -> str:
        return f"{self.key}-v1"

    @property
    def service(self) -> str:
        return f"{self.key}-service"

    def records(self, part: str) -> bool:
        return part not in self.off


ALL_PARTS = frozenset({METRICS, ACCESS_LOG, TRACING})
TELEMETRY_ON = TelemetryPath("tel-on", frozenset())
TELEMETRY_OFF = TelemetryPath("tel-off", ALL_PARTS)
# --telemetry-breakdown: every other combination, all on but one and only one on.
TELEMETRY_ALL_BUT = (
    TelemetryPath("tel-nomet", frozenset({METRICS})),
    TelemetryPath("tel-nolog", frozenset({ACCESS_LOG})),
    TelemetryPath("tel-notrace", frozenset({TRACING})),
)
TELEMETRY_ONLY = (
    TelemetryPath("tel-met", ALL_PARTS - {METRICS}),
    TelemetryPath("tel-log", ALL_PARTS - {ACCESS_LOG}),
    TelemetryPath("tel-trace", ALL_PARTS - {TRACING}),
)


def telemetry_paths(breakdown: bool) -> tuple[TelemetryPath, ...]:
    extra = (*TELEMETRY_ALL_BUT, *TELEMETRY_ONLY) if breakdown else ()
    return (TELEMETRY_ON, TELEMETRY_OFF, *extra)


def _deployment(
    name: str,
    labels: dict[str, str],
    command: list[str],
    sidecar: bool,
    probe: bool,
    key_type: str = "RSA",
) -> str:
    label_text = ", ".join(f"{k}: {v}" for k, v in labels.items())
    args = ", ".join(f'"{part}"' for part in command)
    annotations = "" if sidecar else '\n      annotations: {sidecar.istio.io/inject: "false"}'
    if sidecar and key_type == "ECDSA":
        config = '{"proxyMetadata": {"ECC_SIGNATURE_ALGORITHM": "ECDSA"}}'
        annotations = f"\n      annotations: {{{PROXY_CONFIG}: '{config}'}}"
    readiness = (
        f"""
        ports: [{{containerPort: {APP_PORT}, name: http}}]
        readinessProbe:
          httpGet: {{path: /, port: {APP_PORT}}}
          periodSeconds: 1"""
        if probe
        else ""
    )
    return f"""apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {NAMESPACE}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{{label_text}}}}}
  template:
    metadata:
      labels: {{{label_text}}}{annotations}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: app
        command: [{args}]{readiness}
---
"""


def _service(name: str) -> str:
    return f"""apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {NAMESPACE}}}
spec:
  selector: {{app: {name}}}
  ports: [{{name: http, port: {APP_PORT}}}]
---
"""


def _peer_authentication(server: ModeServer) -> str:
    if server.mode is None:
        return ""
    return f"""apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {{name: {server.service}, namespace: {NAMESPACE}}}
spec:
  selector: {{matchLabels: {{app: {server.service}}}}}
  mtls: {{mode: {server.mode}}}
---
"""


def _telemetry(path: TelemetryPath) -> str:
    """Istio's way to turn each part off for the workloads labelled with the path's key:
    the envoy access log disabled, ALL_METRICS disabled, span reporting disabled (which
    removes the tracer)."""
    if not path.off:
        return ""
    spec = ""
    if ACCESS_LOG in path.off:
        spec += """
  accessLogging:
  - providers: [{name: envoy}]
    disabled: true"""
    if METRICS in path.off:
        spec += """
  metrics:
  - providers: [{name: prometheus}]
    overrides:
    - match: {metric: ALL_METRICS}
      disabled: true"""
    if TRACING in path.off:
        spec += """
  tracing:
  - disableSpanReporting: true"""
    return f"""apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {{name: {path.key}, namespace: {NAMESPACE}}}
spec:
  selector: {{matchLabels: {{{TELEMETRY_LABEL}: {path.key}}}}}{spec}
---
"""


def manifests(server_argv: list[str], key_type: str = "RSA", breakdown: bool = False) -> str:
    """Every object of the bench's mesh, as one YAML stream. `key_type` ECDSA gives every
    sidecar an ECDSA P-256 key (proxyMetadata ECC_SIGNATURE_ALGORITHM, as Istio);
    `breakdown` adds the telemetry paths with one part off each."""
    sleep = ["sleep", "infinity"]
    k = key_type
    parts = [
        _deployment(DIRECT_SERVER, {"app": DIRECT_SERVER}, server_argv, False, True),
        _deployment(DIRECT_CLIENT, {"app": DIRECT_CLIENT}, sleep, False, False),
        _deployment(MESH_SERVERS[0], {"app": SERVICE, "version": "v1"}, server_argv, True, True, k),
        _deployment(MESH_SERVERS[1], {"app": SERVICE, "version": "v2"}, server_argv, True, True, k),
        _deployment(MESH_CLIENT, {"app": MESH_CLIENT, "version": "v1"}, sleep, True, False, k),
        _service(SERVICE),
        SEED_YAML.rstrip() + "\n---\n",
    ]
    for server in MODE_SERVERS:
        labels = {"app": server.service, "version": "v1"}
        parts += [
            _deployment(server.deployment, labels, server_argv, True, True, k),
            _service(server.service),
            _peer_authentication(server),
        ]
    for path in telemetry_paths(breakdown):
        label = {TELEMETRY_LABEL: path.key}
        client_labels = {"app": path.client, "version": "v1", **label}
        server_labels = {"app": path.service, "version": "v1", **label}
        parts += [
            _deployment(path.client, client_labels, sleep, True, False, k),
            _deployment(path.server, server_labels, server_argv, True, True, k),
            _service(path.service),
            _telemetry(path),
        ]
    return "".join(parts)


def churn_rules(max_requests: int) -> str:
    """A DestinationRule per mode service whose only setting is a new connection every
    `max_requests` requests (no `tls`: automatic mTLS stays as it was)."""
    return "".join(
        f"""apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {server.service}-churn, namespace: {NAMESPACE}}}
spec:
  host: {server.service}
  trafficPolicy:
    connectionPool:
      http: {{maxRequestsPerConnection: {max_requests}}}
---
"""
        for server in MODE_SERVERS
    )
