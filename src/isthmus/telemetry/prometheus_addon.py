"""The Prometheus addon (`isthmus up --with prometheus`): its configuration and its pod.

Pure: text in, text out; cli.addons writes the files and applies the manifest. What runs:
Debian's `prometheus` binary as Deployment `prometheus` in the root namespace, sidecar-less
(`sidecar.istio.io/inject: "false"`, as the seed's monitoring agent and Istio's own addon),
behind Service `prometheus` on 9090, as uid/gid 65534 (nobody, as the prom/prometheus
image) with no capabilities. Its pod is annotated `isthmus.io/addon: prometheus`, so it
sees its own directory `$ISTHMUS_HOME/addons/prometheus` at /run/isthmus/addon and nothing
else of the mesh home (runtime.addons):

    prometheus.yml        this configuration (root, 0644)
    rules.yml             recording rules for Istio's standard aggregates (root, 0644)
    file_sd/pods.json     the scrape targets isthmusd keeps current (telemetry.scrape_targets)
    data/                 the TSDB (--storage.tsdb.path), the only directory it can write

One scrape job, `kubernetes-pods` (Istio's addon's name for it), reads the file_sd list;
the list already carries `namespace`, `pod`, `app`, `version` and `__metrics_path__`, so
no relabelling is needed for the series to carry them.
"""

from __future__ import annotations

from typing import Any

import yaml

from isthmus.runtime.addons import ADDON_ANNOTATION, ADDON_MOUNT

NAME = "prometheus"
PORT = 9090
UID = 65534  # nobody
SCRAPE_INTERVAL = "5s"
SCRAPE_TIMEOUT = "4s"
RULES_INTERVAL = "10s"
RETENTION = "1d"
CONFIG_FILE = "prometheus.yml"
RULES_FILE = "rules.yml"
FILE_SD_DIR = "file_sd"
FILE_SD_FILE = "pods.json"
DATA_DIR = "data"
INJECT_ANNOTATION = "sidecar.istio.io/inject"
MANAGED_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "isthmus"

# Istio's standard metrics whose per-pod series the recording rules aggregate per workload
# (Istio's "Observability best practices": sum away the instance and pod labels).
ISTIO_SERIES = (
    "istio_requests_total",
    "istio_request_duration_milliseconds_bucket",
    "istio_request_duration_milliseconds_count",
    "istio_request_duration_milliseconds_sum",
    "istio_request_bytes_bucket",
    "istio_request_bytes_count",
    "istio_request_bytes_sum",
    "istio_response_bytes_bucket",
    "istio_response_bytes_count",
    "istio_response_bytes_sum",
    "istio_request_messages_total",
    "istio_response_messages_total",
    "istio_tcp_sent_bytes_total",
    "istio_tcp_received_bytes_total",
    "istio_tcp_connections_opened_total",
    "istio_tcp_connections_closed_total",
)


def in_pod(*parts: str) -> str:
    """A path under the addon's directory as the Prometheus pod sees it."""
    return str(ADDON_MOUNT.joinpath(*parts))


def config() -> str:
    """prometheus.yml."""
    document = {
        "global": {
            "scrape_interval": SCRAPE_INTERVAL,
            "scrape_timeout": SCRAPE_TIMEOUT,
            "evaluation_interval": SCRAPE_INTERVAL,
        },
        "rule_files": [in_pod(RULES_FILE)],
        "scrape_configs": [
            {
                "job_name": "kubernetes-pods",
                "file_sd_configs": [
                    {"files": [in_pod(FILE_SD_DIR, "*.json")], "refresh_interval": "30s"}
                ],
            }
        ],
    }
    return "# Written by `isthmus up --with prometheus`.\n" + yaml.safe_dump(
        document, sort_keys=False
    )


def recording_rules() -> str:
    """rules.yml: `workload:<metric>` per Istio series, without instance and pod."""
    rules = [
        {"record": f"workload:{series}", "expr": f"sum without(instance, pod) ({series})"}
        for series in ISTIO_SERIES
    ]
    document = {"groups": [{"name": "istio.workload", "interval": RULES_INTERVAL, "rules": rules}]}
    return "# Written by `isthmus up --with prometheus`.\n" + yaml.safe_dump(
        document, sort_keys=False
    )


def manifest(namespace: str, binary: str) -> list[dict[str, Any]]:
    """The Service and Deployment of the addon in `namespace` (the root namespace)."""
    labels = {"app": NAME, MANAGED_LABEL: MANAGED_BY}
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": NAME, "namespace": namespace, "labels": labels},
        "spec": {"selector": {"app": NAME}, "ports": [{"name": "http", "port": PORT}]},
    }
    container = {
        "name": NAME,
        "image": "prom/prometheus",  # recorded only: the host's Debian binary runs
        "command": [binary],
        "args": [
            f"--config.file={in_pod(CONFIG_FILE)}",
            f"--storage.tsdb.path={in_pod(DATA_DIR)}",
            f"--storage.tsdb.retention.time={RETENTION}",
            f"--web.listen-address=:{PORT}",
        ],
        "ports": [{"name": "http", "containerPort": PORT}],
        "readinessProbe": {"httpGet": {"path": "/-/ready", "port": PORT}, "periodSeconds": 1},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": NAME, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},  # one TSDB: never two servers on it
            "selector": {"matchLabels": {"app": NAME}},
            "template": {
                "metadata": {
                    "labels": {"app": NAME},
                    "annotations": {INJECT_ANNOTATION: "false", ADDON_ANNOTATION: NAME},
                },
                "spec": {
                    "terminationGracePeriodSeconds": 10,
                    "securityContext": {
                        "runAsUser": UID,
                        "runAsGroup": UID,
                        "runAsNonRoot": True,
                    },
                    "containers": [container],
                },
            },
        },
    }
    return [service, deployment]
