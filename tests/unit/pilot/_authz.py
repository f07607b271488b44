"""Helpers for the authorization tests: policies from YAML, filters as plain data."""

from __future__ import annotations

import json
import textwrap
from typing import Any

from envoy.config.listener.v3 import listener_components_pb2 as lc
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)
from google.protobuf.message import Message

from isthmus.api import load_documents
from isthmus.api.authorization import AuthorizationPolicy
from isthmus.demo.seed import SEED_AUTHORIZATION_POLICY as SEED_POLICY  # noqa: F401  (re-exported for the tests)
from isthmus.model.snapshot import ConfigEntry
from isthmus.testing.protojson import message_to_dict

Entries = list[ConfigEntry[AuthorizationPolicy]]


def policies(text: str, namespace: str = "production") -> Entries:
    """Validated policies, created in document order (the first is the oldest)."""
    entries: Entries = []
    for revision, loaded in enumerate(
        load_documents(textwrap.dedent(text), "test.yaml", namespace)
    ):
        resource = loaded.resource
        assert isinstance(resource, AuthorizationPolicy)
        meta = resource.metadata
        entries.append(ConfigEntry(meta.name, meta.namespace or "", resource, revision + 1))
    return entries


def policy(spec: str, name: str = "p", namespace: str = "production", extra_meta: str = "") -> str:
    """One AuthorizationPolicy document with the given (dedented) spec."""
    body = textwrap.indent(textwrap.dedent(spec).strip("\n"), "  ")
    return (
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
        f"metadata:\n  name: {name}\n  namespace: {namespace}\n{extra_meta}spec:\n{body}\n"
    )


def plain(message: Message) -> dict[str, Any]:
    """A message as plain JSON data (proto field names, Anys resolved)."""
    data: dict[str, Any] = json.loads(json.dumps(message_to_dict(message)))
    return data


def config(envoy_filter: hcm.HttpFilter | lc.Filter) -> dict[str, Any]:
    """The RBAC config inside a filter, without its @type."""
    data = plain(envoy_filter)["typed_config"]
    data.pop("@type")
    return dict(data)
