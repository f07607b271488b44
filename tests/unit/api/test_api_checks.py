"""Semantic checks beyond the main corpus, one expected line each, per kind."""

from __future__ import annotations

import pytest
from _apihelp import document, load, load_errors

from isthmus.api import names

ROUTE = "route:\n  - destination: {host: reviews}\n"


def vs_with(http_extra: str = "", spec_extra: str = "", route: str = ROUTE) -> str:
    """A VirtualService with one http route: `route` (its action, and any match) plus extras."""
    first, *rest = (route.rstrip("\n") + "\n" + http_extra).strip("\n").splitlines()
    http = "".join([f"- {first}\n", *(f"  {line}\n" for line in rest)])
    return document("VirtualService", f"hosts: [reviews]\n{spec_extra}http:\n{http}")


def deployment(pod_spec: str, extra: str = "") -> str:
    return document(
        "Deployment",
        "selector: {matchLabels: {app: r}}\n"
        + extra
        + "template:\n  metadata: {labels: {app: r}}\n  spec:\n"
        + "".join(f"    {line}\n" for line in pod_spec.splitlines()),
        api_version="apps/v1",
    )


CASES = {
    "export-to-bad-namespace": (
        vs_with(spec_extra="exportTo: [Prod]\n"),
        'spec.exportTo[0]: "Prod" is not a namespace name, "." or "*"',
    ),
    "export-to-star-and-more": (
        vs_with(spec_extra='exportTo: ["*", "."]\n'),
        'spec.exportTo: "*" exports to every namespace; it cannot be combined with others',
    ),
    "export-to-dot-and-own-namespace": (
        vs_with(spec_extra='exportTo: [".", production]\n'),
        'spec.exportTo[1]: duplicate exportTo entry "production"',
    ),
    "export-to-none-on-virtual-service": (
        vs_with(spec_extra='exportTo: ["~"]\n'),
        'spec.exportTo[0]: "~" is not a namespace name, "." or "*"',
    ),
    "duplicate-host": (
        document("VirtualService", "hosts: [a, b, a]\nhttp:\n- " + ROUTE),
        'spec.hosts[2]: duplicates host "a"',
    ),
    "jwt-claim-routing": (
        vs_with(route="match:\n- headers: {'@request.auth.claims.group': {exact: a}}\n" + ROUTE),
        "spec.http[0].match[0].headers[@request.auth.claims.group]: JWT claim routing is only "
        "supported for gateways; not supported yet",
    ),
    "header-value-unterminated-variable": (
        vs_with("headers: {request: {set: {x-a: '100%'}}}"),
        'spec.http[0].headers.request.set[x-a]: header value "100%" has an unterminated '
        "%VARIABLE% (write %% for a literal %)",
    ),
    "response-header-authority": (
        vs_with("headers: {response: {set: {':authority': x}}}"),
        'spec.http[0].headers.response.set[:authority]: header ":authority" cannot be changed here',
    ),
    "pseudo-header-set": (
        vs_with("headers: {request: {set: {':path': /x}}}"),
        'spec.http[0].headers.request.set[:path]: header ":path": pseudo-headers (":" prefix) '
        "cannot be changed",
    ),
    "authority-rewritten-twice": (
        vs_with("rewrite: {authority: a}\nheaders: {request: {set: {host: b}}}"),
        "spec.http[0]: the authority is rewritten more than once (rewrite.authority, "
        "headers.request.set[host])",
    ),
    "abort-without-status": (
        vs_with("fault: {abort: {percentage: {value: 5}}}"),
        "spec.http[0].fault.abort.httpStatus: is required",
    ),
    "abort-two-error-types": (
        vs_with("fault: {abort: {httpStatus: 503, grpcStatus: UNAVAILABLE}}"),
        "spec.http[0].fault.abort: set only one of httpStatus, grpcStatus",
    ),
    "abort-grpc-status-unknown": (
        vs_with("fault: {abort: {grpcStatus: UNAVAILABEL}}"),
        'spec.http[0].fault.abort.grpcStatus: "UNAVAILABEL" is not a gRPC status name '
        "(for example UNAVAILABLE or NOT_FOUND)",
    ),
    "abort-grpc-status-number": (
        vs_with("fault: {abort: {grpcStatus: '14'}}"),
        'spec.http[0].fault.abort.grpcStatus: "14" is not a gRPC status name '
        "(for example UNAVAILABLE or NOT_FOUND)",
    ),
    "cors-origin-empty-exact": (
        vs_with("corsPolicy: {allowOrigins: [{exact: ''}]}"),
        "spec.http[0].corsPolicy.allowOrigins[0].exact: must not be empty",
    ),
    "cors-origin-empty-match": (
        vs_with("corsPolicy: {allowOrigins: [{}]}"),
        "spec.http[0].corsPolicy.allowOrigins[0]: set one of exact, prefix and regex",
    ),
    "cors-origin-bad-regex": (
        vs_with("corsPolicy: {allowOrigins: [{regex: '(a'}]}"),
        "spec.http[0].corsPolicy.allowOrigins[0].regex: invalid regex: missing ), "
        "unterminated subpattern at position 0",
    ),
    "cors-both-origin-fields": (
        vs_with("corsPolicy: {allowOrigins: [{exact: 'https://a'}], allowOrigin: ['https://b']}"),
        "spec.http[0].corsPolicy.allowOrigin: set only one of allowOrigins and allowOrigin "
        "(deprecated; Istio ignores it when allowOrigins is set)",
    ),
    "cors-method": (
        vs_with("corsPolicy: {allowMethods: [GET, get]}"),
        'spec.http[0].corsPolicy.allowMethods[1]: "get" is not a supported HTTP method',
    ),
    "cors-header-name": (
        vs_with("corsPolicy: {allowHeaders: ['x a']}"),
        'spec.http[0].corsPolicy.allowHeaders[0]: header name "x a" is not a valid HTTP '
        "header name",
    ),
    "cors-expose-header-empty": (
        vs_with("corsPolicy: {exposeHeaders: ['']}"),
        "spec.http[0].corsPolicy.exposeHeaders[0]: header name must not be empty",
    ),
    "cors-max-age-fraction": (
        vs_with("corsPolicy: {maxAge: 1500ms}"),
        "spec.http[0].corsPolicy.maxAge: is accurate only to seconds; use whole seconds",
    ),
    "cors-max-age-zero": (
        vs_with("corsPolicy: {maxAge: 0s}"),
        "spec.http[0].corsPolicy.maxAge: duration must be at least 1ms",
    ),
    "cors-unmatched-preflights": (
        vs_with("corsPolicy: {unmatchedPreflights: REJECT}"),
        "spec.http[0].corsPolicy.unmatchedPreflights: must be one of UNSPECIFIED, FORWARD, "
        'IGNORE (got "REJECT")',
    ),
    "delay-without-fixed-delay": (
        vs_with("fault: {delay: {percentage: {value: 5}}}"),
        "spec.http[0].fault.delay.fixedDelay: is required",
    ),
    "delay-percent-deprecated-range": (
        vs_with("fault: {delay: {fixedDelay: 1s, percent: 101}}"),
        "spec.http[0].fault.delay.percent: must be between 0 and 100",
    ),
    "direct-response-bytes-not-base64": (
        vs_with(route="directResponse: {status: 200, body: {bytes: 'not base64!'}}\n"),
        "spec.http[0].directResponse.body.bytes: must be base64-encoded",
    ),
    "direct-response-body-both": (
        vs_with(route="directResponse: {status: 200, body: {string: a, bytes: YQ==}}\n"),
        "spec.http[0].directResponse.body: set only one of string and bytes",
    ),
    "direct-response-body-unknown-key": (
        vs_with(route="directResponse: {status: 200, body: {text: a}}\n"),
        "spec.http[0].directResponse.body.text: unknown field",
    ),
    "redirect-empty": (
        vs_with(route="redirect: {redirectCode: 301}\n"),
        "spec.http[0].redirect: set at least one of uri, authority, scheme, port and derivePort",
    ),
    "redirect-port-and-derive-port": (
        vs_with(route="redirect: {port: 8080, derivePort: FROM_REQUEST_PORT}\n"),
        "spec.http[0].redirect: set only one of port and derivePort",
    ),
    "redirect-scheme": (
        vs_with(route="redirect: {scheme: ftp}\n"),
        'spec.http[0].redirect.scheme: must be "http" or "https"',
    ),
    "rewrite-empty": (
        vs_with("rewrite: {}"),
        "spec.http[0].rewrite: set at least one of uri, uriRegexRewrite and authority",
    ),
    "rewrite-uri-and-regex": (
        vs_with("rewrite: {uri: /a, uriRegexRewrite: {match: ^/b, rewrite: /c}}"),
        "spec.http[0].rewrite: set only one of uri and uriRegexRewrite",
    ),
    "mirror-and-mirrors": (
        vs_with("mirror: {host: a}\nmirrors: [{destination: {host: b}}]"),
        "spec.http[0].mirrors: set only one of mirror and mirrors",
    ),
    "mirror-percentage": (
        vs_with("mirror: {host: a}\nmirrorPercentage: {value: 100.5}"),
        "spec.http[0].mirrorPercentage.value: must be between 0 and 100",
    ),
    "match-port": (
        vs_with(route="match: [{port: 0}]\n" + ROUTE),
        "spec.http[0].match[0].port: port number 0 must be between 1 and 65535",
    ),
    "match-source-labels": (
        vs_with(route="match: [{sourceLabels: {app: 'a b'}}]\n" + ROUTE),
        'spec.http[0].match[0].sourceLabels[app]: invalid label value "a b": use at most 63 '
        "letters, digits, '-', '_' and '.', starting and ending with a letter or digit",
    ),
    "prefix-empty": (
        vs_with(route="match: [{authority: {prefix: ''}}]\n" + ROUTE),
        "spec.http[0].match[0].authority.prefix: must not be empty",
    ),
    "tcp-route-without-destinations": (
        document("VirtualService", "hosts: [reviews]\ntcp:\n- match: [{port: 9000}]"),
        "spec.tcp[0].route: at least one destination is required",
    ),
    "tcp-subnet": (
        document(
            "VirtualService",
            "hosts: [reviews]\ntcp:\n- match: [{destinationSubnets: [10.0.0.0/33]}]\n"
            "  route: [{destination: {host: reviews}}]",
        ),
        'spec.tcp[0].match[0].destinationSubnets[0]: "10.0.0.0/33" is not a valid CIDR block',
    ),
    "cookie-name-empty": (
        document(
            "DestinationRule",
            "host: r\ntrafficPolicy: {loadBalancer: {consistentHash: {httpCookie: {name: ''}}}}",
        ),
        "spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.name: must not be empty",
    ),
    "h2-upgrade-with-client-protocol": (
        document(
            "DestinationRule",
            "host: r\ntrafficPolicy: {connectionPool: {http: "
            "{h2UpgradePolicy: UPGRADE, useClientProtocol: true}}}",
        ),
        "spec.trafficPolicy.connectionPool.http: useClientProtocol must not be true when "
        "h2UpgradePolicy is UPGRADE",
    ),
    "local-origin-failures-without-split": (
        document(
            "DestinationRule",
            "host: r\ntrafficPolicy: {outlierDetection: {consecutiveLocalOriginFailures: 3}}",
        ),
        "spec.trafficPolicy.outlierDetection.consecutiveLocalOriginFailures: takes effect only "
        "with splitExternalLocalOriginErrors: true",
    ),
    "connect-timeout-zero": (
        document(
            "DestinationRule",
            "host: r\ntrafficPolicy: {connectionPool: {tcp: {connectTimeout: 0s}}}",
        ),
        "spec.trafficPolicy.connectionPool.tcp.connectTimeout: duration must be at least 1ms",
    ),
    "port-level-without-port": (
        document(
            "DestinationRule",
            "host: r\ntrafficPolicy: {portLevelSettings: [{loadBalancer: {simple: RANDOM}}]}",
        ),
        "spec.trafficPolicy.portLevelSettings[0].port: is required",
    ),
    "dns-round-robin-two-endpoints": (
        document(
            "ServiceEntry",
            "hosts: [a.example.com]\nresolution: DNS_ROUND_ROBIN\n"
            "ports: [{number: 80, name: http, protocol: HTTP}]\n"
            "endpoints: [{address: a1.example.com}, {address: a2.example.com}]",
        ),
        "spec.endpoints: resolution DNS_ROUND_ROBIN allows at most one endpoint",
    ),
    "several-hosts-plain-tcp": (
        document(
            "ServiceEntry",
            "hosts: [a.example.com, b.example.com]\nresolution: DNS\n"
            "ports: [{number: 5432, name: tcp-pg, protocol: TCP}]",
        ),
        "spec.hosts: several hosts need HTTP or TLS ports (plain TCP cannot tell them apart)",
    ),
    "duplicate-port-number": (
        document(
            "ServiceEntry",
            "hosts: [a.example.com]\nresolution: DNS\n"
            "ports: [{number: 80, name: http}, {number: 80, name: http-alt}]",
        ),
        "spec.ports[1]: duplicate port number 80",
    ),
    "endpoint-port-not-declared": (
        document(
            "ServiceEntry",
            "hosts: [db.internal]\nresolution: STATIC\nports: [{number: 5432, name: tcp-pg}]\n"
            "endpoints: [{address: 10.0.0.2, ports: {tcp-other: 5433}}]",
        ),
        "spec.endpoints[0].ports[tcp-other]: is not the name of one of the ServiceEntry's ports",
    ),
    "dynamic-dns": (
        document(
            "ServiceEntry",
            'hosts: ["*.example.com"]\nresolution: DYNAMIC_DNS\n'
            "ports: [{number: 443, name: tls, protocol: TLS}]",
        ),
        "spec.resolution: not supported yet",
    ),
    "workload-entry-unix-address": (
        document("WorkloadEntry", "address: unix:///var/run/app.sock"),
        "spec.address: unix domain socket addresses are not supported yet",
    ),
    "service-several-ports-unnamed": (
        document("Service", "ports: [{port: 80, name: http}, {port: 81}]", api_version="v1"),
        "spec.ports[1].name: is required when a Service has several ports",
    ),
    "service-cluster-ip": (
        document("Service", "clusterIP: somewhere\nports: [{port: 80}]", api_version="v1"),
        'spec.clusterIP: must be an IP address, "None" or empty',
    ),
    "service-name-starts-with-digit": (
        document("Service", "ports: [{port: 80}]", api_version="v1", name="1reviews"),
        'metadata.name: "1reviews" is not a valid Service name: use at most 63 lower-case '
        "letters, digits and '-', starting with a letter and ending with a letter or digit",
    ),
    "probe-two-handlers": (
        deployment(
            "containers:\n- name: app\n  command: [x]\n"
            "  readinessProbe: {exec: {command: [x]}, tcpSocket: {port: "
            "80}}"
        ),
        "spec.template.spec.containers[0].readinessProbe: set exactly one of httpGet, tcpSocket "
        "and exec (found tcpSocket, exec)",
    ),
    "liveness-success-threshold": (
        deployment(
            "containers:\n- name: app\n  command: [x]\n"
            "  livenessProbe: {tcpSocket: {port: 80}, successThreshold: "
            "2}"
        ),
        "spec.template.spec.containers[0].livenessProbe.successThreshold: must be 1 for a "
        "liveness probe",
    ),
    "env-value-and-value-from": (
        deployment(
            "containers:\n- name: app\n  command: [x]\n"
            "  env: [{name: A, value: x, "
            "valueFrom: {fieldRef: {fieldPath: metadata.name}}}]"
        ),
        "spec.template.spec.containers[0].env[0]: set only one of value and valueFrom",
    ),
    "env-secret": (
        deployment(
            "containers:\n- name: app\n  command: [x]\n"
            "  env: [{name: A, valueFrom: {secretKeyRef: {name: s}}}]"
        ),
        "spec.template.spec.containers[0].env[0].valueFrom.secretKeyRef: not supported yet",
    ),
    "recreate-with-rolling-update": (
        deployment(
            "containers:\n- name: app\n  command: [x]",
            extra="strategy: {type: Recreate, rollingUpdate: {maxSurge: 1}}\n",
        ),
        "spec.strategy.rollingUpdate: is only allowed with type RollingUpdate",
    ),
    "rolling-update-both-zero": (
        deployment(
            "containers:\n- name: app\n  command: [x]",
            extra="strategy: {rollingUpdate: {maxSurge: 0, maxUnavailable: 0%}}\n",
        ),
        "spec.strategy.rollingUpdate: maxSurge and maxUnavailable must not both be 0",
    ),
    "resource-quantity": (
        deployment(
            "containers:\n- name: app\n  command: [x]\n  resources: {limits: {memory: lots}}"
        ),
        'spec.template.spec.containers[0].resources.limits[memory]: "lots" is not a quantity '
        "like 500m or 64Mi",
    ),
    "container-name": (
        deployment("containers:\n- name: App\n  command: [x]"),
        'spec.template.spec.containers[0].name: "App" is not a valid name: use at most 63 '
        "lower-case letters, digits and '-', starting and ending with a letter or digit",
    ),
    "annotation-key": (
        document("WorkloadEntry", "address: 10.0.0.1").replace(
            "  namespace: production\n", "  namespace: production\n  annotations: {'a b': x}\n"
        ),
        'metadata.annotations[a b]: invalid annotation key "a b"',
    ),
    "reserved-annotation": (
        document("WorkloadEntry", "address: 10.0.0.1").replace(
            "  namespace: production\n",
            "  namespace: production\n  annotations: {istio.io/alwaysReject: 'true'}\n",
        ),
        "metadata.annotations[istio.io/alwaysReject]: may not be set by users",
    ),
}


@pytest.mark.parametrize("case", CASES.keys())
def test_semantic_problem_gives_one_line(case: str) -> None:
    text, expected = CASES[case]

    (line,) = load_errors(text)

    assert line.split(": ", 1)[1] == expected


@pytest.mark.parametrize(
    "http_extra",
    [
        "timeout: 0s",
        "retries: {attempts: 0}",
        "retries: {attempts: 2, retryOn: '5xx,429,cancelled,reset-before-request'}",
        "headers: {request: {set: {x-a: '%%literal'}}}",
        "headers: {request: {set: {x-a: '%REQ(x-b)%'}}}",
        "headers: {request: {set: {':authority': example.com}}}",
        "fault: {abort: {httpStatus: 503, percentage: {value: 0.0001}}}",
        "fault: {abort: {grpcStatus: OK, percentage: {value: 100}}}",
        "corsPolicy: {allowOrigins: [{exact: 'https://a'}, {prefix: 'https://b'}, "
        "{regex: 'https://.*'}], allowMethods: [GET, '*'], allowHeaders: ['*', x-a], "
        "exposeHeaders: [x-b], maxAge: 24h, allowCredentials: false, "
        "unmatchedPreflights: IGNORE}",
        "corsPolicy: {allowOrigin: ['https://a'], unmatchedPreflights: FORWARD}",
        "corsPolicy: {}",
    ],
)
def test_istio_accepts_these_and_so_do_we(http_extra: str) -> None:
    (obj,) = load(vs_with(http_extra))

    assert obj.key == ("VirtualService", "production", "reviews")


@pytest.mark.parametrize(
    ("first", "second", "overlap"),
    [
        ("a.example.com", "a.example.com", True),
        ("*.example.com", "a.example.com", True),
        ("a.example.com", "*.example.com", True),
        ("*.example.com", "*.a.example.com", True),
        ("*", "anything", True),
        ("a.example.com", "b.example.com", False),
        ("*.example.com", "example.com", False),
        ("*.a.com", "*.b.com", False),
    ],
)
def test_host_overlap(first: str, second: str, overlap: bool) -> None:
    assert names.hosts_overlap(first, second) is overlap
