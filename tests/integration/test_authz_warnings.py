"""isthmusd warns (and still applies) when an AuthorizationPolicy's path rules run under a
path normalization that lets //admin or %2F-encoded paths past them (Istio's security
best practice), as Istio's webhook and analyzers warn."""

from __future__ import annotations

from isthmus.testing.mesh import NAMESPACE, Mesh


def _apply(mesh: Mesh, action: str, field: str) -> dict[str, object]:
    text = f"""
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: guard-{action.lower()}, namespace: {NAMESPACE}}}
spec:
  action: {action}
  rules:
  - to:
    - operation: {{{field}: ["/admin"]}}
"""
    response = mesh.daemon.client.post(
        "/v1/apply", json={"documents": [{"source": "p.yaml", "text": text}], "dryRun": True}
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_path_deny_rules_under_base_normalization_are_warned_about(mesh: Mesh) -> None:
    reply = _apply(mesh, "DENY", "paths")

    (warning,) = reply["warnings"]  # type: ignore[misc]
    assert f"AuthorizationPolicy {NAMESPACE}/guard-deny: DENY rule on paths" in warning
    assert "pathNormalization BASE" in warning and "MERGE_SLASHES" in warning
    assert _apply(mesh, "ALLOW", "notPaths")["warnings"]
    assert _apply(mesh, "ALLOW", "paths")["warnings"] == []
