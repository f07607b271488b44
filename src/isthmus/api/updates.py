"""What an apply may not change in an object that exists, as the Kubernetes API server's
ValidateUpdate rules: checked against the stored body when an apply replaces it.

Only Secret has such rules so far (its type; data once `immutable` is set).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from isthmus.api.checks_secret import check_secret_update
from isthmus.api.errors import FieldProblem, Problems

__all__ = ["update_problems"]

_UPDATE_CHECKS: Mapping[str, Callable[[Mapping[str, Any], Mapping[str, Any], Problems], None]] = {
    "Secret": check_secret_update,
}


def update_problems(
    kind: str, stored: Mapping[str, Any], new: Mapping[str, Any]
) -> list[FieldProblem]:
    """Why the stored body of a `kind` object may not become `new` (both as stored)."""
    check = _UPDATE_CHECKS.get(kind)
    if check is None:
        return []
    problems = Problems()
    check(stored, new, problems)
    return problems.items
