"""A gateway server's TLS termination (Istio's BuildListenerTLSContext for gateways).

SIMPLE presents the server's certificate; MUTUAL also requires a client certificate signed
by the server's CA, OPTIONAL_MUTUAL checks one if the client sends it; ISTIO_MUTUAL uses
the gateway's mesh certificate and trust bundle over SDS and requires a mesh client. The
certificate comes from the Secret `credentialName` in the gateway pod's namespace, passed
to Envoy inline (Envoy redacts private keys from its config dump), or from files the
gateway's Envoy reads (`serverCertificate`, `privateKey`, `caCertificates`, `caCrl`).
"""

from __future__ import annotations

from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, tls_pb2
from envoy.type.matcher.v3 import string_pb2

from isthmus.api.gateway import ServerTLSMode, ServerTLSSettings, TLSProtocol
from isthmus.model.credentials import ServerCredential
from isthmus.pilot.envoy.typed import pack
from isthmus.pilot.security.tls import (
    ROOT_SECRET,
    SERVER_HTTP_ALPN,
    TLS_SOCKET,
    WORKLOAD_SECRET,
    sds_secret,
)

_PROTOCOLS = {
    TLSProtocol.TLS_AUTO: common_pb2.TlsParameters.TLS_AUTO,
    TLSProtocol.TLSV1_0: common_pb2.TlsParameters.TLSv1_0,
    TLSProtocol.TLSV1_1: common_pb2.TlsParameters.TLSv1_1,
    TLSProtocol.TLSV1_2: common_pb2.TlsParameters.TLSv1_2,
    TLSProtocol.TLSV1_3: common_pb2.TlsParameters.TLSv1_3,
}
_SAN_TYPES = (common_pb2.SubjectAltNameMatcher.DNS, common_pb2.SubjectAltNameMatcher.URI)


def server_tls_socket(
    tls: ServerTLSSettings, credential: ServerCredential | None
) -> base_pb2.TransportSocket:
    """The DownstreamTlsContext of one server; `credential` is its resolved
    credentialName (None when the server names files, or for ISTIO_MUTUAL)."""
    context = tls_pb2.DownstreamTlsContext()
    common = context.common_tls_context
    common.alpn_protocols.extend(SERVER_HTTP_ALPN)
    mode = tls.mode
    context.require_client_certificate.value = mode in (
        ServerTLSMode.MUTUAL,
        ServerTLSMode.ISTIO_MUTUAL,
    )
    validation: common_pb2.CertificateValidationContext | None = None
    if mode is ServerTLSMode.ISTIO_MUTUAL:
        common.tls_certificate_sds_secret_configs.append(sds_secret(WORKLOAD_SECRET))
        combined = common.combined_validation_context
        combined.validation_context_sds_secret_config.CopyFrom(sds_secret(ROOT_SECRET))
        validation = combined.default_validation_context
    else:
        _certificate(common.tls_certificates.add(), tls, credential)
        if mode in (ServerTLSMode.MUTUAL, ServerTLSMode.OPTIONAL_MUTUAL):
            validation = common.validation_context
            _client_ca(validation, tls, credential)
        _tls_parameters(common, tls)
    if validation is not None:
        _client_checks(validation, tls)
    return base_pb2.TransportSocket(name=TLS_SOCKET, typed_config=pack(context))


def _certificate(
    out: common_pb2.TlsCertificate, tls: ServerTLSSettings, credential: ServerCredential | None
) -> None:
    if credential is not None:
        out.certificate_chain.inline_bytes = credential.certificate_chain
        out.private_key.inline_bytes = credential.private_key
        if credential.ocsp_staple:
            out.ocsp_staple.inline_bytes = credential.ocsp_staple
        return
    assert tls.server_certificate and tls.private_key  # checked by api.checks_gateway
    out.certificate_chain.filename = tls.server_certificate
    out.private_key.filename = tls.private_key


def _client_ca(
    out: common_pb2.CertificateValidationContext,
    tls: ServerTLSSettings,
    credential: ServerCredential | None,
) -> None:
    if credential is not None and credential.ca is not None:
        out.trusted_ca.inline_bytes = credential.ca.certificate
        if credential.ca.crl:
            out.crl.inline_bytes = credential.ca.crl
        return
    if tls.ca_certificates:
        out.trusted_ca.filename = tls.ca_certificates
    if tls.ca_crl:
        out.crl.filename = tls.ca_crl


def _client_checks(out: common_pb2.CertificateValidationContext, tls: ServerTLSSettings) -> None:
    """subjectAltNames (any of them, as a DNS or URI name), certificate pins."""
    for san in tls.subject_alt_names:
        for san_type in _SAN_TYPES:
            out.match_typed_subject_alt_names.add(
                san_type=san_type, matcher=string_pb2.StringMatcher(exact=san)
            )
    out.verify_certificate_spki.extend(tls.verify_certificate_spki)
    out.verify_certificate_hash.extend(tls.verify_certificate_hash)


def _tls_parameters(common: tls_pb2.CommonTlsContext, tls: ServerTLSSettings) -> None:
    """Istio's applyServerTLSSettings: only what the server sets."""
    params = common.tls_params
    if tls.min_protocol_version not in (None, TLSProtocol.TLS_AUTO):
        params.tls_minimum_protocol_version = _PROTOCOLS[tls.min_protocol_version]
    if tls.max_protocol_version not in (None, TLSProtocol.TLS_AUTO):
        params.tls_maximum_protocol_version = _PROTOCOLS[tls.max_protocol_version]
    params.cipher_suites.extend(tls.cipher_suites)
    params.ecdh_curves.extend(tls.ecdh_curves)
    if params.ByteSize() == 0:
        common.ClearField("tls_params")
