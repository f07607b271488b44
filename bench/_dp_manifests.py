"""What the bench applies: pods without sidecars for the direct and bare-Envoy scenarios,
the seed's inventory-service with sidecars and the seed's own DestinationRule and
VirtualService (verbatim: the bench's server *is* inventory-service in `production`), and
plain-service, sidecars without any DestinationRule or VirtualService, which separates what
the mesh costs from what the seed's policies cost.

Every server runs `dp serve` (1 KB answers); every client pod only sleeps, the bench runs
its load generator inside the client's namespace.
"""

from __future__ import annotations

from isthmus.demo.seed import SEED_YAML

NAMESPACE = "production"
SERVICE = "inventory-service"
APP_PORT = 8080
DIRECT_SERVER = "direct-server"
DIRECT_CLIENT = "direct-client"
MESH_SERVERS = ("inventory-v1", "inventory-v2")
MESH_CLIENT = "order-service"
PLAIN_SERVICE = "plain-service"  # sidecars, but no DestinationRule or VirtualService
PLAIN_SERVER = "plain-v1"


def _deployment(
    name: str, labels: dict[str, str], command: list[str], sidecar: bool, probe: bool
) -> str:
    label_text = ", ".join(f"{k}: {v}" for k, v in labels.items())
    args = ", ".join(f'"{part}"' for part in command)
    annotations = "" if sidecar else '\n      annotations: {sidecar.istio.io/inject: "false"}'
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


def manifests(server_argv: list[str]) -> str:
    """Every object of the bench's mesh, as one YAML stream."""
    sleep = ["sleep", "infinity"]
    parts = [
        _deployment(DIRECT_SERVER, {"app": DIRECT_SERVER}, server_argv, False, True),
        _deployment(DIRECT_CLIENT, {"app": DIRECT_CLIENT}, sleep, False, False),
        _deployment(MESH_SERVERS[0], {"app": SERVICE, "version": "v1"}, server_argv, True, True),
        _deployment(MESH_SERVERS[1], {"app": SERVICE, "version": "v2"}, server_argv, True, True),
        _deployment(MESH_CLIENT, {"app": MESH_CLIENT, "version": "v1"}, sleep, True, False),
        _deployment(PLAIN_SERVER, {"app": PLAIN_SERVICE, "version": "v1"}, server_argv, True, True),
        _service(SERVICE),
        _service(PLAIN_SERVICE),
        SEED_YAML,
    ]
    return "".join(parts)
