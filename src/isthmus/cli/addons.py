"""Addons of `isthmus up --with NAME` (prometheus): installed into a running mesh by `up`,
removed by `down` (their objects, pods, data and files).

An addon is ordinary objects applied through isthmusd (the runtime runs them as pods) and
its own directory `$ISTHMUS_HOME/addons/NAME`, the only part of the mesh home its pod sees
(runtime.addons). Prometheus: telemetry.prometheus_addon says what runs and where.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from pathlib import Path

from isthmus.cli.errors import UserError
from isthmus.daemon.client import DaemonClient, DaemonError, DaemonNotRunning, Document
from isthmus.home import MeshHome
from isthmus.runtime.addons import ADDONS_DIR, make_directory, write_file
from isthmus.telemetry import prometheus_addon as prometheus

ADDONS = ("prometheus",)
_KINDS = ("Deployment", "Service")


def install_prometheus(client: DaemonClient, home: MeshHome, root_namespace: str) -> str:
    """Write its files, apply its objects and wait until its pod is ready; a line for the
    user saying how to reach it."""
    binary = shutil.which(prometheus.NAME)
    if binary is None:
        raise UserError(
            "`--with prometheus` runs Debian's prometheus, which is not installed: "
            "apt-get install --no-install-recommends prometheus (scripts/setup.sh does it)"
        )
    name = prometheus.NAME
    make_directory(home.root, name)
    write_file(home.root, name, prometheus.CONFIG_FILE, prometheus.config().encode())
    write_file(home.root, name, prometheus.RULES_FILE, prometheus.recording_rules().encode())
    make_directory(home.root, name, prometheus.DATA_DIR, owner=prometheus.UID, mode=0o700)
    documents = [
        Document(f"addon {name}", json.dumps(body))
        for body in prometheus.manifest(root_namespace, binary)
    ]
    client.apply(documents)
    _wait_ready(client, root_namespace, name)
    return (
        f"isthmus port-forward -n {root_namespace} svc/{name} {prometheus.PORT}:"
        f"{prometheus.PORT}, then http://127.0.0.1:{prometheus.PORT}"
    )


def _wait_ready(client: DaemonClient, namespace: str, deployment: str) -> None:
    deadline = time.monotonic() + client.timeout
    while time.monotonic() < deadline:
        pods = client.request("GET", "/v1/pods")["pods"]
        if any(
            p["namespace"] == namespace and p["deployment"] == deployment and p["ready"]
            for p in pods
        ):
            return
        time.sleep(0.3)
    raise UserError(
        f"{deployment} in {namespace} is not ready after {client.timeout:.0f}s; see "
        f"`isthmus get pods -n {namespace}` and `isthmus logs` of its pod"
    )


def remove_addon_objects(home: MeshHome, root_namespace: str, timeout: float) -> None:
    """Delete the addons' objects that isthmus made (by name and label), so that the next
    `up` does not start them again; nothing if isthmusd does not answer."""
    with (
        contextlib.suppress(DaemonNotRunning, DaemonError),
        DaemonClient(home, timeout=timeout) as client,
    ):
        keys = [
            (kind, root_namespace, name)
            for name in ADDONS
            for kind in _KINDS
            for body in client.get(kind, root_namespace, name)
            if body.get("metadata", {}).get("labels", {}).get(prometheus.MANAGED_LABEL)
            == prometheus.MANAGED_BY
        ]
        if keys:
            client.delete_keys(keys)


def remove_addon_files(home: MeshHome) -> None:
    """`$ISTHMUS_HOME/addons`: configurations, scrape targets, data (shutil.rmtree does
    not follow symbolic links an addon's pod may have left there)."""
    path = Path(home.root) / ADDONS_DIR
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
