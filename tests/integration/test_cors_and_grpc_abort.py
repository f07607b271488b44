"""VirtualService corsPolicy and fault.abort.grpcStatus through a real Envoy configured by
isthmusd: browsers' preflights and simple requests answered per policy, and a gRPC client
that sees the injected status.
"""

from __future__ import annotations

import http.client
from dataclasses import dataclass

import grpc
import pytest

from isthmus.testing.daemon import wait_for
from isthmus.testing.mesh import NAMESPACE, Mesh
from isthmus.testing.upstream import UPSTREAM_HEADER

pytestmark = pytest.mark.envoy

SHOP = "https://shop.example"
ALLOW_ORIGIN = "access-control-allow-origin"


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # names lower-cased

    @property
    def upstream(self) -> str | None:
        """Which application answered (None: Envoy answered itself)."""
        return self.headers.get(UPSTREAM_HEADER)


def _send(mesh: Mesh, host: str, method: str, path: str, headers: dict[str, str]) -> Answer:
    """One request through the sidecar's HTTP proxy listener, with every response header."""
    connection = http.client.HTTPConnection("127.0.0.1", mesh.proxy_port, timeout=10)
    try:
        connection.request(method, f"http://{host}{path}", headers=headers)
        response = connection.getresponse()
        response.read()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()})
    finally:
        connection.close()


def _preflight(mesh: Mesh, host: str, path: str, origin: str, method: str = "POST") -> Answer:
    return _send(
        mesh,
        host,
        "OPTIONS",
        path,
        {
            "origin": origin,
            "access-control-request-method": method,
            "access-control-request-headers": "x-token",
        },
    )


def test_cors_preflights_and_simple_requests_follow_the_policy(mesh: Mesh) -> None:
    app = mesh.upstream("cors-app")
    mesh.apply(
        mesh.service("cors-app")
        + mesh.workload("cors-app", app)
        + f"""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: cors-app, namespace: {NAMESPACE}}}
spec:
  hosts: [cors-app]
  http:
  - match: [{{uri: {{prefix: /strict}}}}]
    route: [{{destination: {{host: cors-app}}}}]
    corsPolicy:
      allowOrigins: [{{exact: "{SHOP}"}}]
      allowMethods: [GET, POST]
      allowHeaders: [x-token]
      exposeHeaders: [x-upstream, x-request-id]
      maxAge: 10m
      allowCredentials: true
      unmatchedPreflights: IGNORE
  - route: [{{destination: {{host: cors-app}}}}]
    corsPolicy:
      allowOrigins: [{{prefix: "https://partner."}}, {{regex: "https://[a-z]+[.]shop[.]example"}}]
      allowMethods: [GET]
      maxAge: 60s
"""
    )
    host = f"cors-app.{NAMESPACE}.svc.cluster.local:8080"
    wait_for(
        lambda: _preflight(mesh, host, "/strict", SHOP).headers.get(ALLOW_ORIGIN) == SHOP,
        what="CORS policy active",
    )

    # An allowed origin's preflight is answered by Envoy itself, per the policy.
    app.reset()
    allowed = _preflight(mesh, host, "/strict/cart", SHOP)
    assert allowed.status == 200 and allowed.upstream is None
    assert allowed.headers[ALLOW_ORIGIN] == SHOP
    assert allowed.headers["access-control-allow-methods"] == "GET,POST"
    assert allowed.headers["access-control-allow-headers"] == "x-token"
    assert allowed.headers["access-control-max-age"] == "600"
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert app.requests == 0

    # unmatchedPreflights IGNORE: a disallowed origin's preflight ends at Envoy, no origin.
    ignored = _preflight(mesh, host, "/strict/cart", "https://evil.example")
    assert ignored.status == 200 and ignored.upstream is None
    assert ALLOW_ORIGIN not in ignored.headers
    assert app.requests == 0

    # Unset (FORWARD, as Istio): it goes on to the application, which adds no CORS headers.
    forwarded = _preflight(mesh, host, "/", "https://evil.example")
    assert forwarded.upstream == "cors-app"
    assert ALLOW_ORIGIN not in forwarded.headers
    assert app.requests == 1 and app.recent[-1].method == "OPTIONS"

    # Prefix and regex origins on the second route.
    for origin in ("https://partner.example", "https://eu.shop.example"):
        answer = _preflight(mesh, host, "/", origin, method="GET")
        assert answer.upstream is None and answer.headers[ALLOW_ORIGIN] == origin
        assert answer.headers["access-control-allow-methods"] == "GET"
        assert answer.headers["access-control-max-age"] == "60"
    assert ALLOW_ORIGIN not in _preflight(mesh, host, "/", "https://eu.shop.example.evil").headers

    # A simple request from an allowed origin reaches the application and comes back with
    # the origin, the credentials flag and the headers the browser may read.
    simple = _send(mesh, host, "GET", "/strict/items", {"origin": SHOP})
    assert simple.status == 200 and simple.upstream == "cors-app"
    assert simple.headers[ALLOW_ORIGIN] == SHOP
    assert simple.headers["access-control-expose-headers"] == "x-upstream,x-request-id"
    assert simple.headers["access-control-allow-credentials"] == "true"

    # From another origin, or with no Origin at all, the response carries no CORS headers.
    for headers in ({"origin": "https://evil.example"}, {}):
        plain = _send(mesh, host, "GET", "/strict/items", headers)
        assert plain.status == 200 and plain.upstream == "cors-app"
        assert not [name for name in plain.headers if name.startswith("access-control-")]


def test_grpc_status_abort_reaches_grpc_clients(mesh: Mesh) -> None:
    app = mesh.upstream("grpc-app")
    mesh.apply(
        mesh.service("grpc-app")
        + mesh.workload("grpc-app", app)
        + f"""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: grpc-app, namespace: {NAMESPACE}}}
spec:
  hosts: [grpc-app]
  http:
  - match: [{{headers: {{x-fault: {{exact: grpc}}}}}}]
    fault: {{abort: {{grpcStatus: UNAVAILABLE, percentage: {{value: 100}}}}}}
    route: [{{destination: {{host: grpc-app}}}}]
  - route: [{{destination: {{host: grpc-app}}}}]
"""
    )
    host = f"grpc-app.{NAMESPACE}.svc.cluster.local:8080"
    grpc_headers = {"content-type": "application/grpc", "te": "trailers", "x-fault": "grpc"}

    def aborted() -> Answer:
        return _send(mesh, host, "POST", "/shop.Checkout/Pay", grpc_headers)

    wait_for(lambda: aborted().headers.get("grpc-status") == "14", what="gRPC abort active")

    # A gRPC request gets HTTP 200 with grpc-status 14 (UNAVAILABLE) from Envoy itself.
    answer = aborted()
    assert answer.status == 200 and answer.upstream is None
    assert answer.headers["grpc-status"] == "14"
    assert answer.headers["content-type"] == "application/grpc"

    # A real gRPC client over HTTP/2 sees the status as the call's outcome.
    options = [("grpc.default_authority", host), ("grpc.enable_http_proxy", 0)]
    with grpc.insecure_channel(f"127.0.0.1:{mesh.proxy_port}", options=options) as channel:
        pay = channel.unary_unary("/shop.Checkout/Pay")
        with pytest.raises(grpc.RpcError) as raised:
            pay(b"", metadata=[("x-fault", "grpc")], timeout=10)
    error = raised.value
    assert isinstance(error, grpc.Call)
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert app.requests == 0

    # Without the header the rule does not apply: the request reaches the application.
    passed = _send(mesh, host, "POST", "/shop.Checkout/Pay", {"content-type": "application/grpc"})
    assert passed.upstream == "grpc-app" and "grpc-status" not in passed.headers
