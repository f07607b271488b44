"""Pods with sidecars calling each other by service name, and the seed's traffic rules."""

from __future__ import annotations

import json
import subprocess
import time

from conftest import ISTHMUS, PYTHON, E2EMesh, app_deployment, service

from isthmus.demo.seed import SEED_YAML

INVENTORY = "inventory-service.production.svc.cluster.local"


def _rollback_vs() -> str:
    vs = SEED_YAML[SEED_YAML.index("# VirtualService") :]
    return vs.replace("weight: 95", "weight: 100").replace("weight: 5", "weight: 0")


def test_seed_canary_through_real_sidecars(mesh: E2EMesh) -> None:
    mesh.apply(
        service("inventory-service")
        + service("order-service")
        + app_deployment("inventory-v1", "inventory-service", "v1", 4)
        + app_deployment("inventory-v2", "inventory-service", "v2", 1)
        + app_deployment("order-service", "order-service", "v1", 1)
        + SEED_YAML
    )
    mesh.wait_pods({"inventory-v1": 4, "inventory-v2": 1, "order-service": 1})
    order = mesh.pod("order-service")

    # By short name, name.ns and FQDN, through client Envoy -> server Envoy -> app.
    before_out = mesh.envoy_stat(order, f"cluster.outbound|8080|v1|{INVENTORY}.upstream_rq_total")
    for host in ("inventory-service", "inventory-service.production", INVENTORY):
        result = mesh.load(order, f"http://{host}:8080/items/1", "--count", "20")
        assert result["statuses"] == {"200": 20}, (host, result)
    after_out = mesh.envoy_stat(order, f"cluster.outbound|8080|v1|{INVENTORY}.upstream_rq_total")
    assert after_out - before_out >= 40  # ~95% of 60 went to v1 through the client Envoy

    # Beta users always reach v2.
    beta = mesh.load(
        order,
        "http://inventory-service:8080/items",
        "--count",
        "200",
        "--header",
        "x-beta-user:true",
    )
    assert beta["statuses"] == {"200": 200}
    assert beta["versions"] == {"inventory-service/v2": 200}
    # ... and passed the server-side Envoy of the v2 pod on their way in.
    inventory = mesh.pod("inventory-v2")
    assert mesh.envoy_stat(inventory, "cluster.inbound|8080||.upstream_rq_total") >= 200

    # The 95/5 split (statistical bound: 3.5%..6.5% of 2000 is about +-3 sigma).
    split = mesh.load(
        order, "http://inventory-service:8080/items", "--count", "2000", "--concurrency", "4"
    )
    assert split["statuses"] == {"200": 2000}, split
    share = split["versions"].get("inventory-service/v2", 0) / 2000
    assert 0.035 <= share <= 0.065, split["versions"]
    assert len(split["pods"]) == 5  # every pod of both versions served

    # Rollback by weight under load: zero failed requests, then no v2 at all.
    load = subprocess.Popen(
        [
            *_exec_argv(mesh, order),
            PYTHON,
            "-m",
            "isthmus.demo.load",
            "http://inventory-service:8080/items",
            "--count",
            "100000",
            "--duration",
            "6",
            "--concurrency",
            "2",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(2)
    mesh.apply(_rollback_vs())
    out, _ = load.communicate(timeout=60)
    during = json.loads(out.strip().splitlines()[-1])
    assert set(during["statuses"]) == {"200"}, during
    after = mesh.load(order, "http://inventory-service:8080/items", "--count", "300")
    assert after["versions"] == {"inventory-service/v1": 300}


def _exec_argv(mesh: E2EMesh, pod: dict[str, object]) -> list[str]:
    return [
        ISTHMUS,
        "--home",
        str(mesh.home),
        "exec",
        str(pod["name"]),
        "-n",
        str(pod["namespace"]),
        "--",
    ]
