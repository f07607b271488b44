"""Control-plane behaviour seen from a real Envoy: restart and resync, NACK handling, Delta xDS."""

from __future__ import annotations

import time

import pytest

from isthmus.testing.daemon import start_sidecar, wait_for
from isthmus.testing.envoy import EnvoyProcess
from isthmus.testing.load import SteadyLoad, run_requests
from isthmus.testing.mesh import NAMESPACE, Mesh
from isthmus.testing.ports import free_port

pytestmark = pytest.mark.envoy


def fqdn(name: str, port: int = 8080) -> str:
    return f"{name}.{NAMESPACE}.svc.cluster.local:{port}"


def _virtual_service(name: str) -> str:
    return f"""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, namespace: {NAMESPACE}}}
spec:
  hosts: [{name}]
  http:
  - match: [{{headers: {{x-beta-user: {{exact: "true"}}}}}}]
    route: [{{destination: {{host: {name}, subset: v2}}}}]
  - route: [{{destination: {{host: {name}, subset: v1}}}}]
"""


def _two_versions(mesh: Mesh, name: str) -> str:
    a, b = mesh.upstream(f"{name}-v1"), mesh.upstream(f"{name}-v2")
    return (
        mesh.service(name)
        + mesh.workload(name, a, "v1")
        + mesh.workload(name, b, "v2")
        + f"""
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {name}, namespace: {NAMESPACE}}}
spec:
  host: {name}
  subsets: [{{name: v1, labels: {{version: v1}}}}, {{name: v2, labels: {{version: v2}}}}]
---
"""
        + _virtual_service(name)
    )


def _proxy_status(mesh: Mesh, pod: str) -> dict[str, object]:
    for p in mesh.daemon.proxies():
        if str(p["node_id"]).split("~")[2].startswith(f"{pod}-"):
            return p
    return {}


def test_restart_keeps_objects_and_serving(mesh: Mesh) -> None:
    mesh.apply(_two_versions(mesh, "restart"))
    host = fqdn("restart")
    mesh.wait_routed(host, "restart-v2", headers={"x-beta-user": "true"})
    before = mesh.daemon.client.get("/v1/objects").json()["items"]

    load = SteadyLoad(f"http://{host}/", rate=100, max_duration=30, proxy=mesh.proxy, workers=2)
    load.start()
    try:
        time.sleep(0.5)
        mesh.daemon.kill()  # SIGKILL: no clean shutdown
        time.sleep(2.0)  # Envoy keeps serving its last config while the daemon is gone
        mesh.daemon.start()
        wait_for(lambda: bool(_proxy_status(mesh, "client")), timeout=20, what="Envoy reconnected")
        wait_for(
            lambda: bool(_proxy_status(mesh, "client").get("synced")),
            timeout=20,
            what="Envoy resynced",
        )
        time.sleep(0.5)
    finally:
        result = load.stop()
    after = mesh.daemon.client.get("/v1/objects").json()["items"]
    assert after == before
    assert result.count > 200
    assert result.failed == 0, (result.statuses, result.errors)
    # The resynced Envoy still routes by the VirtualService.
    beta = mesh.get(host, count=10, headers={"x-beta-user": "true"})
    assert beta.upstreams == {"restart-v2": 10}


def test_envoy_rejection_is_a_nack_visible_in_status(mesh: Mesh) -> None:
    """An Envoy that rejects a route config (here: one running Envoy's default RE2 program
    size limit of 100 instead of the 32768 our bootstraps and validation use) NACKs it,
    keeps serving its previous routes, and the status API carries Envoy's message, while a
    sidecar that accepts it moves on."""
    mesh.apply(_two_versions(mesh, "nacked"))
    host = fqdn("nacked")
    port = free_port()
    strict = start_sidecar(
        mesh.daemon,
        mesh.workdir / "strict",
        pod="strict-client-6b7c8d9e0-fghij",
        namespace=NAMESPACE,
        http_proxy_port=port,
        labels={"app": "strict-client"},
        runtime={"re2.max_program_size.error_level": 100},
    )
    try:
        strict.wait_ready(timeout=20)

        def via_strict(headers: dict[str, str] | None = None, count: int = 1) -> dict[str, int]:
            url = f"http://{host}/"
            proxy = f"http://127.0.0.1:{port}"
            return dict(run_requests(url, count, 1, headers=headers, proxy=proxy).upstreams)

        wait_for(lambda: via_strict({"x-beta-user": "true"}) == {"nacked-v2": 1}, what="routed")
        # RE2 accepts this and its program (2104 instructions) is within our limit.
        mesh.apply(f"""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: nacked, namespace: {NAMESPACE}}}
spec:
  hosts: [nacked]
  http:
  - match: [{{uri: {{regex: "/(items){{300}}"}}}}]
    route: [{{destination: {{host: nacked, subset: v1}}}}]
  - route: [{{destination: {{host: nacked, subset: v2}}}}]
""")

        def nack_message(pod: str) -> str:
            types = _proxy_status(mesh, pod).get("types", {})
            assert isinstance(types, dict)
            for type_url, entry in types.items():
                if type_url.endswith("RouteConfiguration") and entry.get("last_nack"):
                    return str(entry["last_nack"]["message"])
            return ""

        wait_for(lambda: bool(nack_message("strict-client")), timeout=15, what="NACK in status")
        assert "program size" in nack_message("strict-client"), nack_message("strict-client")
        # The strict Envoy still serves its previous routes: beta users to v2, others to v1.
        assert via_strict({"x-beta-user": "true"}, 5) == {"nacked-v2": 5}
        assert via_strict(count=5) == {"nacked-v1": 5}
        # The default sidecar accepted the new routes: everyone goes to v2 now.
        wait_for(lambda: mesh.get(host).upstreams == {"nacked-v2": 1}, what="new routes served")
        assert nack_message("client") == ""

        from click.testing import CliRunner

        from isthmus.cli.main import cli

        out = CliRunner().invoke(cli, ["--home", str(mesh.daemon.home), "proxy-status"])
        assert out.exit_code == 0, out.output
        strict_row = next(line for line in out.output.splitlines() if "strict-client" in line)
        assert "NACKED" in strict_row
        assert "program size" in out.output
    finally:
        strict.stop()


def _delta_sidecar(mesh: Mesh, app: str) -> tuple[EnvoyProcess, str]:
    """A ready Delta-xDS sidecar of workload `app` and its HTTP proxy URL."""
    port = free_port()
    sidecar = start_sidecar(
        mesh.daemon,
        mesh.workdir / app,
        pod=f"{app}-5c6d7f8b9-abcde",
        namespace=NAMESPACE,
        http_proxy_port=port,
        labels={"app": app},
        delta=True,
    )
    try:
        sidecar.wait_ready(timeout=20)
    except BaseException:
        sidecar.stop()
        raise
    return sidecar, f"http://127.0.0.1:{port}"


def test_delta_xds_sidecar_gets_the_same_routing(mesh: Mesh) -> None:
    mesh.apply(_two_versions(mesh, "deltasvc"))
    sidecar, proxy = _delta_sidecar(mesh, "delta-client")
    try:
        url = f"http://{fqdn('deltasvc')}/"
        wait_for(
            lambda: (
                run_requests(url, 1, 1, headers={"x-beta-user": "true"}, proxy=proxy).upstreams
                == {"deltasvc-v2": 1}
            ),
            what="delta sidecar routed",
        )
        assert run_requests(url, 20, 2, proxy=proxy).upstreams == {"deltasvc-v1": 20}
        status = _proxy_status(mesh, "delta-client")
        assert status["stream"] == "delta"
        # A change reaches the delta stream as well.
        mesh.apply(_virtual_service("deltasvc").replace("subset: v1", "subset: v2"))
        wait_for(
            lambda: run_requests(url, 1, 1, proxy=proxy).upstreams == {"deltasvc-v2": 1},
            what="delta update",
        )
    finally:
        sidecar.stop()


_CONFIG_CHANGES = (
    "cluster_manager.cluster_added",
    "cluster_manager.cluster_modified",
    "cluster_manager.cluster_removed",
    "listener_manager.listener_added",
    "listener_manager.listener_modified",
    "listener_manager.listener_removed",
)


def test_delta_resume_after_a_restart_sends_nothing_the_proxy_holds(mesh: Mesh) -> None:
    """isthmusd restarts while nothing changes: the Delta sidecar reconnects with its
    initial_resource_versions and is sent no resource (isthmusd's counters), Envoy changes
    no cluster or listener (its own counters), and no request fails meanwhile."""
    mesh.apply(_two_versions(mesh, "resume"))
    sidecar, proxy = _delta_sidecar(mesh, "resume-client")
    try:
        url = f"http://{fqdn('resume')}/"
        wait_for(
            lambda: run_requests(url, 1, 1, proxy=proxy).upstreams == {"resume-v1": 1},
            what="delta sidecar routed",
        )
        wait_for(lambda: bool(_proxy_status(mesh, "resume-client").get("synced")), timeout=20)
        held = _proxy_status(mesh, "resume-client")["types"]
        before = {name: sidecar.stat(name, 0) for name in _CONFIG_CHANGES}

        load = SteadyLoad(url, rate=100, max_duration=30, proxy=proxy, workers=2)
        load.start()
        try:
            mesh.daemon.stop()
            mesh.daemon.start()
            wait_for(lambda: bool(_proxy_status(mesh, "resume-client")), timeout=20)
            wait_for(
                lambda: bool(_proxy_status(mesh, "resume-client").get("synced")),
                timeout=20,
                what="Envoy resynced",
            )
            time.sleep(0.5)
        finally:
            result = load.stop()
        status = _proxy_status(mesh, "resume-client")
        assert status["stream"] == "delta"
        types = status["types"]
        assert set(types) == set(held)
        for type_url, entry in types.items():
            assert entry["resources_sent"] == 0, (type_url, entry)
            # It holds what it held before the restart.
            assert entry["resources"] == held[type_url]["resources"] > 0, (type_url, entry)
            assert entry["bytes"] == held[type_url]["bytes"], (type_url, entry)
        assert {name: sidecar.stat(name, 0) for name in _CONFIG_CHANGES} == before
        assert result.count > 100
        assert result.failed == 0, (result.statuses, result.errors)
    finally:
        sidecar.stop()


def _eds(mesh: Mesh) -> dict[str, object]:
    return _proxy_status(mesh, "client")["types"][  # type: ignore[index, no-any-return]
        "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
    ]


def _hosts(mesh: Mesh, cluster: str) -> set[str]:
    """The endpoints Envoy has for `cluster` (its admin /clusters)."""
    return {
        line.split("::")[1]
        for line in mesh.sidecar.clusters_text().splitlines()
        if line.startswith(cluster + "::") and line.split("::")[2] == "cx_active"
    }


def test_an_endpoint_change_sends_only_the_assignments_that_changed(mesh: Mesh) -> None:
    """SotW EDS is not state of the world: Envoy keeps the assignments a response lacks. A
    pod joining one service is pushed as that service's assignments only, and Envoy keeps
    every other cluster's endpoints."""
    steady, growing = mesh.upstream("steady-v1"), mesh.upstream("growing-v1")
    mesh.apply(
        mesh.service("steady")
        + mesh.workload("steady", steady)
        + mesh.service("growing")
        + mesh.workload("growing", growing)
    )
    mesh.wait_routed(fqdn("steady"), "steady-v1")
    mesh.wait_routed(fqdn("growing"), "growing-v1")
    wait_for(lambda: bool(_proxy_status(mesh, "client").get("synced")), timeout=20)
    steady_cluster = f"outbound|8080||{fqdn('steady').rsplit(':', 1)[0]}"
    growing_cluster = f"outbound|8080||{fqdn('growing').rsplit(':', 1)[0]}"
    before = _eds(mesh)
    assert before["resources"] >= 2  # type: ignore[operator]
    assert _hosts(mesh, steady_cluster) == {f"127.0.0.1:{steady.port}"}

    second = mesh.upstream("growing-v1b")
    mesh.apply(mesh.workload("growing", second))
    wait_for(
        lambda: (
            _hosts(mesh, growing_cluster)
            == {f"127.0.0.1:{growing.port}", f"127.0.0.1:{second.port}"}
        ),
        timeout=20,
        what="the new endpoint in Envoy",
    )
    wait_for(lambda: bool(_proxy_status(mesh, "client").get("synced")), timeout=20)
    after = _eds(mesh)
    # One assignment changed (growing has no subsets): one resource sent, all still held.
    assert after["resources_sent"] == before["resources_sent"] + 1  # type: ignore[operator]
    assert after["resources"] == before["resources"]
    assert _hosts(mesh, steady_cluster) == {f"127.0.0.1:{steady.port}"}
    assert mesh.get(fqdn("steady"), count=5).upstreams == {"steady-v1": 5}
