"""A corpus of invalid documents: each gives exactly the one expected error line."""

from __future__ import annotations

import pytest
from _apihelp import document, load_errors

VS = "app.yaml:1 VirtualService production/reviews: "
DR = "app.yaml:1 DestinationRule production/reviews: "
SE = "app.yaml:1 ServiceEntry production/reviews: "

ROUTE_V1 = """
hosts: [reviews]
http:
- route:
  - destination: {host: reviews, subset: v1}
"""


def vs(http_route: str, hosts: str = "[reviews]") -> str:
    """A VirtualService with one http route given as YAML (indented under `- `)."""
    lines = http_route.strip("\n").splitlines()
    route = "\n".join(["- " + lines[0].strip(), *("  " + line for line in lines[1:])])
    return document("VirtualService", f"hosts: {hosts}\nhttp:\n{route}")


def dr(spec: str) -> str:
    return document("DestinationRule", "host: reviews\n" + spec.strip("\n"))


def se(spec: str) -> str:
    return document("ServiceEntry", spec)


CORPUS = {
    # --- VirtualService: types and unknown fields -------------------------------------
    "weight-101": (
        vs("""route:
- destination: {host: reviews, subset: v1}
  weight: 101"""),
        VS + "spec.http[0].route[0].weight: must be between 0 and 100",
    ),
    "weights-not-100": (
        vs("""route:
- destination: {host: reviews, subset: v1}
  weight: 80
- destination: {host: reviews, subset: v2}
  weight: 10"""),
        VS + "spec.http[0].route: weights must add up to 100 (they add up to 90)",
    ),
    "weights-one-omitted": (
        vs("""route:
- destination: {host: reviews, subset: v1}
  weight: 95
- destination: {host: reviews, subset: v2}"""),
        VS + "spec.http[0].route: weights must add up to 100 (they add up to 95)",
    ),
    "weight-negative": (
        vs("""route:
- destination: {host: reviews}
  weight: -5"""),
        VS + "spec.http[0].route[0].weight: must be between 0 and 100",
    ),
    "weight-string": (
        vs("""route:
- destination: {host: reviews}
  weight: "50\""""),
        VS + 'spec.http[0].route[0].weight: must be an integer (got "50")',
    ),
    "weight-float": (
        vs("""route:
- destination: {host: reviews}
  weight: 50.5"""),
        VS + "spec.http[0].route[0].weight: must be an integer (got 50.5)",
    ),
    "weight-nan": (
        vs("""route:
- destination: {host: reviews}
  weight: .nan"""),
        VS + "spec.http[0].route[0].weight: must be a finite number",
    ),
    "hosts-not-a-list": (
        document("VirtualService", ROUTE_V1.replace("[reviews]", "reviews")),
        VS + 'spec.hosts: must be a list (got "reviews")',
    ),
    "header-exact-bool": (
        vs("""match:
- headers:
    x-beta-user: {exact: true}
route:
- destination: {host: reviews}"""),
        VS + "spec.http[0].match[0].headers[x-beta-user].exact: must be a string (got true)",
    ),
    "unknown-field-typo": (
        vs("""route:
- destination: {host: reviews, subet: v1}"""),
        VS + "spec.http[0].route[0].destination.subet: unknown field (did you mean subset?)",
    ),
    "unknown-field-snake-case": (
        vs("""route:
- destination: {host: reviews}
retries: {attempts: 2, per_try_timeout: 1s}"""),
        VS + "spec.http[0].retries.per_try_timeout: unknown field (did you mean perTryTimeout?)",
    ),
    "unknown-spec-field": (
        document("VirtualService", ROUTE_V1 + "color: blue\n"),
        VS + "spec.color: unknown field",
    ),
    "destination-host-missing": (
        vs("""route:
- destination: {subset: v1}"""),
        VS + "spec.http[0].route[0].destination.host: is required",
    ),
    "destination-port-out-of-range": (
        vs("""route:
- destination: {host: reviews, port: {number: 70000}}"""),
        VS
        + "spec.http[0].route[0].destination.port.number: port number 70000 must be between 1 and "
        "65535",
    ),
    "destination-port-negative": (
        vs("""route:
- destination: {host: reviews, port: {number: -1}}"""),
        VS + "spec.http[0].route[0].destination.port.number: must be at least 0 (got -1)",
    ),
    "subset-name-invalid": (
        vs("""route:
- destination: {host: reviews, subset: v1_beta}"""),
        VS + 'spec.http[0].route[0].destination.subset: subset name "v1_beta" is invalid: use at '
        "most 63 letters, digits and '-', starting and ending with a letter or digit",
    ),
    # --- VirtualService: required fields and structure ------------------------------
    "hosts-missing": (
        document("VirtualService", "http:\n- route:\n  - destination: {host: reviews}"),
        VS + "spec.hosts: at least one host is required",
    ),
    "hosts-empty": (
        document("VirtualService", ROUTE_V1.replace("[reviews]", "[]")),
        VS + "spec.hosts: at least one host is required",
    ),
    "host-star": (
        document("VirtualService", ROUTE_V1.replace("[reviews]", '["*"]')),
        VS + 'spec.hosts[0]: host "*" is not allowed for the mesh; name the hosts',
    ),
    "host-invalid": (
        document("VirtualService", ROUTE_V1.replace("[reviews]", "[revi_ews]")),
        VS + 'spec.hosts[0]: domain name "revi_ews" is invalid: label "revi_ews" is invalid',
    ),
    "hosts-overlap": (
        document(
            "VirtualService", ROUTE_V1.replace("[reviews]", '["*.example.com", a.example.com]')
        ),
        VS + 'spec.hosts[1]: overlaps host "*.example.com"',
    ),
    "no-routes-at-all": (
        document("VirtualService", "hosts: [reviews]"),
        VS + "spec: set at least one of http, tcp and tls",
    ),
    "http-route-without-action": (
        vs("""name: nothing
timeout: 1s"""),
        VS + "spec.http[0]: set one of route, redirect and directResponse",
    ),
    "route-and-redirect": (
        vs("""route:
- destination: {host: reviews}
redirect: {uri: /elsewhere}"""),
        VS + "spec.http[0]: set only one of route, redirect and directResponse (found route, "
        "redirect)",
    ),
    "redirect-with-fault": (
        vs("""redirect: {uri: /elsewhere}
fault: {abort: {httpStatus: 503}}"""),
        VS + "spec.http[0].fault: cannot be combined with redirect",
    ),
    "redirect-code-not-3xx": (
        vs("""redirect: {uri: /elsewhere, redirectCode: 200}"""),
        VS
        + "spec.http[0].redirect.redirectCode: 200 is not a redirect status; use a 3xx code such "
        "as 301 or 302",
    ),
    "direct-response-status": (
        vs("""directResponse: {status: 99}"""),
        VS + "spec.http[0].directResponse.status: HTTP status 99 must be between 200 and 599",
    ),
    "string-match-two-kinds": (
        vs("""match:
- uri: {exact: /a, prefix: /b}
route:
- destination: {host: reviews}"""),
        VS + "spec.http[0].match[0].uri: set only one of exact, prefix and regex (found exact, "
        "prefix)",
    ),
    "string-match-none": (
        vs("""match:
- method: {}
route:
- destination: {host: reviews}"""),
        VS + "spec.http[0].match[0].method: set one of exact, prefix and regex",
    ),
    "header-name-invalid": (
        vs("""match:
- headers:
    "x beta": {exact: "1"}
route:
- destination: {host: reviews}"""),
        VS
        + 'spec.http[0].match[0].headers[x beta]: header name "x beta" is not a valid HTTP header '
        "name",
    ),
    "header-value-control-character": (
        vs("""route:
- destination: {host: reviews}
headers:
  request:
    set: {x-a: "a\\u0001b"}"""),
        VS
        + 'spec.http[0].headers.request.set[x-a]: header value "a b" contains a control character',
    ),
    "header-remove-host": (
        vs("""route:
- destination: {host: reviews}
headers:
  request:
    remove: [Host]"""),
        VS + 'spec.http[0].headers.request.remove[0]: header "Host" cannot be changed here',
    ),
    # --- VirtualService: durations, regexes, retries, faults ---------------------------
    "timeout-no-unit": (
        vs("""route:
- destination: {host: reviews}
timeout: "3\""""),
        VS + 'spec.http[0].timeout: invalid duration "3": missing unit; use a number and a unit '
        '(ns, us, ms, s, m, h), like "3s" or "100ms"',
    ),
    "timeout-words": (
        vs("""route:
- destination: {host: reviews}
timeout: 3 seconds"""),
        VS + 'spec.http[0].timeout: invalid duration "3 seconds": unknown unit " seconds"; use a '
        'number and a unit (ns, us, ms, s, m, h), like "3s" or "100ms"',
    ),
    "timeout-number": (
        vs("""route:
- destination: {host: reviews}
timeout: 3"""),
        VS + 'spec.http[0].timeout: must be a duration string like "3s" or "100ms" (got 3)',
    ),
    "timeout-negative": (
        vs("""route:
- destination: {host: reviews}
timeout: -1s"""),
        VS + 'spec.http[0].timeout: invalid duration "-1s": must not be negative',
    ),
    "per-try-timeout-below-1ms": (
        vs("""route:
- destination: {host: reviews}
retries: {attempts: 2, perTryTimeout: 500us}"""),
        VS + "spec.http[0].retries.perTryTimeout: duration must be at least 1ms",
    ),
    "per-try-timeout-sub-ms": (
        vs("""route:
- destination: {host: reviews}
retries: {attempts: 2, perTryTimeout: 1500us}"""),
        VS + "spec.http[0].retries.perTryTimeout: only durations to ms precision are supported",
    ),
    "regex-lookahead": (
        vs("""match:
- uri: {regex: "^/api(?=/v1)"}
route:
- destination: {host: reviews}"""),
        VS
        + "spec.http[0].match[0].uri.regex: invalid regex: lookahead (?=...) is not supported by "
        "RE2",
    ),
    "regex-backreference": (
        vs("""match:
- headers:
    x-id: {regex: "(a)\\\\1"}
route:
- destination: {host: reviews}"""),
        VS
        + "spec.http[0].match[0].headers[x-id].regex: invalid regex: backreferences (\\1) are not "
        "supported by RE2",
    ),
    "regex-unbalanced": (
        vs("""match:
- uri: {regex: "/(api"}
route:
- destination: {host: reviews}"""),
        VS
        + "spec.http[0].match[0].uri.regex: invalid regex: missing ), unterminated subpattern at "
        "position 1",
    ),
    "retry-on-unknown": (
        vs("""route:
- destination: {host: reviews}
retries: {attempts: 2, retryOn: "5xx,4xx"}"""),
        VS + 'spec.http[0].retries.retryOn: "4xx" is not a valid retryOn policy',
    ),
    "retry-on-bad-status": (
        vs("""route:
- destination: {host: reviews}
retries: {attempts: 2, retryOn: "5xx,600"}"""),
        VS + 'spec.http[0].retries.retryOn: "600" is not a valid retryOn policy',
    ),
    "retries-without-attempts": (
        vs("""route:
- destination: {host: reviews}
retries: {retryOn: 5xx}"""),
        VS + "spec.http[0].retries.attempts: retries are disabled when attempts is 0; set attempts "
        "or drop the other retry fields",
    ),
    "fault-abort-status": (
        vs("""route:
- destination: {host: reviews}
fault: {abort: {httpStatus: 700, percentage: {value: 10}}}"""),
        VS + "spec.http[0].fault.abort.httpStatus: HTTP status 700 must be between 200 and 599",
    ),
    "fault-percentage": (
        vs("""route:
- destination: {host: reviews}
fault: {delay: {fixedDelay: 1s, percentage: {value: 150}}}"""),
        VS + "spec.http[0].fault.delay.percentage.value: must be 0 or between 0.0001 and 100",
    ),
    "fault-abort-percent-removed-by-istio": (
        vs("""route:
- destination: {host: reviews}
fault: {abort: {httpStatus: 503, percent: 10}}"""),
        VS + "spec.http[0].fault.abort.percent: Istio removed this field: use percentage: "
        "{value: N}",
    ),
    "websocket-upgrade-removed-by-istio": (
        vs("""route:
- destination: {host: reviews}
websocketUpgrade: true"""),
        VS + "spec.http[0].websocketUpgrade: Istio removed this field: WebSocket upgrades work "
        "on every HTTP route without it; delete the field",
    ),
    "append-headers-removed-by-istio": (
        vs("""route:
- destination: {host: reviews}
appendHeaders: {x-a: b}"""),
        VS + "spec.http[0].appendHeaders: Istio removed this field: use headers.request.add",
    ),
    "fault-empty": (
        vs("""route:
- destination: {host: reviews}
fault: {}"""),
        VS + "spec.http[0].fault: set abort, delay or both",
    ),
    # --- VirtualService: not supported yet --------------------------------------------
    "gateways-bad-name": (
        document("VirtualService", ROUTE_V1 + "gateways: [istio-system/]\n"),
        VS + "spec.gateways[0]: namespace and gateway name cannot be empty",
    ),
    "match-gateways-bad-name": (
        vs("""match:
- gateways: [-ingress]
route:
- destination: {host: reviews}"""),
        VS + 'spec.http[0].match[0].gateways[0]: domain name "-ingress" is invalid: label '
        '"-ingress" is invalid',
    ),
    "tls-routes": (
        document(
            "VirtualService",
            ROUTE_V1
            + "tls:\n- match: [{sniHosts: [reviews]}]\n  route: [{destination: {host: reviews}}]\n",
        ),
        VS + "spec.tls: tls routes on sidecars are not supported yet",
    ),
    "delegate": (
        vs("""delegate: {name: reviews-routes, namespace: production}"""),
        VS + "spec.http[0].delegate: not supported yet",
    ),
    "abort-http2-error": (
        vs("""route:
- destination: {host: reviews}
fault: {abort: {http2Error: REFUSED_STREAM}}"""),
        VS + "spec.http[0].fault.abort.http2Error: not supported yet (Envoy's fault filter "
        "cannot abort with an HTTP/2 error)",
    ),
    "exponential-delay": (
        vs("""route:
- destination: {host: reviews}
fault: {delay: {exponentialDelay: 1s}}"""),
        VS + "spec.http[0].fault.delay.exponentialDelay: not supported yet",
    ),
    "retry-remote-localities": (
        vs("""route:
- destination: {host: reviews}
retries: {attempts: 2, retryRemoteLocalities: true}"""),
        VS + "spec.http[0].retries.retryRemoteLocalities: not supported yet",
    ),
    "istio-field-not-modelled": (
        vs("""route:
- destination: {host: reviews}
retries: {attempts: 2, backoff: 25ms}"""),
        VS + "spec.http[0].retries.backoff: not supported yet",
    ),
    # --- DestinationRule --------------------------------------------------------------
    "dr-host-missing": (
        document("DestinationRule", "subsets: [{name: v1, labels: {version: v1}}]"),
        DR + "spec.host: is required",
    ),
    "dr-duplicate-subsets": (
        dr("subsets: [{name: v1, labels: {version: v1}}, {name: v1, labels: {version: v2}}]"),
        DR + 'spec.subsets[1].name: duplicate subset name "v1"',
    ),
    "dr-simple-and-consistent-hash": (
        dr(
            "trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN, consistentHash: {useSourceIp: "
            "true}}}"
        ),
        DR + "spec.trafficPolicy.loadBalancer: set only one of simple and consistentHash",
    ),
    "dr-consistent-hash-two-keys": (
        dr(
            "trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x-user, useSourceIp: "
            "true}}}"
        ),
        DR + "spec.trafficPolicy.loadBalancer.consistentHash: set exactly one of httpHeaderName, "
        "httpCookie, useSourceIp and httpQueryParameterName (found httpHeaderName, useSourceIp)",
    ),
    "dr-consistent-hash-no-key": (
        dr("trafficPolicy: {loadBalancer: {consistentHash: {minimumRingSize: 1024}}}"),
        DR + "spec.trafficPolicy.loadBalancer.consistentHash: set exactly one of httpHeaderName, "
        "httpCookie, useSourceIp and httpQueryParameterName",
    ),
    "dr-unknown-lb": (
        dr("trafficPolicy: {loadBalancer: {simple: FASTEST}}"),
        DR + "spec.trafficPolicy.loadBalancer.simple: must be one of UNSPECIFIED, LEAST_CONN, "
        'RANDOM, PASSTHROUGH, ROUND_ROBIN, LEAST_REQUEST (got "FASTEST")',
    ),
    "dr-outlier-percent": (
        dr("trafficPolicy: {outlierDetection: {maxEjectionPercent: 150}}"),
        DR + "spec.trafficPolicy.outlierDetection.maxEjectionPercent: must be between 0 and 100",
    ),
    "dr-outlier-consecutive-errors": (
        dr("trafficPolicy: {outlierDetection: {consecutiveErrors: 5}}"),
        DR + "spec.trafficPolicy.outlierDetection.consecutiveErrors: Istio ignores this "
        "deprecated field: use consecutive5xxErrors (or consecutiveGatewayErrors)",
    ),
    "dr-subset-port-outlier-consecutive-errors": (
        dr(
            "subsets: [{name: v1, trafficPolicy: {portLevelSettings: [{port: {number: 80}, "
            "outlierDetection: {consecutive5xxErrors: 5, consecutiveErrors: 5}}]}}]"
        ),
        DR + "spec.subsets[0].trafficPolicy.portLevelSettings[0].outlierDetection."
        "consecutiveErrors: Istio ignores this deprecated field: use consecutive5xxErrors "
        "(or consecutiveGatewayErrors)",
    ),
    "dr-outlier-interval": (
        dr("trafficPolicy: {outlierDetection: {interval: 10}}"),
        DR + 'spec.trafficPolicy.outlierDetection.interval: must be a duration string like "3s" '
        'or "100ms" (got 10)',
    ),
    "dr-negative-connections": (
        dr("trafficPolicy: {connectionPool: {tcp: {maxConnections: -1}}}"),
        DR + "spec.trafficPolicy.connectionPool.tcp.maxConnections: must not be negative",
    ),
    "dr-empty-traffic-policy": (
        dr("trafficPolicy: {}"),
        DR + "spec.trafficPolicy: traffic policy must set at least one field",
    ),
    "dr-tls-istio-mutual-with-files": (
        dr("trafficPolicy: {tls: {mode: ISTIO_MUTUAL, caCertificates: /etc/ca.pem}}"),
        DR + "spec.trafficPolicy.tls.caCertificates: cannot be set with mode ISTIO_MUTUAL",
    ),
    "dr-tls-mutual-without-key": (
        dr("trafficPolicy: {tls: {mode: MUTUAL, clientCertificate: /etc/c.pem}}"),
        DR + "spec.trafficPolicy.tls.privateKey: required with mode MUTUAL",
    ),
    "dr-tls-relative-path": (
        dr("trafficPolicy: {tls: {mode: SIMPLE, caCertificates: ca.pem}}"),
        DR + "spec.trafficPolicy.tls.caCertificates: must be an absolute file path",
    ),
    "dr-subset-tls": (
        dr(
            "subsets: [{name: v1, labels: {version: v1}, trafficPolicy: {tls: {mode: SIMPLE, "
            "insecureSkipVerify: true, subjectAltNames: [a]}}}]"
        ),
        DR + "spec.subsets[0].trafficPolicy.tls.insecureSkipVerify: cannot be set with "
        "caCertificates or subjectAltNames",
    ),
    "dr-port-level-tls": (
        dr(
            "trafficPolicy: {portLevelSettings: [{port: {number: 80}, "
            "tls: {mode: MUTUAL, privateKey: /etc/key.pem}}]}"
        ),
        DR + "spec.trafficPolicy.portLevelSettings[0].tls.clientCertificate: required with "
        "mode MUTUAL",
    ),
    "dr-tls-credential-name": (
        dr("trafficPolicy: {tls: {mode: DISABLE, credentialName: cert}}"),
        DR + "spec.trafficPolicy.tls.credentialName: not supported yet",
    ),
    "dr-workload-selector": (
        dr("workloadSelector: {matchLabels: {app: reviews}}"),
        DR + "spec.workloadSelector: not supported yet",
    ),
    # --- ServiceEntry -------------------------------------------------------------------
    "se-hosts-missing": (
        se("ports: [{number: 443, name: https, protocol: HTTPS}]\nresolution: DNS"),
        SE + "spec.hosts: at least one host is required",
    ),
    "se-static-endpoint-without-address": (
        se("""hosts: [db.internal]
resolution: STATIC
ports: [{number: 5432, name: tcp-pg}]
endpoints: [{labels: {role: primary}}]"""),
        SE + "spec.endpoints[0].address: is required",
    ),
    "se-static-endpoint-dns-name": (
        se("""hosts: [db.internal]
resolution: STATIC
ports: [{number: 5432, name: tcp-pg}]
endpoints: [{address: db1.internal}]"""),
        SE + 'spec.endpoints[0].address: "db1.internal" is not an IP address',
    ),
    "se-none-with-endpoints": (
        se("""hosts: [db.internal]
ports: [{number: 5432, name: tcp-pg}]
endpoints: [{address: 10.0.0.1}]"""),
        SE + "spec.endpoints: endpoints cannot be set when resolution is NONE",
    ),
    "se-dns-wildcard-without-endpoints": (
        se("""hosts: ["*.example.com"]
resolution: DNS
ports: [{number: 443, name: https, protocol: HTTPS}]"""),
        SE + "spec.hosts[0]: resolution DNS without endpoints needs host names without wildcards",
    ),
    "se-unknown-protocol": (
        se("""hosts: [api.example.com]
resolution: DNS
ports: [{number: 443, name: https, protocol: HTTP3}]"""),
        SE + 'spec.ports[0].protocol: unknown protocol "HTTP3"',
    ),
    "se-port-name-missing": (
        se("""hosts: [api.example.com]
resolution: DNS
ports: [{number: 443, protocol: HTTPS}]"""),
        SE + "spec.ports[0].name: is required",
    ),
    "se-workload-selector": (
        se("""hosts: [db.internal]
resolution: STATIC
ports: [{number: 5432, name: tcp-pg}]
workloadSelector: {labels: {app: db}}"""),
        SE + "spec.workloadSelector: not supported yet",
    ),
    "se-subject-alt-names": (
        se("""hosts: [api.example.com]
resolution: DNS
ports: [{number: 443, name: https, protocol: HTTPS}]
subjectAltNames: [spiffe://example.com/api]"""),
        SE + "spec.subjectAltNames: not supported yet",
    ),
    # --- Kubernetes kinds ---------------------------------------------------------------
    "service-port-zero": (
        document("Service", "selector: {app: reviews}\nports: [{port: 0}]", api_version="v1"),
        "app.yaml:1 Service production/reviews: spec.ports[0].port: port number 0 must be between "
        "1 and 65535",
    ),
    "service-node-port": (
        document("Service", "type: NodePort\nports: [{port: 80}]", api_version="v1"),
        "app.yaml:1 Service production/reviews: spec.type: must be one of ClusterIP (got "
        '"NodePort")',
    ),
    "deployment-selector-mismatch": (
        document(
            "Deployment",
            """selector: {matchLabels: {app: reviews}}
template:
  metadata: {labels: {app: ratings}}
  spec: {containers: [{name: app, image: x, command: [x]}]}""",
            api_version="apps/v1",
        ),
        "app.yaml:1 Deployment production/reviews: spec.template.metadata.labels: selector does "
        "not "
        "match template labels (missing app=reviews)",
    ),
    "deployment-duplicate-containers": (
        document(
            "Deployment",
            """selector: {matchLabels: {app: reviews}}
template:
  metadata: {labels: {app: reviews}}
  spec: {containers: [{name: app, image: x, command: [x]}, {name: app, image: y, command: [y]}]}""",
            api_version="apps/v1",
        ),
        "app.yaml:1 Deployment production/reviews: spec.template.spec.containers[1]: duplicate "
        'container name "app"',
    ),
    "deployment-template-name": (
        document(
            "Deployment",
            """selector: {matchLabels: {app: reviews}}
template:
  metadata: {name: pod, labels: {app: reviews}}
  spec: {containers: [{name: app, image: x, command: [x]}]}""",
            api_version="apps/v1",
        ),
        "app.yaml:1 Deployment production/reviews: spec.template.metadata.name: unknown field",
    ),
    "deployment-volumes": (
        document(
            "Deployment",
            """selector: {matchLabels: {app: reviews}}
template:
  metadata: {labels: {app: reviews}}
  spec: {containers: [{name: app, image: x, command: [x]}], volumes: []}""",
            api_version="apps/v1",
        ),
        "app.yaml:1 Deployment production/reviews: spec.template.spec.volumes: not supported yet",
    ),
    # --- Metadata and kinds -------------------------------------------------------------
    "name-invalid": (
        document("VirtualService", ROUTE_V1, name="Reviews_V1"),
        'app.yaml:1 VirtualService production/Reviews_V1: metadata.name: "Reviews_V1" is not a '
        "valid name: use at most 253 lower-case letters, digits, '-' and '.', starting and "
        "ending with a letter or digit",
    ),
    "name-missing": (
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {namespace: prod}\n"
        "spec: {hosts: [a], http: [{route: [{destination: {host: a}}]}]}\n",
        "app.yaml:1 VirtualService in document 1: metadata.name: is required",
    ),
    "kind-unsupported": (
        "apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\nmetadata: {name: f}\n"
        "spec: {}\n",
        "app.yaml:1 EnvoyFilter default/f: kind EnvoyFilter (networking.istio.io/v1alpha3) is "
        "not supported yet",
    ),
    "kind-security-wrong-api-version": (
        "apiVersion: security.istio.io/v1alpha1\nkind: RequestAuthentication\n"
        "metadata: {name: default}\nspec: {}\n",
        "app.yaml:1 RequestAuthentication default/default: kind RequestAuthentication is not "
        "served by apiVersion security.istio.io/v1alpha1; use one of security.istio.io/v1, "
        "security.istio.io/v1beta1",
    ),
    "kind-wrong-api-version": (
        "apiVersion: v1\nkind: VirtualService\nmetadata: {name: reviews}\nspec: {}\n",
        "app.yaml:1 VirtualService default/reviews: kind VirtualService is not served by "
        "apiVersion v1; use one of networking.istio.io/v1, networking.istio.io/v1beta1, "
        "networking.istio.io/v1alpha3",
    ),
    "kind-unknown": (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {}\n",
        "app.yaml:1 ConfigMap default/settings: unknown kind ConfigMap (v1); isthmus accepts "
        "AuthorizationPolicy, Deployment, DestinationRule, Gateway, Namespace, PeerAuthentication, "
        "RequestAuthentication, Secret, Service, ServiceAccount, ServiceEntry, Sidecar, Telemetry, "
        "VirtualService, WorkloadEntry",
    ),
    "kind-missing": (
        "apiVersion: v1\nmetadata: {name: x}\n",
        "app.yaml:1 document 1: kind: is required",
    ),
    "api-version-not-string": (
        "apiVersion: 1\nkind: Namespace\nmetadata: {name: x}\n",
        "app.yaml:1 Namespace x: apiVersion: must be a string (got 1)",
    ),
    "document-is-a-list": (
        "- apiVersion: v1\n- kind: Namespace\n",
        "app.yaml:1 document 1: must be a mapping with apiVersion, kind and metadata (got a list)",
    ),
    "document-is-a-scalar": (
        "hello world\n",
        'app.yaml:1 document 1: must be a mapping with apiVersion, kind and metadata (got "hello '
        'world")',
    ),
    "non-string-key": (
        document("WorkloadEntry", "address: 10.0.0.1\nports: {1.5: 8080}"),
        "app.yaml:1 WorkloadEntry production/reviews: spec.ports: keys must be strings; quote the "
        "key 1.5",
    ),
}


@pytest.mark.parametrize("case", CORPUS.keys())
def test_invalid_document_gives_exactly_one_expected_line(case: str) -> None:
    text, expected = CORPUS[case]

    assert load_errors(text) == [expected]
