"""Typed models and validation of the YAML kinds isthmus accepts.

This package owns the user-facing schema: it turns YAML text into typed, validated
objects and reports every problem as one line naming file, document and field path.
It imports nothing else of isthmus.

Public surface: `load_documents`, `parse_resource`, `LoadedObject`, `ApiError`, the
kind registry (`KINDS`, `lookup`, `resolve_kind_name`) and the model modules
`networking` and `core`.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from isthmus.api.errors import ApiError
    from isthmus.api.loader import LoadedObject, load_documents, parse_resource
    from isthmus.api.registry import (
        KINDS,
        KindInfo,
        UnknownKindError,
        lookup,
        resolve_kind_name,
    )

# Exported lazily (PEP 562): small users such as the sidecar agent import one leaf module
# (durations, yamlstream, re2 limits) without loading pydantic and every model.
_EXPORTS = {
    "ApiError": "isthmus.api.errors",
    "LoadedObject": "isthmus.api.loader",
    "load_documents": "isthmus.api.loader",
    "parse_resource": "isthmus.api.loader",
    "KINDS": "isthmus.api.registry",
    "KindInfo": "isthmus.api.registry",
    "UnknownKindError": "isthmus.api.registry",
    "lookup": "isthmus.api.registry",
    "resolve_kind_name": "isthmus.api.registry",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'isthmus.api' has no attribute {name!r}")
    return getattr(import_module(module), name)


__all__ = [
    "KINDS",
    "ApiError",
    "KindInfo",
    "LoadedObject",
    "UnknownKindError",
    "load_documents",
    "lookup",
    "parse_resource",
    "resolve_kind_name",
]
