"""The control-plane demo: the seed's canary, told over real Envoy on loopback.

It starts isthmusd on a temporary home, three inventory-service instances (v1 twice, v2
once) registered as WorkloadEntries, and one order-service sidecar Envoy whose explicit
HTTP proxy listener carries the requests. Then it applies the seed's YAML verbatim and
shows what Envoy does with it. (The full story with pods, iptables capture and the
cascading-failure scenario is the runtime's demo.)
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from isthmus.demo.seed import SEED_YAML
from isthmus.testing.daemon import DaemonProcess, start_sidecar, wait_for
from isthmus.testing.load import SteadyLoad
from isthmus.testing.mesh import NAMESPACE, Mesh
from isthmus.testing.ports import free_port

HOST = f"inventory-service.{NAMESPACE}.svc.cluster.local:8080"


def _rollback_vs() -> str:
    """The seed's VirtualService with the v2 weight set to 0 (the article's instant rollback)."""
    vs = SEED_YAML[SEED_YAML.index("# VirtualService") :]
    return vs.replace("weight: 95", "weight: 100").replace("weight: 5", "weight: 0")


def run_demo(say: Callable[[str], None] = print, keep: bool = False) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="isthmus-demo-"))
    daemon = DaemonProcess(workdir / "home")
    mesh: Mesh | None = None
    try:
        say(f"• starting isthmusd (home {daemon.home})")
        daemon.start()
        port = free_port()
        sidecar = start_sidecar(
            daemon,
            workdir / "envoy",
            pod="order-service-7d9f4b6c8-x2k8q",
            namespace=NAMESPACE,
            http_proxy_port=port,
            labels={"app": "order-service"},
        )
        mesh = Mesh(daemon, sidecar, port, workdir)
        sidecar.wait_ready(timeout=20)
        say(f"• order-service sidecar Envoy is up; it routes as an HTTP proxy on 127.0.0.1:{port}")
        v1a, v1b, v2 = (
            mesh.upstream(n) for n in ("inventory-v1-a", "inventory-v1-b", "inventory-v2")
        )
        mesh.apply(
            mesh.service("inventory-service")
            + mesh.workload("inventory-service", v1a, "v1")
            + mesh.workload("inventory-service", v1b, "v1")
            + mesh.workload("inventory-service", v2, "v2")
            + SEED_YAML
        )
        say("• applied the seed's DestinationRule and VirtualService, verbatim")
        mesh.wait_routed(HOST, "inventory-v2", headers={"x-beta-user": "true"})

        split = mesh.get(HOST, count=2000, concurrency=8)
        share = 100 * split.upstreams["inventory-v2"] / max(split.count, 1)
        say(
            f"• 2000 requests: {dict(split.upstreams)} -> v2 gets {share:.1f}% (VirtualService: 5%)"
        )
        beta = mesh.get(HOST, count=200, concurrency=4, headers={"x-beta-user": "true"})
        say(f"• 200 requests with x-beta-user: true: {dict(beta.upstreams)}")

        load = SteadyLoad(
            f"http://{HOST}/", rate=200, max_duration=15, proxy=mesh.proxy, workers=4
        ).start()
        time.sleep(1)
        started = time.monotonic()
        mesh.apply(_rollback_vs())
        wait_for(
            lambda: mesh.get(HOST, count=50).upstreams.get("inventory-v2", 0) == 0, what="rollback"
        )
        took = time.monotonic() - started
        time.sleep(1)
        result = load.stop()
        say(
            f"• rollback (v2 weight 0) under {result.count} requests of load: in effect after "
            f"{took * 1000:.0f} ms, {result.failed} failed requests"
        )
        after = mesh.get(HOST, count=500, concurrency=4)
        say(f"• 500 requests after rollback: {dict(after.upstreams)}")
        for p in daemon.proxies():
            say(f"• proxy-status: {p['node_id']} synced={p['synced']} stream={p['stream']}")
        if keep:
            say(f"• left running; home {daemon.home}. Press Ctrl-C to stop.")
            while True:
                time.sleep(3600)
        return 0
    finally:
        if mesh is not None:
            for server in mesh.upstreams:
                server.stop()
            mesh.sidecar.stop()
        daemon.stop()
        shutil.rmtree(workdir, ignore_errors=True)
