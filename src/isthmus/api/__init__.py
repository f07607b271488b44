"""Typed models and validation of the YAML kinds isthmus accepts.

This package owns the user-facing schema: it turns YAML text into typed, validated
objects and reports every problem as one line naming file, document and field path.
It imports nothing else of isthmus.

Public surface: `load_documents`, `parse_resource`, `LoadedObject`, `ApiError`, the
kind registry (`KINDS`, `lookup`, `resolve_kind_name`) and the model modules
`networking` and `core`.
"""

from isthmus.api.errors import ApiError
from isthmus.api.loader import LoadedObject, load_documents, parse_resource
from isthmus.api.registry import KINDS, KindInfo, UnknownKindError, lookup, resolve_kind_name

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
