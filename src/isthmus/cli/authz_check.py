"""`isthmus x authz check POD`: what a sidecar's Envoy enforces, read from its own config
dump (istioctl x authz check), and, with `--request`, its decision for one request.

The table lists each RBAC filter of the inbound listener's chains: ACTION (ALLOW, DENY,
AUDIT, or *-dry-run for shadow rules), the AuthorizationPolicy (`name.namespace`) and
its number of rules. The decision comes from the RBAC filters of the chain that serves
the request's port (HTTP filters on HTTP ports), evaluated with Envoy's semantics.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import click
from envoy.config.listener.v3 import listener_components_pb2 as lc
from envoy.config.listener.v3 import listener_pb2
from envoy.config.rbac.v3 import rbac_pb2
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as http_rbac_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)
from envoy.extensions.filters.network.rbac.v3 import rbac_pb2 as network_rbac_pb2
from google.protobuf import json_format

from isthmus.cli.context import CliContext, pass_cli
from isthmus.cli.errors import UserError
from isthmus.cli.pods import find_pod, text_table
from isthmus.cli.proxy_config import AdminError, _admin_json, dumped_listeners
from isthmus.cli.waiting import timeout_option
from isthmus.cli.xcmd import require_root

# Parsing the dumped listener needs every type pilot puts in it registered: importing
# the generators registers them.
from isthmus.pilot import profile as _types  # noqa: F401
from isthmus.pilot.authz.evaluate import Decision, evaluate, rbac_config
from isthmus.pilot.authz.request import Request
from isthmus.pilot.envoy.path_normalization import envoy_path
from isthmus.pilot.generators.inbound_listener import is_refusal

Body = dict[str, Any]
_POLICY_NAME = re.compile(
    r"^ns\[(?P<ns>[^\]]*)\]-policy\[(?P<name>[^\]]*)\]-rule\[(?P<rule>\d+)\]$"
)
_ACTIONS = {rbac_pb2.RBAC.ALLOW: "ALLOW", rbac_pb2.RBAC.DENY: "DENY", rbac_pb2.RBAC.LOG: "AUDIT"}


def inbound_listener(dump: Body) -> listener_pb2.Listener:
    for listener in dumped_listeners(dump):
        if listener.get("name") == "virtualInbound":
            message = listener_pb2.Listener()
            json_format.ParseDict(listener, message, ignore_unknown_fields=True)
            return message
    raise UserError("the sidecar holds no virtualInbound listener (not configured yet?)")


def _rbac(
    envoy_filter: hcm.HttpFilter | lc.Filter,
) -> http_rbac_pb2.RBAC | network_rbac_pb2.RBAC | None:
    try:
        return rbac_config(envoy_filter)[0]
    except ValueError:  # not an RBAC filter
        return None


def chain_filters(chain: lc.FilterChain) -> list[hcm.HttpFilter | lc.Filter]:
    """The RBAC filters a chain runs: network ones, then those of its HTTP manager."""
    out: list[hcm.HttpFilter | lc.Filter] = [f for f in chain.filters if _rbac(f) is not None]
    manager = _manager(chain)
    if manager is not None:
        out.extend(f for f in manager.http_filters if _rbac(f) is not None)
    return out


def policy_rows(listener: listener_pb2.Listener) -> list[list[str]]:
    """One row per (action, AuthorizationPolicy) with its rule count, as istioctl."""
    seen: dict[tuple[str, str], set[int]] = {}
    for chain in [*listener.filter_chains, listener.default_filter_chain]:
        for envoy_filter in chain_filters(chain):
            config = _rbac(envoy_filter)
            assert config is not None
            for rules, suffix in ((config.rules, ""), (config.shadow_rules, "-dry-run")):
                action = _ACTIONS.get(rules.action, "?") + suffix
                for name in rules.policies:
                    match = _POLICY_NAME.match(name)
                    if match is None:
                        continue  # the listener's own refusals, not a user's policy
                    policy = f"{match['name']}.{match['ns']}"
                    seen.setdefault((action, policy), set()).add(int(match["rule"]))
    return [[a, p, str(len(r))] for (a, p), r in sorted(seen.items())]


def chain_for(listener: listener_pb2.Listener, port: int, mtls: bool) -> lc.FilterChain:
    """The chain Envoy would pick for a connection to `port` (mTLS or plaintext)."""
    candidates = [
        c for c in listener.filter_chains if c.filter_chain_match.destination_port.value == port
    ] or [
        c for c in listener.filter_chains if not c.filter_chain_match.HasField("destination_port")
    ]
    transport = "tls" if mtls else "raw_buffer"
    for chain in candidates:
        if chain.filter_chain_match.transport_protocol in (transport, ""):
            return chain
    return listener.default_filter_chain


def parse_request(text: str) -> tuple[str, str]:
    method, _, path = text.strip().partition(" ")
    if not method or not path.startswith("/"):
        raise UserError(f'--request {text!r}: write it as "METHOD /path", e.g. "GET /items"')
    return method.upper(), path.strip()


def _manager(chain: lc.FilterChain) -> hcm.HttpConnectionManager | None:
    for network_filter in chain.filters:
        manager = hcm.HttpConnectionManager()
        if network_filter.typed_config.Is(manager.DESCRIPTOR):
            network_filter.typed_config.Unpack(manager)
            return manager
    return None


def as_envoy_sees_it(request: Request, manager: hcm.HttpConnectionManager) -> Request | None:
    """The request as the chain's RBAC filters see it: the path normalized as the
    connection manager normalizes it (None: Envoy refuses it with 400) and, since the
    sidecar does not use the peer address as the client's (use_remote_address false, as
    Istio), remote.ip from the last X-Forwarded-For entry."""
    path = envoy_path(request.path, manager)
    if path is None:
        return None
    remote_ip = request.remote_ip
    forwarded = request.headers.get("x-forwarded-for")
    if remote_ip is None and forwarded and not manager.use_remote_address.value:
        remote_ip = forwarded.split(",")[-1].strip()
    return replace(request, path=path, remote_ip=remote_ip)


def decide(
    listener: listener_pb2.Listener, request: Request, mtls: bool
) -> tuple[Decision, list[hcm.HttpFilter | lc.Filter]]:
    """Envoy's decision for `request` on the chain that serves it. A path Envoy refuses
    before authorization (400) is a denial by no filter: (Decision(False), [])."""
    chain = chain_for(listener, request.destination_port, mtls)
    manager = _manager(chain)
    if manager is not None:
        seen = as_envoy_sees_it(request, manager)
        if seen is None:
            return Decision(False), []
        request = seen
    filters = chain_filters(chain)
    return evaluate(filters, request), filters


def _decision_line(decision: Decision, filters: Sequence[hcm.HttpFilter | lc.Filter]) -> str:
    verdict = "ALLOW" if decision.allowed else "DENY"
    if not decision.allowed and not filters:
        return "DENY: Envoy refuses the path itself (400), before any authorization policy"
    if decision.filter_index is None:
        return f"{verdict} (no authorization policy applies)"
    config = _rbac(filters[decision.filter_index])
    assert config is not None
    action = _ACTIONS.get(config.rules.action, "?")
    if decision.policy is None:
        return f"{verdict} by the {action} policies: none of their rules matched"
    match = _POLICY_NAME.match(decision.policy)
    named = f"{match['name']}.{match['ns']} rule {match['rule']}" if match else decision.policy
    return f"{verdict} by {action} policy {named}"


@click.group("authz")
def authz_group() -> None:
    """Authorization as a sidecar enforces it (istioctl x authz)."""


@authz_group.command("check")
@click.argument("pod")
@click.option("-n", "--namespace", help="Namespace of the pod (or give POD as name.namespace).")
@click.option("--request", "request_text", help='Decide one request, e.g. "GET /items".')
@click.option("--from-principal", help="The caller's identity, e.g. cluster.local/ns/a/sa/b.")
@click.option("--port", type=int, default=8080, show_default=True, help="The pod port called.")
@click.option("--host", default="", help="The request's Host (:authority).")
@click.option("-H", "--header", "headers", multiple=True, help="A request header 'name: value'.")
@click.option("--source-ip", default="127.0.0.1", show_default=True)
@timeout_option
@pass_cli
def authz_check_command(
    cli: CliContext,
    pod: str,
    namespace: str | None,
    request_text: str | None,
    from_principal: str | None,
    port: int,
    host: str,
    headers: tuple[str, ...],
    source_ip: str,
) -> None:
    """The AuthorizationPolicies POD's sidecar enforces; with --request, its decision."""
    found = find_pod(cli, pod, namespace)
    if not found["sidecar"]:
        raise UserError(f"pod {found['name']} has no sidecar (nothing enforces policies)")
    require_root("x authz check")
    try:
        dump = asyncio.run(_admin_json(found["netns"], "/config_dump"))
    except AdminError as exc:
        raise UserError(f"pod {found['name']}: {exc}") from exc
    listener = inbound_listener(dump)
    if request_text is None:
        rows = policy_rows(listener)
        click.echo(text_table(["ACTION", "AuthorizationPolicy", "RULES"], rows))
        return
    method, path = parse_request(request_text)
    header_map = {}
    for header in headers:
        name, sep, value = header.partition(":")
        if not sep:
            raise UserError(f"--header {header!r}: write it as 'name: value'")
        header_map[name.strip().lower()] = value.strip()
    principal = f"spiffe://{from_principal.removeprefix('spiffe://')}" if from_principal else None
    request = Request(
        method=method,
        path=path,
        host=host or f"{found['name']}:{port}",
        headers=header_map,
        source_principal=principal,
        source_ip=source_ip,
        destination_ip=str(found.get("ip") or "127.0.0.1"),
        destination_port=port,
    )
    mtls = principal is not None
    if is_refusal(chain_for(listener, port, mtls)):
        click.echo(f"DENY: port {port} requires mTLS (STRICT); a plaintext connection is closed")
        return
    decision, filters = decide(listener, request, mtls)
    click.echo(_decision_line(decision, filters))
