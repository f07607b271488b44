"""What the bench applies: pods without sidecars for the direct and bare-Envoy scenarios,
the seed's inventory-service with sidecars and the seed's own DestinationRule and
VirtualService (verbatim: the bench's server *is* inventory-service in `production`), and
three services with sidecars but without any DestinationRule or VirtualService, which
separate what the mesh costs from what the seed's policies cost, one per mTLS mode of
their server workload: nomtls-service (a PeerAuthentication DISABLE: clients send it
plaintext), plain-service (no PeerAuthentication: PERMISSIVE, the default) and
strict-service (a PeerAuthentication STRICT).

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


def manifests(server_argv: list[str], key_type: str = "RSA") -> str:
    """Every object of the bench's mesh, as one YAML stream. `key_type` ECDSA gives every
    sidecar an ECDSA P-256 key (proxyMetadata ECC_SIGNATURE_ALGORITHM, as Istio)."""
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
