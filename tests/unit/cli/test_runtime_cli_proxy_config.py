"""`proxy-config` tables read from Envoy's JSON: the input is what pilot really generates
for the seed's inventory-service (serialized as Envoy's admin API prints it, proto field
names), wrapped in a /config_dump document."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from isthmus.api.loader import parse_resource
from isthmus.cli.proxy_config import (
    Filters,
    cluster_rows,
    dumped_clusters,
    dumped_listeners,
    dumped_routes,
    endpoint_rows,
    listener_rows,
    parse_cluster_name,
    route_rows,
    select,
)
from isthmus.demo.seed import SEED_YAML
from isthmus.model.build import ConfigObject, build_snapshot
from isthmus.model.types import Proxy, Workload
from isthmus.pilot.profile import ConfigGenerator
from isthmus.pilot.resources import CLUSTER, LISTENER, ROUTE
from isthmus.testing.protojson import message_to_dict, unpack

SERVICE = """
apiVersion: v1
kind: Service
metadata: {name: inventory-service, namespace: production}
spec:
  selector: {app: inventory-service}
  ports: [{name: http, port: 8080}]
"""
FQDN = "inventory-service.production.svc.cluster.local"
ADMIN = "type.googleapis.com/envoy.admin.v3."


@pytest.fixture(scope="module")
def dump() -> dict[str, Any]:
    """A /config_dump of an order-service sidecar in the seed's mesh."""
    documents = [d for d in yaml.safe_load_all(SERVICE + "---\n" + SEED_YAML) if d]
    objects = [ConfigObject(parse_resource(d), i + 1) for i, d in enumerate(documents)]
    workloads = [
        Workload("inv-1", "production", "10.44.0.5", (("app", "inventory-service"),)),
    ]
    proxy = Proxy(
        id="sidecar~10.44.0.7~order-1.production~production.svc.cluster.local",
        namespace="production",
        ip="10.44.0.7",
        inbound_ports=(8080,),
    )
    snapshot = ConfigGenerator().snapshot(build_snapshot(objects, workloads), proxy)

    def resources(type_url: str) -> list[dict[str, Any]]:
        return [
            {"@type": type_url, **message_to_dict(unpack(r.any))}
            for r in snapshot.of_type(type_url).values()
        ]

    return {
        "configs": [
            {"@type": ADMIN + "BootstrapConfigDump"},
            {
                "@type": ADMIN + "ClustersConfigDump",
                "dynamic_active_clusters": [{"cluster": c} for c in resources(CLUSTER)],
            },
            {
                "@type": ADMIN + "ListenersConfigDump",
                "dynamic_listeners": [
                    {"name": li["name"], "active_state": {"listener": li}}
                    for li in resources(LISTENER)
                ],
            },
            {
                "@type": ADMIN + "RoutesConfigDump",
                "dynamic_route_configs": [{"route_config": r} for r in resources(ROUTE)],
            },
        ]
    }


def test_listeners_show_capture_listeners_and_where_chains_go(dump: dict[str, Any]) -> None:
    rows = listener_rows(dumped_listeners(dump))
    by_name = {row[0] for row in rows}
    assert {"virtualOutbound", "virtualInbound"} <= by_name
    outbound = [r for r in rows if r[0] == "virtualOutbound"]
    assert [r[1:3] for r in outbound] == [["0.0.0.0", "15001"]]
    assert ["8080", "Route: 8080"] in [[r[2], r[4]] for r in rows if r[0] == "0.0.0.0_8080"]
    inbound = [r for r in rows if r[0] == "virtualInbound"]
    assert any("port 8080" in r[3] for r in inbound)
    assert any(r[4].startswith("Inline Route: inbound|8080") for r in inbound)


def test_routes_show_header_matches_as_envoy_holds_them(dump: dict[str, Any]) -> None:
    """The seed's debugging story: the compiled header matcher, name case and all."""
    rows = [r for r in route_rows(dumped_routes(dump)) if r[0] == "8080"]
    vhost = [r for r in rows if r[1] == f"{FQDN}:8080"]
    assert [r[3] for r in vhost] == ["/* [x-beta-user=true]", "/*"]
    assert vhost[0][2].startswith(f"{FQDN}, {FQDN}:8080 + ")
    only = select("routes", dumped_routes(dump), Filters(name="8080"))
    assert [r["name"] for r in only] == ["8080"]


def test_clusters_split_istio_names_and_name_the_destination_rule(dump: dict[str, Any]) -> None:
    rows = cluster_rows(dumped_clusters(dump))
    assert [FQDN, "8080", "v2", "outbound", "EDS", "inventory-service.production"] in rows
    assert ["", "8080", "-", "inbound", "STATIC", "-"] in rows
    assert ["BlackHoleCluster", "-", "-", "-", "STATIC", "-"] in rows
    v1_only = select("clusters", dumped_clusters(dump), Filters(fqdn=FQDN, port=8080))
    assert {parse_cluster_name(c["name"]).subset for c in v1_only} == {"-", "v1", "v2"}


def test_endpoints_from_the_clusters_admin_page() -> None:
    """/clusters?format=json as Envoy prints it, including an outlier-ejected host."""
    statuses = [
        {
            "name": f"outbound|8080|v1|{FQDN}",
            "host_statuses": [
                {
                    "address": {"socket_address": {"address": "10.44.0.5", "port_value": 8080}},
                    "health_status": {"eds_health_status": "HEALTHY"},
                },
                {
                    "address": {"socket_address": {"address": "10.44.0.6", "port_value": 8080}},
                    "health_status": {"eds_health_status": "HEALTHY", "failed_outlier_check": True},
                },
            ],
        },
        {"name": "xds-grpc", "host_statuses": [{"address": {"pipe": {"path": "/run/x/XDS"}}}]},
    ]
    wanted = select("endpoints", statuses, Filters(cluster=f"outbound|8080|v1|{FQDN}"))
    assert endpoint_rows(wanted) == [
        ["10.44.0.5:8080", "HEALTHY", "OK", f"outbound|8080|v1|{FQDN}"],
        ["10.44.0.6:8080", "HEALTHY", "FAILED", f"outbound|8080|v1|{FQDN}"],
    ]
    assert endpoint_rows(statuses[1:]) == [["/run/x/XDS", "UNKNOWN", "OK", "xds-grpc"]]
