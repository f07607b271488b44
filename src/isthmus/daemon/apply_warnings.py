"""The warnings an apply gives (as Istio's admission webhook warns): the apply goes ahead.

isthmusd gives them on every apply and dry run; `isthmus validate` and an offline
`apply --dry-run` give the same ones, under the path normalization the mesh would run.
"""

from __future__ import annotations

from collections.abc import Sequence

from isthmus.api.authorization import AuthorizationPolicy
from isthmus.api.loader import LoadedObject
from isthmus.pilot.authz.warnings import path_normalization_warnings

__all__ = ["DEFAULT_PATH_NORMALIZATION", "apply_warnings"]

DEFAULT_PATH_NORMALIZATION = "BASE"  # Istio's default, and isthmusd's


def apply_warnings(objects: Sequence[LoadedObject], path_normalization: str) -> list[str]:
    """Warning lines for the objects an apply stores, under the mesh's pathNormalization."""
    return [
        line
        for o in objects
        if isinstance(o.resource, AuthorizationPolicy)
        for line in path_normalization_warnings(o.resource, path_normalization)
    ]
