"""Workload identities as Istio names them: one spelling for the CA, the agent and pilot."""

from __future__ import annotations


def spiffe_uri(trust_domain: str, namespace: str, service_account: str) -> str:
    """`spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>` (no checks: callers
    that take the parts from users validate them first)."""
    return f"spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}"
