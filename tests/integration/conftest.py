"""Integration harness: a real isthmusd on a temporary home, a real sidecar Envoy bootstrapped
to it over ADS, and small upstream HTTP servers registered as WorkloadEntries."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from isthmus.testing.daemon import DaemonProcess, start_sidecar
from isthmus.testing.mesh import NAMESPACE, Mesh
from isthmus.testing.ports import free_port


@pytest.fixture(scope="module")
def mesh() -> Iterator[Mesh]:
    workdir = Path(tempfile.mkdtemp(prefix="isthmus-it-"))
    daemon = DaemonProcess(workdir / "home").start()
    port = free_port()
    sidecar = start_sidecar(
        daemon,
        workdir / "envoy",
        pod="client-7d9f4b6c8-x2k8q",
        namespace=NAMESPACE,
        http_proxy_port=port,
        labels={"app": "client"},
    )
    m = Mesh(daemon, sidecar, port, workdir)
    try:
        sidecar.wait_ready(timeout=20)
        yield m
    finally:
        for server in m.upstreams:
            server.stop()
        sidecar.stop()
        daemon.stop()
        shutil.rmtree(workdir, ignore_errors=True)
