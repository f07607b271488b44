"""Typed models and validation of the YAML kinds isthmus accepts.

This package owns the user-facing schema: it turns YAML text into typed, validated
objects and reports every problem as one line naming file, document and field path.
It imports nothing else of isthmus.

Public surface: `load_documents`, `load_sources`, `final_objects`, `parse_resource`,
`LoadedObject`, `FinalObject`, `ApiError`, the kind registry (`KINDS`, `lookup`,
`resolve_kind_name`, `resolve_resource`) and the model modules `networking` and `core`.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from isthmus.api.errors import ApiError
    from isthmus.api.loader import (
        FinalObject,
        LoadedObject,
        final_objects,
        load_documents,
        load_sources,
        parse_resource,
    )
    from isthmus.api.registry import (
        KINDS,
        KindInfo,
        ResourceRef,
        UnknownKindError,
        UnservedVersionError,
        lookup,
        resolve_kind_name,
        resolve_resource,
    )

# Exported lazily (PEP 562): small users such as the sidecar agent import one leaf module
# (durations, yamlstream, re2 limits) without loading pydantic and every model.
_EXPORTS = {
    "ApiError": "isthmus.api.errors",
    "FinalObject": "isthmus.api.loader",
    "LoadedObject": "isthmus.api.loader",
    "final_objects": "isthmus.api.loader",
    "load_documents": "isthmus.api.loader",
    "load_sources": "isthmus.api.loader",
    "parse_resource": "isthmus.api.loader",
    "KINDS": "isthmus.api.registry",
    "KindInfo": "isthmus.api.registry",
    "ResourceRef": "isthmus.api.registry",
    "UnknownKindError": "isthmus.api.registry",
    "UnservedVersionError": "isthmus.api.registry",
    "lookup": "isthmus.api.registry",
    "resolve_kind_name": "isthmus.api.registry",
    "resolve_resource": "isthmus.api.registry",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'isthmus.api' has no attribute {name!r}")
    return getattr(import_module(module), name)


__all__ = [
    "KINDS",
    "ApiError",
    "FinalObject",
    "KindInfo",
    "LoadedObject",
    "ResourceRef",
    "UnknownKindError",
    "UnservedVersionError",
    "final_objects",
    "load_documents",
    "load_sources",
    "lookup",
    "parse_resource",
    "resolve_kind_name",
    "resolve_resource",
]
