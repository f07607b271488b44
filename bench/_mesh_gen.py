"""The synthetic mesh of the xDS scale benchmark, as YAML and as proxy identities.

Shape (per service `svc-K` in namespace `bench-N`, namespaces assigned round-robin):
a Kubernetes Service with two ports (`http` 8080, `grpc` 9090) and a cluster IP, two
WorkloadEntries (`version: v1` and `version: v2`), a DestinationRule with subsets v1/v2
and a VirtualService splitting v1/v2 by weight. Every object is exported to the whole
mesh (Istio's default), so every sidecar sees every service, as in a mesh without
Sidecar scoping. Proxy `i` is the sidecar of WorkloadEntry `i mod 2*services`.

With `scoped`, every tenth service lives in a shared namespace (`bench-shared`) instead,
and every namespace has a default Sidecar importing its own namespace and the shared one
(Istio's advice for large meshes), so a proxy sees its namespace's services and the
shared tenth.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

HTTP_PORT = 8080
GRPC_PORT = 9090
SUBSETS = ("v1", "v2")
SHARED_NAMESPACE = "bench-shared"
SHARED_EVERY = 10


@dataclass(frozen=True)
class MeshShape:
    """How big the synthetic mesh is and how it is spread over namespaces."""

    services: int
    proxies: int
    namespaces: int
    scoped: bool = False

    def namespace_of(self, service: int) -> str:
        if self.scoped and self.is_shared(service):
            return SHARED_NAMESPACE
        return f"bench-{service % self.namespaces}"

    def is_shared(self, service: int) -> bool:
        """Every tenth service is in the shared namespace (with `scoped`)."""
        return service % SHARED_EVERY == 0

    @property
    def namespace_names(self) -> list[str]:
        names = [f"bench-{n}" for n in range(self.namespaces)]
        return [*names, SHARED_NAMESPACE] if self.scoped else names

    def visible_services(self, namespace: str) -> int:
        """How many services a proxy of `namespace` sees."""
        own = [self.namespace_of(k) for k in range(self.services)]
        if not self.scoped:
            return self.services
        return sum(1 for ns in own if ns in (namespace, SHARED_NAMESPACE))

    @property
    def workloads(self) -> int:
        return self.services * len(SUBSETS)


@dataclass(frozen=True)
class ProxyIdentity:
    """What one fake sidecar says about itself in its first xDS request."""

    node_id: str
    metadata: dict[str, object]


def _address(prefix: int, index: int) -> str:
    return f"{prefix}.{(index >> 16) & 255}.{(index >> 8) & 255}.{index & 255}"


def _workload_address(workload: int) -> str:
    return _address(10, workload + 1)


def _service(shape: MeshShape, k: int) -> str:
    ns = shape.namespace_of(k)
    return f"""apiVersion: v1
kind: Service
metadata: {{name: svc-{k}, namespace: {ns}}}
spec:
  clusterIP: {_address(172, k + 1)}
  selector: {{app: svc-{k}}}
  ports:
  - {{name: http, port: {HTTP_PORT}}}
  - {{name: grpc, port: {GRPC_PORT}}}
"""


def service_host(shape: MeshShape, k: int) -> str:
    """The FQDN of `svc-K`, as cluster names spell it."""
    return f"svc-{k}.{shape.namespace_of(k)}.svc.cluster.local"


def eds_cluster(shape: MeshShape, k: int, port: int = HTTP_PORT, subset: str = "") -> str:
    """The outbound EDS cluster of `svc-K` for `port` and `subset` ("" for the default)."""
    return f"outbound|{port}|{subset}|{service_host(shape, k)}"


def _workload_entry(shape: MeshShape, workload: int) -> str:
    k, subset = divmod(workload, len(SUBSETS))
    return f"""apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: svc-{k}-{SUBSETS[subset]}, namespace: {shape.namespace_of(k)}}}
spec:
  address: {_workload_address(workload)}
  labels: {{app: svc-{k}, version: {SUBSETS[subset]}}}
  ports: {{http: {HTTP_PORT}, grpc: {GRPC_PORT}}}
"""


def extra_workload_entry(shape: MeshShape, k: int, n: int) -> tuple[str, str]:
    """A third pod of `svc-K` (labels of its v1 entry, the `n`th new address): YAML, address.

    Applying it adds one endpoint to the default and v1 clusters of both ports, deleting
    it takes the endpoint away again: an endpoint-only change (a pod becomes ready, goes).
    """
    address = _address(11, n + 1)
    text = f"""apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: svc-{k}-v1-extra, namespace: {shape.namespace_of(k)}}}
spec:
  address: {address}
  labels: {{app: svc-{k}, version: v1}}
  ports: {{http: {HTTP_PORT}, grpc: {GRPC_PORT}}}
"""
    return text, address


def _destination_rule(shape: MeshShape, k: int) -> str:
    return f"""apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: svc-{k}, namespace: {shape.namespace_of(k)}}}
spec:
  host: svc-{k}
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
"""


def virtual_service(shape: MeshShape, k: int, v1_weight: int) -> str:
    """The VirtualService of `svc-K`: v1 gets `v1_weight` percent, v2 the rest."""
    return f"""apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: svc-{k}, namespace: {shape.namespace_of(k)}}}
spec:
  hosts: [svc-{k}]
  http:
  - route:
    - destination: {{host: svc-{k}, subset: v1}}
      weight: {v1_weight}
    - destination: {{host: svc-{k}, subset: v2}}
      weight: {100 - v1_weight}
"""


def _sidecar(namespace: str) -> str:
    """The namespace's default Sidecar: its own services and the shared namespace's."""
    return f"""apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: default, namespace: {namespace}}}
spec:
  egress:
  - hosts: ["./*", "{SHARED_NAMESPACE}/*"]
"""


def mesh_documents(shape: MeshShape, batch: int = 500) -> list[str]:
    """The whole mesh as YAML streams of at most `batch` services each (one apply each)."""
    out = []
    for start in range(0, shape.services, batch):
        docs: list[str] = []
        ks = range(start, min(start + batch, shape.services))
        if start == 0:
            docs.extend(
                f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n"
                for ns in shape.namespace_names
            )
            if shape.scoped:
                docs.extend(_sidecar(ns) for ns in shape.namespace_names)
        for k in ks:
            docs.append(_service(shape, k))
            docs.extend(_workload_entry(shape, k * len(SUBSETS) + s) for s in range(len(SUBSETS)))
            docs.append(_destination_rule(shape, k))
            docs.append(virtual_service(shape, k, 90))
        out.append("---\n".join(docs))
    return out


def proxy_identity(shape: MeshShape, i: int) -> ProxyIdentity:
    """Sidecar `i`: the pod behind WorkloadEntry `i mod workloads`, serving both ports."""
    workload = i % shape.workloads
    k, subset = divmod(workload, len(SUBSETS))
    ns = shape.namespace_of(k)
    pod = f"svc-{k}-{SUBSETS[subset]}-{i}"
    metadata: dict[str, object] = {
        "NAMESPACE": ns,
        "LABELS": {"app": f"svc-{k}", "version": SUBSETS[subset]},
        "SERVICE_ACCOUNT": "default",
        "WORKLOAD_NAME": f"svc-{k}-{SUBSETS[subset]}",
        "INBOUND_PORTS": f"{HTTP_PORT},{GRPC_PORT}",
    }
    node_id = f"sidecar~{_workload_address(workload)}~{pod}.{ns}~{ns}.svc.cluster.local"
    return ProxyIdentity(node_id=node_id, metadata=json.loads(json.dumps(metadata)))
