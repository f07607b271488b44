"""The file_sd list of the pods to scrape, built from Pod objects as the node runtime
reports them (Prometheus's kubernetes-pods selection and relabelling)."""

from __future__ import annotations

import json
from typing import Any

from isthmus.model.pods import PodView, pod_view
from isthmus.telemetry.scrape_targets import label_name, scrape_targets

ISTIO = {
    "prometheus.io/scrape": "true",
    "prometheus.io/port": "15020",
    "prometheus.io/path": "/stats/prometheus",
}


def pod(
    name: str = "web-7d9f-x2k8q",
    namespace: str = "production",
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    ip: str = "10.44.0.7",
    phase: str = "Running",
    ready: bool = True,
    ports: list[dict[str, Any]] | None = None,
    deleting: bool = False,
) -> PodView:
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": {"app": "web", "version": "v1"} if labels is None else labels,
        "annotations": dict(ISTIO if annotations is None else annotations),
    }
    if deleting:
        metadata["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    return pod_view(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": metadata,
            "spec": {
                "nodeName": "node",
                "containers": [
                    {"name": "app", "ports": [] if ports is None else ports},
                    {"name": "istio-proxy", "ports": []},
                ],
            },
            "status": {
                "phase": phase,
                "podIP": ip,
                "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            },
        }
    )


def test_an_annotated_pod_is_one_target_on_its_port_and_path() -> None:
    (group,) = scrape_targets([pod()]).groups
    assert group["targets"] == ["10.44.0.7:15020"]
    labels = group["labels"]
    assert labels["__metrics_path__"] == "/stats/prometheus"
    assert (labels["namespace"], labels["pod"]) == ("production", "web-7d9f-x2k8q")
    assert (labels["app"], labels["version"]) == ("web", "v1")
    assert "__scheme__" not in labels


def test_kubernetes_sd_meta_labels_are_there_for_kubernetes_relabelling() -> None:
    labels = scrape_targets([pod(labels={"app": "web", "security.istio.io/tlsMode": "istio"})])
    meta = labels.groups[0]["labels"]
    assert meta["__meta_kubernetes_namespace"] == "production"
    assert meta["__meta_kubernetes_pod_name"] == "web-7d9f-x2k8q"
    assert meta["__meta_kubernetes_pod_ip"] == "10.44.0.7"
    assert meta["__meta_kubernetes_pod_ready"] == "true"
    assert meta["__meta_kubernetes_pod_phase"] == "Running"
    assert meta["__meta_kubernetes_pod_label_security_istio_io_tlsMode"] == "istio"
    assert meta["__meta_kubernetes_pod_labelpresent_app"] == "true"
    assert "version" not in meta  # only labels the pod has
    assert label_name("pod-template-hash") == "pod_template_hash"


def test_pods_not_annotated_or_not_running_are_left_out() -> None:
    pods = [
        pod("plain", annotations={}),
        pod("off", annotations={**ISTIO, "prometheus.io/scrape": "false"}),
        pod("pending", phase="Pending"),
        pod("no-ip", ip=""),
        pod("going", deleting=True),
        pod("kept"),
    ]
    assert [g["labels"]["pod"] for g in scrape_targets(pods).groups] == ["kept"]


def test_not_ready_running_pods_are_scraped() -> None:
    """As Prometheus's kubernetes-pods job: readiness is a label, not a filter."""
    (group,) = scrape_targets([pod(ready=False)]).groups
    assert group["labels"]["__meta_kubernetes_pod_ready"] == "false"


def test_without_a_port_annotation_every_declared_tcp_port_is_a_target() -> None:
    ports = [
        {"containerPort": 8080, "name": "http"},
        {"containerPort": 9100},
        {"containerPort": 5353, "protocol": "UDP"},
    ]
    only = {"prometheus.io/scrape": "true"}
    (group,) = scrape_targets([pod(annotations=only, ports=ports)]).groups
    assert group["targets"] == ["10.44.0.7:8080", "10.44.0.7:9100"]
    assert group["labels"]["__metrics_path__"] == "/metrics"
    (bare,) = scrape_targets([pod(annotations={"prometheus.io/scrape": "true"})]).groups
    assert bare["targets"] == ["10.44.0.7:80"]


def test_scheme_and_bad_ports() -> None:
    https = pod("tls", annotations={**ISTIO, "prometheus.io/scheme": "https"})
    odd = pod("odd", annotations={**ISTIO, "prometheus.io/scheme": "gopher"})
    bad = pod("bad", annotations={**ISTIO, "prometheus.io/port": "http"})
    big = pod("big", annotations={**ISTIO, "prometheus.io/port": "70000"})
    targets = scrape_targets([https, odd, bad, big])
    schemes = {g["labels"]["pod"]: g["labels"].get("__scheme__") for g in targets.groups}
    assert schemes == {"tls": "https", "odd": None}
    assert sorted(targets.skipped) == ["production/bad", "production/big"]
    assert "'http' is not a port number" in targets.skipped["production/bad"]


def test_a_relative_path_is_made_absolute() -> None:
    (group,) = scrape_targets([pod(annotations={**ISTIO, "prometheus.io/path": "m"})]).groups
    assert group["labels"]["__metrics_path__"] == "/m"


def test_rendering_is_file_sd_json_stable_whatever_the_order() -> None:
    pods = [pod("b", namespace="x"), pod("a", namespace="y"), pod("a", namespace="x")]
    rendered = scrape_targets(pods).render()
    assert rendered == scrape_targets(list(reversed(pods))).render()
    groups = json.loads(rendered)
    assert [(g["labels"]["namespace"], g["labels"]["pod"]) for g in groups] == [
        ("x", "a"),
        ("x", "b"),
        ("y", "a"),
    ]
    for group in groups:  # Prometheus's file_sd schema: targets strings, labels strings
        assert set(group) == {"targets", "labels"}
        assert all(isinstance(t, str) for t in group["targets"])
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in group["labels"].items())
    assert scrape_targets([]).render() == b"[]\n"
