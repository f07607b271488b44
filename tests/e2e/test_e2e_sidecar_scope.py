"""The Sidecar kind between real pods: REGISTRY_ONLY keeps a workload to its egress hosts
(Istio's 502 from `block_all` for HTTP), a workloadSelector Sidecar overrides the
namespace's for one workload, and ALLOW_ANY lets unknown destinations pass through.

Only mesh addresses are used: a Service in another namespace the Sidecar does not
import, and the IP of a pod no Service selects (not in the registry)."""

from __future__ import annotations

from typing import Any

from conftest import E2EMesh, app_deployment, apply_in_effect, service, wait_until

PRODUCTION_DEFAULT = """
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: default, namespace: production}}
spec:
  egress:
  - hosts: ["./*", "istio-system/*"]
  outboundTrafficPolicy: {{mode: {mode}}}
"""

SPECIAL_CLIENT = """
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: special-client, namespace: production}
spec:
  workloadSelector: {labels: {app: special-client}}
  egress:
  - hosts: ["*/*"]
  outboundTrafficPolicy: {mode: ALLOW_ANY}
"""


def _statuses(mesh: E2EMesh, pod: dict[str, Any], url: str) -> dict[str, int]:
    return dict(mesh.load(pod, url, "--count", "5", "--concurrency", "1")["statuses"])


def test_sidecar_scope_between_real_pods(mesh: E2EMesh) -> None:
    mesh.apply(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: finance}\n---\n"
        + service("inventory-service")
        + service("ledger", "finance")
        + app_deployment("inventory-service", "inventory-service", "v1", 1)
        + app_deployment("ledger", "ledger", "v1", 1, "finance")
        + app_deployment("order-service", "order-service", "v1", 1)
        + app_deployment("special-client", "special-client", "v1", 1)
        # A pod no Service selects: its IP:8080 is outside every registry.
        + app_deployment("stray", "stray", "v1", 1)
    )
    mesh.wait_pods(
        {"inventory-service": 1, "ledger": 1, "order-service": 1, "special-client": 1, "stray": 1}
    )
    order, special = mesh.pod("order-service"), mesh.pod("special-client")
    stray = f"http://{mesh.pod('stray')['ip']}:8080/"
    ledger = "http://ledger.finance:8080/"
    inventory = "http://inventory-service:8080/items"

    # No Sidecar: everything is visible, unknown destinations pass through.
    assert _statuses(mesh, order, ledger) == {"200": 5}
    assert _statuses(mesh, order, stray) == {"200": 5}

    # The namespace's Sidecar, REGISTRY_ONLY: its own namespace only; finance's ledger
    # (not imported) and the stray pod (not registered) get block_all's 502.
    apply_in_effect(mesh, PRODUCTION_DEFAULT.format(mode="REGISTRY_ONLY"))
    assert _statuses(mesh, order, inventory) == {"200": 5}
    assert _statuses(mesh, order, ledger) == {"502": 5}
    assert _statuses(mesh, order, stray) == {"502": 5}
    assert (
        mesh.cli("get", "sidecars", "-n", "production").stdout.split("\n")[1].startswith("default")
    )

    # A workloadSelector Sidecar overrides the namespace's for special-client only.
    apply_in_effect(mesh, SPECIAL_CLIENT, node_part="special-client")
    assert _statuses(mesh, special, ledger) == {"200": 5}
    assert _statuses(mesh, special, stray) == {"200": 5}
    assert _statuses(mesh, order, ledger) == {"502": 5}

    # ALLOW_ANY: the unregistered pod is reached again, through PassthroughCluster.
    apply_in_effect(mesh, PRODUCTION_DEFAULT.format(mode="ALLOW_ANY"))
    assert _statuses(mesh, order, stray) == {"200": 5}
    assert mesh.envoy_stat(order, "cluster.PassthroughCluster.upstream_rq_total") >= 5

    # Deleting the Sidecars restores the default: everything visible again.
    mesh.cli("delete", "sidecar", "default", "-n", "production")
    mesh.cli("delete", "sidecars", "special-client", "-n", "production")
    assert "special-client" not in mesh.cli("get", "sidecars", "-A").stdout
    wait_until(lambda: _statuses(mesh, order, ledger) == {"200": 5}, 20, "ledger visible again")
