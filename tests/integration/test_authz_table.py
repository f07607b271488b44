"""AuthorizationPolicy semantics, table-driven: real Envoy and `isthmus x authz check` agree with
Istio's documentation on every row.

Each policy set goes through isthmus's real selection (`policies_for_workload`, root namespace
istio-system) and translation (`http_rbac_filters`) onto the inbound connection manager isthmus
builds, served by one static Envoy (see `_authz_envoy`): one `virtualInbound` listener, one
port and filter chain per set, TLS with optional client certificates from a real test CA.
A row sends one raw HTTP/1.1 request, with or without a client certificate (principal), from
127.0.0.1 or 127.0.0.2, and checks:
- Envoy's status (200 or 403) and, for 403, its body `RBAC: access denied`;
- Envoy's own account of the deciding policy (the `rbac_access_denied_matched_policy[...]`
  response code details of a denial, the effective policy of the ALLOW filter that let a
  request through), of AUDIT (access_log_hint) and of dry-run rules (shadow engine result and
  policy);
- the decision of the CLI's code (`decide`, the code behind `isthmus x authz check --request`)
  on the listener parsed from this Envoy's own /config_dump, for the same request: allowed iff
  200, the same deciding policy (Istio's `ns[<ns>]-policy[<name>]-rule[<i>]`), the same audits.

Expectations come from Istio's documentation, cited per row:
- [EVAL n]  https://istio.io/latest/docs/reference/config/security/authorization-policy/, the
  evaluation order (n: 2 a matching DENY denies, 3 no ALLOW policy allows, 4 a matching ALLOW
  allows, 5 otherwise deny) and "AUDIT policies do not affect whether requests are allowed or
  denied" [AUDIT].
- [REF]     the same page's field reference: `rules` "If not set, the match will never occur"
  (ALLOW: deny all); "An empty rule is always matched"; a rule matches when one source, one
  operation and all conditions match; value matching "Exact", "Prefix: abc* will match on value
  abc and abcd", "Suffix: *abc will match on value abc and xabc", "Presence: * will match when
  value is not empty"; `principals`/`namespaces` "requires mTLS enabled"; `hosts` "The match is
  case-insensitive"; `ipBlocks` "populated from the source address of the IP packet"; the
  selector matches workloads of the policy's namespace, and of all namespaces for a policy in
  the root namespace.
- [COND]    https://istio.io/latest/docs/reference/config/security/conditions/ (`when` keys).
- [EXAMPLE] https://istio.io/latest/docs/ops/configuration/security/security-policy-examples/
  "Require mTLS in authorization layer": DENY `notPrincipals: ["*"]` denies requests without a
  peer identity.
- [BP]      https://istio.io/latest/docs/ops/best-practices/security/ "Use ALLOW-with-positive-
  matching and DENY-with-negative-match patterns": a negative match matches more than it seems
  to; as [EXAMPLE] shows, that includes requests without the attribute (no peer identity), so
  an ALLOW with `notNamespaces` lets them in.
- [NORM]    https://istio.io/latest/docs/reference/config/security/normalization/ (the query is
  not part of the path that is matched).
- [HOST]    ISTIO-SECURITY-2021-008 "Required update for authorization policies": `hosts` match
  the exact string given, `host:port` is another string.
- [DRYRUN]  https://istio.io/latest/docs/tasks/security/authorization/authz-dry-run/: a policy
  annotated `istio.io/dry-run: "true"` is evaluated (shadow result and policy reported) but
  not enforced; with "false" the policy is an ordinary, enforced one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from _authz_envoy import (
    APP_BODY,
    AUDIT_HINT,
    DETAILS_HEADER,
    DRY_RUN_POLICY,
    DRY_RUN_RESULT,
    ENFORCED_POLICY,
    RBAC_DENIED_BODY,
    TRUST_DOMAIN,
    Answer,
    Pki,
    free_ports,
    inbound_bootstrap,
    send,
    spiffe,
)
from envoy.config.listener.v3 import listener_pb2
from envoy.config.rbac.v3 import rbac_pb2
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as http_rbac_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)

from isthmus.api.authorization import AuthorizationPolicy
from isthmus.api.loader import load_documents
from isthmus.cli.authz_check import chain_filters, chain_for, decide, inbound_listener
from isthmus.model.snapshot import ConfigEntry
from isthmus.pilot.authz.rbac import http_rbac_filters
from isthmus.pilot.authz.request import Request
from isthmus.pilot.authz.selection import policies_for_workload
from isthmus.testing.envoy import EnvoyExited, EnvoyProcess
from isthmus.testing.ports import LOOPBACK
from isthmus.testing.protojson import message_to_dict

pytestmark = pytest.mark.envoy

ROOT_NAMESPACE = "istio-system"
APP_NAMESPACE = "production"
APP_LABELS: Mapping[str, str] = {"app": "app"}
APP_HOST = "app.production.svc.cluster.local"
OTHER_SOURCE = "127.0.0.2"  # another loopback address: a second client IP on this host

Principal = tuple[str, str] | None  # (namespace, service account) of the client certificate
READER: Principal = ("client", "reader")
OTHER: Principal = ("other", "writer")
ANONYMOUS: Principal = None  # TLS without a client certificate: no peer identity
BIND_ATTEMPTS = 3
_DENIED_BY = re.compile(r"^rbac_access_denied_matched_policy\[(?P<policy>.*)\]$")


def istio_policy(name: str, rule: int = 0, namespace: str = APP_NAMESPACE) -> str:
    """The policy id Istio gives a rule in Envoy's RBAC (stats, logs, istioctl)."""
    return f"ns[{namespace}]-policy[{name}]-rule[{rule}]"


def ap(name: str, spec: str, namespace: str = APP_NAMESPACE, dry_run: str | None = None) -> str:
    """One AuthorizationPolicy document; `spec` in YAML flow style."""
    annotations = "" if dry_run is None else f', annotations: {{istio.io/dry-run: "{dry_run}"}}'
    return (
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
        f"metadata: {{name: {name}, namespace: {namespace}{annotations}}}\nspec: {spec}\n"
    )


@dataclass(frozen=True)
class PolicySet:
    """The policies of the mesh, and the workload whose inbound enforces those that apply."""

    documents: tuple[str, ...]
    namespace: str = APP_NAMESPACE
    labels: Mapping[str, str] = field(default_factory=lambda: dict(APP_LABELS))


# Policies shared by the two root-namespace sets: one for a workload in `production`, one for
# a workload in `other`.
_MESH = (
    ap("mesh-deny-debug", "{action: DENY, rules: [{to: [{operation: {paths: [/debug/*]}}]}]}",
       namespace=ROOT_NAMESPACE),
    ap("mesh-allow-health", "{rules: [{to: [{operation: {paths: [/healthz]}}]}]}",
       namespace=ROOT_NAMESPACE),
    ap("allow-reader", "{rules: [{from: [{source: {principals: "
       "[cluster.local/ns/client/sa/reader]}}]}]}"),
    ap("deny-everything", "{action: DENY, rules: [{}]}", namespace="other"),
    ap("deny-other-app", "{selector: {matchLabels: {app: other}}, action: DENY, rules: [{}]}"),
    ap("deny-selected", "{selector: {matchLabels: {app: app}}, action: DENY, rules: "
       "[{to: [{operation: {paths: [/selected]}}]}]}"),
)  # fmt: skip

SETS: dict[str, PolicySet] = {
    "no-policy": PolicySet(()),
    "allow-match": PolicySet((
        ap("allow-match", "{action: ALLOW, rules: ["
           "{from: [{source: {principals: [cluster.local/ns/client/sa/reader]}}], "
           "to: [{operation: {methods: [GET]}}]}, "
           "{to: [{operation: {paths: [/public]}}]}]}"),
    )),
    "allow-nothing": PolicySet((ap("allow-nothing", "{}"),)),
    "allow-all": PolicySet((ap("allow-all", "{rules: [{}]}"),)),
    "deny-over-allow": PolicySet((
        ap("deny-admin", "{action: DENY, rules: "
           "[{to: [{operation: {paths: [/admin, /admin/*]}}]}]}"),
        ap("allow-all", "{action: ALLOW, rules: [{}]}"),
    )),
    "deny-only": PolicySet((
        ap("deny-delete", "{action: DENY, rules: [{to: [{operation: {methods: [DELETE]}}]}]}"),
    )),
    "deny-and-allow": PolicySet((
        ap("deny-admin", "{action: DENY, rules: [{to: [{operation: {paths: [/admin]}}]}]}"),
        ap("allow-public", "{rules: [{to: [{operation: {paths: [/public]}}]}]}"),
    )),
    "audit-only": PolicySet((
        ap("audit-writes", "{action: AUDIT, rules: [{to: [{operation: {methods: [POST, PUT]}}]}]}"),
    )),
    "audit-allow": PolicySet((
        ap("audit-all", "{action: AUDIT, rules: [{}]}"),
        ap("allow-public", "{rules: [{to: [{operation: {paths: [/public]}}]}]}"),
    )),
    "audit-deny": PolicySet((
        ap("audit-admin", "{action: AUDIT, rules: [{to: [{operation: {paths: [/admin]}}]}]}"),
        ap("deny-admin", "{action: DENY, rules: [{to: [{operation: {paths: [/admin]}}]}]}"),
    )),
    "not-methods": PolicySet((
        ap("allow-not-delete", "{rules: [{to: [{operation: {notMethods: [DELETE]}}]}]}"),
    )),
    "not-paths": PolicySet((
        ap("deny-outside-public", "{action: DENY, rules: "
           "[{to: [{operation: {notPaths: [/public/*]}}]}]}"),
    )),
    "not-principals": PolicySet((
        ap("deny-not-reader", "{action: DENY, rules: [{from: [{source: {notPrincipals: "
           "[cluster.local/ns/client/sa/reader]}}]}]}"),
    )),
    "require-mtls": PolicySet((
        ap("require-mtls", "{action: DENY, rules: [{from: [{source: {notPrincipals: ['*']}}]}]}"),
    )),
    "not-namespaces": PolicySet((
        ap("allow-not-blocked", "{rules: [{from: [{source: {notNamespaces: [blocked]}}]}]}"),
    )),
    "not-hosts": PolicySet((
        ap("allow-not-admin-host", "{rules: "
           "[{to: [{operation: {notHosts: [admin.example.com]}}]}]}"),
    )),
    "namespaces": PolicySet((
        ap("allow-namespaces", "{rules: [{from: [{source: {namespaces: [client, team-*]}}]}]}"),
    )),
    "principals": PolicySet((
        ap("allow-principals", "{rules: ["
           "{from: [{source: {principals: [cluster.local/ns/client/*]}}]}, "
           "{from: [{source: {principals: ['*/sa/admin']}}]}]}"),
    )),
    "principal-presence": PolicySet((
        ap("allow-any-principal", "{rules: [{from: [{source: {principals: ['*']}}]}]}"),
    )),
    "paths": PolicySet((
        ap("allow-paths", "{rules: ["
           "{to: [{operation: {paths: [/exact]}}]}, "
           "{to: [{operation: {paths: [/prefix/*]}}]}, "
           "{to: [{operation: {paths: ['*/suffix']}}]}]}"),
    )),
    "methods": PolicySet((
        ap("allow-get-put", "{rules: [{to: [{operation: {methods: [GET, PUT]}}]}]}"),
    )),
    "hosts": PolicySet((
        ap("allow-hosts", "{rules: "
           "[{to: [{operation: {hosts: [app.example.com, '*.internal']}}]}]}"),
    )),
    "when-headers": PolicySet((
        ap("allow-headers", "{rules: ["
           "{when: [{key: 'request.headers[x-env]', values: [prod, stage-*]}]}, "
           "{when: [{key: 'request.headers[x-team]', values: ['*'], notValues: [blocked]}]}]}"),
    )),
    "when-source-namespace": PolicySet((
        ap("allow-client-ns", "{rules: [{when: [{key: source.namespace, values: [client]}]}]}"),
    )),
    "ip-blocks": PolicySet((
        ap("allow-local", "{rules: [{from: [{source: {ipBlocks: [127.0.0.1/32]}}]}]}"),
        ap("deny-ten", "{action: DENY, rules: [{from: [{source: {ipBlocks: [10.0.0.0/8]}}]}]}"),
    )),
    "not-ip-blocks": PolicySet((
        ap("allow-not-listed", "{rules: [{from: [{source: "
           "{notIpBlocks: [10.0.0.0/8, 127.0.0.2]}}]}]}"),
    )),
    "when-source-ip": PolicySet((
        ap("deny-ip", "{action: DENY, rules: [{when: [{key: source.ip, values: [127.0.0.2]}]}]}"),
    )),
    "remote-ip": PolicySet((
        ap("deny-remote", "{action: DENY, rules: "
           "[{from: [{source: {remoteIpBlocks: [10.0.0.0/8]}}]}]}"),
    )),
    "root-namespace": PolicySet(_MESH),
    "root-namespace-other-workload": PolicySet(_MESH, namespace="other"),
    "dry-run-deny": PolicySet((
        ap("deny-all-dry", "{action: DENY, rules: [{}]}", dry_run="true"),
    )),
    "dry-run-allow": PolicySet((
        ap("allow-public-dry", "{rules: [{to: [{operation: {paths: [/public]}}]}]}",
           dry_run="true"),
    )),
    "dry-run-deny-with-allow": PolicySet((
        ap("allow-all", "{rules: [{}]}"),
        ap("deny-admin-dry", "{action: DENY, rules: [{to: [{operation: {paths: [/admin]}}]}]}",
           dry_run="true"),
    )),
    "dry-run-false": PolicySet((
        ap("deny-admin", "{action: DENY, rules: [{to: [{operation: {paths: [/admin]}}]}]}",
           dry_run="false"),
    )),
}  # fmt: skip


class CliDisagrees(AssertionError):
    """The CLI's decision differs from what Envoy did (and Istio's docs say)."""


@dataclass(frozen=True)
class Shadow:
    """What Envoy reports for the dry-run rules of one action."""

    action: str  # DENY or ALLOW
    result: str  # Envoy's shadow engine result: "allowed" or "denied"
    policy: str | None  # the shadow rule that matched, if any


@dataclass(frozen=True)
class Row:
    policy_set: str
    principal: Principal
    method: str
    path: str
    expected: int  # 200 or 403
    policy: str | None = None  # the deciding policy, when one decides (Istio's rule id)
    cite: str = ""
    host: str = APP_HOST
    headers: tuple[tuple[str, str], ...] = ()
    source: str = LOOPBACK
    audited: tuple[str, ...] = ()
    shadow: Shadow | None = None

    @property
    def param(self) -> Any:
        return pytest.param(self, id=self.label)

    @property
    def label(self) -> str:
        who = "anonymous" if self.principal is None else "/".join(self.principal)
        parts = [self.policy_set, who, f"{self.method} {self.path}"]
        if self.host != APP_HOST:
            parts.append(f"Host={self.host}")
        parts += [f"{name}={value}" for name, value in self.headers]
        if self.source != LOOPBACK:
            parts.append(f"from={self.source}")
        return ":".join(parts)


def _rows() -> list[Row]:
    p = istio_policy
    return [
        # --- no policy, ALLOW, allow-nothing, allow-all ---------------------------------
        Row("no-policy", READER, "GET", "/", 200, cite="[EVAL 3]"),
        Row("no-policy", ANONYMOUS, "DELETE", "/admin", 200, cite="[EVAL 3]"),
        Row("allow-match", READER, "GET", "/items", 200, p("allow-match", 0), "[EVAL 4]"),
        Row("allow-match", READER, "POST", "/items", 403, cite="[EVAL 5] rule 0 needs GET"),
        Row("allow-match", OTHER, "GET", "/items", 403, cite="[EVAL 5] rule 0 needs reader"),
        Row("allow-match", ANONYMOUS, "GET", "/public", 200, p("allow-match", 1), "[EVAL 4]"),
        # Both rules match: Envoy reports the first policy id in name order.
        Row("allow-match", READER, "GET", "/public", 200, p("allow-match", 0), "[EVAL 4]"),
        Row("allow-nothing", READER, "GET", "/", 403, cite="[REF] no rules never match, [EVAL 5]"),
        Row("allow-nothing", ANONYMOUS, "GET", "/", 403, cite="[REF] no rules, [EVAL 5]"),
        Row("allow-all", ANONYMOUS, "POST", "/anything", 200, p("allow-all"), "[REF] empty rule"),
        Row("allow-all", READER, "GET", "/", 200, p("allow-all"), "[REF] empty rule"),
        # --- DENY ------------------------------------------------------------------------
        Row("deny-over-allow", READER, "GET", "/admin/users", 403, p("deny-admin"), "[EVAL 2]"),
        Row("deny-over-allow", READER, "GET", "/items", 200, p("allow-all"), "[EVAL 4]"),
        Row("deny-only", READER, "GET", "/items", 200, cite="[EVAL 3] no ALLOW policy"),
        Row("deny-only", READER, "DELETE", "/items", 403, p("deny-delete"), "[EVAL 2]"),
        Row("deny-and-allow", READER, "GET", "/items", 403, cite="[EVAL 5] neither matches"),
        Row("deny-and-allow", READER, "GET", "/public", 200, p("allow-public"), "[EVAL 4]"),
        Row("deny-and-allow", READER, "GET", "/admin", 403, p("deny-admin"), "[EVAL 2]"),
        # %61 is 'a': the DENY policy decides (the CLI denies too, but names no policy).
        Row("deny-and-allow", READER, "GET", "/%61dmin", 403, p("deny-admin"),
            "[NORM] %-decoding"),
        # --- AUDIT never decides -----------------------------------------------------------
        Row("audit-only", READER, "POST", "/items", 200, cite="[AUDIT] [EVAL 3]",
            audited=(p("audit-writes"),)),
        Row("audit-only", READER, "GET", "/items", 200, cite="[AUDIT] [EVAL 3]"),
        Row("audit-allow", READER, "GET", "/public", 200, p("allow-public"), "[AUDIT] [EVAL 4]",
            audited=(p("audit-all"),)),
        Row("audit-allow", READER, "GET", "/private", 403, cite="[AUDIT] [EVAL 5]",
            audited=(p("audit-all"),)),
        Row("audit-deny", READER, "GET", "/admin", 403, p("deny-admin"), "[AUDIT] [EVAL 2]",
            audited=(p("audit-admin"),)),
        Row("audit-deny", READER, "GET", "/items", 200, cite="[AUDIT] [EVAL 3]"),
        # --- not-fields --------------------------------------------------------------------
        Row("not-methods", READER, "GET", "/", 200, p("allow-not-delete"), "[EVAL 4]"),
        Row("not-methods", READER, "DELETE", "/", 403, cite="[EVAL 5]"),
        Row("not-paths", READER, "GET", "/public/doc", 200, cite="[BP] DENY negative match"),
        Row("not-paths", READER, "GET", "/private", 403, p("deny-outside-public"), "[EVAL 2]"),
        # Matched after normalization: /public/../private is /private.
        Row("not-paths", READER, "GET", "/public/../private", 403, p("deny-outside-public"),
            "[NORM] dot segments"),
        Row("not-principals", READER, "GET", "/", 200, cite="[EVAL 3]"),
        Row("not-principals", OTHER, "GET", "/", 403, p("deny-not-reader"), "[EVAL 2]"),
        Row("not-principals", ANONYMOUS, "GET", "/", 403, p("deny-not-reader"), "[EXAMPLE]"),
        Row("require-mtls", ANONYMOUS, "GET", "/", 403, p("require-mtls"), "[EXAMPLE]"),
        Row("require-mtls", OTHER, "GET", "/", 200, cite="[EXAMPLE] [EVAL 3]"),
        Row("not-namespaces", READER, "GET", "/", 200, p("allow-not-blocked"), "[EVAL 4]"),
        Row("not-namespaces", ("blocked", "reader"), "GET", "/", 403, cite="[EVAL 5]"),
        Row("not-namespaces", ANONYMOUS, "GET", "/", 200, p("allow-not-blocked"), "[BP]"),
        Row("not-hosts", READER, "GET", "/", 200, p("allow-not-admin-host"), "[EVAL 4]"),
        Row("not-hosts", READER, "GET", "/", 403, cite="[EVAL 5]", host="admin.example.com"),
        Row("not-hosts", READER, "GET", "/", 403, cite="[REF] hosts case-insensitive",
            host="ADMIN.Example.com"),
        # --- source: namespaces, principals ------------------------------------------------
        Row("namespaces", READER, "GET", "/", 200, p("allow-namespaces"), "[REF] exact"),
        Row("namespaces", ("team-blue", "x"), "GET", "/", 200, p("allow-namespaces"),
            "[REF] prefix"),
        Row("namespaces", ("clientx", "reader"), "GET", "/", 403, cite="[REF] exact"),
        Row("namespaces", OTHER, "GET", "/", 403, cite="[EVAL 5]"),
        Row("namespaces", ANONYMOUS, "GET", "/", 403, cite="[REF] requires mTLS"),
        Row("principals", READER, "GET", "/", 200, p("allow-principals", 0), "[REF] prefix"),
        Row("principals", ("ops", "admin"), "GET", "/", 200, p("allow-principals", 1),
            "[REF] suffix"),
        Row("principals", ("client", "admin"), "GET", "/", 200, p("allow-principals", 0),
            "[REF] both rules match; first id in name order"),
        Row("principals", ("ops", "reader"), "GET", "/", 403, cite="[EVAL 5]"),
        Row("principals", ANONYMOUS, "GET", "/", 403, cite="[REF] requires mTLS"),
        Row("principal-presence", OTHER, "GET", "/", 200, p("allow-any-principal"),
            "[REF] presence"),
        Row("principal-presence", ANONYMOUS, "GET", "/", 403, cite="[REF] presence: not empty"),
        # --- operation: paths, methods, hosts ----------------------------------------------
        Row("paths", READER, "GET", "/exact", 200, p("allow-paths", 0), "[REF] exact"),
        Row("paths", READER, "GET", "/exact?x=1", 200, p("allow-paths", 0), "[NORM] query"),
        Row("paths", READER, "GET", "/exact/more", 403, cite="[REF] exact"),
        Row("paths", READER, "GET", "/prefix/", 200, p("allow-paths", 1), "[REF] abc* ~ abc"),
        Row("paths", READER, "GET", "/prefix/a/b", 200, p("allow-paths", 1), "[REF] prefix"),
        Row("paths", READER, "GET", "/prefix", 403, cite="[REF] prefix"),
        Row("paths", READER, "GET", "/suffix", 200, p("allow-paths", 2), "[REF] *abc ~ abc"),
        Row("paths", READER, "GET", "/a/b/suffix", 200, p("allow-paths", 2), "[REF] suffix"),
        Row("paths", READER, "GET", "/suffix/x", 403, cite="[REF] suffix"),
        Row("methods", READER, "PUT", "/", 200, p("allow-get-put"), "[EVAL 4]"),
        Row("methods", READER, "PATCH", "/", 403, cite="[EVAL 5]"),
        Row("hosts", READER, "GET", "/", 200, p("allow-hosts"), "[REF] exact",
            host="app.example.com"),
        Row("hosts", READER, "GET", "/", 200, p("allow-hosts"), "[REF] case-insensitive",
            host="APP.Example.COM"),
        Row("hosts", READER, "GET", "/", 200, p("allow-hosts"), "[REF] suffix",
            host="db.internal"),
        Row("hosts", READER, "GET", "/", 403, cite="[HOST] host:port is another string",
            host="app.example.com:8080"),
        Row("hosts", READER, "GET", "/", 403, cite="[HOST] exact string",
            host="app.example.com."),
        Row("hosts", READER, "GET", "/", 403, cite="[EVAL 5]", host="other.example.com"),
        # --- when ----------------------------------------------------------------------------
        Row("when-headers", READER, "GET", "/", 200, p("allow-headers", 0), "[COND] values",
            headers=(("x-env", "prod"),)),
        Row("when-headers", READER, "GET", "/", 200, p("allow-headers", 0), "[REF] prefix",
            headers=(("x-env", "stage-2"),)),
        Row("when-headers", READER, "GET", "/", 403, cite="[REF] exact is case-sensitive",
            headers=(("x-env", "PROD"),)),
        Row("when-headers", READER, "GET", "/", 403, cite="[EVAL 5]",
            headers=(("x-env", "dev"),)),
        Row("when-headers", READER, "GET", "/", 403, cite="[EVAL 5] no header"),
        Row("when-headers", READER, "GET", "/", 200, p("allow-headers", 1), "[REF] presence",
            headers=(("x-team", "blue"),)),
        Row("when-headers", READER, "GET", "/", 403, cite="[COND] notValues",
            headers=(("x-team", "blocked"),)),
        # [REF] says presence matches "when value is not empty", but Istio generates Envoy's
        # present_match for "*" (pilot/pkg/security/authz/matcher HeaderMatcher), which a
        # header sent with an empty value satisfies: Istio's behavior, and isthmus's.
        Row("when-headers", READER, "GET", "/", 200, p("allow-headers", 1),
            "Istio: present_match", headers=(("x-team", ""),)),
        Row("when-source-namespace", READER, "GET", "/", 200, p("allow-client-ns"), "[COND]"),
        Row("when-source-namespace", OTHER, "GET", "/", 403, cite="[COND] [EVAL 5]"),
        Row("when-source-namespace", ANONYMOUS, "GET", "/", 403, cite="[COND] needs mTLS"),
        # --- source.ip / ipBlocks ------------------------------------------------------------
        Row("ip-blocks", READER, "GET", "/", 200, p("allow-local"), "[REF] ipBlocks"),
        Row("ip-blocks", READER, "GET", "/", 403, cite="[REF] ipBlocks, [EVAL 5]",
            source=OTHER_SOURCE),
        # ipBlocks is the packet's source address: X-Forwarded-For does not change it.
        Row("ip-blocks", READER, "GET", "/", 403, cite="[REF] source address of the packet",
            source=OTHER_SOURCE, headers=(("x-forwarded-for", "127.0.0.1"),)),
        Row("remote-ip", READER, "GET", "/", 200, cite="[REF] remoteIpBlocks, [EVAL 3]"),
        Row("remote-ip", READER, "GET", "/", 403, p("deny-remote"),
            "[REF] remoteIpBlocks: from X-Forwarded-For",
            headers=(("x-forwarded-for", "10.1.2.3"),)),
        Row("not-ip-blocks", READER, "GET", "/", 200, p("allow-not-listed"), "[REF]"),
        Row("not-ip-blocks", READER, "GET", "/", 403, cite="[REF] single IP",
            source=OTHER_SOURCE),
        Row("when-source-ip", READER, "GET", "/", 200, cite="[COND] source.ip, [EVAL 3]"),
        Row("when-source-ip", READER, "GET", "/", 403, p("deny-ip"), "[COND] source.ip",
            source=OTHER_SOURCE),
        # --- root namespace and selection ----------------------------------------------------
        Row("root-namespace", READER, "GET", "/debug/vars", 403,
            p("mesh-deny-debug", namespace=ROOT_NAMESPACE), "[REF] root namespace, [EVAL 2]"),
        Row("root-namespace", ANONYMOUS, "GET", "/healthz", 200,
            p("mesh-allow-health", namespace=ROOT_NAMESPACE), "[REF] root namespace"),
        # deny-everything (namespace other) and deny-other-app (selector) do not apply.
        Row("root-namespace", READER, "GET", "/items", 200, p("allow-reader"), "[REF] selector"),
        Row("root-namespace", ANONYMOUS, "GET", "/items", 403, cite="[EVAL 5]"),
        Row("root-namespace", READER, "GET", "/selected", 403, p("deny-selected"),
            "[REF] selector"),
        # The same policies for a workload of `other`: its namespace's policy applies, the
        # production ones do not.
        Row("root-namespace-other-workload", READER, "GET", "/items", 403,
            p("deny-everything", namespace="other"), "[REF] selector, [EVAL 2]"),
        # Both DENY policies match; Envoy names the first id in name order (istio-system).
        Row("root-namespace-other-workload", READER, "GET", "/debug/x", 403,
            p("mesh-deny-debug", namespace=ROOT_NAMESPACE), "[EVAL 2]"),
        # --- dry run -------------------------------------------------------------------------
        Row("dry-run-deny", READER, "GET", "/", 200, cite="[DRYRUN]",
            shadow=Shadow("DENY", "denied", p("deny-all-dry"))),
        Row("dry-run-allow", READER, "GET", "/private", 200, cite="[DRYRUN]",
            shadow=Shadow("ALLOW", "denied", None)),
        Row("dry-run-allow", READER, "GET", "/public", 200, cite="[DRYRUN]",
            shadow=Shadow("ALLOW", "allowed", p("allow-public-dry"))),
        Row("dry-run-deny-with-allow", READER, "GET", "/admin", 200, p("allow-all"), "[DRYRUN]",
            shadow=Shadow("DENY", "denied", p("deny-admin-dry"))),
        Row("dry-run-deny-with-allow", READER, "GET", "/items", 200, p("allow-all"), "[DRYRUN]",
            shadow=Shadow("DENY", "allowed", None)),
        Row("dry-run-false", READER, "GET", "/admin", 403, p("deny-admin"), "[DRYRUN] false"),
    ]  # fmt: skip


ROWS = _rows()


def _policies(policy_set: PolicySet) -> list[ConfigEntry[AuthorizationPolicy]]:
    entries: list[ConfigEntry[AuthorizationPolicy]] = []
    text = "---\n".join(policy_set.documents)
    loaded = load_documents(text, "p.yaml") if text else []
    for revision, document in enumerate(loaded, start=1):
        policy = document.resource
        assert isinstance(policy, AuthorizationPolicy)
        assert policy.metadata.namespace is not None
        entries.append(
            ConfigEntry(policy.metadata.name, policy.metadata.namespace, policy, revision)
        )
    return entries


def _filters(policy_set: PolicySet) -> list[hcm.HttpFilter]:
    applied = policies_for_workload(
        _policies(policy_set), policy_set.namespace, policy_set.labels, ROOT_NAMESPACE
    )
    return http_rbac_filters(applied, TRUST_DOMAIN)


@dataclass(frozen=True)
class Inbound:
    """The running Envoy, the port of each set, and the listener its config dump holds."""

    process: EnvoyProcess
    pki: Pki
    ports: Mapping[str, int]
    listener: listener_pb2.Listener


def _start_envoy(workdir: Path, pki: Pki) -> tuple[EnvoyProcess, dict[str, int]]:
    """Envoy serving every set on its own port. The ports were free a moment before Envoy
    binds them; if another process took one meanwhile, start again on fresh ports."""
    for attempt in range(1, BIND_ATTEMPTS + 1):
        ports = dict(zip(SETS, free_ports(len(SETS)), strict=True))
        chains = {ports[name]: _filters(policy_set) for name, policy_set in SETS.items()}
        process = EnvoyProcess(inbound_bootstrap(chains, pki), workdir, f"inbound-{attempt}")
        try:
            process.wait_ready()
        except EnvoyExited as exc:
            process.stop()
            if "Address already in use" in str(exc) and attempt < BIND_ATTEMPTS:
                continue
            raise
        except BaseException:
            process.stop()
            raise
        return process, ports
    raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def inbound(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Inbound]:
    workdir: Path = tmp_path_factory.mktemp("authz-table")
    pki = Pki(workdir)
    process, ports = _start_envoy(workdir, pki)
    with process:
        listener = inbound_listener(process.config_dump())
        yield Inbound(process, pki, ports, listener)
    assert not process.running


def _rbac_configs(filters: Sequence[hcm.HttpFilter]) -> list[http_rbac_pb2.RBAC]:
    configs = []
    for envoy_filter in filters:
        config = http_rbac_pb2.RBAC()
        assert envoy_filter.typed_config.Unpack(config)
        configs.append(config)
    return configs


def _envoy_deciding_policy(answer: Answer, configs: Sequence[http_rbac_pb2.RBAC]) -> str | None:
    """Envoy's account of the policy that decided, as the CLI's Decision names it."""
    reported = answer.reported
    if answer.status == 403:
        details = reported[DETAILS_HEADER] or ""
        denied = _DENIED_BY.match(details)
        assert denied is not None, f"403 not from RBAC: {details!r}"
        return None if denied["policy"] == "none" else denied["policy"]
    # Let through: the last filter to run is the enforced ALLOW one, if any; it wrote the
    # policy that matched. Without one, no policy decided.
    enforces_allow = any(
        c.HasField("rules") and c.rules.action == rbac_pb2.RBAC.ALLOW for c in configs
    )
    return reported[ENFORCED_POLICY] if enforces_allow else None


def _expected_reports(row: Row, configs: Sequence[http_rbac_pb2.RBAC]) -> dict[str, str | None]:
    audits = any(c.HasField("rules") and c.rules.action == rbac_pb2.RBAC.LOG for c in configs)
    expected: dict[str, str | None] = {
        AUDIT_HINT: ("true" if row.audited else "false") if audits else None
    }
    for action in ("DENY", "ALLOW"):
        shadow = row.shadow if row.shadow is not None and row.shadow.action == action else None
        expected[DRY_RUN_RESULT[action]] = shadow.result if shadow else None
        expected[DRY_RUN_POLICY[action]] = shadow.policy if shadow else None
    return expected


@pytest.mark.parametrize("row", [row.param for row in ROWS])
def test_envoy_and_cli_agree_with_istio(inbound: Inbound, row: Row) -> None:
    port = inbound.ports[row.policy_set]
    answer = send(
        inbound.pki.client_context(row.principal),
        port,
        method=row.method,
        target=row.path,
        host=row.host,
        headers=row.headers,
        source_ip=row.source,
    )
    seen = f"{row.label} ({row.cite}): {answer.status} {answer.body!r} {answer.reported}"
    assert answer.status == row.expected, seen
    assert answer.body == (APP_BODY if row.expected == 200 else RBAC_DENIED_BODY), seen

    configs = _rbac_configs(_filters(SETS[row.policy_set]))
    assert _envoy_deciding_policy(answer, configs) == row.policy, seen
    reports = {name: answer.reported[name] for name in _expected_reports(row, configs)}
    assert reports == _expected_reports(row, configs), seen

    assert inbound.process.running

    # The CLI's decision, from the listener Envoy itself reports, for the request as
    # `isthmus x authz check --request` builds it.
    request = Request(
        method=row.method,
        path=row.path,
        host=row.host,
        headers={name.lower(): value for name, value in row.headers},
        source_principal=None if row.principal is None else spiffe(*row.principal),
        source_ip=row.source,
        destination_port=port,
    )
    decision, _filters_used = decide(inbound.listener, request, mtls=row.principal is not None)
    cli = (decision.allowed, decision.policy, decision.audited)
    if cli != (row.expected == 200, row.policy, row.audited):
        raise CliDisagrees(f"{seen}\nCLI: {decision}")


def test_every_set_has_rows_and_its_own_chain(inbound: Inbound) -> None:
    """Each set is exercised, and the dumped listener serves each set's port with the chain
    that holds exactly the RBAC filters generated for it (what the CLI evaluates is what
    Envoy loaded)."""
    assert {row.policy_set for row in ROWS} == set(SETS)
    for name, policy_set in SETS.items():
        chain = chain_for(inbound.listener, inbound.ports[name], mtls=True)
        assert chain.name == f"inbound_{inbound.ports[name]}"
        dumped = [message_to_dict(f) for f in chain_filters(chain)]
        assert dumped == [message_to_dict(f) for f in _filters(policy_set)], name
