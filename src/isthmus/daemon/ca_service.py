"""Istio's certificate service (IstioCertificateService.CreateCertificate) on isthmusd's
gRPC socket, next to ADS, as istiod serves both on one port.

A caller proves which pod it is with the token isthmusd issued for that pod (the node
runtime asks for it, as a kubelet asks for a projected service-account token). The CA
signs only for that pod's own identity, `spiffe://<trust-domain>/ns/<ns>/sa/<sa>`, and
only while the pod exists with the same uid and service account: a token outlives
nothing it was issued for. Every refusal is logged with its reason.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

import grpc

from isthmus.ca import (
    CertificateAuthority,
    CsrRejected,
    PodBinding,
    TokenIssuer,
    TokenRejected,
    spiffe_id,
)
from isthmus.certificate_service import (
    AUTHORIZATION,
    BEARER,
    METHOD,
    SERVICE,
    IstioCertificateRequest,
    IstioCertificateResponse,
)
from isthmus.model.pods import POD_KIND, InvalidPod, PodView, pod_view
from isthmus.store import ObjectKey, ResourceStore

log = logging.getLogger("isthmus.ca")


class Refused(Exception):
    def __init__(self, code: grpc.StatusCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class CertificateService:
    """Authenticates the caller by pod token and signs its CSR for its own identity."""

    def __init__(
        self,
        authority: CertificateAuthority,
        tokens: TokenIssuer,
        store: ResourceStore,
    ) -> None:
        self._authority = authority
        self._tokens = tokens
        self._store = store

    def handler(self) -> grpc.GenericRpcHandler:
        method = grpc.unary_unary_rpc_method_handler(
            self._create_certificate,
            request_deserializer=IstioCertificateRequest.FromString,
            response_serializer=IstioCertificateResponse.SerializeToString,
        )
        return grpc.method_handlers_generic_handler(SERVICE, {METHOD: method})

    def issue_token(self, binding: PodBinding) -> str:
        return self._tokens.issue(binding)

    async def _create_certificate(
        self, request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> Any:
        binding: PodBinding | None = None
        try:
            binding = self._authenticate(context)
            identity = spiffe_id(
                self._authority.trust_domain, binding.namespace, binding.service_account
            )
            ttl = (
                timedelta(seconds=request.validity_duration) if request.validity_duration else None
            )
            try:
                chain = await asyncio.to_thread(
                    self._authority.sign_workload, request.csr, identity, ttl
                )
            except CsrRejected as exc:
                raise Refused(grpc.StatusCode.INVALID_ARGUMENT, f"csr rejected: {exc}") from None
        except Refused as refusal:
            pod = f"{binding.namespace}/{binding.pod}" if binding else "?"
            log.warning("ca certificate_refused pod=%s reason=%r", pod, refusal.reason)
            await context.abort(refusal.code, refusal.reason)
            raise AssertionError("abort returned") from None  # abort always raises
        log.info(
            "ca certificate_issued pod=%s/%s identity=%s ttl=%ss",
            binding.namespace,
            binding.pod,
            identity,
            request.validity_duration or "default",
        )
        return IstioCertificateResponse(cert_chain=chain)

    def _authenticate(self, context: grpc.aio.ServicerContext[Any, Any]) -> PodBinding:
        metadata = dict(context.invocation_metadata() or ())
        header = str(metadata.get(AUTHORIZATION, ""))
        if not header.startswith(BEARER):
            raise Refused(grpc.StatusCode.UNAUTHENTICATED, "no bearer token")
        try:
            binding = self._tokens.verify(header[len(BEARER) :].strip())
        except TokenRejected as exc:
            raise Refused(grpc.StatusCode.UNAUTHENTICATED, f"token rejected: {exc}") from None
        pod = self._pod(binding)
        if pod is None:
            raise Refused(
                grpc.StatusCode.PERMISSION_DENIED,
                f"pod {binding.namespace}/{binding.pod} does not exist",
            )
        if pod.uid != binding.uid:
            raise Refused(
                grpc.StatusCode.PERMISSION_DENIED,
                f"token of pod {binding.namespace}/{binding.pod} uid {binding.uid} "
                f"does not match the pod's uid {pod.uid or '(none)'}",
            )
        if pod.service_account != binding.service_account or pod.deleting:
            raise Refused(
                grpc.StatusCode.PERMISSION_DENIED,
                f"pod {binding.namespace}/{binding.pod} no longer runs as "
                f"service account {binding.service_account}",
            )
        return binding

    def _pod(self, binding: PodBinding) -> PodView | None:
        stored = self._store.get(ObjectKey(POD_KIND, binding.namespace, binding.pod))
        if stored is None:
            return None
        try:
            return pod_view(stored.body)
        except InvalidPod:
            return None
