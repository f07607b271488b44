"""VirtualService checks: Istio's admission rules, plus "not supported yet" for the
parts isthmus does not translate (gateways, tls routes, delegation, ...)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence

from isthmus.api import names
from isthmus.api.checks_common import (
    NOT_SUPPORTED,
    check_destination,
    check_duration,
    check_export_to,
    check_labels,
    check_percentage,
    check_port,
    check_range,
    check_regex,
    check_string_match,
)
from isthmus.api.errors import FieldPath, Problems, short_repr
from isthmus.api.grpc_status import GRPC_STATUS_CODES
from isthmus.api.networking import (
    CorsPolicy,
    Headers,
    Headers_HeaderOperations,
    HTTPDirectResponse,
    HTTPFaultInjection,
    HTTPMatchRequest,
    HTTPRedirect,
    HTTPRetry,
    HTTPRewrite,
    HTTPRoute,
    HTTPRouteDestination,
    L4MatchAttributes,
    RouteDestination,
    TCPRoute,
    TLSMatchAttributes,
    TLSRoute,
    VirtualService,
)

MESH_GATEWAY = "mesh"
MAX_DIRECT_RESPONSE_BYTES = 1024 * 1024

# Envoy's x-envoy-retry-on and x-envoy-retry-grpc-on policies, as Istio accepts them.
RETRY_ON_POLICIES = frozenset(
    {
        "5xx",
        "gateway-error",
        "reset",
        "reset-before-request",
        "connect-failure",
        "envoy-ratelimited",
        "retriable-4xx",
        "refused-stream",
        "retriable-status-codes",
        "retriable-headers",
        "http3-post-connect-failure",
        "cancelled",
        "deadline-exceeded",
        "internal",
        "resource-exhausted",
        "unavailable",
    }
)
_JWT_CLAIM_PREFIX = "@request.auth.claims"
# Istio's supportedCORSMethods: Go's net/http method names, and "*".
CORS_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE", "*"}
)


def check_virtual_service(vs: VirtualService, problems: Problems) -> None:
    spec = vs.spec
    path = FieldPath("spec")
    _check_hosts(problems, path.field("hosts"), spec.hosts, for_mesh=binds_mesh(spec.gateways))
    check_gateway_names(problems, path.field("gateways"), spec.gateways)
    if spec.tls and binds_mesh(spec.gateways):
        problems.add(path.field("tls"), f"tls routes on sidecars are {NOT_SUPPORTED}")
    elif spec.tls:
        for position, tls in enumerate(spec.tls):
            _check_tls_route(problems, path.field("tls").index(position), tls, spec.hosts)
    if not (spec.http or spec.tcp or spec.tls):
        problems.add(path, "set at least one of http, tcp and tls")
    for position, http in enumerate(spec.http):
        _check_http_route(problems, path.field("http").index(position), http)
    for position, tcp in enumerate(spec.tcp):
        _check_tcp_route(problems, path.field("tcp").index(position), tcp)
    if spec.tcp and not binds_mesh(spec.gateways):
        for position, tcp in enumerate(spec.tcp):
            _refuse_ignored_on_gateways(problems, path.field("tcp").index(position), tcp.match)
    check_export_to(problems, path.field("exportTo"), vs.metadata.namespace or "", spec.export_to)


def binds_mesh(gateways: list[str]) -> bool:
    """A VirtualService applies to sidecars when `gateways` is empty or names `mesh`."""
    return not gateways or MESH_GATEWAY in gateways


def check_gateway_names(problems: Problems, path: FieldPath, gateways: list[str]) -> None:
    """Istio's validateGatewayNames: `mesh`, `name`, `namespace/name`, or the legacy
    `name.namespace[.svc.cluster.local]` form."""
    for position, gateway in enumerate(gateways):
        if gateway == MESH_GATEWAY:
            continue
        namespace, slash, name = gateway.partition("/")
        if not slash:
            problem = names.fqdn_error(gateway)
        elif not namespace or not name:
            problem = "namespace and gateway name cannot be empty"
        else:
            problem = names.dns1123_label_error(namespace) or names.dns1123_label_error(name)
        if problem:
            problems.add(path.index(position), problem)


def _check_hosts(
    problems: Problems, path: FieldPath, hosts: list[str], for_mesh: bool = True
) -> None:
    if not hosts:
        problems.add(path, "at least one host is required")
        return
    all_valid = True
    for position, host in enumerate(hosts):
        if host == "*":
            if for_mesh:  # a gateway may take every host; sidecars need names (Istio)
                problems.add(
                    path.index(position), 'host "*" is not allowed for the mesh; name the hosts'
                )
                all_valid = False
            continue
        problem = names.wildcard_domain_error(host)
        if problem and not names.is_ip_address(host):
            problems.add(path.index(position), problem)
            all_valid = False
    if not all_valid:
        return
    for later, earlier in enumerate(first_overlapping_hosts(hosts)):
        if earlier is not None:
            relation = "duplicates" if hosts[earlier] == hosts[later] else "overlaps"
            problems.add(path.index(later), f"{relation} host {short_repr(hosts[earlier])}")


def first_overlapping_hosts(hosts: list[str]) -> list[int | None]:
    """For each host, the smallest earlier position whose host overlaps it
    (`names.hosts_overlap`), or None.

    Equal to comparing every pair, for any strings, in time linear in the number of
    hosts: a host starting with `*` stands for every name ending with the rest of it
    (its pattern), so `*X` overlaps a plain host that ends with X, and a wildcard whose
    pattern ends with X or that X ends with; plain hosts overlap only when equal.
    """
    plain: dict[str, int] = {}  # host without "*" -> first position
    patterns: dict[str, int] = {}  # pattern ("*" removed) -> first position
    for position, host in enumerate(hosts):
        if host.startswith("*"):
            patterns.setdefault(host[1:], position)
        else:
            plain.setdefault(host, position)
    if not patterns:
        return [
            first if (first := plain[host]) < position else None
            for position, host in enumerate(hosts)
        ]
    index = _PatternIndex(patterns)
    # pattern -> first position whose name ends with it (a host, or a wildcard's pattern)
    first_ending_with: dict[str, int] = {}
    # per position: first position of a wildcard whose pattern its name ends with
    first_covering: list[int | None] = []
    for position, host in enumerate(hosts):
        covering: int | None = None
        for pattern in index.patterns_ending(host[1:] if host.startswith("*") else host):
            first_ending_with.setdefault(pattern, position)
            if covering is None or patterns[pattern] < covering:
                covering = patterns[pattern]
        first_covering.append(covering)
    overlapping: list[int | None] = []
    for position, host in enumerate(hosts):
        # a wildcard: plain hosts and patterns ending with its pattern; a plain host: itself
        ending = first_ending_with[host[1:]] if host.startswith("*") else plain[host]
        candidates = [c for c in (ending, first_covering[position]) if c is not None]
        earliest = min(candidates)  # the host itself is always among them
        overlapping.append(earliest if earliest < position else None)
    return overlapping


class _PatternIndex:
    """Finds the wildcard patterns a name ends with, without trying every pattern.

    A pattern splits at its first dot into a dot-free head and a tail (`foo.example.com`:
    `foo` and `.example.com`; `.example.com`: empty head; `foo`: empty tail). A name ends
    with a pattern exactly when the pattern's tail is the name's suffix from one of its
    dots (or the empty suffix) and the head ends the label just before it. So only the
    name's last few dots, and the head lengths known for each tail, need looking at: the
    work per name is bounded by the longest pattern, whatever the number of patterns.
    """

    def __init__(self, patterns: dict[str, int]) -> None:
        self._patterns = patterns
        head_lengths: dict[str, set[int]] = {}
        for pattern in patterns:
            dot = pattern.find(".")
            tail = pattern[dot:] if dot >= 0 else ""
            head_lengths.setdefault(tail, set()).add(len(pattern) - len(tail))
        self._head_lengths = {tail: sorted(lengths) for tail, lengths in head_lengths.items()}
        self._tail_lengths = frozenset(len(tail) for tail in head_lengths)
        self._longest_tail = max(self._tail_lengths)
        self._longest_head = max(max(lengths) for lengths in head_lengths.values())

    def patterns_ending(self, name: str) -> list[str]:
        """Every distinct pattern that `name` ends with."""
        found: list[str] = []
        end = len(name)
        cut = end  # the tail tried is name[cut:]: the empty one, then from each dot
        while end - cut <= self._longest_tail:
            # Look for the dot before `cut` only as far as a head or a tail can reach.
            low = max(0, min(cut - self._longest_head, end - self._longest_tail))
            dot = name.rfind(".", low, cut)
            label_start = dot + 1 if dot >= 0 else low  # no head is longer than cut - low
            if end - cut in self._tail_lengths:
                for head_length in self._head_lengths.get(name[cut:], ()):
                    if head_length > cut - label_start:
                        break
                    candidate = name[cut - head_length :]
                    if candidate in self._patterns:
                        found.append(candidate)
            if dot < 0:
                break
            cut = dot
        return found


def _check_http_route(problems: Problems, path: FieldPath, http: HTTPRoute) -> None:
    if http.delegate is not None:
        problems.add(path.field("delegate"), NOT_SUPPORTED)
    _check_cors_policy(problems, path.field("corsPolicy"), http.cors_policy)
    _check_actions(problems, path, http)
    for position, match in enumerate(http.match):
        _check_http_match(problems, path.field("match").index(position), match)
    _check_header_operations(problems, path.field("headers"), http.headers)
    _check_authority_set_once(problems, path, http)
    _check_fault(problems, path.field("fault"), http.fault)
    _check_mirrors(problems, path, http)
    _check_redirect(problems, path.field("redirect"), http.redirect)
    _check_direct_response(problems, path.field("directResponse"), http.direct_response)
    _check_retries(problems, path.field("retries"), http.retries)
    _check_rewrite(problems, path.field("rewrite"), http.rewrite)
    _check_http_destinations(problems, path.field("route"), http.route)
    check_duration(problems, path.field("timeout"), http.timeout, zero_ok=True)


def _check_actions(problems: Problems, path: FieldPath, http: HTTPRoute) -> None:
    """Exactly one of route, redirect, directResponse; no fault/rewrite without a route."""
    actions = [
        name
        for name, value in (
            ("route", http.route),
            ("redirect", http.redirect),
            ("directResponse", http.direct_response),
        )
        if value
    ]
    if len(actions) > 1:
        problems.add(
            path, f"set only one of route, redirect and directResponse (found {', '.join(actions)})"
        )
    elif not actions and http.delegate is None:
        problems.add(path, "set one of route, redirect and directResponse")
    elif actions and actions[0] != "route":
        for name, value in (("fault", http.fault), ("rewrite", http.rewrite)):
            if value is not None:
                problems.add(path.field(name), f"cannot be combined with {actions[0]}")
    if http.mirror is not None and http.mirrors:
        problems.add(path.field("mirrors"), "set only one of mirror and mirrors")


def _check_http_match(problems: Problems, path: FieldPath, match: HTTPMatchRequest) -> None:
    for field, headers in (("headers", match.headers), ("withoutHeaders", match.without_headers)):
        for name, header_match in headers.items():
            here = path.field(field).key(name)
            if name.startswith(_JWT_CLAIM_PREFIX):
                problems.add(
                    here, "JWT claim routing is only supported for gateways; " + NOT_SUPPORTED
                )
                continue
            if name not in names.PSEUDO_HEADERS:
                problem = names.header_name_error(name)
                if problem:
                    problems.add(here, problem)
            if field == "withoutHeaders" and header_match.regex == "*":
                continue  # Istio's spelling of "header absent"
            check_string_match(problems, here, header_match, presence_ok=True)
    check_string_match(problems, path.field("uri"), match.uri, empty_prefix_ok=True)
    for field, string_match in (
        ("scheme", match.scheme),
        ("method", match.method),
        ("authority", match.authority),
    ):
        check_string_match(problems, path.field(field), string_match)
    for name, string_match in match.query_params.items():
        check_string_match(
            problems, path.field("queryParams").key(name), string_match, presence_ok=True
        )
    check_port(problems, path.field("port"), match.port)
    check_labels(problems, path.field("sourceLabels"), match.source_labels)
    check_gateway_names(problems, path.field("gateways"), match.gateways)
    if match.source_namespace is not None and names.dns1123_label_error(match.source_namespace):
        problems.add(path.field("sourceNamespace"), "must be a namespace name")


def _check_header_operations(problems: Problems, path: FieldPath, headers: Headers | None) -> None:
    if headers is None:
        return
    for direction, operations in (("request", headers.request), ("response", headers.response)):
        if operations is not None:
            _check_operations(problems, path.field(direction), operations, direction == "request")


def _check_operations(
    problems: Problems, path: FieldPath, operations: Headers_HeaderOperations, request: bool
) -> None:
    for field, values in (("set", operations.set), ("add", operations.add)):
        for name, value in values.items():
            here = path.field(field).key(name)
            problem = _operation_name_error(name, authority_ok=request)
            if problem:
                problems.add(here, problem)
            problem = names.header_value_error(value)
            if problem:
                problems.add(here, problem)
    for position, name in enumerate(operations.remove):
        problem = _operation_name_error(name, authority_ok=False)
        if problem:
            problems.add(path.field("remove").index(position), problem)


def _operation_name_error(name: str, *, authority_ok: bool) -> str | None:
    """Envoy manages pseudo-headers itself; only the request authority may be rewritten."""
    if not name:
        return "header name must not be empty"
    lowered = name.lower()
    if lowered in (":authority", "host"):
        return None if authority_ok else f"header {short_repr(name)} cannot be changed here"
    if name.startswith(":"):
        return f'header {short_repr(name)}: pseudo-headers (":" prefix) cannot be changed'
    return names.header_name_error(name)


def _check_authority_set_once(problems: Problems, path: FieldPath, http: HTTPRoute) -> None:
    sources = []
    if http.rewrite is not None and http.rewrite.authority:
        sources.append("rewrite.authority")
    request = http.headers.request if http.headers is not None else None
    if request is not None:
        for field, values in (("set", request.set), ("add", request.add)):
            sources.extend(
                f"headers.request.{field}[{name}]"
                for name in values
                if name.lower() in (":authority", "host")
            )
    if len(sources) > 1:
        problems.add(path, f"the authority is rewritten more than once ({', '.join(sources)})")


def _check_cors_policy(problems: Problems, path: FieldPath, cors: CorsPolicy | None) -> None:
    """Istio's validateCORSPolicy; also refuses allowOrigin next to allowOrigins, which
    Istio would silently ignore."""
    if cors is None:
        return
    for position, origin in enumerate(cors.allow_origins):
        here = path.field("allowOrigins").index(position)
        check_string_match(problems, here, origin)
        if origin.exact == "":
            problems.add(here.field("exact"), "must not be empty")
    for position, exact in enumerate(cors.allow_origin):
        if not exact:
            problems.add(path.field("allowOrigin").index(position), "must not be empty")
    if cors.allow_origins and cors.allow_origin:
        problems.add(
            path.field("allowOrigin"),
            "set only one of allowOrigins and allowOrigin (deprecated; Istio ignores it "
            "when allowOrigins is set)",
        )
    for position, method in enumerate(cors.allow_methods):
        if method not in CORS_METHODS:
            problems.add(
                path.field("allowMethods").index(position),
                f"{short_repr(method)} is not a supported HTTP method",
            )
    for field, headers in (
        ("allowHeaders", cors.allow_headers),
        ("exposeHeaders", cors.expose_headers),
    ):
        for position, name in enumerate(headers):
            problem = None if name == "*" else names.header_name_error(name)
            if problem:
                problems.add(path.field(field).index(position), problem)
    check_duration(problems, path.field("maxAge"), cors.max_age)
    if cors.max_age is not None and cors.max_age.microseconds:
        problems.add(path.field("maxAge"), "is accurate only to seconds; use whole seconds")


def _check_fault(problems: Problems, path: FieldPath, fault: HTTPFaultInjection | None) -> None:
    if fault is None:
        return
    if fault.abort is None and fault.delay is None:
        problems.add(path, "set abort, delay or both")
    abort = fault.abort
    if abort is not None:
        here = path.field("abort")
        check_percentage(problems, here.field("percentage"), abort.percentage)
        chosen = [
            name
            for name, value in (
                ("httpStatus", abort.http_status),
                ("grpcStatus", abort.grpc_status),
                ("http2Error", abort.http2_error),
            )
            if value is not None
        ]
        if len(chosen) > 1:
            problems.add(here, f"set only one of {', '.join(chosen)}")
        elif not chosen:
            problems.add(here.field("httpStatus"), "is required")
        if abort.grpc_status is not None and abort.grpc_status not in GRPC_STATUS_CODES:
            problems.add(
                here.field("grpcStatus"),
                f"{short_repr(abort.grpc_status)} is not a gRPC status name "
                "(for example UNAVAILABLE or NOT_FOUND)",
            )
        if abort.http2_error is not None:
            # Envoy's fault filter aborts with an HTTP or gRPC status only; Istio's own
            # validation refuses http2Error the same way.
            problems.add(
                here.field("http2Error"),
                NOT_SUPPORTED + " (Envoy's fault filter cannot abort with an HTTP/2 error)",
            )
        if abort.http_status is not None and not 200 <= abort.http_status <= 599:
            problems.add(
                here.field("httpStatus"),
                f"HTTP status {abort.http_status} must be between 200 and 599",
            )
    delay = fault.delay
    if delay is not None:
        here = path.field("delay")
        check_percentage(problems, here.field("percentage"), delay.percentage)
        check_range(problems, here.field("percent"), delay.percent, 0, 100)
        if delay.exponential_delay is not None:
            problems.add(here.field("exponentialDelay"), NOT_SUPPORTED)
        elif delay.fixed_delay is None:
            problems.add(here.field("fixedDelay"), "is required")
        if delay.fixed_delay is not None and delay.exponential_delay is not None:
            problems.add(here, "set only one of fixedDelay and exponentialDelay")
        check_duration(problems, here.field("fixedDelay"), delay.fixed_delay)


def _check_mirrors(problems: Problems, path: FieldPath, http: HTTPRoute) -> None:
    if http.mirror is not None:
        check_destination(problems, path.field("mirror"), http.mirror)
    for position, mirror in enumerate(http.mirrors):
        here = path.field("mirrors").index(position)
        check_destination(problems, here.field("destination"), mirror.destination)
        if mirror.percentage is not None:
            check_range(
                problems, here.field("percentage").field("value"), mirror.percentage.value, 0, 100
            )
    if http.mirror_percentage is not None:
        check_range(
            problems,
            path.field("mirrorPercentage").field("value"),
            http.mirror_percentage.value,
            0,
            100,
        )
    check_range(problems, path.field("mirrorPercent"), http.mirror_percent, 0, 100)


def _check_redirect(problems: Problems, path: FieldPath, redirect: HTTPRedirect | None) -> None:
    if redirect is None:
        return
    if not (redirect.uri or redirect.authority or redirect.scheme) and (
        redirect.port is None and redirect.derive_port is None
    ):
        problems.add(path, "set at least one of uri, authority, scheme, port and derivePort")
    if redirect.port is not None and redirect.derive_port is not None:
        problems.add(path, "set only one of port and derivePort")
    if redirect.redirect_code is not None and not 300 <= redirect.redirect_code <= 399:
        problems.add(
            path.field("redirectCode"),
            f"{redirect.redirect_code} is not a redirect status; use a 3xx code such as 301 or 302",
        )
    if redirect.scheme is not None and redirect.scheme not in ("http", "https"):
        problems.add(path.field("scheme"), 'must be "http" or "https"')
    check_port(problems, path.field("port"), redirect.port)


def _check_direct_response(
    problems: Problems, path: FieldPath, response: HTTPDirectResponse | None
) -> None:
    if response is None:
        return
    if not 200 <= response.status <= 599:
        problems.add(
            path.field("status"), f"HTTP status {response.status} must be between 200 and 599"
        )
    body = response.body
    if body is None:
        return
    here = path.field("body")
    for key in body:
        if key not in ("string", "bytes"):
            problems.add(here.field(key), "unknown field")
    if "string" in body and "bytes" in body:
        problems.add(here, "set only one of string and bytes")
    size = 0
    if "string" in body:
        size = len(body["string"].encode("utf-8"))
    elif "bytes" in body:
        try:
            size = len(base64.b64decode(body["bytes"], validate=True))
        except (binascii.Error, ValueError):
            problems.add(here.field("bytes"), "must be base64-encoded")
    if size > MAX_DIRECT_RESPONSE_BYTES:
        problems.add(here, "direct response bodies must be smaller than 1 MiB")


def _check_retries(problems: Problems, path: FieldPath, retries: HTTPRetry | None) -> None:
    if retries is None:
        return
    if retries.attempts < 0:
        problems.add(path.field("attempts"), "must not be negative")
    elif retries.attempts == 0 and (
        retries.per_try_timeout is not None
        or retries.retry_on
        or retries.retry_remote_localities is not None
    ):
        problems.add(
            path.field("attempts"),
            "retries are disabled when attempts is 0; set attempts or drop the other retry fields",
        )
    if retries.retry_remote_localities is not None:
        problems.add(path.field("retryRemoteLocalities"), NOT_SUPPORTED)
    check_duration(problems, path.field("perTryTimeout"), retries.per_try_timeout)
    if retries.retry_on:
        for policy in retries.retry_on.split(","):
            if not _is_retry_policy(policy):
                problems.add(
                    path.field("retryOn"), f"{short_repr(policy)} is not a valid retryOn policy"
                )


def _is_retry_policy(policy: str) -> bool:
    """An Envoy/Istio retry-on token, or a bare HTTP status code to retry on."""
    if policy in RETRY_ON_POLICIES:
        return True
    return policy.isascii() and policy.isdigit() and 100 <= int(policy) <= 599


def _check_rewrite(problems: Problems, path: FieldPath, rewrite: HTTPRewrite | None) -> None:
    if rewrite is None:
        return
    if rewrite.uri and rewrite.uri_regex_rewrite is not None:
        problems.add(path, "set only one of uri and uriRegexRewrite")
    if not (rewrite.uri or rewrite.uri_regex_rewrite is not None or rewrite.authority):
        problems.add(path, "set at least one of uri, uriRegexRewrite and authority")
    regex_rewrite = rewrite.uri_regex_rewrite
    if regex_rewrite is not None:
        here = path.field("uriRegexRewrite")
        check_regex(problems, here.field("match"), regex_rewrite.match)
        if not regex_rewrite.rewrite:
            problems.add(here.field("rewrite"), "must not be empty")


def _check_http_destinations(
    problems: Problems, path: FieldPath, destinations: list[HTTPRouteDestination]
) -> None:
    for position, destination in enumerate(destinations):
        here = path.index(position)
        check_destination(problems, here.field("destination"), destination.destination)
        _check_header_operations(problems, here.field("headers"), destination.headers)
    _check_weights(problems, path, [d.weight for d in destinations])


def _check_weights(problems: Problems, path: FieldPath, weights: list[int | None]) -> None:
    """Each weight 0..100; with several destinations they add up to 100 (unset counts 0)."""
    in_range = True
    for position, weight in enumerate(weights):
        if weight is not None and not 0 <= weight <= 100:
            problems.add(path.index(position).field("weight"), "must be between 0 and 100")
            in_range = False
    if in_range and len(weights) > 1:
        total = sum(weight or 0 for weight in weights)
        if total != 100:
            problems.add(path, f"weights must add up to 100 (they add up to {total})")


def _check_tcp_route(problems: Problems, path: FieldPath, tcp: TCPRoute) -> None:
    for position, match in enumerate(tcp.match):
        _check_l4_match(problems, path.field("match").index(position), match)
    if not tcp.route:
        problems.add(path.field("route"), "at least one destination is required")
    _check_route_destinations(problems, path.field("route"), tcp.route)


def _check_tls_route(problems: Problems, path: FieldPath, tls: TLSRoute, hosts: list[str]) -> None:
    """Istio's validateTLSRoute: matches with SNI hosts within the VirtualService's
    hosts, and destinations."""
    if not tls.match:
        problems.add(path.field("match"), "a TLS route needs at least one match")
    for position, match in enumerate(tls.match):
        here = path.field("match").index(position)
        if not match.sni_hosts:
            problems.add(here.field("sniHosts"), "a TLS match needs at least one SNI host")
        for index, sni in enumerate(match.sni_hosts):
            problem = names.wildcard_domain_error(sni)
            if problem is None and not any(_sni_within(sni, h) for h in hosts):
                problem = (
                    f"SNI host {short_repr(sni)} is not within any of the VirtualService's hosts"
                )
            if problem:
                problems.add(here.field("sniHosts").index(index), problem)
        check_port(problems, here.field("port"), match.port)
        check_gateway_names(problems, here.field("gateways"), match.gateways)
    _refuse_ignored_on_gateways(problems, path, tls.match)
    if not tls.route:
        problems.add(path.field("route"), "at least one destination is required")
    _check_route_destinations(problems, path.field("route"), tls.route)


def _refuse_ignored_on_gateways(
    problems: Problems, path: FieldPath, matches: Sequence[L4MatchAttributes | TLSMatchAttributes]
) -> None:
    """Istio's gateways match only `port` and `gateways` (l4SingleMatch): on a
    VirtualService bound to gateways alone the other conditions would be ignored."""
    for position, match in enumerate(matches):
        here = path.field("match").index(position)
        for field, value in (
            ("destinationSubnets", match.destination_subnets),
            ("sourceLabels", match.source_labels),
            ("sourceNamespace", match.source_namespace),
        ):
            if value:
                problems.add(here.field(field), f"{NOT_SUPPORTED} on gateways")


def _sni_within(sni: str, host: str) -> bool:
    """Istio's host.Name.SubsetOf: `host` (maybe a wildcard) covers `sni`."""
    if host == "*":
        return True
    if host.startswith("*."):
        return sni.endswith(host[1:])
    return sni == host


def _check_l4_match(problems: Problems, path: FieldPath, match: L4MatchAttributes) -> None:
    for position, subnet in enumerate(match.destination_subnets):
        problem = names.ip_or_cidr_error(subnet)
        if problem:
            problems.add(path.field("destinationSubnets").index(position), problem)
    check_port(problems, path.field("port"), match.port)
    check_labels(problems, path.field("sourceLabels"), match.source_labels)
    check_gateway_names(problems, path.field("gateways"), match.gateways)
    if match.source_namespace is not None and names.dns1123_label_error(match.source_namespace):
        problems.add(path.field("sourceNamespace"), "must be a namespace name")


def _check_route_destinations(
    problems: Problems, path: FieldPath, destinations: list[RouteDestination]
) -> None:
    for position, destination in enumerate(destinations):
        check_destination(
            problems, path.index(position).field("destination"), destination.destination
        )
    _check_weights(problems, path, [d.weight for d in destinations])
