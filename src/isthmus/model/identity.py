"""Workload identities as Istio names them: one spelling for the CA, the agent and pilot."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


def spiffe_uri(trust_domain: str, namespace: str, service_account: str) -> str:
    """`spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>` (no checks: callers
    that take the parts from users validate them first)."""
    return f"spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}"


# Istio's defaults when a workload's labels do not say (pkg/model's canonical names).
CANONICAL_REVISION_DEFAULT = "latest"
# Istio's cluster id of a single-cluster mesh; telemetry's source_/destination_cluster.
DEFAULT_CLUSTER_ID = "Kubernetes"
UNKNOWN = "unknown"
_CANONICAL_SERVICE_LABELS = ("service.istio.io/canonical-name", "app.kubernetes.io/name", "app")
_CANONICAL_REVISION_LABELS = (
    "service.istio.io/canonical-revision",
    "app.kubernetes.io/version",
    "version",
)


def canonical_service(labels: Mapping[str, str], workload: str) -> str:
    """Istio's canonical service: the first of its labels that is set, else the workload."""
    return next((labels[k] for k in _CANONICAL_SERVICE_LABELS if labels.get(k)), workload)


def canonical_revision(labels: Mapping[str, str]) -> str:
    """Istio's canonical revision: the first of its labels that is set, else `latest`."""
    return next(
        (labels[k] for k in _CANONICAL_REVISION_LABELS if labels.get(k)),
        CANONICAL_REVISION_DEFAULT,
    )


@dataclass(frozen=True)
class PeerLabels:
    """What telemetry says about one side of a request (Istio's peer metadata): the
    values of its source_*/destination_* labels other than principal and service."""

    workload: str
    namespace: str
    app: str
    version: str
    canonical_service: str
    canonical_revision: str
    cluster: str = DEFAULT_CLUSTER_ID

    @classmethod
    def of(cls, labels: Mapping[str, str], workload: str, namespace: str) -> PeerLabels:
        return cls(
            workload=workload or UNKNOWN,
            namespace=namespace or UNKNOWN,
            app=labels.get("app") or UNKNOWN,
            version=labels.get("version") or UNKNOWN,
            canonical_service=canonical_service(labels, workload) or UNKNOWN,
            canonical_revision=canonical_revision(labels),
        )

    def as_dict(self) -> dict[str, str]:
        return {
            "workload": self.workload,
            "namespace": self.namespace,
            "app": self.app,
            "version": self.version,
            "canonical_service": self.canonical_service,
            "canonical_revision": self.canonical_revision,
            "cluster": self.cluster,
        }

    def environment(self) -> dict[str, str]:
        """The sidecar Envoy's environment that carries these values: its telemetry reads
        them with `%ENVIRONMENT(NAME)%`, so configuration shared by every proxy of a
        namespace still reports each proxy's own workload."""
        return {PEER_ENVIRONMENT[key]: value for key, value in self.as_dict().items()}


PEER_ENVIRONMENT = {
    "workload": "ISTHMUS_WORKLOAD_NAME",
    "namespace": "ISTHMUS_WORKLOAD_NAMESPACE",
    "app": "ISTHMUS_APP",
    "version": "ISTHMUS_VERSION",
    "canonical_service": "ISTHMUS_CANONICAL_SERVICE",
    "canonical_revision": "ISTHMUS_CANONICAL_REVISION",
    "cluster": "ISTHMUS_CLUSTER_ID",
}
