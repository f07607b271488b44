"""Sidecar injection switches and headless Services, as Istio and Kubernetes define them."""

from __future__ import annotations

from conftest import PYTHON, E2EMesh, app_deployment, service


def test_injection_switches_and_headless_services(mesh: E2EMesh) -> None:
    plain = app_deployment("plain", "plain", "v1", 1).replace(
        "    metadata: {labels: {app: plain, version: v1}}",
        "    metadata:\n      labels: {app: plain, version: v1}\n"
        '      annotations: {sidecar.istio.io/inject: "false"}',
    )
    mesh.apply(
        """
apiVersion: v1
kind: Namespace
metadata:
  name: legacy
  labels: {istio-injection: disabled}
---
"""
        + app_deployment("old", "old", "v1", 1, namespace="legacy")
        + plain
        + app_deployment("meshed", "meshed", "v1", 2)
        + """
apiVersion: v1
kind: Service
metadata: {name: meshed-headless, namespace: production}
spec:
  clusterIP: None
  selector: {app: meshed}
  ports: [{name: http, port: 8080}]
---
"""
        + service("meshed")
    )
    pods = mesh.wait_pods({"old": 1, "plain": 1, "meshed": 2})
    containers = {p["deployment"]: p["total_containers"] for p in pods}
    # istio-injection=disabled on the namespace and inject: "false" on the template: no sidecar.
    assert containers == {"old": 1, "plain": 1, "meshed": 2}

    # A headless Service resolves to the ready pods' own IPs; a normal one to its VIP.
    meshed_ips = {p["ip"] for p in pods if p["deployment"] == "meshed"}
    plain_pod = next(p for p in pods if p["deployment"] == "plain")
    script = (
        "import socket,sys;"
        "print(sorted({a[4][0] for a in socket.getaddrinfo(sys.argv[1], 8080, socket.AF_INET)}))"
    )
    headless = mesh.exec(plain_pod, PYTHON, "-c", script, "meshed-headless").strip()
    assert headless == str(sorted(meshed_ips))
    vip = mesh.exec(plain_pod, PYTHON, "-c", script, "meshed").strip()
    assert vip.startswith("['10.96.")

    # A pod without a sidecar has no capture rules: its traffic reaches pods directly.
    rules = mesh.cli("x", "iptables", plain_pod["name"], "-n", "production").stdout
    assert "15001" not in rules
    result = mesh.load(plain_pod, f"http://{sorted(meshed_ips)[0]}:8080/", "--count", "5")
    assert result["statuses"] == {"200": 5}
