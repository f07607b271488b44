"""HTTPS servers on a gateway: a chain per server by SNI, TLS terminated with the Secret a
`credentialName` names (or files, or the mesh's certificates for ISTIO_MUTUAL), each with
its own route configuration; Envoy accepts the result."""

from __future__ import annotations

from pathlib import Path

from _build import mesh_from_yaml
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2

from isthmus.api.loader import load_documents
from isthmus.pilot.profile import ConfigGenerator
from isthmus.pilot.resources import LISTENER, ROUTE, Snapshot
from isthmus.testing.certs import Pki, secret_yaml
from isthmus.testing.validate import validate_snapshot

PKI = Pki()
BOOKINFO = PKI.server("bookinfo.example.com")
CLIENT_CA = Pki("client CA")


def _config(files: Path) -> str:
    (files / "cert.pem").write_bytes(BOOKINFO.certificate)
    (files / "key.pem").write_bytes(BOOKINFO.key)
    return (
        secret_yaml(
            "bookinfo-credential", {"tls.crt": BOOKINFO.certificate, "tls.key": BOOKINFO.key}
        )
        + "---\n"
        + secret_yaml(
            "mutual-credential",
            {"tls.crt": BOOKINFO.certificate, "tls.key": BOOKINFO.key, "ca.crt": CLIENT_CA.ca_pem},
        )
        + f"""---
apiVersion: v1
kind: Service
metadata: {{name: productpage, namespace: default}}
spec:
  clusterIP: 10.96.0.20
  ports: [{{name: http, port: 9080}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: secure, namespace: default}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: 443, name: https-simple, protocol: HTTPS}}
    hosts: [bookinfo.example.com]
    tls: {{mode: SIMPLE, credentialName: bookinfo-credential, minProtocolVersion: TLSV1_2}}
  - port: {{number: 443, name: https-mutual, protocol: HTTPS}}
    hosts: [mutual.example.com]
    tls: {{mode: MUTUAL, credentialName: mutual-credential}}
  - port: {{number: 443, name: https-files, protocol: HTTPS}}
    hosts: [files.example.com]
    tls: {{mode: SIMPLE, serverCertificate: {files}/cert.pem, privateKey: {files}/key.pem}}
  - port: {{number: 443, name: https-mesh, protocol: HTTPS}}
    hosts: [mesh.example.com]
    tls: {{mode: ISTIO_MUTUAL}}
  - port: {{number: 443, name: https-missing, protocol: HTTPS}}
    hosts: [missing.example.com]
    tls: {{mode: SIMPLE, credentialName: no-such-secret}}
  - port: {{number: 8443, name: https-any, protocol: HTTPS}}
    hosts: ["*"]
    tls: {{mode: SIMPLE, credentialName: bookinfo-credential}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: bookinfo, namespace: default}}
spec:
  hosts: ["*.example.com"]
  gateways: [secure]
  http:
  - route: [{{destination: {{host: productpage}}}}]
---
kind: Proxy
namespace: istio-system
labels: {{istio: ingressgateway}}
router: true
"""
    )


def _snapshot(tmp_path: Path) -> Snapshot:
    mesh, proxy = mesh_from_yaml(_config(tmp_path))
    return ConfigGenerator().snapshot(mesh, proxy)


def _listener(snapshot: Snapshot, name: str) -> listener_pb2.Listener:
    out = listener_pb2.Listener()
    snapshot.of_type(LISTENER)[name].any.Unpack(out)
    return out


def _tls(chain: object) -> tls_pb2.DownstreamTlsContext:
    context = tls_pb2.DownstreamTlsContext()
    chain.transport_socket.typed_config.Unpack(context)  # type: ignore[attr-defined]
    return context


def test_the_config_is_valid(tmp_path: Path) -> None:
    text = _config(tmp_path)
    config = text[: text.index("kind: Proxy")]
    assert len(load_documents(config, "gateway.yaml")) == 5


def test_a_chain_per_server_by_sni_with_its_own_route_configuration(tmp_path: Path) -> None:
    listener = _listener(_snapshot(tmp_path), "0.0.0.0_443")

    by_sni = {tuple(c.filter_chain_match.server_names): c for c in listener.filter_chains}
    # The server whose Secret does not exist gets no chain (nothing to present).
    assert set(by_sni) == {
        ("bookinfo.example.com",),
        ("mutual.example.com",),
        ("files.example.com",),
        ("mesh.example.com",),
    }
    manager = hcm.HttpConnectionManager()
    by_sni[("bookinfo.example.com",)].filters[0].typed_config.Unpack(manager)
    assert manager.rds.route_config_name == "https.443.https-simple.secure.default"
    assert [f.name for f in listener.listener_filters] == ["envoy.filters.listener.tls_inspector"]

    simple = _tls(by_sni[("bookinfo.example.com",)])
    (certificate,) = simple.common_tls_context.tls_certificates
    assert certificate.certificate_chain.inline_bytes == BOOKINFO.certificate
    assert certificate.private_key.inline_bytes == BOOKINFO.key
    assert not simple.require_client_certificate.value
    assert list(simple.common_tls_context.alpn_protocols) == ["h2", "http/1.1"]
    assert simple.common_tls_context.tls_params.tls_minimum_protocol_version == 3  # TLSv1_2

    mutual = _tls(by_sni[("mutual.example.com",)])
    assert mutual.require_client_certificate.value
    trusted = mutual.common_tls_context.validation_context.trusted_ca.inline_bytes
    assert trusted == CLIENT_CA.ca_pem

    files = _tls(by_sni[("files.example.com",)])
    assert files.common_tls_context.tls_certificates[0].private_key.filename.endswith("key.pem")

    mesh = _tls(by_sni[("mesh.example.com",)])
    assert mesh.require_client_certificate.value
    assert [s.name for s in mesh.common_tls_context.tls_certificate_sds_secret_configs] == [
        "default"
    ]


def test_a_wildcard_server_matches_any_sni(tmp_path: Path) -> None:
    (chain,) = _listener(_snapshot(tmp_path), "0.0.0.0_8443").filter_chains
    assert not chain.filter_chain_match.server_names


def test_each_https_server_routes_its_hosts(tmp_path: Path) -> None:
    snapshot = _snapshot(tmp_path)
    config = route_pb2.RouteConfiguration()
    snapshot.of_type(ROUTE)["https.443.https-mutual.secure.default"].any.Unpack(config)

    (vhost,) = config.virtual_hosts
    assert list(vhost.domains) == ["mutual.example.com"]
    cluster = vhost.routes[0].route.cluster
    assert cluster == "outbound|9080||productpage.default.svc.cluster.local"


def test_envoy_accepts_the_tls_listeners(tmp_path: Path) -> None:
    snapshot = _snapshot(tmp_path)
    assert snapshot.consistency_errors() == []
    validate_snapshot(snapshot)
