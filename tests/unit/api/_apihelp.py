"""Helpers shared by the api tests: load YAML and return the user-facing error lines."""

from __future__ import annotations

import textwrap

import pytest

from isthmus.api import ApiError, LoadedObject, load_documents


def load_errors(data: str | bytes, source: str = "app.yaml", **kwargs: str) -> list[str]:
    """The ApiError lines `load_documents` raises for `data` (fails if it loads cleanly)."""
    with pytest.raises(ApiError) as raised:
        load_documents(data, source, **kwargs)
    return raised.value.errors


def load(data: str | bytes, source: str = "app.yaml", **kwargs: str) -> list[LoadedObject]:
    return load_documents(data, source, **kwargs)


def document(
    kind: str,
    spec: str,
    *,
    api_version: str = "networking.istio.io/v1",
    name: str = "reviews",
    namespace: str = "production",
) -> str:
    """A YAML document of `kind` whose spec is the given (dedented) YAML block."""
    body = textwrap.indent(textwrap.dedent(spec).strip("\n"), "  ")
    return (
        f"apiVersion: {api_version}\nkind: {kind}\n"
        f"metadata:\n  name: {name}\n  namespace: {namespace}\nspec:\n{body}\n"
    )
