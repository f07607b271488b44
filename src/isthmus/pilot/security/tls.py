"""Envoy TLS transport sockets for Istio mutual TLS, with certificates over SDS.

Secrets are Istio's: `default` (the workload's certificate and key) and `ROOTCA` (the
mesh trust bundle), served by the pod's agent on the `sds-grpc` cluster of the bootstrap.
Nothing here is per proxy: a client checks the server's SPIFFE id (the service's service
accounts), a server checks only that the client's id is in the mesh's trust domain.
"""

from __future__ import annotations

from collections.abc import Iterable

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2, config_source_pb2, grpc_service_pb2
from envoy.extensions.transport_sockets.raw_buffer.v3 import raw_buffer_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2, tls_pb2
from envoy.type.matcher.v3 import string_pb2
from google.protobuf import duration_pb2, struct_pb2

from isthmus.pilot.envoy.typed import pack

SDS_CLUSTER = "sds-grpc"
WORKLOAD_SECRET = "default"
ROOT_SECRET = "ROOTCA"
TLS_SOCKET = "envoy.transport_sockets.tls"
RAW_BUFFER_SOCKET = "envoy.transport_sockets.raw_buffer"
TLS_MODE_ISTIO = "istio"
# What Istio's clients offer (ALPNInMeshWithMxc) and what its servers accept on mTLS
# chains: the in-mesh markers plus the HTTP flavours Istio's ALPN filter may set.
CLIENT_MTLS_ALPN = ("istio-peer-exchange", "istio")
SERVER_MTLS_ALPN = (
    "istio-peer-exchange",
    "istio",
    "istio-http/1.0",
    "istio-http/1.1",
    "istio-h2",
)
SERVER_HTTP_ALPN = ("h2", "http/1.1")
TLS_TRANSPORT = "tls"


def sds_secret(name: str) -> secret_pb2.SdsSecretConfig:
    """A secret fetched from the agent over SDS; Envoy waits for it without a timeout, so
    a listener or cluster never comes up with no certificate."""
    return secret_pb2.SdsSecretConfig(
        name=name,
        sds_config=config_source_pb2.ConfigSource(
            api_config_source=config_source_pb2.ApiConfigSource(
                api_type=config_source_pb2.ApiConfigSource.GRPC,
                transport_api_version=config_source_pb2.V3,
                set_node_on_first_message_only=True,
                grpc_services=[
                    grpc_service_pb2.GrpcService(
                        envoy_grpc=grpc_service_pb2.GrpcService.EnvoyGrpc(cluster_name=SDS_CLUSTER)
                    )
                ],
            ),
            initial_fetch_timeout=duration_pb2.Duration(),
            resource_api_version=config_source_pb2.V3,
        ),
    )


def _san(matcher: string_pb2.StringMatcher) -> common_pb2.SubjectAltNameMatcher:
    return common_pb2.SubjectAltNameMatcher(
        san_type=common_pb2.SubjectAltNameMatcher.URI, matcher=matcher
    )


def _mesh_context(
    sans: Iterable[common_pb2.SubjectAltNameMatcher], alpn: Iterable[str]
) -> tls_pb2.CommonTlsContext:
    context = tls_pb2.CommonTlsContext(
        tls_params=common_pb2.TlsParameters(
            tls_minimum_protocol_version=common_pb2.TlsParameters.TLSv1_2,
            tls_maximum_protocol_version=common_pb2.TlsParameters.TLSv1_3,
        ),
        tls_certificate_sds_secret_configs=[sds_secret(WORKLOAD_SECRET)],
        alpn_protocols=list(alpn),
    )
    combined = context.combined_validation_context
    combined.default_validation_context.match_typed_subject_alt_names.extend(sans)
    combined.validation_context_sds_secret_config.CopyFrom(sds_secret(ROOT_SECRET))
    return context


def upstream_mtls_socket(sni: str, identities: Iterable[str]) -> base_pb2.TransportSocket:
    """Client side of ISTIO_MUTUAL: our certificate, and the server must present one of
    `identities` (SPIFFE URIs); with none known, any mesh certificate is accepted."""
    sans = [_san(string_pb2.StringMatcher(exact=uri)) for uri in sorted(set(identities))]
    context = tls_pb2.UpstreamTlsContext(
        common_tls_context=_mesh_context(sans, CLIENT_MTLS_ALPN), sni=sni
    )
    return base_pb2.TransportSocket(name=TLS_SOCKET, typed_config=pack(context))


def downstream_mtls_socket(trust_domain: str, http: bool) -> base_pb2.TransportSocket:
    """Server side of mesh mTLS: a client certificate is required and must carry a SPIFFE
    id of this trust domain. HTTP chains offer h2/http/1.1 as Istio's inbound does."""
    sans = [_san(string_pb2.StringMatcher(prefix=f"spiffe://{trust_domain}/"))]
    context = tls_pb2.DownstreamTlsContext(
        common_tls_context=_mesh_context(sans, SERVER_HTTP_ALPN if http else ()),
    )
    context.require_client_certificate.value = True
    return base_pb2.TransportSocket(name=TLS_SOCKET, typed_config=pack(context))


# The system trust bundle a client checks an external server against when the rule
# names no CA (Istio's VERIFY_CERTIFICATE_AT_CLIENT default); Debian's path.
SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def upstream_file_tls_socket(
    sni: str,
    ca_certificates: str | None,
    subject_alt_names: Iterable[str],
    client_certificate: str | None = None,
    private_key: str | None = None,
    insecure_skip_verify: bool = False,
) -> base_pb2.TransportSocket:
    """DestinationRule SIMPLE (and, with a client certificate and key, MUTUAL) TLS to a
    server outside the mesh's identities: files the sidecar's Envoy reads itself."""
    context = tls_pb2.UpstreamTlsContext(sni=sni)
    common = context.common_tls_context
    common.tls_params.tls_minimum_protocol_version = common_pb2.TlsParameters.TLSv1_2
    if client_certificate and private_key:
        certificate = common.tls_certificates.add()
        certificate.certificate_chain.filename = client_certificate
        certificate.private_key.filename = private_key
    if not insecure_skip_verify:
        validation = common.validation_context
        validation.trusted_ca.filename = ca_certificates or SYSTEM_CA_BUNDLE
        for name in subject_alt_names:
            for san_type in (
                common_pb2.SubjectAltNameMatcher.DNS,
                common_pb2.SubjectAltNameMatcher.URI,
            ):
                validation.match_typed_subject_alt_names.add(
                    san_type=san_type, matcher=string_pb2.StringMatcher(exact=name)
                )
    return base_pb2.TransportSocket(name=TLS_SOCKET, typed_config=pack(context))


def raw_buffer_socket() -> base_pb2.TransportSocket:
    return base_pb2.TransportSocket(
        name=RAW_BUFFER_SOCKET, typed_config=pack(raw_buffer_pb2.RawBuffer())
    )


def auto_mtls_matches(
    sni: str, identities: Iterable[str]
) -> list[cluster_pb2.Cluster.TransportSocketMatch]:
    """Istio's automatic mTLS: endpoints with `tlsMode: istio` metadata (pods with a
    sidecar) get mTLS, every other endpoint plaintext."""
    istio = struct_pb2.Struct()
    istio.update({"tlsMode": TLS_MODE_ISTIO})
    return [
        cluster_pb2.Cluster.TransportSocketMatch(
            name="tlsMode-istio",
            match=istio,
            transport_socket=upstream_mtls_socket(sni, identities),
        ),
        cluster_pb2.Cluster.TransportSocketMatch(
            name="tlsMode-disabled", match=struct_pb2.Struct(), transport_socket=raw_buffer_socket()
        ),
    ]


def outbound_sni(cluster_name: str) -> str:
    """Istio's SNI for a cluster: `outbound_.8080_.v1_.host` (`_._` without a subset)."""
    direction, port, subset, host = cluster_name.split("|", 3)
    return f"{direction}_.{port}_.{subset}_.{host}"
