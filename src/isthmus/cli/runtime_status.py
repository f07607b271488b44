"""What `isthmus get` shows of the running mesh rather than of stored objects: a
Service's endpoints (`get endpoints`) and a Deployment's status (READY, UP-TO-DATE,
AVAILABLE), as kubectl shows them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

import click

from isthmus.cli.columns import age
from isthmus.cli.context import CliContext
from isthmus.cli.errors import UserError
from isthmus.cli.pods import text_table
from isthmus.cli.render import as_document, to_json, to_yaml
from isthmus.daemon.client import DaemonError

Body = dict[str, Any]

ENDPOINT_KINDS = frozenset({"endpoints", "endpoint", "ep"})
SHOWN_ENDPOINTS = 3  # kubectl shows three, then "+ N more..."


def _ip_key(address: Body) -> tuple[int, int, int]:
    ip = ipaddress.ip_address(address["ip"])
    return (ip.version, int(ip), int(address["port"]))


def ready_endpoints(item: Body) -> list[str]:
    """The ready `ip:port` pairs of one service, in address order, each once."""
    ready = sorted((a for a in item["addresses"] if a["ready"]), key=_ip_key)
    return list(dict.fromkeys(f"{a['ip']}:{a['port']}" for a in ready))


def endpoints_cell(endpoints: Sequence[str], everything: bool = False) -> str:
    if not endpoints:
        return "<none>"
    if everything or len(endpoints) <= SHOWN_ENDPOINTS:
        return ",".join(endpoints)
    rest = len(endpoints) - SHOWN_ENDPOINTS
    return ",".join(endpoints[:SHOWN_ENDPOINTS]) + f" + {rest} more..."


def endpoints_table(items: Sequence[Body], with_namespace: bool, wide: bool) -> str:
    header = ["NAME", "ENDPOINTS", "AGE"]
    if wide:
        header.append("PODS")
    if with_namespace:
        header.insert(0, "NAMESPACE")
    rows = []
    for item in items:
        row = [
            item["name"],
            endpoints_cell(ready_endpoints(item), everything=wide),
            age({"metadata": {"creationTimestamp": item.get("creationTimestamp")}}),
        ]
        if wide:
            pods = sorted({a["pod"] for a in item["addresses"] if a["ready"] and a["pod"]})
            row.append(",".join(pods) or "<none>")
        if with_namespace:
            row.insert(0, item["namespace"])
        rows.append(row)
    return text_table(header, rows)


def endpoints_document(item: Body) -> Body:
    """One service's endpoints as a Kubernetes v1 Endpoints object: addresses grouped into
    subsets by the ports they serve, not-ready ones under notReadyAddresses."""
    ports_of: dict[str, set[tuple[str, int]]] = {}
    ready_of: dict[str, bool] = {}
    pod_of: dict[str, Body] = {}
    for a in item["addresses"]:
        ports_of.setdefault(a["ip"], set()).add((a["portName"], a["port"]))
        ready_of[a["ip"]] = a["ready"]
        pod_of[a["ip"]] = a
    subsets: dict[frozenset[tuple[str, int]], Body] = {}
    for ip in sorted(ports_of, key=lambda ip: _ip_key({"ip": ip, "port": 0})):
        ports = frozenset(ports_of[ip])
        subset = subsets.setdefault(
            ports,
            {
                "addresses": [],
                "notReadyAddresses": [],
                "ports": [
                    {"name": name, "port": port, "protocol": "TCP"} for name, port in sorted(ports)
                ],
            },
        )
        address: Body = {"ip": ip}
        owner = pod_of[ip]
        if owner["pod"]:
            address["targetRef"] = {
                "kind": "Pod",
                "name": owner["pod"],
                "namespace": owner["namespace"],
            }
        subset["addresses" if ready_of[ip] else "notReadyAddresses"].append(address)
    metadata: Body = {"name": item["name"], "namespace": item["namespace"]}
    if item.get("creationTimestamp"):
        metadata["creationTimestamp"] = item["creationTimestamp"]
    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": metadata,
        "subsets": [{k: v for k, v in subset.items() if v} for subset in subsets.values()],
    }


def get_endpoints(
    cli: CliContext,
    names: tuple[str, ...],
    namespace: str | None,
    all_namespaces: bool,
    output: str | None,
) -> None:
    """`get endpoints [NAME...]`: per Kubernetes Service, the ready pod addresses."""
    scope = None if all_namespaces else namespace or "default"
    params = {"namespace": scope} if scope is not None else {}
    with cli.client() as client:
        items = list(client.request("GET", "/v1/endpoints", params=params)["endpoints"])
    if names:
        items = [i for i in items if i["name"] in names]
    if output in ("yaml", "json"):
        if items or not names:
            documents = [endpoints_document(i) for i in items]
            document = as_document(documents, single=len(names) == 1)
            click.echo(to_yaml(document) if output == "yaml" else to_json(document))
    elif items:
        click.echo(endpoints_table(items, with_namespace=scope is None, wide=output == "wide"))
    elif not names:
        where = "" if scope is None else f" in {scope} namespace"
        click.echo(f"No resources found{where}.", err=True)
    missing = [n for n in dict.fromkeys(names) if n not in {i["name"] for i in items}]
    if missing:
        where = f" in namespace {scope}" if scope else ""
        raise UserError(*(f'endpoints "{n}" not found{where}' for n in missing))


# --- Deployments -------------------------------------------------------------------------


def with_deployment_status(cli: CliContext, bodies: list[Body]) -> list[Body]:
    """Deployment bodies with kubectl's `status` counts from the runtime's pods; unchanged
    when the runtime does not run (then only the stored spec is known)."""
    try:
        with cli.client() as client:
            answer = client.request("GET", "/v1/deployments")
    except DaemonError:
        return bodies
    if not answer.get("runtime"):
        return bodies
    status = {(d["namespace"], d["name"]): d for d in answer["deployments"]}
    out = []
    for body in bodies:
        meta = body.get("metadata", {})
        found = status.get((meta.get("namespace", "default"), meta.get("name")))
        counts = {
            "replicas": found["replicas"] if found else 0,
            "updatedReplicas": found["updatedReplicas"] if found else 0,
            "readyReplicas": found["readyReplicas"] if found else 0,
            "availableReplicas": found["availableReplicas"] if found else 0,
        }
        out.append({**body, "status": counts})
    return out


def _desired(body: Body) -> int:
    replicas = body.get("spec", {}).get("replicas")
    return replicas if isinstance(replicas, int) else 1


def _containers(body: Body) -> list[Body]:
    spec = body.get("spec", {}).get("template", {}).get("spec", {})
    return [c for c in spec.get("containers", []) if isinstance(c, dict)]


def has_status(bodies: Sequence[Body]) -> bool:
    return any("status" in b for b in bodies)


def deployments_table(bodies: Sequence[Body], with_namespace: bool, wide: bool) -> str:
    """kubectl's Deployment columns: READY ready/desired, UP-TO-DATE, AVAILABLE."""
    header = ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    if wide:
        header += ["CONTAINERS", "IMAGES", "SELECTOR"]
    if with_namespace:
        header.insert(0, "NAMESPACE")
    rows = []
    for body in bodies:
        meta, status = body.get("metadata", {}), body.get("status", {})
        row = [
            str(meta.get("name", "")),
            f"{status.get('readyReplicas', 0)}/{_desired(body)}",
            str(status.get("updatedReplicas", 0)),
            str(status.get("availableReplicas", 0)),
            age(body),
        ]
        if wide:
            containers = _containers(body)
            selector = body.get("spec", {}).get("selector", {}).get("matchLabels", {})
            row += [
                ",".join(str(c.get("name")) for c in containers) or "<none>",
                ",".join(str(c.get("image")) for c in containers) or "<none>",
                ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or "<none>",
            ]
        if with_namespace:
            row.insert(0, str(meta.get("namespace", "")))
        rows.append(row)
    return text_table(header, rows)
