"""Prometheus service discovery for the local mesh: the pods to scrape, as a file_sd list.

Pure: pods in, the target list out (daemon.scrape_targets writes it). It selects what
Prometheus's `kubernetes-pods` job (Istio's addon, the Prometheus helm chart) selects from
Kubernetes service discovery with its relabelling:
- running pods with an address, not being deleted, annotated `prometheus.io/scrape: "true"`;
- the address is the pod IP with `prometheus.io/port`, else one target per declared TCP
  container port (as the Kubernetes SD lists them), else the pod IP on port 80;
- `prometheus.io/path` becomes `__metrics_path__` (default /metrics), `prometheus.io/scheme`
  (http or https) `__scheme__`;
- the series get `namespace` and `pod` labels, and `app` and `version` from the pod's
  labels when it has them; the Kubernetes SD's own `__meta_kubernetes_*` labels (namespace,
  pod name, IP, ready, phase, node, pod labels) are there too, for relabelling rules
  written for Kubernetes.
A pod whose annotations are unusable (a port that is not a number in 1-65535) is left out,
and so is its reason, in `skipped`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from isthmus.model.pods import PodView
from isthmus.telemetry.annotations import PATH, PORT, SCHEME, SCRAPE, sanitized

DEFAULT_PATH = "/metrics"
DEFAULT_PORT = 80
META = "__meta_kubernetes_"


@dataclass(frozen=True)
class ScrapeTargets:
    groups: list[dict[str, Any]]  # Prometheus file_sd: [{"targets": [...], "labels": {...}}]
    skipped: dict[str, str] = field(default_factory=dict)  # "namespace/pod" -> why

    def render(self) -> bytes:
        """The file's bytes: stable for the same pods, so an unchanged list is not rewritten."""
        return json.dumps(self.groups, indent=1, sort_keys=True).encode() + b"\n"


def label_name(name: str) -> str:
    """A Kubernetes label key as the Kubernetes SD spells it in a Prometheus label name."""
    return sanitized(name)


def _port(pod: PodView) -> list[int]:
    raw = pod.annotations.get(PORT)
    if raw is not None:
        if not raw.isdigit() or not 1 <= int(raw) <= 65535:
            raise ValueError(f"{PORT}: {raw!r} is not a port number")
        return [int(raw)]
    return list(pod.container_ports) or [DEFAULT_PORT]


def _labels(pod: PodView) -> dict[str, str]:
    path = pod.annotations.get(PATH) or DEFAULT_PATH
    labels = {
        "__metrics_path__": path if path.startswith("/") else f"/{path}",
        "namespace": pod.namespace,
        "pod": pod.name,
        f"{META}namespace": pod.namespace,
        f"{META}pod_name": pod.name,
        f"{META}pod_ip": pod.ip,
        f"{META}pod_ready": "true" if pod.ready else "false",
        f"{META}pod_phase": pod.phase,
        f"{META}pod_node_name": pod.node,
    }
    for key in ("app", "version"):
        if pod.labels.get(key):
            labels[key] = pod.labels[key]
    for key, value in pod.labels.items():
        labels[f"{META}pod_label_{label_name(key)}"] = value
        labels[f"{META}pod_labelpresent_{label_name(key)}"] = "true"
    scheme = pod.annotations.get(SCHEME)
    if scheme in ("http", "https"):
        labels["__scheme__"] = scheme
    return labels


def scrape_targets(pods: Iterable[PodView]) -> ScrapeTargets:
    """The file_sd groups of the pods to scrape, one group per pod, ordered by namespace
    and name."""
    groups: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    for pod in sorted(pods, key=lambda p: (p.namespace, p.name)):
        if pod.annotations.get(SCRAPE) != "true":
            continue
        if pod.phase != "Running" or not pod.ip or pod.deleting:
            continue
        try:
            ports = _port(pod)
        except ValueError as exc:
            skipped[f"{pod.namespace}/{pod.name}"] = str(exc)
            continue
        groups.append({"targets": [f"{pod.ip}:{port}" for port in ports], "labels": _labels(pod)})
    return ScrapeTargets(groups, skipped)
