"""Every field a user's YAML can set is enforced, refused, or knowingly inert.

Our rule: a feature that is parsed but not enforced is a bug; either enforce it or reject
it with a clear error. This test walks every field of every model reachable from every
registered kind (`isthmus.api.registry.KINDS`, through nested models, lists, maps and
unions) and requires each field path to be classified in FIELDS as one of:

- TRANSLATED: it changes the generated Envoy configuration or the runtime's behaviour.
  Checked by a heuristic: the field's Python attribute name must be read as an attribute
  (`x.name`) somewhere in src/isthmus outside `api`, `cli`, `testing` and `demo` (parsed
  with `ast`). The heuristic proves a field is *not* read when its name appears nowhere;
  a common name (`port`, `labels`) always passes, so reading the code stays the real check.
- REFUSED: a document that sets it is rejected by `isthmus.api.loader.load_documents`
  with an error naming the field's path. Checked for real: the kind's minimal valid
  document (`base_document`) with the field set to a small sample must fail to load, and
  every error line must name that path. A refusal may cover the field's whole subtree.
- METADATA or VALIDATED_ONLY, with a one-line reason: stored and shown but without
  traffic or runtime meaning, or checked and accepted only in values that mean what
  leaving the field out means.

Fields known to be parsed and silently ignored are listed in IGNORED_KNOWN, with where
the code was read and what Istio does with them. That table makes
`test_no_field_is_parsed_and_silently_ignored` fail on purpose until each one is enforced
(then move it to FIELDS as TRANSLATED) or refused (then REFUSED with a sample).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import pytest
from _field_walk import (
    Field,
    attributes_read,
    concrete,
    deep_copy,
    segments,
    set_path,
    walk,
)

from isthmus.api.errors import ApiError
from isthmus.api.loader import load_documents
from isthmus.api.registry import KINDS

# --- the classes ----------------------------------------------------------------------


@dataclass(frozen=True)
class Translated:
    """Changes generated Envoy config or runtime behaviour (the code reads it)."""


@dataclass(frozen=True)
class Refused:
    """Rejected by the loader. `sample` is what the test sets the field to; `also` sets
    sibling fields (relative to the field's parent; a key starting with "/" is a path
    from the kind's root) the sample needs to be otherwise valid; `reported_at` is a path
    below the field where the loader reports it (empty: at the field itself); `subtree`
    makes the refusal cover every field below this one."""

    sample: Any
    also: Mapping[str, Any] = field(default_factory=dict)
    reported_at: str = ""
    subtree: bool = False


@dataclass(frozen=True)
class Metadata:
    """Stored and shown, no traffic or runtime meaning; `reason` says why that is right."""

    reason: str


@dataclass(frozen=True)
class ValidatedOnly:
    """Checked, and accepted only where it means what leaving it out means."""

    reason: str


Coverage: TypeAlias = Translated | Refused | Metadata | ValidatedOnly
Table: TypeAlias = dict[str, Coverage]
T = Translated()


def under(prefix: str, table: Mapping[str, Coverage]) -> Table:
    """`table`'s relative paths (".x.y") placed below `prefix`."""
    return {prefix + relative: coverage for relative, coverage in table.items()}


# --- shared shapes ----------------------------------------------------------------------

_API_VERSION = ValidatedOnly(
    "selects a served version; every served version parses into the same model"
)
_SERVER_SET: Table = {
    ".resourceVersion": Metadata(
        "set by the store; an apply naming one is only checked against it (optimistic "
        "concurrency, store.indexed)"
    ),
    ".generation": Metadata("server-set in Kubernetes; stored so `get -o yaml` re-applies"),
    ".uid": Metadata("server-set in Kubernetes; stored so `get -o yaml` re-applies"),
    ".creationTimestamp": Metadata(
        "set by the store; precedence (oldest wins) uses the store's creation revision"
    ),
    ".deletionTimestamp": Metadata("server-set in Kubernetes; stored so `get -o yaml` re-applies"),
    ".deletionGracePeriodSeconds": Metadata(
        "server-set in Kubernetes; stored so `get -o yaml` re-applies"
    ),
    ".finalizers": Metadata("stored and shown; nothing reads it (no finalizer controller)"),
    ".ownerReferences": Metadata("stored and shown; nothing reads it (no garbage collector)"),
    ".managedFields": Metadata("server-side apply bookkeeping; stored so output re-applies"),
    ".selfLink": Metadata("deprecated server-set link; stored so `get -o yaml` re-applies"),
}
_UNREAD_LABELS = Metadata("stored and shown; nothing in isthmus reads this kind's own labels")
_UNREAD_ANNOTATIONS = Metadata(
    "stored and shown; no annotation of this kind is interpreted by isthmus"
)


def _object(
    kind: str,
    *,
    name: Coverage = T,
    namespace: Coverage = T,
    labels: Coverage = _UNREAD_LABELS,
    annotations: Coverage = _UNREAD_ANNOTATIONS,
) -> Table:
    """apiVersion, kind and metadata of `kind`; name/namespace identify and order
    objects (route and cluster metadata names, precedence ties, selection scopes)."""
    metadata = {
        ".name": name,
        ".namespace": namespace,
        ".labels": labels,
        ".annotations": annotations,
        **_SERVER_SET,
    }
    return {
        f"{kind}.apiVersion": _API_VERSION,
        f"{kind}.kind": T,
        f"{kind}.metadata": T,
        **under(f"{kind}.metadata", metadata),
    }


_WORKLOAD_SELECTOR: Table = {".matchLabels": T}  # security and telemetry kinds
_STRING_MATCH: Table = {".exact": T, ".prefix": T, ".regex": T}
_DESTINATION: Table = {".host": T, ".subset": T, ".port": T, ".port.number": T}
_HEADER_OPERATIONS: Table = {".set": T, ".add": T, ".remove": T}
_HEADERS: Table = {
    ".request": T,
    **under(".request", _HEADER_OPERATIONS),
    ".response": T,
    **under(".response", _HEADER_OPERATIONS),
}

# --- VirtualService -------------------------------------------------------------------

_HTTP_MATCH: Table = {
    ".name": T,  # becomes part of the Envoy route name
    ".uri": T,
    **under(".uri", _STRING_MATCH),
    ".scheme": T,
    **under(".scheme", _STRING_MATCH),
    ".method": T,
    **under(".method", _STRING_MATCH),
    ".authority": T,
    **under(".authority", _STRING_MATCH),
    ".headers": T,
    **under(".headers{}", _STRING_MATCH),
    ".port": T,
    ".sourceLabels": T,
    ".gateways": T,
    ".queryParams": T,
    **under(".queryParams{}", _STRING_MATCH),
    ".ignoreUriCase": T,
    ".withoutHeaders": T,
    **under(".withoutHeaders{}", _STRING_MATCH),
    ".sourceNamespace": T,
}

_HTTP_ROUTE: Table = {
    ".name": T,  # the Envoy route name
    ".match": T,
    **under(".match[]", _HTTP_MATCH),
    ".route": T,
    ".route[].destination": T,
    **under(".route[].destination", _DESTINATION),
    ".route[].weight": T,
    ".route[].headers": T,
    **under(".route[].headers", _HEADERS),
    ".redirect": T,
    ".redirect.uri": T,
    ".redirect.authority": T,
    ".redirect.port": T,
    ".redirect.derivePort": T,
    ".redirect.scheme": T,
    ".redirect.redirectCode": T,
    ".directResponse": T,
    ".directResponse.status": T,
    ".directResponse.body": T,
    ".delegate": Refused({"name": "reviews-routes"}),
    ".rewrite": T,
    ".rewrite.uri": T,
    ".rewrite.authority": T,
    ".rewrite.uriRegexRewrite": T,
    ".rewrite.uriRegexRewrite.match": T,
    ".rewrite.uriRegexRewrite.rewrite": T,
    ".timeout": T,
    ".retries": T,
    ".retries.attempts": T,
    ".retries.perTryTimeout": T,
    ".retries.retryOn": T,
    ".retries.retryRemoteLocalities": Refused(True, also={"attempts": 1}),
    ".fault": T,
    ".fault.delay": T,
    ".fault.delay.fixedDelay": T,
    ".fault.delay.exponentialDelay": Refused("1s"),
    ".fault.delay.percentage": T,
    ".fault.delay.percentage.value": T,
    ".fault.delay.percent": T,
    ".fault.abort": T,
    ".fault.abort.httpStatus": T,
    ".fault.abort.grpcStatus": T,
    ".fault.abort.http2Error": Refused("ENHANCE_YOUR_CALM"),
    ".fault.abort.percentage": T,
    ".fault.abort.percentage.value": T,
    ".mirror": T,
    **under(".mirror", _DESTINATION),
    ".mirrors": T,
    ".mirrors[].destination": T,
    **under(".mirrors[].destination", _DESTINATION),
    ".mirrors[].percentage": T,
    ".mirrors[].percentage.value": T,
    ".mirrorPercentage": T,
    ".mirrorPercentage.value": T,
    ".mirrorPercent": T,
    ".corsPolicy": T,
    ".corsPolicy.allowOrigins": T,
    **under(".corsPolicy.allowOrigins[]", _STRING_MATCH),
    ".corsPolicy.allowOrigin": T,
    ".corsPolicy.allowMethods": T,
    ".corsPolicy.allowHeaders": T,
    ".corsPolicy.exposeHeaders": T,
    ".corsPolicy.maxAge": T,
    ".corsPolicy.allowCredentials": T,
    ".corsPolicy.unmatchedPreflights": T,
    ".headers": T,
    **under(".headers", _HEADERS),
}

_TCP_ROUTE: Table = {
    ".match": T,
    ".match[].destinationSubnets": T,
    ".match[].port": T,
    ".match[].sourceLabels": T,
    ".match[].gateways": T,
    ".match[].sourceNamespace": T,
    ".route": T,
    ".route[].destination": T,
    **under(".route[].destination", _DESTINATION),
    ".route[].weight": T,
}

_TLS_ROUTES = [
    {"match": [{"sniHosts": ["reviews"]}], "route": [{"destination": {"host": "reviews"}}]}
]

VIRTUAL_SERVICE: Table = {
    **_object("VirtualService"),
    "VirtualService.spec": T,
    "VirtualService.spec.hosts": T,
    "VirtualService.spec.gateways": T,  # only `mesh` passes validation; it is read
    "VirtualService.spec.http": T,
    **under("VirtualService.spec.http[]", _HTTP_ROUTE),
    # tls routes: translated on gateways (pilot.gateway.tcp), refused on sidecars.
    "VirtualService.spec.tls": T,
    "VirtualService.spec.tls[].match": T,
    "VirtualService.spec.tls[].match[].sniHosts": T,
    "VirtualService.spec.tls[].match[].port": T,
    "VirtualService.spec.tls[].match[].gateways": T,
    **{
        f"VirtualService.spec.tls[].match[].{name}": Refused(
            sample,
            also={
                "/spec.gateways": ["gw"],
                "sniHosts": ["reviews"],
                "/spec.tls[].route": [{"destination": {"host": "reviews"}}],
            },
        )
        for name, sample in (
            ("destinationSubnets", ["10.0.0.0/8"]),
            ("sourceLabels", {"app": "x"}),
            ("sourceNamespace", "shop"),
        )
    },
    "VirtualService.spec.tls[].route": T,
    "VirtualService.spec.tls[].route[].destination": T,
    "VirtualService.spec.tls[].route[].destination.host": T,
    "VirtualService.spec.tls[].route[].destination.subset": T,
    "VirtualService.spec.tls[].route[].destination.port": T,
    "VirtualService.spec.tls[].route[].destination.port.number": T,
    "VirtualService.spec.tls[].route[].weight": T,
    "VirtualService.spec.tcp": T,
    **under("VirtualService.spec.tcp[]", _TCP_ROUTE),
    "VirtualService.spec.exportTo": T,
}

# --- DestinationRule ------------------------------------------------------------------

# The four blocks a traffic policy and each of its portLevelSettings hold; one code path
# (pilot.destination_rule.effective_policy, then pilot.envoy.*) applies all four places.
# The settings Istio also puts on TCP proxies are classified per place (_TCP_PROXY_SETTINGS).
_POLICY_BLOCKS: Table = {
    ".loadBalancer": T,
    ".loadBalancer.simple": T,
    ".loadBalancer.consistentHash": T,
    ".loadBalancer.consistentHash.httpHeaderName": T,
    ".loadBalancer.consistentHash.httpCookie": T,
    ".loadBalancer.consistentHash.httpCookie.name": T,
    ".loadBalancer.consistentHash.httpCookie.path": T,
    ".loadBalancer.consistentHash.httpCookie.ttl": T,
    ".loadBalancer.consistentHash.httpQueryParameterName": T,
    ".loadBalancer.consistentHash.minimumRingSize": T,
    ".loadBalancer.warmup": T,
    ".loadBalancer.warmup.duration": T,
    ".loadBalancer.warmup.minimumPercent": T,
    ".loadBalancer.warmup.aggression": T,
    ".loadBalancer.warmupDurationSecs": T,
    ".loadBalancer.localityLbSetting": T,
    ".loadBalancer.localityLbSetting.enabled": T,
    ".loadBalancer.localityLbSetting.distribute": T,
    ".loadBalancer.localityLbSetting.distribute[].from": T,
    ".loadBalancer.localityLbSetting.distribute[].to": T,
    ".loadBalancer.localityLbSetting.failover": T,
    ".loadBalancer.localityLbSetting.failover[].from": T,
    ".loadBalancer.localityLbSetting.failover[].to": T,
    ".loadBalancer.localityLbSetting.failoverPriority": T,
    ".connectionPool": T,
    ".connectionPool.tcp": T,
    ".connectionPool.tcp.maxConnections": T,
    ".connectionPool.tcp.connectTimeout": T,
    ".connectionPool.tcp.tcpKeepalive": T,
    ".connectionPool.tcp.tcpKeepalive.probes": T,
    ".connectionPool.tcp.tcpKeepalive.time": T,
    ".connectionPool.tcp.tcpKeepalive.interval": T,
    ".connectionPool.http": T,
    ".connectionPool.http.http1MaxPendingRequests": T,
    ".connectionPool.http.http2MaxRequests": T,
    ".connectionPool.http.maxRequestsPerConnection": T,
    ".connectionPool.http.maxRetries": T,
    ".connectionPool.http.idleTimeout": T,
    ".connectionPool.http.h2UpgradePolicy": T,
    ".connectionPool.http.useClientProtocol": T,
    ".connectionPool.http.maxConcurrentStreams": T,
    ".outlierDetection": T,
    ".outlierDetection.consecutive5xxErrors": T,
    ".outlierDetection.consecutiveGatewayErrors": T,
    ".outlierDetection.splitExternalLocalOriginErrors": T,
    ".outlierDetection.consecutiveLocalOriginFailures": T,
    ".outlierDetection.interval": T,
    ".outlierDetection.baseEjectionTime": T,
    ".outlierDetection.maxEjectionPercent": T,
    ".outlierDetection.minHealthPercent": T,
    ".tls": T,
    ".tls.mode": T,
    ".tls.clientCertificate": T,
    ".tls.privateKey": T,
    ".tls.caCertificates": T,
    ".tls.subjectAltNames": T,
    ".tls.sni": T,
    ".tls.insecureSkipVerify": T,
}
_TRAFFIC_POLICY: Table = {
    **_POLICY_BLOCKS,
    ".portLevelSettings": T,
    ".portLevelSettings[].port": T,
    ".portLevelSettings[].port.number": T,
    **under(".portLevelSettings[]", _POLICY_BLOCKS),
}
# The same policy at the rule and in each subset.
_POLICY_PLACES = (
    "DestinationRule.spec.trafficPolicy",
    "DestinationRule.spec.subsets[].trafficPolicy",
)
_PORT_POLICY_PLACES = tuple(
    f"{place}{suffix}" for place in _POLICY_PLACES for suffix in ("", ".portLevelSettings[]")
)

# Istio also applies these to the tcp_proxy of TCP services, reading them only from the
# places named here; everywhere else they shape only the cluster, in Istio as in isthmus.
_TCP_PROXY_SETTINGS = (
    ".connectionPool.tcp.idleTimeout",
    ".connectionPool.tcp.maxConnectionDuration",
    ".loadBalancer.consistentHash.useSourceIp",
)
_ISTIO_TCP_PROXY_READS = {
    "DestinationRule.spec.trafficPolicy": _TCP_PROXY_SETTINGS,
    "DestinationRule.spec.subsets[].trafficPolicy": (".loadBalancer.consistentHash.useSourceIp",),
}
_CLUSTER_ONLY: Table = {
    place + setting: T
    for place in _PORT_POLICY_PLACES
    for setting in _TCP_PROXY_SETTINGS
    if setting not in _ISTIO_TCP_PROXY_READS.get(place, ())
}

# What the consecutiveErrors sample needs to be otherwise valid: a subset needs a name, a
# port entry a port ("/": a path from the kind's root, not from the field's parent).
_SUBSET_NAME = {"/spec.subsets[].name": "v1"}
_CONSECUTIVE_ERRORS_CONTEXT: dict[str, dict[str, Any]] = {
    "DestinationRule.spec.trafficPolicy": {},
    "DestinationRule.spec.trafficPolicy.portLevelSettings[]": {
        "/spec.trafficPolicy.portLevelSettings[].port": {"number": 80}
    },
    "DestinationRule.spec.subsets[].trafficPolicy": _SUBSET_NAME,
    "DestinationRule.spec.subsets[].trafficPolicy.portLevelSettings[]": {
        **_SUBSET_NAME,
        "/spec.subsets[].trafficPolicy.portLevelSettings[].port": {"number": 80},
    },
}
assert set(_CONSECUTIVE_ERRORS_CONTEXT) == set(_PORT_POLICY_PLACES)

DESTINATION_RULE: Table = {
    **_CLUSTER_ONLY,
    # Also on the tcp_proxy of TCP services (pilot.destination_rule.tcp_proxy_policy).
    **{
        place + setting: T
        for place, settings in _ISTIO_TCP_PROXY_READS.items()
        for setting in settings
    },
    # Deprecated, ignored by Istio's translation: refused, naming what replaces it.
    **{
        f"{place}.outlierDetection.consecutiveErrors": Refused(5, also=context)
        for place, context in _CONSECUTIVE_ERRORS_CONTEXT.items()
    },
    **_object("DestinationRule"),
    "DestinationRule.spec": T,
    "DestinationRule.spec.host": T,
    "DestinationRule.spec.trafficPolicy": T,
    **under("DestinationRule.spec.trafficPolicy", _TRAFFIC_POLICY),
    "DestinationRule.spec.subsets": T,
    "DestinationRule.spec.subsets[].name": T,
    "DestinationRule.spec.subsets[].labels": T,
    "DestinationRule.spec.subsets[].trafficPolicy": T,
    **under("DestinationRule.spec.subsets[].trafficPolicy", _TRAFFIC_POLICY),
    "DestinationRule.spec.exportTo": T,
    "DestinationRule.spec.workloadSelector": Refused(
        {"matchLabels": {"app": "reviews"}}, subtree=True
    ),
}

# --- ServiceEntry, WorkloadEntry ------------------------------------------------------

_WORKLOAD_ENTRY: Table = {
    ".address": T,
    ".ports": T,
    ".labels": T,
    ".network": T,  # topology label; no address + a network: no traffic (model.topology)
    ".locality": T,  # the endpoint's EDS locality group (model.topology, pilot.envoy.endpoint)
    ".weight": T,
    ".serviceAccount": T,
}

SERVICE_ENTRY: Table = {
    **_object("ServiceEntry"),
    "ServiceEntry.spec": T,
    "ServiceEntry.spec.hosts": T,
    "ServiceEntry.spec.addresses": T,
    "ServiceEntry.spec.ports": T,
    "ServiceEntry.spec.ports[].number": T,
    "ServiceEntry.spec.ports[].protocol": T,
    "ServiceEntry.spec.ports[].name": T,
    "ServiceEntry.spec.ports[].targetPort": T,
    "ServiceEntry.spec.location": T,
    "ServiceEntry.spec.resolution": T,
    "ServiceEntry.spec.endpoints": T,
    **under("ServiceEntry.spec.endpoints[]", _WORKLOAD_ENTRY),
    "ServiceEntry.spec.workloadSelector": Refused({"labels": {"app": "api"}}, subtree=True),
    "ServiceEntry.spec.exportTo": T,
    "ServiceEntry.spec.subjectAltNames": Refused(["spiffe://cluster.local/ns/default/sa/api"]),
}

WORKLOAD_ENTRY: Table = {
    **_object("WorkloadEntry"),  # metadata.name is the workload's name (telemetry)
    "WorkloadEntry.spec": T,
    **under("WorkloadEntry.spec", _WORKLOAD_ENTRY),
}

# --- Secret ---------------------------------------------------------------------------

SECRET: Table = {
    **_object("Secret"),
    "Secret.type": ValidatedOnly(
        "Opaque (the default) or kubernetes.io/tls, which requires tls.crt and tls.key; Istio "
        "reads a credential from either type by its keys (model.credentials)"
    ),
    "Secret.data": T,
    "Secret.stringData": Metadata(
        "write-only as in Kubernetes: merged into data on apply (Secret.stored_body), so "
        "stored objects and the mesh hold it as data"
    ),
    "Secret.immutable": Metadata(
        "enforced on apply, not in the mesh: an immutable Secret's data can not change and it "
        "stays immutable (api.updates, daemon.http_api), as Kubernetes' ValidateSecretUpdate"
    ),
}

# --- Gateway --------------------------------------------------------------------------


GATEWAY: Table = {
    **_object("Gateway"),
    "Gateway.spec": T,
    "Gateway.spec.selector": T,
    "Gateway.spec.servers": T,
    "Gateway.spec.servers[].port": T,
    "Gateway.spec.servers[].port.number": T,
    "Gateway.spec.servers[].port.protocol": T,
    "Gateway.spec.servers[].port.name": ValidatedOnly("required and unique, as in Istio"),
    "Gateway.spec.servers[].port.targetPort": Refused(8080),
    "Gateway.spec.servers[].bind": Refused("0.0.0.0"),
    "Gateway.spec.servers[].hosts": T,
    "Gateway.spec.servers[].defaultEndpoint": Refused("127.0.0.1:8080"),
    "Gateway.spec.servers[].name": Metadata("a label for the server; Istio's stats use it"),
    "Gateway.spec.servers[].tls": T,
    "Gateway.spec.servers[].tls.httpsRedirect": T,
    **{
        f"Gateway.spec.servers[].tls.{name}": T  # on HTTPS servers (pilot.gateway.tls)
        for name in (
            "mode",
            "serverCertificate",
            "privateKey",
            "caCertificates",
            "caCrl",
            "credentialName",
            "subjectAltNames",
            "verifyCertificateSpki",
            "verifyCertificateHash",
            "minProtocolVersion",
            "maxProtocolVersion",
            "cipherSuites",
            "ecdhCurves",
        )
    },
    **{
        f"Gateway.spec.servers[].tls.{name}": Refused(sample, reported_at="")
        for name, sample in (
            ("credentialNames", ["bookinfo-credential"]),
            ("caCertCredentialName", "bookinfo-ca"),
            ("insecureSkipVerify", True),
        )
    },
    "Gateway.spec.servers[].tls.tlsCertificates": Refused(
        [{"serverCertificate": "/c.pem", "privateKey": "/k.pem"}], subtree=True
    ),
}

# --- Sidecar --------------------------------------------------------------------------

SIDECAR: Table = {
    **_object("Sidecar"),
    "Sidecar.spec": T,
    "Sidecar.spec.workloadSelector": T,
    "Sidecar.spec.workloadSelector.labels": T,
    "Sidecar.spec.egress": T,
    "Sidecar.spec.egress[].port": T,
    "Sidecar.spec.egress[].port.number": T,
    "Sidecar.spec.egress[].port.protocol": T,
    "Sidecar.spec.egress[].port.name": ValidatedOnly(
        "a label of the listener port; Istio's outbound listener reads only number and protocol"
    ),
    "Sidecar.spec.egress[].port.targetPort": Refused(9080, also={"number": 9080}),
    "Sidecar.spec.egress[].bind": Refused("127.0.0.1"),
    "Sidecar.spec.egress[].captureMode": ValidatedOnly(
        "DEFAULT and IPTABLES both mean iptables capture, the only mode; NONE is refused"
    ),
    "Sidecar.spec.egress[].hosts": T,
    "Sidecar.spec.outboundTrafficPolicy": T,
    "Sidecar.spec.outboundTrafficPolicy.mode": T,
}

# --- security.istio.io ----------------------------------------------------------------

PEER_AUTHENTICATION: Table = {
    **_object("PeerAuthentication"),
    "PeerAuthentication.spec": T,
    "PeerAuthentication.spec.selector": T,
    **under("PeerAuthentication.spec.selector", _WORKLOAD_SELECTOR),
    "PeerAuthentication.spec.mtls": T,
    "PeerAuthentication.spec.mtls.mode": T,
    "PeerAuthentication.spec.portLevelMtls": T,
    "PeerAuthentication.spec.portLevelMtls{}.mode": T,
}

_SOURCE_FIELDS = (
    "principals",
    "notPrincipals",
    "requestPrincipals",
    "notRequestPrincipals",
    "namespaces",
    "notNamespaces",
    "serviceAccounts",
    "notServiceAccounts",
    "ipBlocks",
    "notIpBlocks",
    "remoteIpBlocks",
    "notRemoteIpBlocks",
)
_OPERATION_FIELDS = (
    "hosts",
    "notHosts",
    "ports",
    "notPorts",
    "methods",
    "notMethods",
    "paths",
    "notPaths",
)
AUTHORIZATION_POLICY: Table = {
    # metadata.annotations: the `istio.io/dry-run` annotation (shadow rules)
    **_object("AuthorizationPolicy", annotations=T),
    "AuthorizationPolicy.spec": T,
    "AuthorizationPolicy.spec.selector": T,
    **under("AuthorizationPolicy.spec.selector", _WORKLOAD_SELECTOR),
    "AuthorizationPolicy.spec.rules": T,
    "AuthorizationPolicy.spec.rules[].from": T,
    "AuthorizationPolicy.spec.rules[].from[].source": T,
    **{f"AuthorizationPolicy.spec.rules[].from[].source.{name}": T for name in _SOURCE_FIELDS},
    "AuthorizationPolicy.spec.rules[].to": T,
    "AuthorizationPolicy.spec.rules[].to[].operation": T,
    **{f"AuthorizationPolicy.spec.rules[].to[].operation.{name}": T for name in _OPERATION_FIELDS},
    "AuthorizationPolicy.spec.rules[].when": T,
    "AuthorizationPolicy.spec.rules[].when[].key": T,
    "AuthorizationPolicy.spec.rules[].when[].values": T,
    "AuthorizationPolicy.spec.rules[].when[].notValues": T,
    "AuthorizationPolicy.spec.action": T,  # CUSTOM is refused; the others are translated
}

_JWT_RULE: Table = {
    ".issuer": T,
    ".audiences": T,
    ".jwksUri": T,
    ".jwks": T,
    ".fromHeaders": T,
    ".fromHeaders[].name": T,
    ".fromHeaders[].prefix": T,
    ".fromParams": T,
    ".fromCookies": T,
    ".outputPayloadToHeader": T,
    ".forwardOriginalToken": T,
    ".outputClaimToHeaders": T,
    ".outputClaimToHeaders[].header": T,
    ".outputClaimToHeaders[].claim": T,
    ".spaceDelimitedClaims": T,
    ".timeout": T,  # the control plane's JWKS fetch timeout (model.jwks)
}
REQUEST_AUTHENTICATION: Table = {
    **_object("RequestAuthentication"),
    "RequestAuthentication.spec": T,
    "RequestAuthentication.spec.selector": T,
    **under("RequestAuthentication.spec.selector", _WORKLOAD_SELECTOR),
    "RequestAuthentication.spec.jwtRules": T,
    **under("RequestAuthentication.spec.jwtRules[]", _JWT_RULE),
}

# --- Telemetry ------------------------------------------------------------------------

_ONLY_BUILT_IN_PROVIDER = ValidatedOnly(
    "only the section's built-in provider (zipkin, envoy, prometheus) is accepted, which is "
    "what leaving providers out means"
)
_PROVIDERS: Table = {
    ".providers": _ONLY_BUILT_IN_PROVIDER,
    ".providers[].name": _ONLY_BUILT_IN_PROVIDER,
}
TELEMETRY: Table = {
    **_object("Telemetry"),
    "Telemetry.spec": T,
    "Telemetry.spec.selector": T,
    **under("Telemetry.spec.selector", _WORKLOAD_SELECTOR),
    "Telemetry.spec.tracing": T,
    "Telemetry.spec.tracing[].match": T,
    "Telemetry.spec.tracing[].match.mode": T,
    **under("Telemetry.spec.tracing[]", _PROVIDERS),
    "Telemetry.spec.tracing[].randomSamplingPercentage": T,
    "Telemetry.spec.tracing[].disableSpanReporting": T,
    "Telemetry.spec.tracing[].customTags": T,
    "Telemetry.spec.tracing[].customTags{}.literal": T,
    "Telemetry.spec.tracing[].customTags{}.literal.value": T,
    "Telemetry.spec.tracing[].customTags{}.environment": T,
    "Telemetry.spec.tracing[].customTags{}.environment.name": T,
    "Telemetry.spec.tracing[].customTags{}.environment.defaultValue": T,
    "Telemetry.spec.tracing[].customTags{}.header": T,
    "Telemetry.spec.tracing[].customTags{}.header.name": T,
    "Telemetry.spec.tracing[].customTags{}.header.defaultValue": T,
    "Telemetry.spec.accessLogging": T,
    "Telemetry.spec.accessLogging[].match": T,
    "Telemetry.spec.accessLogging[].match.mode": T,
    **under("Telemetry.spec.accessLogging[]", _PROVIDERS),
    "Telemetry.spec.accessLogging[].disabled": T,
    "Telemetry.spec.accessLogging[].filter": Refused(
        {"expression": "response.code >= 400"}, reported_at="expression", subtree=True
    ),
    "Telemetry.spec.metrics": T,
    **under("Telemetry.spec.metrics[]", _PROVIDERS),
    "Telemetry.spec.metrics[].overrides": T,
    "Telemetry.spec.metrics[].overrides[].match": T,
    "Telemetry.spec.metrics[].overrides[].match.metric": T,
    "Telemetry.spec.metrics[].overrides[].match.mode": T,
    "Telemetry.spec.metrics[].overrides[].disabled": T,
    "Telemetry.spec.metrics[].overrides[].tagOverrides": T,
    "Telemetry.spec.metrics[].overrides[].tagOverrides{}.operation": T,
    "Telemetry.spec.metrics[].overrides[].tagOverrides{}.value": T,
}

# --- Kubernetes kinds -----------------------------------------------------------------

NAMESPACE: Table = {
    **_object(
        "Namespace",
        namespace=Metadata("Namespace is cluster-scoped: the loader drops it, as Kubernetes"),
        labels=T,  # istio-injection=disabled turns sidecars off (runtime.cache)
    ),
    "Namespace.spec": Metadata("holds only Kubernetes' namespace finalizers"),
    "Namespace.spec.finalizers": Metadata(
        "Kubernetes' namespace finalizers; isthmus runs no finalizer controller"
    ),
}

SERVICE: Table = {
    # metadata.annotations: networking.istio.io/exportTo (model.build)
    **_object("Service", annotations=T),
    "Service.spec": T,
    "Service.spec.ports": T,
    "Service.spec.ports[].port": T,
    "Service.spec.ports[].name": T,
    "Service.spec.ports[].protocol": T,
    "Service.spec.ports[].appProtocol": T,
    "Service.spec.ports[].targetPort": T,
    "Service.spec.selector": T,
    "Service.spec.clusterIP": T,
    "Service.spec.type": ValidatedOnly("only ClusterIP, the default, is accepted"),
}

_NOT_CONSULTED = Metadata(
    "ServiceAccount objects are stored only: identities come from the pods' "
    "serviceAccountName, which is not looked up"
)
SERVICE_ACCOUNT: Table = {
    **_object("ServiceAccount", name=_NOT_CONSULTED, namespace=_NOT_CONSULTED),
    "ServiceAccount.automountServiceAccountToken": Refused(True),
}

_PROBE: Table = {
    ".httpGet": T,
    ".httpGet.path": T,
    ".httpGet.port": T,
    ".httpGet.scheme": ValidatedOnly(
        "only HTTP, the default, is accepted; the runtime probes with HTTP"
    ),
    ".tcpSocket": T,
    ".tcpSocket.port": T,
    ".exec": T,
    ".exec.command": T,
    ".initialDelaySeconds": T,
    ".periodSeconds": T,
    ".timeoutSeconds": T,
    ".successThreshold": T,
    ".failureThreshold": T,
}
_SECURITY_CONTEXT: Table = {
    ".capabilities": T,
    ".capabilities.add": T,
    ".capabilities.drop": T,
    ".privileged": T,
    ".runAsUser": T,
    ".runAsGroup": T,
    ".runAsNonRoot": T,
    ".readOnlyRootFilesystem": T,
    ".allowPrivilegeEscalation": T,
}
# A known gap, said in README ("recorded but not used"): limits are not enforced (no cgroups
# yet); refusing them would refuse nearly every real Deployment.
_RESOURCES_GAP = Metadata(
    "NOT ENFORCED, documented: quantities are checked, no cgroup limits are set (README)"
)
_CONTAINER: Table = {
    ".name": T,
    ".command": T,
    ".args": T,
    ".env": T,
    ".env[].name": T,
    ".env[].value": T,
    ".env[].valueFrom": T,
    ".env[].valueFrom.fieldRef": T,
    ".env[].valueFrom.fieldRef.fieldPath": T,
    ".env[].valueFrom.fieldRef.apiVersion": ValidatedOnly("only v1 exists (Kubernetes)"),
    ".image": Metadata(
        "the local runtime runs `command`, not images (README); `image: auto` on a container "
        "named istio-proxy marks a gateway pod (api.core.is_gateway_container); `get` shows it"
    ),
    ".imagePullPolicy": Metadata(
        "nothing is pulled: the local runtime runs `command` on this host, not images (README)"
    ),
    ".resources": _RESOURCES_GAP,
    ".resources.requests": _RESOURCES_GAP,
    ".resources.limits": _RESOURCES_GAP,
    ".ports": T,
    ".ports[].containerPort": T,
    ".ports[].name": T,  # named ports: Service targetPort, probes
    ".ports[].protocol": T,  # only TCP ports are captured inbound
    ".readinessProbe": T,
    **under(".readinessProbe", _PROBE),
    ".livenessProbe": T,
    **under(".livenessProbe", _PROBE),
    ".workingDir": T,
    ".securityContext": T,
    **under(".securityContext", _SECURITY_CONTEXT),
}
_POD_SPEC: Table = {
    ".containers": T,
    **under(".containers[]", _CONTAINER),
    ".serviceAccountName": T,
    ".terminationGracePeriodSeconds": T,
    ".restartPolicy": ValidatedOnly(
        "only Always, the default, is accepted; the runtime's shim always restarts containers"
    ),
    ".securityContext": T,
    ".securityContext.runAsUser": T,
    ".securityContext.runAsGroup": T,
    ".securityContext.runAsNonRoot": T,
    ".securityContext.supplementalGroups": T,
}
_SELECTOR_CHECKED = ValidatedOnly(
    "must match the template's labels (checked); the runtime owns pods by Deployment name"
)
DEPLOYMENT: Table = {
    **_object("Deployment"),
    "Deployment.spec": T,
    "Deployment.spec.replicas": T,
    "Deployment.spec.selector": _SELECTOR_CHECKED,
    "Deployment.spec.selector.matchLabels": _SELECTOR_CHECKED,
    "Deployment.spec.template": T,
    "Deployment.spec.template.metadata": T,
    "Deployment.spec.template.metadata.labels": T,
    "Deployment.spec.template.metadata.annotations": T,  # inject, capture, proxy config
    "Deployment.spec.template.spec": T,
    **under("Deployment.spec.template.spec", _POD_SPEC),
    "Deployment.spec.strategy": T,
    "Deployment.spec.strategy.type": T,
    "Deployment.spec.strategy.rollingUpdate": T,
    "Deployment.spec.strategy.rollingUpdate.maxSurge": T,
    "Deployment.spec.strategy.rollingUpdate.maxUnavailable": T,
    "Deployment.spec.minReadySeconds": T,
}

FIELDS: Table = {
    **VIRTUAL_SERVICE,
    **DESTINATION_RULE,
    **SERVICE_ENTRY,
    **WORKLOAD_ENTRY,
    **SIDECAR,
    **GATEWAY,
    **SECRET,
    **PEER_AUTHENTICATION,
    **AUTHORIZATION_POLICY,
    **REQUEST_AUTHENTICATION,
    **TELEMETRY,
    **NAMESPACE,
    **SERVICE,
    **SERVICE_ACCOUNT,
    **DEPLOYMENT,
}

# --- parsed and silently ignored: each entry is a bug to fix --------------------------
# Fix one: enforce it (then TRANSLATED in FIELDS) or refuse it (then Refused in FIELDS);
# delete its entry here. "Partly" means some cases are enforced and the case named is not.

IGNORED_KNOWN: dict[str, str] = {}

# --- minimal valid documents ----------------------------------------------------------

_CONTAINER_DOC = {"name": "app", "command": ["sleep", "infinity"]}
_SPECS: dict[str, dict[str, Any] | None] = {
    "VirtualService": {
        "hosts": ["reviews"],
        "http": [{"route": [{"destination": {"host": "reviews"}}]}],
    },
    "DestinationRule": {"host": "reviews"},
    "ServiceEntry": {
        "hosts": ["api.example.com"],
        "ports": [{"number": 443, "name": "https", "protocol": "HTTPS"}],
        "resolution": "DNS",
    },
    "WorkloadEntry": {"address": "10.0.0.5"},
    "Sidecar": {"egress": [{"hosts": ["./*"]}]},
    "Secret": None,
    "Gateway": {
        "selector": {"istio": "ingressgateway"},
        "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}],
    },
    "PeerAuthentication": {"mtls": {"mode": "STRICT"}},
    "AuthorizationPolicy": {},
    "RequestAuthentication": {},
    "Telemetry": {},
    "Namespace": None,
    "Service": {"ports": [{"port": 80, "name": "http"}], "selector": {"app": "reviews"}},
    "ServiceAccount": None,
    "Deployment": {
        "selector": {"matchLabels": {"app": "reviews"}},
        "template": {
            "metadata": {"labels": {"app": "reviews"}},
            "spec": {"containers": [_CONTAINER_DOC]},
        },
    },
}


def base_document(kind: str) -> dict[str, Any]:
    """The smallest valid object of `kind` (a fresh copy, for the test to change)."""
    info = KINDS[kind]
    metadata = (
        {"name": "coverage", "namespace": "default"} if info.namespaced else {"name": "coverage"}
    )
    document: dict[str, Any] = {
        "apiVersion": info.preferred_api_version,
        "kind": kind,
        "metadata": metadata,
    }
    spec = _SPECS[kind]
    if spec is not None:
        document["spec"] = deep_copy(spec)
    return document


def load_errors(document: Mapping[str, Any]) -> list[str]:
    """The loader's error lines for one document (JSON is YAML); [] if it loads."""
    try:
        load_documents(json.dumps(document), "coverage.yaml")
    except ApiError as error:
        return error.errors
    return []


# --- the walk against the tables ------------------------------------------------------


def model_fields() -> dict[str, Field]:
    """Every field path reachable from a registered kind."""
    return {f.path: f for kind, info in KINDS.items() for f in walk(kind, info.model)}


ALL_FIELDS = model_fields()


REFUSALS: dict[str, Refused] = {p: c for p, c in FIELDS.items() if isinstance(c, Refused)}


def refused_subtree_of(path: str) -> str | None:
    """The path of the subtree refusal that covers `path` (from an ancestor), if any."""
    for root, refusal in REFUSALS.items():
        below = path[len(root) : len(root) + 1]
        if refusal.subtree and path.startswith(root) and below and below in ".[{":
            return root
    return None


def relative(path: str) -> str:
    """The path below its kind: `VirtualService.spec.tls` -> `spec.tls`."""
    return path.split(".", 1)[1]


def parent(relative_path: str) -> str:
    return ".".join(segments(relative_path)[:-1])


def refused_document(path: str, refusal: Refused) -> dict[str, Any]:
    """The kind's base document with the refused field set to its sample."""
    kind, inner = path.split(".", 1)
    document = base_document(kind)
    set_path(document, inner, refusal.sample)
    for sibling, value in refusal.also.items():
        target = sibling[1:] if sibling.startswith("/") else f"{parent(inner)}.{sibling}"
        set_path(document, target, value)
    return document


def expected_error_path(path: str, refusal: Refused) -> str:
    where = concrete(relative(path))
    return f"{where}.{refusal.reported_at}" if refusal.reported_at else where


def _bullets(lines: Iterator[str] | list[str]) -> str:
    return "\n".join(f"  {line}" for line in lines)


# --- tests ----------------------------------------------------------------------------


def test_every_field_is_classified() -> None:
    """A new field (or one a model change made reachable) needs a verdict before merge."""
    missing = [
        path
        for path in ALL_FIELDS
        if path not in FIELDS and path not in IGNORED_KNOWN and refused_subtree_of(path) is None
    ]
    assert not missing, (
        f"{len(missing)} field(s) of the api models are not classified in "
        "tests/unit/api/test_field_coverage.py. For each: read where pilot/model/runtime "
        "use it; if nothing enforces it, either enforce it or refuse it in the api's checks "
        '("not supported yet"); then add it to FIELDS as TRANSLATED, Refused(sample), '
        "Metadata(reason) or ValidatedOnly(reason).\n" + _bullets(missing)
    )


def test_tables_name_only_fields_that_exist() -> None:
    """A field renamed or removed must leave the tables too, or they lie."""
    stale = [path for path in [*FIELDS, *IGNORED_KNOWN] if path not in ALL_FIELDS]
    assert not stale, "no such field in the models:\n" + _bullets(stale)


def test_no_field_is_in_both_tables_or_below_a_subtree_refusal() -> None:
    doubled = sorted(set(FIELDS) & set(IGNORED_KNOWN))
    shadowed = [path for path in [*FIELDS, *IGNORED_KNOWN] if refused_subtree_of(path)]
    assert not doubled, "classified and also in IGNORED_KNOWN:\n" + _bullets(doubled)
    assert not shadowed, "already covered by a subtree refusal:\n" + _bullets(shadowed)


def test_every_reason_is_one_line() -> None:
    reasons = [c.reason for c in FIELDS.values() if isinstance(c, Metadata | ValidatedOnly)]
    bad = [r for r in [*reasons, *IGNORED_KNOWN.values()] if not r.strip() or "\n" in r]
    assert not bad, "reasons must be one non-empty line:\n" + _bullets(bad)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_base_document_loads(kind: str) -> None:
    """Refusal checks are only meaningful if the document is valid without the field."""
    assert load_errors(base_document(kind)) == []


@pytest.mark.parametrize("path", sorted(REFUSALS))
def test_refused_field_is_refused_by_the_loader(path: str) -> None:
    refusal = REFUSALS[path]
    errors = load_errors(refused_document(path, refusal))
    where = expected_error_path(path, refusal)
    assert errors, f"{path}: a document setting it loads without error"
    off_target = [line for line in errors if f": {where}: " not in line]
    assert not off_target, (
        f"{path}: every error should name {where} (else the sample document is invalid "
        "for another reason, or the refusal names another path):\n" + _bullets(errors)
    )


def test_translated_fields_are_read_outside_the_api() -> None:
    """Heuristic (see the module docstring): a TRANSLATED field whose Python name is never
    read as an attribute outside `isthmus.api` cannot be enforced."""
    read = attributes_read()
    unread = [
        f"{path} ({ALL_FIELDS[path].attribute})"
        for path, coverage in FIELDS.items()
        if isinstance(coverage, Translated)
        and path in ALL_FIELDS
        and ALL_FIELDS[path].attribute not in read
    ]
    assert not unread, (
        "classified TRANSLATED but no code outside isthmus.api reads the attribute; "
        "enforce or refuse it:\n" + _bullets(unread)
    )


def test_no_field_is_parsed_and_silently_ignored() -> None:
    """Fails while IGNORED_KNOWN holds anything: each entry is a field users can set
    to no effect. Enforce or refuse it, then classify it in FIELDS."""
    assert not IGNORED_KNOWN, (
        f"{len(IGNORED_KNOWN)} field(s) are parsed and silently ignored (enforce each, or "
        "refuse it with a clear error, then move it to FIELDS):\n"
        + _bullets(f"{path}: {why}" for path, why in IGNORED_KNOWN.items())
    )
