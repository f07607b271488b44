"""build_snapshot: Services and ServiceEntry hosts become services, selected workloads
become endpoints per service port, and the snapshot's version is its content."""

from __future__ import annotations

from collections.abc import Sequence

from isthmus.api.loader import load_documents
from isthmus.model.build import ConfigObject, build_snapshot
from isthmus.model.snapshot import MeshConfig, MeshSnapshot
from isthmus.model.types import Endpoint, Protocol, Resolution, Workload

INVENTORY = "inventory-service.production.svc.cluster.local"


def _mesh(text: str, workloads: Sequence[Workload] = (), **config: object) -> MeshSnapshot:
    """Documents are created in order, the first oldest, as a store would number them."""
    loaded = load_documents(text, "test.yaml")
    objects = [ConfigObject(o.resource, created_revision=i + 1) for i, o in enumerate(loaded)]
    return build_snapshot(objects, workloads, MeshConfig(**config))  # type: ignore[arg-type]


def _endpoints(mesh: MeshSnapshot, host: str, port: int) -> list[tuple[str, int]]:
    return [(e.address, e.port) for e in mesh.endpoints.of(host, port)]


SERVICE = """
apiVersion: v1
kind: Service
metadata: {name: inventory-service, namespace: production}
spec:
  clusterIP: 10.96.0.12
  selector: {app: inventory}
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: http-admin, port: 9000, targetPort: admin}
  - {name: tcp-metrics, port: 9100}
"""


def _entry(name: str, address: str, labels: str = "{app: inventory}", ports: str = "") -> str:
    return (
        "---\napiVersion: networking.istio.io/v1beta1\nkind: WorkloadEntry\n"
        f"metadata: {{name: {name}, namespace: production}}\n"
        f"spec: {{address: {address}, labels: {labels}{ports}}}\n"
    )


def test_kubernetes_service() -> None:
    mesh = _mesh(SERVICE)
    svc = mesh.services.get(INVENTORY)
    assert svc is not None
    assert (svc.namespace, svc.name, svc.address) == (
        "production",
        "inventory-service",
        "10.96.0.12",
    )
    assert svc.resolution is Resolution.CLIENT_SIDE_LB
    assert [(p.name, p.port, p.protocol, p.target_port) for p in svc.ports] == [
        ("http", 80, Protocol.HTTP, 8080),
        ("http-admin", 9000, Protocol.HTTP, None),
        ("tcp-metrics", 9100, Protocol.TCP, None),
    ]
    assert svc.selector == (("app", "inventory"),)
    assert svc.export_to == frozenset({"*"})


def test_headless_service_passes_through() -> None:
    mesh = _mesh(SERVICE.replace("clusterIP: 10.96.0.12", "clusterIP: None"))
    svc = mesh.services.get(INVENTORY)
    assert svc is not None and svc.address is None
    assert svc.resolution is Resolution.PASSTHROUGH


def test_workload_entry_ports_by_target_port_and_by_name() -> None:
    """targetPort int is the workload port; a named targetPort is looked up in the
    workload's ports; a port the workload names after the service port wins; no
    targetPort means the service port."""
    mesh = _mesh(
        SERVICE
        + _entry("plain", "10.44.0.7", ports=", ports: {admin: 9443}")
        + _entry("renamed", "10.44.0.8", ports=", ports: {http: 18080, tcp-metrics: 19100}")
    )
    assert _endpoints(mesh, INVENTORY, 80) == [("10.44.0.7", 8080), ("10.44.0.8", 18080)]
    # "renamed" has no port called "admin": it serves no endpoint for that service port.
    assert _endpoints(mesh, INVENTORY, 9000) == [("10.44.0.7", 9443)]
    assert _endpoints(mesh, INVENTORY, 9100) == [("10.44.0.7", 9100), ("10.44.0.8", 19100)]


def test_endpoint_carries_what_clusters_need() -> None:
    mesh = _mesh(
        SERVICE + "---\napiVersion: networking.istio.io/v1beta1\nkind: WorkloadEntry\n"
        "metadata: {name: weighted, namespace: production}\n"
        "spec: {address: 10.44.0.9, labels: {app: inventory, version: v2},"
        " serviceAccount: inventory, weight: 3}\n"
    )
    assert mesh.endpoints.of(INVENTORY, 80) == (
        Endpoint(
            address="10.44.0.9",
            port=8080,
            labels=(("app", "inventory"), ("version", "v2")),
            service_account="inventory",
            namespace="production",
            ready=True,
            weight=3,
            workload_name="weighted",
        ),
    )


def test_selector_namespace_and_readiness() -> None:
    workloads = [
        Workload(
            name="ready",
            namespace="production",
            address="10.44.0.1",
            labels=(("app", "inventory"),),
        ),
        Workload(
            name="starting",
            namespace="production",
            address="10.44.0.2",
            labels=(("app", "inventory"),),
            ready=False,
        ),
        Workload(
            name="elsewhere", namespace="shop", address="10.44.0.3", labels=(("app", "inventory"),)
        ),
        Workload(
            name="other-app",
            namespace="production",
            address="10.44.0.4",
            labels=(("app", "pricing"),),
        ),
    ]
    mesh = _mesh(SERVICE, workloads)
    found = {e.address: e.ready for e in mesh.endpoints.of(INVENTORY, 80)}
    assert found == {"10.44.0.1": True, "10.44.0.2": False}


def test_service_without_selector_has_no_endpoints() -> None:
    mesh = _mesh(SERVICE.replace("  selector: {app: inventory}\n", "") + _entry("a", "10.44.0.7"))
    assert mesh.endpoints.of(INVENTORY, 80) == ()


SERVICE_ENTRY = """
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: {name: payments, namespace: production}
spec:
  hosts: [api.payments.example.com, backup.payments.example.com]
  addresses: [192.168.10.5]
  ports:
  - {number: 443, name: https, protocol: HTTPS}
  - {number: 80, name: http, protocol: HTTP, targetPort: 8080}
  location: MESH_EXTERNAL
  resolution: STATIC
  exportTo: [., shop]
  endpoints:
  - {address: 10.1.0.1, labels: {zone: a}}
  - {address: 10.1.0.2, ports: {https: 8443}, weight: 2}
"""


def test_service_entry_hosts_are_services() -> None:
    mesh = _mesh(SERVICE_ENTRY)
    for host in ("api.payments.example.com", "backup.payments.example.com"):
        svc = mesh.services.get(host)
        assert svc is not None
        assert (svc.hostname, svc.name, svc.namespace) == (host, host, "production")
        assert (svc.address, svc.resolution, svc.mesh_external) == (
            "192.168.10.5",
            Resolution.CLIENT_SIDE_LB,
            True,
        )
        assert svc.export_to == frozenset({".", "shop"})
        assert svc.source_kind == "ServiceEntry"
        assert [(p.port, p.protocol) for p in svc.ports] == [
            (443, Protocol.HTTPS),
            (80, Protocol.HTTP),
        ]
    host = "api.payments.example.com"
    # Endpoint port: the endpoint's port of that name, else targetPort, else the number.
    assert _endpoints(mesh, host, 443) == [("10.1.0.1", 443), ("10.1.0.2", 8443)]
    assert _endpoints(mesh, host, 80) == [("10.1.0.1", 8080), ("10.1.0.2", 8080)]
    assert [e.weight for e in mesh.endpoints.of(host, 443)] == [None, 2]
    assert [s.hostname for s in mesh.services.visible_to("shop")] == [
        "api.payments.example.com",
        "backup.payments.example.com",
    ]
    assert mesh.services.visible_to("billing") == []


def test_dns_service_entry_without_endpoints_resolves_its_host() -> None:
    mesh = _mesh(
        """
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: {name: ext, namespace: production}
spec:
  hosts: [api.example.com]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
"""
    )
    svc = mesh.services.get("api.example.com")
    assert svc is not None and svc.resolution is Resolution.DNS and svc.address is None
    assert _endpoints(mesh, "api.example.com", 443) == [("api.example.com", 443)]


def test_resolution_none_and_cidr_addresses() -> None:
    mesh = _mesh(
        """
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: {name: partner, namespace: production}
spec:
  hosts: [partner.example.com]
  addresses: [10.10.0.0/16]
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  resolution: NONE
---
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: {name: single, namespace: production}
spec:
  hosts: [single.example.com]
  addresses: [192.168.0.9/32]
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  resolution: NONE
"""
    )
    partner = mesh.services.get("partner.example.com")
    single = mesh.services.get("single.example.com")
    assert partner is not None and single is not None
    assert partner.resolution is Resolution.PASSTHROUGH
    assert partner.address == "10.10.0.0/16"  # a CIDR block is an address too (Istio)
    assert single.address == "192.168.0.9"  # a /32 block is its one IP
    assert mesh.endpoints.of("partner.example.com", 5432) == ()


def test_every_service_entry_address_is_kept_for_every_host() -> None:
    """Istio's convertServices makes a service per (host, address): every host keeps
    every address, normalized (a block as network/prefix, a /32 as its IP), once."""
    mesh = _mesh(
        """
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: {name: partners, namespace: production}
spec:
  hosts: [a.example.com, b.example.com]
  addresses: [192.168.0.9, 10.10.3.4/16, 172.16.0.1/32, 10.10.0.0/16, "fd00::1/64"]
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  resolution: NONE
"""
    )
    expected = ("192.168.0.9", "10.10.0.0/16", "172.16.0.1", "fd00::/64")
    for host in ("a.example.com", "b.example.com"):
        svc = mesh.services.get(host)
        assert svc is not None and svc.addresses == expected, host
        assert svc.address == "192.168.0.9" and svc.extra_addresses == expected[1:]


def test_ipv6_service_entry_addresses() -> None:
    entry = """
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: {name: v6, namespace: production}
spec:
  hosts: [v6.example.com]
  addresses: ["ADDRESS"]
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  resolution: NONE
"""
    for address, expected in (
        ("fd00::1/128", "fd00::1"),
        ("fd00::1", "fd00::1"),
        ("fd00::/64", "fd00::/64"),
    ):
        svc = _mesh(entry.replace("ADDRESS", address)).services.get("v6.example.com")
        assert svc is not None and svc.address == expected, address


def _host_entry(name: str, address: str) -> str:
    return (
        "---\napiVersion: networking.istio.io/v1beta1\nkind: ServiceEntry\n"
        f"metadata: {{name: {name}, namespace: production}}\n"
        f"spec: {{hosts: [{INVENTORY}], ports: [{{number: 80, name: http, protocol: HTTP}}],"
        f" location: MESH_INTERNAL, resolution: STATIC, endpoints: [{{address: {address}}}]}}\n"
    )


def test_oldest_service_entry_owns_a_host() -> None:
    mesh = _mesh(_host_entry("first", "10.9.0.1") + _host_entry("second", "10.9.0.2"))
    assert _endpoints(mesh, INVENTORY, 80) == [("10.9.0.1", 80)]


def test_kubernetes_service_owns_its_host_whatever_was_created_first() -> None:
    workload = _entry("pod", "10.44.0.7")
    for text in (
        SERVICE + workload + _host_entry("squatter", "10.9.0.1"),
        _host_entry("squatter", "10.9.0.1") + "---" + SERVICE + workload,
    ):
        mesh = _mesh(text)
        svc = mesh.services.get(INVENTORY)
        assert svc is not None and svc.source_kind == "Service"
        assert _endpoints(mesh, INVENTORY, 80) == [("10.44.0.7", 8080)]


def test_version_is_the_content() -> None:
    pod = Workload("pod", "production", "10.0.0.1", labels=(("app", "inventory"),))
    stranger = Workload("stranger", "production", "10.0.0.2")
    assert _mesh(SERVICE).version == _mesh(SERVICE).version
    # A workload no service selects changes nothing; one that is selected does.
    assert _mesh(SERVICE).version == _mesh(SERVICE, [stranger]).version
    assert _mesh(SERVICE).version != _mesh(SERVICE, [pod]).version
    assert _mesh(SERVICE).version != _mesh(SERVICE.replace("9100", "9101")).version
    assert _mesh(SERVICE).version != _mesh(SERVICE, domain_suffix="mesh.example").version


def test_domain_suffix_names_services() -> None:
    mesh = _mesh(SERVICE, domain_suffix="mesh.example")
    assert [s.hostname for s in mesh.services.visible_to("production")] == [
        "inventory-service.production.svc.mesh.example"
    ]


def test_cluster_ips_are_allocated_stably_when_the_runtime_asks() -> None:
    from isthmus.model.build import allocate_cluster_ips
    from isthmus.model.types import Protocol, Service, ServicePort

    def svc(name: str, address: str | None = None) -> Service:
        host = f"{name}.ns.svc.cluster.local"
        return Service(host, "ns", name, (ServicePort("http", 80, Protocol.HTTP),), address)

    base = {s.hostname: s for s in (svc("a"), svc("b"), svc("fixed", "10.96.0.10"))}
    first = allocate_cluster_ips(base, "10.96.0.0/16")
    again = allocate_cluster_ips(dict(base), "10.96.0.0/16")
    assert first == again
    addresses = [s.address for s in first.values()]
    assert len(set(addresses)) == 3 and first["fixed.ns.svc.cluster.local"].address == "10.96.0.10"
    assert all(a is not None and a.startswith("10.96.") for a in addresses)
    # A tiny CIDR forces collisions: every service still gets a distinct host address.
    tiny = allocate_cluster_ips(
        {s.hostname: s for s in (svc("x"), svc("y"), svc("z"))}, "10.96.0.0/29"
    )
    assert len({s.address for s in tiny.values()}) == 3
    assert not {"10.96.0.0", "10.96.0.1", "10.96.0.7"} & {s.address for s in tiny.values()}
