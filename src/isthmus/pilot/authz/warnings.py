"""Warnings for AuthorizationPolicies that are valid but weaker than they look.

Istio's security best practices: a DENY rule on `paths` (or an ALLOW rule on
`notPaths`) is only as strong as the path normalization in front of it. Under NONE
nothing is normalized; under BASE (the default) `//admin` and `%2F`-encoded slashes
still reach the app as other paths than the rule names, so it can be bypassed.
"""

from __future__ import annotations

from isthmus.api.authorization import AuthorizationPolicy

_WEAK_MODES = frozenset({"NONE", "BASE", "DEFAULT"})
_ADVICE = "https://istio.io/latest/docs/ops/best-practices/security/#authorization-policies"


def path_normalization_warnings(policy: AuthorizationPolicy, mode: str) -> list[str]:
    """Why `policy`'s path rules may be bypassed under pathNormalization `mode`."""
    if mode not in _WEAK_MODES:
        return []
    spec = policy.spec
    action = str(spec.action.value)
    field = {"DENY": "paths", "ALLOW": "notPaths"}.get(action)
    if field is None:
        return []
    uses = any(
        (op.operation.paths if field == "paths" else op.operation.not_paths)
        for rule in spec.rules
        for op in rule.to
        if op.operation is not None
    )
    if not uses:
        return []
    name = f"{policy.metadata.namespace or 'default'}/{policy.metadata.name}"
    return [
        f"AuthorizationPolicy {name}: {action} rule on {field} under pathNormalization {mode}: "
        "paths such as //admin or /a%2F..%2Fadmin are not normalized to what the rule names "
        "and can bypass it; run the mesh with --path-normalization MERGE_SLASHES or "
        f"DECODE_AND_MERGE_SLASHES ({_ADVICE})"
    ]
