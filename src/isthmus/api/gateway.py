"""networking.istio.io Gateway: the servers (port, hosts, TLS) of an ingress gateway.

Field names follow Istio's proto (networking/v1alpha3/gateway.proto, served as v1,
v1beta1 and v1alpha3). A Gateway selects gateway pods by labels (`istio: ingressgateway`)
in any namespace; VirtualServices bind to it by name in `gateways`. What isthmus does not
enforce is refused as not supported yet, by the schema or by `checks_gateway`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field, Strict

from isthmus.api.base import IstioModel, Resource, UInt32


class ServerTLSMode(StrEnum):
    PASSTHROUGH = "PASSTHROUGH"
    SIMPLE = "SIMPLE"
    MUTUAL = "MUTUAL"
    AUTO_PASSTHROUGH = "AUTO_PASSTHROUGH"
    ISTIO_MUTUAL = "ISTIO_MUTUAL"
    OPTIONAL_MUTUAL = "OPTIONAL_MUTUAL"


class TLSProtocol(StrEnum):
    TLS_AUTO = "TLS_AUTO"
    TLSV1_0 = "TLSV1_0"
    TLSV1_1 = "TLSV1_1"
    TLSV1_2 = "TLSV1_2"
    TLSV1_3 = "TLSV1_3"


class ServerTLSCertificate(IstioModel):
    server_certificate: str | None = None
    private_key: str | None = None
    ca_certificates: str | None = None


class ServerTLSSettings(IstioModel):
    https_redirect: bool = False
    mode: Annotated[ServerTLSMode, Strict(False)] = ServerTLSMode.PASSTHROUGH
    server_certificate: str | None = None
    private_key: str | None = None
    ca_certificates: str | None = None
    ca_crl: str | None = None
    credential_name: str | None = None
    credential_names: list[str] = Field(default_factory=list)
    tls_certificates: list[ServerTLSCertificate] = Field(default_factory=list)
    ca_cert_credential_name: str | None = None
    subject_alt_names: list[str] = Field(default_factory=list)
    verify_certificate_spki: list[str] = Field(default_factory=list)
    verify_certificate_hash: list[str] = Field(default_factory=list)
    min_protocol_version: Annotated[TLSProtocol, Strict(False)] | None = None
    max_protocol_version: Annotated[TLSProtocol, Strict(False)] | None = None
    cipher_suites: list[str] = Field(default_factory=list)
    ecdh_curves: list[str] = Field(default_factory=list)
    insecure_skip_verify: bool | None = None


class GatewayPort(IstioModel):
    """networking.Port: the gateway pod listens on `number` (targetPort has no effect on
    gateways, as Istio says)."""

    number: UInt32
    protocol: str
    name: str
    target_port: UInt32 | None = None


class Server(IstioModel):
    port: GatewayPort
    bind: str | None = None
    hosts: list[str] = Field(default_factory=list)
    tls: ServerTLSSettings | None = None
    default_endpoint: str | None = None
    name: str | None = None


class GatewaySpec(IstioModel):
    servers: list[Server] = Field(default_factory=list)
    selector: dict[str, str] = Field(default_factory=dict)


class Gateway(Resource):
    spec: GatewaySpec
