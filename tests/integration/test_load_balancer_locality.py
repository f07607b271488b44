"""DestinationRule `loadBalancer.warmup` and locality load balancing, through real Envoys
configured by isthmusd, over real HTTP.

Slow start: Envoy holds the cluster's slow_start_config, and an endpoint added to a
service gets a small share of round-robin traffic while it warms up, where the same
endpoint added to a service without warmup gets half.

Locality failover (Istio's default MeshConfig `localityLbSetting: {enabled: true}` with
outlier detection): two client proxies alike but for their node's zone; each sends all
requests to the endpoints of its own zone; when those are removed, or fail and are
ejected, the zone-a client's requests go to zone-b.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from isthmus.testing.daemon import start_sidecar, wait_for
from isthmus.testing.envoy import EnvoyProcess
from isthmus.testing.load import LoadResult, run_requests
from isthmus.testing.mesh import NAMESPACE, Mesh
from isthmus.testing.ports import free_port
from isthmus.testing.upstream import UpstreamServer

pytestmark = pytest.mark.envoy


def fqdn(name: str, port: int = 8080) -> str:
    return f"{name}.{NAMESPACE}.svc.cluster.local:{port}"


def cluster_name(name: str) -> str:
    return f"outbound|8080||{name}.{NAMESPACE}.svc.cluster.local"


def entry(server: UpstreamServer, app: str, locality: str = "") -> str:
    where = f"\n  locality: {locality}" if locality else ""
    return f"""
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: {server.name}, namespace: {NAMESPACE}}}
spec:
  address: 127.0.0.1{where}
  labels: {{app: {app}}}
  ports: {{http: {server.port}}}
---
"""


def get(sidecar_port: int, host: str, count: int = 1) -> LoadResult:
    return run_requests(f"http://{host}/", count, 1, proxy=f"http://127.0.0.1:{sidecar_port}")


def dynamic_cluster(envoy: EnvoyProcess, name: str) -> dict[str, object]:
    dump = envoy.config_dump(resource="dynamic_active_clusters")
    for found in dump["configs"]:
        if found["cluster"]["name"] == name:
            cluster: dict[str, object] = found["cluster"]
            return cluster
    raise AssertionError(f"{name} not in {envoy.name}'s clusters")


# --- slow start ------------------------------------------------------------------------

WARMUP = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: warm, namespace: production}
spec:
  host: warm
  trafficPolicy:
    loadBalancer:
      simple: ROUND_ROBIN
      # A slow ramp ((t/10s)^4 of the weight, at least 1%): a new endpoint stays near 1%
      # for its first seconds, while one that joined 6 s earlier is at 13% and rising.
      warmup: {duration: 10s, minimumPercent: 1, aggression: 0.25}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: cold, namespace: production}
spec:
  host: cold
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
---
"""


def test_warmup_is_envoys_slow_start(mesh: Mesh) -> None:
    old = {name: mesh.upstream(f"{name}-old") for name in ("warm", "cold")}
    new = {name: mesh.upstream(f"{name}-new") for name in ("warm", "cold")}
    mesh.apply(
        mesh.service("warm")
        + mesh.service("cold")
        + entry(old["warm"], "warm")
        + entry(old["cold"], "cold")
        + WARMUP
    )
    for name in ("warm", "cold"):
        mesh.wait_routed(fqdn(name), f"{name}-old")

    cluster = dynamic_cluster(mesh.sidecar, cluster_name("warm"))
    assert "lb_policy" not in cluster  # ROUND_ROBIN, proto3's default
    assert cluster["round_robin_lb_config"] == {
        "slow_start_config": {
            "slow_start_window": "10s",
            "aggression": {"default_value": 0.25, "runtime_key": "("},
            "min_weight_percent": {"value": 1},
        }
    }
    assert "round_robin_lb_config" not in dynamic_cluster(mesh.sidecar, cluster_name("cold"))

    time.sleep(6)  # the old endpoints' age when the new ones join (see WARMUP)
    mesh.apply(entry(new["warm"], "warm") + entry(new["cold"], "cold"))
    for name in ("warm", "cold"):
        wait_for(
            lambda name=name: f"::127.0.0.1:{new[name].port}::" in mesh.sidecar.clusters_text(),  # type: ignore[misc]
            what=f"{name}'s new endpoint in Envoy",
        )
    warm = mesh.get(fqdn("warm"), count=100)
    cold = mesh.get(fqdn("cold"), count=100)
    assert warm.statuses == {200: 100} and cold.statuses == {200: 100}
    # Without warmup round robin gives the new endpoint half; warming up, a few percent.
    assert cold.upstreams["cold-new"] >= 40, cold.upstreams
    assert warm.upstreams.get("warm-new", 0) <= 20, warm.upstreams


# --- locality failover -----------------------------------------------------------------

NEARBY = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: nearby, namespace: production}
spec:
  host: nearby
  trafficPolicy:
    outlierDetection:
      consecutive5xxErrors: 1
      interval: 1s
      baseEjectionTime: 5m
      maxEjectionPercent: 100
---
"""


class Zones:
    """Two client sidecars alike (same namespace, labels) but for their node's zone."""

    def __init__(self, mesh: Mesh) -> None:
        self.ports = {"zone-a": free_port(), "zone-b": free_port()}
        self.sidecars = {
            zone: start_sidecar(
                mesh.daemon,
                Path(mesh.workdir) / zone,
                pod=f"client-{zone}",
                namespace=NAMESPACE,
                http_proxy_port=port,
                labels={"app": "client"},
                locality={"region": "r1", "zone": zone},
            )
            for zone, port in self.ports.items()
        }
        for sidecar in self.sidecars.values():
            sidecar.wait_ready(timeout=20)

    def get(self, zone: str, count: int = 1) -> LoadResult:
        return get(self.ports[zone], fqdn("nearby"), count)

    def stop(self) -> None:
        for sidecar in self.sidecars.values():
            sidecar.stop()


@pytest.fixture
def zones(mesh: Mesh) -> Iterator[Zones]:
    found = Zones(mesh)
    try:
        yield found
    finally:
        found.stop()


def test_locality_failover_prefers_the_proxys_zone(mesh: Mesh, zones: Zones) -> None:
    a1, a2, b1 = (mesh.upstream(name) for name in ("near-a1", "near-a2", "near-b1"))
    in_zone_a = entry(a1, "nearby", "r1/zone-a") + entry(a2, "nearby", "r1/zone-a")
    mesh.apply(mesh.service("nearby") + in_zone_a + entry(b1, "nearby", "r1/zone-b") + NEARBY)
    wait_for(lambda: zones.get("zone-a").statuses == {200: 1}, what="nearby routed from zone-a")
    wait_for(lambda: zones.get("zone-b").statuses == {200: 1}, what="nearby routed from zone-b")

    from_a, from_b = zones.get("zone-a", 40), zones.get("zone-b", 40)
    assert from_a.statuses == {200: 40} and from_b.statuses == {200: 40}
    assert set(from_a.upstreams) == {"near-a1", "near-a2"}, from_a.upstreams
    assert from_b.upstreams == {"near-b1": 40}
    # Envoy's own view: zone-a's client has its zone at priority 0, zone-b at 1.
    priorities = host_priorities(zones.sidecars["zone-a"], cluster_name("nearby"))
    assert priorities == {a1.port: 0, a2.port: 0, b1.port: 1}
    assert host_priorities(zones.sidecars["zone-b"], cluster_name("nearby")) == {
        a1.port: 1,
        a2.port: 1,
        b1.port: 0,
    }

    # Zone a's endpoints leave the service: its client fails over to zone b.
    mesh.apply(entry(a1, "elsewhere", "r1/zone-a") + entry(a2, "elsewhere", "r1/zone-a"))
    wait_for(lambda: zones.get("zone-a").upstreams == {"near-b1": 1}, what="failover to b")
    assert zones.get("zone-a", 30).upstreams == {"near-b1": 30}

    # They come back: traffic returns to zone a.
    mesh.apply(in_zone_a)
    wait_for(lambda: zones.get("zone-a").upstreams.get("near-b1") is None, what="back to a")
    back = zones.get("zone-a", 30)
    assert set(back.upstreams) <= {"near-a1", "near-a2"} and back.statuses == {200: 30}

    # Zone a's endpoints fail: outlier detection ejects them and traffic fails over.
    a1.status = a2.status = 500
    wait_for(lambda: zones.get("zone-a").upstreams == {"near-b1": 1}, what="ejection")
    after = zones.get("zone-a", 30)
    assert after.statuses == {200: 30} and after.upstreams == {"near-b1": 30}
    stat = f"cluster.{cluster_name('nearby')}.outlier_detection.ejections_enforced_total"
    assert zones.sidecars["zone-a"].stat(stat) >= 2
    assert zones.get("zone-b", 20).upstreams == {"near-b1": 20}


def host_priorities(envoy: EnvoyProcess, name: str) -> dict[int, int]:
    """Port -> priority of each host of cluster `name`, from Envoy's /clusters."""
    document = json.loads(envoy.admin_get("/clusters?format=json"))
    for status in document["cluster_statuses"]:
        if status["name"] == name:
            return {
                host["address"]["socket_address"]["port_value"]: host.get("priority", 0)
                for host in status.get("host_statuses", [])
            }
    raise AssertionError(f"{name} not in {envoy.name}'s /clusters")
