"""Traffic from the host through the ingress gateway pod, with Istio's own samples: the
bookinfo gateway (port 8080, every host, by path) and the httpbin ingress task (port 80,
by host and path), applied verbatim (one long comment line left out) apart from the apps,
which are the demo app run by `command`. Requests enter on the host's 127.0.0.1 (`isthmus
up --ingress-port`), are routed by the gateway's Envoy and reach the app through its
sidecar over mTLS.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import PYTHON, E2EMesh, running_mesh, wait_until

from isthmus.testing.certs import KeyPair, Pki, secret_yaml

HOST = "127.0.0.1"


def _free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


HTTP_PORT = _free_loopback_port()  # -> gateway port 80
BOOKINFO_PORT = _free_loopback_port()  # -> gateway port 8080
HTTPS_PORT = _free_loopback_port()  # -> gateway port 443
TCP_PORT = _free_loopback_port()  # -> gateway port 31400

SERVER_PKI = Pki("example.com CA")
CLIENT_PKI = Pki("client CA")
HTTPBIN_CERT = SERVER_PKI.server("httpbin.example.com")
MUTUAL_CERT = SERVER_PKI.server("mutual.example.com")
CLIENT_CERT = CLIENT_PKI.server("client.example.com")
NGINX_CERT = SERVER_PKI.server("nginx.example.com")

# Istio's samples/bookinfo/networking/bookinfo-gateway.yaml.
BOOKINFO_GATEWAY = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: bookinfo-gateway
spec:
  # The selector matches the ingress gateway pod labels.
  selector:
    istio: ingressgateway # use istio default controller
  servers:
  - port:
      number: 8080
      name: http
      protocol: HTTP
    hosts:
    - "*"
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: bookinfo
spec:
  hosts:
  - "*"
  gateways:
  - bookinfo-gateway
  http:
  - match:
    - uri:
        exact: /productpage
    - uri:
        prefix: /static
    - uri:
        exact: /login
    - uri:
        exact: /logout
    - uri:
        prefix: /api/v1/products
    route:
    - destination:
        host: productpage
        port:
          number: 9080
"""

# Istio's ingress task (tasks/traffic-management/ingress/ingress-control).
HTTPBIN_GATEWAY = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: httpbin-gateway
spec:
  # The selector matches the ingress gateway pod labels.
  selector:
    istio: ingressgateway
  servers:
  - port:
      number: 80
      name: http
      protocol: HTTP
    hosts:
    - "httpbin.example.com"
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: httpbin
spec:
  hosts:
  - "httpbin.example.com"
  gateways:
  - httpbin-gateway
  http:
  - match:
    - uri:
        prefix: /status
    - uri:
        prefix: /delay
    route:
    - destination:
        port:
          number: 8000
        host: httpbin
"""

REDIRECT_GATEWAY = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: secure, namespace: shop}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http-secure, protocol: HTTP}
    hosts: [shop/secure.example.com]
    tls: {httpsRedirect: true}
"""


# Istio's secure ingress task (tasks/traffic-management/ingress/secure-ingress), in
# namespace `tls`; its Secret (kubectl create secret tls httpbin-credential) in istio-system.
SECURE_GATEWAY = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: mygateway
spec:
  selector:
    istio: ingressgateway # use istio default ingress gateway
  servers:
  - port:
      number: 443
      name: https
      protocol: HTTPS
    tls:
      mode: SIMPLE
      credentialName: httpbin-credential # must be the same as secret
    hosts:
    - httpbin.example.com
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: httpbin
spec:
  hosts:
  - "httpbin.example.com"
  gateways:
  - mygateway
  http:
  - match:
    - uri:
        prefix: /status
    - uri:
        prefix: /delay
    route:
    - destination:
        port:
          number: 8000
        host: httpbin
"""

# The mutual TLS variant of the task: the same Secret carries ca.crt, the mode is MUTUAL.
MUTUAL_GATEWAY = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: mutual-gateway}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https-mutual, protocol: HTTPS}
    tls: {mode: MUTUAL, credentialName: mutual-credential}
    hosts: [mutual.example.com]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: mutual}
spec:
  hosts: [mutual.example.com]
  gateways: [mutual-gateway]
  http:
  - route: [{destination: {host: httpbin, port: {number: 8000}}}]
"""


# Istio's TLS passthrough task (tasks/traffic-management/ingress/ingress-sni-passthrough),
# in namespace `passthrough`; the nginx pod is a TLS server of ours.
PASSTHROUGH_GATEWAY = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: mygateway
spec:
  selector:
    istio: ingressgateway # use istio default ingress gateway
  servers:
  - port:
      number: 443
      name: https
      protocol: HTTPS
    tls:
      mode: PASSTHROUGH
    hosts:
    - nginx.example.com
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: nginx
spec:
  hosts:
  - nginx.example.com
  gateways:
  - mygateway
  tls:
  - match:
    - port: 443
      sniHosts:
      - nginx.example.com
    route:
    - destination:
        host: my-nginx
        port:
          number: 443
"""


# Istio's TCP ingress (tasks/traffic-management/tcp-traffic-shifting) shape: a TCP server
# on 31400 and a tcp route; here to productpage's port, so HTTP shows the bytes went through.
TCP_GATEWAY = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: tcp-echo-gateway
spec:
  selector:
    istio: ingressgateway
  servers:
  - port:
      number: 31400
      name: tcp
      protocol: TCP
    hosts:
    - "*"
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: tcp-echo
spec:
  hosts:
  - "*"
  gateways:
  - tcp-echo-gateway
  tcp:
  - match:
    - port: 31400
    route:
    - destination:
        host: productpage
        port:
          number: 9080
"""


def _tls_server(name: str, namespace: str, pair: KeyPair) -> str:
    """A pod terminating TLS itself (isthmus.testing.tls_server) behind Service `name`:443."""

    def block(pem: bytes) -> str:
        return "|\n" + "".join(f"            {line}\n" for line in pem.decode().splitlines())

    return f"""
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  selector: {{app: {name}}}
  ports: [{{name: https, port: 443, targetPort: 8443}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - name: nginx
        image: nginx
        command: [{PYTHON}, -m, isthmus.testing.tls_server]
        env:
        - name: SERVICE
          value: {name}
        - name: TLS_CERT
          value: {block(pair.certificate)}
        - name: TLS_KEY
          value: {block(pair.key)}
        ports: [{{containerPort: 8443, name: https}}]
---
"""


def _app(name: str, service_port: int, namespace: str = "default") -> str:
    """The demo app as `name` (Deployment + Service on `service_port` -> 8080)."""
    return f"""
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  selector: {{app: {name}}}
  ports: [{{name: http, port: {service_port}, targetPort: 8080}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}, version: v1}}}}
    spec:
      containers:
      - name: app
        image: docker.io/kennethreitz/{name}
        command: [{PYTHON}, -m, isthmus.demo.app]
        env:
        - {{name: SERVICE, value: {name}}}
        ports: [{{containerPort: 8080, name: http}}]
        readinessProbe:
          httpGet: {{path: /healthz, port: 8080}}
          periodSeconds: 1
---
"""


@pytest.fixture(scope="module")
def mesh() -> Iterator[E2EMesh]:
    ports = (
        *("--ingress-port", f"{HTTP_PORT}:80"),
        *("--ingress-port", f"{BOOKINFO_PORT}:8080"),
        *("--ingress-port", f"{HTTPS_PORT}:443"),
        *("--ingress-port", f"{TCP_PORT}:31400"),
    )
    with running_mesh(*ports, ingress_gateway=True) as m:
        m.apply(_app("productpage", 9080) + _app("httpbin", 8000))
        m.apply(BOOKINFO_GATEWAY + "---\n" + HTTPBIN_GATEWAY + "---\n" + TCP_GATEWAY)
        m.apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\n" + REDIRECT_GATEWAY)
        m.apply(
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: tls}\n---\n"
            + _app("httpbin", 8000, "tls")
            + secret_yaml(
                "httpbin-credential",
                {"tls.crt": HTTPBIN_CERT.certificate, "tls.key": HTTPBIN_CERT.key},
            )
            + "---\n"
            + secret_yaml(
                "mutual-credential",
                {
                    "tls.crt": MUTUAL_CERT.certificate,
                    "tls.key": MUTUAL_CERT.key,
                    "ca.crt": CLIENT_PKI.ca_pem,
                },
            )
        )
        m.apply(_in_namespace("tls", SECURE_GATEWAY + "---\n" + MUTUAL_GATEWAY))
        m.apply(
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: passthrough}\n---\n"
            + _tls_server("my-nginx", "passthrough", NGINX_CERT)
            + _in_namespace("passthrough", PASSTHROUGH_GATEWAY)
        )
        m.wait_pods({"istio-ingressgateway": 1, "productpage": 1, "httpbin": 2, "my-nginx": 1})
        yield m


def _in_namespace(namespace: str, text: str) -> str:
    """Documents written without a namespace, placed in `namespace` (as `kubectl -n`)."""
    return text.replace("metadata:\n", f"metadata:\n  namespace: {namespace}\n").replace(
        "metadata: {", f"metadata: {{namespace: {namespace}, "
    )


def _get(port: int, path: str, host: str | None = None) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        connection.request("GET", path, headers={"Host": host} if host else {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def _routed(port: int, path: str, host: str | None = None) -> tuple[int, dict[str, Any]] | None:
    """The answer once the gateway routes `path` to a ready app (before its routes arrive
    it says 404; before the app's endpoint does, 503)."""
    try:
        status, _, body = _get(port, path, host)
    except OSError:
        return None
    if status in (404, 503):  # not routed yet, or the app's endpoint not pushed yet
        return None
    return status, json.loads(body) if body.startswith(b"{") else {}


def test_bookinfo_sample_routes_by_path_on_every_host(mesh: E2EMesh) -> None:
    status, body = wait_until(
        lambda: _routed(BOOKINFO_PORT, "/productpage"), 60, "the bookinfo route"
    )
    assert status == 200
    assert body["service"] == "productpage"
    for path in ("/static/css/style.css", "/login", "/api/v1/products/1"):
        assert _get(BOOKINFO_PORT, path, "bookinfo.example.com")[0] == 200, path
    # Not a path the VirtualService routes: the gateway answers 404 itself.
    status, _, _ = _get(BOOKINFO_PORT, "/reviews")
    assert status == 404


def test_the_app_sees_the_gateway_as_its_mtls_peer(mesh: E2EMesh) -> None:
    wait_until(lambda: _routed(BOOKINFO_PORT, "/productpage"), 60, "the bookinfo route")
    _, _, body = _get(BOOKINFO_PORT, "/productpage")
    peer = json.loads(body)["peer"]
    assert "spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account" in peer


def test_httpbin_task_routes_by_host_and_path(mesh: E2EMesh) -> None:
    status, body = wait_until(
        lambda: _routed(HTTP_PORT, "/status/200", "httpbin.example.com"), 60, "the httpbin route"
    )
    assert (status, body["service"]) == (200, "httpbin")
    assert _get(HTTP_PORT, "/status/418", "httpbin.example.com")[0] == 418
    # Another host, or a path the VirtualService does not route: 404 from the gateway.
    assert _get(HTTP_PORT, "/status/200", "other.example.com")[0] == 404
    assert _get(HTTP_PORT, "/headers", "httpbin.example.com")[0] == 404


def test_https_redirect(mesh: E2EMesh) -> None:
    def redirected() -> tuple[int, dict[str, str], bytes] | None:
        answer = _get(HTTP_PORT, "/cart?id=1", "secure.example.com")
        return answer if answer[0] == 301 else None

    _, headers, _ = wait_until(redirected, 60, "the https redirect")
    assert headers["location"] == "https://secure.example.com/cart?id=1"


def test_published_only_on_the_hosts_loopback(mesh: E2EMesh) -> None:
    with open("/proc/net/tcp") as table:
        rows = [line.split() for line in table.read().splitlines()[1:]]
    listening: dict[int, set[str]] = {}
    for row in rows:
        if row[3] == "0A":  # LISTEN
            address, port = row[1].split(":")
            listening.setdefault(int(port, 16), set()).add(address)
    assert listening[HTTP_PORT] == {"0100007F"}  # 127.0.0.1 and nothing else
    assert listening[BOOKINFO_PORT] == {"0100007F"}


def _https_get(host: str, path: str, client: KeyPair | None = None) -> tuple[int, dict[str, Any]]:
    """GET over TLS to the published 443 with SNI `host`, checking the gateway's certificate
    against the example.com CA; with `client`, presenting that certificate."""
    context = ssl.create_default_context(cadata=SERVER_PKI.ca_pem.decode())
    if client is not None:
        with tempfile.NamedTemporaryFile() as cert, tempfile.NamedTemporaryFile() as key:
            cert.write(client.certificate)
            key.write(client.key)
            cert.flush()
            key.flush()
            context.load_cert_chain(cert.name, key.name)
    # A connection whose socket is already TLS to 127.0.0.1 with SNI `host`.
    connection = http.client.HTTPConnection(HOST, HTTPS_PORT, timeout=10)
    try:
        connection.sock = context.wrap_socket(
            socket.create_connection((HOST, HTTPS_PORT), timeout=10), server_hostname=host
        )
        connection.request("GET", path, headers={"Host": host})
        response = connection.getresponse()
        body = response.read()
        return response.status, json.loads(body) if body.startswith(b"{") else {}
    finally:
        connection.close()


def _https_routed(
    host: str, path: str, client: KeyPair | None = None
) -> tuple[int, dict[str, Any]] | None:
    try:
        status, body = _https_get(host, path, client)
    except (OSError, ssl.SSLError):
        return None
    return None if status in (404, 503) else (status, body)


def test_secure_ingress_task_terminates_tls_with_the_secrets_certificate(mesh: E2EMesh) -> None:
    status, body = wait_until(
        lambda: _https_routed("httpbin.example.com", "/status/418"), 60, "the HTTPS route"
    )
    assert status == 418
    assert (body["service"], body["pod"].startswith("httpbin")) == ("httpbin", True)
    # The certificate served is the Secret's: checked against its CA, for its host name.
    with socket.create_connection((HOST, HTTPS_PORT), timeout=10) as raw:
        context = ssl.create_default_context(cadata=SERVER_PKI.ca_pem.decode())
        with context.wrap_socket(raw, server_hostname="httpbin.example.com") as tls:
            names = dict(x[0] for x in tls.getpeercert()["subject"])
    assert names["commonName"] == "httpbin.example.com"


def test_mutual_tls_requires_a_client_certificate_from_the_secrets_ca(mesh: E2EMesh) -> None:
    status, _ = wait_until(
        lambda: _https_routed("mutual.example.com", "/status/200", CLIENT_CERT),
        60,
        "the MUTUAL route",
    )
    assert status == 200
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _https_get("mutual.example.com", "/status/200")
    stranger = SERVER_PKI.server("stranger.example.com")  # not signed by the client CA
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _https_get("mutual.example.com", "/status/200", stranger)


def test_tls_passthrough_task_reaches_the_tls_server_untouched(mesh: E2EMesh) -> None:
    """The certificate is the pod's, and the pod saw the client's SNI: the gateway (which
    shares port 443 with servers it terminates) only read the SNI and passed bytes on."""

    def answer() -> tuple[str, dict[str, Any]] | None:
        context = ssl.create_default_context(cadata=SERVER_PKI.ca_pem.decode())
        try:
            raw = socket.create_connection((HOST, HTTPS_PORT), timeout=10)
            with context.wrap_socket(raw, server_hostname="nginx.example.com") as tls:
                subject = dict(x[0] for x in tls.getpeercert()["subject"])
                tls.sendall(b"GET / HTTP/1.0\r\nHost: nginx.example.com\r\n\r\n")
                reply = b""
                while chunk := tls.recv(65536):
                    reply += chunk
        except (OSError, ssl.SSLError):
            return None
        head, _, body = reply.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.0 200"):
            return None
        return str(subject["commonName"]), json.loads(body)

    common_name, body = wait_until(answer, 60, "the passthrough route")
    assert common_name == "nginx.example.com"
    assert body == {"service": "my-nginx", "sni": "nginx.example.com"}


def test_tcp_server_proxies_bytes_to_the_tcp_routes_destination(mesh: E2EMesh) -> None:
    def answer() -> dict[str, Any] | None:
        try:
            with socket.create_connection((HOST, TCP_PORT), timeout=10) as raw:
                raw.sendall(
                    b"GET /over-tcp HTTP/1.1\r\nHost: anything\r\nConnection: close\r\n\r\n"
                )
                reply = b""
                while chunk := raw.recv(65536):
                    reply += chunk
        except OSError:
            return None
        head, _, body = reply.partition(b"\r\n\r\n")
        return json.loads(body) if head.startswith(b"HTTP/1.1 200") else None

    body = wait_until(answer, 60, "the TCP route")
    assert (body["service"], body["path"]) == ("productpage", "/over-tcp")
