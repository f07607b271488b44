"""The Sidecar kind in translation: which Sidecar applies (Istio's precedence), what each
resource type holds under it, REGISTRY_ONLY vs ALLOW_ANY, and view sharing by scope."""

from __future__ import annotations

import dataclasses

from _build import mesh_from_yaml
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2

from isthmus.model.snapshot import MeshSnapshot
from isthmus.model.types import Proxy
from isthmus.pilot.profile import ConfigGenerator
from isthmus.pilot.resources import CLUSTER, ENDPOINT, LISTENER, ROUTE, Snapshot
from isthmus.pilot.sidecar_scope import sidecar_scope

SERVICES = """
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {clusterIP: 10.96.0.10, selector: {app: web}, ports: [{name: http, port: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: cart, namespace: shop}
spec:
  clusterIP: 10.96.0.11
  selector: {app: cart}
  ports: [{name: http, port: 8080}, {name: tcp-redis, port: 6379}]
---
apiVersion: v1
kind: Service
metadata: {name: ledger, namespace: bank}
spec: {clusterIP: 10.96.0.20, selector: {app: ledger}, ports: [{name: http, port: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: vault, namespace: bank}
spec: {clusterIP: 10.96.0.21, selector: {app: vault}, ports: [{name: tcp, port: 7000}]}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ledger-1, namespace: bank}
spec: {address: 10.44.0.30, labels: {app: ledger}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: cart-1, namespace: shop}
spec: {address: 10.44.0.31, labels: {app: cart}}
"""


def sidecar(name: str, namespace: str, spec: str) -> str:
    return (
        f"---\napiVersion: networking.istio.io/v1\nkind: Sidecar\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\nspec: {spec}\n"
    )


def proxy(namespace: str = "shop", **labels: str) -> Proxy:
    return Proxy(
        id=f"sidecar~10.44.0.9~p.{namespace}~{namespace}.svc.cluster.local",
        namespace=namespace,
        labels=tuple(sorted(labels.items())),
    )


def mesh_of(*sidecars: str) -> MeshSnapshot:
    mesh, _ = mesh_from_yaml(SERVICES + "".join(sidecars))
    return mesh


def snapshot(mesh: MeshSnapshot, who: Proxy) -> Snapshot:
    return ConfigGenerator().snapshot(mesh, who)


def outbound_clusters(snap: Snapshot) -> set[str]:
    return {n for n in snap.of_type(CLUSTER) if n.startswith("outbound|")}


def route_config(snap: Snapshot, name: str) -> route_pb2.RouteConfiguration:
    message = route_pb2.RouteConfiguration()
    snap.of_type(ROUTE)[name].any.Unpack(message)
    return message


def listener(snap: Snapshot, name: str) -> listener_pb2.Listener:
    message = listener_pb2.Listener()
    snap.of_type(LISTENER)[name].any.Unpack(message)
    return message


NAMESPACE_DEFAULT = sidecar("default", "shop", "{egress: [{hosts: ['./*']}]}")
ROOT_DEFAULT = sidecar("default", "istio-system", "{egress: [{hosts: ['bank/*']}]}")
WORKLOAD = sidecar(
    "web", "shop", "{workloadSelector: {labels: {app: web}}, egress: [{hosts: ['*/*']}]}"
)


# --- precedence --------------------------------------------------------------------


def test_no_sidecar_sees_everything_as_today() -> None:
    assert sidecar_scope(mesh_of(), "shop", ()).egress is None
    assert outbound_clusters(snapshot(mesh_of(), proxy())) == {
        "outbound|8080||web.shop.svc.cluster.local",
        "outbound|8080||cart.shop.svc.cluster.local",
        "outbound|6379||cart.shop.svc.cluster.local",
        "outbound|8080||ledger.bank.svc.cluster.local",
        "outbound|7000||vault.bank.svc.cluster.local",
    }


def test_workload_over_namespace_over_root_namespace() -> None:
    mesh = mesh_of(ROOT_DEFAULT, NAMESPACE_DEFAULT, WORKLOAD)
    assert sidecar_scope(mesh, "shop", (("app", "web"),)).sidecar == "shop/web"
    assert sidecar_scope(mesh, "shop", (("app", "cart"),)).sidecar == "shop/default"
    # A namespace without a Sidecar of its own takes the root namespace's; `.` there is
    # the proxy's namespace.
    assert sidecar_scope(mesh, "bank", ()).sidecar == "istio-system/default"
    # A workload Sidecar in the root namespace applies to the root namespace only.
    root_workload = sidecar(
        "w", "istio-system", "{workloadSelector: {labels: {app: web}}, egress: [{hosts: ['~/*']}]}"
    )
    assert sidecar_scope(mesh_of(root_workload), "shop", (("app", "web"),)).egress is None


def test_the_oldest_namespace_sidecar_wins() -> None:
    newer = sidecar("newer", "shop", "{egress: [{hosts: ['bank/*']}]}")
    mesh = mesh_of(NAMESPACE_DEFAULT, newer)
    assert sidecar_scope(mesh, "shop", ()).sidecar == "shop/default"
    mesh = mesh_of(newer, NAMESPACE_DEFAULT)
    assert sidecar_scope(mesh, "shop", ()).sidecar == "shop/newer"


# --- scoping of each resource type ---------------------------------------------------


def test_namespace_sidecar_scopes_clusters_endpoints_routes_and_listeners() -> None:
    snap = snapshot(mesh_of(NAMESPACE_DEFAULT), proxy(app="cart"))
    assert outbound_clusters(snap) == {
        "outbound|8080||web.shop.svc.cluster.local",
        "outbound|8080||cart.shop.svc.cluster.local",
        "outbound|6379||cart.shop.svc.cluster.local",
    }
    assert set(snap.of_type(ENDPOINT)) == {
        "outbound|8080||web.shop.svc.cluster.local",
        "outbound|8080||cart.shop.svc.cluster.local",
        "outbound|6379||cart.shop.svc.cluster.local",
    }
    vhosts = [v.name for v in route_config(snap, "8080").virtual_hosts]
    assert vhosts == [
        "cart.shop.svc.cluster.local:8080",
        "web.shop.svc.cluster.local:8080",
        "allow_any",
    ]
    assert "10.96.0.21_7000" not in snap.of_type(LISTENER)  # bank's vault: not imported
    assert "10.96.0.11_6379" in snap.of_type(LISTENER)


def test_port_specific_egress_listener_owns_its_port() -> None:
    spec = (
        "{egress: [{port: {number: 8080, protocol: HTTP},"
        " hosts: ['bank/ledger.bank.svc.cluster.local']}, {hosts: ['./*']}]}"
    )
    snap = snapshot(mesh_of(sidecar("default", "shop", spec)), proxy())
    # On 8080 only bank's ledger; shop's services only on their other ports.
    vhosts = [v.name for v in route_config(snap, "8080").virtual_hosts]
    assert vhosts == ["ledger.bank.svc.cluster.local:8080", "allow_any"]
    assert outbound_clusters(snap) == {
        "outbound|8080||ledger.bank.svc.cluster.local",
        "outbound|8080||web.shop.svc.cluster.local",
        "outbound|8080||cart.shop.svc.cluster.local",
        "outbound|6379||cart.shop.svc.cluster.local",
    }
    assert "10.96.0.11_6379" in snap.of_type(LISTENER)


def test_export_to_still_applies_inside_the_egress_hosts() -> None:
    private = (
        "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
        "metadata: {name: private, namespace: bank}\n"
        "spec: {hosts: [secret.bank.example.com], exportTo: ['.'], resolution: DNS,"
        " ports: [{number: 443, name: tls, protocol: TLS}]}\n"
    )
    spec = "{egress: [{hosts: ['*/*']}]}"
    mesh, _ = mesh_from_yaml(SERVICES + private + sidecar("default", "shop", spec))
    clusters = outbound_clusters(snapshot(mesh, proxy()))
    assert "outbound|443||secret.bank.example.com" not in clusters
    assert "outbound|8080||ledger.bank.svc.cluster.local" in clusters


def test_explicit_namespace_import_takes_precedence_over_wildcard_namespace() -> None:
    spec = "{egress: [{hosts: ['*/*', 'bank/ledger.bank.svc.cluster.local']}]}"
    clusters = outbound_clusters(snapshot(mesh_of(sidecar("d", "shop", spec)), proxy()))
    assert "outbound|8080||ledger.bank.svc.cluster.local" in clusters
    assert "outbound|7000||vault.bank.svc.cluster.local" not in clusters
    assert "outbound|8080||web.shop.svc.cluster.local" in clusters


# --- outboundTrafficPolicy -----------------------------------------------------------


def _catch_alls(snap: Snapshot) -> tuple[str, str]:
    vhost = route_config(snap, "8080").virtual_hosts[-1]
    outbound = listener(snap, "virtualOutbound")
    return vhost.name, outbound.default_filter_chain.name


def test_registry_only_blocks_unknown_destinations_allow_any_passes_them() -> None:
    assert _catch_alls(snapshot(mesh_of(), proxy())) == ("allow_any", "PassthroughCluster")
    registry_only = sidecar(
        "default", "shop", "{egress: [{hosts: ['./*']}], outboundTrafficPolicy: {}}"
    )
    snap = snapshot(mesh_of(registry_only), proxy())
    assert _catch_alls(snap) == ("block_all", "BlackHoleCluster")
    block_all = route_config(snap, "8080").virtual_hosts[-1].routes[0]
    assert block_all.name == "block_all"
    assert block_all.direct_response.status == 502


def test_mesh_config_default_and_sidecar_override() -> None:
    mesh = mesh_of()
    config = dataclasses.replace(mesh.config, outbound_traffic_policy="REGISTRY_ONLY")
    strict = dataclasses.replace(mesh, config=config)
    assert _catch_alls(snapshot(strict, proxy())) == ("block_all", "BlackHoleCluster")
    allow = sidecar("default", "shop", "{outboundTrafficPolicy: {mode: ALLOW_ANY}}")
    mesh = mesh_of(allow)
    strict = dataclasses.replace(mesh, config=config)
    snap = snapshot(strict, proxy())
    assert _catch_alls(snap) == ("allow_any", "PassthroughCluster")
    # Without egress, that Sidecar imports everything (Istio's default `*/*`).
    assert "outbound|7000||vault.bank.svc.cluster.local" in outbound_clusters(snap)


def test_sniffed_ports_default_chain_follows_the_policy() -> None:
    sniffed = (
        "---\napiVersion: v1\nkind: Service\nmetadata: {name: legacy, namespace: shop}\n"
        "spec: {clusterIP: 10.96.0.15, selector: {app: legacy}, ports: [{name: x, port: 3000}]}\n"
    )
    registry_only = sidecar(
        "default", "shop", "{egress: [{hosts: ['./*']}], outboundTrafficPolicy: {}}"
    )
    mesh, _ = mesh_from_yaml(SERVICES + sniffed + registry_only)
    port = listener(snapshot(mesh, proxy()), "0.0.0.0_3000")
    assert port.default_filter_chain.name == "BlackHoleCluster"


# --- views are shared by scope ---------------------------------------------------------


def test_proxies_of_one_scope_share_views_a_workload_sidecar_splits_them() -> None:
    generator = ConfigGenerator()
    mesh = mesh_of(NAMESPACE_DEFAULT, WORKLOAD)
    cart = generator.snapshot(mesh, proxy(app="cart"))
    other = generator.snapshot(mesh, proxy(app="other"))
    web = generator.snapshot(mesh, proxy(app="web"))
    assert (
        cart.of_type(CLUSTER)["outbound|8080||web.shop.svc.cluster.local"]
        is (other.of_type(CLUSTER)["outbound|8080||web.shop.svc.cluster.local"])
    )
    assert "outbound|8080||ledger.bank.svc.cluster.local" in web.of_type(CLUSTER)
    assert "outbound|8080||ledger.bank.svc.cluster.local" not in cart.of_type(CLUSTER)
