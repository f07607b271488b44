"""Gateway and VirtualService `gateways`: what Istio accepts is accepted, what isthmus does
not serve yet is refused with one line naming the field."""

from __future__ import annotations

import pytest
from _apihelp import document, load, load_errors

from isthmus.api.gateway import Gateway

GW = "app.yaml:1 Gateway production/reviews: "
VS = "app.yaml:1 VirtualService production/reviews: "


def gateway(servers: str) -> str:
    if servers == "[]":
        return document("Gateway", "selector: {istio: ingressgateway}\nservers: []")
    return document("Gateway", "selector: {istio: ingressgateway}\nservers:\n" + servers)


HTTP_SERVER = "- port: {number: 80, name: http, protocol: HTTP}\n  hosts: ['*']\n"


def test_istio_bookinfo_gateway_and_virtual_service_are_accepted() -> None:
    text = (
        gateway(HTTP_SERVER)
        + "---\n"
        + document(
            "VirtualService",
            """
        hosts: ["*"]
        gateways: [reviews]
        http:
        - match: [{uri: {exact: /productpage}}]
          route: [{destination: {host: productpage, port: {number: 9080}}}]
        """,
        )
    )

    gw, vs = load(text)

    assert isinstance(gw.resource, Gateway)
    assert gw.resource.spec.servers[0].port.number == 80
    assert vs.resource.spec.gateways == ["reviews"]


@pytest.mark.parametrize(
    "hosts",
    [
        "['*']",
        "[bookinfo.example.com]",
        "['*.example.com']",
        "[shop/reviews.example.com, ./a.example.com, '*/b.example.com', 'shop/*']",
    ],
)
def test_server_host_forms(hosts: str) -> None:
    server = "- port: {number: 80, name: http, protocol: HTTP}\n  hosts: " + hosts + "\n"
    assert len(load(gateway(server))) == 1


@pytest.mark.parametrize(
    "tls",
    [
        "{mode: SIMPLE, credentialName: bookinfo-credential}",
        "{mode: MUTUAL, credentialName: bookinfo-credential}",
        "{mode: OPTIONAL_MUTUAL, credentialName: bookinfo-credential}",
        "{mode: ISTIO_MUTUAL}",
        "{mode: SIMPLE, serverCertificate: /etc/istio/cert.pem, privateKey: /etc/istio/key.pem}",
        "{mode: MUTUAL, serverCertificate: /c.pem, privateKey: /k.pem, caCertificates: /ca.pem,"
        " subjectAltNames: [client.example.com], minProtocolVersion: TLSV1_2,"
        " cipherSuites: [ECDHE-ECDSA-AES256-GCM-SHA384]}",
    ],
)
def test_https_servers_as_istio_accepts_them(tls: str) -> None:
    server = "- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: ['*']\n"
    assert len(load(gateway(server + "  tls: " + tls + "\n"))) == 1


def test_istio_tls_passthrough_sample_is_accepted() -> None:
    text = (
        document(
            "Gateway",
            """
            selector: {istio: ingressgateway}
            servers:
            - port: {number: 443, name: https, protocol: HTTPS}
              tls: {mode: PASSTHROUGH}
              hosts: [nginx.example.com]
            """,
            name="mygateway",
        )
        + "---\n"
        + document(
            "VirtualService",
            """
            hosts: [nginx.example.com]
            gateways: [mygateway]
            tls:
            - match:
              - port: 443
                sniHosts: [nginx.example.com]
              route:
              - destination: {host: my-nginx, port: {number: 443}}
            """,
            name="nginx",
        )
    )
    assert len(load(text)) == 2


def test_http_server_may_redirect_to_https() -> None:
    server = HTTP_SERVER + "  tls: {httpsRedirect: true}\n"
    (obj,) = load(gateway(server))
    assert isinstance(obj.resource, Gateway)
    tls = obj.resource.spec.servers[0].tls
    assert tls is not None and tls.https_redirect


@pytest.mark.parametrize(
    ("servers", "error"),
    [
        ("[]", GW + "spec.servers: a gateway needs at least one server"),
        (
            "- port: {number: 80, name: http, protocol: HTTP}\n",
            GW + "spec.servers[0].hosts: a server needs at least one host",
        ),
        (
            "- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: ['*']\n",
            GW + "spec.servers[0].tls: an HTTPS server needs TLS settings",
        ),
        (
            "- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: ['*']\n"
            "  tls: {mode: AUTO_PASSTHROUGH}\n",
            GW + "spec.servers[0].tls.mode: AUTO_PASSTHROUGH is not supported yet on HTTPS",
        ),
        (
            "- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: ['*']\n"
            "  tls: {mode: SIMPLE}\n",
            GW + "spec.servers[0].tls: SIMPLE TLS needs a certificate: credentialName, or "
            "serverCertificate and privateKey",
        ),
        (
            "- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: ['*']\n"
            "  tls: {mode: MUTUAL, serverCertificate: /c.pem, privateKey: /k.pem}\n",
            GW + "spec.servers[0].tls.caCertificates: MUTUAL TLS requires a client CA bundle",
        ),
        (
            "- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: ['*']\n"
            "  tls: {mode: ISTIO_MUTUAL, credentialName: cert}\n",
            GW + "spec.servers[0].tls.credentialName: ISTIO_MUTUAL uses the mesh's certificates",
        ),
        (
            "- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: ['*']\n"
            "  tls: {mode: SIMPLE, credentialName: a, serverCertificate: /c.pem}\n",
            GW + "spec.servers[0].tls.credentialName: set either credentialName or",
        ),
        (
            "- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: ['*']\n"
            "  tls: {mode: SIMPLE, serverCertificate: c.pem, privateKey: /k.pem}\n",
            GW + "spec.servers[0].tls.serverCertificate: must be an absolute path",
        ),
        (
            "- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: ['*']\n"
            "  tls: {mode: SIMPLE, credentialNames: [a, b]}\n",
            GW + "spec.servers[0].tls.credentialNames: not supported yet",
        ),
        (
            "- port: {number: 443, name: tls, protocol: TLS}\n  hosts: ['*']\n"
            "  tls: {mode: SIMPLE, credentialName: a}\n",
            GW + "spec.servers[0].tls.mode: SIMPLE is not supported yet on TLS servers",
        ),
        (
            "- port: {number: 31400, name: tcp, protocol: TCP}\n  hosts: ['*']\n"
            "  tls: {mode: ISTIO_MUTUAL}\n",
            GW + "spec.servers[0].tls: server cannot have TLS settings for non HTTPS/TLS ports",
        ),
        (
            "- port: {number: 27017, name: mongo, protocol: MONGO}\n  hosts: ['*']\n",
            GW + "spec.servers[0].port.protocol: MONGO servers are not supported yet",
        ),
        (
            "- port: {number: 80, name: http, protocol: HTTP}\n  hosts: ['*']\n"
            "  tls: {mode: SIMPLE}\n",
            GW + "spec.servers[0].tls.mode: server cannot have TLS settings for plain text "
            "HTTP ports",
        ),
        (
            "- port: {number: 80, name: http, protocol: HTTP, targetPort: 8080}\n  hosts: ['*']\n",
            GW + "spec.servers[0].port.targetPort: has no effect on gateways (Istio refuses it)",
        ),
        (
            "- port: {number: 80, name: http, protocol: HTTP}\n  hosts: ['*']\n  bind: 0.0.0.0\n",
            GW + "spec.servers[0].bind: not supported yet",
        ),
        (
            "- port: {number: 80, name: http, protocol: FTP}\n  hosts: ['*']\n",
            GW + 'spec.servers[0].port.protocol: unknown protocol "FTP"',
        ),
        (
            "- port: {number: 80, name: http, protocol: HTTP}\n  hosts: ['Bad_Ns/a.com']\n",
            GW + 'spec.servers[0].hosts[0]: namespace of "Bad_Ns/a.com": "Bad_Ns" is not a '
            "valid name",
        ),
        (
            HTTP_SERVER + "- port: {number: 81, name: http, protocol: HTTP}\n  hosts: ['*']\n",
            GW + 'spec.servers[1]: duplicate server port name "http"',
        ),
    ],
)
def test_invalid_gateways(servers: str, error: str) -> None:
    errors = load_errors(gateway(servers))
    assert len(errors) == 1, errors
    assert errors[0].startswith(error), errors


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        (
            "hosts: ['*']\nhttp: [{route: [{destination: {host: a}}]}]",
            VS + 'spec.hosts[0]: host "*" is not allowed for the mesh; name the hosts',
        ),
        (
            "hosts: ['*']\ngateways: [gw, mesh]\nhttp: [{route: [{destination: {host: a}}]}]",
            VS + 'spec.hosts[0]: host "*" is not allowed for the mesh; name the hosts',
        ),
        (
            "hosts: [a]\ngateways: [gw]\ntcp: [{match: [{sourceLabels: {app: x}}],"
            " route: [{destination: {host: a}}]}]",
            VS + "spec.tcp[0].match[0].sourceLabels: not supported yet on gateways",
        ),
        (
            "hosts: [a.example.com]\ntls: [{match: [{sniHosts: [a.example.com]}],"
            " route: [{destination: {host: a}}]}]",
            VS + "spec.tls: tls routes on sidecars are not supported yet",
        ),
        (
            "hosts: [a.example.com]\ngateways: [gw]\ntls: [{match: [{sniHosts: [b.example.com]}],"
            " route: [{destination: {host: a}}]}]",
            VS + 'spec.tls[0].match[0].sniHosts[0]: SNI host "b.example.com" is not within',
        ),
        (
            "hosts: [a.example.com]\ngateways: [gw]\ntls: [{match: [{sniHosts: [a.example.com],"
            " sourceLabels: {app: x}}], route: [{destination: {host: a}}]}]",
            VS + "spec.tls[0].match[0].sourceLabels: not supported yet on gateways",
        ),
        (
            "hosts: [a.example.com]\ngateways: [gw]\ntls: [{match: [], route: [{destination:"
            " {host: a}}]}]",
            VS + "spec.tls[0].match: a TLS route needs at least one match",
        ),
        (
            "hosts: [a]\ngateways: [Bad/gw]\nhttp: [{route: [{destination: {host: a}}]}]",
            VS + 'spec.gateways[0]: "Bad" is not a valid name',
        ),
        (
            "hosts: [a]\ngateways: [/gw]\nhttp: [{route: [{destination: {host: a}}]}]",
            VS + "spec.gateways[0]: namespace and gateway name cannot be empty",
        ),
    ],
)
def test_virtual_service_gateway_binding_checks(spec: str, error: str) -> None:
    errors = load_errors(document("VirtualService", spec))
    assert len(errors) == 1, errors
    assert errors[0].startswith(error), errors


def test_gateway_names_in_all_istio_forms_are_accepted() -> None:
    spec = (
        "hosts: [a.example.com]\n"
        "gateways: [gw, istio-system/ingress, ingress.istio-system.svc.cluster.local, mesh]\n"
        "http:\n- match: [{gateways: [gw]}]\n  route: [{destination: {host: a}}]\n"
        "- route: [{destination: {host: a}}]"
    )
    assert len(load(document("VirtualService", spec))) == 1
