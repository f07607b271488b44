"""Upstream TLS of an outbound cluster: DestinationRule `tls`, else Istio's auto mTLS."""

from __future__ import annotations

from collections.abc import Iterable

from envoy.config.cluster.v3 import cluster_pb2

from isthmus.api.networking import ClientTLSSettings, TLSMode
from isthmus.model.identity import spiffe_uri
from isthmus.model.types import Service
from isthmus.pilot.security.tls import (
    auto_mtls_matches,
    outbound_sni,
    upstream_file_tls_socket,
    upstream_mtls_socket,
)


def service_identities(accounts: Iterable[tuple[str, str]], trust_domain: str) -> list[str]:
    """SPIFFE ids of the (namespace, service account) pairs behind a service port: the
    identities a client accepts from its servers (Istio's ServiceAccounts of the service)."""
    return sorted({spiffe_uri(trust_domain, namespace, sa) for namespace, sa in accounts if sa})


def _server_name(hostname: str) -> str:
    """The service's host as SNI; a wildcard host names no server."""
    return "" if hostname.startswith("*") else hostname


def apply_upstream_tls(
    cluster: cluster_pb2.Cluster,
    service: Service,
    tls: ClientTLSSettings | None,
    identities: Iterable[str] | None,
) -> None:
    """DISABLE: plaintext. ISTIO_MUTUAL: always mesh mTLS. SIMPLE / MUTUAL: TLS with the
    rule's certificate files, SNI the rule's or the service host. No `tls`: auto mTLS for EDS
    clusters of in-mesh services (mTLS to endpoints with a sidecar, plaintext to others),
    as Istio's default; DNS, passthrough and MESH_EXTERNAL clusters stay plaintext.
    `identities` None means the proxy has no SDS: no auto mTLS, and ISTIO_MUTUAL stays
    configured, so the cluster waits for a certificate that never comes (fails closed)."""
    sni = outbound_sni(cluster.name)
    if tls is not None:
        if tls.mode is TLSMode.DISABLE:
            return
        if tls.mode is TLSMode.ISTIO_MUTUAL:
            peers = tls.subject_alt_names or identities or ()
            cluster.transport_socket.CopyFrom(upstream_mtls_socket(tls.sni or sni, peers))
            return
        mutual = tls.mode is TLSMode.MUTUAL
        cluster.transport_socket.CopyFrom(
            upstream_file_tls_socket(
                tls.sni or _server_name(service.hostname),
                tls.ca_certificates,
                tls.subject_alt_names,
                tls.client_certificate if mutual else None,
                tls.private_key if mutual else None,
                bool(tls.insecure_skip_verify),
            )
        )
        return
    if identities is None or service.mesh_external or cluster.type != cluster_pb2.Cluster.EDS:
        return
    cluster.transport_socket_matches.extend(auto_mtls_matches(sni, identities))
