"""AuthorizationPolicy: the seed's policy loads, and each refusal is one line naming its field."""

from __future__ import annotations

import pytest
from _apihelp import document, load, load_errors

from isthmus.api.authorization import (
    AuthorizationAction,
    AuthorizationPolicy,
    is_dry_run,
    parse_go_bool,
)
from isthmus.api.registry import lookup, resolve_kind_name
from isthmus.demo.seed import SEED_AUTHORIZATION_POLICY as SEED_POLICY

PREFIX = "app.yaml:1 AuthorizationPolicy production/reviews: "


def policy(spec: str, annotations: str = "") -> str:
    text = document("AuthorizationPolicy", spec, api_version="security.istio.io/v1")
    if annotations:
        text = text.replace("  namespace: production\n", f"  namespace: production\n{annotations}")
    return text


def rule(body: str) -> str:
    """A policy with one rule whose (dedented) YAML body is `body`."""
    lines = body.strip("\n").splitlines()
    return "rules:\n- " + "\n  ".join(lines) + "\n"


@pytest.mark.parametrize("api_version", ["security.istio.io/v1beta1", "security.istio.io/v1"])
def test_seed_policy_loads_verbatim(api_version: str) -> None:
    (loaded,) = load(SEED_POLICY.replace("security.istio.io/v1beta1", api_version))

    assert loaded.key == ("AuthorizationPolicy", "production", "inventory-authz")
    resource = loaded.resource
    assert isinstance(resource, AuthorizationPolicy)
    spec = resource.spec
    assert spec.selector is not None and spec.selector.match_labels == {"app": "inventory-service"}
    assert spec.action is AuthorizationAction.ALLOW
    (only,) = spec.rules
    (source,) = only.from_
    assert source.source is not None
    assert source.source.principals == [
        "cluster.local/ns/production/sa/order-service",
        "cluster.local/ns/production/sa/cart-service",
    ]
    (target,) = only.to
    assert target.operation is not None
    assert target.operation.methods == ["GET"]
    assert target.operation.paths == ["/items/*", "/items"]
    assert loaded.body["spec"]["rules"][0]["from"][0]["source"]["principals"][0] == (
        "cluster.local/ns/production/sa/order-service"
    )


def test_registered_with_istio_names() -> None:
    info = lookup("security.istio.io/v1beta1", "AuthorizationPolicy")
    assert info.model is AuthorizationPolicy and info.namespaced
    assert info.preferred_api_version == "security.istio.io/v1"
    for typed in ("ap", "authorizationpolicies", "authorizationpolicies.security.istio.io"):
        resolved = resolve_kind_name(typed)
        assert resolved is not None and resolved.kind == "AuthorizationPolicy"


@pytest.mark.parametrize(
    ("spec", "rules", "action"),
    [
        ("{}", 0, AuthorizationAction.ALLOW),  # allow-nothing
        ("rules: [{}]", 1, AuthorizationAction.ALLOW),  # allow-all
        ("action: DENY\nrules: [{}]", 1, AuthorizationAction.DENY),
        ("action: AUDIT\nrules: [{}]", 1, AuthorizationAction.AUDIT),
        ("action: AUDIT", 0, AuthorizationAction.AUDIT),
    ],
)
def test_minimal_policies_load(spec: str, rules: int, action: AuthorizationAction) -> None:
    (loaded,) = load(policy(spec))

    assert isinstance(loaded.resource, AuthorizationPolicy)
    assert len(loaded.resource.spec.rules) == rules
    assert loaded.resource.spec.action is action


def test_policy_without_spec_is_allow_nothing() -> None:
    text = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\n"

    (loaded,) = load(text)

    assert isinstance(loaded.resource, AuthorizationPolicy)
    assert loaded.resource.spec.rules == [] and loaded.key[1] == "default"


def test_every_supported_field_loads() -> None:
    spec = rule("""
from:
- source:
    principals: ["cluster.local/ns/a/sa/b", "*"]
    notPrincipals: ["*/ns/x/sa/y"]
    namespaces: [a, "prod-*"]
    notNamespaces: [b]
    ipBlocks: [10.0.0.0/8, 10.1.2.3, "2001:db8::/32"]
    notIpBlocks: [10.0.0.1]
    remoteIpBlocks: [192.0.2.0/24]
    notRemoteIpBlocks: [192.0.2.1]
    requestPrincipals: ["https://issuer.example.com/alice", "*"]
    notRequestPrincipals: ["*/mallory"]
- source:
    serviceAccounts: [order-service, other/cart]
    notServiceAccounts: [legacy]
to:
- operation:
    hosts: [Example.com, "*.example.com"]
    notHosts: ["admin.*"]
    ports: ["8080", "0"]
    notPorts: ["9090"]
    methods: [GET, "*"]
    notMethods: [DELETE]
    paths: [/items, "/items/*", "*/x", "/a/{*}/b/{**}"]
    notPaths: ["/admin/{**}"]
when:
- {key: "request.headers[x-user]", values: ["a*"], notValues: ["b"]}
- {key: source.ip, values: [10.0.0.0/8]}
- {key: remote.ip, notValues: [10.0.0.1]}
- {key: source.namespace, values: [prod]}
- {key: source.principal, values: ["cluster.local/ns/a/sa/b"]}
- {key: source.serviceAccount, values: [a/b]}
- {key: destination.ip, values: [10.0.0.1]}
- {key: destination.port, values: ["8080"]}
- {key: connection.sni, values: ["*.example.com"]}
- {key: request.auth.principal, values: ["issuer/subject"]}
- {key: request.auth.audiences, values: [inventory]}
- {key: request.auth.presenter, notValues: [untrusted]}
- {key: "request.auth.claims[groups]", values: [admin]}
- {key: "request.auth.claims[nested][role]", values: ["ops-*"]}
""")

    (loaded,) = load(policy(spec, '  annotations: {istio.io/dry-run: "true"}\n'))

    assert isinstance(loaded.resource, AuthorizationPolicy)
    assert is_dry_run(loaded.resource)


CASES = {
    "custom-action": ("action: CUSTOM\nrules: [{}]", "spec.action: CUSTOM is not supported yet"),
    "provider": (
        "action: CUSTOM\nprovider: {name: opa}\nrules: [{}]",
        "spec.provider: not supported yet",
    ),
    "target-ref": (
        "targetRef: {kind: Service, name: reviews}",
        "spec.targetRef: not supported yet",
    ),
    "target-refs": (
        "targetRefs: [{kind: Service, name: reviews}]",
        "spec.targetRefs: not supported yet",
    ),
    "unknown-action": (
        "action: REJECT",
        'spec.action: must be one of ALLOW, DENY, AUDIT, CUSTOM (got "REJECT")',
    ),
    "deny-without-rules": (
        "action: DENY",
        "spec.rules: a DENY policy without rules never matches; add an empty rule {} to deny "
        "every request",
    ),
    "selector-wildcard": (
        "selector: {matchLabels: {app: 'web-*'}}",
        "spec.selector.matchLabels[app]: wildcards are not supported in selectors",
    ),
    "request-principals-empty": (
        rule("from: [{source: {requestPrincipals: ['issuer/subject', '']}}]"),
        "spec.rules[0].from[0].source.requestPrincipals[1]: must not be empty",
    ),
    "not-request-principals-empty": (
        rule("from: [{source: {notRequestPrincipals: ['']}}]"),
        "spec.rules[0].from[0].source.notRequestPrincipals[0]: must not be empty",
    ),
    "request-auth-claims-without-name": (
        rule("when: [{key: 'request.auth.claims[]', values: [admin]}]"),
        'spec.rules[0].when[0].key: "request.auth.claims[]" must have the form '
        "request.auth.claims[<claim>] (nested: request.auth.claims[<claim>][<claim>])",
    ),
    "request-auth-claims-trailing-text": (
        rule("when: [{key: 'request.auth.claims[a]b', values: [admin]}]"),
        'spec.rules[0].when[0].key: "request.auth.claims[a]b" must have the form '
        "request.auth.claims[<claim>] (nested: request.auth.claims[<claim>][<claim>])",
    ),
    "request-auth-principal-empty": (
        rule("when: [{key: request.auth.principal, values: ['']}]"),
        "spec.rules[0].when[0].values[0]: must not be empty",
    ),
    "trust-domains": (
        rule("from: [{source: {trustDomains: [td]}}]"),
        "spec.rules[0].from[0].source.trustDomains: not supported yet",
    ),
    "trust-domain-key": (
        rule("when: [{key: source.trustDomain, values: [td]}]"),
        "spec.rules[0].when[0].key: attribute source.trustDomain is not supported yet",
    ),
    "envoy-filter-key": (
        rule("when: [{key: 'experimental.envoy.filters.a.b[c]', values: [x]}]"),
        "spec.rules[0].when[0].key: attribute experimental.envoy.filters.a.b[c] is not "
        "supported yet",
    ),
    "unknown-key": (
        rule("when: [{key: request.size, values: ['1']}]"),
        'spec.rules[0].when[0].key: unknown attribute "request.size"',
    ),
    "destination-namespace-key": (
        rule("when: [{key: destination.namespace, values: [a]}]"),
        "spec.rules[0].when[0].key: attribute destination.namespace is replaced by "
        "metadata.namespace",
    ),
    "destination-labels-key": (
        rule("when: [{key: 'destination.labels[app]', values: [a]}]"),
        "spec.rules[0].when[0].key: attribute destination.labels is replaced by the workload "
        "selector",
    ),
    "deprecated-key": (
        rule("when: [{key: destination.user, values: [a]}]"),
        "spec.rules[0].when[0].key: deprecated attribute destination.user: only supported in "
        "v1alpha1",
    ),
    "empty-key": (
        rule("when: [{key: '', values: [a]}]"),
        "spec.rules[0].when[0].key: must not be empty",
    ),
    "missing-key": (rule("when: [{values: [a]}]"), "spec.rules[0].when[0].key: is required"),
    "when-without-values": (
        rule("when: [{key: source.ip}]"),
        "spec.rules[0].when[0]: set at least one of values and notValues",
    ),
    "header-key-without-name": (
        rule("when: [{key: 'request.headers[]', values: [a]}]"),
        'spec.rules[0].when[0].key: "request.headers[]" must have the form '
        "request.headers[<header name>]",
    ),
    "header-key-bad-name": (
        rule("when: [{key: 'request.headers[x y]', values: [a]}]"),
        'spec.rules[0].when[0].key: header name "x y" is not a valid HTTP header name',
    ),
    "when-bad-ip": (
        rule("when: [{key: source.ip, values: [10.0.0.256]}]"),
        'spec.rules[0].when[0].values[0]: "10.0.0.256" is not a valid IP address',
    ),
    "when-bad-port": (
        rule("when: [{key: destination.port, notValues: ['http']}]"),
        'spec.rules[0].when[0].notValues[0]: "http" is not a port number (0-65535)',
    ),
    "when-empty-value": (
        rule("when: [{key: source.namespace, values: [a, '']}]"),
        "spec.rules[0].when[0].values[1]: must not be empty",
    ),
    "when-service-account-wildcard": (
        rule("when: [{key: source.serviceAccount, values: ['ns/*']}]"),
        "spec.rules[0].when[0].values[0]: wildcards are not allowed in service accounts",
    ),
    "from-without-source": (
        rule("from: [{}]"),
        "spec.rules[0].from[0].source: is required",
    ),
    "empty-source": (
        rule("from: [{source: {}}]"),
        "spec.rules[0].from[0].source: must not be empty (set at least one field)",
    ),
    "empty-principal": (
        rule("from: [{source: {principals: [a, '']}}]"),
        "spec.rules[0].from[0].source.principals[1]: must not be empty",
    ),
    "empty-not-namespace": (
        rule("from: [{source: {notNamespaces: ['']}}]"),
        "spec.rules[0].from[0].source.notNamespaces[0]: must not be empty",
    ),
    "bad-cidr": (
        rule("from: [{source: {ipBlocks: [10.0.0.0/33]}}]"),
        'spec.rules[0].from[0].source.ipBlocks[0]: "10.0.0.0/33" is not a valid CIDR block',
    ),
    "bad-remote-ip": (
        rule("from: [{source: {notRemoteIpBlocks: [not-an-ip]}}]"),
        'spec.rules[0].from[0].source.notRemoteIpBlocks[0]: "not-an-ip" is not a valid IP address',
    ),
    "ip-zone": (
        rule("from: [{source: {ipBlocks: ['fe80::1%eth0']}}]"),
        'spec.rules[0].from[0].source.ipBlocks[0]: "fe80::1%eth0": IPv6 zones are not supported',
    ),
    "service-accounts-with-principals": (
        rule("from: [{source: {serviceAccounts: [a], principals: [b]}}]"),
        "spec.rules[0].from[0].source: serviceAccounts cannot be set with namespaces or principals",
    ),
    "service-account-format": (
        rule("from: [{source: {notServiceAccounts: [a/b/c]}}]"),
        'spec.rules[0].from[0].source.notServiceAccounts[0]: "a/b/c" must have the form '
        "serviceAccount or namespace/name",
    ),
    "service-account-empty-namespace": (
        rule("from: [{source: {serviceAccounts: [/b]}}]"),
        'spec.rules[0].from[0].source.serviceAccounts[0]: "/b" must have the form '
        "serviceAccount or namespace/name",
    ),
    "too-many-service-accounts": (
        rule(
            "from: [{source: {serviceAccounts: [" + ", ".join(f"s{i}" for i in range(17)) + "]}}]"
        ),
        "spec.rules[0].from[0].source.serviceAccounts: at most 16 service accounts are allowed",
    ),
    "to-without-operation": (
        rule("to: [{}]"),
        "spec.rules[0].to[0].operation: is required",
    ),
    "empty-operation": (
        rule("to: [{operation: {}}]"),
        "spec.rules[0].to[0].operation: must not be empty (set at least one field)",
    ),
    "port-out-of-range": (
        rule("to: [{operation: {ports: ['65536']}}]"),
        'spec.rules[0].to[0].operation.ports[0]: "65536" is not a port number (0-65535)',
    ),
    "port-not-a-number": (
        rule("to: [{operation: {notPorts: ['80-90']}}]"),
        'spec.rules[0].to[0].operation.notPorts[0]: "80-90" is not a port number (0-65535)',
    ),
    "port-as-yaml-integer": (
        rule("to: [{operation: {ports: [8080]}}]"),
        "spec.rules[0].to[0].operation.ports[0]: must be a string (got 8080)",
    ),
    "empty-method": (
        rule("to: [{operation: {methods: ['']}}]"),
        "spec.rules[0].to[0].operation.methods[0]: must not be empty",
    ),
    "empty-host": (
        rule("to: [{operation: {notHosts: ['']}}]"),
        "spec.rules[0].to[0].operation.notHosts[0]: must not be empty",
    ),
    "path-brace": (
        rule("to: [{operation: {paths: ['/items/{id}']}}]"),
        'spec.rules[0].to[0].operation.paths[0]: path "/items/{id}": { and } are only allowed '
        "in the path template operators {*} and {**}, each a whole segment",
    ),
    "path-template-not-last": (
        rule("to: [{operation: {notPaths: ['/{**}/a/{*}']}}]"),
        'spec.rules[0].to[0].operation.notPaths[0]: path template "/{**}/a/{*}": {**} must be '
        "the last operator",
    ),
    "path-template-star-literal": (
        rule("to: [{operation: {paths: ['/a*/{*}']}}]"),
        'spec.rules[0].to[0].operation.paths[0]: path template "/a*/{*}": segment "a*" may '
        "hold only letters, digits and -._~%!$&'()+,;:@",
    ),
    "path-template-equals-literal": (
        rule("to: [{operation: {paths: ['/a=b/{*}']}}]"),
        'spec.rules[0].to[0].operation.paths[0]: path template "/a=b/{*}": segment "a=b" may '
        "hold only letters, digits and -._~%!$&'()+,;:@",
    ),
    "path-template-relative": (
        rule("to: [{operation: {paths: ['items/{*}']}}]"),
        'spec.rules[0].to[0].operation.paths[0]: path template "items/{*}" must start with /',
    ),
    "rule-unknown-field": (
        rule("source: {principals: [a]}"),
        "spec.rules[0].source: unknown field",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_refusal_is_one_line_naming_the_field(case: str) -> None:
    spec, expected = CASES[case]

    assert load_errors(policy(spec)) == [PREFIX + expected]


@pytest.mark.parametrize(
    ("spec", "value", "expected"),
    [
        ("rules: [{}]", "yes", 'must be true or false (got "yes")'),
        (
            "action: AUDIT\nrules: [{}]",
            "true",
            "dry-run is only supported for action ALLOW or DENY (not AUDIT)",
        ),
    ],
)
def test_dry_run_annotation_refusals(spec: str, value: str, expected: str) -> None:
    text = policy(spec, f'  annotations: {{istio.io/dry-run: "{value}"}}\n')

    assert load_errors(text) == [f"{PREFIX}metadata.annotations[istio.io/dry-run]: {expected}"]


@pytest.mark.parametrize(
    ("text", "value"),
    [("true", True), ("1", True), ("True", True), ("false", False), ("F", False), ("yes", None)],
)
def test_dry_run_reads_go_booleans(text: str, value: bool | None) -> None:
    assert parse_go_bool(text) is value
