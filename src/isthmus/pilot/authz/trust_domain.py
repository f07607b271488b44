"""Principals relative to the mesh's trust domain (pilot/pkg/security/trustdomain).

A policy names peers as `<trust-domain>/ns/<ns>/sa/<sa>`. Istio reads the trust domain
`cluster.local` (and the mesh's own trust domain or an alias) as "this mesh", so a policy
keeps working when the mesh's trust domain is not `cluster.local` or is migrated: such
a principal is rewritten to the mesh trust domain and each alias. Any other trust domain
is left as written, and so is a principal that is not of that five-part form.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

CLUSTER_LOCAL = "cluster.local"


def migrate_principals(principals: Iterable[str], trust_domains: Sequence[str]) -> list[str]:
    """Istio's ReplaceTrustDomainAliases; `trust_domains` is the mesh's first, then aliases."""
    migrated: list[str] = []
    for principal in principals:
        parts = principal.split("/")
        if len(parts) != 5 or parts[0] == "*":
            migrated.append(principal)  # the trust domain is not enforced
            continue
        own = parts[0]
        if own != CLUSTER_LOCAL and not any(_string_match(own, td) for td in trust_domains):
            migrated.append(principal)
            continue
        aliases: list[str] = []
        for trust_domain in trust_domains:
            rewritten = (
                principal
                if _suffix_match(trust_domain, own)
                else "/".join([trust_domain, *parts[1:]])
            )
            if rewritten not in aliases:
                aliases.append(rewritten)
        migrated.extend(aliases)
    return migrated


def _string_match(value: str, pattern: str) -> bool:
    """Istio's trustdomain stringMatch: either side may carry the `*` wildcard."""
    return (
        value == pattern
        or pattern == "*"
        or _prefix_match(value, pattern)
        or _prefix_match(pattern, value)
        or _suffix_match(value, pattern)
        or _suffix_match(pattern, value)
    )


def _prefix_match(value: str, pattern: str) -> bool:
    return pattern.endswith("*") and value.startswith(pattern[:-1])


def _suffix_match(value: str, pattern: str) -> bool:
    return pattern.startswith("*") and value.endswith(pattern[1:])
