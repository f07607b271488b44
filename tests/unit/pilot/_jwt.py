"""Helpers for the RequestAuthentication tests: policies from YAML specs."""

from __future__ import annotations

import textwrap

from isthmus.api import load_documents
from isthmus.api.request_authentication import RequestAuthentication
from isthmus.model.snapshot import ConfigEntry

Entries = list[ConfigEntry[RequestAuthentication]]


def authentication(
    spec: str, name: str = "jwt", namespace: str = "production", api: str = "v1"
) -> str:
    """One RequestAuthentication document with the given (dedented) spec."""
    body = textwrap.indent(textwrap.dedent(spec).strip("\n"), "  ")
    return (
        f"apiVersion: security.istio.io/{api}\nkind: RequestAuthentication\n"
        f"metadata:\n  name: {name}\n  namespace: {namespace}\nspec:\n{body}\n"
    )


def authentications(text: str) -> Entries:
    """Validated policies, created in document order (the first is the oldest)."""
    entries: Entries = []
    for revision, loaded in enumerate(load_documents(text, "test.yaml", "production")):
        resource = loaded.resource
        assert isinstance(resource, RequestAuthentication)
        meta = resource.metadata
        entries.append(ConfigEntry(meta.name, meta.namespace or "", resource, revision + 1))
    return entries
